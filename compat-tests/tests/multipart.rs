//! Multipart uploads (docs/design.md, Multipart uploads) through
//! aws-sdk-s3 against the real binary.

mod common;

use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectAttributes,
};
use md5::Digest;

use arbor_compat_tests::ArborServer;
use common::{bytes, client, client_without_checksums};

const MIB: usize = 1024 * 1024;
const BUCKET: &str = "parts";

async fn start(extra: &[&str]) -> (ArborServer, aws_sdk_s3::Client, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["--chunk-size", "2097152", "--no-fsync"];
    args.extend_from_slice(extra);
    let server = ArborServer::start(data.path(), &args).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    (server, s3, data)
}

async fn create(s3: &aws_sdk_s3::Client, key: &str) -> String {
    let out = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("create upload");
    out.upload_id().expect("upload id").to_owned()
}

async fn upload(s3: &aws_sdk_s3::Client, key: &str, id: &str, number: i32, body: &[u8]) -> String {
    let out = s3
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(id)
        .part_number(number)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("part {number}: {e:?}"));
    out.e_tag().expect("etag").to_owned()
}

fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    let parts = parts
        .iter()
        .map(|(n, etag)| {
            CompletedPart::builder()
                .part_number(*n)
                .e_tag(*etag)
                .build()
        })
        .collect();
    CompletedMultipartUpload::builder()
        .set_parts(Some(parts))
        .build()
}

/// S3's multipart ETag, computed here independently of the server.
fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut concatenated = Vec::new();
    for part in parts {
        concatenated.extend_from_slice(&md5::Md5::digest(part));
    }
    format!(
        "\"{}-{}\"",
        hex::encode(md5::Md5::digest(&concatenated)),
        parts.len()
    )
}

