//! Garbage collection end to end: chunks that lose their last reference,
//! and orphans nothing ever referenced, disappear from disk after the grace
//! period; chunks still shared (copies, completed parts) stay.

mod common;

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use arbor_compat_tests::{ArborServer, chunk_files};
use common::{bytes, client, settle};

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreferenced_chunks_are_collected_and_shared_ones_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let args = [
        "--chunk-size",
        "1048576",
        "--no-fsync",
        "--gc-grace-secs",
        "1",
        "--orphan-grace-secs",
        "2",
    ];
    let server = ArborServer::start(data, &args).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket("gc-test")
        .send()
        .await
        .expect("bucket");

    // 3 MiB + 1 byte: four chunks.
    let first = bytes(3 * MIB + 1, 1);
    s3.put_object()
        .bucket("gc-test")
        .key("obj")
        .body(ByteStream::from(first))
        .send()
        .await
        .expect("put");
    settle(data, 4, "after the first put").await;
    // Overwrite with 2 MiB: the old four go, two new stay.
    let second = bytes(2 * MIB, 2);
    s3.put_object()
        .bucket("gc-test")
        .key("obj")
        .body(ByteStream::from(second.clone()))
        .send()
        .await
        .expect("overwrite");
    settle(data, 2, "after the overwrite").await;

    // A copy shares the chunks: deleting the source keeps them.
    s3.copy_object()
        .bucket("gc-test")
        .key("copy")
        .copy_source("gc-test/obj")
        .send()
        .await
        .expect("copy");
    s3.delete_object()
        .bucket("gc-test")
        .key("obj")
        .send()
        .await
        .expect("delete source");
    tokio::time::sleep(Duration::from_secs(3)).await;
    settle(data, 2, "after deleting a copied source").await;
    let got = s3
        .get_object()
        .bucket("gc-test")
        .key("copy")
        .send()
        .await
        .expect("get copy");
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec(),
        second
    );

    // Multipart: a replaced part and an aborted upload leave nothing.
    let id = s3
        .create_multipart_upload()
        .bucket("gc-test")
        .key("mp")
        .send()
        .await
        .expect("create");
    let id = id.upload_id().expect("id").to_owned();
    for (n, seed) in [(1, 10), (2, 11), (1, 12)] {
        s3.upload_part()
            .bucket("gc-test")
            .key("mp")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(bytes(5 * MIB, seed)))
            .send()
            .await
            .expect("part");
    }
    settle(data, 2 + 10, "two 5 MiB parts (the first replaced)").await;
    s3.abort_multipart_upload()
        .bucket("gc-test")
        .key("mp")
        .upload_id(&id)
        .send()
        .await
        .expect("abort");
    settle(data, 2, "after abort").await;

    // Complete with a part left out: its chunks go, the object's stay.
    let id = s3
        .create_multipart_upload()
        .bucket("gc-test")
        .key("mp")
        .send()
        .await
        .expect("create");
    let id = id.upload_id().expect("id").to_owned();
    let mut etags = Vec::new();
    for n in 1..=3 {
        let out = s3
            .upload_part()
            .bucket("gc-test")
            .key("mp")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(bytes(5 * MIB, 20 + n as u64)))
            .send()
            .await
            .expect("part");
        etags.push(out.e_tag().expect("etag").to_owned());
    }
    let parts = [(1, &etags[0]), (3, &etags[2])]
        .iter()
        .map(|(n, e)| {
            CompletedPart::builder()
                .part_number(*n)
                .e_tag(e.as_str())
                .build()
        })
        .collect();
    s3.complete_multipart_upload()
        .bucket("gc-test")
        .key("mp")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    settle(data, 2 + 10, "after completing without part 2").await;

    // An orphan (a chunk no version references, its id created in 2009) is
    // collected too; chunk files live under their id's last byte.
    let existing = chunk_files(&data.join("chunks"))
        .into_iter()
        .next()
        .expect("a chunk");
    let fan_out = data.join("chunks").join("ef");
    std::fs::create_dir_all(&fan_out).expect("fan-out dir");
    let orphan = fan_out.join("0123456789abcdef0123456789abcdef");
    std::fs::copy(&existing, &orphan).expect("plant orphan");
    settle(data, 2 + 10 + 1, "orphan planted").await;
    settle(data, 2 + 10, "orphan collected").await;

    // Deleting everything leaves no chunk behind.
    for key in ["copy", "mp"] {
        s3.delete_object()
            .bucket("gc-test")
            .key(key)
            .send()
            .await
            .expect("delete");
    }
    settle(data, 0, "after deleting everything").await;
    assert!(server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_upload_leaves_no_chunk_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let args = [
        "--chunk-size",
        "1048576",
        "--no-fsync",
        "--gc-grace-secs",
        "1",
        "--upload-expiry-secs",
        "3",
    ];
    let server = ArborServer::start(data, &args).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket("expiry")
        .send()
        .await
        .expect("bucket");
    let id = s3
        .create_multipart_upload()
        .bucket("expiry")
        .key("abandoned")
        .send()
        .await
        .expect("create");
    let id = id.upload_id().expect("id").to_owned();
    s3.upload_part()
        .bucket("expiry")
        .key("abandoned")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from(bytes(5 * MIB, 9)))
        .send()
        .await
        .expect("part");
    settle(data, 5, "the abandoned part's chunks").await;
    // Expired after 3 s, collected after the 1 s grace.
    settle(data, 0, "after expiry and GC").await;
    let e = s3
        .list_parts()
        .bucket("expiry")
        .key("abandoned")
        .upload_id(&id)
        .send()
        .await;
    assert!(e.is_err(), "the upload is gone");
    assert!(server.stop().expect("stop").success());
}
