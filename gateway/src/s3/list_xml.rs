//! ListObjects (v1), ListObjectsV2 and ListObjectVersions answers
//! written straight into bytes. s3s serializes a DTO through quick-xml with one event per
//! element and formats each LastModified with `time`'s generic
//! formatter: with building the DTO, that was half the CPU of a page of
//! 1,000 keys (docs/benchmarks.md, "Profiles"). The handlers write the
//! same document here, byte for byte (the tests compare it with s3s's
//! serialization of the DTO), hand s3s an empty output and put the
//! document in the response's extensions, and `http_server` swaps it in
//! for s3s's body ([`PrerenderedBody::swap_into`]). s3s still parses the
//! request, checks the signature and access, and writes every error.
//!
//! ListObjectVersions is written here for its order as well: S3 gives a
//! page's versions and delete markers as one sequence, `<Version>` and
//! `<DeleteMarker>` interleaved in key order, newest first within a key,
//! and clients that read the document in order (the AWS SDK for Java
//! 1.x, minio-go) take it so; s3s's DTO keeps the two in separate lists
//! and writes all markers before all versions.

use crate::xml_text::escape_into;
use arbor_meta::records::{ListEntry, ListPage, ListedVersion, VersionListEntry, VersionPage};
use bytes::Bytes;
use s3s::S3Response;

use super::bucket;

/// A response body the handler wrote itself, in the response's
/// extensions, to be sent instead of s3s's serialization of the output.
#[derive(Clone, Debug)]
pub struct PrerenderedBody(pub Bytes);

impl PrerenderedBody {
    /// Puts a prerendered body in place of the one s3s wrote.
    pub fn swap_into(response: &mut http::Response<s3s::Body>) {
        if let Some(PrerenderedBody(bytes)) = response.extensions_mut().remove::<PrerenderedBody>()
        {
            // hyper writes the length of the body it is given.
            response.headers_mut().remove(http::header::CONTENT_LENGTH);
            *response.body_mut() = s3s::Body::from(bytes);
        }
    }
}

/// What s3s writes before the root element.
const DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
/// The namespace of S3's documents.
const NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// The root of a ListObjects (v1 and v2) answer.
const OBJECTS_ROOT: &str = "ListBucketResult";
/// The root of a ListObjectVersions answer.
const VERSIONS_ROOT: &str = "ListVersionsResult";
/// Bytes of one `<Contents>` of a short key without its owner, to size
/// the buffer once.
const CONTENTS_BYTES_GUESS: usize = 256;

/// A `ListBucketResult` (or `ListVersionsResult`) document being written,
/// elements in the order the caller writes them: for v1 and v2 the order
/// s3s's DTO serialization writes them.
pub struct ListXml {
    /// The root element, closed by [`ListXml::into_response`].
    root: &'static str,
    /// UTF-8 (every piece written is a `&str` or ASCII), kept as bytes so
    /// that digits and timestamps go in without a UTF-8 check each.
    out: Vec<u8>,
    url: bool,
    timestamps: Timestamps,
}

impl ListXml {
    /// `url`: keys, prefixes and the other echoed names are
    /// percent-encoded (`encoding-type=url`).
    pub fn new(entries: usize, url: bool) -> ListXml {
        ListXml::with_root(OBJECTS_ROOT, entries, url)
    }

    /// A `ListVersionsResult` document, for ListObjectVersions.
    pub fn versions(entries: usize, url: bool) -> ListXml {
        ListXml::with_root(VERSIONS_ROOT, entries, url)
    }

    fn with_root(root: &'static str, entries: usize, url: bool) -> ListXml {
        let mut out = Vec::with_capacity(1024 + entries * CONTENTS_BYTES_GUESS);
        out.extend_from_slice(DECLARATION.as_bytes());
        for piece in ["<", root, " xmlns=\"", NAMESPACE, "\">"] {
            out.extend_from_slice(piece.as_bytes());
        }
        ListXml {
            root,
            out,
            url,
            timestamps: Timestamps::default(),
        }
    }

    /// `<name>value</name>`, the value escaped as it is.
    pub fn text(&mut self, name: &str, value: &str) {
        self.open(name);
        escape_into(&mut self.out, value);
        self.close(name);
    }

    /// `<name>value</name>`, the value percent-encoded first when the
    /// listing is URL-encoded.
    pub fn name(&mut self, name: &str, value: &str) {
        self.open(name);
        self.encoded(value);
        self.close(name);
    }