async fn read(s3: &aws_sdk_s3::Client, key: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("get");
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_uploaded_out_of_order_and_in_parallel_round_trip() {
    let (server, s3, _data) = start(&[]).await;
    let key = "big/forty.bin";
    let body = bytes(40 * MIB, 11);
    let id = create(&s3, key).await;
    // Eight 5 MiB parts, sent in reverse order, four at a time.
    let parts: Vec<(i32, &[u8])> = body
        .chunks(5 * MIB)
        .enumerate()
        .map(|(i, p)| (i as i32 + 1, p))
        .collect();
    let mut etags = vec![String::new(); parts.len()];
    for batch in parts.iter().rev().collect::<Vec<_>>().chunks(4) {
        let uploads = batch.iter().map(|(n, p)| {
            let (s3, id) = (s3.clone(), id.clone());
            let p = p.to_vec();
            let n = *n;
            tokio::spawn(async move { (n, upload(&s3, key, &id, n, &p).await) })
        });
        for handle in uploads.collect::<Vec<_>>() {
            let (n, etag) = handle.await.expect("join");
            etags[(n - 1) as usize] = etag;
        }
    }
    // In progress: invisible to listings, no directory created.
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .delimiter("/")
        .send()
        .await
        .expect("list");
    assert!(listed.contents().is_empty() && listed.common_prefixes().is_empty());
    let e = s3
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect_err("not visible yet");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));

    let list: Vec<(i32, &str)> = etags
        .iter()
        .enumerate()
        .map(|(i, e)| (i as i32 + 1, e.as_str()))
        .collect();
    let out = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .multipart_upload(completed(&list))
        .send()
        .await
        .expect("complete");
    let expected_etag = multipart_etag(&parts.iter().map(|(_, p)| *p).collect::<Vec<_>>());
    assert_eq!(out.e_tag(), Some(expected_etag.as_str()));
    assert_eq!(read(&s3, key).await, body);
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("head");
    assert_eq!(head.e_tag(), Some(expected_etag.as_str()));
    assert_eq!(head.content_length(), Some(body.len() as i64));
    // partNumber reads one part.
    let part = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .part_number(3)
        .send()
        .await
        .expect("part 3");
    assert_eq!(part.parts_count(), Some(8));
    assert_eq!(
        part.content_range(),
        Some(format!("bytes {}-{}/{}", 10 * MIB, 15 * MIB - 1, 40 * MIB).as_str())
    );
    let got = part.body.collect().await.expect("body").into_bytes();
    assert_eq!(&got[..], &body[10 * MIB..15 * MIB]);
    // The upload is gone once completed.
    let e = s3
        .list_parts()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .send()
        .await
        .expect_err("completed");
    assert_eq!(e.code(), Some("NoSuchUpload"));
    assert!(server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuploaded_part_wins_and_bad_completes_change_nothing() {
    let (server, s3, _data) = start(&[]).await;
    let key = "k";
    let id = create(&s3, key).await;
    let first = bytes(5 * MIB, 1);
    let second = bytes(5 * MIB, 2);
    let replaced = bytes(5 * MIB, 3);
    let last = bytes(1234, 4);
    let e1_old = upload(&s3, key, &id, 1, &first).await;
    let e1 = upload(&s3, key, &id, 1, &replaced).await;
    assert_ne!(e1, e1_old);
    let e2 = upload(&s3, key, &id, 2, &second).await;
    let e3 = upload(&s3, key, &id, 3, &last).await;

    // ListParts pages.
    let page = s3
        .list_parts()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .max_parts(2)
        .send()
        .await
        .expect("list parts");
    let numbers: Vec<_> = page
        .parts()
        .iter()
        .filter_map(|p| p.part_number())
        .collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.parts()[0].e_tag(), Some(e1.as_str()));
    assert_eq!(
        page.part_number_marker(),
        Some("0"),
        "a first page's marker"
    );
    let marker = page.next_part_number_marker().expect("marker").to_owned();
    let page = s3
        .list_parts()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .part_number_marker(&marker)
        .send()
        .await
        .expect("page 2");
    assert_eq!(
        page.parts()
            .iter()
            .filter_map(|p| p.part_number())
            .collect::<Vec<_>>(),
        [3]
    );
    assert_eq!(page.part_number_marker(), Some(marker.as_str()));
    assert_eq!(page.parts()[0].size(), Some(1234));

    let complete = |parts: Vec<(i32, String)>| {
        let s3 = s3.clone();
        let id = id.clone();
        async move {
            let list: Vec<(i32, &str)> = parts.iter().map(|(n, e)| (*n, e.as_str())).collect();
            s3.complete_multipart_upload()
                .bucket(BUCKET)
                .key(key)
                .upload_id(id)
                .multipart_upload(completed(&list))
                .send()
                .await
        }
    };
    // A stale ETag (the replaced part 1), a missing part, a wrong order.
    let e = complete(vec![(1, e1_old.clone()), (2, e2.clone()), (3, e3.clone())])
        .await
        .expect_err("stale etag");
    assert_eq!(e.code(), Some("InvalidPart"));
    let e = complete(vec![(1, e1.clone()), (2, e2.clone()), (4, e3.clone())])
        .await
        .expect_err("missing part");
    assert_eq!(e.code(), Some("InvalidPart"));
    let e = complete(vec![(2, e2.clone()), (1, e1.clone()), (3, e3.clone())])
        .await
        .expect_err("order");
    assert_eq!(e.code(), Some("InvalidPartOrder"));
    // A too-small middle part.
    let small_id = create(&s3, "small").await;
    let s1 = upload(&s3, "small", &small_id, 1, &bytes(100, 5)).await;
    let s2 = upload(&s3, "small", &small_id, 2, &bytes(100, 6)).await;
    let e = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("small")
        .upload_id(&small_id)
        .multipart_upload(completed(&[(1, &s1), (2, &s2)]))
        .send()
        .await
        .expect_err("too small");
    assert_eq!(e.code(), Some("EntityTooSmall"));
    // An empty part list is malformed.
    let e = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .multipart_upload(CompletedMultipartUpload::builder().build())
        .send()
        .await
        .expect_err("empty");
    assert_eq!(e.code(), Some("MalformedXML"));
    // Nothing changed: no object, the upload still has its three parts.
    let e = s3
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect_err("no object");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));
    let page = s3
        .list_parts()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .send()
        .await
        .expect("still there");
    assert_eq!(page.parts().len(), 3);

    // Gaps in part numbers are fine; the re-uploaded part 1 wins.
    let out = complete(vec![(1, e1.clone()), (3, e3.clone())])
        .await
        .expect("complete with a gap");
    assert_eq!(
        out.e_tag(),
        Some(multipart_etag(&[&replaced, &last]).as_str())
    );
    let mut expected = replaced.clone();
    expected.extend_from_slice(&last);
    assert_eq!(read(&s3, key).await, expected);

    // Abort: the upload is gone.
    s3.abort_multipart_upload()
        .bucket(BUCKET)
        .key("small")
        .upload_id(&small_id)
        .send()
        .await
        .expect("abort");
    let e = s3
        .list_parts()
        .bucket(BUCKET)
        .key("small")
        .upload_id(&small_id)
        .send()
        .await
        .expect_err("aborted");
    assert_eq!(e.code(), Some("NoSuchUpload"));
    let e = s3
        .abort_multipart_upload()
        .bucket(BUCKET)
        .key("small")
        .upload_id(&small_id)
        .send()
        .await;
    assert_eq!(e.expect_err("abort twice").code(), Some("NoSuchUpload"));
    let e = s3
        .upload_part()
        .bucket(BUCKET)
        .key("k")
        .upload_id("not-an-id")
        .part_number(1)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(e.expect_err("bad id").code(), Some("NoSuchUpload"));
    let other = create(&s3, "k2").await;
    let e = s3
        .upload_part()
        .bucket(BUCKET)
        .key("k2")
        .upload_id(&other)
        .part_number(10001)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(e.expect_err("part 10001").code(), Some("InvalidArgument"));
    assert!(server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_uploads_checksums_and_expiry() {
    let (server, s3, _data) = start(&["--upload-expiry-secs", "3"]).await;
    let a1 = create(&s3, "dir/a").await;
    let a2 = create(&s3, "dir/a").await;
    let b = create(&s3, "dir/sub/b").await;
    let c = create(&s3, "top").await;
    let out = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list uploads");
    let listed: Vec<_> = out
        .uploads()
        .iter()
        .map(|u| (u.key().unwrap_or(""), u.upload_id().unwrap_or("")))
        .collect();
    assert_eq!(
        listed,
        [
            ("dir/a", a1.as_str()),
            ("dir/a", a2.as_str()),
            ("dir/sub/b", b.as_str()),
            ("top", c.as_str())
        ]
    );
    let out = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .prefix("dir/")
        .delimiter("/")
        .send()
        .await
        .expect("delimited");
    assert_eq!(
        out.uploads()
            .iter()
            .filter_map(|u| u.key())
            .collect::<Vec<_>>(),
        ["dir/a", "dir/a"]
    );
    assert_eq!(
        out.common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect::<Vec<_>>(),
        ["dir/sub/"]
    );
    let out = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .max_uploads(1)
        .send()
        .await
        .expect("page");
    assert_eq!(out.is_truncated(), Some(true));
    let (key_marker, id_marker) = (
        out.next_key_marker().expect("key").to_owned(),
        out.next_upload_id_marker().expect("id").to_owned(),
    );
    let out = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .key_marker(key_marker)
        .upload_id_marker(id_marker)
        .send()
        .await
        .expect("next");
    assert_eq!(
        out.uploads()
            .iter()
            .filter_map(|u| u.upload_id())
            .collect::<Vec<_>>(),
        [a2.as_str(), b.as_str(), c.as_str()]
    );
    // With encoding-type=url the echoed key marker is encoded too.
    let out = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .key_marker("d e")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .expect("encoded");
    assert_eq!(out.key_marker(), Some("d%20e"));

    // A composite CRC32 checksum across parts.
    let out = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("summed")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .expect("create summed");
    let id = out.upload_id().expect("id").to_owned();
    let p1 = bytes(5 * MIB, 21);
    let p2 = bytes(77, 22);
    let mut parts = Vec::new();
    for (n, body) in [(1, &p1), (2, &p2)] {
        let out = s3
            .upload_part()
            .bucket(BUCKET)
            .key("summed")
            .upload_id(&id)
            .part_number(n)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("summed part");
        let crc = out.checksum_crc32().expect("part crc32").to_owned();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().expect("etag"))
                .checksum_crc32(crc)
                .build(),
        );
    }
    let out = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("summed")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete summed");
    assert!(
        out.checksum_crc32().is_some_and(|c| c.ends_with("-2")),
        "{:?}",
        out.checksum_crc32()
    );

    // Abandoned uploads expire.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let out = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("after expiry");
    assert!(out.uploads().is_empty(), "{:?}", out.uploads());
    let e = s3
        .list_parts()
        .bucket(BUCKET)
        .key("top")
        .upload_id(&c)
        .send()
        .await
        .expect_err("expired");
    assert_eq!(e.code(), Some("NoSuchUpload"));
    assert!(server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_copy_shares_whole_chunks_and_copies_the_rest() {
    let (server, s3, _data) = start(&[]).await;
    // 7 MiB in 2 MiB chunks: [0,2) [2,4) [4,6) [6,7).
    let source = bytes(7 * MIB, 31);
    s3.put_object()
        .bucket(BUCKET)
        .key("src")
        .body(ByteStream::from(source.clone()))
        .send()
        .await
        .expect("source");
    let id = create(&s3, "assembled").await;
    // Part 1: bytes 1 MiB..6 MiB (a partial chunk, then two whole ones).
    let out = s3
        .upload_part_copy()
        .bucket(BUCKET)
        .key("assembled")
        .upload_id(&id)
        .part_number(1)
        .copy_source(format!("{BUCKET}/src"))
        .copy_source_range(format!("bytes={}-{}", MIB, 6 * MIB - 1))
        .send()
        .await
        .expect("upload part copy");
    let e1 = out
        .copy_part_result()
        .and_then(|r| r.e_tag())
        .expect("etag")
        .to_owned();
    assert_eq!(
        e1,
        format!(
            "\"{}\"",
            hex::encode(md5::Md5::digest(&source[MIB..6 * MIB]))
        )
    );
    // Part 2: the whole (inline-sized) object "small", copied without a range.
    s3.put_object()
        .bucket(BUCKET)
        .key("small")
        .body(ByteStream::from_static(b"tail"))
        .send()
        .await
        .expect("small");
    let out = s3
        .upload_part_copy()
        .bucket(BUCKET)
        .key("assembled")
        .upload_id(&id)
        .part_number(2)
        .copy_source(format!("{BUCKET}/small"))
        .send()
        .await
        .expect("copy whole small object");
    let e2 = out
        .copy_part_result()
        .and_then(|r| r.e_tag())
        .expect("etag")
        .to_owned();
    // Ranges outside the source, or reversed, are 400 InvalidArgument
    // naming the source's size, as S3 answers (not GetObject's 416).
    for range in ["bytes=0-99999999", "bytes=99999998-99999999", "bytes=5-1"] {
        let e = s3
            .upload_part_copy()
            .bucket(BUCKET)
            .key("assembled")
            .upload_id(&id)
            .part_number(3)
            .copy_source(format!("{BUCKET}/src"))
            .copy_source_range(range)
            .send()
            .await
            .expect_err(range);
        assert_eq!(e.code(), Some("InvalidArgument"), "{range}");
        assert_eq!(
            e.message(),
            Some(
                format!(
                    "Range specified is not valid for source object of size: {}",
                    7 * MIB
                )
                .as_str()
            ),
            "{range}"
        );
        assert_eq!(
            e.raw_response().map(|r| r.status().as_u16()),
            Some(400),
            "{range}"
        );
    }
    // Malformed ones are InvalidArgument with the form's message.
    for range in ["1-2", "bytes=-5", "bytes=5-", "bytes=0-1,3-4"] {
        let e = s3
            .upload_part_copy()
            .bucket(BUCKET)
            .key("assembled")
            .upload_id(&id)
            .part_number(3)
            .copy_source(format!("{BUCKET}/src"))
            .copy_source_range(range)
            .send()
            .await
            .expect_err(range);
        assert_eq!(e.code(), Some("InvalidArgument"), "{range}");
    }
    let e = s3
        .upload_part_copy()
        .bucket(BUCKET)
        .key("assembled")
        .upload_id(&id)
        .part_number(3)
        .copy_source(format!("{BUCKET}/src"))
        .copy_source_if_match("\"nope\"")
        .send()
        .await;
    assert_eq!(e.expect_err("condition").code(), Some("PreconditionFailed"));

    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("assembled")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
        .send()
        .await
        .expect("complete");
    let mut expected = source[MIB..6 * MIB].to_vec();
    expected.extend_from_slice(b"tail");
    // The source can go: the assembled object holds its own references.
    s3.delete_object()
        .bucket(BUCKET)
        .key("src")
        .send()
        .await
        .expect("delete source");
    assert_eq!(read(&s3, "assembled").await, expected);
    assert!(server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_object_crc_is_combined_from_the_parts() {
    use aws_sdk_s3::types::{ChecksumMode, ChecksumType};
    use base64::Engine;
    let (server, s3, _data) = start(&[]).await;
    let body = bytes(11 * MIB + 17, 41);
    let expected = {
        let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, &body) as u32;
        base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
    };
    let upload = |key: &'static str| {
        let s3 = s3.clone();
        let body = body.clone();
        async move {
            let out = s3
                .create_multipart_upload()
                .bucket(BUCKET)
                .key(key)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .checksum_type(ChecksumType::FullObject)
                .send()
                .await
                .expect("create");
            assert_eq!(out.checksum_type(), Some(&ChecksumType::FullObject));
            let id = out.upload_id().expect("id").to_owned();
            let mut parts = Vec::new();
            for (i, piece) in body.chunks(5 * MIB).enumerate() {
                let n = i as i32 + 1;
                let out = s3
                    .upload_part()
                    .bucket(BUCKET)
                    .key(key)
                    .upload_id(&id)
                    .part_number(n)
                    .checksum_algorithm(ChecksumAlgorithm::Crc32)
                    .body(ByteStream::from(piece.to_vec()))
                    .send()
                    .await
                    .expect("part");
                parts.push(
                    CompletedPart::builder()
                        .part_number(n)
                        .e_tag(out.e_tag().expect("etag"))
                        .checksum_crc32(out.checksum_crc32().expect("part crc"))
                        .build(),
                );
            }
            (
                id,
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
        }
    };
    let (id, parts) = upload("full").await;
    let out = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("full")
        .upload_id(&id)
        .multipart_upload(parts)
        .send()
        .await
        .expect("complete");
    assert_eq!(
        out.checksum_crc32(),
        Some(expected.as_str()),
        "the CRC32 of the whole object, no -N"
    );
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("full")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_crc32(), Some(expected.as_str()));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject));
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("full")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("validated")
            .into_bytes()
            .to_vec(),
        body
    );

    // A client-sent full-object checksum that the parts do not make is refused.
    let (id, parts) = upload("wrong").await;
    let e = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("wrong")
        .upload_id(&id)
        .multipart_upload(parts)
        .checksum_crc32("AAAAAA==")
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .expect_err("wrong full checksum");
    assert_eq!(e.code(), Some("BadDigest"));
    // FULL_OBJECT is for CRCs only.
    let e = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("sha")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await;
    assert_eq!(
        e.expect_err("sha full object").code(),
        Some("InvalidRequest")
    );
    assert!(server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_complete_answers_as_the_first() {
    let (server, s3, _data) = start(&[]).await;
    let id = create(&s3, "retried").await;
    let first = bytes(5 * MIB, 1);
    let last = bytes(1000, 2);
    let e1 = upload(&s3, "retried", &id, 1, &first).await;
    let e2 = upload(&s3, "retried", &id, 2, &last).await;
    let complete = |parts: CompletedMultipartUpload| {
        s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key("retried")
            .upload_id(&id)
            .multipart_upload(parts)
            .send()
    };
    let done = complete(completed(&[(1, &e1), (2, &e2)]))
        .await
        .expect("complete");
    let etag = multipart_etag(&[&first, &last]);
    assert_eq!(done.e_tag(), Some(etag.as_str()));
    // The object's URL at the endpoint the client used, path-style here.
    let url = format!("{}/{BUCKET}/retried", server.endpoint);
    assert_eq!(done.location(), Some(url.as_str()));
    // The first answer was lost: the client sends the same request again,
    // even after the object was overwritten.
    s3.put_object()
        .bucket(BUCKET)
        .key("retried")
        .body(ByteStream::from_static(b"newer"))
        .send()
        .await
        .expect("overwrite");
    let again = complete(completed(&[(1, &e1), (2, &e2)]))
        .await
        .expect("retried complete");
    assert_eq!(again.e_tag(), done.e_tag());
    assert_eq!(again.location(), done.location());
    assert_eq!(again.bucket(), Some(BUCKET));
    assert_eq!(again.key(), Some("retried"));
    assert_eq!(read(&s3, "retried").await, b"newer", "nothing re-applied");
    // Another part list for the completed upload: NoSuchUpload.
    let e = complete(completed(&[(1, &e1)]))
        .await
        .expect_err("other parts");
    assert_eq!(e.code(), Some("NoSuchUpload"));
    // The same upload id under another key: NoSuchUpload.
    let e = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("other")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
        .send()
        .await
        .expect_err("other key");
    assert_eq!(e.code(), Some("NoSuchUpload"));
    // An aborted upload is not a completed one.
    let aborted = create(&s3, "aborted").await;
    let a1 = upload(&s3, "aborted", &aborted, 1, &last).await;
    s3.abort_multipart_upload()
        .bucket(BUCKET)
        .key("aborted")
        .upload_id(&aborted)
        .send()
        .await
        .expect("abort");
    let e = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("aborted")
        .upload_id(&aborted)
        .multipart_upload(completed(&[(1, &a1)]))
        .send()
        .await
        .expect_err("aborted");
    assert_eq!(e.code(), Some("NoSuchUpload"));
    assert!(server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_attributes_page_through_the_parts() {
    let (server, s3, _data) = start(&[]).await;
    let sizes = [5 * MIB, 5 * MIB, 1000];
    let mut bodies = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        bodies.push(bytes(*size, 11 + i as u64));
    }
    // `with_checksum`: the upload and its parts carry CRC32C.
    let assemble = |key: &'static str, with_checksum: bool| {
        let (s3, bodies) = (&s3, &bodies);
        async move {
            let id = s3
                .create_multipart_upload()
                .bucket(BUCKET)
                .key(key)
                .set_checksum_algorithm(with_checksum.then_some(ChecksumAlgorithm::Crc32C))
                .send()
                .await
                .expect("create")
                .upload_id()
                .expect("id")
                .to_owned();
            let mut parts = Vec::new();
            for (i, body) in bodies.iter().enumerate() {
                let n = i32::try_from(i + 1).expect("part number");
                let out = s3
                    .upload_part()
                    .bucket(BUCKET)
                    .key(key)
                    .upload_id(&id)
                    .part_number(n)
                    .set_checksum_algorithm(with_checksum.then_some(ChecksumAlgorithm::Crc32C))
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .expect("part");
                let mut part = CompletedPart::builder()
                    .part_number(n)
                    .e_tag(out.e_tag().expect("etag"));
                if let Some(sum) = out.checksum_crc32_c() {
                    part = part.checksum_crc32_c(sum);
                }
                parts.push(part.build());
            }
            s3.complete_multipart_upload()
                .bucket(BUCKET)
                .key(key)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .expect("complete");
        }
    };
    assemble("attrs", true).await;
    assemble("unsummed", false).await;
    let all = [
        ObjectAttributes::Etag,
        ObjectAttributes::ObjectSize,
        ObjectAttributes::StorageClass,
        ObjectAttributes::ObjectParts,
        ObjectAttributes::Checksum,
    ];
    let out = s3
        .get_object_attributes()
        .bucket(BUCKET)
        .key("attrs")
        .set_object_attributes(Some(all.to_vec()))
        .max_parts(2)
        .send()
        .await
        .expect("attributes");
    let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
    let etag = multipart_etag(&refs);
    // Bare, as S3 writes it in this document alone.
    assert_eq!(out.e_tag(), Some(etag.trim_matches('"')));
    let total: usize = sizes.iter().sum();
    assert_eq!(out.object_size(), Some(i64::try_from(total).expect("size")));
    assert_eq!(out.storage_class().map(|c| c.as_str()), Some("STANDARD"));
    assert!(out.last_modified().is_some());
    let page = out.object_parts().expect("parts");
    assert_eq!(page.total_parts_count(), Some(3));
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.max_parts(), Some(2));
    assert_eq!(page.next_part_number_marker(), Some("2"));
    let numbers: Vec<_> = page
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size()))
        .collect();
    let mib5 = Some(i64::try_from(5 * MIB).expect("size"));
    assert_eq!(numbers, [(Some(1), mib5), (Some(2), mib5)]);
    let out = s3
        .get_object_attributes()
        .bucket(BUCKET)
        .key("attrs")
        .object_attributes(ObjectAttributes::ObjectParts)
        .part_number_marker("2")
        .send()
        .await
        .expect("second page");
    assert!(out.e_tag().is_none(), "only what was asked for");
    let page = out.object_parts().expect("parts");
    assert_eq!(page.is_truncated(), Some(false));
    let numbers: Vec<_> = page
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size()))
        .collect();
    assert_eq!(numbers, [(Some(3), Some(1000))]);

    // Uploaded without a checksum: the count alone, as S3 answers.
    let out = s3
        .get_object_attributes()
        .bucket(BUCKET)
        .key("unsummed")
        .object_attributes(ObjectAttributes::ObjectParts)
        .send()
        .await
        .expect("attributes");
    let count = out.object_parts().expect("parts");
    assert_eq!(count.total_parts_count(), Some(3));
    assert!(count.parts().is_empty() && count.is_truncated().is_none());

    // A single-part object has no ObjectParts.
    s3.put_object()
        .bucket(BUCKET)
        .key("plain")
        .body(ByteStream::from_static(b"plain"))
        .send()
        .await
        .expect("put");
    let out = s3
        .get_object_attributes()
        .bucket(BUCKET)
        .key("plain")
        .set_object_attributes(Some(all.to_vec()))
        .send()
        .await
        .expect("attributes");
    assert!(out.object_parts().is_none());
    assert_eq!(out.object_size(), Some(5));
    let e = s3
        .get_object_attributes()
        .bucket(BUCKET)
        .key("absent")
        .object_attributes(ObjectAttributes::Etag)
        .send()
        .await
        .expect_err("absent");
    assert_eq!(e.code(), Some("NoSuchKey"));
    assert!(server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_types_default_and_refuse_as_s3_does() {
    use aws_sdk_s3::types::{ChecksumType, ObjectAttributes};
    let (server, s3, _data) = start(&[]).await;
    // Without x-amz-checksum-type: CRC64NVME is FULL_OBJECT, the others
    // COMPOSITE.
    for (algorithm, expected) in [
        (ChecksumAlgorithm::Crc32, ChecksumType::Composite),
        (ChecksumAlgorithm::Crc32C, ChecksumType::Composite),
        (ChecksumAlgorithm::Crc64Nvme, ChecksumType::FullObject),
        (ChecksumAlgorithm::Sha1, ChecksumType::Composite),
        (ChecksumAlgorithm::Sha256, ChecksumType::Composite),
    ] {
        let out = s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("defaults")
            .checksum_algorithm(algorithm.clone())
            .send()
            .await
            .expect("create");
        assert_eq!(out.checksum_type(), Some(&expected), "{algorithm:?}");
    }
    // Types an algorithm cannot have, and a type without an algorithm.
    for (algorithm, kind) in [
        (Some(ChecksumAlgorithm::Crc64Nvme), ChecksumType::Composite),
        (Some(ChecksumAlgorithm::Sha1), ChecksumType::FullObject),
        (Some(ChecksumAlgorithm::Sha256), ChecksumType::FullObject),
        (None, ChecksumType::FullObject),
    ] {
        let e = s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("refused")
            .set_checksum_algorithm(algorithm.clone())
            .checksum_type(kind.clone())
            .send()
            .await
            .expect_err("refused combination");
        assert_eq!(e.code(), Some("InvalidRequest"), "{algorithm:?} {kind:?}");
    }

    // A composite SHA-256 upload keeps its parts' checksums.
    let out = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("composite")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("create");
    let id = out.upload_id().expect("id").to_owned();
    let pieces = [bytes(5 * MIB, 61), bytes(1234, 62)];
    let mut parts = Vec::new();
    let mut part_sums = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket(BUCKET)
            .key("composite")
            .upload_id(&id)
            .part_number(n)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(piece.clone()))
            .send()
            .await
            .expect("part");
        let sum = out.checksum_sha256().expect("part sha256").to_owned();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().expect("etag"))
                .checksum_sha256(&sum)
                .build(),
        );
        part_sums.push(sum);
    }
    let all = || {
        CompletedMultipartUpload::builder()
            .set_parts(Some(parts.clone()))
            .build()
    };
    let complete = || {
        s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key("composite")
            .upload_id(&id)
            .multipart_upload(all())
    };
    let e = complete()
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .expect_err("other mode");
    assert_eq!(e.code(), Some("InvalidRequest"));
    // A composite checksum needs each part's in the request.
    let mut bare = parts.clone();
    bare[1] = CompletedPart::builder()
        .part_number(2)
        .e_tag(parts[1].e_tag().expect("etag"))
        .build();
    let e = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("composite")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(bare))
                .build(),
        )
        .send()
        .await
        .expect_err("a part without its checksum");
    assert_eq!(e.code(), Some("InvalidRequest"));
    assert_eq!(
        e.message(),
        Some(
            "The upload was created using a sha256 checksum. The complete request must include the checksum for each part. It was missing for part 2 in the request."
        )
    );
    let e = complete()
        .checksum_sha256("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=-2")
        .send()
        .await
        .expect_err("wrong composite");
    assert_eq!(e.code(), Some("BadDigest"));
    let done = complete()
        .checksum_type(ChecksumType::Composite)
        .send()
        .await
        .expect("complete");
    let composite = done.checksum_sha256().expect("composite").to_owned();
    assert!(composite.ends_with("-2"), "{composite}");
    assert_eq!(done.checksum_type(), Some(&ChecksumType::Composite));
    // HEAD and GET name its type as the upload made it.
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("composite")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_sha256(), Some(composite.as_str()));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::Composite));
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("composite")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("get");
    assert_eq!(got.checksum_type(), Some(&ChecksumType::Composite));

    let attributes = s3
        .get_object_attributes()
        .bucket(BUCKET)
        .key("composite")
        .object_attributes(ObjectAttributes::Checksum)
        .object_attributes(ObjectAttributes::ObjectParts)
        .send()
        .await
        .expect("attributes");
    let checksum = attributes.checksum().expect("checksum");
    assert_eq!(checksum.checksum_sha256(), Some(composite.as_str()));
    assert_eq!(checksum.checksum_type(), Some(&ChecksumType::Composite));
    let listed = attributes.object_parts().expect("parts");
    assert_eq!(listed.total_parts_count(), Some(2));
    let got: Vec<Option<&str>> = listed.parts().iter().map(|p| p.checksum_sha256()).collect();
    assert_eq!(
        got,
        part_sums
            .iter()
            .map(|s| Some(s.as_str()))
            .collect::<Vec<_>>(),
        "each part's own checksum"
    );

    // An upload created without a checksum takes no checksum type.
    let id = create(&s3, "plain").await;
    let etag = upload(&s3, "plain", &id, 1, b"small").await;
    let e = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("plain")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &etag)]))
        .checksum_type(ChecksumType::Composite)
        .send()
        .await
        .expect_err("no checksum mode");
    assert_eq!(e.code(), Some("InvalidRequest"));
    assert!(server.stop().expect("stop").success());
}

