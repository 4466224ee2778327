//! Virtual-host-style addressing (`bucket.DOMAIN`) with `--domain`, next to
//! path-style on the same server. No resolver here knows `*.DOMAIN`, so the
//! requests go to 127.0.0.1 with the virtual host in the Host header, signed
//! with SigV4 as a client would sign them.

mod common;

use std::time::SystemTime;

use arbor_compat_tests::{ArborServer, RawResponse, raw_request};
use common::sign::{Payload, Signer};

const DOMAIN: &str = "s3.arbor.test";

/// A request to `host` (a virtual host of the server), signed for it and
/// sent to the server's address.
fn signed(
    server: &ArborServer,
    method: &str,
    host: &str,
    target: &str,
    body: &[u8],
) -> RawResponse {
    let signer = Signer::new(
        &format!("http://{host}"),
        &server.access_key,
        &server.secret_key,
    );
    let headers = signer.sign_headers(
        method,
        target,
        &[("host", host)],
        Payload::Sha256Of(body),
        SystemTime::now(),
    );
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    raw_request(&server.endpoint, method, target, &headers, body).expect("request")
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
