//! CORS end to end: PutBucketCors / GetBucketCors / DeleteBucketCors over
//! aws-sdk-s3, checked as S3 checks them; preflight `OPTIONS` answered
//! from the first matching rule without a signature; and the
//! `Access-Control-*` headers on every answer to a request from an allowed
//! origin, errors included.

mod common;

use std::time::SystemTime;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};

use arbor_compat_tests::{ArborServer, RawResponse, raw_request};
use common::client;
use common::sign::{Payload, Signer};

fn rule(origins: &[&str], methods: &[&str]) -> aws_sdk_s3::types::builders::CorsRuleBuilder {
    let mut builder = CorsRule::builder();
    for origin in origins {
        builder = builder.allowed_origins(*origin);
    }
    for method in methods {
        builder = builder.allowed_methods(*method);
    }
    builder
}

fn config(rules: Vec<CorsRule>) -> CorsConfiguration {
    CorsConfiguration::builder()
        .set_cors_rules(Some(rules))
        .build()
        .expect("cors configuration")
}

/// An unsigned request, as a browser sends a preflight.
async fn send(endpoint: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> RawResponse {
    let (endpoint, method, target) = (endpoint.to_owned(), method.to_owned(), target.to_owned());
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        raw_request(&endpoint, &method, &target, &headers, b"").expect("request")
    })
    .await
    .expect("join")
}

/// A request signed by `signer`, with `headers` besides the signed ones
/// (an `Origin` is not signed by browsers either).
async fn send_signed(
    signer: &Signer,
    method: &str,
    target: &str,
    signed: &[(&str, &str)],
    unsigned: &[(&str, &str)],
) -> RawResponse {
    let mut headers = signer.sign_headers(
        method,
        target,
        signed,
        Payload::Sha256Of(b""),
        SystemTime::now(),
    );
    headers.extend(
        unsigned
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let borrowed: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    send(&signer.endpoint, method, target, &borrowed).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_configurations_are_checked_stored_and_removed() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket("site")
        .send()
        .await
        .expect("bucket");

    let e = s3
        .get_bucket_cors()
        .bucket("site")
        .send()
        .await
        .expect_err("none yet");
    assert_eq!(e.code(), Some("NoSuchCORSConfiguration"));
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));

    let refused = [
        (
            rule(&["*"], &["PATCH"]).build().expect("rule"),
            "InvalidRequest",
        ),
        (
            rule(&["https://*.*.example"], &["GET"])
                .build()
                .expect("rule"),
            "InvalidRequest",
        ),
        (
            rule(&["*"], &["GET"])
                .allowed_headers("x-*-*")
                .build()
                .expect("rule"),
            "InvalidRequest",
        ),
        (
            rule(&["*"], &["GET"])
                .expose_headers("*")
                .build()
                .expect("rule"),
            "InvalidRequest",
        ),
    ];
    for (bad, code) in refused {
        let e = s3
            .put_bucket_cors()
            .bucket("site")
            .cors_configuration(config(vec![bad.clone()]))
            .send()
            .await
            .expect_err("refused");
        assert_eq!(e.code(), Some(code), "{bad:?}");
    }
    let good = rule(&["https://app.example"], &["GET", "PUT"])
        .build()
        .expect("rule");
    let e = s3
        .put_bucket_cors()
        .bucket("site")
        .cors_configuration(config(vec![good.clone(); 101]))
        .send()
        .await
        .expect_err("101 rules");
    assert_eq!(e.code(), Some("MalformedXML"));
    let e = s3
        .get_bucket_cors()
        .bucket("site")
        .send()
        .await
        .expect_err("refusals stored nothing");
    assert_eq!(e.code(), Some("NoSuchCORSConfiguration"));

    let full = rule(&["https://app.example"], &["GET", "PUT"])
        .id("app")
        .allowed_headers("x-amz-*")
        .expose_headers("ETag")
        .max_age_seconds(300)
        .build()
        .expect("rule");
    let second = rule(&["*"], &["HEAD"]).build().expect("rule");
    s3.put_bucket_cors()
        .bucket("site")
        .cors_configuration(config(vec![full.clone(), second.clone()]))
        .send()
        .await
        .expect("put");
    let got = s3
        .get_bucket_cors()
        .bucket("site")
        .send()
        .await
        .expect("get");
    assert_eq!(got.cors_rules(), [full, second]);

    let e = s3
        .put_bucket_cors()
        .bucket("nowhere")
        .cors_configuration(config(vec![good]))
        .send()
        .await
        .expect_err("no bucket");
    assert_eq!(e.code(), Some("NoSuchBucket"));

    s3.delete_bucket_cors()
        .bucket("site")
        .send()
        .await
        .expect("delete");
    let e = s3
        .get_bucket_cors()
        .bucket("site")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(e.code(), Some("NoSuchCORSConfiguration"));
    server.stop().expect("stop");
}

