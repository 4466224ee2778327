//! The walking skeleton end to end: a real `arbor serve` process, driven by
//! aws-sdk-s3 through every call of the first slice (create, list and
//! delete buckets; put, get, head and delete objects; ListObjectsV2), then
//! restarted and read back byte for byte.

mod common;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CommonPrefix;

use arbor_compat_tests::ArborServer;
use common::{bytes, client, md5_hex};

const BUCKET: &str = "skeleton";
/// Small chunks so a few MiB span several of them.
const CHUNK_SIZE: &str = "1048576";

/// Keys that exercise S3 order on the tree (docs/design.md, Keys onto the
/// tree) and their bodies.
fn objects() -> Vec<(String, Vec<u8>)> {
    let sizes: [(&str, usize); 11] = [
        ("a", 0),
        ("a-b", 10),
        ("a/b", 64 * 1024),       // largest inline object
        ("a/c/d", 64 * 1024 + 1), // smallest chunked object
        ("a0", 1),
        ("photos/", 0),                                  // a directory marker
        ("photos/2024/x.jpg", 1024 * 1024),              // exactly one chunk
        ("photos/2024/y.jpg", 3 * 1024 * 1024 + 12_345), // four chunks
        ("日本/é", 77),
        ("a//b", 5),
        ("z z+%", 3),
    ];
    sizes
        .iter()
        .enumerate()
        .map(|(i, (k, n))| ((*k).to_owned(), bytes(*n, i as u64 + 1)))
        .collect()
}