    pub fn number(&mut self, name: &str, value: i64) {
        self.open(name);
        if value < 0 {
            self.out.push(b'-');
        }
        push_digits(&mut self.out, value.unsigned_abs(), 1);
        self.close(name);
    }

    pub fn boolean(&mut self, name: &str, value: bool) {
        self.open(name);
        self.push(if value { "true" } else { "false" });
        self.close(name);
    }

    /// Every object of the page as `<Contents>`, then every common prefix
    /// as `<CommonPrefixes>`.
    pub fn entries(&mut self, page: &ListPage, fetch_owner: bool) {
        let owner = fetch_owner.then(bucket::owner);
        for entry in &page.entries {
            let ListEntry::Object(object) = entry else {
                continue;
            };
            // Adjacent tags go as one literal each: a page writes a
            // thousand of these.
            self.push("<Contents><ETag>\"");
            // Written raw, as s3s writes an ETag: ours are hex digits.
            self.push(&object.etag);
            self.push("\"</ETag><Key>");
            self.encoded(&object.key);
            self.push("</Key><LastModified>");
            self.timestamps.push(&mut self.out, object.last_modified_ms);
            self.push("</LastModified>");
            if let Some(owner) = &owner {
                self.owner(owner);
            }
            self.push("<Size>");
            // s3s's Size is an i64.
            push_digits(&mut self.out, object.size.min(i64::MAX as u64), 1);
            self.push("</Size><StorageClass>");
            let class = object.storage_class.as_deref().unwrap_or("STANDARD");
            escape_into(&mut self.out, class);
            self.push("</StorageClass></Contents>");
        }
        for entry in &page.entries {
            if let ListEntry::CommonPrefix(prefix) = entry {
                self.push("<CommonPrefixes>");
                self.name("Prefix", prefix);
                self.push("</CommonPrefixes>");
            }
        }
    }

    /// Every version and delete marker of the page as `<Version>` and
    /// `<DeleteMarker>`, in the page's order, then every common prefix as
    /// `<CommonPrefixes>`: what S3 writes, its elements in the order of
    /// S3's documented example.
    pub fn version_entries(&mut self, page: &VersionPage) {
        let owner = bucket::owner();
        for entry in &page.entries {
            let VersionListEntry::Version(version) = entry else {
                continue;
            };
            let element = if version.delete_marker {
                "DeleteMarker"
            } else {
                "Version"
            };
            self.open(element);
            self.version_identity(version);
            if !version.delete_marker {
                self.push("<ETag>\"");
                // Written raw, as s3s writes an ETag: ours are hex digits.
                self.push(&version.etag);
                self.push("\"</ETag><Size>");
                push_digits(&mut self.out, version.size.min(i64::MAX as u64), 1);
                self.push("</Size><StorageClass>");
                let class = version.storage_class.as_deref().unwrap_or("STANDARD");
                escape_into(&mut self.out, class);
                self.push("</StorageClass>");
            }
            self.owner(&owner);
            self.close(element);
        }
        for entry in &page.entries {
            if let VersionListEntry::CommonPrefix(prefix) = entry {
                self.push("<CommonPrefixes>");
                self.name("Prefix", prefix);
                self.push("</CommonPrefixes>");
            }
        }
    }

    /// The elements a version and a delete marker both have: `Key`,
    /// `VersionId`, `IsLatest` and `LastModified`.
    fn version_identity(&mut self, version: &ListedVersion) {
        self.push("<Key>");
        self.encoded(&version.key);
        self.push("</Key><VersionId>");
        escape_into(&mut self.out, &version.version_id.to_string());
        self.push("</VersionId>");
        self.boolean("IsLatest", version.is_latest);
        self.push("<LastModified>");
        self.timestamps
            .push(&mut self.out, version.last_modified_ms);
        self.push("</LastModified>");
    }

    fn owner(&mut self, owner: &s3s::dto::Owner) {
        self.open("Owner");
        if let Some(display_name) = &owner.display_name {
            self.text("DisplayName", display_name);
        }
        if let Some(id) = &owner.id {
            self.text("ID", id);
        }
        self.close("Owner");
    }

    /// The finished document in the response's extensions, with `output`
    /// (its default: s3s writes an empty element in its place) as what
    /// s3s serializes.
    pub fn into_response<T>(mut self, output: T) -> S3Response<T> {
        self.close(self.root);
        let mut response = S3Response::new(output);
        response
            .extensions
            .insert(PrerenderedBody(Bytes::from(self.out)));
        response
    }

