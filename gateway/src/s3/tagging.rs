//! Object tagging: Get/Put/DeleteObjectTagging, and the `x-amz-tagging`
//! header of PutObject, CreateMultipartUpload and CopyObject. Tags live in
//! the version record, each version its own set; changing them leaves
//! ETag and Last-Modified alone.
//! Bucket tagging: Get/Put/DeleteBucketTagging, stored beside the bucket
//! in the metadata (`ns_bucket_tags`).

use arbor_meta::MetaError;
use arbor_meta::limits::{
    BUCKET_TAGS_MAX, OBJECT_TAGS_MAX, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX,
};
use arbor_meta::namespace::GetReadableVersion;
use arbor_meta::records::ObjectVersion;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::{Arbor, object, record_target};
use crate::error;

fn invalid_tag(message: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidTag, message.to_owned())
}

/// Checks S3's tag rules and returns the tags sorted by key.
pub fn validate(tags: Vec<(String, String)>) -> S3Result<Vec<(String, String)>> {
    if tags.len() > OBJECT_TAGS_MAX {
        return Err(invalid_tag("Object tags cannot be greater than 10"));
    }
    validate_each(tags)
}

/// S3's rules for a bucket's tag set: at most 50, and none in the `aws:`
/// namespace, which AWS reserves for its own tags.
fn validate_bucket(tags: Vec<(String, String)>) -> S3Result<Vec<(String, String)>> {
    if tags.len() > BUCKET_TAGS_MAX {
        return Err(invalid_tag("Bucket tag count cannot be greater than 50"));
    }
    if tags
        .iter()
        .any(|(key, _)| key.to_ascii_lowercase().starts_with("aws:"))
    {
        return Err(invalid_tag(
            "System tags cannot be added/updated by requester",
        ));
    }
    validate_each(tags)
}

pub(super) fn validate_each(mut tags: Vec<(String, String)>) -> S3Result<Vec<(String, String)>> {
    for (key, value) in &tags {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > TAG_KEY_CHARS_MAX {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if value.chars().count() > TAG_VALUE_CHARS_MAX {
            return Err(invalid_tag("The TagValue you have provided is invalid"));
        }
    }
    tags.sort();
    if tags.windows(2).any(|w| matches!(w, [a, b] if a.0 == b.0)) {
        return Err(invalid_tag(
            "Cannot provide multiple Tags with the same key",
        ));
    }
    Ok(tags)
}

/// The `x-amz-tagging` header: `k1=v1&k2=v2`, URL-encoded.
pub fn from_header(header: Option<&str>) -> S3Result<Vec<(String, String)>> {
    let Some(header) = header.filter(|h| !h.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut tags = Vec::new();
    for pair in header.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            urlencoding::decode(&s.replace('+', " "))
                .map(|c| c.into_owned())
                .map_err(|_| invalid_tag("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."))
        };
        tags.push((decode(key)?, decode(value)?));
    }
    validate(tags)
}

fn from_tag_set(tag_set: TagSet) -> S3Result<Vec<(String, String)>> {
    validate(pairs(complete(tag_set)?))
}

/// A tag set whose every Tag has its Key and Value, both required by S3's
/// schema (a Value may be empty, not missing); else MalformedXML.
fn complete(tag_set: TagSet) -> S3Result<TagSet> {
    if tag_set.iter().any(|t| t.key.is_none() || t.value.is_none()) {
        return Err(S3Error::with_message(
            S3ErrorCode::MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema",
        ));
    }
    Ok(tag_set)
}

pub(super) fn pairs(tag_set: TagSet) -> Vec<(String, String)> {
    tag_set
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect()
}

pub(super) fn to_tag_set(tags: Vec<(String, String)>) -> TagSet {
    tags.into_iter()
        .map(|(k, v)| Tag {
            key: Some(k),
            value: Some(v),
        })
        .collect()
}

/// GetBucketTagging: NoSuchTagSet (404) when the bucket has no tags.
pub async fn get_bucket(
    s3: &Arbor,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let input = req.input;
    record_target("GetBucketTagging", &input.bucket, None);
    let tags = s3
        .meta()
        .get_bucket_tags(&input.bucket)
        .await
        .map_err(error::from_meta)?;
    if tags.is_empty() {
        return Err(S3Error::with_message(
            S3ErrorCode::NoSuchTagSet,
            "The TagSet does not exist".to_owned(),
        ));
    }
    Ok(S3Response::new(GetBucketTaggingOutput {
        tag_set: to_tag_set(tags),
    }))
}

/// PutBucketTagging: replaces the whole set (an empty set removes it).
pub async fn put_bucket(
    s3: &Arbor,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let input = req.input;
    record_target("PutBucketTagging", &input.bucket, None);
    let tags = validate_bucket(pairs(complete(input.tagging.tag_set)?))?;
    s3.meta()
        .put_bucket_tags(&input.bucket, tags)
        .await
        .map_err(error::from_meta)?;
    Ok(S3Response::new(PutBucketTaggingOutput::default()))
}

