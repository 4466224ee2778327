//! Append, as S3 Express One Zone defines it: PutObject with
//! `x-amz-write-offset-bytes` equal to the object's size adds the body as
//! a new part; the object's own chunks are kept, never rewritten.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use base64::Engine;
use md5::Digest;

use arbor_compat_tests::{ArborServer, chunk_files};
use common::{arbor_fs, bytes, client, settle};

const BUCKET: &str = "append";
/// The smallest chunk size Arbor accepts: many chunk files per object.
const CHUNK: usize = 65536;

async fn get(s3: &aws_sdk_s3::Client, key: &str) -> Vec<u8> {
    s3.get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

async fn append(
    s3: &aws_sdk_s3::Client,
    key: &str,
    offset: usize,
    body: &[u8],
) -> Result<aws_sdk_s3::operation::put_object::PutObjectOutput, String> {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .write_offset_bytes(i64::try_from(offset).expect("offset"))
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .map_err(|e| {
            let service = e.into_service_error();
            format!(
                "{}: {}",
                aws_sdk_s3::error::ProvideErrorMetadata::code(&service).unwrap_or_default(),
                aws_sdk_s3::error::ProvideErrorMetadata::message(&service).unwrap_or_default()
            )
        })
}

fn md5(data: &[u8]) -> [u8; 16] {
    md5::Md5::digest(data).into()
}

fn chunk_set(data: &Path) -> HashSet<PathBuf> {
    chunk_files(&data.join("chunks")).into_iter().collect()
}

fn crc32(data: &[u8]) -> String {
    let sum = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, data) as u32;
    base64::engine::general_purpose::STANDARD.encode(sum.to_be_bytes())
}

fn crc32c(data: &[u8]) -> String {
    let sum = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32;
    base64::engine::general_purpose::STANDARD.encode(sum.to_be_bytes())
}

