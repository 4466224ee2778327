//! Crash consistency of `arbor serve`: a write storm (PUTs from 0 B to
//! 9 MiB, inline and chunked, multipart uploads, DeleteObject and
//! DeleteObjects) is cut by SIGKILL at a random moment, again and again.
//! After every restart each key must hold exactly what its last
//! acknowledged write left, or what the one write cut by the kill would
//! have left: never anything else, never part of an object. At the end,
//! with every key deleted, the garbage collector must leave no chunk file
//! behind (the chunks of writes the kill cut are orphans).
//!
//! `ARBOR_CRASH_KILLS` sets the number of kills (10 by default; the
//! documented long run is 1,000), `ARBOR_CRASH_SEED` replays a run (the
//! seed is printed).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use arbor_compat_tests::{ArborServer, chunk_files};
use common::{Body, MIB, client_once};

const BUCKET: &str = "crash";
const KILLS_DEFAULT: usize = 10;
/// Bound on one request of the storm.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
const WORKERS: usize = 4;
/// Keys per worker; each key is written by one worker only, so its
/// operations are sequential and the model below is exact.
const KEYS_PER_WORKER: usize = 4;
/// The smallest chunk size Arbor accepts: several chunk files per object.
const CHUNK: usize = 65536;
/// How long a storm runs before the kill, at most.
const STORM_MAX: Duration = Duration::from_millis(1500);
/// How long the collector gets to leave no file behind.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

/// What a key may hold after a restart: `None` is no object. One entry
/// after an acknowledged write; two when the write cut by the kill may or
/// may not have committed.
type Possible = Vec<Option<Body>>;

fn key_name(worker: usize, index: usize) -> String {
    // Some keys share directories, some sit deeper.
    format!("w{worker}/d{}/k{index}", index % 2)
}

/// One write of the storm, as the worker knows it.
enum Write {
    Put(String, Body),
    Delete(Vec<String>),
}

/// A worker's storm: writes to its own keys until the kill. Returns the
/// acknowledged writes in order and the write the kill cut, if any. Any
/// failure before the kill began fails the test.
async fn storm(
    s3: aws_sdk_s3::Client,
    worker: usize,
    seed: u64,
    killing: Arc<AtomicBool>,
) -> (Vec<Write>, Option<Write>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut acknowledged = Vec::new();
    loop {
        let key = key_name(worker, rng.random_range(0..KEYS_PER_WORKER));
        let choice = rng.random_range(0..100u32);
        let write_seed = rng.random::<u64>() >> 8;
        let (write, result): (Write, Result<(), String>) = if choice < 70 {
            let size = match rng.random_range(0..10u32) {
                0 => 0,
                1..=4 => rng.random_range(1..4096),
                5..=8 => rng.random_range(CHUNK..MIB),
                _ => rng.random_range(MIB..9 * MIB),
            };
            let body = Body::Single {
                seed: write_seed,
                size,
            };
            let result = s3
                .put_object()
                .bucket(BUCKET)
                .key(&key)
                .body(ByteStream::from(body.bytes()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("put {key}: {:?}", e.code()));
            (Write::Put(key, body), result)
        } else if choice < 80 {
            let body = Body::Multipart {
                seed: write_seed,
                last: rng.random_range(0..2 * CHUNK),
            };
            let result = body.upload_multipart(&s3, BUCKET, &key).await;
            (Write::Put(key, body), result)
        } else if choice < 90 {
            let result = s3
                .delete_object()
                .bucket(BUCKET)
                .key(&key)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("delete {key}: {:?}", e.code()));
            (Write::Delete(vec![key]), result)
        } else {
            let keys: Vec<String> = (0..KEYS_PER_WORKER)
                .filter(|_| rng.random_bool(0.5))
                .map(|i| key_name(worker, i))
                .collect();
            if keys.is_empty() {
                continue;
            }
            let result = delete_objects(&s3, &keys).await;
            (Write::Delete(keys), result)
        };
        match result {
            Ok(()) => acknowledged.push(write),
            Err(e) => {
                assert!(
                    killing.load(Ordering::SeqCst),
                    "worker {worker}: {e} before the kill"
                );
                return (acknowledged, Some(write));
            }
        }
        if killing.load(Ordering::SeqCst) {
            return (acknowledged, None);
        }
    }
}

