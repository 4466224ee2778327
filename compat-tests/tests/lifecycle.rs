//! Bucket lifecycle through aws-sdk-s3: the configuration's Put, Get and
//! Delete with AWS's errors, and the rules applied by the running server
//! with a lifecycle day of one second: current versions expire within a
//! rule's prefix only (and with the tags and sizes its filter names),
//! noncurrent versions go keeping the newest ones, a
//! version under a legal hold survives, a lone delete marker goes, and an
//! old incomplete upload is aborted.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectLockLegalHold, ObjectLockLegalHoldStatus, Tag, Transition,
    TransitionStorageClass,
};

use arbor_compat_tests::ArborServer;
use common::client;

/// How long the rules get to act, at most (a day is a second, a pass
/// runs every second).
const PATIENCE: Duration = Duration::from_secs(30);

fn rule(id: &str, prefix: &str) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
}

/// The rule's own `<Prefix>`, the older form beside `<Filter>`.
#[allow(deprecated)]
fn legacy_prefix(
    builder: aws_sdk_s3::types::builders::LifecycleRuleBuilder,
    prefix: &str,
) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    builder.prefix(prefix)
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().expect("tag")
}

/// A rule that expires what its filter covers after `days`.
fn filtered(id: &str, filter: LifecycleRuleFilter, days: i32) -> LifecycleRule {
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
        .filter(filter)
        .expiration(LifecycleExpiration::builder().days(days).build())
        .build()
        .expect("rule")
}

fn configuration(rules: Vec<LifecycleRule>) -> BucketLifecycleConfiguration {
    BucketLifecycleConfiguration::builder()
        .set_rules(Some(rules))
        .build()
        .expect("configuration")
}

async fn put_rules(
    s3: &Client,
    bucket: &str,
    rules: Vec<LifecycleRule>,
) -> Result<(), (Option<String>, Option<String>)> {
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(configuration(rules))
        .send()
        .await
        .map(drop)
        .map_err(|e| (e.code().map(str::to_owned), e.message().map(str::to_owned)))
}

async fn put(s3: &Client, bucket: &str, key: &str, body: &[u8]) -> Option<String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
        .version_id
}

/// Every (key, version id, is a delete marker) under `prefix`, keys in
/// order, newest version first.
async fn versions(s3: &Client, bucket: &str, prefix: &str) -> Vec<(String, String, bool)> {
    let out = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("list versions");
    let mut all: Vec<(String, String, bool, i64)> = Vec::new();
    for v in out.versions() {
        all.push((
            v.key().unwrap_or_default().to_owned(),
            v.version_id().unwrap_or_default().to_owned(),
            false,
            0,
        ));
    }
    for m in out.delete_markers() {
        all.push((
            m.key().unwrap_or_default().to_owned(),
            m.version_id().unwrap_or_default().to_owned(),
            true,
            0,
        ));
    }
    // Version ids sort by age: newest first within a key.
    all.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    all.into_iter().map(|(k, id, m, _)| (k, id, m)).collect()
}

