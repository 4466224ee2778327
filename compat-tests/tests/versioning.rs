//! Versioning through aws-sdk-s3: PutBucketVersioning, versions and delete
//! markers, reads, copies and deletes naming a version, DeleteObjects with
//! version ids, ListObjectVersions paging, `null` versions in suspended
//! buckets, a GET that keeps its version while newer ones commit, chunk
//! files shared across versions and copies, and what the tree extensions
//! do in a versioned bucket; tags of each version.

mod common;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, Delete, ObjectIdentifier, Tag, Tagging, VersioningConfiguration,
};

use arbor_compat_tests::ArborServer;
use common::{bytes, client, settle, signed};

const MIB: usize = 1024 * 1024;

async fn set_versioning(s3: &Client, bucket: &str, status: BucketVersioningStatus) {
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .expect("put versioning");
}

/// Puts `body`; the version id S3 answered with, if any.
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

async fn get(s3: &Client, bucket: &str, key: &str, version: Option<&str>) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key} {version:?}: {e:?}"));
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// An SDK error's code, status and `x-amz-delete-marker` header.
fn failure<E>(e: &SdkError<E, HttpResponse>) -> (Option<String>, u16, Option<String>)
where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    let (status, marker) = match e {
        SdkError::ServiceError(service) => {
            let raw = service.raw();
            (
                raw.status().as_u16(),
                raw.headers().get("x-amz-delete-marker").map(str::to_owned),
            )
        }
        other => panic!("not a service error: {other:?}"),
    };
    (e.code().map(str::to_owned), status, marker)
}