/// A preflight of `method` from `origin` for `/site/photo.jpg`, asking
/// for `headers` unless empty.
async fn preflight(endpoint: &str, origin: &str, method: &str, headers: &str) -> RawResponse {
    let mut sent = vec![
        ("Origin", origin),
        ("Access-Control-Request-Method", method),
    ];
    if !headers.is_empty() {
        sent.push(("Access-Control-Request-Headers", headers));
    }
    send(endpoint, "OPTIONS", "/site/photo.jpg", &sent).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_are_answered_from_the_first_matching_rule() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket("site")
        .send()
        .await
        .expect("bucket");
    let endpoint = server.endpoint.as_str();
    let preflight = |origin: &'static str, method: &'static str, headers: &'static str| {
        preflight(endpoint, origin, method, headers)
    };

    let r = preflight("https://app.example", "GET", "").await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (403, Some("AccessForbidden"))
    );
    assert!(
        String::from_utf8_lossy(&r.body).contains("CORS is not enabled for this bucket"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    s3.put_bucket_cors()
        .bucket("site")
        .cors_configuration(config(vec![
            rule(&["https://app.example"], &["GET", "PUT"])
                .allowed_headers("x-amz-*")
                .allowed_headers("Content-Type")
                .expose_headers("ETag")
                .expose_headers("x-amz-request-id")
                .max_age_seconds(300)
                .build()
                .expect("rule"),
            rule(&["*"], &["GET"]).build().expect("rule"),
        ]))
        .send()
        .await
        .expect("put");

    // Seen at once: the gateway that stored the rules dropped its cache.
    let r = preflight("https://app.example", "PUT", "content-type, X-Amz-Date").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type, x-amz-date")
    );
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("ETag, x-amz-request-id")
    );
    assert_eq!(r.header("access-control-max-age"), Some("300"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert!(r.header("vary").is_some_and(|v| v.contains("Origin")));

    // The first rule does not allow the header; the second not PUT.
    let r = preflight("https://app.example", "PUT", "authorization").await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (403, Some("AccessForbidden"))
    );
    assert!(String::from_utf8_lossy(&r.body).contains("This CORS request is not allowed"));

    // Another origin falls to the second rule: `*`, no credentials.
    let r = preflight("https://other.example", "GET", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET"));
    assert_eq!(r.header("access-control-allow-credentials"), None);
    let r = preflight("https://other.example", "DELETE", "").await;
    assert_eq!(r.status, 403);

    let r = send(
        endpoint,
        "OPTIONS",
        "/site/photo.jpg",
        &[("Access-Control-Request-Method", "GET")],
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (400, Some("BadRequest"))
    );
    let r = send(
        endpoint,
        "OPTIONS",
        "/site/photo.jpg",
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "PATCH"),
        ],
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (400, Some("BadRequest"))
    );
    let r = send(
        endpoint,
        "OPTIONS",
        "/nowhere/photo.jpg",
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (403, Some("AccessForbidden"))
    );

    s3.delete_bucket_cors()
        .bucket("site")
        .send()
        .await
        .expect("delete");
    let r = preflight("https://other.example", "GET", "").await;
    assert_eq!(r.status, 403, "the deletion is seen at once");
    server.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_to_an_allowed_origin_carries_the_cors_headers() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket("site")
        .send()
        .await
        .expect("bucket");
    s3.put_object()
        .bucket("site")
        .key("page.html")
        .body(ByteStream::from_static(b"<p>hi</p>"))
        .send()
        .await
        .expect("put");
    s3.put_bucket_cors()
        .bucket("site")
        .cors_configuration(config(vec![
            rule(&["https://app.example"], &["GET", "HEAD"])
                .expose_headers("ETag")
                .build()
                .expect("rule"),
        ]))
        .send()
        .await
        .expect("put cors");
    let signer = Signer::new(&server.endpoint, &server.access_key, &server.secret_key);
    let origin = [("Origin", "https://app.example")];
    let allowed = |r: &RawResponse| {
        r.header("access-control-allow-origin") == Some("https://app.example")
            && r.header("access-control-expose-headers") == Some("ETag")
            && r.header("access-control-allow-credentials") == Some("true")
            && r.header("vary").is_some_and(|v| v.contains("Origin"))
    };

    let r = send_signed(&signer, "GET", "/site/page.html", &[], &origin).await;
    assert_eq!(r.status, 200);
    assert!(allowed(&r), "{:?}", r.headers);
    assert_eq!(r.body, b"<p>hi</p>");

    let r = send_signed(&signer, "GET", "/site/missing.html", &[], &origin).await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (404, Some("NoSuchKey"))
    );
    assert!(allowed(&r), "404: {:?}", r.headers);

    let r = send_signed(
        &signer,
        "GET",
        "/site/page.html",
        &[("if-match", "\"0000\"")],
        &origin,
    )
    .await;
    assert_eq!(r.status, 412);
    assert!(allowed(&r), "412: {:?}", r.headers);

    // Unsigned: no policy lets anyone in.
    let r = send(&server.endpoint, "GET", "/site/page.html", &origin).await;
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (403, Some("AccessDenied"))
    );
    assert!(allowed(&r), "403: {:?}", r.headers);

    let r = send_signed(&signer, "HEAD", "/site/page.html", &[], &origin).await;
    assert_eq!(r.status, 200);
    assert!(allowed(&r), "HEAD: {:?}", r.headers);

    // An origin, or a method, no rule allows: no CORS headers.
    let r = send_signed(
        &signer,
        "GET",
        "/site/page.html",
        &[],
        &[("Origin", "https://evil.example")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = send_signed(&signer, "DELETE", "/site/missing.html", &[], &origin).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = send_signed(&signer, "GET", "/site/page.html", &[], &[]).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    server.stop().expect("stop");
}