async fn delete_objects(s3: &aws_sdk_s3::Client, keys: &[String]) -> Result<(), String> {
    let objects = keys
        .iter()
        .map(|k| ObjectIdentifier::builder().key(k).build().expect("id"))
        .collect();
    let out = s3
        .delete_objects()
        .bucket(BUCKET)
        .delete(
            Delete::builder()
                .set_objects(Some(objects))
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .map_err(|e| format!("delete-objects: {:?}", e.code()))?;
    if out.errors().is_empty() {
        Ok(())
    } else {
        Err(format!("delete-objects: {:?}", out.errors()))
    }
}

/// Folds a worker's storm into the model.
fn apply(model: &mut BTreeMap<String, Possible>, acknowledged: Vec<Write>, cut: Option<Write>) {
    for write in acknowledged {
        match write {
            Write::Put(key, body) => {
                model.insert(key, vec![Some(body)]);
            }
            Write::Delete(keys) => {
                for key in keys {
                    model.insert(key, vec![None]);
                }
            }
        }
    }
    match cut {
        None => {}
        Some(Write::Put(key, body)) => model
            .entry(key)
            .or_insert_with(|| vec![None])
            .push(Some(body)),
        Some(Write::Delete(keys)) => {
            for key in keys {
                model.entry(key).or_insert_with(|| vec![None]).push(None);
            }
        }
    }
}

/// Reads every key back and checks it against the model, which then holds
/// what was found.
async fn verify(s3: &aws_sdk_s3::Client, model: &mut BTreeMap<String, Possible>, round: usize) {
    for (key, possible) in model.iter_mut() {
        let found = match s3.get_object().bucket(BUCKET).key(key).send().await {
            Ok(out) => Some(
                out.body
                    .collect()
                    .await
                    .expect("body")
                    .into_bytes()
                    .to_vec(),
            ),
            Err(e) => {
                let code = e.code().map(str::to_owned);
                assert_eq!(
                    code.as_deref(),
                    Some("NoSuchKey"),
                    "round {round}: get {key}"
                );
                None
            }
        };
        let matched = possible
            .iter()
            .find(|p| p.map(Body::bytes) == found)
            .copied();
        let Some(matched) = matched else {
            panic!(
                "round {round}: {key} holds {} bytes, expected one of {possible:?}",
                found.map_or(-1, |f| f.len() as i64)
            );
        };
        *possible = vec![matched];
    }
    // Listings agree with reads.
    let mut listed = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .set_continuation_token(token)
            .send()
            .await
            .expect("list");
        listed.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let present: Vec<String> = model
        .iter()
        .filter(|(_, p)| p[0].is_some())
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(listed, present, "round {round}: listing");
}

fn start(data: &Path, orphan_grace_secs: &str) -> ArborServer {
    let chunk_size = CHUNK.to_string();
    let args = [
        "--chunk-size",
        &chunk_size,
        "--gc-grace-secs",
        "1",
        "--orphan-grace-secs",
        orphan_grace_secs,
    ];
    ArborServer::start(data, &args).expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_and_nothing_is_left_behind() {
    let kills: usize = std::env::var("ARBOR_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(KILLS_DEFAULT);
    let seed: u64 = std::env::var("ARBOR_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash suite: {kills} kills, ARBOR_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    // fsync on (the default): a kill must not lose an acknowledged write.
    // The orphan grace stays long during the storms so that no upload is
    // refused for a stale chunk.
    let server = start(data, "86400");
    client_once(
        &server.endpoint,
        &server.access_key,
        &server.secret_key,
        CLIENT_TIMEOUT,
    )
    .create_bucket()
    .bucket(BUCKET)
    .send()
    .await
    .expect("bucket");
    let mut server = Some(server);
    let mut model: BTreeMap<String, Possible> = BTreeMap::new();
    let mut acknowledged_total = 0;
    let mut cut_total = 0;
    let started = Instant::now();
    for round in 0..kills {
        let running = match server.take() {
            Some(server) => server,
            None => start(data, "86400"),
        };
        let s3 = client_once(
            &running.endpoint,
            &running.access_key,
            &running.secret_key,
            CLIENT_TIMEOUT,
        );
        verify(&s3, &mut model, round).await;
        let killing = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                tokio::spawn(storm(
                    s3.clone(),
                    worker,
                    rng.random(),
                    Arc::clone(&killing),
                ))
            })
            .collect();
        let storm_time = rng.random_range(Duration::from_millis(100)..STORM_MAX);
        tokio::time::sleep(storm_time).await;
        killing.store(true, Ordering::SeqCst);
        drop(running); // SIGKILL, then wait for the exit
        for worker in workers {
            let (acknowledged, cut) = worker.await.expect("worker");
            acknowledged_total += acknowledged.len();
            cut_total += usize::from(cut.is_some());
            apply(&mut model, acknowledged, cut);
        }
    }
    eprintln!(
        "{kills} kills in {:?}: {acknowledged_total} acknowledged writes, {cut_total} cut by a kill",
        started.elapsed()
    );

    // Last restart: everything reads back; then, with every key deleted and
    // every upload aborted, the collector leaves no chunk file.
    let server = start(data, "2");
    let s3 = client_once(
        &server.endpoint,
        &server.access_key,
        &server.secret_key,
        CLIENT_TIMEOUT,
    );
    verify(&s3, &mut model, kills).await;
    let keys: Vec<String> = model.keys().cloned().collect();
    for batch in keys.chunks(1000) {
        delete_objects(&s3, batch).await.expect("delete all");
    }
    let uploads = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("uploads");
    for upload in uploads.uploads() {
        s3.abort_multipart_upload()
            .bucket(BUCKET)
            .key(upload.key().unwrap_or_default())
            .upload_id(upload.upload_id().unwrap_or_default())
            .send()
            .await
            .expect("abort");
    }
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let left = chunk_files(&data.join("chunks")).len();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} chunk files left behind after {SETTLE_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    server.stop().expect("stop");
}
