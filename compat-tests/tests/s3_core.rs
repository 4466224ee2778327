//! The S3 API core through aws-sdk-s3 against the real binary:
//! conditions, ranges, checksums, copy, multi-delete, ACLs, versioning
//! answers, listing parameters, server-side encryption refused, settings
//! Arbor does not have read as never set — and the error codes of each.

mod common;

use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, Delete, EncodingType,
    MetadataDirective, ObjectAttributes, ObjectCannedAcl, ObjectIdentifier, ObjectOwnership,
    OwnershipControls, OwnershipControlsRule, Payer, Permission, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging,
};

use arbor_compat_tests::{ArborServer, raw_request};
use common::{bytes, client, code_of, md5_hex};

const CHUNK_SIZE: &str = "1048576";

struct Fixture {
    server: ArborServer,
    s3: aws_sdk_s3::Client,
    _data: tempfile::TempDir,
}

async fn fixture(bucket: &str) -> Fixture {
    let data = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data.path(), &["--chunk-size", CHUNK_SIZE, "--no-fsync"])
        .expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
    Fixture {
        server,
        s3,
        _data: data,
    }
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) -> String {
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await;
    out.unwrap_or_else(|e| panic!("put {key}: {e:?}"))
        .e_tag()
        .expect("etag")
        .to_owned()
}

async fn read(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

fn status<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> Option<u16>
where
    R: HasStatus + std::fmt::Debug,
{
    e.raw_response().map(HasStatus::status_code)
}

/// The element `name` of an error's body: what S3 names beside the
/// message (a 412's `<Condition>`, which s3fs reads; a NoSuchKey's
/// `<Key>`). The private header that carries them inside the gateway
/// never shows.
fn error_element<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    name: &str,
) -> Option<String> {
    let raw = e.raw_response()?;
    assert!(raw.headers().get("x-arbor-error-element").is_none());
    let body = std::str::from_utf8(raw.body().bytes()?).ok()?;
    let start = body.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + body.get(start..)?.find(&format!("</{name}>"))?;
    body.get(start..end).map(str::to_owned)
}

fn failed_condition<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<String> {
    error_element(e, "Condition")
}

trait HasStatus {
    fn status_code(&self) -> u16;
}
impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_reads_ranges_and_overrides() {
    let f = fixture("reads").await;
    let s3 = &f.s3;
    let body = bytes(3 * 1024 * 1024 + 5, 7);
    let etag = put(s3, "reads", "big", &body).await;

    // If-Match / If-None-Match / dates.
    let e = s3
        .get_object()
        .bucket("reads")
        .key("big")
        .if_match("\"nope\"")
        .send()
        .await
        .expect_err("412");
    assert_eq!(e.code(), Some("PreconditionFailed"));
    assert_eq!(failed_condition(&e).as_deref(), Some("If-Match"));
    s3.get_object()
        .bucket("reads")
        .key("big")
        .if_match(&etag)
        .send()
        .await
        .expect("if-match ok");
    let e = s3
        .get_object()
        .bucket("reads")
        .key("big")
        .if_none_match(&etag)
        .send()
        .await
        .expect_err("304");
    assert_eq!(status(&e), Some(304));
    let e = s3
        .head_object()
        .bucket("reads")
        .key("big")
        .if_none_match(&etag)
        .send()
        .await
        .expect_err("304");
    assert_eq!(status(&e), Some(304));
    let future = DateTime::from_secs(4_000_000_000);
    let past = DateTime::from_secs(1_000_000_000);
    let now = DateTime::from(std::time::SystemTime::now());
    let e = s3
        .get_object()
        .bucket("reads")
        .key("big")
        .if_modified_since(now)
        .send()
        .await
        .expect_err("304");
    assert_eq!(status(&e), Some(304));
    // A date in the future is no date (RFC 2616 section 14.25).
    s3.get_object()
        .bucket("reads")
        .key("big")
        .if_modified_since(future)
        .send()
        .await
        .expect("a future If-Modified-Since is ignored");
    let e = s3
        .get_object()
        .bucket("reads")
        .key("big")
        .if_unmodified_since(past)
        .send()
        .await
        .expect_err("412");
    assert_eq!(e.code(), Some("PreconditionFailed"));
    // If-Match true wins over If-Unmodified-Since false (RFC 7232, as S3).
    s3.get_object()
        .bucket("reads")
        .key("big")
        .if_match(&etag)
        .if_unmodified_since(past)
        .send()
        .await
        .expect("200");

    // Ranges.
    for (range, expected) in [
        ("bytes=0-0", &body[..1]),
        ("bytes=1048570-1048580", &body[1_048_570..1_048_581]),
        ("bytes=3145000-", &body[3_145_000..]),
        ("bytes=-7", &body[body.len() - 7..]),
        ("bytes=0-99999999", &body[..]),
    ] {
        let out = s3
            .get_object()
            .bucket("reads")
            .key("big")
            .range(range)
            .send()
            .await
            .expect("range");
        assert_eq!(out.content_length(), Some(expected.len() as i64), "{range}");
        let got = out.body.collect().await.expect("body").into_bytes();
        assert_eq!(&got[..], expected, "{range}");
    }
    let e = s3
        .get_object()
        .bucket("reads")
        .key("big")
        .range("bytes=99999999-")
        .send()
        .await
        .expect_err("416");
    assert_eq!(e.code(), Some("InvalidRange"));
    assert_eq!(status(&e), Some(416));

    // partNumber on an object uploaded in one piece.
    let out = s3
        .get_object()
        .bucket("reads")
        .key("big")
        .part_number(1)
        .send()
        .await
        .expect("part 1");
    // A ranged read of the whole object; no part count, as it has none.
    assert_eq!(out.parts_count(), None);
    assert_eq!(out.content_length(), Some(body.len() as i64));
    let whole = format!("bytes 0-{}/{}", body.len() - 1, body.len());
    assert_eq!(out.content_range(), Some(whole.as_str()));
    // An empty object's one part has no byte range to name.
    put(s3, "reads", "empty", b"").await;
    let out = s3
        .get_object()
        .bucket("reads")
        .key("empty")
        .part_number(1)
        .send()
        .await
        .expect("empty part 1");
    assert_eq!((out.content_length(), out.content_range()), (Some(0), None));
    let e = s3
        .get_object()
        .bucket("reads")
        .key("big")
        .part_number(2)
        .send()
        .await
        .expect_err("part 2");
    assert_eq!(e.code(), Some("InvalidPartNumber"));

    // response-* overrides.
    let out = s3
        .get_object()
        .bucket("reads")
        .key("big")
        .response_content_type("text/x-override")
        .response_content_disposition("attachment; filename=\"x.bin\"")
        .response_cache_control("no-store")
        .send()
        .await
        .expect("overrides");
    assert_eq!(out.content_type(), Some("text/x-override"));
    assert_eq!(
        out.content_disposition(),
        Some("attachment; filename=\"x.bin\"")
    );
    assert_eq!(out.cache_control(), Some("no-store"));
    // A signed request keeps its overrides when it also sends a header S3
    // ignores (a Range of two ranges: the whole object is answered).
    let out = s3
        .get_object()
        .bucket("reads")
        .key("big")
        .range("bytes=0-1,3-4")
        .response_content_disposition("attachment")
        .send()
        .await
        .expect("overrides beside an ignored Range");
    assert_eq!(out.content_disposition(), Some("attachment"));
    assert_eq!(out.content_length(), Some(body.len() as i64));
    // Part 1 of an object uploaded whole is the whole object: its
    // checksum is told as a whole GET's is.
    let checksum = |out: &aws_sdk_s3::operation::get_object::GetObjectOutput| {
        out.checksum_crc32().map(str::to_owned)
    };
    let whole = s3
        .get_object()
        .bucket("reads")
        .key("big")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("whole, checksum mode");
    let part = s3
        .get_object()
        .bucket("reads")
        .key("big")
        .part_number(1)
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("part 1, checksum mode");
    assert!(checksum(&whole).is_some(), "stored with the SDK's CRC32");
    assert_eq!(checksum(&part), checksum(&whole));
    // HEAD takes the same overrides.
    let out = s3
        .head_object()
        .bucket("reads")
        .key("big")
        .response_content_type("text/x-override")
        .response_cache_control("no-store")
        .send()
        .await
        .expect("HEAD overrides");
    assert_eq!(out.content_type(), Some("text/x-override"));
    assert_eq!(out.cache_control(), Some("no-store"));
    assert!(f.server.stop().expect("stop").success());
}