/// DeleteBucketTagging: 204 whether or not the bucket had tags.
pub async fn delete_bucket(
    s3: &Arbor,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    let input = req.input;
    record_target("DeleteBucketTagging", &input.bucket, None);
    s3.meta()
        .put_bucket_tags(&input.bucket, Vec::new())
        .await
        .map_err(error::from_meta)?;
    let mut response = S3Response::new(DeleteBucketTaggingOutput::default());
    response.status = Some(http::StatusCode::NO_CONTENT);
    Ok(response)
}

/// GetObjectTagging: the tags of the version `versionId` names, or of the
/// current one. A delete marker has none: 405, current or named, with the
/// headers GetObject sends for one.
pub async fn get(
    s3: &Arbor,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let input = req.input;
    record_target("GetObjectTagging", &input.bucket, Some(&input.key));
    let asked = input.version_id.is_some();
    let version =
        version_or_marker(s3, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    if version.stamp.delete_marker {
        return Err(object::delete_marker_error(&version, true));
    }
    Ok(S3Response::new(GetObjectTaggingOutput {
        version_id: object::version_header(&version, asked),
        tag_set: to_tag_set(version.tags),
    }))
}

/// The version of `bucket/key` that `version_id` names, or the current
/// one, delete markers included.
async fn version_or_marker(
    s3: &Arbor,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<ObjectVersion> {
    s3.meta()
        .read(GetReadableVersion {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: object::parse_version_id(version_id)?,
        })
        .await
        .map(|(version, _)| version)
        .map_err(error::from_meta)
}

/// Replaces the tags of the version `version_id` names (the current one
/// without it); the `x-amz-version-id` to answer with: the id of a version
/// named (the current one is tagged by a command that does not tell its
/// id, see `MetaClient::put_object_tags`).
async fn set_tags(
    s3: &Arbor,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    tags: Vec<(String, String)>,
) -> S3Result<Option<String>> {
    let id = object::parse_version_id(version_id)?;
    match s3.meta().put_object_tags(bucket, key, id, tags).await {
        Ok(tagged) => Ok(tagged.map(|id| id.to_string())),
        // A delete marker: its id and time for the answer's headers, as
        // GetObjectTagging gives them. A leader of an earlier release
        // answers NoSuchKey for a current marker; so is it one?
        Err(e @ MetaError::DeleteMarker(_)) => {
            Err(marker_refusal(s3, bucket, key, version_id, e).await)
        }
        Err(e @ MetaError::NoSuchKey(_)) if version_id.is_none() => {
            Err(marker_refusal(s3, bucket, key, version_id, e).await)
        }
        Err(e) => Err(error::from_meta(e)),
    }
}

/// 405 with the marker's headers if the version a tagging request named
/// (or the current one) is a delete marker, else `refused` as it is.
async fn marker_refusal(
    s3: &Arbor,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    refused: MetaError,
) -> S3Error {
    match version_or_marker(s3, bucket, key, version_id).await {
        Ok(marker) if marker.stamp.delete_marker => object::delete_marker_error(&marker, true),
        _ => error::from_meta(refused),
    }
}

/// PutObjectTagging: replaces the whole set of a version (the current
/// one without `versionId`); its ETag and Last-Modified stay.
pub async fn put(
    s3: &Arbor,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let input = req.input;
    record_target("PutObjectTagging", &input.bucket, Some(&input.key));
    let tags = from_tag_set(input.tagging.tag_set)?;
    let version_id = set_tags(
        s3,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        tags,
    )
    .await?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
}

/// DeleteObjectTagging: removes every tag of a version; 204.
pub async fn delete(
    s3: &Arbor,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let input = req.input;
    record_target("DeleteObjectTagging", &input.bucket, Some(&input.key));
    let version_id = set_tags(
        s3,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        Vec::new(),
    )
    .await?;
    let mut response = S3Response::new(DeleteObjectTaggingOutput { version_id });
    response.status = Some(http::StatusCode::NO_CONTENT);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_needs_its_key_and_value_though_the_value_may_be_empty() {
        let tag = |key: Option<&str>, value: Option<&str>| Tag {
            key: key.map(str::to_owned),
            value: value.map(str::to_owned),
        };
        let code = |tags: TagSet| from_tag_set(tags).expect_err("refused").code().clone();
        assert_eq!(code(vec![tag(Some("a"), None)]), S3ErrorCode::MalformedXML);
        assert_eq!(code(vec![tag(None, Some("v"))]), S3ErrorCode::MalformedXML);
        let tags = from_tag_set(vec![tag(Some("a"), Some(""))]).expect("empty value");
        assert_eq!(tags, [("a".to_owned(), String::new())]);
    }

    #[test]
    fn header_tags_are_decoded_sorted_and_checked() {
        let tags = from_header(Some("b=2&a=x%20y&c=")).expect("valid");
        assert_eq!(
            tags,
            [
                ("a".into(), "x y".into()),
                ("b".into(), "2".into()),
                ("c".into(), String::new())
            ]
        );
        assert!(from_header(Some("a=1&a=2")).is_err());
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert!(from_header(Some(&eleven.join("&"))).is_err());
        assert!(from_header(Some(&format!("{}=v", "k".repeat(129)))).is_err());
        assert!(from_header(Some(&format!("k={}", "v".repeat(257)))).is_err());
        assert_eq!(from_header(None).expect("none"), Vec::new());
    }
}
