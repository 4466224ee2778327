//! A gateway killed (SIGKILL) in the middle of PUTs and multipart uploads,
//! on a cluster of real processes: nothing partial becomes visible (each
//! key holds its last acknowledged object, or the one the kill cut, whole,
//! or nothing), and once the keys are deleted and the cut uploads aborted,
//! every chunk file the dead gateway wrote (orphans of writes that never
//! committed) is collected by the chunk servers' orphan sweep.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

use arbor_compat_tests::{
    ArborCluster, CLUSTER_ACCESS_KEY, CLUSTER_SECRET_KEY, ClusterOptions, chunk_files,
};
use common::{Body, MIB, client_once};

const BUCKET: &str = "gateway-crash";
const WRITERS: usize = 4;
const KEYS_PER_WRITER: usize = 3;
/// How long uploads run before the kill.
const STORM: Duration = Duration::from_secs(3);
/// How long the orphan sweep and the collector get.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// One writer's uploads until the kill: (key, body) acknowledged in order,
/// and the one the kill cut.
async fn writer(
    s3: aws_sdk_s3::Client,
    writer: usize,
    killing: Arc<AtomicBool>,
) -> (Vec<(String, Body)>, Option<(String, Body)>) {
    let mut acknowledged = Vec::new();
    for round in 0u64.. {
        let key = format!("w{writer}/k{}", round as usize % KEYS_PER_WRITER);
        let seed = (writer as u64) << 32 | round << 1;
        let (body, result) = if round % 3 == 2 {
            let last = 1000 + (round as usize * 7919) % MIB;
            let body = Body::Multipart { seed, last };
            (body, body.upload_multipart(&s3, BUCKET, &key).await)
        } else {
            let size = MIB + (round as usize * 104_729) % (2 * MIB);
            let body = Body::Single { seed, size };
            let result = s3
                .put_object()
                .bucket(BUCKET)
                .key(&key)
                .body(ByteStream::from(body.bytes()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("put: {:?}", e.code()));
            (body, result)
        };
        match result {
            Ok(()) => acknowledged.push((key, body)),
            Err(e) => {
                assert!(
                    killing.load(Ordering::SeqCst),
                    "writer {writer}: {e} before the kill"
                );
                return (acknowledged, Some((key, body)));
            }
        }
        if killing.load(Ordering::SeqCst) {
            break;
        }
    }
    (acknowledged, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_upload_leaves_nothing_partial_and_no_orphan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = ClusterOptions {
        zones: vec!["a".into(), "b".into(), "c".into()],
        meta_args: vec![
            "--gc-grace-secs".into(),
            "1".into(),
            "--chunk-heartbeat-timeout-secs".into(),
            "5".into(),
        ],
        chunk_args: vec!["--heartbeat-secs".into(), "1".into()],
        gateway_args: vec![
            "--chunk-size".into(),
            "1048576".into(),
            "--replication-factor".into(),
            "2".into(),
        ],
    };
    let mut cluster = ArborCluster::start(dir.path(), &options).expect("cluster");
    let s3 = client_once(
        &cluster.endpoint,
        CLUSTER_ACCESS_KEY,
        CLUSTER_SECRET_KEY,
        Duration::from_secs(60),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = s3.create_bucket().bucket(BUCKET).send().await {
        assert!(Instant::now() < deadline, "no bucket: {e:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let killing = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(s3.clone(), w, Arc::clone(&killing))))
        .collect();
    tokio::time::sleep(STORM).await;
    killing.store(true, Ordering::SeqCst);
    cluster.kill_gateway().expect("SIGKILL the gateway");
    let mut possible: BTreeMap<String, Vec<Option<Body>>> = BTreeMap::new();
    let (mut acknowledged, mut cut) = (0, 0);
    for handle in writers {
        let (done, last) = handle.await.expect("writer");
        acknowledged += done.len();
        for (key, body) in done {
            possible.insert(key, vec![Some(body)]);
        }
        if let Some((key, body)) = last {
            cut += 1;
            possible
                .entry(key)
                .or_insert_with(|| vec![None])
                .push(Some(body));
        }
    }
    eprintln!("{acknowledged} uploads acknowledged, {cut} cut by the kill");
    assert!(
        acknowledged > 0 && cut > 0,
        "the kill must cut uploads in flight"
    );

    // Through a new gateway: each key whole, as acknowledged or as cut.
    cluster.restart_gateway().expect("new gateway");
    let s3 = client_once(
        &cluster.endpoint,
        CLUSTER_ACCESS_KEY,
        CLUSTER_SECRET_KEY,
        Duration::from_secs(60),
    );
    for (key, options) in &possible {
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
                assert_eq!(e.code(), Some("NoSuchKey"), "get {key}");
                None
            }
        };
        assert!(
            options.iter().any(|o| o.map(Body::bytes) == found),
            "{key}: {} bytes, expected one of {options:?}",
            found.map_or(-1, |f| f.len() as i64)
        );
    }

    // Clean up what committed and what the kill left half-done; then the
    // chunk servers, restarted with a short orphan grace, sweep what no
    // record names.
    for key in possible.keys() {
        s3.delete_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .expect("delete");
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
    cluster.set_chunk_args(vec![
        "--heartbeat-secs".into(),
        "1".into(),
        "--orphan-grace-secs".into(),
        "2".into(),
    ]);
    for zone in ["a", "b", "c"] {
        cluster.stop_chunk(zone).expect("stop chunk server");
        cluster.restart_chunk(zone).expect("restart chunk server");
    }
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let left: usize = cluster
            .chunks
            .iter()
            .map(|c| chunk_files(&c.data.join("chunks")).len())
            .sum();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} chunk files left after {SETTLE_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cluster.stop().expect("stop");
}