    fn push(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
    }

    fn open(&mut self, name: &str) {
        self.out.push(b'<');
        self.push(name);
        self.out.push(b'>');
    }

    fn close(&mut self, name: &str) {
        self.push("</");
        self.push(name);
        self.out.push(b'>');
    }

    /// `value` percent-encoded when the listing is URL-encoded, escaped
    /// otherwise (percent-encoding leaves nothing to escape).
    fn encoded(&mut self, value: &str) {
        if self.url {
            percent_encode_into(&mut self.out, value);
        } else {
            escape_into(&mut self.out, value);
        }
    }
}

/// `encoding-type=url`: `value` with everything but unreserved characters
/// and `/` percent-encoded, as S3 does.
pub(super) fn percent_encode_into(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    }
}

/// Writes timestamps as S3 does, remembering the last one's date: the
/// keys of a page were mostly written on a few days, and the date is most
/// of the work.
#[derive(Default)]
struct Timestamps {
    /// A day number and its text, `YYYY-MM-DD`.
    date: Option<(i64, [u8; 10])>,
}

impl Timestamps {
    /// Milliseconds since the Unix epoch as S3's `2006-02-03T16:45:09.000Z`
    /// (UTC, three fractional digits), what s3s writes for a timestamp.
    /// Before the epoch is the epoch, as `time::timestamp` makes it; after
    /// year 9999 is the last millisecond of it.
    fn push(&mut self, out: &mut Vec<u8>, ms: i64) {
        const LAST_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        let ms = ms.clamp(0, LAST_MS);
        let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
        let date = match self.date {
            Some((day_number, date)) if day_number == days => date,
            _ => {
                let (year, month, day) = arbor_meta::records::object::civil_from_days(days);
                // Within their widths: the clamp keeps the year to four
                // digits.
                let mut date = *b"0000-00-00";
                put_digits(&mut date[0..4], year.unsigned_abs());
                put_digits(&mut date[5..7], month.unsigned_abs());
                put_digits(&mut date[8..10], day.unsigned_abs());
                self.date = Some((days, date));
                date
            }
        };
        let seconds = ms_of_day / 1000;
        // Always these 14 bytes, written in place: a page writes a
        // thousand of them.
        let mut time = *b"T00:00:00.000Z";
        for (range, value) in [
            (1..3, seconds / 3600),
            (4..6, seconds / 60 % 60),
            (7..9, seconds % 60),
            (10..13, ms_of_day % 1000),
        ] {
            put_digits(&mut time[range], value.unsigned_abs());
        }
        out.extend_from_slice(&date);
        out.extend_from_slice(&time);
    }
}

