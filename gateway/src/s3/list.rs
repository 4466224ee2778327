//! ListObjects (v1), ListObjectsV2 and ListObjectVersions over the metadata service's ordered
//! tree walk (docs/ARCHITECTURE.md, "A LIST"): a page costs what it
//! returns, not what the bucket holds.

use arbor_meta::listing::ListObjectVersions;
use arbor_meta::records::{
    ListEntry, ListPage, ListRequest, VersionId, VersionListEntry, VersionListRequest,
};
use base64::Engine;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Arbor, bucket, record_target, time};
use crate::error;
use crate::limits::LIST_KEYS_MAX;

/// One page of `bucket` as the three listing operations ask for it (an
/// empty delimiter is none), with the request that produced it.
async fn list_page(
    s3: &Arbor,
    bucket: &str,
    prefix: Option<&str>,
    delimiter: Option<&str>,
    start_after: Option<String>,
    max_keys: usize,
) -> S3Result<(ListRequest, ListPage)> {
    let request = ListRequest {
        prefix: prefix.unwrap_or_default().to_owned(),
        delimiter: delimiter.filter(|d| !d.is_empty()).map(str::to_owned),
        start_after,
        max_keys,
    };
    let page = s3
        .meta()
        .list_objects(bucket, &request)
        .await
        .map_err(error::from_meta)?;
    Ok((request, page))
}

pub async fn list_v2(
    s3: &Arbor,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    record_target("ListObjectsV2", &input.bucket, None);
    let url = url_encoding(input.encoding_type.as_ref())?;
    let max_keys = max_keys(input.max_keys)?;
    // The token wins over start-after: it is where the previous page ended.
    let start_after = match &input.continuation_token {
        Some(token) => Some(decode_token(token)?),
        None => input.start_after.clone().filter(|s| !s.is_empty()),
    };
    let (request, page) = list_page(
        s3,
        &input.bucket,
        input.prefix.as_deref(),
        input.delimiter.as_deref(),
        start_after,
        max_keys,
    )
    .await?;
    let next_continuation_token = if page.is_truncated {
        page.entries.last().map(|e| encode_token(e.name()))
    } else {
        None
    };
    let fetch_owner = input.fetch_owner.unwrap_or(false);
    let (contents, common_prefixes) = split(&page, url, fetch_owner);
    let key_count =
        i32::try_from(page.entries.len()).map_err(|e| error::internal("key count", e))?;
    let output = ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(encode_if(url, &request.prefix)),
        delimiter: echoed_delimiter(input.delimiter, url),
        max_keys: Some(input.max_keys.unwrap_or(LIST_KEYS_MAX)),
        key_count: Some(key_count),
        is_truncated: Some(page.is_truncated),
        continuation_token: input.continuation_token,
        next_continuation_token,
        start_after: input.start_after.map(|s| encode_if(url, &s)),
        encoding_type: input.encoding_type,
        contents: Some(contents),
        common_prefixes: Some(common_prefixes),
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

pub async fn list_v1(
    s3: &Arbor,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    record_target("ListObjects", &input.bucket, None);
    let url = url_encoding(input.encoding_type.as_ref())?;
    let (request, page) = list_page(
        s3,
        &input.bucket,
        input.prefix.as_deref(),
        input.delimiter.as_deref(),
        input.marker.clone().filter(|m| !m.is_empty()),
        max_keys(input.max_keys)?,
    )
    .await?;
    // S3 returns NextMarker only with a delimiter; without one, clients use
    // the last key. Returning it always is what they need either way.
    let next_marker = if page.is_truncated {
        page.entries.last().map(|e| encode_if(url, e.name()))
    } else {
        None
    };
    let (contents, common_prefixes) = split(&page, url, true);
    let output = ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(encode_if(url, &request.prefix)),
        delimiter: echoed_delimiter(input.delimiter, url),
        marker: Some(input.marker.map(|m| encode_if(url, &m)).unwrap_or_default()),
        max_keys: Some(input.max_keys.unwrap_or(LIST_KEYS_MAX)),
        is_truncated: Some(page.is_truncated),
        next_marker,
        encoding_type: input.encoding_type,
        contents: Some(contents),
        common_prefixes: Some(common_prefixes),
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

/// ListObjectVersions: every version and delete marker, keys in byte
/// order and each key's versions newest first, paged by `key-marker` and
/// `version-id-marker` (docs/design.md, "Versioning").
pub async fn list_versions(
    s3: &Arbor,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = req.input;
    record_target("ListObjectVersions", &input.bucket, None);
    let url = url_encoding(input.encoding_type.as_ref())?;
    let key_marker = input.key_marker.clone().filter(|m| !m.is_empty());
    let version_id_marker = match input.version_id_marker.as_deref().filter(|m| !m.is_empty()) {
        None => None,
        Some(_) if key_marker.is_none() => {
            return Err(s3_error!(
                InvalidArgument,
                "A version-id marker cannot be specified without a key marker."
            ));
        }
        Some(marker) => Some(
            VersionId::parse(marker)
                .ok_or_else(|| s3_error!(InvalidArgument, "Invalid version id specified"))?,
        ),
    };
    let request = VersionListRequest {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
        key_marker,
        version_id_marker,
        max_keys: max_keys(input.max_keys)?,
    };
    let page = s3
        .meta()
        .read(ListObjectVersions {
            bucket: input.bucket.clone(),
            request: request.clone(),
        })
        .await
        .map_err(error::from_meta)?;
    let mut versions = Vec::new();
    let mut delete_markers = Vec::new();
    let mut common_prefixes = Vec::new();
    for entry in &page.entries {
        match entry {
            VersionListEntry::Version(v) if v.delete_marker => {
                delete_markers.push(DeleteMarkerEntry {
                    key: Some(encode_if(url, &v.key)),
                    version_id: Some(v.version_id.to_string()),
                    is_latest: Some(v.is_latest),
                    last_modified: Some(time::timestamp(v.last_modified_ms)),
                    owner: Some(bucket::owner()),
                })
            }
            VersionListEntry::Version(v) => versions.push(ObjectVersion {
                key: Some(encode_if(url, &v.key)),
                size: Some(i64::try_from(v.size).unwrap_or(i64::MAX)),
                e_tag: Some(ETag::Strong(v.etag.clone())),
                last_modified: Some(time::timestamp(v.last_modified_ms)),
                owner: Some(bucket::owner()),
                storage_class: Some(ObjectVersionStorageClass::from(
                    v.storage_class
                        .clone()
                        .unwrap_or_else(|| ObjectVersionStorageClass::STANDARD.to_owned()),
                )),
                version_id: Some(v.version_id.to_string()),
                is_latest: Some(v.is_latest),
                ..Default::default()
            }),
            VersionListEntry::CommonPrefix(p) => common_prefixes.push(CommonPrefix {
                prefix: Some(encode_if(url, p)),
            }),
        }
    }
    // The next page starts after the last entry: a version (its key and
    // id) or a common prefix (the prefix alone).
    let (next_key_marker, next_version_id_marker) = match page.entries.last() {
        Some(VersionListEntry::Version(v)) if page.is_truncated => {
            (Some(encode_if(url, &v.key)), Some(v.version_id.to_string()))
        }
        Some(VersionListEntry::CommonPrefix(p)) if page.is_truncated => {
            (Some(encode_if(url, p)), None)
        }
        _ => (None, None),
    };
    let output = ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(encode_if(url, &request.prefix)),
        delimiter: echoed_delimiter(input.delimiter, url),
        key_marker: Some(
            input
                .key_marker
                .map(|m| encode_if(url, &m))
                .unwrap_or_default(),
        ),
        version_id_marker: input.version_id_marker,
        max_keys: Some(input.max_keys.unwrap_or(LIST_KEYS_MAX)),
        is_truncated: Some(page.is_truncated),
        next_version_id_marker,
        next_key_marker,
        encoding_type: input.encoding_type,
        versions: Some(versions),
        common_prefixes: Some(common_prefixes),
        delete_markers: Some(delete_markers),
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

/// The delimiter a listing answers with: an empty one is no delimiter,
/// and S3 leaves it out of the answer.
fn echoed_delimiter(delimiter: Option<String>, url: bool) -> Option<String> {
    delimiter
        .filter(|d| !d.is_empty())
        .map(|d| encode_if(url, &d))
}

fn split(page: &ListPage, url: bool, fetch_owner: bool) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for entry in &page.entries {
        match entry {
            ListEntry::Object(o) => contents.push(Object {
                key: Some(encode_if(url, &o.key)),
                size: Some(i64::try_from(o.size).unwrap_or(i64::MAX)),
                e_tag: Some(ETag::Strong(o.etag.clone())),
                last_modified: Some(time::timestamp(o.last_modified_ms)),
                storage_class: Some(ObjectStorageClass::from(
                    o.storage_class
                        .clone()
                        .unwrap_or_else(|| ObjectStorageClass::STANDARD.to_owned()),
                )),
                owner: fetch_owner.then(bucket::owner),
                ..Default::default()
            }),
            ListEntry::CommonPrefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(encode_if(url, p)),
            }),
        }
    }
    (contents, prefixes)
}

fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(arbor_meta::limits::LIST_PAGE_MAX),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok(usize::try_from(n.min(LIST_KEYS_MAX)).unwrap_or(0)),
    }
}

pub(super) fn url_encoding(encoding: Option<&EncodingType>) -> S3Result<bool> {
    match encoding.map(EncodingType::as_str) {
        None => Ok(false),
        Some(EncodingType::URL) => Ok(true),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request"
        )),
    }
}

/// Tokens are opaque to clients: the last key or common prefix returned.
fn encode_token(after: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after.as_bytes())
}

fn decode_token(token: &str) -> S3Result<String> {
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "The continuation token provided is incorrect"
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// `encoding-type=url`: percent-encode everything but unreserved characters
/// and `/`, as S3 does.
pub(super) fn encode_if(url: bool, s: &str) -> String {
    if !url {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_any_key() {
        for key in ["a", "a/b/", "日本/é", "x y+z%", ""] {
            assert_eq!(decode_token(&encode_token(key)).expect("decodes"), key);
        }
        assert!(decode_token("not base64!").is_err());
    }

    #[test]
    fn url_encoding_keeps_slash_and_unreserved() {
        assert_eq!(encode_if(true, "a b/c+d~é"), "a%20b/c%2Bd~%C3%A9");
        assert_eq!(encode_if(false, "a b"), "a b");
    }

    #[test]
    fn an_empty_delimiter_is_not_echoed() {
        assert_eq!(echoed_delimiter(None, false), None);
        assert_eq!(echoed_delimiter(Some(String::new()), true), None);
        assert_eq!(
            echoed_delimiter(Some("/".into()), true).as_deref(),
            Some("/")
        );
        assert_eq!(
            echoed_delimiter(Some("\u{1}".into()), true).as_deref(),
            Some("%01")
        );
        assert_eq!(
            echoed_delimiter(Some("\u{1}".into()), false).as_deref(),
            Some("\u{1}")
        );
    }

    #[test]
    fn max_keys_is_clamped_and_checked() {
        assert_eq!(max_keys(None).expect("default"), 1000);
        assert_eq!(max_keys(Some(5000)).expect("clamped"), 1000);
        assert_eq!(max_keys(Some(0)).expect("zero"), 0);
        assert!(max_keys(Some(-1)).is_err());
    }
}
