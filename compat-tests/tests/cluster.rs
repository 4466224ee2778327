//! The cluster processes of the real binary: three `arbor meta` nodes form
//! a group through `arbor admin meta`, survive the loss of their leader, and
//! an `arbor chunk` server stores and serves a chunk.

use std::time::{Duration, Instant};

use arbor_compat_tests::{ArborProcess, arbor_command, cluster_auth, raw_request};
use sha2::Digest;

fn meta_node(dir: &std::path::Path, id: u64, bootstrap: bool) -> ArborProcess {
    let data = dir.join(format!("meta-{id}"));
    let id = id.to_string();
    let mut args = vec![
        "meta",
        "--node-id",
        &id,
        "--listen",
        "127.0.0.1:0",
        "--no-fsync",
        "--data-dir",
    ];
    let data = data.to_str().expect("utf-8").to_owned();
    args.push(&data);
    if bootstrap {
        args.push("--bootstrap");
    }
    ArborProcess::start(&args, "advertised:").expect("start meta node")
}

/// `arbor admin meta --meta ADDRS ARGS`: (success, stdout, stderr).
fn meta_admin(addrs: &[String], args: &[&str]) -> (bool, String, String) {
    let out = arbor_command()
        .expect("binary")
        .args(["admin", "meta", "--meta", &addrs.join(",")])
        .args(args)
        .output()
        .expect("run arbor admin meta");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status(addr: &str) -> serde_json::Value {
    let (ok, out, err) = meta_admin(&[addr.to_owned()], &["status"]);
    assert!(ok, "status from {addr}: {err}");
    serde_json::from_str(out.trim()).expect("status JSON")
}

#[test]
fn three_meta_nodes_form_a_group_and_survive_the_leader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = meta_node(dir.path(), 1, true);
    let second = meta_node(dir.path(), 2, false);
    let third = meta_node(dir.path(), 3, false);
    let addrs: Vec<String> = [&first, &second, &third]
        .iter()
        .map(|p| p.value("advertised:").expect("address"))
        .collect();

    for (id, addr) in [(2, &addrs[1]), (3, &addrs[2])] {
        let (ok, _, err) = meta_admin(&addrs, &["add-learner", &id.to_string(), addr]);
        assert!(ok, "add-learner {id}: {err}");
    }
    let (ok, _, err) = meta_admin(&addrs, &["change-membership", "1,2,3"]);
    assert!(ok, "change-membership: {err}");
    let view = status(&addrs[1]);
    let voters: Vec<u64> = view["voters"]
        .as_array()
        .expect("voters")
        .iter()
        .filter_map(|v| v[0].as_u64())
        .collect();
    assert_eq!(voters, [1, 2, 3]);
    assert_eq!(view["leader"].as_u64(), Some(1));

    // Who lacks the cluster's secret can neither read nor propose: a raw
    // request is refused, and so is the admin client without the secret
    // or with another one.
    let endpoint = format!("http://{}", addrs[0]);
    for path in ["/meta/propose", "/meta/read", "/meta/admin", "/raft/vote"] {
        let refused = raw_request(&endpoint, "POST", path, &[], b"\x00").expect("request");
        assert_eq!(refused.status, 401, "{path}");
    }
    let other = dir.path().join("other.secret");
    std::fs::write(&other, arbor_net::auth::ClusterSecret::generate().to_hex()).expect("write");
    for secret in [None, Some(&other)] {
        let mut command = arbor_command().expect("binary");
        command.args(["admin", "meta", "--meta", &addrs[0], "status"]);
        match secret {
            Some(file) => command.env("ARBOR_CLUSTER_SECRET_FILE", file),
            None => command.env_remove("ARBOR_CLUSTER_SECRET_FILE"),
        };
        let out = command.output().expect("run arbor admin meta");
        assert!(
            !out.status.success(),
            "{secret:?}: admin status without the secret"
        );
    }

    // The leader goes; the others elect a new one within a few seconds.
    assert!(first.stop().expect("stop node 1").success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let leader = status(&addrs[1])["leader"].as_u64();
        if matches!(leader, Some(2 | 3)) {
            break;
        }
        assert!(Instant::now() < deadline, "no new leader: {leader:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Bad requests are refused with the reason.
    let (ok, _, err) = meta_admin(&addrs[1..], &["change-membership", "2,9"]);
    assert!(!ok, "a voter set naming an unknown node must be refused");
    assert!(!err.is_empty());
    assert!(second.stop().expect("stop node 2").success());
    assert!(third.stop().expect("stop node 3").success());
}

fn refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn a_chunk_server_stores_and_serves_checked_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8").to_owned();
    let server = ArborProcess::start(
        &[
            "chunk",
            "--listen",
            "127.0.0.1:0",
            "--zone",
            "a",
            "--data-dir",
            &data,
        ],
        "chunk server listening:",
    )
    .expect("start chunk server");
    let endpoint = format!(
        "http://{}",
        server.value("chunk server listening:").expect("address")
    );
    let secret = arbor_net::auth::ClusterSecret::read(arbor_compat_tests::cluster_secret_file())
        .expect("secret");
    let empty = arbor_net::auth::body_sha256(b"");
    let body = b"chunk bytes".repeat(1000);
    let sha = hex::encode(sha2::Sha256::digest(&body));
    let id = "00112233445566778899aabbccddeeff";
    let target = format!("/chunks/{id}");

    // Without the cluster's secret nothing is read or written: no MAC, a
    // MAC under another secret, or a signed request sent with another body.
    let stranger = arbor_net::auth::ClusterSecret::generate();
    let mut put_headers = cluster_auth(&stranger, "PUT", &target, &sha);
    put_headers.push(("x-arbor-sha256".to_owned(), sha.clone()));
    for headers in [
        vec![("x-arbor-sha256".to_owned(), sha.clone())],
        put_headers,
    ] {
        let refused = raw_request(&endpoint, "PUT", &target, &refs(&headers), &body).expect("put");
        assert_eq!(
            refused.status,
            401,
            "{}",
            String::from_utf8_lossy(&refused.body)
        );
    }
    let mut other_sha = cluster_auth(&secret, "PUT", &target, &empty);
    other_sha.push(("x-arbor-sha256".to_owned(), sha.clone()));
    let refused = raw_request(&endpoint, "PUT", &target, &refs(&other_sha), &body).expect("put");
    assert_eq!(refused.status, 401, "the signed hash is not the chunk's");
    for (method, path) in [("GET", "/status"), ("GET", "/chunks")] {
        let refused = raw_request(&endpoint, method, path, &[], b"").expect("request");
        assert_eq!(refused.status, 401, "{method} {path}");
    }

    let mut put_headers = cluster_auth(&secret, "PUT", &target, &sha);
    put_headers.push(("x-arbor-sha256".to_owned(), sha.clone()));
    let put = raw_request(&endpoint, "PUT", &target, &refs(&put_headers), &body).expect("put");
    assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
    let get_headers = cluster_auth(&secret, "GET", &target, &empty);
    let get = raw_request(&endpoint, "GET", &target, &refs(&get_headers), b"").expect("get");
    assert_eq!((get.status, get.body.as_slice()), (200, body.as_slice()));
    // A body that does not match its declared SHA-256 is refused, not stored.
    let other = "/chunks/ffeeddccbbaa99887766554433221100";
    let mut bad_headers = cluster_auth(&secret, "PUT", other, &sha);
    bad_headers.push(("x-arbor-sha256".to_owned(), sha.clone()));
    let bad = raw_request(&endpoint, "PUT", other, &refs(&bad_headers), b"other").expect("bad put");
    assert_eq!(bad.status, 400);
    let missing_headers = cluster_auth(&secret, "GET", other, &empty);
    let missing = raw_request(&endpoint, "GET", other, &refs(&missing_headers), b"").expect("get");
    assert_eq!(missing.status, 404);
    assert!(server.stop().expect("stop").success());
}

#[test]
fn chunk_servers_register_go_offline_and_drain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta_dir = dir.path().join("meta").to_str().expect("utf-8").to_owned();
    let meta = ArborProcess::start(
        &[
            "meta",
            "--node-id",
            "1",
            "--bootstrap",
            "--listen",
            "127.0.0.1:0",
            "--no-fsync",
            "--chunk-heartbeat-timeout-secs",
            "2",
            "--metrics-listen",
            "127.0.0.1:0",
            "--data-dir",
            &meta_dir,
        ],
        "advertised:",
    )
    .expect("start meta");
    let meta_addr = meta.value("advertised:").expect("address");
    let metrics_url = meta.value("metrics:").expect("the metrics endpoint");
    let scrape = || {
        let endpoint = metrics_url
            .strip_suffix("/metrics")
            .expect("a /metrics URL");
        let response = raw_request(endpoint, "GET", "/metrics", &[], b"").expect("scrape");
        assert_eq!(response.status, 200);
        String::from_utf8(response.body).expect("UTF-8")
    };
    let chunk = |name: &str, zone: &str| {
        let data = dir.path().join(name).to_str().expect("utf-8").to_owned();
        ArborProcess::start(
            &[
                "chunk",
                "--listen",
                "127.0.0.1:0",
                "--meta",
                &meta_addr,
                "--zone",
                zone,
                "--heartbeat-secs",
                "1",
                "--data-dir",
                &data,
            ],
            "chunk server listening:",
        )
        .expect("start chunk server")
    };
    let servers = |expect: &dyn Fn(&[serde_json::Value]) -> bool,
                   what: &str|
     -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (ok, out, err) = meta_admin(std::slice::from_ref(&meta_addr), &["chunk-servers"]);
            assert!(ok, "chunk-servers: {err}");
            let list: Vec<serde_json::Value> = out
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if expect(&list) {
                return list;
            }
            assert!(Instant::now() < deadline, "{what}: {list:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let status_of = |list: &[serde_json::Value], zone: &str| {
        list.iter()
            .find(|s| s["zone"] == zone)
            .and_then(|s| s["status"].as_str())
            .unwrap_or("")
            .to_owned()
    };
    let a = chunk("chunk-a", "a");
    let b = chunk("chunk-b", "b");
    let list = servers(
        &|l| l.len() == 2 && l.iter().all(|s| s["status"] == "ONLINE"),
        "both register",
    );
    let id_a = list
        .iter()
        .find(|s| s["zone"] == "a")
        .and_then(|s| s["id"].as_u64())
        .expect("id of a");

    // b stops: marked OFFLINE after the timeout; restarted (same id), ONLINE again.
    assert!(b.stop().expect("stop b").success());
    servers(&|l| status_of(l, "b") == "OFFLINE", "b goes OFFLINE");
    // The leader's metrics show the registry as the group holds it.
    let metrics = scrape();
    let has = |prefix: &str, suffix: &str| {
        metrics
            .lines()
            .any(|l| l.starts_with(prefix) && l.ends_with(suffix))
    };
    assert!(has("arbor_meta_is_leader{node=\"1\"}", " 1"), "{metrics}");
    assert!(has("arbor_cluster_read_ok", " 1"), "{metrics}");
    assert!(
        has(
            "arbor_chunk_server_status{server=",
            "zone=\"b\",status=\"OFFLINE\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        has(
            "arbor_chunk_server_status{server=",
            "zone=\"a\",status=\"ONLINE\"} 1"
        ),
        "{metrics}"
    );
    assert!(has("arbor_chunks_under_replicated", " 0"), "{metrics}");
    let b = chunk("chunk-b", "b");
    let list = servers(&|l| status_of(l, "b") == "ONLINE", "b comes back");
    assert_eq!(list.len(), 2, "a restarted server keeps its id");

    // Drain and undrain a.
    let (ok, _, err) = meta_admin(
        std::slice::from_ref(&meta_addr),
        &["drain", &id_a.to_string()],
    );
    assert!(ok, "drain: {err}");
    servers(&|l| status_of(l, "a") == "DRAINING", "a drains");
    let (ok, _, err) = meta_admin(
        std::slice::from_ref(&meta_addr),
        &["undrain", &id_a.to_string()],
    );
    assert!(ok, "undrain: {err}");
    servers(&|l| status_of(l, "a") == "ONLINE", "a back in service");
    let (ok, _, _) = meta_admin(std::slice::from_ref(&meta_addr), &["drain", "12345"]);
    assert!(!ok, "draining an unknown server is refused");

    assert!(a.stop().expect("stop a").success());
    assert!(b.stop().expect("stop b").success());
    assert!(meta.stop().expect("stop meta").success());
}
