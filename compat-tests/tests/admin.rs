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