async fn keys(s3: &Client, bucket: &str) -> Vec<String> {
    s3.list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

async fn uploads(s3: &Client, bucket: &str) -> Vec<String> {
    s3.list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("list uploads")
        .uploads()
        .iter()
        .filter_map(|u| u.key().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_configuration_is_stored_checked_and_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(dir.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    let b = "rules";
    s3.create_bucket().bucket(b).send().await.expect("bucket");

    let missing = s3
        .get_bucket_lifecycle_configuration()
        .bucket(b)
        .send()
        .await
        .expect_err("none yet");
    assert_eq!(missing.code(), Some("NoSuchLifecycleConfiguration"));
    assert_eq!(
        missing.raw_response().map(|r| r.status().as_u16()),
        Some(404)
    );

    let expire = rule("expire", "logs/")
        .expiration(LifecycleExpiration::builder().days(30).build())
        .build()
        .expect("rule");
    let cases: Vec<(Vec<LifecycleRule>, &str)> = vec![
        (
            vec![
                rule("t", "")
                    .transitions(
                        Transition::builder()
                            .days(30)
                            .storage_class(TransitionStorageClass::Glacier)
                            .build(),
                    )
                    .build()
                    .expect("rule"),
            ],
            "NotImplemented",
        ),
        (
            vec![
                LifecycleRule::builder()
                    .id("tag")
                    .status(ExpirationStatus::Enabled)
                    .filter(LifecycleRuleFilter::builder().tag(tag("k", "v")).build())
                    .abort_incomplete_multipart_upload(
                        AbortIncompleteMultipartUpload::builder()
                            .days_after_initiation(1)
                            .build(),
                    )
                    .build()
                    .expect("rule"),
            ],
            "InvalidRequest",
        ),
        (
            vec![
                LifecycleRule::builder()
                    .id("sizes")
                    .status(ExpirationStatus::Enabled)
                    .filter(
                        LifecycleRuleFilter::builder()
                            .and(
                                LifecycleRuleAndOperator::builder()
                                    .object_size_greater_than(10)
                                    .object_size_less_than(10)
                                    .build(),
                            )
                            .build(),
                    )
                    .expiration(LifecycleExpiration::builder().days(1).build())
                    .build()
                    .expect("rule"),
            ],
            "InvalidArgument",
        ),
        (vec![expire.clone(), expire.clone()], "InvalidArgument"),
        (
            vec![
                rule("zero", "")
                    .expiration(LifecycleExpiration::builder().days(0).build())
                    .build()
                    .expect("rule"),
            ],
            "InvalidArgument",
        ),
        (
            vec![rule("nothing", "").build().expect("rule")],
            "InvalidRequest",
        ),
        (
            vec![
                legacy_prefix(rule("both", "a/"), "b/")
                    .expiration(LifecycleExpiration::builder().days(1).build())
                    .build()
                    .expect("rule"),
            ],
            "MalformedXML",
        ),
        (
            vec![
                rule("marker-and-days", "")
                    .expiration(
                        LifecycleExpiration::builder()
                            .days(1)
                            .expired_object_delete_marker(true)
                            .build(),
                    )
                    .build()
                    .expect("rule"),
            ],
            "InvalidArgument",
        ),
    ];
    for (rules, code) in cases {
        let (got, message) = put_rules(&s3, b, rules.clone()).await.expect_err("refused");
        assert_eq!(got.as_deref(), Some(code), "{rules:?}: {message:?}");
    }
    // Nothing refused was stored.
    assert!(
        s3.get_bucket_lifecycle_configuration()
            .bucket(b)
            .send()
            .await
            .is_err()
    );

    let noncurrent = rule("noncurrent", "")
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(7)
                .newer_noncurrent_versions(2)
                .build(),
        )
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(3)
                .build(),
        )
        .build()
        .expect("rule");
    let legacy = legacy_prefix(
        LifecycleRule::builder()
            .id("legacy")
            .status(ExpirationStatus::Disabled),
        "old/",
    )
    .expiration(
        LifecycleExpiration::builder()
            .expired_object_delete_marker(true)
            .build(),
    )
    .build()
    .expect("rule");
    put_rules(
        &s3,
        b,
        vec![expire.clone(), noncurrent.clone(), legacy.clone()],
    )
    .await
    .expect("put");
    let got = s3
        .get_bucket_lifecycle_configuration()
        .bucket(b)
        .send()
        .await
        .expect("get");
    assert_eq!(got.rules(), &[expire.clone(), noncurrent, legacy]);
    // S3's default minimum size for transitions, which Terraform reads
    // back; the one asked for is answered by the put.
    use aws_sdk_s3::types::TransitionDefaultMinimumObjectSize as MinimumSize;
    assert_eq!(
        got.transition_default_minimum_object_size(),
        Some(&MinimumSize::AllStorageClasses128K)
    );
    let put = s3
        .put_bucket_lifecycle_configuration()
        .bucket(b)
        .lifecycle_configuration(configuration(vec![expire.clone()]))
        .transition_default_minimum_object_size(MinimumSize::VariesByStorageClass)
        .send()
        .await
        .expect("put with a minimum size");
    assert_eq!(
        put.transition_default_minimum_object_size(),
        Some(&MinimumSize::VariesByStorageClass)
    );

    // Filters by tag and size come back as they were sent.
    let by_tag = filtered(
        "by-tag",
        LifecycleRuleFilter::builder()
            .tag(tag("class", "tmp"))
            .build(),
        1,
    );
    let by_size = filtered(
        "by-size",
        LifecycleRuleFilter::builder()
            .object_size_greater_than(1024)
            .build(),
        2,
    );
    let by_all = filtered(
        "by-all",
        LifecycleRuleFilter::builder()
            .and(
                LifecycleRuleAndOperator::builder()
                    .prefix("logs/")
                    .tags(tag("a", "1"))
                    .tags(tag("b", ""))
                    .object_size_greater_than(0)
                    .object_size_less_than(1 << 20)
                    .build(),
            )
            .build(),
        3,
    );
    put_rules(
        &s3,
        b,
        vec![
            by_tag.clone(),
            by_size.clone(),
            by_all.clone(),
            expire.clone(),
        ],
    )
    .await
    .expect("put filters");
    let got = s3
        .get_bucket_lifecycle_configuration()
        .bucket(b)
        .send()
        .await
        .expect("get");
    assert_eq!(got.rules(), &[by_tag, by_size, by_all, expire]);

    // PutObject, GetObject and HeadObject of a current version say when a
    // rule expires it, and which: the earliest that covers it.
    // A midnight UTC, `days` to `days` + 1 days from now (a minute's
    // leeway for the request's own time): the rule's ID, if so.
    let day = 24 * 3600;
    let expires = |header: Option<&str>, days: i64| -> Option<String> {
        let header = header?;
        let (date, id) = header
            .strip_prefix("expiry-date=\"")?
            .split_once("\", rule-id=\"")?;
        let at = DateTime::from_str(date, aws_smithy_types::date_time::Format::HttpDate)
            .ok()?
            .secs();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        let ahead = at - i64::try_from(now).ok()?;
        let in_range = at % day == 0 && ahead > days * day - 60 && ahead <= (days + 1) * day;
        in_range.then(|| id.strip_suffix('"').map(str::to_owned))?
    };
    let put = s3
        .put_object()
        .bucket(b)
        .key("logs/x")
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .expect("put");
    assert_eq!(expires(put.expiration(), 30).as_deref(), Some("expire"));
    let tagged = s3
        .put_object()
        .bucket(b)
        .key("logs/tagged")
        .tagging("class=tmp")
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .expect("put");
    assert_eq!(expires(tagged.expiration(), 1).as_deref(), Some("by-tag"));
    let head = s3
        .head_object()
        .bucket(b)
        .key("logs/tagged")
        .send()
        .await
        .expect("head");
    assert_eq!(expires(head.expiration(), 1).as_deref(), Some("by-tag"));
    let got = s3
        .get_object()
        .bucket(b)
        .key("logs/x")
        .send()
        .await
        .expect("get");
    assert_eq!(expires(got.expiration(), 30).as_deref(), Some("expire"));
    // A date condition S3 ignores takes the GET another way through the
    // gateway, which answers alike.
    let got = s3
        .get_object()
        .bucket(b)
        .key("logs/x")
        .customize()
        .mutate_request(|req| {
            req.headers_mut()
                .insert("if-modified-since", "Invalid Date");
        })
        .send()
        .await
        .expect("get, an ignored date");
    assert_eq!(expires(got.expiration(), 30).as_deref(), Some("expire"));
    let uncovered = s3
        .put_object()
        .bucket(b)
        .key("other")
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .expect("put");
    assert_eq!(uncovered.expiration(), None);
    let copied = s3
        .copy_object()
        .bucket(b)
        .key("logs/copy")
        .copy_source(format!("{b}/other"))
        .send()
        .await
        .expect("copy");
    assert_eq!(expires(copied.expiration(), 30).as_deref(), Some("expire"));
    let upload = s3
        .create_multipart_upload()
        .bucket(b)
        .key("logs/parts")
        .send()
        .await
        .expect("create");
    let upload_id = upload.upload_id().unwrap_or_default();
    let part = s3
        .upload_part()
        .bucket(b)
        .key("logs/parts")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .expect("part");
    let completed = s3
        .complete_multipart_upload()
        .bucket(b)
        .key("logs/parts")
        .upload_id(upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap_or_default())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    assert_eq!(
        expires(completed.expiration(), 30).as_deref(),
        Some("expire")
    );
    for key in ["logs/x", "logs/tagged", "other", "logs/copy", "logs/parts"] {
        s3.delete_object()
            .bucket(b)
            .key(key)
            .send()
            .await
            .expect("delete");
    }

    let deleted = s3
        .delete_bucket_lifecycle()
        .bucket(b)
        .send()
        .await
        .expect("delete");
    drop(deleted);
    let gone = s3
        .get_bucket_lifecycle_configuration()
        .bucket(b)
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(gone.code(), Some("NoSuchLifecycleConfiguration"));
    let (code, _) = put_rules(
        &s3,
        "no-such-bucket",
        vec![
            rule("x", "")
                .expiration(LifecycleExpiration::builder().days(1).build())
                .build()
                .expect("rule"),
        ],
    )
    .await
    .expect_err("no bucket");
    assert_eq!(code.as_deref(), Some("NoSuchBucket"));
    server.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_expire_versions_markers_and_uploads_but_never_a_locked_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(
        dir.path(),
        &[
            "--no-fsync",
            "--lifecycle-day-secs",
            "1",
            "--lifecycle-interval-secs",
            "1",
        ],
    )
    .expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);

    // An unversioned bucket: current versions under logs/ expire after two
    // days, uploads under tmp/ are aborted after one.
    let plain = "plain";
    s3.create_bucket()
        .bucket(plain)
        .send()
        .await
        .expect("bucket");
    for key in ["logs/a", "logs/b", "other/c", "logsx"] {
        put(&s3, plain, key, b"data").await;
    }
    // Under tagged/, only what carries class=tmp and is over 2 bytes.
    for (key, tagging, body) in [
        ("tagged/tmp", "class=tmp&x=y", &b"data"[..]),
        ("tagged/keep", "class=keep", b"data"),
        ("tagged/small", "class=tmp", b"d"),
        ("tagged/none", "", b"data"),
    ] {
        s3.put_object()
            .bucket(plain)
            .key(key)
            .tagging(tagging)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }
    let mut upload_ids = Vec::new();
    for key in ["tmp/u", "other/u"] {
        let created = s3
            .create_multipart_upload()
            .bucket(plain)
            .key(key)
            .send()
            .await
            .expect("create upload");
        upload_ids.push(created.upload_id().unwrap_or_default().to_owned());
    }
    put_rules(
        &s3,
        plain,
        vec![
            rule("logs", "logs/")
                .expiration(LifecycleExpiration::builder().days(2).build())
                .build()
                .expect("rule"),
            rule("tmp", "tmp/")
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder()
                        .days_after_initiation(1)
                        .build(),
                )
                .build()
                .expect("rule"),
            filtered(
                "tagged",
                LifecycleRuleFilter::builder()
                    .and(
                        LifecycleRuleAndOperator::builder()
                            .prefix("tagged/")
                            .tags(tag("class", "tmp"))
                            .object_size_greater_than(2)
                            .build(),
                    )
                    .build(),
                1,
            ),
        ],
    )
    .await
    .expect("rules");

    // An Object Lock bucket (versioning enabled): noncurrent versions a
    // day old go, keeping the newest one; under "gone" all of them, and
    // then the lone delete marker.
    let locked = "locked";
    s3.create_bucket()
        .bucket(locked)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("locked bucket");
    let mut k = Vec::new();
    for body in [b"k1", b"k2", b"k3", b"k4"] {
        k.push(put(&s3, locked, "k", body).await.expect("id"));
    }
    let held = put(&s3, locked, "held", b"h1").await.expect("id");
    s3.put_object_legal_hold()
        .bucket(locked)
        .key("held")
        .version_id(&held)
        .legal_hold(
            ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::On)
                .build(),
        )
        .send()
        .await
        .expect("hold");
    let h2 = put(&s3, locked, "held", b"h2").await.expect("id");
    let h3 = put(&s3, locked, "held", b"h3").await.expect("id");
    put(&s3, locked, "gone", b"g1").await;
    s3.delete_object()
        .bucket(locked)
        .key("gone")
        .send()
        .await
        .expect("marker");
    put_rules(
        &s3,
        locked,
        vec![
            rule("versions", "")
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(1)
                        .newer_noncurrent_versions(1)
                        .build(),
                )
                .build()
                .expect("rule"),
            rule("markers", "gone")
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(1)
                        .build(),
                )
                .expiration(
                    LifecycleExpiration::builder()
                        .expired_object_delete_marker(true)
                        .build(),
                )
                .build()
                .expect("rule"),
        ],
    )
    .await
    .expect("rules");

    let started = Instant::now();
    loop {
        let plain_done = keys(&s3, plain).await
            == [
                "logsx",
                "other/c",
                "tagged/keep",
                "tagged/none",
                "tagged/small",
            ]
            && uploads(&s3, plain).await == ["other/u"];
        let k_done = versions(&s3, locked, "k").await.len() == 2;
        let gone_done = versions(&s3, locked, "gone").await.is_empty();
        if plain_done && k_done && gone_done {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "rules not applied in {PATIENCE:?}: plain {:?} uploads {:?}, k {:?}, gone {:?}",
            keys(&s3, plain).await,
            uploads(&s3, plain).await,
            versions(&s3, locked, "k").await,
            versions(&s3, locked, "gone").await,
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The newest version and the newest noncurrent one are kept.
    let kept: Vec<String> = versions(&s3, locked, "k")
        .await
        .into_iter()
        .map(|(_, id, _)| id)
        .collect();
    assert_eq!(kept, vec![k[3].clone(), k[2].clone()]);
    // Passes go on; the held version, beyond the one newest noncurrent
    // version, is still there, and the keys outside the prefix are too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held_versions: Vec<String> = versions(&s3, locked, "held")
        .await
        .into_iter()
        .map(|(_, id, _)| id)
        .collect();
    assert_eq!(held_versions, vec![h3, h2, held.clone()]);
    let body = s3
        .get_object()
        .bucket(locked)
        .key("held")
        .version_id(&held)
        .send()
        .await
        .expect("held version")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert_eq!(&body[..], b"h1");
    assert_eq!(
        keys(&s3, plain).await,
        [
            "logsx",
            "other/c",
            "tagged/keep",
            "tagged/none",
            "tagged/small"
        ]
    );
    assert_eq!(uploads(&s3, plain).await, ["other/u"]);
    // Once lifted, the held version goes too.
    s3.put_object_legal_hold()
        .bucket(locked)
        .key("held")
        .version_id(&held)
        .legal_hold(
            ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::Off)
                .build(),
        )
        .send()
        .await
        .expect("lift");
    let started = Instant::now();
    while versions(&s3, locked, "held").await.len() != 2 {
        assert!(started.elapsed() < PATIENCE, "the lifted version stays");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().expect("stop");
}