/// The last `slot.len()` decimal digits of `value` into `slot`,
/// zero-padded.
fn put_digits(slot: &mut [u8], mut value: u64) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `value` in decimal, zero-padded to at least `width` digits, without
/// `core::fmt` (a listing writes thousands of numbers per page).
fn push_digits(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut count = 1;
    let mut rest = value / 10;
    while rest > 0 {
        count += 1;
        rest /= 10;
    }
    let start = digits.len() - count.max(width).min(digits.len());
    put_digits(&mut digits[start..], value);
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    use s3s::dto::TimestampFormat;

    fn s3s_timestamp(ms: i64) -> String {
        let mut buf = Vec::new();
        super::super::time::timestamp(ms)
            .format(TimestampFormat::DateTime, &mut buf)
            .expect("formats");
        String::from_utf8(buf).expect("ascii")
    }

    fn ours(ms: i64) -> String {
        ours_with(&mut Timestamps::default(), ms)
    }

    fn ours_with(timestamps: &mut Timestamps, ms: i64) -> String {
        let mut out = Vec::new();
        timestamps.push(&mut out, ms);
        String::from_utf8(out).expect("ascii")
    }

    fn listed(key: &str, position: u32, latest: bool, marker: bool) -> VersionListEntry {
        VersionListEntry::Version(ListedVersion {
            key: key.to_owned(),
            version_id: arbor_meta::records::VersionId::At {
                generation: 1,
                position,
            },
            is_latest: latest,
            delete_marker: marker,
            size: 5,
            etag: "e".into(),
            last_modified_ms: 1_000,
            storage_class: None,
        })
    }

    #[test]
    fn versions_and_delete_markers_are_one_sequence_in_key_order() {
        let page = VersionPage {
            entries: vec![
                listed("a&b", 3, true, true),
                listed("a&b", 2, false, false),
                VersionListEntry::CommonPrefix("d/".into()),
                listed("e", 1, true, false),
            ],
            is_truncated: false,
        };
        let mut xml = ListXml::versions(page.entries.len(), false);
        xml.version_entries(&page);
        let document = String::from_utf8(xml.out).expect("utf-8");
        let owner = "<Owner><DisplayName>arbor</DisplayName><ID>arbor</ID></Owner>";
        let at = "<LastModified>1970-01-01T00:00:01.000Z</LastModified>";
        let body = "<ETag>\"e\"</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass>";
        let expected = [
            r#"<?xml version="1.0" encoding="UTF-8"?><ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#.to_owned(),
            format!("<DeleteMarker><Key>a&amp;b</Key><VersionId>000000000000000100000003</VersionId><IsLatest>true</IsLatest>{at}{owner}</DeleteMarker>"),
            format!("<Version><Key>a&amp;b</Key><VersionId>000000000000000100000002</VersionId><IsLatest>false</IsLatest>{at}{body}{owner}</Version>"),
            format!("<Version><Key>e</Key><VersionId>000000000000000100000001</VersionId><IsLatest>true</IsLatest>{at}{body}{owner}</Version>"),
            "<CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes>".to_owned(),
        ]
        .concat();
        assert_eq!(document, expected);

        let mut xml = ListXml::versions(1, true);
        xml.version_entries(&VersionPage {
            entries: vec![listed("a b", 1, true, true)],
            is_truncated: false,
        });
        let response = xml.into_response(());
        let PrerenderedBody(bytes) = response.extensions.get().cloned().expect("prerendered");
        let document = String::from_utf8(bytes.to_vec()).expect("utf-8");
        assert!(document.contains("<Key>a%20b</Key>"), "{document}");
        assert!(
            document.ends_with("</DeleteMarker></ListVersionsResult>"),
            "{document}"
        );
    }

    #[test]
    fn numbers_are_written_as_display_writes_them() {
        for value in [
            0,
            1,
            9,
            10,
            99,
            100,
            4096,
            1_000_003,
            -1,
            -10,
            i64::MAX,
            i64::MIN,
        ] {
            let mut xml = ListXml::new(0, false);
            xml.number("N", value);
            assert!(
                xml.out.ends_with(format!("<N>{value}</N>").as_bytes()),
                "{value}"
            );
        }
        let mut out = Vec::new();
        push_digits(&mut out, 7, 3);
        push_digits(&mut out, 12_345, 3);
        push_digits(&mut out, 0, 1);
        assert_eq!(out, b"007123450");
    }

    #[test]
    fn timestamps_match_s3s() {
        let mut ms: i64 = 0;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let fixed = [
            0,
            1,
            999,
            86_399_999,
            86_400_000,
            951_782_400_000,   // 2000-02-29
            951_868_799_999,   // 2000-02-29 23:59:59.999
            4_107_542_400_000, // 2100-03-01
            1_796_540_943_074,
            253_402_300_799_999,
        ];
        for ms in fixed {
            assert_eq!(ours(ms), s3s_timestamp(ms), "{ms}");
        }
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ms = (ms + i64::try_from(x % 20_000_000_000_000).expect("fits")) % 253_402_300_800_000;
            assert_eq!(ours(ms), s3s_timestamp(ms), "{ms}");
        }
        assert_eq!(ours(-5), s3s_timestamp(-5));
        assert_eq!(ours(i64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn a_remembered_date_is_used_on_its_own_day_only() {
        const DAY: i64 = 86_400_000;
        let mut timestamps = Timestamps::default();
        let midnight = 1_796_515_200_000; // 2026-12-06T00:00:00.000Z
        for ms in [
            midnight + 5,
            midnight + DAY - 1,
            midnight + DAY,
            midnight + DAY + 1,
            midnight - 1,
            midnight,
            midnight + 7 * DAY + 3_723_004,
            -5,
            0,
            DAY,
            253_402_300_799_999,
            253_402_300_799_999 - DAY,
            midnight + 12,
        ] {
            assert_eq!(ours_with(&mut timestamps, ms), s3s_timestamp(ms), "{ms}");
        }
        // Past year 9999 (where s3s's conversion overflows): the last
        // millisecond, on the day remembered from it.
        assert_eq!(
            ours_with(&mut timestamps, i64::MAX),
            "9999-12-31T23:59:59.999Z"
        );
    }
}
