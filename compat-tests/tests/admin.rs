//! `arbor admin` against a running server: the per-bucket overwrite policy
//! (docs/design.md, Conditional writes and the overwrite policy) and
//! status, over the SigV4-authenticated admin API.

mod common;

use std::process::Command;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

use arbor_compat_tests::{ArborServer, arbor_binary, raw_request};
use common::client;

fn admin(server: &ArborServer, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(arbor_binary().expect("binary"))
        .arg("admin")
        .arg("--endpoint")
        .arg(&server.endpoint)
        .args(args)
        .env("ARBOR_ACCESS_KEY", &server.access_key)
        .env("ARBOR_SECRET_KEY", &server.secret_key)
        .output()
        .expect("run arbor admin");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_policy_is_set_by_arbor_admin_and_enforced() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket("policy")
        .send()
        .await
        .expect("bucket");
    let put = |body: &'static [u8]| {
        s3.put_object()
            .bucket("policy")
            .key("k")
            .body(ByteStream::from_static(body))
    };
    let etag = put(b"v1")
        .send()
        .await
        .expect("v1")
        .e_tag()
        .expect("etag")
        .to_owned();

    let (ok, out, err) = admin(&server, &["overwrite-policy", "policy"]);
    assert!(ok, "{err}");
    assert!(out.contains("\"overwrite\":\"allow\""), "{out}");

    // deny: write-once; new keys and deletes of other keys still work.
    let (ok, out, err) = admin(&server, &["overwrite-policy", "policy", "deny"]);
    assert!(ok, "{err}");
    assert!(out.contains("\"overwrite\":\"deny\""), "{out}");
    let e = put(b"v2").send().await.expect_err("overwrite refused");
    assert_eq!(e.code(), Some("PreconditionFailed"));
    let e = put(b"v2")
        .if_match(&etag)
        .send()
        .await
        .expect_err("even with If-Match");
    assert_eq!(e.code(), Some("PreconditionFailed"));
    s3.put_object()
        .bucket("policy")
        .key("new")
        .body(ByteStream::from_static(b"n"))
        .send()
        .await
        .expect("new key");
    let e = s3
        .copy_object()
        .bucket("policy")
        .key("k")
        .copy_source("policy/new")
        .send()
        .await;
    assert_eq!(
        e.expect_err("copy onto existing").code(),
        Some("PreconditionFailed")
    );

    // conditional: overwrites need If-Match.
    let (ok, _, err) = admin(&server, &["overwrite-policy", "policy", "conditional"]);
    assert!(ok, "{err}");
    let e = put(b"v2").send().await.expect_err("no If-Match");
    assert_eq!(e.code(), Some("PreconditionFailed"));
    let etag2 = put(b"v2")
        .if_match(&etag)
        .send()
        .await
        .expect("with If-Match")
        .e_tag()
        .expect("etag")
        .to_owned();
    assert_ne!(etag, etag2);

    // allow again.
    let (ok, _, err) = admin(&server, &["overwrite-policy", "policy", "allow"]);
    assert!(ok, "{err}");
    put(b"v3").send().await.expect("plain overwrite");

    // Bad input and missing buckets are refused; status answers.
    let (ok, _, err) = admin(&server, &["overwrite-policy", "policy", "sometimes"]);
    assert!(!ok && err.contains("allow, conditional or deny"), "{err}");
    let (ok, _, err) = admin(&server, &["overwrite-policy", "no-such-bucket", "deny"]);
    assert!(!ok && err.contains("NoSuchBucket"), "{err}");
    let (ok, out, err) = admin(&server, &["status"]);
    assert!(ok, "{err}");
    assert!(out.contains("\"chunks\""), "{out}");
    // The admin prefix is no bucket.
    let e = s3
        .create_bucket()
        .bucket("_arbor")
        .send()
        .await
        .expect_err("reserved");
    assert_eq!(e.code(), Some("InvalidBucketName"));
    // The admin API needs a signature like any S3 request.
    let anonymous = raw_request(&server.endpoint, "GET", "/_arbor/status", &[], b"").expect("raw");
    assert_eq!(anonymous.status, 403);
    assert!(server.stop().expect("stop").success());
}

/// The value of the sample `line` names exactly (name and labels).
fn sample(metrics: &str, line: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_counts_requests_and_shows_raft() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(
        data.path(),
        &["--no-fsync", "--metrics-listen", "127.0.0.1:0"],
    )
    .expect("start");
    let url = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("metrics:"))
        .expect("the banner names the metrics endpoint")
        .trim()
        .to_owned();
    let endpoint = url.strip_suffix("/metrics").expect("a /metrics URL");
    let scrape = || {
        let response = raw_request(endpoint, "GET", "/metrics", &[], b"").expect("scrape");
        assert_eq!(response.status, 200);
        assert!(
            response
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
            "{:?}",
            response.header("content-type")
        );
        String::from_utf8(response.body).expect("UTF-8")
    };

    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket("counted")
        .send()
        .await
        .expect("bucket");
    for _ in 0..3 {
        s3.put_object()
            .bucket("counted")
            .key("k")
            .body(ByteStream::from_static(b"twelve bytes"))
            .send()
            .await
            .expect("put");
    }
    let missing = s3.get_object().bucket("counted").key("nope").send().await;
    assert_eq!(
        missing.expect_err("missing").into_service_error().code(),
        Some("NoSuchKey")
    );
    // A bad signature is refused before its operation is known.
    let unknown = client(&server.endpoint, &server.access_key, "not-the-secret");
    assert!(unknown.list_buckets().send().await.is_err());

    let metrics = scrape();
    let line = |l: &str| sample(&metrics, l);
    assert_eq!(
        line("arbor_s3_requests_total{operation=\"PutObject\",status=\"200\"}"),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        line("arbor_s3_requests_total{operation=\"GetObject\",status=\"404\"}"),
        Some(1.0)
    );
    assert_eq!(
        line("arbor_s3_requests_total{operation=\"CreateBucket\",status=\"200\"}"),
        Some(1.0)
    );
    assert!(
        line("arbor_s3_requests_total{operation=\"Unknown\",status=\"403\"}")
            .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert_eq!(
        line("arbor_s3_request_duration_seconds_count{operation=\"PutObject\"}"),
        Some(3.0)
    );
    assert_eq!(
        line("arbor_s3_request_duration_seconds_bucket{operation=\"PutObject\",le=\"+Inf\"}"),
        Some(3.0)
    );
    assert_eq!(
        line("arbor_s3_received_bytes_total{operation=\"PutObject\"}"),
        Some(36.0)
    );
    assert_eq!(line("arbor_s3_requests_in_flight"), Some(0.0));
    assert_eq!(line("arbor_meta_is_leader{node=\"1\"}"), Some(1.0));
    assert!(line("arbor_meta_last_applied_index{node=\"1\"}").is_some_and(|i| i >= 4.0));
    assert!(line("process_resident_memory_bytes").is_some_and(|b| b > 0.0));

    // Only GET /metrics.
    let other = raw_request(endpoint, "GET", "/", &[], b"").expect("other path");
    assert_eq!(other.status, 404);
    let post = raw_request(endpoint, "POST", "/metrics", &[], b"").expect("post");
    assert_eq!(post.status, 405);
    server.stop().expect("stop");
}