/// (key, version id, is latest, is a delete marker) of every entry of
/// every page, `max_keys` at a time, following both markers.
async fn all_versions(
    s3: &Client,
    bucket: &str,
    max_keys: i32,
) -> Vec<(String, String, bool, bool)> {
    let mut out = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    for _ in 0..1000 {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .max_keys(max_keys)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .expect("list versions");
        let mut entries: Vec<(String, String, bool, bool)> = page
            .versions()
            .iter()
            .map(|v| {
                (
                    v.key().unwrap_or_default().to_owned(),
                    v.version_id().unwrap_or_default().to_owned(),
                    v.is_latest().unwrap_or(false),
                    false,
                )
            })
            .chain(page.delete_markers().iter().map(|m| {
                (
                    m.key().unwrap_or_default().to_owned(),
                    m.version_id().unwrap_or_default().to_owned(),
                    m.is_latest().unwrap_or(false),
                    true,
                )
            }))
            .collect();
        assert!(entries.len() <= usize::try_from(max_keys).expect("positive"));
        // The SDK returns versions and markers in two lists: put each
        // key's entries back in S3's order (keys ascending, newest first;
        // ids of one key sort by age, `null` among them by the listing).
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(entries);
        if !page.is_truncated().unwrap_or(false) {
            return out;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
        assert!(
            key_marker.is_some(),
            "a truncated page names where to resume"
        );
    }
    panic!("listing did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_delete_markers_and_null_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(dir.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    let b = "versioned";
    s3.create_bucket().bucket(b).send().await.expect("bucket");
    let state = s3
        .get_bucket_versioning()
        .bucket(b)
        .send()
        .await
        .expect("get");
    assert_eq!(state.status(), None, "never enabled: no Status");

    // Written before versioning: the null version.
    assert_eq!(put(&s3, b, "k", b"v0").await, None);
    set_versioning(&s3, b, BucketVersioningStatus::Enabled).await;
    let state = s3
        .get_bucket_versioning()
        .bucket(b)
        .send()
        .await
        .expect("get");
    assert_eq!(state.status(), Some(&BucketVersioningStatus::Enabled));
    let v1 = put(&s3, b, "k", b"v1").await.expect("v1 has an id");
    let v2 = put(&s3, b, "k", b"v2").await.expect("v2 has an id");
    assert_ne!(v1, v2);

    let current = s3
        .get_object()
        .bucket(b)
        .key("k")
        .send()
        .await
        .expect("get");
    assert_eq!(current.version_id(), Some(v2.as_str()));
    assert_eq!(get(&s3, b, "k", Some(&v1)).await, b"v1");
    assert_eq!(get(&s3, b, "k", Some("null")).await, b"v0");
    let head = s3
        .head_object()
        .bucket(b)
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .expect("head v1");
    assert_eq!(head.content_length(), Some(2));
    assert_eq!(head.version_id(), Some(v1.as_str()));
    // GetObjectAttributes carries its version in the header too.
    for (asked, expected) in [(Some(&v1), &v1), (None, &v2)] {
        let attributes = s3
            .get_object_attributes()
            .bucket(b)
            .key("k")
            .set_version_id(asked.cloned())
            .object_attributes(aws_sdk_s3::types::ObjectAttributes::ObjectSize)
            .send()
            .await
            .expect("attributes");
        assert_eq!(attributes.version_id(), Some(expected.as_str()));
        assert_eq!(attributes.object_size(), Some(2));
        assert!(attributes.last_modified().is_some());
    }

    // An earlier version copied onto its own key is restored as a new
    // version, as S3 restores one; without a version id nothing changes,
    // which S3 refuses.
    let r1 = put(&s3, b, "restore", b"r1").await.expect("r1");
    let r2 = put(&s3, b, "restore", b"r2").await.expect("r2");
    let restored = s3
        .copy_object()
        .bucket(b)
        .key("restore")
        .copy_source(format!("{b}/restore?versionId={r1}"))
        .send()
        .await
        .expect("restore r1");
    assert_eq!(restored.copy_source_version_id(), Some(r1.as_str()));
    let r3 = restored.version_id().expect("a new version").to_owned();
    assert!(r3 != r1 && r3 != r2);
    assert_eq!(get(&s3, b, "restore", None).await, b"r1");
    assert_eq!(get(&s3, b, "restore", Some(&r2)).await, b"r2");
    let e = s3
        .copy_object()
        .bucket(b)
        .key("restore")
        .copy_source(format!("{b}/restore"))
        .send()
        .await
        .expect_err("the current version onto itself");
    assert_eq!(failure(&e).0.as_deref(), Some("InvalidRequest"));
    for id in [&r1, &r2, &r3] {
        s3.delete_object()
            .bucket(b)
            .key("restore")
            .version_id(id)
            .send()
            .await
            .expect("remove");
    }

    // A malformed id is 400; one the key does not have, 404.
    let e = s3
        .get_object()
        .bucket(b)
        .key("k")
        .version_id("not-an-id")
        .send()
        .await
        .expect_err("malformed");
    assert_eq!(failure(&e).0.as_deref(), Some("InvalidArgument"));
    let e = s3
        .get_object()
        .bucket(b)
        .key("k")
        .version_id("00000000000fffff00000000")
        .send()
        .await
        .expect_err("unknown");
    assert_eq!(failure(&e), (Some("NoSuchVersion".into()), 404, None));

    // DELETE without an id adds a marker.
    let deleted = s3
        .delete_object()
        .bucket(b)
        .key("k")
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.delete_marker(), Some(true));
    let marker = deleted.version_id().expect("marker id").to_owned();
    let e = s3
        .get_object()
        .bucket(b)
        .key("k")
        .send()
        .await
        .expect_err("gone");
    assert_eq!(
        failure(&e),
        (Some("NoSuchKey".into()), 404, Some("true".into()))
    );
    let e = s3
        .head_object()
        .bucket(b)
        .key("k")
        .send()
        .await
        .expect_err("gone");
    let (_, status, header) = failure(&e);
    assert_eq!((status, header.as_deref()), (404, Some("true")));
    let e = s3
        .get_object()
        .bucket(b)
        .key("k")
        .version_id(&marker)
        .send()
        .await
        .expect_err("a marker has no body");
    assert_eq!(
        failure(&e),
        (Some("MethodNotAllowed".into()), 405, Some("true".into()))
    );
    let listed = s3.list_objects_v2().bucket(b).send().await.expect("list");
    assert!(listed.contents().is_empty(), "{listed:?}");
    assert_eq!(
        all_versions(&s3, b, 1000).await,
        [
            ("k".to_owned(), v2.clone(), false, false),
            ("k".to_owned(), v1.clone(), false, false),
            ("k".to_owned(), "null".to_owned(), false, false),
            ("k".to_owned(), marker.clone(), true, true),
        ]
    );

    // Copies name a source version; a marker is no source.
    let copied = s3
        .copy_object()
        .bucket(b)
        .key("copy")
        .copy_source(format!("{b}/k?versionId={v1}"))
        .send()
        .await
        .expect("copy v1");
    assert_eq!(copied.copy_source_version_id(), Some(v1.as_str()));
    assert!(copied.version_id().is_some());
    assert_eq!(get(&s3, b, "copy", None).await, b"v1");
    let e = s3
        .copy_object()
        .bucket(b)
        .key("copy2")
        .copy_source(format!("{b}/k?versionId={marker}"))
        .send()
        .await
        .expect_err("marker source");
    assert_eq!(failure(&e).0.as_deref(), Some("InvalidRequest"));
    let e = s3
        .copy_object()
        .bucket(b)
        .key("copy2")
        .copy_source(format!("{b}/k"))
        .send()
        .await
        .expect_err("deleted source");
    assert_eq!(failure(&e).0.as_deref(), Some("NoSuchKey"));

    // Removing the marker brings v2 back.
    let removed = s3
        .delete_object()
        .bucket(b)
        .key("k")
        .version_id(&marker)
        .send()
        .await
        .expect("remove marker");
    assert_eq!(removed.delete_marker(), Some(true));
    assert_eq!(removed.version_id(), Some(marker.as_str()));
    assert_eq!(get(&s3, b, "k", None).await, b"v2");

    // DeleteObjects with version ids, one the key never had among them.
    let id = |key: &str, version: &str| {
        ObjectIdentifier::builder()
            .key(key)
            .version_id(version)
            .build()
            .expect("identifier")
    };
    let many = s3
        .delete_objects()
        .bucket(b)
        .delete(
            Delete::builder()
                .objects(id("k", &v2))
                .objects(id("k", "null"))
                .objects(id("k", "00000000000fffff00000000"))
                .objects(id("k", "bad id"))
                .objects(ObjectIdentifier::builder().key("copy").build().expect("id"))
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("delete objects");
    let deleted: Vec<(&str, Option<&str>, Option<bool>)> = many
        .deleted()
        .iter()
        .map(|d| (d.key().unwrap_or(""), d.version_id(), d.delete_marker()))
        .collect();
    assert_eq!(
        deleted,
        [
            ("k", Some(v2.as_str()), None),
            ("k", Some("null"), None),
            ("k", Some("00000000000fffff00000000"), None),
            ("copy", None, Some(true)),
        ]
    );
    let copy_marker = many.deleted()[3].delete_marker_version_id();
    assert!(copy_marker.is_some());
    assert_eq!(many.errors().len(), 1);
    assert_eq!(many.errors()[0].code(), Some("InvalidArgument"));
    assert_eq!(get(&s3, b, "k", None).await, b"v1");

    // Suspended: writes and deletes replace the null version.
    set_versioning(&s3, b, BucketVersioningStatus::Suspended).await;
    assert_eq!(put(&s3, b, "k", b"n1").await, None);
    assert_eq!(put(&s3, b, "k", b"n2").await, None);
    assert_eq!(get(&s3, b, "k", Some("null")).await, b"n2");
    let versions = all_versions(&s3, b, 1000).await;
    let of_k: Vec<(String, bool)> = versions
        .iter()
        .filter(|v| v.0 == "k")
        .map(|v| (v.1.clone(), v.2))
        .collect();
    assert_eq!(of_k, [("null".to_owned(), true), (v1.clone(), false)]);
    let deleted = s3
        .delete_object()
        .bucket(b)
        .key("k")
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.delete_marker(), Some(true));
    assert_eq!(deleted.version_id(), Some("null"));

    // The document gives versions and delete markers as one sequence in
    // key order, as S3 does: clients that read it in order rely on it.
    for key in ["seq/a", "seq/b", "seq/c"] {
        put(&s3, b, key, b"s").await;
    }
    s3.delete_object()
        .bucket(b)
        .key("seq/b")
        .send()
        .await
        .expect("marker");
    let raw = signed(&server, "GET", &format!("/{b}?versions&prefix=seq/"));
    assert_eq!(raw.status, 200);
    let document = String::from_utf8_lossy(&raw.body).into_owned();
    let sequence: Vec<&str> = document
        .split('<')
        .filter_map(|tag| {
            let name = tag.split(['>', ' ']).next()?;
            matches!(name, "Version" | "DeleteMarker").then_some(name)
        })
        .collect();
    assert_eq!(
        sequence,
        ["Version", "DeleteMarker", "Version"],
        "{document}"
    );
    let keys: Vec<&str> = document
        .split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split("</Key>").next())
        .collect();
    assert_eq!(keys, ["seq/a", "seq/b", "seq/c"], "{document}");
    assert!(
        document.contains("<KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker>"),
        "{document}"
    );
    for key in ["seq/a", "seq/b", "seq/c"] {
        s3.delete_object()
            .bucket(b)
            .key(key)
            .version_id("null")
            .send()
            .await
            .expect("remove");
    }

    // Paging one entry at a time gives what one page gives.
    set_versioning(&s3, b, BucketVersioningStatus::Enabled).await;
    for i in 0..3 {
        put(&s3, b, &format!("p/{i}"), b"x").await;
        put(&s3, b, &format!("p/{i}"), b"y").await;
    }
    // (Compared as sets: the SDK hands versions and markers apart.)
    let sorted = |mut v: Vec<(String, String, bool, bool)>| {
        v.sort();
        v
    };
    let whole = sorted(all_versions(&s3, b, 1000).await);
    assert_eq!(whole.len(), 10);
    assert_eq!(sorted(all_versions(&s3, b, 1).await), whole);
    assert_eq!(sorted(all_versions(&s3, b, 2).await), whole);
    let with_delimiter = s3
        .list_object_versions()
        .bucket(b)
        .delimiter("/")
        .send()
        .await
        .expect("delimiter");
    let prefixes: Vec<&str> = with_delimiter
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["p/"]);
    let e = s3
        .list_object_versions()
        .bucket(b)
        .version_id_marker("null")
        .send()
        .await
        .expect_err("a version marker needs a key marker");
    assert_eq!(failure(&e).0.as_deref(), Some("InvalidArgument"));

    // Turning versioning off is not a state S3 knows.
    let e = s3
        .put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(VersioningConfiguration::builder().build())
        .send()
        .await
        .expect_err("no status");
    assert_eq!(
        failure(&e).0.as_deref(),
        Some("IllegalVersioningConfigurationException")
    );
    // A status (or MFA delete) outside S3's schema is MalformedXML.
    for configuration in [
        VersioningConfiguration::builder()
            .status(BucketVersioningStatus::from("Disabled"))
            .build(),
        VersioningConfiguration::builder()
            .status(BucketVersioningStatus::Enabled)
            .mfa_delete(aws_sdk_s3::types::MfaDelete::from("Maybe"))
            .build(),
    ] {
        let e = s3
            .put_bucket_versioning()
            .bucket(b)
            .versioning_configuration(configuration)
            .send()
            .await
            .expect_err("outside the schema");
        assert_eq!(failure(&e).0.as_deref(), Some("MalformedXML"));
    }
    // A bucket with versions is not empty.
    let e = s3
        .delete_bucket()
        .bucket(b)
        .send()
        .await
        .expect_err("not empty");
    assert_eq!(failure(&e).0.as_deref(), Some("BucketNotEmpty"));
    server.stop().expect("stop");
}

