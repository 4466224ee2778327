//! Browser uploads: `POST /bucket` with a multipart form and a policy
//! signed with SigV4, as AWS defines them (s3s parses the form and checks
//! the signature and the policy's conditions; Arbor checks the signer's
//! permission for the form's key and stores the file like a PutObject).

mod common;

use std::time::SystemTime;

use arbor_compat_tests::{ArborServer, RawResponse, raw_request};
use common::client;
use common::sign::{PostForm, Signer};

const BUCKET: &str = "uploads";

fn post(server: &ArborServer, form: &PostForm) -> RawResponse {
    raw_request(
        &server.endpoint,
        "POST",
        &format!("/{BUCKET}"),
        &[("content-type", &form.content_type)],
        &form.body,
    )
    .expect("POST")
}

fn conditions(extra: &[&str]) -> Vec<String> {
    let mut all = vec![
        format!(r#"{{"bucket":"{BUCKET}"}}"#),
        r#"["starts-with","$key","user/"]"#.to_owned(),
        r#"["content-length-range",1,1000]"#.to_owned(),
    ];
    all.extend(extra.iter().map(|c| (*c).to_owned()));
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_form_uploads_and_each_condition_is_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(dir.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let signer = Signer::new(&server.endpoint, &server.access_key, &server.secret_key);
    let now = SystemTime::now();

    // 204 by default; the object is there.
    let form = signer.post_form(
        &[("key", "user/a.txt")],
        &conditions(&[]),
        b"hello",
        now,
        600,
    );
    let answer = post(&server, &form);
    assert_eq!(
        answer.status,
        204,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("user/a.txt")
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert_eq!(got.as_ref(), b"hello");
    // Where it is: the endpoint posted to, then bucket and key.
    assert_eq!(
        answer.header("location"),
        Some(format!("{}/{BUCKET}/user/a.txt", server.endpoint).as_str())
    );

    // success_action_status 201: the PostResponse document, with the
    // object's URL, its key percent-encoded.
    let form = signer.post_form(
        &[("key", "user/b c.txt"), ("success_action_status", "201")],
        &conditions(&[r#"{"success_action_status":"201"}"#]),
        b"second",
        now,
        600,
    );
    let answer = post(&server, &form);
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let text = String::from_utf8_lossy(&answer.body);
    assert!(text.contains("<Key>user/b c.txt</Key>"), "{text}");
    let url = format!("{}/{BUCKET}/user/b%20c.txt", server.endpoint);
    assert!(
        text.contains(&format!("<Location>{url}</Location>")),
        "{text}"
    );
    assert_eq!(answer.header("location"), Some(url.as_str()));
    assert!(
        text.contains(&format!("<Bucket>{BUCKET}</Bucket>")),
        "{text}"
    );

    // success_action_redirect: 303 to it, with bucket, key and ETag.
    let form = signer.post_form(
        &[
            ("key", "user/c.txt"),
            ("success_action_redirect", "https://example.com/done"),
        ],
        &conditions(&[r#"{"success_action_redirect":"https://example.com/done"}"#]),
        b"third",
        now,
        600,
    );
    let answer = post(&server, &form);
    assert_eq!(
        answer.status,
        303,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let location = answer.header("location").expect("Location");
    assert!(
        location.starts_with("https://example.com/done?"),
        "{location}"
    );
    assert!(
        location.contains("key=user%2Fc.txt") || location.contains("key=user/c.txt"),
        "{location}"
    );
    assert!(location.contains("etag="), "{location}");

    // The `acl` field sets the object's ACL (and `x-amz-acl`, which s3s
    // reads itself): public-read, anyone reads it.
    let form = signer.post_form(
        &[("key", "user/acl.txt"), ("acl", "public-read")],
        &conditions(&[r#"{"acl":"public-read"}"#]),
        b"acl field",
        now,
        600,
    );
    assert_eq!(post(&server, &form).status, 204);
    let page = raw_request(
        &server.endpoint,
        "GET",
        &format!("/{BUCKET}/user/acl.txt"),
        &[],
        b"",
    )
    .expect("anonymous GET");
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));

    // `${filename}` becomes the file's name, in the key stored and in
    // the answer.
    let form = signer.post_form(
        &[
            ("key", "user/${filename}"),
            ("success_action_status", "201"),
        ],
        &conditions(&[r#"{"success_action_status":"201"}"#]),
        b"named",
        now,
        600,
    );
    let answer = post(&server, &form);
    assert_eq!(answer.status, 201);
    let text = String::from_utf8_lossy(&answer.body);
    assert!(text.contains("<Key>user/upload.bin</Key>"), "{text}");
    let stored = s3
        .head_object()
        .bucket(BUCKET)
        .key("user/upload.bin")
        .send()
        .await
        .expect("stored under the file's name");
    assert_eq!(stored.content_length(), Some(5));

    let form = signer.post_form(
        &[("key", "user/public.txt"), ("x-amz-acl", "public-read")],
        &conditions(&[r#"{"x-amz-acl":"public-read"}"#]),
        b"for all",
        now,
        600,
    );
    assert_eq!(post(&server, &form).status, 204);
    let page = raw_request(
        &server.endpoint,
        "GET",
        &format!("/{BUCKET}/user/public.txt"),
        &[],
        b"",
    )
    .expect("anonymous GET");
    assert_eq!(
        (page.status, page.body.as_slice()),
        (200, b"for all".as_slice())
    );
    let page = raw_request(
        &server.endpoint,
        "GET",
        &format!("/{BUCKET}/user/a.txt"),
        &[],
        b"",
    )
    .expect("anonymous GET");
    assert_eq!(page.status, 403, "the others stay private");

    // Refusals, none of which stores anything.
    let refused = [
        (
            "an expired policy",
            signer.post_form(&[("key", "user/x1")], &conditions(&[]), b"x", now, -60),
            403,
            "AccessDenied",
        ),
        (
            "a key outside the policy's prefix",
            signer.post_form(&[("key", "other/x2")], &conditions(&[]), b"x", now, 600),
            403,
            "AccessDenied",
        ),
        (
            "a file over content-length-range",
            signer.post_form(
                &[("key", "user/x3")],
                &conditions(&[]),
                &[7u8; 2000],
                now,
                600,
            ),
            400,
            "EntityTooLarge",
        ),
        (
            "a field no condition names",
            signer.post_form(
                &[("key", "user/x4"), ("x-amz-meta-note", "hi")],
                &conditions(&[]),
                b"x",
                now,
                600,
            ),
            403,
            "AccessDenied",
        ),
        (
            "a signature under another secret",
            Signer::new(&server.endpoint, &server.access_key, "not-the-secret").post_form(
                &[("key", "user/x5")],
                &conditions(&[]),
                b"x",
                now,
                600,
            ),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "an acl that is no canned ACL",
            signer.post_form(
                &[("key", "user/x9"), ("acl", "everyone-everything")],
                &conditions(&[r#"{"acl":"everyone-everything"}"#]),
                b"x",
                now,
                600,
            ),
            400,
            "InvalidArgument",
        ),
        (
            "server-side encryption, which Arbor does not do",
            signer.post_form(
                &[
                    ("key", "user/x10"),
                    ("x-amz-server-side-encryption", "AES256"),
                ],
                &conditions(&[]),
                b"x",
                now,
                600,
            ),
            501,
            "NotImplemented",
        ),
    ];
    for (what, form, status, code) in refused {
        let answer = post(&server, &form);
        assert_eq!(
            (answer.status, answer.error_code().as_deref()),
            (status, Some(code)),
            "{what}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys,
        [
            "user/a.txt",
            "user/acl.txt",
            "user/b c.txt",
            "user/c.txt",
            "user/public.txt",
            "user/upload.bin"
        ]
    );
    assert!(server.stop().expect("stop").success());
}

/// The peak resident memory of process `pid`, in KiB (Linux).
/// A form's checksum fields are the file's: checked, stored and answered
/// as PutObject's headers are, and the digest an Object Lock field needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forms_checksum_fields_are_the_files() {
    use base64::Engine;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(dir.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(BUCKET)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("bucket");
    let signer = Signer::new(&server.endpoint, &server.access_key, &server.secret_key);
    let now = SystemTime::now();
    let file = b"checked file";
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, file) as u32;
    let crc = base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes());
    let condition = r#"["starts-with","$x-amz-checksum-crc32",""]"#;
    let hold = r#"{"x-amz-object-lock-legal-hold":"ON"}"#;

    // Another file's CRC32: BadDigest, nothing stored.
    let form = signer.post_form(
        &[("key", "user/bad"), ("x-amz-checksum-crc32", "AAAAAA==")],
        &conditions(&[condition]),
        file,
        now,
        600,
    );
    let answer = post(&server, &form);
    assert_eq!(
        answer.status,
        400,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.error_code().as_deref(), Some("BadDigest"));
    assert!(
        s3.head_object()
            .bucket(BUCKET)
            .key("user/bad")
            .send()
            .await
            .is_err()
    );

    // Its own CRC32, with a legal hold: stored, held, the CRC32 kept.
    let form = signer.post_form(
        &[
            ("key", "user/held"),
            ("x-amz-checksum-crc32", &crc),
            ("x-amz-object-lock-legal-hold", "ON"),
        ],
        &conditions(&[condition, hold]),
        file,
        now,
        600,
    );
    let answer = post(&server, &form);
    assert_eq!(
        answer.status,
        204,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("user/held")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_crc32(), Some(crc.as_str()));
    assert_eq!(
        head.object_lock_legal_hold_status(),
        Some(&aws_sdk_s3::types::ObjectLockLegalHoldStatus::On)
    );

    // A legal hold without any digest: refused, as S3 refuses it.
    let form = signer.post_form(
        &[
            ("key", "user/undigested"),
            ("x-amz-object-lock-legal-hold", "ON"),
        ],
        &conditions(&[hold]),
        file,
        now,
        600,
    );
    let answer = post(&server, &form);
    assert_eq!(
        answer.status,
        400,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.error_code().as_deref(), Some("InvalidRequest"));
    assert!(server.stop().expect("stop").success());
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Forms of any size stream into chunks: a 64 MiB file is stored whole
/// without the gateway holding it, a file over the policy's maximum is
/// refused with nothing stored, and so is a form cut off in its file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_forms_stream_and_failed_ones_leave_nothing() {
    use sha2::Digest as _;
    use std::io::Write as _;

    const MIB: usize = 1024 * 1024;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(
        dir.path(),
        &["--no-fsync", "--chunk-size", &(8 * MIB).to_string()],
    )
    .expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let signer = Signer::new(&server.endpoint, &server.access_key, &server.secret_key);
    let now = SystemTime::now();
    let range = |max: usize| {
        vec![
            format!(r#"{{"bucket":"{BUCKET}"}}"#),
            r#"["starts-with","$key","big/"]"#.to_owned(),
            format!(r#"["content-length-range",1,{max}]"#),
        ]
    };

    // Warm up (a small form), then measure the peak around 64 MiB.
    let form = signer.post_form(&[("key", "big/small")], &range(MIB), b"warm", now, 600);
    assert_eq!(post(&server, &form).status, 204);
    let pid = server.pid().expect("running");
    let before = peak_rss_kib(pid).expect("VmHWM");
    let file: Vec<u8> = (0..64 * MIB).map(|i| (i * 31 % 251) as u8).collect();
    let form = signer.post_form(&[("key", "big/64m")], &range(100 * MIB), &file, now, 600);
    let answer = post(&server, &form);
    assert_eq!(
        answer.status,
        204,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    drop(form);
    let after = peak_rss_kib(pid).expect("VmHWM");
    let growth_mib = after.saturating_sub(before) / 1024;
    println!("gateway peak RSS: {before} KiB before, {after} KiB after the 64 MiB form");
    assert!(
        growth_mib < 64,
        "the gateway's peak memory grew by {growth_mib} MiB for a 64 MiB form"
    );
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("big/64m")
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert_eq!(got.len(), file.len());
    assert_eq!(sha2::Sha256::digest(&got), sha2::Sha256::digest(&file));

    // Over the policy's maximum: refused as it streams, nothing stored.
    let form = signer.post_form(
        &[("key", "big/over")],
        &range(MIB),
        &file[..3 * MIB],
        now,
        600,
    );
    let answer = post(&server, &form);
    assert_eq!(
        (answer.status, answer.error_code().as_deref()),
        (400, Some("EntityTooLarge")),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );

    // What the failures below wrote is deleted: the chunks now are all.
    let chunks_dir = dir.path().join("chunks");
    let stored_chunks = arbor_compat_tests::chunk_files(&chunks_dir);
    assert!(stored_chunks.len() >= 8, "64 MiB in 8 MiB chunks");

    // Cut off in the middle of the file: the connection drops.
    let form = signer.post_form(
        &[("key", "big/cut")],
        &range(100 * MIB),
        &file[..16 * MIB],
        now,
        600,
    );
    {
        let authority = server.endpoint.strip_prefix("http://").expect("http");
        let mut stream = std::net::TcpStream::connect(authority).expect("connect");
        let head = format!(
            "POST /{BUCKET} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
            form.content_type,
            form.body.len()
        );
        stream.write_all(head.as_bytes()).expect("head");
        stream
            .write_all(&form.body[..form.body.len() / 2])
            .expect("half the form");
        stream.flush().expect("flush");
    }
    // The gateway sees the end of the connection and fails the PUT.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("big/")
        .send()
        .await
        .expect("list");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["big/64m", "big/small"]);
    let mut left = Vec::new();
    for _ in 0..100 {
        left = arbor_compat_tests::chunk_files(&chunks_dir);
        if left == stored_chunks {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, stored_chunks, "the failed forms' chunks are deleted");
    assert!(server.stop().expect("stop").success());
}

/// A form signed with Signature Version 2 (`AWSAccessKeyId`, `signature`).
fn v2_form(access_key: &str, secret: &str, key: &str, file: &[u8]) -> PostForm {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let policy = format!(
        r#"{{"expiration":"2099-01-01T00:00:00Z","conditions":[{{"bucket":"{BUCKET}"}},{{"key":"{key}"}}]}}"#
    );
    let policy = base64::engine::general_purpose::STANDARD.encode(policy);
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(policy.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    form_of(
        &[
            ("key", key),
            ("AWSAccessKeyId", access_key),
            ("policy", &policy),
            ("signature", &signature),
        ],
        Some(file),
    )
}

/// A form of these fields and, if given, a file.
fn form_of(fields: &[(&str, &str)], file: Option<&[u8]>) -> PostForm {
    let boundary = "arbor-post-test-boundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some(file) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    PostForm {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        body,
    }
}

/// SigV2 forms, unsigned forms, and forms out of shape, answered as S3
/// answers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_v2_forms_and_malformed_forms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(dir.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");

    let form = v2_form(
        &server.access_key,
        &server.secret_key,
        "v2/ok",
        b"signed v2",
    );
    let answer = post(&server, &form);
    assert_eq!(
        answer.status,
        204,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.header("etag").is_some(), "the ETag header");
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("v2/ok")
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert_eq!(got.as_ref(), b"signed v2");

    let padding = "p".repeat(21 * 1024);
    let refused = [
        (
            "a SigV2 signature under another secret",
            v2_form(&server.access_key, "not-the-secret", "v2/x1", b"x"),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "an unknown access key",
            v2_form("AKIANOSUCHKEY0000000", &server.secret_key, "v2/x2", b"x"),
            403,
            "InvalidAccessKeyId",
        ),
        (
            "fields over 20 KiB before the file",
            form_of(&[("key", "v2/x3"), ("x-ignore-pad", &padding)], Some(b"x")),
            400,
            "MaxPostPreDataLengthExceededError",
        ),
        (
            "no file",
            form_of(&[("key", "v2/x4")], None),
            400,
            "InvalidArgument",
        ),
        (
            "a key named without a signature",
            form_of(
                &[("key", "v2/x6"), ("AWSAccessKeyId", &server.access_key)],
                Some(b"x"),
            ),
            400,
            "InvalidArgument",
        ),
        (
            "an expiration not in ISO 8601",
            {
                use base64::Engine as _;
                let policy = base64::engine::general_purpose::STANDARD.encode(
                    r#"{"expiration":"2099-01-01 00:00:00+00:00","conditions":[{"key":"v2/x7"}]}"#,
                );
                form_of(&[("key", "v2/x7"), ("policy", &policy)], Some(b"x"))
            },
            400,
            "InvalidPolicyDocument",
        ),
        (
            "a form cut before its first part ends",
            PostForm {
                content_type: "multipart/form-data; boundary=b".to_owned(),
                body: b"--b\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nv2/x5".to_vec(),
            },
            400,
            "MalformedPOSTRequest",
        ),
    ];
    for (what, form, status, code) in refused {
        let answer = post(&server, &form);
        assert_eq!(
            (answer.status, answer.error_code().as_deref()),
            (status, Some(code)),
            "{what}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }

    // An unsigned form: refused until the bucket's policy lets anyone
    // put under its key, then stored.
    let unsigned = form_of(&[("key", "open/anon")], Some(b"from anyone"));
    let answer = post(&server, &unsigned);
    assert_eq!(
        (answer.status, answer.error_code().as_deref()),
        (403, Some("AccessDenied"))
    );
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::{BUCKET}/open/*"}}]}}"#
    );
    s3.put_bucket_policy()
        .bucket(BUCKET)
        .policy(policy)
        .send()
        .await
        .expect("put policy");
    let answer = post(&server, &unsigned);
    assert_eq!(
        answer.status,
        204,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let outside = post(&server, &form_of(&[("key", "closed/anon")], Some(b"x")));
    assert_eq!(outside.status, 403, "only where the policy allows");
    // The `tagging` field, an XML Tagging document, tags the object.
    let tagged = form_of(
        &[
            ("key", "open/tagged"),
            (
                "tagging",
                "<Tagging><TagSet><Tag><Key>k 1</Key><Value>v+1=2</Value></Tag></TagSet></Tagging>",
            ),
        ],
        Some(b"tagged"),
    );
    let answer = post(&server, &tagged);
    assert_eq!(
        answer.status,
        204,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let tags = s3
        .get_object_tagging()
        .bucket(BUCKET)
        .key("open/tagged")
        .send()
        .await
        .expect("tags");
    let tags: Vec<(&str, &str)> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(tags, [("k 1", "v+1=2")]);

    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["open/anon", "open/tagged", "v2/ok"]);
    assert!(server.stop().expect("stop").success());
}