/// A 304 Not Modified carries the object's ETag and Last-Modified, and its
/// Cache-Control and Expires where set, as RFC 9110 requires, on GET and
/// HEAD, whichever condition made it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_modified_carries_the_validators() {
    let f = fixture("validators").await;
    let s3 = &f.s3;
    let expires = DateTime::from_secs(4_102_444_800); // 2100-01-01
    let put = s3
        .put_object()
        .bucket("validators")
        .key("cached")
        .cache_control("max-age=60")
        .expires(expires)
        .body(ByteStream::from_static(b"cached"))
        .send()
        .await
        .expect("put");
    let etag = put.e_tag().expect("etag").to_owned();
    put_plain(s3, "plain").await;
    let head = s3
        .head_object()
        .bucket("validators")
        .key("cached")
        .send()
        .await
        .expect("head");
    let last_modified = head
        .last_modified()
        .expect("last-modified")
        .fmt(aws_sdk_s3::primitives::DateTimeFormat::HttpDate)
        .expect("http date");
    let now = DateTime::from(std::time::SystemTime::now());
    let header = |e: &aws_sdk_s3::error::SdkError<_, aws_sdk_s3::config::http::HttpResponse>,
                  name: &str| {
        e.raw_response()
            .and_then(|r| r.headers().get(name))
            .map(str::to_owned)
    };
    for (what, get) in [
        (
            "GET If-None-Match",
            s3.get_object()
                .bucket("validators")
                .key("cached")
                .if_none_match(&etag)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.map_service_error(|_| ())),
        ),
        (
            "GET If-Modified-Since",
            s3.get_object()
                .bucket("validators")
                .key("cached")
                .if_modified_since(now)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.map_service_error(|_| ())),
        ),
        (
            "HEAD If-None-Match",
            s3.head_object()
                .bucket("validators")
                .key("cached")
                .if_none_match(&etag)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.map_service_error(|_| ())),
        ),
    ] {
        let e = get.expect_err(what);
        assert_eq!(status(&e), Some(304), "{what}");
        assert_eq!(header(&e, "etag").as_deref(), Some(etag.as_str()), "{what}");
        assert_eq!(
            header(&e, "last-modified").as_deref(),
            Some(last_modified.as_str()),
            "{what}"
        );
        assert_eq!(
            header(&e, "cache-control").as_deref(),
            Some("max-age=60"),
            "{what}"
        );
        assert_eq!(
            header(&e, "expires").as_deref(),
            Some("Fri, 01 Jan 2100 00:00:00 GMT"),
            "{what}"
        );
    }
    // Without Cache-Control and Expires, none are made up.
    let plain_etag = s3
        .head_object()
        .bucket("validators")
        .key("plain")
        .send()
        .await
        .expect("head")
        .e_tag()
        .expect("etag")
        .to_owned();
    let e = s3
        .get_object()
        .bucket("validators")
        .key("plain")
        .if_none_match(&plain_etag)
        .send()
        .await
        .expect_err("304");
    assert_eq!(status(&e), Some(304));
    let headers = e.raw_response().expect("response").headers();
    assert_eq!(headers.get("etag"), Some(plain_etag.as_str()));
    assert!(headers.get("last-modified").is_some());
    assert!(headers.get("cache-control").is_none());
    assert!(headers.get("expires").is_none());
    assert!(f.server.stop().expect("stop").success());
}

