//! `arbor bench` against a real `arbor serve`, with tiny counts, so the
//! load generator cannot rot: every scenario runs, every operation
//! succeeds and is counted, the server's CPU and memory are read from
//! /proc, and a server refusing its requests makes the run fail.

use std::path::Path;
use std::process::{Command, Output};

use arbor_compat_tests::{ArborServer, arbor_binary};

/// Every scenario of docs/benchmarks.md, in the order they run.
const SCENARIOS: [&str; 20] = [
    "put-large-1x-signed",
    "put-large-1x-unsigned",
    "put-large-4x-signed",
    "put-large-4x-unsigned",
    "get-large-1x",
    "get-large-4x",
    "put-small-c1",
    "put-small-c16",
    "put-small-c64",
    "get-small-c1",
    "get-small-c16",
    "get-small-c64",
    "head-small-c1",
    "head-small-c16",
    "head-small-c64",
    "list-flat",
    "list-deep",
    "list-delimiter",
    "multipart",
    "mixed-70-30",
];

/// Tiny counts: a few seconds in all.
const SMOKE: [&str; 22] = [
    "--large-mib",
    "1",
    "--large-count",
    "4",
    "--small-count",
    "64",
    "--list-keys",
    "25",
    "--list-page",
    "10",
    "--list-rounds",
    "2",
    "--multipart-mib",
    "11",
    "--part-mib",
    "5",
    "--parts-in-flight",
    "2",
    "--mixed-count",
    "40",
    "--mixed-connections",
    "4",
];

/// `arbor bench` against `server` with `key`/`secret`, the report in
/// `json`.
fn bench(server: &ArborServer, key: &str, secret: &str, json: &Path, extra: &[&str]) -> Output {
    // No report from an earlier run may pass for this one's.
    let _ = std::fs::remove_file(json);
    let pid = server.pid().expect("server pid").to_string();
    Command::new(arbor_binary().expect("binary"))
        .args(["bench", "--endpoint", &server.endpoint, "--pid", &pid])
        .args(["--access-key", key, "--secret-key", secret])
        .arg("--json")
        .arg(json)
        .args(SMOKE)
        .args(extra)
        .env_remove("ARBOR_ACCESS_KEY")
        .env_remove("ARBOR_SECRET_KEY")
        .output()
        .expect("run arbor bench")
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("bench report");
    serde_json::from_str(&text).expect("bench report is JSON")
}

/// The names of a target's scenarios, in the order they ran.
fn scenario_names(scenarios: &[serde_json::Value]) -> Vec<&str> {
    scenarios
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect()
}

fn number(value: &serde_json::Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {value}"))
}