async fn get_bytes(s3: &aws_sdk_s3::Client, key: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

async fn list(
    s3: &aws_sdk_s3::Client,
    prefix: &str,
    delimiter: Option<&str>,
) -> (Vec<String>, Vec<String>) {
    let mut keys = Vec::new();
    let mut prefixes = Vec::new();
    let mut token = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_owned))
            .max_keys(2)
            .set_continuation_token(token)
            .send()
            .await
            .expect("list");
        keys.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        prefixes.extend(
            out.common_prefixes()
                .iter()
                .filter_map(CommonPrefix::prefix)
                .map(str::to_owned),
        );
        if !out.is_truncated().unwrap_or(false) {
            break;
        }
        token = out.next_continuation_token().map(str::to_owned);
        assert!(token.is_some(), "truncated page without a token");
    }
    (keys, prefixes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_skeleton_call_survives_a_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let server =
        ArborServer::start(data.path(), &["--chunk-size", CHUNK_SIZE]).expect("start arbor");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);

    // Buckets.
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    // Already ours: us-east-1 (no region pinned) answers 200, as S3 does.
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create a bucket we own again");
    // Asked for in another region, it is BucketAlreadyOwnedByYou there.
    let in_region = |region: &str| {
        aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
            .build()
    };
    let again = s3
        .create_bucket()
        .bucket(BUCKET)
        .create_bucket_configuration(in_region("eu-central-1"))
        .send()
        .await
        .expect_err("ours, in eu-central-1");
    assert_eq!(again.code(), Some("BucketAlreadyOwnedByYou"));
    assert_eq!(again.raw_response().map(|r| r.status().as_u16()), Some(409));
    let bad = s3
        .create_bucket()
        .bucket("Not_A_Bucket")
        .send()
        .await
        .expect_err("invalid name");
    assert_eq!(bad.code(), Some("InvalidBucketName"));
    let buckets = s3.list_buckets().send().await.expect("list buckets");
    let names: Vec<_> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, [BUCKET]);

    // Objects: put, with the ETag the MD5 of the body.
    let objects = objects();
    for (key, body) in &objects {
        let out = s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type("application/x-arbor-test")
            .metadata("origin", "skeleton")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        assert_eq!(
            out.e_tag(),
            Some(format!("\"{}\"", md5_hex(body)).as_str()),
            "etag of {key}"
        );
    }

    // Get and head.
    for (key, body) in &objects {
        assert_eq!(&get_bytes(&s3, key).await, body, "body of {key}");
        let head = s3
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .expect("head");
        assert_eq!(
            head.content_length(),
            Some(body.len() as i64),
            "length of {key}"
        );
        assert_eq!(head.content_type(), Some("application/x-arbor-test"));
        assert_eq!(
            head.metadata()
                .and_then(|m| m.get("origin"))
                .map(String::as_str),
            Some("skeleton")
        );
        assert_eq!(
            head.e_tag(),
            Some(format!("\"{}\"", md5_hex(body)).as_str())
        );
    }
    // A range across a chunk boundary.
    let big = &objects
        .iter()
        .find(|(k, _)| k == "photos/2024/y.jpg")
        .expect("big")
        .1;
    let ranged = s3
        .get_object()
        .bucket(BUCKET)
        .key("photos/2024/y.jpg")
        .range("bytes=1048000-1049999")
        .send()
        .await
        .expect("ranged get");
    assert_eq!(
        ranged.content_range(),
        Some(format!("bytes 1048000-1049999/{}", big.len()).as_str())
    );
    let ranged = ranged.body.collect().await.expect("body").into_bytes();
    assert_eq!(&ranged[..], &big[1_048_000..1_050_000]);

    // Missing things.
    let missing = s3
        .get_object()
        .bucket(BUCKET)
        .key("nope")
        .send()
        .await
        .expect_err("missing key");
    assert_eq!(missing.code(), Some("NoSuchKey"));
    let missing = s3
        .get_object()
        .bucket("no-such-bucket")
        .key("a")
        .send()
        .await
        .expect_err("missing bucket");
    assert_eq!(missing.code(), Some("NoSuchBucket"));
    let missing = s3
        .head_object()
        .bucket(BUCKET)
        .key("nope")
        .send()
        .await
        .expect_err("head missing key");
    assert_eq!(
        missing.raw_response().map(|r| r.status().as_u16()),
        Some(404)
    );

    // Listing: everything, in S3 byte order.
    let mut expected: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    expected.sort();
    let (keys, prefixes) = list(&s3, "", None).await;
    assert_eq!(keys, expected);
    assert!(prefixes.is_empty());
    // One level of the tree with delimiter "/".
    let (keys, prefixes) = list(&s3, "", Some("/")).await;
    assert_eq!(keys, ["a", "a-b", "a0", "z z+%"]);
    assert_eq!(prefixes, ["a/", "photos/", "日本/"]);
    let (keys, prefixes) = list(&s3, "a/", Some("/")).await;
    assert_eq!(keys, ["a/b"]);
    assert_eq!(prefixes, ["a//", "a/c/"]);
    let (keys, prefixes) = list(&s3, "photos/", Some("/")).await;
    assert_eq!(keys, ["photos/"]);
    assert_eq!(prefixes, ["photos/2024/"]);
    // A prefix that ends mid-segment.
    let (keys, prefixes) = list(&s3, "pho", Some("/")).await;
    assert!(keys.is_empty());
    assert_eq!(prefixes, ["photos/"]);

    // Delete: idempotent, and the key is gone from reads and listings.
    s3.delete_object()
        .bucket(BUCKET)
        .key("a/c/d")
        .send()
        .await
        .expect("delete");
    s3.delete_object()
        .bucket(BUCKET)
        .key("a/c/d")
        .send()
        .await
        .expect("delete again");
    let gone = s3
        .get_object()
        .bucket(BUCKET)
        .key("a/c/d")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(gone.code(), Some("NoSuchKey"));
    let (keys, prefixes) = list(&s3, "a/", Some("/")).await;
    assert_eq!(keys, ["a/b"]);
    assert_eq!(
        prefixes,
        ["a//"],
        "the emptied directory a/c/ must disappear"
    );
    let not_empty = s3
        .delete_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect_err("bucket not empty");
    assert_eq!(not_empty.code(), Some("BucketNotEmpty"));

    // A wrongly signed request changes nothing.
    let forged = client(&server.endpoint, &server.access_key, "not-the-secret");
    let denied = forged
        .put_object()
        .bucket(BUCKET)
        .key("a")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(
        denied.expect_err("bad signature").code(),
        Some("SignatureDoesNotMatch")
    );

    // Restart: same data directory, same stored credentials, same data.
    let (access_key, secret_key) = (server.access_key.clone(), server.secret_key.clone());
    let status = server.stop().expect("stop");
    assert!(status.success(), "arbor exited with {status}");
    let server =
        ArborServer::start(data.path(), &["--chunk-size", CHUNK_SIZE]).expect("restart arbor");
    assert_eq!(
        (server.access_key.as_str(), server.secret_key.as_str()),
        (access_key.as_str(), secret_key.as_str())
    );
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    for (key, body) in objects.iter().filter(|(k, _)| k != "a/c/d") {
        assert_eq!(
            &get_bytes(&s3, key).await,
            body,
            "body of {key} after restart"
        );
    }
    let (keys, _) = list(&s3, "", None).await;
    expected.retain(|k| k != "a/c/d");
    assert_eq!(keys, expected);

    // Empty the bucket and delete it.
    for key in &keys {
        s3.delete_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .expect("delete");
    }
    s3.delete_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("delete bucket");
    let buckets = s3.list_buckets().send().await.expect("list buckets");
    assert!(buckets.buckets().is_empty());
    assert!(server.stop().expect("stop").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_region_refuses_requests_signed_for_another() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data.path(), &["--region", "eu-west-3", "--no-fsync"])
        .expect("start arbor");
    let wrong = client(&server.endpoint, &server.access_key, &server.secret_key);
    let refused = wrong
        .list_buckets()
        .send()
        .await
        .expect_err("signed for us-east-1");
    assert_eq!(refused.code(), Some("AuthorizationHeaderMalformed"));

    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("eu-west-3"))
        .endpoint_url(&server.endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            &server.access_key,
            &server.secret_key,
            None,
            None,
            "compat-tests",
        ))
        .http_client(http)
        .build();
    let right = aws_sdk_s3::Client::from_conf(config);
    right
        .create_bucket()
        .bucket("pinned")
        .send()
        .await
        .expect("signed for eu-west-3");
    let location = right
        .get_bucket_location()
        .bucket("pinned")
        .send()
        .await
        .expect("location");
    assert_eq!(
        location.location_constraint().map(|c| c.as_str()),
        Some("eu-west-3")
    );
    // Outside us-east-1 a bucket we own already is BucketAlreadyOwnedByYou.
    let again = right
        .create_bucket()
        .bucket("pinned")
        .send()
        .await
        .expect_err("bucket exists");
    assert_eq!(again.code(), Some("BucketAlreadyOwnedByYou"));
    assert_eq!(again.raw_response().map(|r| r.status().as_u16()), Some(409));
    // A location constraint names the pinned region or none.
    let elsewhere = right
        .create_bucket()
        .bucket("elsewhere")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
                .build(),
        )
        .send()
        .await
        .expect_err("another region");
    assert_eq!(elsewhere.code(), Some("IllegalLocationConstraintException"));
    assert_eq!(
        elsewhere.raw_response().map(|r| r.status().as_u16()),
        Some(400)
    );
    right
        .create_bucket()
        .bucket("here")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest3)
                .build(),
        )
        .send()
        .await
        .expect("this region");
    // `arbor admin` signs for the region it is told, as the server is.
    let admin = |region: Option<&str>| {
        let mut command =
            std::process::Command::new(arbor_compat_tests::arbor_binary().expect("binary"));
        command
            .args(["admin", "--endpoint", &server.endpoint])
            .env("ARBOR_ACCESS_KEY", &server.access_key)
            .env("ARBOR_SECRET_KEY", &server.secret_key)
            .env_remove("ARBOR_REGION");
        if let Some(region) = region {
            command.args(["--region", region]);
        }
        let out = command
            .args(["key", "list"])
            .output()
            .expect("run arbor admin");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stderr) = admin(None);
    assert!(!ok, "signed for us-east-1");
    assert!(stderr.contains("AuthorizationHeaderMalformed"), "{stderr}");
    let (ok, stderr) = admin(Some("eu-west-3"));
    assert!(ok, "{stderr}");
    assert!(server.stop().expect("stop").success());
}

/// Pinned to us-east-1, a CreateBucket of a bucket we own answers 200 and
/// changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreating_an_owned_bucket_in_us_east_1_succeeds() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data.path(), &["--region", "us-east-1", "--no-fsync"])
        .expect("start arbor");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create");
    s3.put_object()
        .bucket(BUCKET)
        .key("kept")
        .body(ByteStream::from_static(b"kept"))
        .send()
        .await
        .expect("put");
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create a bucket we own again");
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["kept"]);
    let buckets = s3.list_buckets().send().await.expect("list buckets");
    assert_eq!(buckets.buckets().len(), 1);
    assert!(server.stop().expect("stop").success());
}