/// The CRC64NVME of `data`, in base64 as S3 sends it.
fn crc64nvme(data: &[u8]) -> String {
    use base64::Engine;
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, data);
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

/// Uploads `data` to `key` in two parts, 5 MiB and the rest (the second
/// sent with `second`'s checksum, if any), checking that a part sent
/// without one is answered its CRC64NVME, and completes the upload.
async fn two_parts(
    s3: &aws_sdk_s3::Client,
    key: &str,
    data: &[u8],
    second: Option<ChecksumAlgorithm>,
) -> aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput {
    let id = create(s3, key).await;
    let mut etags = Vec::new();
    for (number, range) in [(1, 0..5 * MIB), (2, 5 * MIB..data.len())] {
        let checksum = if number == 2 { second.clone() } else { None };
        let out = s3
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&id)
            .part_number(number)
            .set_checksum_algorithm(checksum.clone())
            .body(ByteStream::from(data[range.clone()].to_vec()))
            .send()
            .await
            .expect("part");
        if checksum.is_none() {
            let part_crc = crc64nvme(&data[range]);
            assert_eq!(
                out.checksum_crc64_nvme(),
                Some(part_crc.as_str()),
                "{key}: part {number}"
            );
        }
        etags.push((number, out.e_tag().expect("etag").to_owned()));
    }
    let listed: Vec<(i32, &str)> = etags.iter().map(|(n, e)| (*n, e.as_str())).collect();
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .multipart_upload(completed(&listed))
        .send()
        .await
        .expect("complete")
}

