//! True directories through S3: a recursive delete (Arbor's extension,
//! `DELETE /bucket/prefix/?arbor-recursive`) removes a directory with
//! every key below it at once, and the background reclaimer and garbage
//! collector then release its metadata and every chunk file.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

use arbor_compat_tests::{ArborServer, chunk_files};
use common::{arbor_fs, bytes, client, settle, signed};

const BUCKET: &str = "tree";
/// The smallest chunk size Arbor accepts: many chunk files per object.
const CHUNK: usize = 65536;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recursive_delete_removes_a_directory_at_once_and_its_chunks_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let chunk_size = CHUNK.to_string();
    let args = [
        "--chunk-size",
        &chunk_size,
        "--no-fsync",
        "--gc-grace-secs",
        "1",
    ];
    let server = ArborServer::start(data, &args).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");

    // Under dir/: 60 small keys (inline) and 4 objects of 3 chunks each,
    // at several depths; beside it, one object that must stay.
    for i in 0..60 {
        let key = format!("dir/{}/k{i}", i % 5);
        s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(bytes(100, i)))
            .send()
            .await
            .expect("small put");
    }
    for (i, key) in ["dir/a", "dir/x/y/b", "dir/x/c", "dir/"].iter().enumerate() {
        s3.put_object()
            .bucket(BUCKET)
            .key(*key)
            .body(ByteStream::from(bytes(3 * CHUNK, 100 + i as u64)))
            .send()
            .await
            .expect("chunked put");
    }
    let kept = bytes(2 * CHUNK + 1, 7);
    s3.put_object()
        .bucket(BUCKET)
        .key("dir0/kept")
        .body(ByteStream::from(kept.clone()))
        .send()
        .await
        .expect("kept put");
    settle(data, 4 * 3 + 3, "before the delete").await;

    // Not a prefix: refused, nothing deleted.
    let refused = signed(&server, "DELETE", &format!("/{BUCKET}/dir?arbor-recursive"));
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(refused.error_code().as_deref(), Some("InvalidArgument"));
    // On the bucket itself: never a DeleteBucket, whatever the bucket holds.
    let empty = "tree-empty";
    s3.create_bucket()
        .bucket(empty)
        .send()
        .await
        .expect("empty bucket");
    for bucket in [BUCKET, empty] {
        let refused = signed(&server, "DELETE", &format!("/{bucket}/?arbor-recursive"));
        assert_eq!(refused.status, 501, "{refused:?}");
        assert_eq!(refused.error_code().as_deref(), Some("NotImplemented"));
    }
    s3.head_bucket()
        .bucket(empty)
        .send()
        .await
        .expect("the empty bucket stays");

    let started = Instant::now();
    let deleted = signed(
        &server,
        "DELETE",
        &format!("/{BUCKET}/dir/?arbor-recursive"),
    );
    eprintln!(
        "recursive delete of 64 keys answered in {:?}",
        started.elapsed()
    );
    assert_eq!(deleted.status, 204, "{deleted:?}");

    // Gone from listings and reads at once; the neighbour stays.
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["dir0/kept"]);
    let gone = s3.get_object().bucket(BUCKET).key("dir/x/y/b").send().await;
    assert!(gone.is_err(), "a deleted key is not readable");

    // The reclaimer releases the subtree, the collector its chunks.
    settle(data, 3, "after the reclaimer and the collector").await;
    let status = signed(&server, "GET", "/_arbor/status");
    assert_eq!(status.status, 200);
    let status: serde_json::Value = serde_json::from_slice(&status.body).expect("json");
    assert_eq!(status["reclaim"]["pending_directories"], 0, "{status}");
    assert_eq!(status["reclaim"]["reclaimed_objects"], 64, "{status}");

    let body = s3
        .get_object()
        .bucket(BUCKET)
        .key("dir0/kept")
        .send()
        .await
        .expect("get kept")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert_eq!(body.as_ref(), kept.as_slice());
    // Deleting it again is a no-op, as for any missing key.
    let again = signed(
        &server,
        "DELETE",
        &format!("/{BUCKET}/dir/?arbor-recursive"),
    );
    assert_eq!(again.status, 204);
    server.stop().expect("stop");
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, body: Vec<u8>) -> String {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
        .e_tag()
        .unwrap_or_default()
        .to_owned()
}

async fn read(s3: &aws_sdk_s3::Client, key: &str) -> Option<Vec<u8>> {
    let object = s3.get_object().bucket(BUCKET).key(key).send().await.ok()?;
    Some(
        object
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec(),
    )
}