#[test]
fn every_scenario_runs_against_arbor_serve() {
    let data = tempfile::tempdir().expect("tempdir");
    let out_dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data.path(), &["--no-fsync"]).expect("start");
    let json = out_dir.path().join("bench.json");
    let limits_dir = out_dir.path().join("limits");
    std::fs::create_dir(&limits_dir).expect("limits dir");
    let out = bench(
        &server,
        &server.access_key,
        &server.secret_key,
        &json,
        &[
            "--limits",
            "--data-dir",
            limits_dir.to_str().expect("utf-8"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "arbor bench failed: {stderr}");
    // The progress lines and the table.
    assert!(stderr.contains("bench: mixed-70-30"), "{stderr}");
    assert!(stderr.contains("p99 ms"), "{stderr}");

    let report = read_json(&json);
    let limits = &report["limits"];
    for key in [
        "md5_mib_per_sec",
        "sha256_mib_per_sec",
        "crc32c_mib_per_sec",
        "loopback_tcp_mib_per_sec",
        "loopback_round_trips_per_sec",
        "fsync_write_mib_per_sec",
        "fsync_4k_per_sec",
    ] {
        assert!(number(limits, key) > 0.0, "{key}: {limits}");
    }
    // Zero where the file system refuses O_DIRECT (tmpfs).
    assert!(
        number(limits, "direct_write_mib_per_sec") >= 0.0,
        "{limits}"
    );
    // Its scratch files are gone.
    assert!(
        std::fs::read_dir(&limits_dir)
            .expect("dir")
            .next()
            .is_none()
    );

    let targets = report["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 1);
    let scenarios = targets[0]["scenarios"].as_array().expect("scenarios");
    let names = scenario_names(scenarios);
    assert_eq!(names, SCENARIOS);
    let mut cpu_total = 0.0;
    for s in scenarios {
        let name = s["name"].as_str().expect("name");
        let expected = match name {
            n if n.contains("large") => 4,
            n if n.contains("small") => 64,
            // 25 keys in pages of 10, twice.
            "list-flat" | "list-deep" => 6,
            // One top-level directory: one page, twice.
            "list-delimiter" => 2,
            // 11 MiB in 5 MiB parts.
            "multipart" => 3,
            "mixed-70-30" => 40,
            other => panic!("unexpected scenario {other}"),
        };
        assert_eq!(s["errors"], 0, "{s}");
        assert!(s["first_error"].is_null(), "{s}");
        assert_eq!(s["ops"], expected, "{s}");
        assert_eq!(s["ops_expected"], expected, "{s}");
        let latency = &s["latency"];
        let (p50, p99, max) = (
            number(latency, "p50_ms"),
            number(latency, "p99_ms"),
            number(latency, "max_ms"),
        );
        assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{s}");
        assert!(number(s, "ops_per_sec") > 0.0, "{s}");
        let server_cost = &s["server"];
        assert_eq!(server_cost["cpu_read"], true, "{s}");
        assert!(number(server_cost, "vm_hwm_bytes") > 0.0, "{s}");
        assert!(number(server_cost, "rss_peak_bytes") > 0.0, "{s}");
        cpu_total += number(server_cost, "cpu_seconds");
        if name.contains("large") || name == "multipart" {
            let size = if name == "multipart" { 11 } else { 4 };
            assert_eq!(number(s, "bytes"), f64::from(size * 1024 * 1024), "{s}");
        }
    }
    // The server did the work: /proc saw it spend CPU.
    assert!(cpu_total > 0.0, "{report}");
    server.stop().expect("stop");
}

#[test]
fn a_server_refusing_the_requests_fails_the_run() {
    let data = tempfile::tempdir().expect("tempdir");
    let out_dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data.path(), &["--no-fsync"]).expect("start");
    let json = out_dir.path().join("bench.json");

    // A wrong secret: the first request (creating the bucket) is refused.
    let out = bench(
        &server,
        &server.access_key,
        "not-the-secret",
        &json,
        &["--only", "put-small-c1"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("403"), "{stderr}");
    assert!(stderr.contains("SignatureDoesNotMatch"), "{stderr}");

    // A key that may only read the bucket: the bucket exists, the PUTs
    // are refused, the report says so and the run fails.
    let out = bench(
        &server,
        &server.access_key,
        &server.secret_key,
        &json,
        &["--only", "head-small-c1"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(arbor_binary().expect("binary"))
            .args(["admin", "--endpoint", &server.endpoint])
            .args(args)
            .env("ARBOR_ACCESS_KEY", &server.access_key)
            .env("ARBOR_SECRET_KEY", &server.secret_key)
            .output()
            .expect("run arbor admin");
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    };
    let key = admin(&["key", "create", "reader"]);
    let (reader, secret) = (
        key["access_key"].as_str().expect("access_key"),
        key["secret_key"].as_str().expect("secret_key"),
    );
    admin(&["key", "allow", reader, "--bucket", "arbor-bench", "--read"]);
    let out = bench(
        &server,
        reader,
        secret,
        &json,
        &["--only", "put-small-c1,head-small-c1"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let report = read_json(&json);
    let scenarios = report["targets"][0]["scenarios"]
        .as_array()
        .expect("scenarios");
    let put = &scenarios[0];
    assert_eq!(put["name"], "put-small-c1");
    assert_eq!(put["ops"], 0, "{put}");
    assert!(put["errors"].as_u64().expect("errors") > 0, "{put}");
    let first = put["first_error"].as_str().expect("first_error");
    assert!(
        first.contains("403") && first.contains("AccessDenied"),
        "{first}"
    );
    // Reading what the administrator wrote is allowed.
    let head = &scenarios[1];
    assert_eq!(head["errors"], 0, "{head}");
    assert_eq!(head["ops"], 64, "{head}");
    server.stop().expect("stop");
}

/// `--spawn dev-cluster` starts a whole cluster (meta nodes, chunk servers,
/// gateways), measures every one of its processes, and stops it.
#[test]
fn a_spawned_dev_cluster_is_measured_and_stopped() {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let json = out_dir.path().join("bench.json");
    let out = Command::new(arbor_binary().expect("binary"))
        .args(["bench", "--spawn", "dev-cluster", "--json"])
        .arg(&json)
        .args(SMOKE)
        .args([
            "--only",
            "put-large-1x-signed,get-large-1x,put-small-c16,list-flat",
        ])
        .env_remove("ARBOR_ACCESS_KEY")
        .env_remove("ARBOR_SECRET_KEY")
        .output()
        .expect("run arbor bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "arbor bench failed: {stderr}");

    let report = read_json(&json);
    let targets = report["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 1, "{report}");
    let target = &targets[0];
    assert_eq!(target["label"], "arbor dev-cluster", "{target}");
    let pids: Vec<u64> = target["pids"]
        .as_array()
        .expect("pids")
        .iter()
        .map(|p| p.as_u64().expect("pid"))
        .collect();
    // Meta nodes, chunk servers and a gateway at least.
    assert!(pids.len() >= 3, "{pids:?}");
    let scenarios = target["scenarios"].as_array().expect("scenarios");
    let names = scenario_names(scenarios);
    assert_eq!(
        names,
        [
            "put-large-1x-signed",
            "get-large-1x",
            "put-small-c16",
            "list-flat"
        ]
    );
    // A tiny scenario can take less than a clock tick of CPU: only the
    // total must show the cluster working.
    let mut cpu_total = 0.0;
    for s in scenarios {
        assert_eq!(s["errors"], 0, "{s}");
        assert_eq!(s["ops"], s["ops_expected"], "{s}");
        assert_eq!(s["server"]["cpu_read"], true, "{s}");
        cpu_total += number(&s["server"], "cpu_seconds");
    }
    assert!(cpu_total > 0.0, "{report}");
    // Every process of the cluster is gone once the run is over.
    for pid in pids {
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.split_whitespace().nth(2) == Some("Z"));
        assert!(!alive || zombie, "process {pid} outlived the run");
    }
}

/// The `scale` scenario, run only when named, at a tiny count against a
/// spawned `arbor serve`: every phase runs without an error, the metadata
/// files are measured and the restart is timed, and no server it started
/// (the first or the restarted one) outlives the run.
#[test]
fn the_scale_scenario_runs_every_phase_and_restarts_the_server() {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let json = out_dir.path().join("bench.json");
    // A scale run writes its own Markdown section and leaves the other
    // scenarios' alone.
    let markdown = out_dir.path().join("benchmarks.md");
    let others = "<!-- arbor bench: begin (generated, do not edit) -->\n\
                  the other scenarios\n<!-- arbor bench: end -->\n";
    std::fs::write(&markdown, format!("# Benchmarks\n\n{others}")).expect("write");
    let out = Command::new(arbor_binary().expect("binary"))
        .args(["bench", "--spawn", "serve", "--json"])
        .arg(&json)
        .arg("--markdown")
        .arg(&markdown)
        .args(["--only", "scale", "--scale-keys", "2000"])
        .args(["--small-count", "64", "--list-page", "10"])
        .env_remove("ARBOR_ACCESS_KEY")
        .env_remove("ARBOR_SECRET_KEY")
        .output()
        .expect("run arbor bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "arbor bench failed: {stderr}");
    // The fill's progress, a line per tenth.
    assert!(stderr.contains("bench: scale-fill: 10/10"), "{stderr}");
    let text = std::fs::read_to_string(&markdown).expect("markdown");
    assert!(text.contains(others), "{text}");
    assert!(
        text.contains("<!-- arbor bench scale: begin") && text.contains("| scale-fill |"),
        "{text}"
    );
    assert!(text.contains("| restart to ready (first HEAD) |"), "{text}");

    let report = read_json(&json);
    let target = &report["targets"][0];
    let scenarios = target["scenarios"].as_array().expect("scenarios");
    let names = scenario_names(scenarios);
    assert_eq!(
        names,
        [
            "scale-put-empty-c64",
            "scale-fill",
            "scale-put-full-c64",
            "scale-list",
            "scale-delimiter-top",
            "scale-delimiter-down",
        ]
    );
    for s in scenarios {
        let expected = match s["name"].as_str().expect("name") {
            "scale-fill" => 2000,
            // Ten places, twenty pages each.
            "scale-list" => 200,
            n if n.starts_with("scale-delimiter") => 100,
            _ => 64,
        };
        assert_eq!(s["errors"], 0, "{s}");
        assert_eq!(s["ops"], expected, "{s}");
        assert_eq!(s["ops_expected"], expected, "{s}");
        assert!(number(s, "ops_per_sec") > 0.0, "{s}");
        assert!(number(&s["latency"], "p50_ms") > 0.0, "{s}");
        assert_eq!(s["server"]["cpu_read"], true, "{s}");
        assert!(number(&s["server"], "rss_peak_bytes") > 0.0, "{s}");
    }

    let scale = &target["scale"];
    assert_eq!(scale["keys"], 2000, "{scale}");
    let rates = scale["fill_rates_per_sec"].as_array().expect("rates");
    assert_eq!(rates.len(), 10, "{scale}");
    assert!(rates.iter().all(|r| r.as_f64() > Some(0.0)), "{scale}");
    assert!(number(scale, "put_full_vs_empty") > 0.0, "{scale}");
    // The metadata files were measured (redb grows them in steps: a
    // fill this small may not move them).
    assert!(
        scale["metadata_bytes_per_object"]["total"].is_number(),
        "{scale}"
    );
    assert!(number(&scale["metadata_after"], "state") > 0.0, "{scale}");
    assert!(
        number(&scale["metadata_after"], "raft_log") > 0.0,
        "{scale}"
    );
    let restart = &scale["restart"];
    assert!(number(restart, "ready_seconds") > 0.0, "{scale}");
    assert!(number(restart, "rss_after_bytes") > 0.0, "{scale}");
    // Every measure has its line; those with a target are marked.
    let marks = scale["marks"].as_array().expect("marks");
    assert!(marks.len() >= 10, "{scale}");
    assert!(
        marks
            .iter()
            .all(|m| m["target"] == "-" || m["pass"].is_boolean()),
        "{scale}"
    );

    // The first server and the restarted one, both gone.
    let pids: Vec<u64> = scale["pids"]
        .as_array()
        .expect("pids")
        .iter()
        .map(|p| p.as_u64().expect("pid"))
        .collect();
    assert_eq!(pids.len(), 2, "{scale}");
    assert_ne!(pids[0], pids[1]);
    for pid in pids {
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.split_whitespace().nth(2) == Some("Z"));
        assert!(!alive || zombie, "process {pid} outlived the run");
    }
}