async fn put_plain(s3: &aws_sdk_s3::Client, key: &str) {
    s3.put_object()
        .bucket("validators")
        .key(key)
        .body(ByteStream::from_static(b"plain"))
        .send()
        .await
        .expect("put plain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_and_digests_are_verified_and_returned() {
    let f = fixture("sums").await;
    let s3 = &f.s3;
    let body = bytes(200_000, 3);
    for algorithm in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Crc64Nvme,
    ] {
        let key = format!("with-{}", algorithm.as_str());
        let out = s3
            .put_object()
            .bucket("sums")
            .key(&key)
            .checksum_algorithm(algorithm.clone())
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        let head = s3
            .head_object()
            .bucket("sums")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("head");
        let (sent, stored) = match algorithm {
            ChecksumAlgorithm::Crc32 => (out.checksum_crc32(), head.checksum_crc32()),
            ChecksumAlgorithm::Crc32C => (out.checksum_crc32_c(), head.checksum_crc32_c()),
            ChecksumAlgorithm::Sha256 => (out.checksum_sha256(), head.checksum_sha256()),
            ChecksumAlgorithm::Sha1 => (out.checksum_sha1(), head.checksum_sha1()),
            _ => (out.checksum_crc64_nvme(), head.checksum_crc64_nvme()),
        };
        assert!(sent.is_some(), "{key}: no checksum in the PUT response");
        assert_eq!(sent, stored, "{key}");
        let got = s3
            .get_object()
            .bucket("sums")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("get");
        let got = got
            .body
            .collect()
            .await
            .expect("validated body")
            .into_bytes();
        assert_eq!(&got[..], &body[..]);
    }
    // A wrong checksum sent as a header is refused and nothing is stored.
    let e = s3
        .put_object()
        .bucket("sums")
        .key("wrong-crc")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect_err("bad crc");
    assert_eq!(e.code(), Some("BadDigest"));
    let e = s3
        .head_object()
        .bucket("sums")
        .key("wrong-crc")
        .send()
        .await
        .expect_err("not stored");
    assert_eq!(status(&e), Some(404));
    // Content-MD5: wrong → BadDigest, malformed → InvalidDigest.
    let e = s3
        .put_object()
        .bucket("sums")
        .key("wrong-md5")
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(ByteStream::from_static(b"not empty"))
        .send()
        .await
        .expect_err("bad md5");
    assert_eq!(e.code(), Some("BadDigest"));
    let e = s3
        .put_object()
        .bucket("sums")
        .key("bad-md5")
        .content_md5("xyz")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("malformed md5");
    assert_eq!(e.code(), Some("InvalidDigest"));
    s3.put_object()
        .bucket("sums")
        .key("good-md5")
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(ByteStream::from_static(b""))
        .send()
        .await
        .expect("md5 of empty body");

    // CopyObject's x-amz-checksum-algorithm: the copy gets that checksum,
    // computed over the source's bytes when the source has another.
    let sha256 = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&body))
    };
    for (source, asked) in [
        ("with-CRC32", ChecksumAlgorithm::Sha256),
        ("with-SHA256", ChecksumAlgorithm::Sha256),
        ("good-md5", ChecksumAlgorithm::Crc32C),
    ] {
        let key = format!("copy-of-{source}");
        let out = s3
            .copy_object()
            .bucket("sums")
            .key(&key)
            .copy_source(format!("sums/{source}"))
            .checksum_algorithm(asked.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("copy {source}: {e:?}"));
        let result = out.copy_object_result().expect("result");
        let head = s3
            .head_object()
            .bucket("sums")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("head");
        if asked == ChecksumAlgorithm::Sha256 {
            assert_eq!(result.checksum_sha256(), Some(sha256.as_str()), "{source}");
            assert_eq!(head.checksum_sha256(), Some(sha256.as_str()), "{source}");
            assert_eq!(head.checksum_crc32(), None, "{source}: one checksum");
        } else {
            // CRC32C of the empty body.
            assert_eq!(result.checksum_crc32_c(), Some("AAAAAA=="), "{source}");
            assert_eq!(head.checksum_crc32_c(), Some("AAAAAA=="), "{source}");
        }
    }
    let e = s3
        .copy_object()
        .bucket("sums")
        .key("copy-md4")
        .copy_source("sums/good-md5")
        .customize()
        .mutate_request(|req| {
            req.headers_mut().insert("x-amz-checksum-algorithm", "MD4");
        })
        .send()
        .await
        .expect_err("MD4");
    assert_eq!(e.code(), Some("InvalidRequest"));
    assert!(f.server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes_copy_and_delete_many() {
    let f = fixture("writes").await;
    let s3 = &f.s3;
    let etag = put(s3, "writes", "k", b"first").await;

    // Conditional PUT.
    let e = s3
        .put_object()
        .bucket("writes")
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("exists");
    assert_eq!(e.code(), Some("PreconditionFailed"));
    assert_eq!(failed_condition(&e).as_deref(), Some("If-None-Match"));
    let e = s3
        .put_object()
        .bucket("writes")
        .key("k")
        .if_match("\"0123\"")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("etag differs");
    assert_eq!(e.code(), Some("PreconditionFailed"));
    assert_eq!(failed_condition(&e).as_deref(), Some("If-Match"));
    let e = s3
        .put_object()
        .bucket("writes")
        .key("absent")
        .if_match(&etag)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("missing");
    assert_eq!(e.code(), Some("NoSuchKey"));
    assert_eq!(error_element(&e, "Key").as_deref(), Some("absent"));
    s3.put_object()
        .bucket("writes")
        .key("k")
        .if_match(&etag)
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .expect("cas");
    s3.put_object()
        .bucket("writes")
        .key("new")
        .if_none_match("*")
        .body(ByteStream::from_static(b"n"))
        .send()
        .await
        .expect("create");
    assert_eq!(read(s3, "writes", "k").await, b"second");

    // CopyObject: chunked source, COPY keeps metadata, REPLACE sets it.
    let big = bytes(2 * 1024 * 1024 + 3, 9);
    s3.put_object()
        .bucket("writes")
        .key("src")
        .content_type("image/png")
        .metadata("colour", "green")
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .expect("put src");
    let out = s3
        .copy_object()
        .bucket("writes")
        .key("dst")
        .copy_source("writes/src")
        .send()
        .await
        .expect("copy");
    assert_eq!(
        out.copy_object_result().and_then(|r| r.e_tag()),
        Some(format!("\"{}\"", md5_hex(&big)).as_str())
    );
    assert_eq!(read(s3, "writes", "dst").await, big);
    let head = s3
        .head_object()
        .bucket("writes")
        .key("dst")
        .send()
        .await
        .expect("head dst");
    assert_eq!(head.content_type(), Some("image/png"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("colour"))
            .map(String::as_str),
        Some("green")
    );
    s3.copy_object()
        .bucket("writes")
        .key("dst2")
        .copy_source("writes/src")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/plain")
        .metadata("colour", "blue")
        .send()
        .await
        .expect("copy replace");
    let head = s3
        .head_object()
        .bucket("writes")
        .key("dst2")
        .send()
        .await
        .expect("head dst2");
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("colour"))
            .map(String::as_str),
        Some("blue")
    );
    // Deleting the source leaves the copies whole (they share its chunks).
    s3.delete_object()
        .bucket("writes")
        .key("src")
        .send()
        .await
        .expect("delete src");
    assert_eq!(read(s3, "writes", "dst").await, big);
    // Onto itself: refused without REPLACE, allowed with it (rclone's modtime update).
    let e = s3
        .copy_object()
        .bucket("writes")
        .key("dst")
        .copy_source("writes/dst")
        .send()
        .await;
    assert_eq!(e.expect_err("self copy").code(), Some("InvalidRequest"));
    s3.copy_object()
        .bucket("writes")
        .key("dst")
        .copy_source("writes/dst")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("mtime", "1700000000")
        .send()
        .await
        .expect("self copy with replace");
    assert_eq!(read(s3, "writes", "dst").await, big);
    // Copy-source conditions and missing sources.
    let e = s3
        .copy_object()
        .bucket("writes")
        .key("x")
        .copy_source("writes/dst")
        .copy_source_if_match("\"nope\"")
        .send()
        .await
        .expect_err("copy if-match");
    assert_eq!(e.code(), Some("PreconditionFailed"));
    assert_eq!(
        failed_condition(&e).as_deref(),
        Some("x-amz-copy-source-If-Match")
    );
    // A source modified since a date in the future: no condition, as S3
    // has it.
    s3.copy_object()
        .bucket("writes")
        .key("x")
        .copy_source("writes/dst")
        .copy_source_if_modified_since(DateTime::from_secs(4_000_000_000))
        .send()
        .await
        .expect("a future date is ignored");
    s3.delete_object()
        .bucket("writes")
        .key("x")
        .send()
        .await
        .expect("delete the copy");
    let e = s3
        .copy_object()
        .bucket("writes")
        .key("x")
        .copy_source("writes/missing")
        .send()
        .await;
    assert_eq!(e.expect_err("missing source").code(), Some("NoSuchKey"));
    let e = s3
        .copy_object()
        .bucket("writes")
        .key("x")
        .copy_source("nobucket/k")
        .send()
        .await
        .expect_err("missing source bucket");
    assert_eq!(e.code(), Some("NoSuchBucket"));
    assert_eq!(error_element(&e, "BucketName").as_deref(), Some("nobucket"));

    // DeleteObjects: missing keys count as deleted; Quiet reports nothing.
    let ids = |keys: &[&str]| {
        keys.iter()
            .map(|k| ObjectIdentifier::builder().key(*k).build().expect("id"))
            .collect::<Vec<_>>()
    };
    let out = s3
        .delete_objects()
        .bucket("writes")
        .delete(
            Delete::builder()
                .set_objects(Some(ids(&["k", "new", "never-existed"])))
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("delete objects");
    let mut deleted: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    assert_eq!(deleted, ["k", "never-existed", "new"]);
    assert!(out.errors().is_empty());
    let out = s3
        .delete_objects()
        .bucket("writes")
        .delete(
            Delete::builder()
                .set_objects(Some(ids(&["dst", "dst2"])))
                .quiet(true)
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("quiet delete");
    assert!(out.deleted().is_empty());
    let listed = s3
        .list_objects_v2()
        .bucket("writes")
        .send()
        .await
        .expect("list");
    assert!(listed.contents().is_empty(), "{:?}", listed.contents());
    let too_many: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let e = s3
        .delete_objects()
        .bucket("writes")
        .delete(
            Delete::builder()
                .set_objects(Some(ids(&refs)))
                .build()
                .expect("delete"),
        )
        .send()
        .await;
    assert_eq!(e.expect_err("1001 keys").code(), Some("MalformedXML"));
    assert!(f.server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_deletes() {
    let f = fixture("cdel").await;
    let s3 = &f.s3;
    let etag = put(s3, "cdel", "k", b"one").await;

    // A stale ETag: 412, and the object stays.
    let e = s3
        .delete_object()
        .bucket("cdel")
        .key("k")
        .if_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .expect_err("etag differs");
    assert_eq!(e.code(), Some("PreconditionFailed"));
    assert_eq!(status(&e), Some(412));
    assert_eq!(failed_condition(&e).as_deref(), Some("If-Match"));
    assert_eq!(read(s3, "cdel", "k").await, b"one");
    // A missing key with If-Match: 404 NoSuchKey, as AWS answers.
    for condition in ["*", etag.as_str()] {
        let e = s3
            .delete_object()
            .bucket("cdel")
            .key("absent")
            .if_match(condition)
            .send()
            .await
            .expect_err("missing");
        assert_eq!(e.code(), Some("NoSuchKey"), "If-Match: {condition}");
        assert_eq!(status(&e), Some(404));
    }
    // The current ETag, then `*`: deleted.
    s3.delete_object()
        .bucket("cdel")
        .key("k")
        .if_match(&etag)
        .send()
        .await
        .expect("etag matches");
    assert!(
        s3.head_object()
            .bucket("cdel")
            .key("k")
            .send()
            .await
            .is_err()
    );
    put(s3, "cdel", "k", b"two").await;
    s3.delete_object()
        .bucket("cdel")
        .key("k")
        .if_match("*")
        .send()
        .await
        .expect("exists");
    assert!(
        s3.head_object()
            .bucket("cdel")
            .key("k")
            .send()
            .await
            .is_err()
    );

    // DeleteObjects: each entry's <ETag> on its own.
    let a = put(s3, "cdel", "a", b"a").await;
    put(s3, "cdel", "b", b"b").await;
    put(s3, "cdel", "c", b"c").await;
    let id = |key: &str, etag: Option<&str>| {
        ObjectIdentifier::builder()
            .key(key)
            .set_e_tag(etag.map(str::to_owned))
            .build()
            .expect("id")
    };
    let out = s3
        .delete_objects()
        .bucket("cdel")
        .delete(
            Delete::builder()
                .objects(id("a", Some(&a)))
                .objects(id("b", Some("\"0123456789abcdef0123456789abcdef\"")))
                .objects(id("c", None))
                .objects(id("gone", Some(&a)))
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("delete objects");
    let mut deleted: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    assert_eq!(deleted, ["a", "c"]);
    let mut errors: Vec<_> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap_or_default(), e.code().unwrap_or_default()))
        .collect();
    errors.sort();
    assert_eq!(errors, [("b", "PreconditionFailed"), ("gone", "NoSuchKey")]);
    assert_eq!(read(s3, "cdel", "b").await, b"b");
    assert!(f.server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_versioning_and_listing_parameters() {
    let f = fixture("misc").await;
    let s3 = &f.s3;
    put(s3, "misc", "z z+%", b"1").await;
    put(s3, "misc", "dir/a", b"2").await;
    put(s3, "misc", "dir/b", b"3").await;

    // ACLs: the owner has FULL_CONTROL; a canned ACL adds its group's
    // grants (the public-read behaviour itself: tests/acl.rs).
    let acl = s3
        .get_bucket_acl()
        .bucket("misc")
        .send()
        .await
        .expect("bucket acl");
    assert_eq!(acl.grants().len(), 1);
    assert_eq!(acl.grants()[0].permission(), Some(&Permission::FullControl));
    let acl = s3
        .get_object_acl()
        .bucket("misc")
        .key("dir/a")
        .send()
        .await
        .expect("object acl");
    assert_eq!(acl.grants().len(), 1);
    assert_eq!(acl.grants()[0].permission(), Some(&Permission::FullControl));
    s3.put_object()
        .bucket("misc")
        .key("p")
        .acl(ObjectCannedAcl::Private)
        .body(ByteStream::from_static(b"p"))
        .send()
        .await
        .expect("private");
    s3.put_object()
        .bucket("misc")
        .key("q")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"q"))
        .send()
        .await
        .expect("public-read");
    let acl = s3
        .get_object_acl()
        .bucket("misc")
        .key("q")
        .send()
        .await
        .expect("object acl");
    assert_eq!(acl.grants().len(), 2);
    assert_eq!(acl.grants()[1].permission(), Some(&Permission::Read));
    s3.delete_object()
        .bucket("misc")
        .key("q")
        .send()
        .await
        .expect("delete q");
    let e = s3
        .put_object()
        .bucket("misc")
        .key("r")
        .acl(ObjectCannedAcl::AwsExecRead)
        .body(ByteStream::from_static(b"r"))
        .send()
        .await
        .expect_err("aws-exec-read");
    assert_eq!(e.code(), Some("NotImplemented"));
    let e = s3
        .head_object()
        .bucket("misc")
        .key("r")
        .send()
        .await
        .expect_err("not stored");
    assert_eq!(status(&e), Some(404));

    // Versioning is off: status empty, every object has the null version.
    let v = s3
        .get_bucket_versioning()
        .bucket("misc")
        .send()
        .await
        .expect("versioning");
    assert!(v.status().is_none());
    let versions = s3
        .list_object_versions()
        .bucket("misc")
        .send()
        .await
        .expect("versions");
    let keys: Vec<_> = versions
        .versions()
        .iter()
        .map(|v| (v.key().unwrap_or(""), v.version_id().unwrap_or("")))
        .collect();
    assert_eq!(
        keys,
        [
            ("dir/a", "null"),
            ("dir/b", "null"),
            ("p", "null"),
            ("z z+%", "null")
        ]
    );

    // encoding-type=url, max-keys=0, start-after, v1 marker.
    let out = s3
        .list_objects_v2()
        .bucket("misc")
        .encoding_type(EncodingType::Url)
        .prefix("z")
        .send()
        .await
        .expect("url");
    assert_eq!(
        out.contents().first().and_then(|o| o.key()),
        Some("z%20z%2B%25")
    );
    let out = s3
        .list_objects_v2()
        .bucket("misc")
        .max_keys(0)
        .send()
        .await
        .expect("max-keys 0");
    assert!(out.contents().is_empty());
    assert_eq!(out.is_truncated(), Some(false));
    let out = s3
        .list_objects_v2()
        .bucket("misc")
        .start_after("dir/a")
        .send()
        .await
        .expect("start-after");
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["dir/b", "p", "z z+%"]);
    let out = s3
        .list_objects()
        .bucket("misc")
        .marker("dir/b")
        .max_keys(1)
        .send()
        .await
        .expect("v1");
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["p"]);
    assert_eq!(out.is_truncated(), Some(true));
    assert_eq!(out.next_marker(), Some("p"));
    let out = s3
        .list_objects_v2()
        .bucket("misc")
        .fetch_owner(true)
        .send()
        .await
        .expect("fetch-owner");
    assert!(out.contents().iter().all(|o| o.owner().is_some()));

    // ListBuckets pagination.
    s3.create_bucket()
        .bucket("misc2")
        .send()
        .await
        .expect("second bucket");
    let page = s3
        .list_buckets()
        .max_buckets(1)
        .send()
        .await
        .expect("page 1");
    assert_eq!(page.buckets().len(), 1);
    let token = page.continuation_token().expect("token").to_owned();
    let page = s3
        .list_buckets()
        .max_buckets(1)
        .continuation_token(token)
        .send()
        .await
        .expect("page 2");
    assert_eq!(
        page.buckets()
            .iter()
            .filter_map(|b| b.name())
            .collect::<Vec<_>>(),
        ["misc2"]
    );
    assert!(page.continuation_token().is_none());
    // Every bucket is in the deployment's region.
    for (region, expected) in [("us-east-1", 2), ("eu-west-1", 0)] {
        let page = s3
            .list_buckets()
            .bucket_region(region)
            .send()
            .await
            .expect("by region");
        assert_eq!(page.buckets().len(), expected, "{region}");
    }

    // Limits.
    let long_key = "k".repeat(1025);
    let e = s3
        .put_object()
        .bucket("misc")
        .key(&long_key)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(e.expect_err("long key").code(), Some("KeyTooLongError"));
    let e = s3
        .put_object()
        .bucket("misc")
        .key("meta")
        .metadata("big", "v".repeat(2100))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(
        e.expect_err("big metadata").code(),
        Some("MetadataTooLarge")
    );
    assert!(f.server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_work_until_they_expire() {
    use aws_sdk_s3::presigning::PresigningConfig;
    let f = fixture("signed").await;
    let s3 = &f.s3;
    put(s3, "signed", "file", b"presigned body").await;

    let get = s3
        .get_object()
        .bucket("signed")
        .key("file")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("config"))
        .await
        .expect("presign get");
    let target = get
        .uri()
        .strip_prefix(&f.server.endpoint)
        .expect("same endpoint")
        .to_owned();
    let response = raw_request(&f.server.endpoint, "GET", &target, &[], b"").expect("get");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"presigned body");

    let put_url = s3
        .put_object()
        .bucket("signed")
        .key("uploaded")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("config"))
        .await
        .expect("presign put");
    let target = put_url
        .uri()
        .strip_prefix(&f.server.endpoint)
        .expect("same endpoint")
        .to_owned();
    let response = raw_request(
        &f.server.endpoint,
        "PUT",
        &target,
        &[],
        b"via presigned put",
    )
    .expect("put");
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(read(s3, "signed", "uploaded").await, b"via presigned put");

    // A tampered signature and an expired URL are refused.
    // Same length, one hex digit changed: well-formed but wrong.
    let at = target.find("X-Amz-Signature=").expect("signature") + "X-Amz-Signature=".len();
    let flipped = if target.as_bytes()[at] == b'0' {
        "1"
    } else {
        "0"
    };
    let tampered = format!("{}{flipped}{}", &target[..at], &target[at + 1..]);
    let response =
        raw_request(&f.server.endpoint, "PUT", &tampered, &[], b"evil").expect("tampered");
    assert_eq!(response.status, 403);
    assert_eq!(
        response.error_code().as_deref(),
        Some("SignatureDoesNotMatch")
    );
    let short = s3
        .get_object()
        .bucket("signed")
        .key("file")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(1)).expect("config"))
        .await
        .expect("presign short");
    let target = short
        .uri()
        .strip_prefix(&f.server.endpoint)
        .expect("same endpoint")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let response = raw_request(&f.server.endpoint, "GET", &target, &[], b"").expect("expired");
    assert_eq!(response.status, 403);
    assert_eq!(response.error_code().as_deref(), Some("AccessDenied"));
    // Error bodies name the request id the header carries.
    let missing = s3
        .get_object()
        .bucket("signed")
        .key("missing")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("config"))
        .await
        .expect("presign missing");
    let target = missing
        .uri()
        .strip_prefix(&f.server.endpoint)
        .expect("same endpoint")
        .to_owned();
    let response = raw_request(&f.server.endpoint, "GET", &target, &[], b"").expect("missing");
    assert_eq!(response.status, 404);
    assert_eq!(response.error_code().as_deref(), Some("NoSuchKey"));
    let id = response
        .header("x-amz-request-id")
        .expect("request id")
        .to_owned();
    assert!(
        String::from_utf8_lossy(&response.body).contains(&format!("<RequestId>{id}</RequestId>"))
    );
    // Unsigned requests are refused; every response carries a request id.
    let response =
        raw_request(&f.server.endpoint, "GET", "/signed/file", &[], b"").expect("anonymous");
    assert_eq!(response.status, 403);
    assert_eq!(response.error_code().as_deref(), Some("AccessDenied"));
    assert!(
        response
            .header("x-amz-request-id")
            .is_some_and(|v| !v.is_empty())
    );
    assert_eq!(read(s3, "signed", "file").await, b"presigned body");
    assert!(f.server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_tags_are_stored_copied_and_replaced() {
    use aws_sdk_s3::types::{Tag, Tagging, TaggingDirective};
    let f = fixture("tags").await;
    let s3 = &f.s3;
    let out = s3
        .put_object()
        .bucket("tags")
        .key("t")
        .tagging("project=arbor&team=a%20b")
        .body(ByteStream::from_static(b"tagged"))
        .send()
        .await
        .expect("put with tags");
    let etag = out.e_tag().expect("etag").to_owned();
    let tags = |out: &aws_sdk_s3::operation::get_object_tagging::GetObjectTaggingOutput| {
        out.tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect::<Vec<_>>()
    };
    let got = s3
        .get_object_tagging()
        .bucket("tags")
        .key("t")
        .send()
        .await
        .expect("get tags");
    assert_eq!(
        tags(&got),
        [
            ("project".to_owned(), "arbor".to_owned()),
            ("team".to_owned(), "a b".to_owned())
        ]
    );
    let get = s3
        .get_object()
        .bucket("tags")
        .key("t")
        .send()
        .await
        .expect("get");
    assert_eq!(get.tag_count(), Some(2));
    let head = s3
        .head_object()
        .bucket("tags")
        .key("t")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.tag_count(),
        Some(2),
        "HEAD carries x-amz-tagging-count"
    );

    // Replacing tags keeps ETag and content.
    let tagging = Tagging::builder()
        .tag_set(
            Tag::builder()
                .key("only")
                .value("one")
                .build()
                .expect("tag"),
        )
        .build()
        .expect("tagging");
    s3.put_object_tagging()
        .bucket("tags")
        .key("t")
        .tagging(tagging)
        .send()
        .await
        .expect("put tags");
    let got = s3
        .get_object_tagging()
        .bucket("tags")
        .key("t")
        .send()
        .await
        .expect("get tags");
    assert_eq!(tags(&got), [("only".to_owned(), "one".to_owned())]);
    let head = s3
        .head_object()
        .bucket("tags")
        .key("t")
        .send()
        .await
        .expect("head");
    assert_eq!(head.e_tag(), Some(etag.as_str()));

    // Copies take the source's tags, or new ones with REPLACE.
    s3.copy_object()
        .bucket("tags")
        .key("c1")
        .copy_source("tags/t")
        .send()
        .await
        .expect("copy");
    let got = s3
        .get_object_tagging()
        .bucket("tags")
        .key("c1")
        .send()
        .await
        .expect("copy tags");
    assert_eq!(tags(&got), [("only".to_owned(), "one".to_owned())]);
    s3.copy_object()
        .bucket("tags")
        .key("c2")
        .copy_source("tags/t")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("x=y")
        .send()
        .await
        .expect("copy replace tags");
    let got = s3
        .get_object_tagging()
        .bucket("tags")
        .key("c2")
        .send()
        .await
        .expect("copy tags");
    assert_eq!(tags(&got), [("x".to_owned(), "y".to_owned())]);

    s3.delete_object_tagging()
        .bucket("tags")
        .key("t")
        .send()
        .await
        .expect("delete tags");
    let got = s3
        .get_object_tagging()
        .bucket("tags")
        .key("t")
        .send()
        .await
        .expect("no tags");
    assert!(got.tag_set().is_empty());

    // S3's limits: 10 tags, unique keys.
    let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
    let e = s3
        .put_object()
        .bucket("tags")
        .key("u")
        .tagging(eleven.join("&"))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(e.expect_err("11 tags").code(), Some("InvalidTag"));
    // ... AWS's characters and namespace, and a header read as a query.
    for (header, code) in [
        ("a%26b=v", "InvalidTag"),
        ("k=inv%26alid", "InvalidTag"),
        ("aws:stack=x", "InvalidTag"),
        ("k=%zz", "InvalidArgument"),
        ("k=1&k=2", "InvalidArgument"),
    ] {
        let e = s3
            .put_object()
            .bucket("tags")
            .key("u")
            .tagging(header)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        assert_eq!(e.expect_err(header).code(), Some(code), "{header}");
    }
    let odd = Tagging::builder()
        .tag_set(Tag::builder().key("a,b").value("v").build().expect("tag"))
        .build()
        .expect("tagging");
    let e = s3
        .put_object_tagging()
        .bucket("tags")
        .key("t")
        .tagging(odd)
        .send()
        .await;
    assert_eq!(e.expect_err("a,b").code(), Some("InvalidTag"));
    let e = s3.get_object().bucket("tags").key("u").send().await;
    assert_eq!(e.expect_err("nothing stored").code(), Some("NoSuchKey"));
    let e = s3
        .get_object_tagging()
        .bucket("tags")
        .key("missing")
        .send()
        .await;
    assert_eq!(e.expect_err("missing").code(), Some("NoSuchKey"));

    // A multipart upload's tags land on the completed object.
    let id = s3
        .create_multipart_upload()
        .bucket("tags")
        .key("mp")
        .tagging("stage=done")
        .send()
        .await
        .expect("create");
    let id = id.upload_id().expect("id").to_owned();
    let part = s3
        .upload_part()
        .bucket("tags")
        .key("mp")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"p"))
        .send()
        .await
        .expect("part");
    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().expect("etag"))
                .build(),
        )
        .build();
    s3.complete_multipart_upload()
        .bucket("tags")
        .key("mp")
        .upload_id(&id)
        .multipart_upload(parts)
        .send()
        .await
        .expect("complete");
    let got = s3
        .get_object_tagging()
        .bucket("tags")
        .key("mp")
        .send()
        .await
        .expect("mp tags");
    assert_eq!(tags(&got), [("stage".to_owned(), "done".to_owned())]);
    assert!(f.server.stop().expect("stop").success());
}

