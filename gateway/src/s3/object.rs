//! Object operations: put, get, head, delete.

use std::collections::HashMap;

use arbor_meta::command::WriteCondition;
use arbor_meta::limits::USER_METADATA_SIZE_MAX;
use arbor_meta::object::ObjectHeaders;
use arbor_meta::{MetaError, ObjectVersion};
use base64::Engine;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Arbor, record_target, time};
use crate::data_path;
use crate::error;
use crate::limits::PUT_OBJECT_SIZE_MAX;

pub async fn put(
    s3: &Arbor,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let input = req.input;
    record_target("PutObject", &input.bucket, Some(&input.key));
    let user_metadata = user_metadata(input.metadata)?;
    let expected_md5 = input
        .content_md5
        .as_deref()
        .map(decode_content_md5)
        .transpose()?;
    let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    if let Some(length) = input.content_length
        && u64::try_from(length).is_ok_and(|l| l > PUT_OBJECT_SIZE_MAX)
    {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size."
        ));
    }
    let headers = ObjectHeaders {
        content_type: input.content_type.map(|m| m.to_string()),
        content_encoding: input.content_encoding,
        content_disposition: input.content_disposition,
        content_language: input.content_language,
        cache_control: input.cache_control,
        expires: input.expires.as_ref().and_then(http_date),
    };
    let body = input.body.unwrap_or_else(|| {
        StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
    });
    let written = data_path::write_body(
        s3.chunks(),
        s3.settings().chunk_size,
        PUT_OBJECT_SIZE_MAX,
        body,
    )
    .await?;
    if let Some(expected) = expected_md5
        && expected != written.md5
    {
        data_path::discard_body(s3.chunks(), &written.data).await;
        return Err(s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received."
        ));
    }
    let version = ObjectVersion {
        generation: 0,
        size: written.size,
        etag: hex::encode(written.md5),
        last_modified_ms: time::now_ms(),
        headers,
        user_metadata,
        checksum: None,
        storage_class: input.storage_class.map(|c| c.as_str().to_owned()),
        data: written.data,
    };
    let data = version.data.clone();
    match s3
        .meta()
        .put_object(&input.bucket, &input.key, version, condition)
        .await
    {
        Ok(committed) => {
            let output = PutObjectOutput {
                e_tag: Some(ETag::Strong(committed.etag)),
                ..Default::default()
            };
            Ok(S3Response::new(output))
        }
        Err(e) => {
            if outcome_is_known(&e) {
                // Rejected: nothing references the chunks.
                data_path::discard_body(s3.chunks(), &data).await;
            }
            Err(error::from_meta(e))
        }
    }
}

/// Whether a failed commit certainly did not apply. After a timeout or a
/// leader change it may have: its chunks are left for GC to decide.
fn outcome_is_known(e: &MetaError) -> bool {
    match e {
        MetaError::NoSuchBucket(_)
        | MetaError::BucketAlreadyExists(_)
        | MetaError::BucketNotEmpty(_)
        | MetaError::InvalidBucketName(_)
        | MetaError::NoSuchKey(_)
        | MetaError::InvalidKey(_)
        | MetaError::KeyTooLong
        | MetaError::PreconditionFailed
        | MetaError::OverwriteRefused => true,
        MetaError::NotLeader { .. }
        | MetaError::Unavailable(_)
        | MetaError::Timeout
        | MetaError::Storage(_)
        | MetaError::Raft(_)
        | MetaError::Corrupt(_)
        | MetaError::ShuttingDown => false,
    }
}

