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

/// Checks S3's rules for an object's tag set and returns the tags sorted
/// by key: at most 10, each as [`validate_each`] checks it, and none in
/// the `aws:` namespace, which AWS reserves for its own tags.
pub fn validate(tags: Vec<(String, String)>) -> S3Result<Vec<(String, String)>> {
    if tags.len() > OBJECT_TAGS_MAX {
        return Err(invalid_tag("Object tags cannot be greater than 10"));
    }
    let tags = validate_each(tags)?;
    if tags.iter().any(|(key, _)| reserved(key)) {
        return Err(invalid_tag("Your TagKey cannot be prefixed with aws:"));
    }
    Ok(tags)
}

/// A key in the namespace AWS reserves for its own tags: `aws:`, in any
/// case (AWS's pattern for tag keys refuses `AWS:` too).
fn reserved(key: &str) -> bool {
    key.get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("aws:"))
}

/// S3's rules for a bucket's tag set: at most 50, and none in the `aws:`
/// namespace.
fn validate_bucket(tags: Vec<(String, String)>) -> S3Result<Vec<(String, String)>> {
    if tags.len() > BUCKET_TAGS_MAX {
        return Err(invalid_tag("Bucket tag count cannot be greater than 50"));
    }
    if tags.iter().any(|(key, _)| reserved(key)) {
        return Err(invalid_tag(
            "System tags cannot be added/updated by requester",
        ));
    }
    validate_each(tags)
}

/// S3's rules for each tag, in the order given: a key of 1 to 128 and a
/// value of at most 256 UTF-16 code units (S3 counts a character outside
/// the Basic Multilingual Plane as two), each made of letters, digits,
/// spaces and `+ - = . _ : / @`, and no key twice. A refusal names the
/// tag in the error's `TagKey` (and `TagValue`), as S3's does. Returns
/// the tags sorted by key.
fn validate_each(tags: Vec<(String, String)>) -> S3Result<Vec<(String, String)>> {
    check_each(tags, true)
}

/// A lifecycle rule's tag filter: the lengths and unique keys of
/// [`validate_each`], but any characters (a filter only names tags to
/// match; S3's rules for it say no more).
pub(super) fn validate_filter(tags: Vec<(String, String)>) -> S3Result<Vec<(String, String)>> {
    check_each(tags, false)
}

fn check_each(
    mut tags: Vec<(String, String)>,
    characters: bool,
) -> S3Result<Vec<(String, String)>> {
    let valid = |text: &str, min: usize, max: usize| {
        let units = text.encode_utf16().count();
        (min..=max).contains(&units) && (!characters || text.chars().all(tag_char))
    };
    let mut seen = std::collections::HashSet::with_capacity(tags.len());
    for (key, value) in &tags {
        if !valid(key, 1, TAG_KEY_CHARS_MAX) {
            return Err(error::with_elements(
                invalid_tag("The TagKey you have provided is invalid"),
                &[("TagKey", key)],
            ));
        }
        if !valid(value, 0, TAG_VALUE_CHARS_MAX) {
            return Err(error::with_elements(
                invalid_tag("The TagValue you have provided is invalid"),
                &[("TagKey", key), ("TagValue", value)],
            ));
        }
        if !seen.insert(key.as_str()) {
            return Err(error::with_elements(
                invalid_tag("Cannot provide multiple Tags with the same key"),
                &[("TagKey", key)],
            ));
        }
    }
    tags.sort();
    Ok(tags)
}

/// Letters, digits, spaces (of any script, but no control character such
/// as a tab) and `+ - = . _ : / @`: the characters AWS allows in tags.
fn tag_char(c: char) -> bool {
    c.is_alphabetic()
        || c.is_numeric()
        || (c.is_whitespace() && !c.is_control())
        || matches!(c, '+' | '-' | '=' | '.' | '_' | ':' | '/' | '@')
}

/// S3's refusal of an `x-amz-tagging` header it cannot read.
fn invalid_tagging_header() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InvalidArgument,
        "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.",
    )
}

/// The `x-amz-tagging` header: `k1=v1&k2=v2`, URL-encoded as a query
/// string (`+` for a space). An empty pair is skipped and a pair without
/// `=` is a key with an empty value, as S3 reads them; a malformed
/// escape, a key that is empty or given twice, or text that is not UTF-8
/// is 400 InvalidArgument. The tags are then checked as
/// PutObjectTagging's are ([`validate`]).
pub fn from_header(header: Option<&str>) -> S3Result<Vec<(String, String)>> {
    let Some(header) = header.filter(|h| !h.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut tags: Vec<(String, String)> = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for pair in header.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = query_decode(key).ok_or_else(invalid_tagging_header)?;
        let value = query_decode(value).ok_or_else(invalid_tagging_header)?;
        if key.is_empty() || !keys.insert(key.clone()) {
            return Err(invalid_tagging_header());
        }
        tags.push((key, value));
    }
    validate(tags)
}