/// A PutObject body the test releases piece by piece.
struct HeldBody(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl http_body::Body for HeldBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|piece| piece.map(|b| Ok(http_body::Frame::data(b))))
    }
}

fn held_body(receiver: tokio::sync::mpsc::Receiver<bytes::Bytes>) -> ByteStream {
    ByteStream::new(aws_smithy_types::body::SdkBody::from_body_1_x(HeldBody(
        receiver,
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_broken_during_the_upload_is_a_conflict() {
    let f = fixture("race").await;
    let s3 = f.s3.clone();
    let etag = put(&s3, "race", "k", b"original").await;
    // A PUT conditioned on the current ETag starts streaming its body...
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let body = vec![7u8; 200_000];
    let racing = {
        let s3 = s3.clone();
        let etag = etag.clone();
        tokio::spawn(async move {
            s3.put_object()
                .bucket("race")
                .key("k")
                .if_match(etag)
                .content_length(200_000)
                .body(held_body(receiver))
                .send()
                .await
        })
    };
    sender
        .send(bytes::Bytes::from(body[..100_000].to_vec()))
        .await
        .expect("first half");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...another client replaces the object meanwhile...
    put(&s3, "race", "k", b"replaced meanwhile").await;
    sender
        .send(bytes::Bytes::from(body[100_000..].to_vec()))
        .await
        .expect("second half");
    drop(sender);
    // ...so the conditional PUT cannot commit: 409, and nothing of it shows.
    let e = racing.await.expect("join").expect_err("conflict");
    assert_eq!(e.code(), Some("ConditionalRequestConflict"));
    assert_eq!(status(&e), Some(409));
    assert_eq!(read(&s3, "race", "k").await, b"replaced meanwhile");
    assert!(f.server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_tagging_and_ownership_controls() {
    let f = fixture("btags").await;
    let s3 = &f.s3;
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().expect("tag");
    let tagging = |tags: Vec<Tag>| {
        Tagging::builder()
            .set_tag_set(Some(tags))
            .build()
            .expect("tagging")
    };
    let e = s3
        .get_bucket_tagging()
        .bucket("btags")
        .send()
        .await
        .expect_err("no tags yet");
    assert_eq!(e.code(), Some("NoSuchTagSet"));
    assert_eq!(status(&e), Some(404));
    s3.put_bucket_tagging()
        .bucket("btags")
        .tagging(tagging(vec![tag("team", "storage"), tag("env", "test")]))
        .send()
        .await
        .expect("put tags");
    let got = s3
        .get_bucket_tagging()
        .bucket("btags")
        .send()
        .await
        .expect("get tags");
    let mut pairs: Vec<_> = got.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    pairs.sort();
    assert_eq!(pairs, [("env", "test"), ("team", "storage")]);
    // AWS's limits: 50 tags, unique keys, key 128 and value 256
    // characters, no aws: keys.
    let too_many = (0..51).map(|i| tag(&format!("k{i}"), "v")).collect();
    for (what, tags) in [
        ("51 tags", too_many),
        ("duplicate", vec![tag("a", "1"), tag("a", "2")]),
        ("long key", vec![tag(&"k".repeat(129), "v")]),
        ("long value", vec![tag("k", &"v".repeat(257))]),
        ("aws: key", vec![tag("aws:cloudformation:stack", "v")]),
    ] {
        let e = s3
            .put_bucket_tagging()
            .bucket("btags")
            .tagging(tagging(tags))
            .send()
            .await
            .expect_err(what);
        assert_eq!(e.code(), Some("InvalidTag"), "{what}");
    }
    let fifty = (0..50).map(|i| tag(&format!("k{i}"), "v")).collect();
    s3.put_bucket_tagging()
        .bucket("btags")
        .tagging(tagging(fifty))
        .send()
        .await
        .expect("50 tags");
    s3.delete_bucket_tagging()
        .bucket("btags")
        .send()
        .await
        .expect("delete tags");
    let e = s3
        .get_bucket_tagging()
        .bucket("btags")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(e.code(), Some("NoSuchTagSet"));
    let e = s3
        .get_bucket_tagging()
        .bucket("absent-bucket")
        .send()
        .await
        .expect_err("no bucket");
    assert_eq!(e.code(), Some("NoSuchBucket"));

    // Tags go with their bucket.
    s3.put_bucket_tagging()
        .bucket("btags")
        .tagging(tagging(vec![tag("a", "1")]))
        .send()
        .await
        .expect("put tags");
    s3.delete_bucket()
        .bucket("btags")
        .send()
        .await
        .expect("delete bucket");
    s3.create_bucket()
        .bucket("btags")
        .send()
        .await
        .expect("recreate");
    let e = s3
        .get_bucket_tagging()
        .bucket("btags")
        .send()
        .await
        .expect_err("new bucket, no tags");
    assert_eq!(e.code(), Some("NoSuchTagSet"));

    // Ownership controls: BucketOwnerPreferred (ACLs enabled) until set.
    let ownership = |s3: &aws_sdk_s3::Client| {
        let s3 = s3.clone();
        async move {
            let controls = s3
                .get_bucket_ownership_controls()
                .bucket("btags")
                .send()
                .await
                .expect("get ownership controls");
            let rules = controls.ownership_controls().expect("controls").rules();
            assert_eq!(rules.len(), 1);
            rules[0].object_ownership().clone()
        }
    };
    assert_eq!(ownership(s3).await, ObjectOwnership::BucketOwnerPreferred);
    let controls_of = |ownership: ObjectOwnership| {
        OwnershipControls::builder()
            .rules(
                OwnershipControlsRule::builder()
                    .object_ownership(ownership)
                    .build()
                    .expect("rule"),
            )
            .build()
            .expect("controls")
    };
    for set in [
        ObjectOwnership::BucketOwnerEnforced,
        ObjectOwnership::ObjectWriter,
    ] {
        s3.put_bucket_ownership_controls()
            .bucket("btags")
            .ownership_controls(controls_of(set.clone()))
            .send()
            .await
            .expect("put ownership controls");
        assert_eq!(ownership(s3).await, set);
    }
    s3.delete_bucket_ownership_controls()
        .bucket("btags")
        .send()
        .await
        .expect("delete ownership controls");
    // Deleted: none left, as S3 answers.
    let e = s3
        .get_bucket_ownership_controls()
        .bucket("btags")
        .send()
        .await
        .expect_err("none left");
    assert_eq!(e.code(), Some("OwnershipControlsNotFoundError"));
    assert!(f.server.stop().expect("stop").success());
}

/// Base64 of a 256-bit SSE-C key and of its MD5, as the headers carry them.
fn customer_key() -> (String, String) {
    use base64::Engine;
    use md5::Digest;
    let key = [7u8; 32];
    let engine = base64::engine::general_purpose::STANDARD;
    (engine.encode(key), engine.encode(md5::Md5::digest(key)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_encryption_is_refused_not_faked() {
    let f = fixture("sse").await;
    let s3 = &f.s3;
    let (key, key_md5) = customer_key();
    put(s3, "sse", "plain", b"stored in the clear").await;

    // Every way of asking a write for encryption is refused, and nothing
    // is stored.
    let refused = |method: &str| ServerSideEncryption::from(method);
    for (method, expected) in [
        ("AES256", "NotImplemented"),
        ("aws:kms", "NotImplemented"),
        ("aws:kms:dsse", "NotImplemented"),
        ("rot13", "InvalidArgument"),
    ] {
        let result = s3
            .put_object()
            .bucket("sse")
            .key("k")
            .server_side_encryption(refused(method))
            .body(ByteStream::from_static(b"secret"))
            .send()
            .await;
        assert_eq!(code_of(result), Err(Some(expected.to_owned())), "{method}");
    }
    let result = s3
        .put_object()
        .bucket("sse")
        .key("k")
        .ssekms_key_id("some-key")
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await;
    assert_eq!(
        code_of(result),
        Err(Some("InvalidArgument".to_owned())),
        "a KMS key without aws:kms"
    );
    let result = s3
        .put_object()
        .bucket("sse")
        .key("k")
        .ssekms_encryption_context("e30=")
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await;
    assert_eq!(
        code_of(result),
        Err(Some("InvalidArgument".to_owned())),
        "a KMS context without aws:kms"
    );
    let result = s3
        .put_object()
        .bucket("sse")
        .key("k")
        .bucket_key_enabled(true)
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await;
    assert_eq!(code_of(result), Err(Some("NotImplemented".to_owned())));
    let result = s3
        .put_object()
        .bucket("sse")
        .key("k")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await;
    assert_eq!(code_of(result), Err(Some("NotImplemented".to_owned())));
    let result = s3
        .create_multipart_upload()
        .bucket("sse")
        .key("k")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await;
    assert_eq!(code_of(result), Err(Some("NotImplemented".to_owned())));
    let result = s3
        .copy_object()
        .bucket("sse")
        .key("k")
        .copy_source("sse/plain")
        .server_side_encryption(refused("AES256"))
        .send()
        .await;
    assert_eq!(code_of(result), Err(Some("NotImplemented".to_owned())));
    let result = s3
        .copy_object()
        .bucket("sse")
        .key("k")
        .copy_source("sse/plain")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await;
    assert_eq!(code_of(result), Err(Some("NotImplemented".to_owned())));
    let head = s3.head_object().bucket("sse").key("k").send().await;
    assert_eq!(
        head.as_ref().err().and_then(status),
        Some(404),
        "nothing stored: {head:?}"
    );
    let uploads = s3
        .list_multipart_uploads()
        .bucket("sse")
        .send()
        .await
        .expect("uploads");
    assert!(uploads.uploads().is_empty(), "{uploads:?}");

    // A customer's key for an object stored without one: 400, as S3; for
    // one that does not exist, still 404.
    let not_applicable = Err(Some("InvalidRequest".to_owned()));
    let result = s3
        .get_object()
        .bucket("sse")
        .key("missing")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await;
    assert_eq!(code_of(result), Err(Some("NoSuchKey".to_owned())));
    let result = s3
        .get_object_attributes()
        .bucket("sse")
        .key("plain")
        .object_attributes(ObjectAttributes::ObjectSize)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await;
    assert_eq!(code_of(result), not_applicable);
    let result = s3
        .get_object()
        .bucket("sse")
        .key("plain")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await;
    assert_eq!(code_of(result), not_applicable);
    let result = s3
        .head_object()
        .bucket("sse")
        .key("plain")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await;
    assert_eq!(result.as_ref().err().and_then(status), Some(400));
    let result = s3
        .copy_object()
        .bucket("sse")
        .key("copy")
        .copy_source("sse/plain")
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&key)
        .copy_source_sse_customer_key_md5(&key_md5)
        .send()
        .await;
    assert_eq!(code_of(result), not_applicable);
    let upload = s3
        .create_multipart_upload()
        .bucket("sse")
        .key("up")
        .send()
        .await
        .expect("create");
    let result = s3
        .upload_part()
        .bucket("sse")
        .key("up")
        .upload_id(upload.upload_id().expect("id"))
        .part_number(1)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await;
    assert_eq!(code_of(result), not_applicable);
    let upload_id = upload.upload_id().expect("id");
    let result = s3
        .upload_part_copy()
        .bucket("sse")
        .key("up")
        .upload_id(upload_id)
        .part_number(1)
        .copy_source("sse/plain")
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&key)
        .copy_source_sse_customer_key_md5(&key_md5)
        .send()
        .await;
    assert_eq!(code_of(result), not_applicable);
    let result = s3
        .list_parts()
        .bucket("sse")
        .key("up")
        .upload_id(upload_id)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await;
    assert_eq!(code_of(result), not_applicable);
    let part = s3
        .upload_part()
        .bucket("sse")
        .key("up")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .expect("part");
    let parts = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().expect("etag"))
                .build(),
        )
        .build();
    let result = s3
        .complete_multipart_upload()
        .bucket("sse")
        .key("up")
        .upload_id(upload_id)
        .multipart_upload(parts.clone())
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await;
    assert_eq!(code_of(result), not_applicable);
    s3.complete_multipart_upload()
        .bucket("sse")
        .key("up")
        .upload_id(upload_id)
        .multipart_upload(parts)
        .send()
        .await
        .expect("the refused completion left the upload as it was");
    assert_eq!(read(s3, "sse", "up").await, b"part");
    assert_eq!(read(s3, "sse", "plain").await, b"stored in the clear");
    // A read that names SSE-S3 or SSE-KMS: 400 InvalidArgument.
    for header in [
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id",
    ] {
        let result = s3
            .get_object()
            .bucket("sse")
            .key("plain")
            .customize()
            .mutate_request(move |req| {
                req.headers_mut().insert(header, "aws:kms");
            })
            .send()
            .await;
        assert_eq!(
            code_of(result),
            Err(Some("InvalidArgument".to_owned())),
            "{header}"
        );
    }
    assert!(f.server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_arbor_does_not_have_read_as_never_set() {
    let f = fixture("plain").await;
    let s3 = &f.s3;
    let code = |e: &dyn ProvideErrorMetadata| e.code().map(str::to_owned);

    let e = s3
        .get_bucket_encryption()
        .bucket("plain")
        .send()
        .await
        .expect_err("no default encryption");
    assert_eq!(
        (code(&e).as_deref(), status(&e)),
        (
            Some("ServerSideEncryptionConfigurationNotFoundError"),
            Some(404)
        )
    );
    let e = s3
        .get_bucket_website()
        .bucket("plain")
        .send()
        .await
        .expect_err("no website");
    assert_eq!(
        (code(&e).as_deref(), status(&e)),
        (Some("NoSuchWebsiteConfiguration"), Some(404))
    );
    let e = s3
        .get_bucket_replication()
        .bucket("plain")
        .send()
        .await
        .expect_err("no replication");
    assert_eq!(
        (code(&e).as_deref(), status(&e)),
        (Some("ReplicationConfigurationNotFoundError"), Some(404))
    );
    let logging = s3
        .get_bucket_logging()
        .bucket("plain")
        .send()
        .await
        .expect("logging");
    assert!(logging.logging_enabled().is_none(), "{logging:?}");
    let payment = s3
        .get_bucket_request_payment()
        .bucket("plain")
        .send()
        .await
        .expect("request payment");
    assert_eq!(payment.payer(), Some(&Payer::BucketOwner));
    let accelerate = s3
        .get_bucket_accelerate_configuration()
        .bucket("plain")
        .send()
        .await
        .expect("accelerate");
    assert_eq!(accelerate.status(), None);
    let notification = s3
        .get_bucket_notification_configuration()
        .bucket("plain")
        .send()
        .await
        .expect("notification");
    assert!(
        notification.topic_configurations().is_empty()
            && notification.queue_configurations().is_empty()
            && notification.lambda_function_configurations().is_empty(),
        "{notification:?}"
    );
    s3.delete_bucket_encryption()
        .bucket("plain")
        .send()
        .await
        .expect("nothing to delete");
    s3.delete_bucket_website()
        .bucket("plain")
        .send()
        .await
        .expect("nothing to delete");
    s3.delete_bucket_replication()
        .bucket("plain")
        .send()
        .await
        .expect("nothing to delete");

    // Setting one is still refused, and a missing bucket is missing.
    let e = s3
        .put_bucket_encryption()
        .bucket("plain")
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(ServerSideEncryption::Aes256)
                                .build()
                                .expect("default"),
                        )
                        .build(),
                )
                .build()
                .expect("configuration"),
        )
        .send()
        .await
        .expect_err("not settable");
    assert_eq!(code(&e).as_deref(), Some("NotImplemented"));
    let e = s3
        .get_bucket_encryption()
        .bucket("missing")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(code(&e).as_deref(), Some("NoSuchBucket"));
    let e = s3
        .get_bucket_logging()
        .bucket("missing")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(code(&e).as_deref(), Some("NoSuchBucket"));
    let e = s3
        .delete_bucket_website()
        .bucket("missing")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(code(&e).as_deref(), Some("NoSuchBucket"));
    assert!(f.server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn website_redirect_locations_are_kept_per_object() {
    let f = fixture("site").await;
    let s3 = &f.s3;
    let redirect_of = |key: &'static str| async move {
        let head = s3
            .head_object()
            .bucket("site")
            .key(key)
            .send()
            .await
            .expect("head");
        let got = s3.get_object().bucket("site").key(key).send().await;
        let got = got.expect("get");
        assert_eq!(
            got.website_redirect_location(),
            head.website_redirect_location()
        );
        assert!(
            head.metadata()
                .is_none_or(|m| !m.keys().any(|k| k.contains("redirect")))
        );
        head.website_redirect_location().map(str::to_owned)
    };
    s3.put_object()
        .bucket("site")
        .key("old.html")
        .website_redirect_location("/new.html")
        .metadata("kept", "yes")
        .body(ByteStream::from_static(b"moved"))
        .send()
        .await
        .expect("put");
    assert_eq!(redirect_of("old.html").await.as_deref(), Some("/new.html"));
    let head = s3
        .head_object()
        .bucket("site")
        .key("old.html")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("kept"))
            .map(String::as_str),
        Some("yes")
    );

    // What S3 takes: a path or an http(s) URL, up to 2 KB.
    for bad in ["new.html".to_owned(), format!("/{}", "x".repeat(2048))] {
        let e = s3
            .put_object()
            .bucket("site")
            .key("bad")
            .website_redirect_location(bad)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect_err("refused");
        assert_eq!(e.code(), Some("InvalidRedirectLocation"));
        assert_eq!(status(&e), Some(400));
    }
    // The name it is kept under is no client's to use.
    let e = s3
        .put_object()
        .bucket("site")
        .key("bad")
        .metadata("arbor-website-redirect-location", "/x")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("reserved");
    assert_eq!(e.code(), Some("InvalidArgument"));

    // A copy keeps the metadata but not the redirect, unless it names one
    // (S3: "not copied when using the x-amz-metadata-directive header").
    s3.copy_object()
        .bucket("site")
        .key("copy.html")
        .copy_source("site/old.html")
        .send()
        .await
        .expect("copy");
    assert_eq!(redirect_of("copy.html").await, None);
    s3.copy_object()
        .bucket("site")
        .key("copy.html")
        .copy_source("site/copy.html")
        .website_redirect_location("https://example.com/")
        .send()
        .await
        .expect("onto itself, a new redirect");
    assert_eq!(
        redirect_of("copy.html").await.as_deref(),
        Some("https://example.com/")
    );

    // A multipart upload's object gets the one its creation named.
    let upload = s3
        .create_multipart_upload()
        .bucket("site")
        .key("mp.html")
        .website_redirect_location("/mp-new.html")
        .send()
        .await
        .expect("create");
    let id = upload.upload_id().expect("id");
    let part = s3
        .upload_part()
        .bucket("site")
        .key("mp.html")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .expect("part");
    s3.complete_multipart_upload()
        .bucket("site")
        .key("mp.html")
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().expect("etag"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    assert_eq!(
        redirect_of("mp.html").await.as_deref(),
        Some("/mp-new.html")
    );
    assert!(f.server.stop().expect("stop").success());
}
