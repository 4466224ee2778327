//! RenameObject, as AWS defines it for directory buckets, on every bucket:
//! `PUT /bucket/destination?renameObject` with `x-amz-rename-source:
//! bucket/source`. s3s 0.14.1 has no such operation, so `routes` serves it
//! after s3s has checked the signature. One metadata command renames; no
//! chunk is read, written or copied.
//!
//! Beyond AWS, a source and a destination that both end in `/` rename a
//! whole directory, atomically (see docs/design.md, "Renames").

use http::{HeaderMap, StatusCode};
use s3s::dto::{Timestamp, TimestampFormat};
use s3s::{Body, S3Error, S3Response, S3Result, s3_error};

use arbor_meta::rename::{ObjectCondition, RenameDirectory, RenameObject};

use super::Arbor;
use crate::error;

/// The query parameter that makes a PUT a RenameObject.
pub const RENAME_PARAM: &str = "renameObject";
/// The query parameter that lets a directory rename replace a destination
/// that holds keys (Arbor's extension; signed like the rest of the query).
pub const REPLACE_PARAM: &str = "arbor-replace";
/// The header naming the source: `bucket/key`, URL-encoded.
const SOURCE_HEADER: &str = "x-amz-rename-source";

/// Renames `source` (from the header) to `bucket/destination`.
/// With `replace` (the query parameter [`REPLACE_PARAM`]), a directory
/// rename replaces a destination that holds keys.
pub async fn rename(
    s3: &Arbor,
    bucket: &str,
    destination: &str,
    headers: &HeaderMap,
    replace: bool,
) -> S3Result<S3Response<Body>> {
    super::record_target("RenameObject", bucket, Some(destination));
    let source = source_key(bucket, headers)?;
    let source_condition = condition(headers, "x-amz-rename-source-")?;
    let destination_condition = condition(headers, "")?;
    let client_token = header(headers, "x-amz-client-token")?.map(str::to_owned);
    let meta = s3.meta();
    if source.ends_with('/') != destination.ends_with('/') {
        // A directory moves onto a directory; AWS renames no key ending
        // in '/' (directory buckets hold no such objects).
        return Err(s3_error!(
            InvalidArgument,
            "A directory rename names two keys ending in '/'; an object rename none"
        ));
    }
    if source.ends_with('/') {
        if source_condition != ObjectCondition::default()
            || destination_condition != ObjectCondition::default()
        {
            return Err(s3_error!(
                InvalidArgument,
                "Conditions do not apply to a directory rename"
            ));
        }
        meta.rename_directory(RenameDirectory {
            bucket: bucket.to_owned(),
            source,
            destination: destination.to_owned(),
            replace,
            now_ms: s3.now_ms(),
            client_token,
        })
        .await
        .map_err(error::from_meta)?;
    } else {
        meta.rename_object(RenameObject {
            bucket: bucket.to_owned(),
            source,
            destination: destination.to_owned(),
            source_condition,
            destination_condition,
            client_token,
        })
        .await
        .map_err(error::from_meta)?;
    }
    let mut response = S3Response::new(Body::empty());
    response.status = Some(StatusCode::OK);
    Ok(response)
}

/// The source key of `x-amz-rename-source` (`bucket/key` or
/// `/bucket/key`, URL-encoded), which must name `bucket`.
pub(crate) fn source_key(bucket: &str, headers: &HeaderMap) -> S3Result<String> {
    let Some(raw) = header(headers, SOURCE_HEADER)? else {
        return Err(s3_error!(
            InvalidRequest,
            "RenameObject needs an x-amz-rename-source header"
        ));
    };
    let decoded = urlencoding::decode(raw)
        .map_err(|_| s3_error!(InvalidArgument, "x-amz-rename-source is not valid UTF-8"))?;
    let path = decoded.strip_prefix('/').unwrap_or(&decoded);
    let Some((source_bucket, key)) = path.split_once('/') else {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-rename-source must be bucket/key"
        ));
    };
    if source_bucket != bucket {
        return Err(s3_error!(
            InvalidRequest,
            "An object can only be renamed within its bucket"
        ));
    }
    if key.is_empty() {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-rename-source names no key"
        ));
    }
    Ok(key.to_owned())
}

/// The conditions of headers `{prefix}if-match` and so on.
fn condition(headers: &HeaderMap, prefix: &str) -> S3Result<ObjectCondition> {
    let etag = |name: &str| -> S3Result<Option<String>> {
        Ok(header(headers, &format!("{prefix}{name}"))?.map(|v| {
            let v = v.trim();
            // If-None-Match compares weakly (RFC 7232 3.2): W/"x" is "x".
            let v = match name {
                "if-none-match" => v.strip_prefix("W/").unwrap_or(v),
                _ => v,
            };
            v.trim_matches('"').to_owned()
        }))
    };
    let date = |name: &str| -> S3Result<Option<i64>> {
        let name = format!("{prefix}{name}");
        let Some(value) = header(headers, &name)? else {
            return Ok(None);
        };
        // An invalid date is ignored (RFC 7232 3.3, 3.4).
        let Ok(time) = Timestamp::parse(TimestampFormat::HttpDate, value.trim()) else {
            return Ok(None);
        };
        let time = time::OffsetDateTime::from(time);
        Ok(Some(
            i64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
        ))
    };
    Ok(ObjectCondition {
        if_match: etag("if-match")?,
        if_none_match: etag("if-none-match")?,
        if_modified_since_ms: date("if-modified-since")?,
        if_unmodified_since_ms: date("if-unmodified-since")?,
    })
}

/// A header's value, if present; refused if it is not visible ASCII.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> S3Result<Option<&'a str>> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value.to_str().map(Some).map_err(|_| -> S3Error {
            s3_error!(InvalidArgument, "The {name} header is not valid")
        }),
    }
}
