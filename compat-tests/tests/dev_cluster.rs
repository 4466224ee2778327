//! `arbor dev-cluster`: a whole cluster of real processes from one
//! command. It prints itself as JSON, serves through every gateway, stops
//! every child on SIGTERM, and comes back with the same nodes and data on
//! the same directory.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use arbor_compat_tests::ArborProcess;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

/// `arbor dev-cluster` on `dir` (no fsync), and the JSON it printed.
fn start(dir: &Path) -> (ArborProcess, Value) {
    let dir = dir.to_str().expect("utf-8 path");
    let process = ArborProcess::start(&["dev-cluster", "--dir", dir, "--no-fsync"], "{")
        .expect("start arbor dev-cluster");
    let line = process.lines.last().expect("a line");
    let info: Value = serde_json::from_str(line).expect("one JSON object");
    (process, info)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

fn pids(info: &Value) -> Vec<u32> {
    info["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .map(|p| {
            let pid = p["pid"].as_u64().expect("pid");
            u32::try_from(pid).expect("a pid")
        })
        .collect()
}

fn running(pid: u32) -> bool {
    // A zombie still has its /proc entry; the dev cluster reaps its own.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim()
            .starts_with('Z')
    })
}

/// SIGTERM to the dev cluster: it exits 0 and leaves no child running.
fn stop(process: ArborProcess, info: &Value) {
    let status = process.stop().expect("stop the dev cluster");
    assert!(status.success(), "{status}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<u32> = pids(info).into_iter().filter(|p| running(*p)).collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "children still running: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (role, id, address, data_dir) of every process.
fn members(info: &Value) -> BTreeSet<(String, u64, String, String)> {
    info["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .map(|p| {
            (
                p["role"].as_str().expect("role").to_owned(),
                p["id"].as_u64().expect("id"),
                p["address"].as_str().expect("address").to_owned(),
                p["data_dir"].as_str().expect("data_dir").to_owned(),
            )
        })
        .collect()
}

fn clients(info: &Value) -> Vec<aws_sdk_s3::Client> {
    let access_key = info["access_key"].as_str().expect("access key");
    let secret_key = info["secret_key"].as_str().expect("secret key");
    strings(&info["s3_endpoints"])
        .iter()
        .map(|endpoint| common::client(endpoint, access_key, secret_key))
        .collect()
}

async fn get(client: &aws_sdk_s3::Client, key: &str) -> Vec<u8> {
    let object = client
        .get_object()
        .bucket("dev")
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key}: {e:?}"));
    object.body.collect().await.expect("body").to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_cluster_serves_through_every_gateway_and_comes_back_on_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (process, info) = start(dir.path());
    assert_eq!(info["restarted"], Value::Bool(false), "{info}");
    let roles: Vec<String> = members(&info).into_iter().map(|m| m.0).collect();
    let count = |role: &str| roles.iter().filter(|r| *r == role).count();
    assert_eq!(
        (count("meta"), count("chunk"), count("gateway")),
        (3, 3, 2),
        "{info}"
    );
    assert!(pids(&info).iter().all(|p| running(*p)), "{info}");
    assert_eq!(strings(&info["meta_addresses"]).len(), 3);
    {
        use std::os::unix::fs::PermissionsExt;
        let path = info["credentials_file"].as_str().expect("credentials file");
        let mode = std::fs::metadata(path)
            .expect("credentials")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Each gateway writes a small (inline) and a large (chunked) object;
    // the other one reads them.
    let s3 = clients(&info);
    assert_eq!(s3.len(), 2);
    s3[0]
        .create_bucket()
        .bucket("dev")
        .send()
        .await
        .expect("create bucket");
    let mut objects = Vec::new();
    for (n, client) in s3.iter().enumerate() {
        for (kind, len) in [("small", 1000), ("large", (1 << 20) + 3)] {
            let key = format!("{kind}-{n}");
            let body = common::bytes(len, objects.len() as u64 + 1);
            client
                .put_object()
                .bucket("dev")
                .key(&key)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
            objects.push((key, body));
        }
    }
    for (n, (key, body)) in objects.iter().enumerate() {
        assert!(get(&s3[(n / 2 + 1) % 2], key).await == *body, "{key}");
    }

    // A key created and granted through one gateway works through the
    // other at once: keys live in the metadata group, and the gateways
    // share the node key that seals their secrets.
    let endpoints = strings(&info["s3_endpoints"]);
    let admin = |endpoint: &str, args: &[&str]| -> Value {
        let out = arbor_compat_tests::arbor_command()
            .expect("binary")
            .args(["admin", "--endpoint", endpoint])
            .args(args)
            .env(
                "ARBOR_ACCESS_KEY",
                info["access_key"].as_str().expect("key"),
            )
            .env(
                "ARBOR_SECRET_KEY",
                info["secret_key"].as_str().expect("secret"),
            )
            .output()
            .expect("arbor admin");
        assert!(out.status.success(), "{args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let key = admin(&endpoints[0], &["key", "create", "reader"]);
    let id = key["access_key"].as_str().expect("id");
    admin(
        &endpoints[0],
        &["key", "allow", id, "--bucket", "dev", "--read"],
    );
    let reader = common::client(
        &endpoints[1],
        id,
        key["secret_key"].as_str().expect("secret"),
    );
    assert!(get(&reader, "small-0").await == objects[0].1);
    let refused = reader
        .put_object()
        .bucket("dev")
        .key("nope")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("read only");
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&refused),
        Some("AccessDenied")
    );

    stop(process, &info);
    let layout = dir.path().join("cluster.json");
    assert!(layout.exists(), "no {}", layout.display());

    // Again on the same directory: the same nodes, ports, credentials and
    // data.
    let (process, again) = start(dir.path());
    assert_eq!(again["restarted"], Value::Bool(true), "{again}");
    assert_eq!(members(&again), members(&info));
    assert_eq!(again["s3_endpoints"], info["s3_endpoints"]);
    assert_eq!(again["access_key"], info["access_key"]);
    assert_eq!(again["secret_key"], info["secret_key"]);
    let s3 = clients(&again);
    for (key, body) in &objects {
        for client in &s3 {
            assert!(get(client, key).await == *body, "{key} after restart");
        }
    }
    stop(process, &again);
}
