//! Virtual-host-style addressing (`bucket.DOMAIN`) with `--domain`, next to
//! path-style on the same server. No resolver here knows `*.DOMAIN`, so the
//! requests go to 127.0.0.1 with the virtual host in the Host header, signed
//! with SigV4 as a client would sign them.

mod common;

use std::time::SystemTime;

use arbor_compat_tests::{ArborServer, RawResponse, raw_request};
use sha2::Digest;

const DOMAIN: &str = "s3.arbor.test";

fn signed(
    server: &ArborServer,
    method: &str,
    host: &str,
    target: &str,
    body: &[u8],
) -> RawResponse {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(
        &server.access_key,
        &server.secret_key,
        None,
        None,
        "test",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("params")
        .into();
    let payload = hex::encode(sha2::Sha256::digest(body));
    let headers = [("host", host), ("x-amz-content-sha256", payload.as_str())];
    let url = format!("http://{host}{target}");
    let signable = SignableRequest::new(
        method,
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut all: Vec<(String, String)> = vec![("x-amz-content-sha256".into(), payload.clone())];
    for (name, value) in instructions.headers() {
        all.push((name.to_owned(), value.to_owned()));
    }
    let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    raw_request_with_host(&server.endpoint, host, method, target, &refs, body)
}

/// `raw_request`, but with the Host header of a virtual host.
fn raw_request_with_host(
    endpoint: &str,
    host: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut with_host = vec![("Host", host)];
    with_host.extend_from_slice(headers);
    raw_request(endpoint, method, target, &with_host, body).expect("request")
}

#[test]
fn buckets_are_addressed_by_host_name_and_by_path() {
    let data = tempfile::tempdir().expect("tempdir");
    let server =
        ArborServer::start(data.path(), &["--domain", DOMAIN, "--no-fsync"]).expect("start");
    let port = server.endpoint.rsplit(':').next().expect("port").to_owned();
    let apex = format!("{DOMAIN}:{port}");
    let vhost = format!("photos.{DOMAIN}:{port}");

    let r = signed(&server, "PUT", &apex, "/photos", b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = signed(&server, "PUT", &vhost, "/2024/cat.jpg", b"meow");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = signed(&server, "GET", &vhost, "/2024/cat.jpg", b"");
    assert_eq!((r.status, r.body.as_slice()), (200, b"meow".as_slice()));
    let r = signed(&server, "GET", &vhost, "/?list-type=2&prefix=2024/", b"");
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("<Key>2024/cat.jpg</Key>"));
    // Path-style on the apex reaches the same object.
    let r = signed(&server, "GET", &apex, "/photos/2024/cat.jpg", b"");
    assert_eq!((r.status, r.body.as_slice()), (200, b"meow".as_slice()));
    let r = signed(
        &server,
        "GET",
        &format!("nobucket.{DOMAIN}:{port}"),
        "/x",
        b"",
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code().as_deref(), Some("NoSuchBucket"));
    assert!(server.stop().expect("stop").success());
}
