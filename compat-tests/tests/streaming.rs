//! Signed aws-chunked uploads (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, with and
//! without trailer): every chunk carries a signature chained from the
//! request's, and the trailer its own. No SDK sends these over plain HTTP,
//! so the suite encodes them itself.

mod common;

use std::time::SystemTime;

use arbor_compat_tests::{ArborServer, RawResponse, raw_request};
use aws_sdk_s3::types::ChecksumMode;
use base64::Engine;
use common::sign::{Payload, REGION, Signer};
use common::{bytes, client};
use sha2::Digest;

const BUCKET: &str = "streamed";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// An aws-chunked body, each chunk signed in the chain SigV4 defines.
struct ChunkSigner {
    key: Vec<u8>,
    amz_date: String,
    scope: String,
    previous: String,
}

impl ChunkSigner {
    fn sign(&mut self, kind: &str, hashed: &str) -> String {
        let to_sign = format!(
            "{kind}\n{}\n{}\n{}\n{hashed}",
            self.amz_date, self.scope, self.previous
        );
        self.previous = aws_sigv4::sign::v4::calculate_signature(&self.key, to_sign.as_bytes());
        self.previous.clone()
    }

    fn chunk(&mut self, data: &[u8]) -> Vec<u8> {
        let signature = self.sign(
            "AWS4-HMAC-SHA256-PAYLOAD",
            &format!("{EMPTY_SHA256}\n{}", sha256_hex(data)),
        );
        let mut out = format!("{:x};chunk-signature={signature}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        out
    }

    fn trailer(&mut self, name: &str, value: &str) -> Vec<u8> {
        let line = format!("{name}:{value}");
        let signature = self.sign(
            "AWS4-HMAC-SHA256-TRAILER",
            &sha256_hex(format!("{line}\n").as_bytes()),
        );
        format!("{line}\r\nx-amz-trailer-signature:{signature}\r\n\r\n").into_bytes()
    }
}

/// How [`put_framed`] frames its body.
#[derive(Clone, Copy)]
struct Framing<'a> {
    /// A signed checksum trailer.
    trailer: Option<(&'a str, &'a str)>,
    /// Flip a byte of the encoded body after signing.
    tamper: bool,
    /// The Content-Encoding sent (which names aws-chunked).
    content_encoding: &'a str,
    /// The `x-amz-decoded-content-length` sent, if not the data's length.
    declared: Option<usize>,
    /// Whether the final, empty, signed chunk ends the body.
    final_chunk: bool,
}

impl Default for Framing<'_> {
    fn default() -> Self {
        Framing {
            trailer: None,
            tamper: false,
            content_encoding: "aws-chunked",
            declared: None,
            final_chunk: true,
        }
    }
}

/// PUTs `data` to `key` as signed chunks of `piece` bytes; `tamper` flips a
/// byte of the encoded body after signing; `trailer` adds a signed
/// checksum trailer.
fn put_streamed(
    server: &ArborServer,
    key: &str,
    data: &[u8],
    piece: usize,
    trailer: Option<(&str, &str)>,
    tamper: bool,
) -> RawResponse {
    let framing = Framing {
        trailer,
        tamper,
        ..Framing::default()
    };
    put_framed(server, key, data, piece, framing)
}

/// PUTs `data` to `key` as signed chunks of `piece` bytes, framed so.
fn put_framed(
    server: &ArborServer,
    key: &str,
    data: &[u8],
    piece: usize,
    framing: Framing<'_>,
) -> RawResponse {
    let Framing {
        trailer,
        tamper,
        content_encoding,
        declared,
        final_chunk,
    } = framing;
    let signer = Signer::new(&server.endpoint, &server.access_key, &server.secret_key);
    let target = format!("/{BUCKET}/{key}");
    let payload = if trailer.is_some() {
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    } else {
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    };
    let decoded = declared.unwrap_or(data.len()).to_string();
    let mut signed_headers = vec![
        ("content-encoding", content_encoding),
        ("x-amz-decoded-content-length", decoded.as_str()),
    ];
    if let Some((name, _)) = trailer {
        signed_headers.push(("x-amz-trailer", name));
    }
    let time = SystemTime::now();
    let headers = signer.sign_headers(
        "PUT",
        &target,
        &signed_headers,
        Payload::Claimed(payload),
        time,
    );
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .expect(name)
    };
    let amz_date = header("x-amz-date");
    let seed = header("authorization")
        .rsplit("Signature=")
        .next()
        .expect("signature")
        .to_owned();
    let mut chunks = ChunkSigner {
        key: aws_sigv4::sign::v4::generate_signing_key(&server.secret_key, time, REGION, "s3")
            .as_ref()
            .to_vec(),
        scope: format!("{}/{REGION}/s3/aws4_request", &amz_date[..8]),
        amz_date,
        previous: seed,
    };
    let mut body = Vec::new();
    for piece in data.chunks(piece) {
        body.extend(chunks.chunk(piece));
    }
    let last = chunks.chunk(b"");
    match trailer {
        _ if !final_chunk => {}
        // The final chunk ends with the trailer instead of the empty line.
        Some((name, value)) => {
            body.extend_from_slice(&last[..last.len() - 2]);
            body.extend(chunks.trailer(name, value));
        }
        None => body.extend(last),
    }
    if tamper {
        let at = body.len() / 2;
        body[at] ^= 0x01;
    }
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    raw_request(&server.endpoint, "PUT", &target, &refs, &body).expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_chunks_and_signed_trailers_are_verified() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data_dir.path(), &["--no-fsync", "--chunk-size", "1048576"])
        .expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let data = bytes(2 * 1024 * 1024 + 333, 5);

    // Signed chunks: stored byte for byte.
    let r = put_streamed(&server, "plain", &data, 64 * 1024, None, false);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("plain")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec(),
        data
    );

    // One flipped byte breaks a chunk signature: refused, nothing stored.
    let r = put_streamed(&server, "tampered", &data, 64 * 1024, None, true);
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.error_code().as_deref(), Some("SignatureDoesNotMatch"));
    assert!(
        s3.head_object()
            .bucket(BUCKET)
            .key("tampered")
            .send()
            .await
            .is_err()
    );

    // A signed trailer with the right CRC32: stored and returned.
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, &data) as u32;
    let crc = base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes());
    let r = put_streamed(
        &server,
        "trailed",
        &data,
        100_000,
        Some(("x-amz-checksum-crc32", &crc)),
        false,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("trailed")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_crc32(), Some(crc.as_str()));

    // A signed trailer with the wrong CRC32: BadDigest, nothing stored.
    let r = put_streamed(
        &server,
        "bad-crc",
        &data,
        100_000,
        Some(("x-amz-checksum-crc32", "AAAAAA==")),
        false,
    );
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.error_code().as_deref(), Some("BadDigest"));
    assert!(
        s3.head_object()
            .bucket(BUCKET)
            .key("bad-crc")
            .send()
            .await
            .is_err()
    );
    assert!(server.stop().expect("stop").success());
}