pub async fn get(
    s3: &Arbor,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let input = req.input;
    record_target("GetObject", &input.bucket, Some(&input.key));
    let version = s3
        .meta()
        .get_object(&input.bucket, &input.key)
        .await
        .map_err(error::from_meta)?;
    let (range, partial) = match &input.range {
        None => (0..version.size, false),
        Some(r) => {
            let checked = r
                .check(version.size)
                .map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable."))?;
            (checked, true)
        }
    };
    let content_range = partial.then(|| {
        format!(
            "bytes {}-{}/{}",
            range.start,
            range.end.saturating_sub(1),
            version.size
        )
    });
    let length = range.end - range.start;
    let body = data_path::read_body(s3.chunks(), &version, range);
    let output = GetObjectOutput {
        body: Some(body),
        content_length: Some(i64::try_from(length).map_err(|e| error::internal("length", e))?),
        content_range,
        accept_ranges: Some("bytes".to_owned()),
        e_tag: Some(ETag::Strong(version.etag.clone())),
        last_modified: Some(time::timestamp(version.last_modified_ms)),
        content_type: version
            .headers
            .content_type
            .as_deref()
            .and_then(|c| c.parse().ok()),
        content_encoding: version.headers.content_encoding.clone(),
        content_disposition: version.headers.content_disposition.clone(),
        content_language: version.headers.content_language.clone(),
        cache_control: version.headers.cache_control.clone(),
        expires: version.headers.expires.as_deref().and_then(parse_http_date),
        metadata: metadata_map(&version),
        storage_class: version.storage_class.clone().map(StorageClass::from),
        ..Default::default()
    };
    let mut response = S3Response::new(output);
    if partial {
        response.status = Some(http::StatusCode::PARTIAL_CONTENT);
    }
    Ok(response)
}

pub async fn head(
    s3: &Arbor,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = req.input;
    record_target("HeadObject", &input.bucket, Some(&input.key));
    let version = s3
        .meta()
        .get_object(&input.bucket, &input.key)
        .await
        .map_err(error::from_meta)?;
    let output = HeadObjectOutput {
        content_length: Some(
            i64::try_from(version.size).map_err(|e| error::internal("length", e))?,
        ),
        accept_ranges: Some("bytes".to_owned()),
        e_tag: Some(ETag::Strong(version.etag.clone())),
        last_modified: Some(time::timestamp(version.last_modified_ms)),
        content_type: version
            .headers
            .content_type
            .as_deref()
            .and_then(|c| c.parse().ok()),
        content_encoding: version.headers.content_encoding.clone(),
        content_disposition: version.headers.content_disposition.clone(),
        content_language: version.headers.content_language.clone(),
        cache_control: version.headers.cache_control.clone(),
        expires: version.headers.expires.as_deref().and_then(parse_http_date),
        metadata: metadata_map(&version),
        storage_class: version.storage_class.clone().map(StorageClass::from),
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

pub async fn delete(
    s3: &Arbor,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let input = req.input;
    record_target("DeleteObject", &input.bucket, Some(&input.key));
    s3.meta()
        .delete_object(&input.bucket, &input.key)
        .await
        .map_err(error::from_meta)?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

/// `x-amz-meta-*` as stored: names lowercased, sorted, within S3's 2 KiB.
fn user_metadata(metadata: Option<Metadata>) -> S3Result<Vec<(String, String)>> {
    let mut pairs: Vec<(String, String)> = metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    pairs.sort();
    let size: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > USER_METADATA_SIZE_MAX {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size."
        ));
    }
    Ok(pairs)
}

fn metadata_map(version: &ObjectVersion) -> Option<Metadata> {
    if version.user_metadata.is_empty() {
        return None;
    }
    Some(
        version
            .user_metadata
            .iter()
            .cloned()
            .collect::<HashMap<_, _>>(),
    )
}

fn decode_content_md5(value: &str) -> S3Result<[u8; 16]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))?;
    <[u8; 16]>::try_from(bytes.as_slice())
        .map_err(|_| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))
}

/// `If-None-Match: *` and `If-Match: "etag"` on a write.
fn write_condition(
    if_match: Option<&IfMatch>,
    if_none_match: Option<&IfNoneMatch>,
) -> S3Result<WriteCondition> {
    match (if_match, if_none_match) {
        (None, None) => Ok(WriteCondition::None),
        (None, Some(c)) if c.is_any() => Ok(WriteCondition::IfNoneMatchAny),
        (None, Some(_)) => Err(s3_error!(
            NotImplemented,
            "If-None-Match on writes supports only '*'."
        )),
        (Some(c), None) => match c.as_etag() {
            Some(etag) => Ok(WriteCondition::IfMatch(etag.value().to_owned())),
            None => Err(s3_error!(
                NotImplemented,
                "If-Match on writes needs an ETag."
            )),
        },
        (Some(_), Some(_)) => Err(s3_error!(
            NotImplemented,
            "If-Match and If-None-Match together are not supported on writes."
        )),
    }
}

fn http_date(ts: &Timestamp) -> Option<String> {
    let mut out = Vec::new();
    ts.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}