/// An object written without a checksum gets S3's default, a full-object
/// CRC64NVME: a PUT (an empty one too), and an upload that declared no
/// algorithm whose parts came without one, combined from the parts. An
/// upload with a part sent with another checksum gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_written_without_a_checksum_get_the_default_crc64nvme() {
    let (server, _, _dir) = start(&[]).await;
    let s3 = client_without_checksums(&server.endpoint, &server.access_key, &server.secret_key);
    for (key, data) in [("plain", bytes(300_000, 41)), ("empty", Vec::new())] {
        let put = s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .expect("put");
        let expected = crc64nvme(&data);
        assert_eq!(
            put.checksum_crc64_nvme(),
            Some(expected.as_str()),
            "{key}: PUT"
        );
        assert_eq!(put.checksum_crc32(), None, "{key}");
        assert_eq!(
            put.checksum_type(),
            Some(&aws_sdk_s3::types::ChecksumType::FullObject),
            "{key}"
        );
        let head = s3
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .expect("head");
        assert_eq!(
            head.checksum_crc64_nvme(),
            Some(expected.as_str()),
            "{key}: HEAD"
        );
    }

    // Parts without a checksum: each gets its CRC64NVME, and the object
    // the two combined, as FULL_OBJECT.
    let data = bytes(6 * MIB + 123, 42);
    let done = two_parts(&s3, "parted", &data, None).await;
    let whole = crc64nvme(&data);
    assert_eq!(done.checksum_crc64_nvme(), Some(whole.as_str()), "complete");
    assert_eq!(
        done.checksum_type(),
        Some(&aws_sdk_s3::types::ChecksumType::FullObject)
    );
    let attributes = s3
        .get_object_attributes()
        .bucket(BUCKET)
        .key("parted")
        .object_attributes(ObjectAttributes::Checksum)
        .object_attributes(ObjectAttributes::ObjectParts)
        .send()
        .await
        .expect("attributes");
    assert_eq!(
        attributes.checksum().and_then(|c| c.checksum_crc64_nvme()),
        Some(whole.as_str())
    );
    // As for any upload without a checksum: the parts' count alone.
    let parts = attributes.object_parts().expect("parts");
    assert_eq!(parts.total_parts_count(), Some(2));
    assert!(parts.parts().is_empty(), "{parts:?}");

    // A part sent with another checksum: the object gets none.
    let done = two_parts(&s3, "mixed", &data, Some(ChecksumAlgorithm::Crc32)).await;
    assert_eq!(done.checksum_crc64_nvme(), None);
    assert_eq!(done.checksum_crc32(), None);
    assert!(server.stop().expect("stop").success());
}