/// One component of a URL query: `+` is a space and `%XX` a byte, the
/// bytes UTF-8. `None` for an escape without two hex digits or bytes that
/// are not UTF-8.
fn query_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
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

    fn refusal(result: S3Result<Vec<(String, String)>>) -> (S3ErrorCode, String) {
        let error = result.expect_err("refused");
        (
            error.code().clone(),
            error.message().unwrap_or_default().to_owned(),
        )
    }

    #[test]
    fn header_pairs_are_read_as_s3_reads_a_query() {
        let tags = from_header(Some("&k&&a+b=c%2Bd&e=")).expect("valid");
        assert_eq!(
            tags,
            [
                ("a b".into(), "c+d".into()),
                ("e".into(), String::new()),
                ("k".into(), String::new())
            ]
        );
        assert_eq!(from_header(Some("&")).expect("nothing"), Vec::new());
        for header in ["k=%zz", "k=%4", "k%=v", "k=%+1", "k=%ff", "=v", "a=1&a=2"] {
            let (code, message) = refusal(from_header(Some(header)));
            assert_eq!(code, S3ErrorCode::InvalidArgument, "{header}");
            assert!(message.contains("x-amz-tagging"), "{header}: {message}");
        }
    }

    #[test]
    fn keys_and_values_take_the_characters_aws_allows() {
        let one = |key: &str, value: &str| validate(vec![(key.to_owned(), value.to_owned())]);
        for (key, value) in [
            ("Project/env:prod", "a+b-c=d.e_f@g h"),
            ("ключ", "値 ٣"),
            ("k", ""),
            ("k", "\u{3000}"),
        ] {
            one(key, value).unwrap_or_else(|e| panic!("{key}={value}: {e:?}"));
        }
        for key in ["a&b", "a,b", "tab\there", "semi;", "*", "\u{1F600}"] {
            assert_eq!(
                refusal(one(key, "v")),
                (
                    S3ErrorCode::InvalidTag,
                    "The TagKey you have provided is invalid".into()
                ),
                "{key:?}"
            );
        }
        for value in ["inv&alid", "line\nbreak", "100%"] {
            assert_eq!(
                refusal(one("k", value)),
                (
                    S3ErrorCode::InvalidTag,
                    "The TagValue you have provided is invalid".into()
                ),
                "{value:?}"
            );
        }
    }

    #[test]
    fn lengths_are_counted_in_utf16_units() {
        let ok = |key: String, value: String| validate(vec![(key, value)]).is_ok();
        assert!(ok("é".repeat(128), "ж".repeat(256)));
        assert!(!ok("é".repeat(129), String::new()));
        // U+10400 is a letter outside the BMP: two units each.
        assert!(ok("\u{10400}".repeat(64), "\u{10400}".repeat(128)));
        assert!(!ok("\u{10400}".repeat(65), String::new()));
        assert!(!ok("k".into(), "\u{10400}".repeat(129)));
        assert!(!ok(String::new(), "v".into()));
    }

    #[test]
    fn a_refused_tag_is_named_in_the_error() {
        let elements = |result: S3Result<Vec<(String, String)>>| {
            let error = result.expect_err("refused");
            let mut headers = error.headers().cloned().unwrap_or_default();
            error::take_elements(&mut headers)
        };
        let named = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        assert_eq!(
            elements(validate(vec![("a&b".into(), "v".into())])),
            [named("TagKey", "a&b")]
        );
        assert_eq!(
            elements(validate(vec![("k".into(), "v&".into())])),
            [named("TagKey", "k"), named("TagValue", "v&")]
        );
        assert_eq!(
            elements(validate(vec![
                ("k".into(), "1".into()),
                ("k".into(), "2".into())
            ])),
            [named("TagKey", "k")]
        );
    }

    #[test]
    fn a_lifecycle_filter_names_tags_of_any_characters() {
        let tags = vec![("a,b".to_owned(), "#1".to_owned())];
        assert!(validate_filter(tags.clone()).is_ok());
        assert!(validate(tags).is_err());
        let twice = vec![
            ("k".to_owned(), "1".to_owned()),
            ("k".to_owned(), "2".to_owned()),
        ];
        assert!(validate_filter(twice).is_err());
        assert!(validate_filter(vec![("k".repeat(129), String::new())]).is_err());
    }

    #[test]
    fn object_tags_keep_out_of_the_aws_namespace() {
        let (code, message) = refusal(from_header(Some("aws:cloudformation=x")));
        assert_eq!(code, S3ErrorCode::InvalidTag);
        assert_eq!(message, "Your TagKey cannot be prefixed with aws:");
        assert!(from_header(Some("awsx=1&aws=2")).is_ok());
        assert_eq!(
            refusal(from_header(Some("AWS:k=2"))).0,
            S3ErrorCode::InvalidTag
        );
        assert_eq!(
            refusal(validate_bucket(vec![("AWS:k".into(), "v".into())])).0,
            S3ErrorCode::InvalidTag
        );
    }
}