async fn keys(s3: &aws_sdk_s3::Client) -> Vec<String> {
    s3.list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(error: &E) -> Option<&str> {
    error.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_object_moves_names_not_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let chunk_size = CHUNK.to_string();
    let server =
        ArborServer::start(data, &["--chunk-size", &chunk_size, "--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");

    let body = bytes(5 * CHUNK + 3, 1);
    let etag = put(&s3, "src/deep/a", body.clone()).await;
    settle(data, 6, "after the put").await;

    let started = Instant::now();
    s3.rename_object()
        .bucket(BUCKET)
        .key("dst/b")
        .rename_source(format!("{BUCKET}/src/deep/a"))
        .client_token("token-1")
        .send()
        .await
        .expect("rename");
    eprintln!(
        "RenameObject of a 6-chunk object took {:?}",
        started.elapsed()
    );
    assert_eq!(read(&s3, "dst/b").await, Some(body.clone()));
    assert_eq!(read(&s3, "src/deep/a").await, None);
    assert_eq!(
        keys(&s3).await,
        ["dst/b"],
        "the emptied directories are gone"
    );
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("dst/b")
        .send()
        .await
        .expect("head");
    assert_eq!(head.e_tag(), Some(etag.as_str()), "same ETag");
    settle(data, 6, "no chunk copied or deleted").await;

    // A retry with the same token succeeds again; other parameters fail.
    s3.rename_object()
        .bucket(BUCKET)
        .key("dst/b")
        .rename_source(format!("{BUCKET}/src/deep/a"))
        .client_token("token-1")
        .send()
        .await
        .expect("retried rename");
    let reused = s3
        .rename_object()
        .bucket(BUCKET)
        .key("elsewhere")
        .rename_source(format!("{BUCKET}/dst/b"))
        .client_token("token-1")
        .send()
        .await
        .expect_err("token reused");
    assert_eq!(
        code(&reused),
        Some("IdempotencyParameterMismatch"),
        "{reused:?}"
    );

    // Conditions on the destination and on the source.
    put(&s3, "taken", bytes(10, 2)).await;
    let taken = s3
        .rename_object()
        .bucket(BUCKET)
        .key("taken")
        .rename_source(format!("{BUCKET}/dst/b"))
        .destination_if_none_match("*")
        .send()
        .await
        .expect_err("destination exists");
    assert_eq!(code(&taken), Some("PreconditionFailed"), "{taken:?}");
    let stale = s3
        .rename_object()
        .bucket(BUCKET)
        .key("other")
        .rename_source(format!("{BUCKET}/dst/b"))
        .source_if_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .expect_err("source changed");
    assert_eq!(code(&stale), Some("PreconditionFailed"), "{stale:?}");
    let missing = s3
        .rename_object()
        .bucket(BUCKET)
        .key("other")
        .rename_source(format!("{BUCKET}/nothing"))
        .send()
        .await
        .expect_err("no source");
    assert_eq!(code(&missing), Some("NoSuchKey"), "{missing:?}");
    let across = s3
        .rename_object()
        .bucket(BUCKET)
        .key("other")
        .rename_source("another-bucket/dst/b")
        .send()
        .await
        .expect_err("across buckets");
    assert_eq!(code(&across), Some("InvalidRequest"), "{across:?}");
    assert_eq!(keys(&s3).await, ["dst/b", "taken"], "nothing moved");

    // A whole directory, Arbor's extension: both names end in '/'.
    for key in ["tree/1", "tree/x/2", "tree/x/y/3", "tree/"] {
        put(&s3, key, bytes(20, 3)).await;
    }
    s3.rename_object()
        .bucket(BUCKET)
        .key("moved/")
        .rename_source(format!("{BUCKET}/tree/"))
        .send()
        .await
        .expect("directory rename");
    assert_eq!(
        keys(&s3).await,
        [
            "dst/b",
            "moved/",
            "moved/1",
            "moved/x/2",
            "moved/x/y/3",
            "taken"
        ]
    );
    let one_sided = s3
        .rename_object()
        .bucket(BUCKET)
        .key("flat")
        .rename_source(format!("{BUCKET}/moved/"))
        .send()
        .await
        .expect_err("a directory onto a key");
    assert_eq!(code(&one_sided), Some("InvalidArgument"), "{one_sided:?}");
    let into_itself = s3
        .rename_object()
        .bucket(BUCKET)
        .key("moved/inner/")
        .rename_source(format!("{BUCKET}/moved/"))
        .send()
        .await
        .expect_err("into itself");
    assert_eq!(
        code(&into_itself),
        Some("InvalidArgument"),
        "{into_itself:?}"
    );
    server.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_racing_a_conditional_put_lets_exactly_one_win() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(dir.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    for round in 0..20 {
        let source = format!("src{round}");
        let destination = format!("dst{round}");
        put(&s3, &source, bytes(10, round)).await;
        let rename = s3
            .rename_object()
            .bucket(BUCKET)
            .key(&destination)
            .rename_source(format!("{BUCKET}/{source}"))
            .destination_if_none_match("*")
            .send();
        let write = s3
            .put_object()
            .bucket(BUCKET)
            .key(&destination)
            .if_none_match("*")
            .body(ByteStream::from(bytes(11, 1000 + round)))
            .send();
        let (renamed, written) = tokio::join!(rename, write);
        assert!(
            renamed.is_ok() != written.is_ok(),
            "round {round}: exactly one wins: {renamed:?} {written:?}"
        );
        let expected = if renamed.is_ok() {
            bytes(10, round)
        } else {
            bytes(11, 1000 + round)
        };
        assert_eq!(read(&s3, &destination).await, Some(expected));
    }
    server.stop().expect("stop");
}

/// What a lister saw of the `N` keys that move between `a/` and `b/`:
/// how many under each prefix.
fn census(listed: &[String]) -> (usize, usize) {
    let under = |prefix: &str| listed.iter().filter(|k| k.starts_with(prefix)).count();
    (under("a/"), under("b/"))
}

/// Renames `from` to `to` the way a flat store must: copy every key, then
/// delete the originals. Only here to show the checker catches a mix.
async fn copy_and_delete(s3: &aws_sdk_s3::Client, from: &str, to: &str) {
    let moving: Vec<String> = keys(s3)
        .await
        .into_iter()
        .filter(|k| k.starts_with(from))
        .collect();
    for key in &moving {
        s3.copy_object()
            .bucket(BUCKET)
            .key(format!("{to}{}", &key[from.len()..]))
            .copy_source(format!("{BUCKET}/{key}"))
            .send()
            .await
            .expect("copy");
    }
    for key in &moving {
        s3.delete_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .expect("delete");
    }
}

/// Moves the directory back and forth `rounds` times (atomically, or by
/// copy and delete) while two listers check every listing; returns the
/// mixed listings they saw.
async fn listings_during_moves(
    s3: &aws_sdk_s3::Client,
    keys_total: usize,
    rounds: usize,
    atomic: bool,
) -> Vec<(usize, usize)> {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut listers = Vec::new();
    for _ in 0..2 {
        let (s3, done) = (s3.clone(), done.clone());
        listers.push(tokio::spawn(async move {
            let mut mixed = Vec::new();
            let mut listings = 0;
            // Bounded: the movers finish within `rounds` renames.
            while !done.load(std::sync::atomic::Ordering::SeqCst) && listings < 10_000 {
                let seen = census(&keys(&s3).await);
                if seen != (keys_total, 0) && seen != (0, keys_total) {
                    mixed.push(seen);
                }
                listings += 1;
            }
            mixed
        }));
    }
    for round in 0..rounds {
        let (from, to) = if round % 2 == 0 {
            ("a/", "b/")
        } else {
            ("b/", "a/")
        };
        if atomic {
            s3.rename_object()
                .bucket(BUCKET)
                .key(to)
                .rename_source(format!("{BUCKET}/{from}"))
                .send()
                .await
                .expect("directory rename");
        } else {
            copy_and_delete(s3, from, to).await;
        }
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut mixed = Vec::new();
    for lister in listers {
        mixed.extend(lister.await.expect("lister"));
    }
    mixed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listers_never_see_a_directory_half_renamed() {
    const KEYS: usize = 40;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(dir.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    for i in 0..KEYS {
        put(&s3, &format!("a/{}/k{i}", i % 4), bytes(8, i as u64)).await;
    }
    let mixed = listings_during_moves(&s3, KEYS, 40, true).await;
    assert!(mixed.is_empty(), "atomic renames showed mixes: {mixed:?}");
    // The same checker against a copy-and-delete rename sees the mix.
    let mixed = listings_during_moves(&s3, KEYS, 2, false).await;
    assert!(
        !mixed.is_empty(),
        "the checker must catch a copy-and-delete rename"
    );
    server.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbor_fs_moves_and_deletes_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(dir.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    for key in ["logs/2024/a b", "logs/2024/c+d", "logs/x", "keep"] {
        put(&s3, key, bytes(5, 1)).await;
    }
    let (code, out, err) = arbor_fs(
        &server,
        &["mv", "s3://tree/logs/", "s3://tree/archive/logs/"],
    );
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(out.contains("renamed"), "{out}");
    assert_eq!(
        keys(&s3).await,
        [
            "archive/logs/2024/a b",
            "archive/logs/2024/c+d",
            "archive/logs/x",
            "keep"
        ]
    );
    let (code, out, err) = arbor_fs(
        &server,
        &["mv", "s3://tree/archive/logs/2024/a b", "s3://tree/ab"],
    );
    assert_eq!(code, Some(0), "{out} {err}");
    assert_eq!(read(&s3, "ab").await, Some(bytes(5, 1)));

    // Refusals exit 1 with the server's code; usage errors exit 2.
    let (code, _, err) = arbor_fs(&server, &["mv", "s3://tree/none", "s3://tree/x"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("NoSuchKey"), "{err}");
    let (code, _, _) = arbor_fs(&server, &["mv", "s3://tree/keep"]);
    assert_eq!(code, Some(2));

    // Onto a directory that holds keys: refused, unless --replace.
    put(&s3, "other/z", bytes(5, 2)).await;
    let (code, _, err) = arbor_fs(&server, &["mv", "s3://tree/other/", "s3://tree/archive/"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("DirectoryNotEmpty"), "{err}");
    let (code, out, err) = arbor_fs(
        &server,
        &["mv", "--replace", "s3://tree/other/", "s3://tree/archive/"],
    );
    assert_eq!(code, Some(0), "{out} {err}");
    assert_eq!(keys(&s3).await, ["ab", "archive/z", "keep"]);

    let (code, out, err) = arbor_fs(&server, &["rm", "-r", "--wait", "s3://tree/archive/"]);
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(out.contains("0 directories pending"), "{out}");
    assert_eq!(keys(&s3).await, ["ab", "keep"]);
    let (code, _, err) = arbor_fs(&server, &["rm", "-r", "s3://tree/keep"]);
    assert_eq!(code, Some(1), "{err}");
    server.stop().expect("stop");
}

/// The issue's scale through S3: 100,000 keys (400 of them with chunk
/// files) in one directory tree go in one request, which answers at once
/// (timed and printed); the reclaimer then releases every key and the
/// collector every chunk file (counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recursive_delete_of_100000_keys_through_s3() {
    const KEYS: usize = 100_000;
    /// One key in this many holds chunk files.
    const CHUNKED_EVERY: usize = 250;
    const IN_FLIGHT: usize = 32;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let chunk_size = CHUNK.to_string();
    let args = [
        "--chunk-size",
        &chunk_size,
        "--no-fsync",
        "--gc-grace-secs",
        "1",
    ];
    let server = ArborServer::start(data, &args).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let small = bytes(10, 1);
    let chunked = bytes(2 * CHUNK, 2);
    let started = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|worker| {
            let s3 = s3.clone();
            let (small, chunked) = (small.clone(), chunked.clone());
            tokio::spawn(async move {
                for i in (worker..KEYS).step_by(IN_FLIGHT) {
                    let body = if i % CHUNKED_EVERY == 0 {
                        chunked.clone()
                    } else {
                        small.clone()
                    };
                    s3.put_object()
                        .bucket(BUCKET)
                        .key(format!("big/{}/{}/k{i}", i % 100, (i / 100) % 10))
                        .body(ByteStream::from(body))
                        .send()
                        .await
                        .expect("put");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let filled = started.elapsed();
    put(&s3, "kept", b"kept".to_vec()).await;
    let files = 2 * KEYS.div_ceil(CHUNKED_EVERY);
    settle(data, files, "before the delete").await;

    let started = Instant::now();
    let deleted = signed(
        &server,
        "DELETE",
        &format!("/{BUCKET}/big/?arbor-recursive"),
    );
    let answered = started.elapsed();
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_eq!(keys(&s3).await, ["kept"], "gone from listings at once");
    assert!(read(&s3, "big/7/0/k7").await.is_none(), "and from reads");

    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    loop {
        let status = signed(&server, "GET", "/_arbor/status");
        let status: serde_json::Value = serde_json::from_slice(&status.body).expect("json");
        if status["reclaim"]["pending_directories"] == 0
            && chunk_files(&data.join("chunks")).is_empty()
        {
            assert_eq!(
                status["reclaim"]["reclaimed_objects"], KEYS as u64,
                "{status}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "not reclaimed: {status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "{KEYS} keys written in {filled:?}; recursive delete answered in {answered:?}; \
         metadata and {files} chunk files released in {:?}",
        started.elapsed()
    );
    assert_eq!(read(&s3, "kept").await.as_deref(), Some(&b"kept"[..]));
    server.stop().expect("stop");
}