/// The tag set of `key` (of `version` when given) and the version id S3
/// answered with.
async fn tags_of(
    s3: &Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> (Vec<(String, String)>, Option<String>) {
    let out = s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("tags of {key} {version:?}: {e:?}"));
    let tags = out
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    (tags, out.version_id().map(str::to_owned))
}

fn tagging(pairs: &[(&str, &str)]) -> Tagging {
    let tags = pairs
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build().expect("tag"))
        .collect();
    Tagging::builder()
        .set_tag_set(Some(tags))
        .build()
        .expect("tagging")
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_version_keeps_its_own_tags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(dir.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    let b = "tagged";
    s3.create_bucket().bucket(b).send().await.expect("bucket");

    // Unversioned: the null version, named `null` only when asked so.
    put(&s3, b, "plain", b"p").await;
    let out = s3
        .put_object_tagging()
        .bucket(b)
        .key("plain")
        .tagging(tagging(&[("x", "1")]))
        .send()
        .await
        .expect("tag plain");
    assert_eq!(out.version_id(), None);
    assert_eq!(
        tags_of(&s3, b, "plain", Some("null")).await,
        (owned(&[("x", "1")]), Some("null".to_owned()))
    );

    set_versioning(&s3, b, BucketVersioningStatus::Enabled).await;
    let written = s3
        .put_object()
        .bucket(b)
        .key("k")
        .tagging("a=1")
        .body(ByteStream::from_static(b"v1"))
        .send()
        .await
        .expect("v1");
    let v1 = written.version_id.expect("v1 id");
    let v1_etag = written.e_tag.expect("v1 etag");
    let v2 = put(&s3, b, "k", b"v2").await.expect("v2 id");
    assert_eq!(tags_of(&s3, b, "k", None).await, (vec![], Some(v2.clone())));
    assert_eq!(
        tags_of(&s3, b, "k", Some(&v1)).await,
        (owned(&[("a", "1")]), Some(v1.clone()))
    );

    // PutObjectTagging names a version, or tags the current one.
    let out = s3
        .put_object_tagging()
        .bucket(b)
        .key("k")
        .version_id(&v1)
        .tagging(tagging(&[("b", "2"), ("c", "3")]))
        .send()
        .await
        .expect("tag v1");
    assert_eq!(out.version_id(), Some(v1.as_str()));
    let out = s3
        .put_object_tagging()
        .bucket(b)
        .key("k")
        .tagging(tagging(&[("d", "4")]))
        .send()
        .await
        .expect("tag current");
    assert_eq!(out.version_id(), None, "the current version is not named");
    assert_eq!(
        tags_of(&s3, b, "k", Some(&v1)).await.0,
        owned(&[("b", "2"), ("c", "3")])
    );
    assert_eq!(tags_of(&s3, b, "k", None).await.0, owned(&[("d", "4")]));
    let head = s3
        .head_object()
        .bucket(b)
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .expect("head v1");
    assert_eq!(
        (head.tag_count(), head.e_tag()),
        (Some(2), Some(v1_etag.as_str())),
        "tags change, the ETag stays"
    );
    assert_eq!(get(&s3, b, "k", Some(&v1)).await, b"v1", "the bytes stay");

    // DeleteObjectTagging empties one version's set.
    let out = s3
        .delete_object_tagging()
        .bucket(b)
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .expect("untag v1");
    assert_eq!(out.version_id(), Some(v1.as_str()));
    assert_eq!(tags_of(&s3, b, "k", Some(&v1)).await.0, vec![]);
    assert_eq!(tags_of(&s3, b, "k", None).await.0, owned(&[("d", "4")]));

    // A malformed id is 400, one the key does not have 404, and a delete
    // marker has no tags: 405, named or current, with its headers.
    let e = s3
        .get_object_tagging()
        .bucket(b)
        .key("k")
        .version_id("not-an-id")
        .send()
        .await
        .expect_err("malformed");
    assert_eq!(failure(&e).0.as_deref(), Some("InvalidArgument"));
    let e = s3
        .put_object_tagging()
        .bucket(b)
        .key("k")
        .version_id("00000000000fffff00000000")
        .tagging(tagging(&[("e", "5")]))
        .send()
        .await
        .expect_err("unknown");
    assert_eq!(failure(&e), (Some("NoSuchVersion".into()), 404, None));
    let e = s3
        .delete_object_tagging()
        .bucket(b)
        .key("k")
        .version_id("00000000000fffff00000000")
        .send()
        .await
        .expect_err("unknown");
    assert_eq!(failure(&e), (Some("NoSuchVersion".into()), 404, None));
    let e = s3
        .get_object_tagging()
        .bucket(b)
        .key("missing")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(failure(&e), (Some("NoSuchKey".into()), 404, None));
    let marker = s3
        .delete_object()
        .bucket(b)
        .key("k")
        .send()
        .await
        .expect("marker")
        .version_id
        .expect("marker id");
    let not_allowed = (Some("MethodNotAllowed".into()), 405, Some("true".into()));
    for named in [None, Some(marker.clone())] {
        let e = s3
            .get_object_tagging()
            .bucket(b)
            .key("k")
            .set_version_id(named.clone())
            .send()
            .await
            .expect_err("a marker has no tags");
        assert_eq!(failure(&e), not_allowed, "get {named:?}");
        let e = s3
            .put_object_tagging()
            .bucket(b)
            .key("k")
            .set_version_id(named.clone())
            .tagging(tagging(&[("e", "5")]))
            .send()
            .await
            .expect_err("a marker takes no tags");
        assert_eq!(failure(&e), not_allowed, "put {named:?}");
        let e = s3
            .delete_object_tagging()
            .bucket(b)
            .key("k")
            .set_version_id(named.clone())
            .send()
            .await
            .expect_err("a marker has no tags to delete");
        assert_eq!(failure(&e), not_allowed, "delete {named:?}");
    }
    assert_eq!(
        tags_of(&s3, b, "k", Some(&v2)).await.0,
        owned(&[("d", "4")]),
        "a refused request changes nothing"
    );
    server.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_keeps_its_version_while_newer_ones_commit_and_the_key_goes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(
        dir.path(),
        &[
            "--no-fsync",
            "--chunk-size",
            "1048576",
            "--gc-grace-secs",
            "1",
        ],
    )
    .expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    for (b, versioned) in [("reader-versioned", true), ("reader-plain", false)] {
        s3.create_bucket().bucket(b).send().await.expect("bucket");
        if versioned {
            set_versioning(&s3, b, BucketVersioningStatus::Enabled).await;
        }
        let first = bytes(4 * MIB + 7, 1);
        put(&s3, b, "k", &first).await;
        let out = s3
            .get_object()
            .bucket(b)
            .key("k")
            .send()
            .await
            .expect("get");
        let mut body = out.body;
        let mut read = Vec::new();
        // The first bytes are in; then three versions commit and the key
        // is deleted.
        while read.len() < 1024 {
            let piece = body.try_next().await.expect("read").expect("more");
            read.extend_from_slice(&piece);
        }
        for seed in 2..5 {
            put(&s3, b, "k", &bytes(3 * MIB, seed)).await;
        }
        s3.delete_object()
            .bucket(b)
            .key("k")
            .send()
            .await
            .expect("delete");
        while let Some(piece) = body.try_next().await.expect("read") {
            read.extend_from_slice(&piece);
        }
        assert!(
            read == first,
            "{b}: the reader got the version it started with"
        );
    }
    server.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_are_shared_across_versions_and_copies_and_reclaimed_with_the_last() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let server = ArborServer::start(
        data,
        &[
            "--no-fsync",
            "--chunk-size",
            "1048576",
            "--gc-grace-secs",
            "1",
        ],
    )
    .expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    let b = "shared";
    s3.create_bucket().bucket(b).send().await.expect("bucket");
    set_versioning(&s3, b, BucketVersioningStatus::Enabled).await;

    let v1 = put(&s3, b, "obj", &bytes(2 * MIB + 1, 1))
        .await
        .expect("v1");
    settle(data, 3, "one version of three chunks").await;
    let v2 = put(&s3, b, "obj", &bytes(MIB, 2)).await.expect("v2");
    settle(data, 4, "the old version keeps its chunks").await;
    let copy = s3
        .copy_object()
        .bucket(b)
        .key("copy")
        .copy_source(format!("{b}/obj?versionId={v1}"))
        .send()
        .await
        .expect("copy")
        .version_id
        .expect("copy id");
    // A delete marker holds nothing and frees nothing.
    s3.delete_object()
        .bucket(b)
        .key("obj")
        .send()
        .await
        .expect("marker");
    settle(data, 4, "a copy shares chunks, a marker frees none").await;
    s3.delete_object()
        .bucket(b)
        .key("obj")
        .version_id(&v1)
        .send()
        .await
        .expect("delete v1");
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle(data, 4, "the copy still holds v1's chunks").await;
    s3.delete_object()
        .bucket(b)
        .key("copy")
        .version_id(&copy)
        .send()
        .await
        .expect("delete the copy");
    settle(data, 1, "the last holder of v1's chunks went").await;
    s3.delete_object()
        .bucket(b)
        .key("obj")
        .version_id(&v2)
        .send()
        .await
        .expect("delete v2");
    settle(data, 0, "every version gone").await;
    server.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_move_every_version_and_recursive_deletes_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(dir.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    let b = "tree-versions";
    s3.create_bucket().bucket(b).send().await.expect("bucket");
    set_versioning(&s3, b, BucketVersioningStatus::Enabled).await;
    let old = put(&s3, b, "src/a", b"old").await.expect("old");
    put(&s3, b, "src/a", b"new").await;
    s3.delete_object()
        .bucket(b)
        .key("src/gone")
        .send()
        .await
        .expect("marker");

    s3.rename_object()
        .bucket(b)
        .key("dst/")
        .rename_source(format!("{b}/src/"))
        .send()
        .await
        .expect("rename directory");
    assert_eq!(get(&s3, b, "dst/a", None).await, b"new");
    assert_eq!(get(&s3, b, "dst/a", Some(&old)).await, b"old");
    let keys: Vec<(String, bool)> = all_versions(&s3, b, 1000)
        .await
        .into_iter()
        .map(|v| (v.0, v.3))
        .collect();
    assert_eq!(
        keys,
        [
            ("dst/a".to_owned(), false),
            ("dst/a".to_owned(), false),
            ("dst/gone".to_owned(), true),
        ]
    );

    let refused = signed(&server, "DELETE", &format!("/{b}/dst/?arbor-recursive"));
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(refused.error_code().as_deref(), Some("InvalidRequest"));
    let body = String::from_utf8_lossy(&refused.body);
    assert!(body.contains("recursive delete is refused"), "{body}");
    assert_eq!(get(&s3, b, "dst/a", None).await, b"new");

    // A rename onto a key with versions would merge two histories.
    put(&s3, b, "other", b"o").await;
    let e = s3
        .rename_object()
        .bucket(b)
        .key("dst/gone")
        .rename_source(format!("{b}/other"))
        .send()
        .await
        .expect_err("destination has versions");
    assert_eq!(failure(&e).0.as_deref(), Some("InvalidRequest"));
    server.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_lock_holds_versions_until_their_date() {
    use aws_sdk_s3::primitives::DateTime;
    use aws_sdk_s3::types::{
        ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus,
        ObjectLockRetention, ObjectLockRetentionMode,
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(dir.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    let b = "locked";
    s3.create_bucket()
        .bucket(b)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("locked bucket");
    let state = s3
        .get_bucket_versioning()
        .bucket(b)
        .send()
        .await
        .expect("get");
    assert_eq!(state.status(), Some(&BucketVersioningStatus::Enabled));
    let config = s3
        .get_object_lock_configuration()
        .bucket(b)
        .send()
        .await
        .expect("lock configuration");
    let config = config.object_lock_configuration().expect("configuration");
    assert_eq!(
        config.object_lock_enabled(),
        Some(&ObjectLockEnabled::Enabled)
    );
    assert!(config.rule().is_none());
    let e = s3
        .put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .expect_err("versioning stays enabled");
    assert_eq!(failure(&e), (Some("InvalidBucketState".into()), 409, None));

    let in_a_day = DateTime::from_secs(
        i64::try_from(
            SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after the epoch")
                .as_secs(),
        )
        .expect("fits")
            + 86_400,
    );
    let retain = |key: &str, version: &str, mode: ObjectLockRetentionMode, until: DateTime| {
        s3.put_object_retention()
            .bucket(b)
            .key(key)
            .version_id(version)
            .retention(
                ObjectLockRetention::builder()
                    .mode(mode)
                    .retain_until_date(until)
                    .build(),
            )
    };

    // No rename in a bucket with Object Lock: it would move locked
    // versions off the key they must stay readable under.
    let kept = put(&s3, b, "dir/kept", b"kept").await.expect("id");
    for (destination, source) in [("moved", "dir/kept"), ("elsewhere/", "dir/")] {
        let e = s3
            .rename_object()
            .bucket(b)
            .key(destination)
            .rename_source(format!("{b}/{source}"))
            .send()
            .await
            .expect_err("rename in a locked bucket");
        assert_eq!(failure(&e).0.as_deref(), Some("InvalidRequest"), "{source}");
    }
    assert_eq!(get(&s3, b, "dir/kept", Some(&kept)).await, b"kept");
    s3.delete_object()
        .bucket(b)
        .key("dir/kept")
        .version_id(&kept)
        .send()
        .await
        .expect("an unlocked version goes");

    // COMPLIANCE: no delete of the version, bypass or not; only longer.
    let v = put(&s3, b, "c", b"compliance").await.expect("id");
    retain("c", &v, ObjectLockRetentionMode::Compliance, in_a_day)
        .send()
        .await
        .expect("retain");
    let got = s3
        .get_object_retention()
        .bucket(b)
        .key("c")
        .send()
        .await
        .expect("get retention");
    let got = got.retention().expect("retention");
    assert_eq!(got.mode(), Some(&ObjectLockRetentionMode::Compliance));
    assert_eq!(
        got.retain_until_date().map(DateTime::secs),
        Some(in_a_day.secs())
    );
    for bypass in [false, true] {
        let e = s3
            .delete_object()
            .bucket(b)
            .key("c")
            .version_id(&v)
            .bypass_governance_retention(bypass)
            .send()
            .await
            .expect_err("locked");
        assert_eq!(
            failure(&e).0.as_deref(),
            Some("AccessDenied"),
            "bypass {bypass}"
        );
    }
    let sooner = DateTime::from_secs(in_a_day.secs() - 3600);
    let e = retain("c", &v, ObjectLockRetentionMode::Compliance, sooner)
        .bypass_governance_retention(true)
        .send()
        .await
        .expect_err("shorter");
    assert_eq!(failure(&e).0.as_deref(), Some("AccessDenied"));
    let many = s3
        .delete_objects()
        .bucket(b)
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("c")
                        .version_id(&v)
                        .build()
                        .expect("id"),
                )
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("delete objects");
    assert_eq!(many.errors().len(), 1);
    assert_eq!(many.errors()[0].code(), Some("AccessDenied"));
    // A delete without a version id only adds a marker; the version stays.
    s3.delete_object()
        .bucket(b)
        .key("c")
        .send()
        .await
        .expect("marker");
    assert_eq!(get(&s3, b, "c", Some(&v)).await, b"compliance");

    // GOVERNANCE yields to the bypass header.
    let g = put(&s3, b, "g", b"governance").await.expect("id");
    retain("g", &g, ObjectLockRetentionMode::Governance, in_a_day)
        .send()
        .await
        .expect("retain");
    let e = s3
        .delete_object()
        .bucket(b)
        .key("g")
        .version_id(&g)
        .send()
        .await
        .expect_err("governed");
    assert_eq!(failure(&e).0.as_deref(), Some("AccessDenied"));
    // Switching to COMPLIANCE is a change GOVERNANCE allows only bypassing;
    // lengthening as GOVERNANCE is not.
    let e = retain("g", &g, ObjectLockRetentionMode::Compliance, in_a_day)
        .send()
        .await
        .expect_err("to COMPLIANCE without the bypass");
    assert_eq!(failure(&e).0.as_deref(), Some("AccessDenied"));
    let later = DateTime::from_secs(in_a_day.secs() + 3600);
    retain("g", &g, ObjectLockRetentionMode::Governance, later)
        .send()
        .await
        .expect("lengthen");
    s3.delete_object()
        .bucket(b)
        .key("g")
        .version_id(&g)
        .bypass_governance_retention(true)
        .send()
        .await
        .expect("bypassed");

    // A legal hold, until lifted.
    let h = put(&s3, b, "h", b"hold").await.expect("id");
    let hold = |status: ObjectLockLegalHoldStatus| {
        s3.put_object_legal_hold()
            .bucket(b)
            .key("h")
            .legal_hold(ObjectLockLegalHold::builder().status(status).build())
            .send()
    };
    let held = || s3.get_object_legal_hold().bucket(b).key("h").send();
    // Never held: S3 finds no legal hold.
    let e = held().await.expect_err("never held");
    assert_eq!(
        failure(&e).0.as_deref(),
        Some("NoSuchObjectLockConfiguration")
    );
    hold(ObjectLockLegalHoldStatus::On).await.expect("hold");
    let status = held().await.expect("get hold");
    assert_eq!(
        status.legal_hold().and_then(|h| h.status()),
        Some(&ObjectLockLegalHoldStatus::On)
    );
    let e = s3
        .delete_object()
        .bucket(b)
        .key("h")
        .version_id(&h)
        .bypass_governance_retention(true)
        .send()
        .await
        .expect_err("held");
    assert_eq!(failure(&e).0.as_deref(), Some("AccessDenied"));
    hold(ObjectLockLegalHoldStatus::Off).await.expect("lift");
    let status = held().await.expect("lifted");
    assert_eq!(
        status.legal_hold().and_then(|h| h.status()),
        Some(&ObjectLockLegalHoldStatus::Off)
    );
    s3.delete_object()
        .bucket(b)
        .key("h")
        .version_id(&h)
        .send()
        .await
        .expect("no longer held");

    // A default retention names Days or Years, positive, not both.
    for (days, years, code) in [
        (Some(1), Some(1), "MalformedXML"),
        (Some(0), None, "InvalidArgument"),
        (None, Some(-1), "InvalidArgument"),
    ] {
        let e = s3
            .put_object_lock_configuration()
            .bucket(b)
            .object_lock_configuration(governance_default(days, years))
            .send()
            .await
            .expect_err("refused");
        assert_eq!(failure(&e).0.as_deref(), Some(code), "{days:?} {years:?}");
    }
    // A default retention locks every new version.
    s3.put_object_lock_configuration()
        .bucket(b)
        .object_lock_configuration(governance_default(Some(1), None))
        .send()
        .await
        .expect("default retention");
    let d = put(&s3, b, "d", b"default").await.expect("id");
    let got = s3
        .get_object_retention()
        .bucket(b)
        .key("d")
        .version_id(&d)
        .send()
        .await
        .expect("default applied");
    let got = got.retention().expect("retention");
    assert_eq!(got.mode(), Some(&ObjectLockRetentionMode::Governance));
    let until = got.retain_until_date().expect("date").secs();
    assert!(
        (until - in_a_day.secs()).abs() < 120,
        "{until} vs {}",
        in_a_day.secs()
    );
    // One in years reads back in years, and a version's retention ends
    // on its anniversary (366 days over a 29 February).
    let default_of = |config: aws_sdk_s3::operation::get_object_lock_configuration::GetObjectLockConfigurationOutput| {
        let retention = config
            .object_lock_configuration()
            .and_then(|c| c.rule())
            .and_then(|r| r.default_retention())
            .expect("a default retention");
        (retention.days(), retention.years())
    };
    s3.put_object_lock_configuration()
        .bucket(b)
        .object_lock_configuration(governance_default(None, Some(1)))
        .send()
        .await
        .expect("in years");
    let config = s3
        .get_object_lock_configuration()
        .bucket(b)
        .send()
        .await
        .expect("read back");
    assert_eq!(default_of(config), (None, Some(1)));
    let y = put(&s3, b, "y", b"a year").await.expect("id");
    let written = s3
        .head_object()
        .bucket(b)
        .key("y")
        .version_id(&y)
        .send()
        .await
        .expect("head");
    let date = |d: &DateTime| {
        d.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
            .expect("date")
    };
    let written_at = date(written.last_modified().expect("written"));
    let (year, rest) = written_at.split_at(4);
    let next = year.parse::<i32>().expect("year") + 1;
    let anniversary = match rest.strip_prefix("-02-29") {
        Some(time) => format!("{next}-03-01{time}"),
        None => format!("{next}{rest}"),
    };
    let until = written.object_lock_retain_until_date().expect("until");
    assert_eq!(date(until).get(..19), anniversary.get(..19), "{written_at}");
    // And one in days replaces it.
    s3.put_object_lock_configuration()
        .bucket(b)
        .object_lock_configuration(governance_default(Some(1), None))
        .send()
        .await
        .expect("in days");
    let config = s3
        .get_object_lock_configuration()
        .bucket(b)
        .send()
        .await
        .expect("read back");
    assert_eq!(default_of(config), (Some(1), None));

    // Without Object Lock there is nothing to configure or retain.
    s3.create_bucket()
        .bucket("unlocked")
        .send()
        .await
        .expect("bucket");
    let e = s3
        .get_object_lock_configuration()
        .bucket("unlocked")
        .send()
        .await
        .expect_err("none");
    assert_eq!(
        failure(&e),
        (
            Some("ObjectLockConfigurationNotFoundError".into()),
            404,
            None
        )
    );
    put(&s3, "unlocked", "k", b"k").await;
    let e = s3
        .put_object_retention()
        .bucket("unlocked")
        .key("k")
        .retention(
            ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Governance)
                .retain_until_date(in_a_day)
                .build(),
        )
        .send()
        .await
        .expect_err("no lock");
    missing(&e, "PutObjectRetention");
    let e = s3
        .get_object_retention()
        .bucket("unlocked")
        .key("k")
        .send()
        .await
        .expect_err("no lock");
    missing(&e, "GetObjectRetention");
    let e = s3
        .put_object_legal_hold()
        .bucket("unlocked")
        .key("k")
        .legal_hold(
            ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::On)
                .build(),
        )
        .send()
        .await
        .expect_err("no lock");
    missing(&e, "PutObjectLegalHold");
    let e = s3
        .get_object_legal_hold()
        .bucket("unlocked")
        .key("k")
        .send()
        .await
        .expect_err("no lock");
    missing(&e, "GetObjectLegalHold");
    // Object Lock on a bucket whose versioning is not enabled.
    let e = s3
        .put_object_lock_configuration()
        .bucket("unlocked")
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .build(),
        )
        .send()
        .await
        .expect_err("unversioned");
    assert_eq!(
        (failure(&e).0.as_deref(), failure(&e).1),
        (Some("InvalidBucketState"), 409)
    );
    server.stop().expect("stop");
}

