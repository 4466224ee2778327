//! ListObjects (v1), ListObjectsV2 and ListObjectVersions over the metadata service's ordered
//! tree walk (docs/ARCHITECTURE.md, "A LIST"): a page costs what it
//! returns, not what the bucket holds.

use arbor_meta::listing::ListObjectVersions;
use arbor_meta::records::{ListPage, ListRequest, VersionId, VersionListEntry, VersionListRequest};
use base64::Engine;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::list_xml::{ListXml, percent_encode_into};
use super::{Arbor, record_target};
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
    // A bad encoding type is refused before the walk.
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
    let xml = v2_document(&input, url, &request.prefix, &page)?;
    Ok(xml.into_response(ListObjectsV2Output::default()))
}

/// The ListObjectsV2 answer for `page`, in the order s3s serializes
/// ListObjectsV2Output (`list_xml`).
fn v2_document(
    input: &ListObjectsV2Input,
    url: bool,
    prefix: &str,
    page: &ListPage,
) -> S3Result<ListXml> {
    let key_count =
        i64::try_from(page.entries.len()).map_err(|e| error::internal("key count", e))?;
    let mut xml = ListXml::new(page.entries.len(), url);
    xml.text("Name", &input.bucket);
    xml.name("Prefix", prefix);
    xml.number("MaxKeys", input.max_keys.unwrap_or(LIST_KEYS_MAX).into());
    xml.number("KeyCount", key_count);
    if let Some(token) = &input.continuation_token {
        xml.text("ContinuationToken", token);
    }
    xml.boolean("IsTruncated", page.is_truncated);
    if page.is_truncated
        && let Some(last) = page.entries.last()
    {
        xml.text("NextContinuationToken", &encode_token(last.name()));
    }
    xml.entries(page, input.fetch_owner.unwrap_or(false));
    if let Some(delimiter) = echoed(input.delimiter.as_deref()) {
        xml.name("Delimiter", delimiter);
    }
    if let Some(encoding) = &input.encoding_type {
        xml.text("EncodingType", encoding.as_str());
    }
    if let Some(start_after) = &input.start_after {
        xml.name("StartAfter", start_after);
    }
    Ok(xml)
}

pub async fn list_v1(
    s3: &Arbor,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    record_target("ListObjects", &input.bucket, None);
    // A bad encoding type is refused before the walk.
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
    let xml = v1_document(&input, url, &request.prefix, &page);
    Ok(xml.into_response(ListObjectsOutput::default()))
}

/// The ListObjects (v1) answer for `page`, in the order s3s serializes
/// ListObjectsOutput (`list_xml`).
fn v1_document(input: &ListObjectsInput, url: bool, prefix: &str, page: &ListPage) -> ListXml {
    let mut xml = ListXml::new(page.entries.len(), url);
    xml.text("Name", &input.bucket);
    xml.name("Prefix", prefix);
    xml.name("Marker", input.marker.as_deref().unwrap_or_default());
    xml.number("MaxKeys", input.max_keys.unwrap_or(LIST_KEYS_MAX).into());
    xml.boolean("IsTruncated", page.is_truncated);
    xml.entries(page, true);
    if let Some(delimiter) = echoed(input.delimiter.as_deref()) {
        xml.name("Delimiter", delimiter);
    }
    // S3 returns NextMarker only with a delimiter; without one, clients use
    // the last key. Returning it always is what they need either way.
    if page.is_truncated
        && let Some(last) = page.entries.last()
    {
        xml.name("NextMarker", last.name());
    }
    if let Some(encoding) = &input.encoding_type {
        xml.text("EncodingType", encoding.as_str());
    }
    xml
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
    // The next page starts after the last entry: a version (its key and
    // id) or a common prefix (the prefix alone).
    let (next_key_marker, next_version_id_marker) = match page.entries.last() {
        Some(VersionListEntry::Version(v)) if page.is_truncated => {
            (Some(v.key.as_str()), Some(v.version_id.to_string()))
        }
        Some(VersionListEntry::CommonPrefix(p)) if page.is_truncated => (Some(p.as_str()), None),
        _ => (None, None),
    };
    // Written here rather than by s3s, to keep versions and delete markers
    // in one sequence (`list_xml`).
    let mut xml = ListXml::versions(page.entries.len(), url);
    xml.text("Name", &input.bucket);
    xml.name("Prefix", &request.prefix);
    xml.name("KeyMarker", input.key_marker.as_deref().unwrap_or_default());
    xml.text(
        "VersionIdMarker",
        input.version_id_marker.as_deref().unwrap_or_default(),
    );
    if let Some(next) = next_key_marker {
        xml.name("NextKeyMarker", next);
    }
    if let Some(next) = &next_version_id_marker {
        xml.text("NextVersionIdMarker", next);
    }
    xml.number("MaxKeys", input.max_keys.unwrap_or(LIST_KEYS_MAX).into());
    if let Some(delimiter) = echoed(input.delimiter.as_deref()) {
        xml.name("Delimiter", delimiter);
    }
    xml.boolean("IsTruncated", page.is_truncated);
    xml.version_entries(&page);
    if let Some(encoding) = &input.encoding_type {
        xml.text("EncodingType", encoding.as_str());
    }
    Ok(xml.into_response(ListObjectVersionsOutput::default()))
}