fn start(dir: &Path) -> (ArborServer, aws_sdk_s3::Client) {
    let chunk_size = CHUNK.to_string();
    let args = [
        "--chunk-size",
        &chunk_size,
        "--no-fsync",
        "--gc-grace-secs",
        "1",
    ];
    let server = ArborServer::start(dir, &args).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    (server, s3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_add_parts_without_rewriting_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, s3) = start(dir.path());
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");

    // Offset 0 on a missing key creates it; any other offset is refused.
    let refused = append(&s3, "log", 5, b"early").await.expect_err("offset 5");
    assert!(refused.starts_with("InvalidWriteOffset:"), "{refused}");
    let first = bytes(1000, 1);
    let created = append(&s3, "log", 0, &first).await.expect("create");
    assert_eq!(
        created.e_tag().map(|e| e.trim_matches('"').to_owned()),
        Some(hex::encode(md5(&first))),
        "a created object has a plain ETag"
    );
    let mut expected = first.clone();

    // Inline → inline: the ETag takes the two-part multipart form.
    let second = bytes(2000, 2);
    let out = append(&s3, "log", expected.len(), &second)
        .await
        .expect("append 2");
    let mut joined = md5(&first).to_vec();
    joined.extend_from_slice(&md5(&second));
    assert_eq!(
        out.e_tag().map(|e| e.trim_matches('"').to_owned()),
        Some(format!("{}-2", hex::encode(md5(&joined))))
    );
    expected.extend_from_slice(&second);
    assert_eq!(out.size(), Some(expected.len() as i64), "x-amz-object-size");
    assert_eq!(get(&s3, "log").await, expected);

    // A wrong offset is refused and changes nothing.
    for wrong in [0, expected.len() - 1, expected.len() + 1] {
        let refused = append(&s3, "log", wrong, b"xx")
            .await
            .expect_err("wrong offset");
        assert!(
            refused.starts_with("InvalidWriteOffset:"),
            "{wrong}: {refused}"
        );
    }
    assert_eq!(get(&s3, "log").await, expected);

    // Inline → chunks: the object outgrows its record.
    let third = bytes(3 * CHUNK + 100, 3);
    append(&s3, "log", expected.len(), &third)
        .await
        .expect("append 3");
    expected.extend_from_slice(&third);
    assert_eq!(get(&s3, "log").await, expected);
    let before = chunk_set(dir.path());
    assert!(!before.is_empty());

    // Chunks → chunks: every existing chunk file stays, untouched; only the
    // appended bytes' chunks are new.
    let fourth = bytes(2 * CHUNK, 4);
    let out = append(&s3, "log", expected.len(), &fourth)
        .await
        .expect("append 4");
    expected.extend_from_slice(&fourth);
    assert!(
        out.e_tag()
            .is_some_and(|e| e.trim_matches('"').ends_with("-4")),
        "{out:?}"
    );
    let after = chunk_set(dir.path());
    assert!(before.is_subset(&after), "an append rewrote chunks");
    assert_eq!(
        after.len() - before.len(),
        2,
        "two new chunks for 2 × CHUNK bytes"
    );
    assert_eq!(get(&s3, "log").await, expected);

    // Reads across part boundaries, and one part by number.
    let start = 2900;
    let end = 3000 + 3 * CHUNK;
    let ranged = s3
        .get_object()
        .bucket(BUCKET)
        .key("log")
        .range(format!("bytes={start}-{end}"))
        .send()
        .await
        .expect("range")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert_eq!(ranged.as_ref(), &expected[start..=end]);
    let part = s3
        .get_object()
        .bucket(BUCKET)
        .key("log")
        .part_number(3)
        .send()
        .await
        .expect("part 3");
    assert_eq!(part.parts_count(), Some(4));
    let body = part.body.collect().await.expect("body").into_bytes();
    assert_eq!(body.as_ref(), &third[..]);

    // The SDK's default CRC32 carries over as a full-object checksum.
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("log")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(expected.len() as i64));
    assert_eq!(head.checksum_crc32(), Some(crc32(&expected).as_str()));

    // Deleting the object releases every chunk, shared or appended.
    s3.delete_object()
        .bucket(BUCKET)
        .key("log")
        .send()
        .await
        .expect("delete");
    settle(dir.path(), 0, "after delete").await;
    server.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_checksums_and_races() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, s3) = start(dir.path());
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");

    // A CRC32C object stays CRC32C: the full-object checksum combines.
    let first = bytes(100_000, 5);
    s3.put_object()
        .bucket(BUCKET)
        .key("c")
        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
        .body(ByteStream::from(first.clone()))
        .send()
        .await
        .expect("put");
    let second = bytes(50_000, 6);
    let out = s3
        .put_object()
        .bucket(BUCKET)
        .key("c")
        .write_offset_bytes(100_000)
        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
        .body(ByteStream::from(second.clone()))
        .send()
        .await
        .expect("append");
    let mut whole = first.clone();
    whole.extend_from_slice(&second);
    assert_eq!(out.checksum_crc32_c(), Some(crc32c(&whole).as_str()));
    // Another algorithm than the object's is refused.
    let refused = s3
        .put_object()
        .bucket(BUCKET)
        .key("c")
        .write_offset_bytes(150_000)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(b"x".to_vec()))
        .send()
        .await
        .expect_err("sha256 onto crc32c");
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&refused.into_service_error()),
        Some("InvalidRequest")
    );
    assert_eq!(get(&s3, "c").await, whole);

    // Appends racing at the same offset: exactly one wins each round, and
    // the object holds the winners' bytes in order.
    let mut expected = whole.clone();
    let mut pieces = vec![first.clone(), second.clone()];
    for round in 0..5u64 {
        let offset = expected.len();
        let bodies: Vec<Vec<u8>> = (0..4).map(|i| bytes(70_000, 100 + round * 4 + i)).collect();
        let tasks: Vec<_> = bodies
            .iter()
            .cloned()
            .map(|body| {
                let s3 = s3.clone();
                tokio::spawn(async move {
                    s3.put_object()
                        .bucket(BUCKET)
                        .key("c")
                        .write_offset_bytes(offset as i64)
                        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
                        .body(ByteStream::from(body))
                        .send()
                        .await
                        .map_err(|e| {
                            aws_sdk_s3::error::ProvideErrorMetadata::code(&e.into_service_error())
                                .map(str::to_owned)
                        })
                })
            })
            .collect();
        let mut winners = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.expect("task") {
                Ok(_) => winners.push(i),
                Err(code) => assert!(
                    matches!(
                        code.as_deref(),
                        Some("InvalidWriteOffset" | "ConditionalRequestConflict")
                    ),
                    "{code:?}"
                ),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        expected.extend_from_slice(&bodies[winners[0]]);
        pieces.push(bodies[winners[0]].clone());
    }
    // Each append is a part with its own checksum.
    let attributes = s3
        .get_object_attributes()
        .bucket(BUCKET)
        .key("c")
        .object_attributes(aws_sdk_s3::types::ObjectAttributes::ObjectParts)
        .send()
        .await
        .expect("attributes");
    let parts = attributes.object_parts().expect("parts");
    assert_eq!(parts.total_parts_count(), Some(pieces.len() as i32));
    let sums: Vec<Option<String>> = parts
        .parts()
        .iter()
        .map(|p| p.checksum_crc32_c().map(str::to_owned))
        .collect();
    let wanted: Vec<Option<String>> = pieces.iter().map(|p| Some(crc32c(p))).collect();
    assert_eq!(sums, wanted);
    assert_eq!(get(&s3, "c").await, expected);
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("c")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_crc32_c(), Some(crc32c(&expected).as_str()));

    // Losers' chunks are deleted: deleting the object leaves none.
    s3.delete_object()
        .bucket(BUCKET)
        .key("c")
        .send()
        .await
        .expect("delete");
    settle(dir.path(), 0, "after delete").await;
    server.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbor_fs_append_sends_a_file_in_pieces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, s3) = start(dir.path());
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let file = dir.path().join("input.bin");
    let first = bytes(250_000, 7);
    std::fs::write(&file, &first).expect("write");
    let path = file.to_str().expect("utf-8");

    // A missing object is created; 100,000-byte pieces make 3 parts.
    let (code, out, err) = arbor_fs(
        &server,
        &[
            "append",
            "--piece-size",
            "100000",
            path,
            "s3://append/fs/log",
        ],
    );
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(out.contains("250000 bytes in 3 pieces"), "{out}");
    assert_eq!(get(&s3, "fs/log").await, first);

    // Again, at the current size read first: the object doubles.
    let (code, out, err) = arbor_fs(&server, &["append", path, "s3://append/fs/log"]);
    assert_eq!(code, Some(0), "{out} {err}");
    let mut expected = first.clone();
    expected.extend_from_slice(&first);
    assert_eq!(get(&s3, "fs/log").await, expected);

    // A pinned offset that is not the size: exit 1, S3's code on stderr,
    // nothing appended.
    let (code, out, err) = arbor_fs(
        &server,
        &["append", "--offset", "250000", path, "s3://append/fs/log"],
    );
    assert_eq!(code, Some(1), "{out} {err}");
    assert!(err.contains("InvalidWriteOffset"), "{err}");
    assert_eq!(get(&s3, "fs/log").await, expected);
    server.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_in_a_versioned_bucket_keeps_the_old_version() {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, s3) = start(dir.path());
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    s3.put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    let first = bytes(3 * CHUNK, 8);
    let created = append(&s3, "v", 0, &first).await.expect("create");
    let old_id = created.version_id().expect("version id").to_owned();
    let second = bytes(CHUNK + 7, 9);
    let appended = append(&s3, "v", first.len(), &second)
        .await
        .expect("append");
    let new_id = appended.version_id().expect("version id").to_owned();
    assert_ne!(old_id, new_id);
    let mut whole = first.clone();
    whole.extend_from_slice(&second);
    assert_eq!(get(&s3, "v").await, whole);
    let old = s3
        .get_object()
        .bucket(BUCKET)
        .key("v")
        .version_id(&old_id)
        .send()
        .await
        .expect("old version")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert_eq!(old.as_ref(), &first[..], "the old version is intact");

    // After a delete marker the key has no object: offset 0 starts afresh.
    s3.delete_object()
        .bucket(BUCKET)
        .key("v")
        .send()
        .await
        .expect("delete marker");
    let refused = append(&s3, "v", whole.len(), b"x")
        .await
        .expect_err("deleted");
    assert!(refused.starts_with("InvalidWriteOffset:"), "{refused}");
    append(&s3, "v", 0, b"fresh").await.expect("afresh");
    assert_eq!(get(&s3, "v").await, b"fresh");

    // The chunks shared by both versions stay until the last one goes.
    for id in [&new_id, &old_id] {
        s3.delete_object()
            .bucket(BUCKET)
            .key("v")
            .version_id(id)
            .send()
            .await
            .expect("delete version");
    }
    settle(dir.path(), 0, "after deleting both versions").await;
    server.stop().expect("stop");
}
