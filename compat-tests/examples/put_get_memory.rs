//! Benchmark: one large PutObject and GetObject through a real `arbor serve`
//! (or, with `--cluster`, through an `arbor gateway` writing three replicas
//! to three local chunk servers), reporting throughput and the serving
//! process's peak resident memory (VmHWM), to show that memory stays
//! bounded whatever the object size.
//!
//! ```sh
//! cargo build --release --workspace --bins --examples
//! ./target/release/examples/put_get_memory 2048
//! ./target/release/examples/put_get_memory 1024 --cluster
//! ```
//! The argument is the object size in MiB (default 2048). Results go in
//! docs/benchmarks.md.

use std::time::Instant;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use md5::Digest;

use arbor_compat_tests::{
    ArborCluster, ArborServer, CLUSTER_ACCESS_KEY, CLUSTER_SECRET_KEY, ClusterOptions,
};

/// What the benchmark runs against.
enum Target {
    Serve(ArborServer),
    Cluster(ArborCluster),
}

const PIECE: usize = 1 << 20;

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cluster = args.iter().any(|a| a == "--cluster");
    let size_mib: usize = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2048);
    let size = size_mib * PIECE;
    let work = tempfile::tempdir()?;
    // The body: a file of pseudo-random bytes, streamed from disk by the SDK.
    let path = work.path().join("body");
    let mut md5 = md5::Md5::new();
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut state: u64 = 0x1234_5678_9abc_def1;
        let mut piece = vec![0u8; PIECE];
        for _ in 0..size_mib {
            for word in piece.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes());
            }
            md5.update(&piece);
            file.write_all(&piece)?;
        }
        file.flush()?;
    }
    let expected_md5 = hex::encode(md5.finalize());

    let (target, pid, endpoint, access_key, secret_key) = if cluster {
        let zones = ["a", "b", "c"].map(str::to_owned).to_vec();
        let options = ClusterOptions {
            zones,
            chunk_args: vec!["--heartbeat-secs".to_owned(), "1".to_owned()],
            ..ClusterOptions::default()
        };
        let cluster = ArborCluster::start(&work.path().join("cluster"), &options)?;
        // Let every chunk server register (heartbeats every second).
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let pid = cluster
            .gateway
            .pid()
            .ok_or_else(|| anyhow::anyhow!("no pid"))?;
        let endpoint = cluster.endpoint.clone();
        (
            Target::Cluster(cluster),
            pid,
            endpoint,
            CLUSTER_ACCESS_KEY.to_owned(),
            CLUSTER_SECRET_KEY.to_owned(),
        )
    } else {
        let server = ArborServer::start(&work.path().join("data"), &[])?;
        let pid = server.pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
        let (endpoint, access, secret) = (
            server.endpoint.clone(),
            server.access_key.clone(),
            server.secret_key.clone(),
        );
        (Target::Serve(server), pid, endpoint, access, secret)
    };
    let idle_kib = status_kib(pid, "VmRSS:");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            &access_key,
            &secret_key,
            None,
            None,
            "bench",
        ))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(config);
    s3.create_bucket().bucket("bench").send().await?;

    let started = Instant::now();
    let put = s3
        .put_object()
        .bucket("bench")
        .key("big")
        .body(ByteStream::from_path(&path).await?)
        .send()
        .await?;
    let put_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        put.e_tag() == Some(format!("\"{expected_md5}\"").as_str()),
        "etag mismatch"
    );
    let after_put_kib = status_kib(pid, "VmHWM:");

    let started = Instant::now();
    let mut body = s3
        .get_object()
        .bucket("bench")
        .key("big")
        .send()
        .await?
        .body;
    let mut md5 = md5::Md5::new();
    let mut received = 0usize;
    while let Some(bytes) = body.try_next().await? {
        received += bytes.len();
        md5.update(&bytes);
    }
    let get_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(received == size, "received {received} of {size} bytes");
    anyhow::ensure!(hex::encode(md5.finalize()) == expected_md5, "body mismatch");
    let after_get_kib = status_kib(pid, "VmHWM:");
    match target {
        Target::Serve(server) => {
            server.stop()?;
        }
        Target::Cluster(cluster) => cluster.stop()?,
    }

    let mib = size_mib as f64;
    let what = if cluster {
        "arbor gateway, 3 replicas on 3 local chunk servers"
    } else {
        "arbor serve"
    };
    println!("target:                 {what}");
    println!("object size:            {size_mib} MiB");
    println!(
        "PUT:                    {:.1} s, {:.0} MiB/s",
        put_secs,
        mib / put_secs
    );
    println!(
        "GET:                    {:.1} s, {:.0} MiB/s",
        get_secs,
        mib / get_secs
    );
    println!("server RSS idle:        {} MiB", idle_kib / 1024);
    println!("server peak RSS (PUT):  {} MiB", after_put_kib / 1024);
    println!("server peak RSS (GET):  {} MiB", after_get_kib / 1024);
    Ok(())
}