/// The delimiter a listing answers with: an empty one is no delimiter,
/// and S3 leaves it out of the answer.
fn echoed(delimiter: Option<&str>) -> Option<&str> {
    delimiter.filter(|d| !d.is_empty())
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

/// `s`, percent-encoded if `url` (`encoding-type=url`,
/// [`percent_encode_into`]).
pub(super) fn encode_if(url: bool, s: &str) -> String {
    if !url {
        return s.to_owned();
    }
    let mut out = Vec::with_capacity(s.len());
    percent_encode_into(&mut out, s);
    String::from_utf8(out).expect("percent-encoding writes ASCII")
}

#[cfg(test)]
mod tests {
    use super::super::{bucket, time};
    use super::*;
    use arbor_meta::records::ListEntry;

    /// The delimiter the DTOs carried: as `echoed`, URL-encoded for
    /// `encoding-type=url`.
    fn echoed_delimiter(delimiter: Option<String>, url: bool) -> Option<String> {
        echoed(delimiter.as_deref()).map(|d| encode_if(url, d))
    }

    /// The DTOs the listing once handed s3s: what `ListXml` must write.
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

    /// The ListObjectsV2Output the listing once handed s3s.
    fn v2_dto(input: &ListObjectsV2Input, prefix: &str, page: &ListPage) -> ListObjectsV2Output {
        let url = url_encoding(input.encoding_type.as_ref()).expect("valid");
        let (contents, common_prefixes) = split(page, url, input.fetch_owner.unwrap_or(false));
        ListObjectsV2Output {
            name: Some(input.bucket.clone()),
            prefix: Some(encode_if(url, prefix)),
            delimiter: echoed_delimiter(input.delimiter.clone(), url),
            max_keys: Some(input.max_keys.unwrap_or(LIST_KEYS_MAX)),
            key_count: Some(i32::try_from(page.entries.len()).expect("fits")),
            is_truncated: Some(page.is_truncated),
            continuation_token: input.continuation_token.clone(),
            next_continuation_token: page
                .entries
                .last()
                .filter(|_| page.is_truncated)
                .map(|e| encode_token(e.name())),
            start_after: input.start_after.as_ref().map(|s| encode_if(url, s)),
            encoding_type: input.encoding_type.clone(),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            ..Default::default()
        }
    }

    /// The ListObjectsOutput the listing once handed s3s.
    fn v1_dto(input: &ListObjectsInput, prefix: &str, page: &ListPage) -> ListObjectsOutput {
        let url = url_encoding(input.encoding_type.as_ref()).expect("valid");
        let (contents, common_prefixes) = split(page, url, true);
        ListObjectsOutput {
            name: Some(input.bucket.clone()),
            prefix: Some(encode_if(url, prefix)),
            delimiter: echoed_delimiter(input.delimiter.clone(), url),
            marker: Some(
                input
                    .marker
                    .as_ref()
                    .map(|m| encode_if(url, m))
                    .unwrap_or_default(),
            ),
            max_keys: Some(input.max_keys.unwrap_or(LIST_KEYS_MAX)),
            is_truncated: Some(page.is_truncated),
            next_marker: page
                .entries
                .last()
                .filter(|_| page.is_truncated)
                .map(|e| encode_if(url, e.name())),
            encoding_type: input.encoding_type.clone(),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            ..Default::default()
        }
    }

    /// What s3s writes for `output` (`set_xml_body`).
    fn s3s_xml(output: &impl s3s::xml::Serialize) -> String {
        let mut buf = Vec::new();
        let mut ser = s3s::xml::Serializer::new(&mut buf);
        ser.decl().expect("declaration");
        output.serialize(&mut ser).expect("serializes");
        String::from_utf8(buf).expect("utf-8")
    }

    fn ours(xml: ListXml) -> String {
        let response = xml.into_response(());
        let body = response
            .extensions
            .get::<super::super::list_xml::PrerenderedBody>()
            .expect("prerendered")
            .0
            .clone();
        String::from_utf8(body.to_vec()).expect("utf-8")
    }

    /// Keys, names and echoes with everything XML and URL encoding
    /// treat specially.
    const AWKWARD: [&str; 6] = ["plain", "a b/c+d", "<&>'\"", "日本/é~", "x%2F\u{1}", ""];

    fn page_of(truncated: bool, seed: usize) -> ListPage {
        let mut entries = Vec::new();
        for (i, key) in AWKWARD.iter().enumerate() {
            let i64_of = |n: usize| i64::try_from(n).expect("small");
            entries.push(ListEntry::Object(arbor_meta::records::ListedObject {
                key: format!("{key}{seed}{i}"),
                size: u64::try_from(i * 1_000_003 + seed).expect("small"),
                etag: if i % 2 == 0 {
                    format!("{:032x}", i * 7 + seed)
                } else {
                    format!("{:032x}-{}", i, i + 1)
                },
                last_modified_ms: 1_796_540_943_074 + i64_of(i) * 86_399_999 - i64_of(seed),
                storage_class: (i % 3 == 1).then(|| "STANDARD_IA".to_owned()),
            }));
            if i % 2 == 1 {
                entries.push(ListEntry::CommonPrefix(format!("{key}/{seed}/")));
            }
        }
        ListPage {
            entries,
            is_truncated: truncated,
        }
    }

    #[test]
    fn documents_match_s3s_serialization() {
        let encodings = [None, Some(EncodingType::from(EncodingType::URL.to_owned()))];
        let mut checked = 0;
        for (seed, text) in AWKWARD.iter().enumerate() {
            let optional = |on: bool| on.then(|| (*text).to_owned());
            for encoding in &encodings {
                for truncated in [false, true] {
                    for shape in 0..4 {
                        let page = page_of(truncated, seed);
                        let v2 = ListObjectsV2Input {
                            bucket: format!("bucket-{seed}"),
                            continuation_token: optional(shape == 1),
                            delimiter: optional(shape != 2),
                            encoding_type: encoding.clone(),
                            fetch_owner: (shape != 0).then_some(shape == 3),
                            max_keys: (shape > 1).then_some(shape * 7),
                            prefix: optional(shape != 3),
                            start_after: optional(shape >= 2),
                            ..Default::default()
                        };
                        let prefix = v2.prefix.clone().unwrap_or_default();
                        let url = url_encoding(encoding.as_ref()).expect("valid");
                        let document = v2_document(&v2, url, &prefix, &page).expect("renders");
                        assert_eq!(ours(document), s3s_xml(&v2_dto(&v2, &prefix, &page)));
                        let v1 = ListObjectsInput {
                            bucket: format!("bucket-{seed}"),
                            delimiter: optional(shape != 2),
                            encoding_type: encoding.clone(),
                            marker: optional(shape % 2 == 1),
                            max_keys: (shape > 1).then_some(shape),
                            prefix: optional(shape != 3),
                            ..Default::default()
                        };
                        let document = v1_document(&v1, url, &prefix, &page);
                        assert_eq!(ours(document), s3s_xml(&v1_dto(&v1, &prefix, &page)));
                        checked += 2;
                    }
                }
            }
        }
        assert_eq!(checked, AWKWARD.len() * 2 * 2 * 4 * 2);
        let empty = ListPage::default();
        let v2 = ListObjectsV2Input {
            bucket: "b".to_owned(),
            ..Default::default()
        };
        assert_eq!(
            ours(v2_document(&v2, false, "", &empty).expect("renders")),
            s3s_xml(&v2_dto(&v2, "", &empty))
        );
    }

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
