//! Group-commit benchmark: PutObject of 1 KiB inline objects, fsync on,
//! with 1, 16 and 64 concurrent proposers, on a one-node group and on a
//! three-node group over loopback HTTP (proposing on the leader in-process,
//! and through the remote client). Prints a Markdown table.
//!
//! Run: `cargo run -p arbor-meta --release --bin meta-bench [-- SECONDS]`
//! (SECONDS per measurement, default 2; each is preceded by a 0.5 s
//! warm-up and repeated [`REPEATS`] times; medians are shown).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor_meta::records::WriteCondition;
use arbor_meta::records::{ObjectData, ObjectHeaders, ObjectVersion};
use arbor_meta::{MetaClient, MetaConfig, MetaNode};

const BUCKET: &str = "bench";
const OBJECT_SIZE: usize = 1024;
const PROPOSERS: [usize; 3] = [1, 16, 64];
const WARM_UP: Duration = Duration::from_millis(500);
/// Each measurement is repeated; the table shows medians.
const REPEATS: usize = 3;

fn version(i: u64) -> ObjectVersion {
    let mut body = vec![0u8; OBJECT_SIZE];
    body[..8].copy_from_slice(&i.to_be_bytes());
    ObjectVersion {
        generation: 0,
        size: OBJECT_SIZE as u64,
        etag: format!("{i:032x}"),
        last_modified_ms: 1_700_000_000_000,
        headers: ObjectHeaders::default(),
        user_metadata: Vec::new(),
        checksum: None,
        storage_class: None,
        parts: Vec::new(),
        tags: Vec::new(),
        acl: Default::default(),
        data: ObjectData::Inline(body),
        stamp: Default::default(),
    }
}

struct Outcome {
    puts: usize,
    entries: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

/// Runs `proposers` tasks putting distinct keys for `warm_up + duration`;
/// counts only puts that start after the warm-up. `leader` gives the log
/// index so entries per second can be reported.
async fn measure(
    client: &MetaClient,
    leader: &MetaNode,
    proposers: usize,
    duration: Duration,
    run: usize,
) -> Outcome {
    let start = Instant::now();
    let measure_from = start + WARM_UP;
    let stop_at = measure_from + duration;
    let mut tasks = Vec::new();
    for p in 0..proposers {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            loop {
                let begun = Instant::now();
                if begun >= stop_at {
                    break;
                }
                let key = format!("r{run}/p{p:02}/k{n:08}");
                client
                    .put_object(BUCKET, &key, version(n), WriteCondition::None, Vec::new())
                    .await
                    .expect("put");
                if begun >= measure_from {
                    latencies.push(begun.elapsed());
                }
                n += 1;
            }
            latencies
        }));
    }
    tokio::time::sleep_until((measure_from).into()).await;
    let log_from = leader.raft_metrics().last_log_index.unwrap_or(0);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("proposer task"));
    }
    let log_to = leader.raft_metrics().last_log_index.unwrap_or(0);
    let elapsed = measure_from.elapsed();
    latencies.sort();
    let at = |q: f64| -> Duration {
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(i).copied().unwrap_or_default()
    };
    Outcome {
        puts: latencies.len(),
        entries: log_to.saturating_sub(log_from),
        elapsed,
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// Measures every proposer count `REPEATS` times, interleaved (1, 16, 64,
/// 1, 16, 64, ...) so a noisy neighbour hurts all counts alike, and prints
/// the median of each. `first_run` keeps the keys of setups apart.
async fn bench(
    setup: &str,
    client: &MetaClient,
    leader: &MetaNode,
    duration: Duration,
    first_run: usize,
) {
    let mut outcomes: Vec<Vec<Outcome>> = PROPOSERS.iter().map(|_| Vec::new()).collect();
    let mut run = first_run;
    for _ in 0..REPEATS {
        for (i, proposers) in PROPOSERS.into_iter().enumerate() {
            outcomes[i].push(measure(client, leader, proposers, duration, run).await);
            run += 1;
        }
    }
    let median = |values: &mut Vec<f64>| -> f64 {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let mut base = None;
    for (proposers, runs) in PROPOSERS.into_iter().zip(&outcomes) {
        let rate = median(
            &mut runs
                .iter()
                .map(|o| o.puts as f64 / o.elapsed.as_secs_f64())
                .collect(),
        );
        let per_entry = median(
            &mut runs
                .iter()
                .map(|o| o.puts as f64 / o.entries.max(1) as f64)
                .collect(),
        );
        let p50 = median(&mut runs.iter().map(|o| o.p50.as_secs_f64()).collect());
        let p99 = median(&mut runs.iter().map(|o| o.p99.as_secs_f64()).collect());
        let all: Vec<String> = runs
            .iter()
            .map(|o| format!("{:.0}", o.puts as f64 / o.elapsed.as_secs_f64()))
            .collect();
        let base_rate = *base.get_or_insert(rate);
        println!(
            "| {setup} | {proposers} | {rate:.0} | {:.1}x | {per_entry:.1} | {:.2} | {:.2} | {} |",
            rate / base_rate,
            p50 * 1000.0,
            p99 * 1000.0,
            all.join(", ")
        );
    }
}

fn fresh_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("SECONDS is a number"))
        .unwrap_or(2);
    let duration = Duration::from_secs(seconds);
    let root = std::env::temp_dir().join(format!("meta-bench-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&root).expect("bench dir");

    println!(
        "| setup | proposers | puts/s | vs 1 | puts per entry | p50 ms | p99 ms | puts/s of each run |"
    );
    println!("|---|---|---|---|---|---|---|---|");

    // One node, in-process.
    {
        let node = MetaNode::open_single(MetaConfig::new(fresh_dir(&root, "single"), 1))
            .await
            .expect("open single node");
        let client = node.client();
        client.create_bucket(BUCKET, 1).await.expect("bucket");
        bench("1 node, in-process", &client, &node, duration, 0).await;
        node.shutdown().await.expect("shutdown");
    }

    // Three nodes over loopback HTTP.
    {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let mut nodes = Vec::new();
        for id in 1..=3u64 {
            let config = MetaConfig::new(fresh_dir(&root, &format!("node{id}")), id)
                .with_listen_addr(any)
                .with_bootstrap(id == 1);
            nodes.push(MetaNode::open(config).await.expect("open node"));
        }
        let leader: Arc<MetaNode> = nodes[0].clone();
        for node in &nodes[1..] {
            leader
                .add_learner(node.node_id(), node.advertise_addr())
                .await
                .expect("add learner");
        }
        leader
            .change_membership([1, 2, 3].into())
            .await
            .expect("promote");
        let client = leader.client();
        client.create_bucket(BUCKET, 1).await.expect("bucket");
        bench("3 nodes, on the leader", &client, &leader, duration, 0).await;
        let remote = MetaClient::remote(
            nodes
                .iter()
                .map(|n| n.advertise_addr().to_owned())
                .collect(),
        );
        bench(
            "3 nodes, remote client",
            &remote,
            &leader,
            duration,
            PROPOSERS.len(),
        )
        .await;
        for node in nodes {
            node.shutdown().await.expect("shutdown");
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}