/// Asserts `e` is S3's answer to a lock header in a bucket without Object
/// Lock.
fn missing<E>(e: &SdkError<E, HttpResponse>, what: &str)
where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    let (code, status, _) = failure(e);
    assert_eq!(
        (code.as_deref(), status),
        (Some("InvalidRequest"), 400),
        "{what}"
    );
    assert_eq!(
        e.message(),
        Some("Bucket is missing Object Lock Configuration"),
        "{what}"
    );
}

/// An Object Lock configuration whose default retention is GOVERNANCE for
/// `days` or `years` (either, both or neither: S3 refuses all but one).
fn governance_default(
    days: Option<i32>,
    years: Option<i32>,
) -> aws_sdk_s3::types::ObjectLockConfiguration {
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
        ObjectLockRule,
    };
    ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(
            ObjectLockRule::builder()
                .default_retention(
                    DefaultRetention::builder()
                        .mode(ObjectLockRetentionMode::Governance)
                        .set_days(days)
                        .set_years(years)
                        .build(),
                )
                .build(),
        )
        .build()
}

/// The retention mode, retain-until date (seconds) and legal hold HEAD
/// and GET answer with for `key` (`version`, or the current one).
async fn lock_headers(
    s3: &Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> (Option<String>, Option<i64>, Option<String>) {
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("head {key}: {e:?}"));
    let from_head = (
        head.object_lock_mode().map(|m| m.as_str().to_owned()),
        head.object_lock_retain_until_date().map(|d| d.secs()),
        head.object_lock_legal_hold_status()
            .map(|h| h.as_str().to_owned()),
    );
    let got = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    let from_get = (
        got.object_lock_mode().map(|m| m.as_str().to_owned()),
        got.object_lock_retain_until_date().map(|d| d.secs()),
        got.object_lock_legal_hold_status()
            .map(|h| h.as_str().to_owned()),
    );
    assert_eq!(from_head, from_get, "HEAD and GET agree on {key}");
    from_get
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_lock_headers_lock_writes_in_the_same_commit() {
    use aws_sdk_s3::primitives::DateTime;
    use aws_sdk_s3::types::{
        CompletedMultipartUpload, CompletedPart, ObjectLockLegalHold, ObjectLockLegalHoldStatus,
        ObjectLockMode, ObjectLockRetentionMode,
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(dir.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    let b = "headers";
    s3.create_bucket()
        .bucket(b)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("locked bucket");
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after the epoch")
            .as_secs(),
    )
    .expect("fits");
    let in_a_day = DateTime::from_secs(now + 86_400);
    let in_two_days = DateTime::from_secs(now + 2 * 86_400);
    let compliance = Some("COMPLIANCE".to_owned());
    let on = Some("ON".to_owned());

    // COMPLIANCE by header: the version is locked as it commits.
    let c = s3
        .put_object()
        .bucket(b)
        .key("c")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_a_day)
        .body(ByteStream::from_static(b"compliance"))
        .send()
        .await
        .expect("put with retention")
        .version_id
        .expect("id");
    assert_eq!(
        lock_headers(&s3, b, "c", Some(&c)).await,
        (compliance.clone(), Some(in_a_day.secs()), None)
    );
    let got = s3
        .get_object_retention()
        .bucket(b)
        .key("c")
        .version_id(&c)
        .send()
        .await
        .expect("retention");
    assert_eq!(
        got.retention().and_then(|r| r.mode()),
        Some(&ObjectLockRetentionMode::Compliance)
    );
    for bypass in [false, true] {
        let e = s3
            .delete_object()
            .bucket(b)
            .key("c")
            .version_id(&c)
            .bypass_governance_retention(bypass)
            .send()
            .await
            .expect_err("COMPLIANCE holds");
        assert_eq!(failure(&e).0.as_deref(), Some("AccessDenied"));
    }
    assert_eq!(get(&s3, b, "c", Some(&c)).await, b"compliance");

    // A legal hold by header, with no retention.
    let h = s3
        .put_object()
        .bucket(b)
        .key("h")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"held"))
        .send()
        .await
        .expect("put with hold")
        .version_id
        .expect("id");
    assert_eq!(
        lock_headers(&s3, b, "h", None).await,
        (None, None, on.clone())
    );
    let e = s3
        .delete_object()
        .bucket(b)
        .key("h")
        .version_id(&h)
        .bypass_governance_retention(true)
        .send()
        .await
        .expect_err("held");
    assert_eq!(failure(&e).0.as_deref(), Some("AccessDenied"));
    s3.put_object_legal_hold()
        .bucket(b)
        .key("h")
        .version_id(&h)
        .legal_hold(
            ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::Off)
                .build(),
        )
        .send()
        .await
        .expect("lift");
    s3.delete_object()
        .bucket(b)
        .key("h")
        .version_id(&h)
        .send()
        .await
        .expect("no longer held");

    // Headers override the bucket's default retention; a legal hold alone
    // keeps it.
    s3.put_object_lock_configuration()
        .bucket(b)
        .object_lock_configuration(governance_default(Some(1), None))
        .send()
        .await
        .expect("default retention");
    s3.put_object()
        .bucket(b)
        .key("o")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_two_days)
        .body(ByteStream::from_static(b"override"))
        .send()
        .await
        .expect("put overriding");
    assert_eq!(
        lock_headers(&s3, b, "o", None).await,
        (compliance.clone(), Some(in_two_days.secs()), None)
    );
    s3.put_object()
        .bucket(b)
        .key("d")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"default"))
        .send()
        .await
        .expect("put with hold");
    let (mode, until, hold) = lock_headers(&s3, b, "d", None).await;
    assert_eq!((mode.as_deref(), hold), (Some("GOVERNANCE"), on.clone()));
    let until = until.expect("default retention");
    assert!((until - in_a_day.secs()).abs() < 120, "{until}");

    // CopyObject sets the copy's lock, not the source's.
    s3.copy_object()
        .bucket(b)
        .key("copy")
        .copy_source(format!("{b}/c?versionId={c}"))
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_two_days)
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .send()
        .await
        .expect("copy with lock");
    assert_eq!(
        lock_headers(&s3, b, "copy", None).await,
        (
            Some("GOVERNANCE".into()),
            Some(in_two_days.secs()),
            on.clone()
        )
    );

    // CreateMultipartUpload's headers lock the completed object.
    let upload = s3
        .create_multipart_upload()
        .bucket(b)
        .key("m")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_two_days)
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .send()
        .await
        .expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    // A part of a locking upload needs a digest, as S3 asks.
    let bare =
        common::client_without_checksums(&server.endpoint, &server.access_key, &server.secret_key);
    let e = bare
        .upload_part()
        .bucket(b)
        .key("m")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"multipart"))
        .send()
        .await
        .expect_err("a part without a digest");
    assert_eq!(failure(&e).0.as_deref(), Some("InvalidRequest"));
    let part = s3
        .upload_part()
        .bucket(b)
        .key("m")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"multipart"))
        .send()
        .await
        .expect("part");
    let m = s3
        .complete_multipart_upload()
        .bucket(b)
        .key("m")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete")
        .version_id
        .expect("id");
    assert_eq!(
        lock_headers(&s3, b, "m", Some(&m)).await,
        (compliance.clone(), Some(in_two_days.secs()), on.clone())
    );
    let e = s3
        .delete_object()
        .bucket(b)
        .key("m")
        .version_id(&m)
        .send()
        .await
        .expect_err("locked upload");
    assert_eq!(failure(&e).0.as_deref(), Some("AccessDenied"));

    // An append takes no lock headers.
    let e = s3
        .put_object()
        .bucket(b)
        .key("c")
        .write_offset_bytes(10)
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"more"))
        .send()
        .await
        .expect_err("append with a lock");
    assert_eq!(failure(&e).0.as_deref(), Some("NotImplemented"));

    // Refusals: mode and date go together, the date is ahead; nothing
    // is written.
    let past = DateTime::from_secs(now - 60);
    let refusals = [
        (Some(ObjectLockMode::Compliance), None, None),
        (None, Some(in_a_day), None),
        (Some(ObjectLockMode::Governance), Some(past), None),
        (Some(ObjectLockMode::from("FOREVER")), Some(in_a_day), None),
        (None, None, Some(ObjectLockLegalHoldStatus::from("MAYBE"))),
    ];
    for (mode, until, hold) in refusals {
        let what = format!("{mode:?} {until:?} {hold:?}");
        let e = s3
            .put_object()
            .bucket(b)
            .key("refused")
            .set_object_lock_mode(mode.clone())
            .set_object_lock_retain_until_date(until)
            .set_object_lock_legal_hold_status(hold.clone())
            .body(ByteStream::from_static(b"no"))
            .send()
            .await
            .expect_err(&what);
        assert_eq!(
            (failure(&e).0.as_deref(), failure(&e).1),
            (Some("InvalidArgument"), 400),
            "{what}"
        );
        let e = s3
            .create_multipart_upload()
            .bucket(b)
            .key("refused")
            .set_object_lock_mode(mode)
            .set_object_lock_retain_until_date(until)
            .set_object_lock_legal_hold_status(hold)
            .send()
            .await
            .expect_err(&what);
        assert_eq!(failure(&e).0.as_deref(), Some("InvalidArgument"), "{what}");
    }
    let e = s3
        .head_object()
        .bucket(b)
        .key("refused")
        .send()
        .await
        .expect_err("nothing written");
    assert_eq!(failure(&e).1, 404);

    // A bucket without Object Lock refuses every lock header.
    s3.create_bucket()
        .bucket("plain")
        .send()
        .await
        .expect("bucket");
    put(&s3, "plain", "src", b"src").await;
    let e = s3
        .put_object()
        .bucket("plain")
        .key("k")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_a_day)
        .body(ByteStream::from_static(b"k"))
        .send()
        .await
        .expect_err("no lock: retention");
    missing(&e, "put retention");
    let e = s3
        .put_object()
        .bucket("plain")
        .key("k")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"k"))
        .send()
        .await
        .expect_err("no lock: hold");
    missing(&e, "put hold");
    let e = s3
        .copy_object()
        .bucket("plain")
        .key("k")
        .copy_source("plain/src")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .send()
        .await
        .expect_err("no lock: copy");
    missing(&e, "copy");
    let e = s3
        .create_multipart_upload()
        .bucket("plain")
        .key("k")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_a_day)
        .send()
        .await
        .expect_err("no lock: upload");
    missing(&e, "create upload");
    let e = s3
        .head_object()
        .bucket("plain")
        .key("k")
        .send()
        .await
        .expect_err("nothing written");
    assert_eq!(failure(&e).1, 404);
    assert_eq!(
        lock_headers(&s3, "plain", "src", None).await,
        (None, None, None)
    );
    server.stop().expect("stop");
}