/// The decoded length a streaming upload declares (and signs) is the
/// object's: a body that brings fewer bytes, its final chunk left out or
/// not, or more, is 400 IncompleteBody with both counts, and changes
/// nothing, as S3 answers it. A body that stops after a whole chunk is
/// how a client cut short looks on the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_must_bring_its_declared_length() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data_dir.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let old = bytes(1000, 3);
    s3.put_object()
        .bucket(BUCKET)
        .key("kept")
        .body(old.clone().into())
        .send()
        .await
        .expect("put old");
    let data = bytes(71_000, 4);
    let cases = [
        // The stream stops after its first chunk, without the final one.
        ("cut short", &data[..70_000], 71_000, false),
        // Whole, but declared longer or shorter than it is.
        ("declared longer", &data[..], 71_001, true),
        ("declared shorter", &data[..], 70_000, true),
        ("declared empty", &data[..], 0, true),
    ];
    for (case, sent, declared, final_chunk) in cases {
        let framing = Framing {
            declared: Some(declared),
            final_chunk,
            ..Framing::default()
        };
        let r = put_framed(&server, "kept", sent, 70_000, framing);
        assert_eq!(
            r.status,
            400,
            "{case}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.error_code().as_deref(), Some("IncompleteBody"), "{case}");
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            body.contains(&format!(
                "<NumberBytesExpected>{declared}</NumberBytesExpected>"
            )),
            "{case}: {body}"
        );
        assert!(body.contains("<NumberBytesProvided>"), "{case}: {body}");
        let got = s3
            .get_object()
            .bucket(BUCKET)
            .key("kept")
            .send()
            .await
            .expect("get");
        let got = got.body.collect().await.expect("body").into_bytes();
        assert!(
            got.as_ref() == old.as_slice(),
            "{case}: the old version stays"
        );
    }
    // A part is held to it alike: the cut-short part is not listed.
    let upload = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("parted")
        .send()
        .await
        .expect("create");
    let id = upload.upload_id().expect("upload id");
    let framing = Framing {
        declared: Some(71_000),
        final_chunk: false,
        ..Framing::default()
    };
    let target = format!("parted?partNumber=1&uploadId={id}");
    let r = put_framed(&server, &target, &data[..70_000], 70_000, framing);
    assert_eq!(r.error_code().as_deref(), Some("IncompleteBody"), "part");
    let parts = s3
        .list_parts()
        .bucket(BUCKET)
        .key("parted")
        .upload_id(id)
        .send()
        .await
        .expect("list parts");
    assert!(parts.parts().is_empty(), "{parts:?}");
    let r = put_framed(&server, &target, &data, 70_000, Framing::default());
    assert_eq!(r.status, 200, "part: {}", String::from_utf8_lossy(&r.body));

    // The same body, declared right and ended right, is stored.
    let r = put_framed(&server, "kept", &data, 70_000, Framing::default());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("kept")
        .send()
        .await
        .expect("get");
    let got = got.body.collect().await.expect("body").into_bytes();
    assert!(got.as_ref() == data.as_slice());
    assert!(server.stop().expect("stop").success());
}

/// `aws-chunked` is how a streaming upload is framed, never part of the
/// object: `gzip, aws-chunked` stores `gzip`, and `aws-chunked` alone
/// stores no Content-Encoding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_chunked_is_not_stored_as_the_content_encoding() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data_dir.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let data = bytes(100_000, 9);
    for (key, sent, stored) in [
        ("gzip-last", "gzip, aws-chunked", Some("gzip")),
        ("gzip-first", "aws-chunked,gzip", Some("gzip")),
        ("two", "aws-chunked,gzip,br", Some("gzip, br")),
        ("chunked-only", "aws-chunked", None),
    ] {
        let framing = Framing {
            content_encoding: sent,
            ..Framing::default()
        };
        let r = put_framed(&server, key, &data, 30_000, framing);
        assert_eq!(
            r.status,
            200,
            "{sent}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let head = s3
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .expect("head");
        assert_eq!(head.content_encoding(), stored, "{sent}: HEAD");
        let got = s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .expect("get");
        assert_eq!(got.content_encoding(), stored, "{sent}: GET");
        let body = got.body.collect().await.expect("body").into_bytes();
        assert!(body.as_ref() == data.as_slice(), "{sent}: body");
    }
    assert!(server.stop().expect("stop").success());
}
