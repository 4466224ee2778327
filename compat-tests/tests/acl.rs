//! Access control lists end to end (docs/design.md, "Access control
//! lists"): canned ACLs on buckets and objects, set with `x-amz-acl`, grant
//! headers or a body, shown by GetBucketAcl / GetObjectAcl, honoured for
//! unsigned requests (sent raw, as curl would) and for keys without
//! grants, per version, and kept in check by the public access block and
//! Object Ownership.

mod common;

use std::process::Command;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AccessControlPolicy, BucketCannedAcl, BucketVersioningStatus, Grant, Grantee, ObjectCannedAcl,
    ObjectOwnership, Owner, OwnershipControls, OwnershipControlsRule, Permission,
    PublicAccessBlockConfiguration, Type, VersioningConfiguration,
};

use arbor_compat_tests::{ArborServer, RawResponse, arbor_binary, raw_request};
use common::{client, code_of};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// An unsigned request, as a browser or curl sends it.
async fn anonymous(endpoint: &str, method: &'static str, target: &str) -> RawResponse {
    anonymous_with(endpoint, method, target, &[]).await
}

async fn anonymous_with(
    endpoint: &str,
    method: &'static str,
    target: &str,
    headers: &[(&'static str, &'static str)],
) -> RawResponse {
    let (endpoint, target, headers) = (endpoint.to_owned(), target.to_owned(), headers.to_vec());
    tokio::task::spawn_blocking(move || {
        raw_request(&endpoint, method, &target, &headers, b"").expect("request")
    })
    .await
    .expect("join")
}

/// Asserts a 403 AccessDenied (HEAD answers have no body).
fn assert_refused(response: &RawResponse, what: &str) {
    assert_eq!(response.status, 403, "{what}");
    if !response.body.is_empty() {
        assert_eq!(
            response.error_code().as_deref(),
            Some("AccessDenied"),
            "{what}"
        );
    }
}

/// A key with no grants at all, made by `arbor admin key create`.
fn grantless_key(server: &ArborServer) -> (String, String) {
    let out = Command::new(arbor_binary().expect("binary"))
        .args([
            "admin",
            "--endpoint",
            &server.endpoint,
            "key",
            "create",
            "nobody",
        ])
        .env("ARBOR_ACCESS_KEY", &server.access_key)
        .env("ARBOR_SECRET_KEY", &server.secret_key)
        .output()
        .expect("run arbor admin");
    assert!(out.status.success(), "{out:?}");
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    (
        key["access_key"].as_str().expect("id").to_owned(),
        key["secret_key"].as_str().expect("secret").to_owned(),
    )
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, acl: Option<ObjectCannedAcl>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .set_acl(acl)
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

/// The groups an object's ACL grants to, with the permission.
async fn object_groups(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<(String, String)> {
    let acl = s3
        .get_object_acl()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get object acl");
    assert_eq!(
        acl.grants()[0].permission(),
        Some(&Permission::FullControl),
        "the owner's grant comes first"
    );
    groups(acl.grants())
}

fn groups(grants: &[Grant]) -> Vec<(String, String)> {
    grants
        .iter()
        .filter_map(|g| {
            let grantee = g.grantee()?;
            (grantee.r#type() == &Type::Group).then(|| {
                (
                    grantee.uri().unwrap_or_default().to_owned(),
                    g.permission()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                )
            })
        })
        .collect()
}

fn read_by(uri: &str) -> Vec<(String, String)> {
    vec![(uri.to_owned(), "READ".to_owned())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_acls_let_everyone_read_what_they_name_and_nothing_else() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    let ep = server.endpoint.as_str();
    s3.create_bucket()
        .bucket("web")
        .send()
        .await
        .expect("bucket");
    put(&s3, "web", "public.txt", Some(ObjectCannedAcl::PublicRead)).await;
    put(&s3, "web", "private.txt", None).await;
    put(
        &s3,
        "web",
        "members.txt",
        Some(ObjectCannedAcl::AuthenticatedRead),
    )
    .await;

    // public-read: anyone reads it, GET and HEAD, ranges included.
    let page = anonymous(ep, "GET", "/web/public.txt").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body, b"hello");
    assert_eq!(anonymous(ep, "HEAD", "/web/public.txt").await.status, 200);
    let part = anonymous_with(ep, "GET", "/web/public.txt", &[("range", "bytes=1-2")]).await;
    assert_eq!((part.status, part.body.as_slice()), (206, b"el".as_slice()));
    let head_part = anonymous_with(ep, "HEAD", "/web/public.txt", &[("range", "bytes=1-2")]).await;
    assert_eq!(
        (head_part.status, head_part.header("content-range")),
        (206, Some("bytes 1-2/5"))
    );
    // `response-*` overrides are for signed requests only.
    for (method, target) in [
        ("GET", "/web/public.txt?response-content-type=text/x-evil"),
        ("HEAD", "/web/public.txt?response-content-type=text/x-evil"),
        // The parameter's name percent-encoded is the same parameter.
        ("GET", "/web/public.txt?response-content-typ%65=text/x-evil"),
    ] {
        let overridden = anonymous(ep, method, target).await;
        assert_eq!(overridden.status, 400, "{method}");
        assert_ne!(overridden.header("content-type"), Some("text/x-evil"));
        if method == "GET" {
            assert_eq!(overridden.error_code().as_deref(), Some("InvalidRequest"));
        }
    }
    assert_eq!(
        object_groups(&s3, "web", "public.txt").await,
        read_by(ALL_USERS)
    );

    // Nothing else is anyone's: another object, a missing one (403, not
    // 404: the bucket's content is not told), the listing, a write, the
    // object's ACL, its tags.
    assert_refused(&anonymous(ep, "GET", "/web/private.txt").await, "private");
    assert_refused(
        &anonymous(ep, "HEAD", "/web/private.txt").await,
        "private HEAD",
    );
    assert_refused(&anonymous(ep, "GET", "/web/missing.txt").await, "missing");
    assert_refused(&anonymous(ep, "GET", "/web?list-type=2").await, "listing");
    assert_refused(&anonymous(ep, "PUT", "/web/public.txt").await, "overwrite");
    assert_refused(&anonymous(ep, "DELETE", "/web/public.txt").await, "delete");
    assert_refused(
        &anonymous(ep, "GET", "/web/public.txt?acl").await,
        "read acl",
    );
    assert_refused(
        &anonymous(ep, "GET", "/web/public.txt?tagging").await,
        "tags",
    );
    // A condition is no way around the ACL: 403, not 304 or 412.
    let etag = page.header("etag").expect("etag").to_owned();
    let etag: &'static str = Box::leak(etag.into_boxed_str());
    assert_refused(
        &anonymous_with(ep, "GET", "/web/private.txt", &[("if-none-match", etag)]).await,
        "conditional read of a private object",
    );
    assert_eq!(
        anonymous_with(ep, "GET", "/web/public.txt", &[("if-none-match", etag)])
            .await
            .status,
        304
    );

    // authenticated-read: any key of the deployment, not the anonymous.
    assert_refused(&anonymous(ep, "GET", "/web/members.txt").await, "members");
    assert_eq!(
        object_groups(&s3, "web", "members.txt").await,
        read_by(AUTHENTICATED_USERS)
    );
    let (id, secret) = grantless_key(&server);
    let nobody = client(&server.endpoint, &id, &secret);
    let got = nobody
        .get_object()
        .bucket("web")
        .key("members.txt")
        .send()
        .await
        .expect("a key reads authenticated-read");
    assert_eq!(got.body.collect().await.expect("body").to_vec(), b"hello");
    let e = nobody
        .get_object()
        .bucket("web")
        .key("private.txt")
        .send()
        .await
        .expect_err("a key without grants");
    assert_eq!(e.code(), Some("AccessDenied"));

    // PutObjectAcl changes it, every way S3 has: canned, grant header,
    // body; and back to private.
    s3.put_object_acl()
        .bucket("web")
        .key("public.txt")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .expect("private again");
    assert_refused(
        &anonymous(ep, "GET", "/web/public.txt").await,
        "made private",
    );
    assert!(object_groups(&s3, "web", "public.txt").await.is_empty());
    s3.put_object_acl()
        .bucket("web")
        .key("private.txt")
        .grant_read(format!("uri=\"{ALL_USERS}\""))
        .send()
        .await
        .expect("grant header");
    assert_eq!(anonymous(ep, "GET", "/web/private.txt").await.status, 200);
    let owner = Owner::builder().id("arbor").display_name("arbor").build();
    let policy = |uri: &str| {
        AccessControlPolicy::builder()
            .owner(owner.clone())
            .grants(
                Grant::builder()
                    .grantee(
                        Grantee::builder()
                            .r#type(Type::CanonicalUser)
                            .id("arbor")
                            .build()
                            .expect("owner"),
                    )
                    .permission(Permission::FullControl)
                    .build(),
            )
            .grants(
                Grant::builder()
                    .grantee(
                        Grantee::builder()
                            .r#type(Type::Group)
                            .uri(uri)
                            .build()
                            .expect("group"),
                    )
                    .permission(Permission::Read)
                    .build(),
            )
            .build()
    };
    s3.put_object_acl()
        .bucket("web")
        .key("public.txt")
        .access_control_policy(policy(ALL_USERS))
        .send()
        .await
        .expect("acl body");
    assert_eq!(anonymous(ep, "GET", "/web/public.txt").await.status, 200);
    // An ACL naming another owner would give the object away: 403.
    let mut giveaway = policy(ALL_USERS);
    giveaway.owner = Some(Owner::builder().id("someone-else").build());
    let e = s3
        .put_object_acl()
        .bucket("web")
        .key("public.txt")
        .access_control_policy(giveaway)
        .send()
        .await
        .expect_err("another owner");
    assert_eq!(e.code(), Some("AccessDenied"));

    // What no canned ACL grants is refused whole, never stored in part.
    let e = s3
        .put_object_acl()
        .bucket("web")
        .key("public.txt")
        .grant_read("emailAddress=\"someone@example.com\"")
        .send()
        .await
        .expect_err("grant by e-mail");
    assert_eq!(e.code(), Some("NotImplemented"));
    let e = s3
        .put_object_acl()
        .bucket("web")
        .key("public.txt")
        .grant_write_acp(format!("uri=\"{ALL_USERS}\""))
        .send()
        .await
        .expect_err("WRITE_ACP to everyone");
    assert_eq!(e.code(), Some("NotImplemented"));
    let e = s3
        .put_object_acl()
        .bucket("web")
        .key("public.txt")
        .acl(ObjectCannedAcl::Private)
        .grant_read(format!("uri=\"{ALL_USERS}\""))
        .send()
        .await
        .expect_err("canned and grants");
    assert_eq!(e.code(), Some("InvalidRequest"));
    let e = s3
        .put_object_acl()
        .bucket("web")
        .key("nothing-here")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .expect_err("no such key");
    assert_eq!(e.code(), Some("NoSuchKey"));
    assert_eq!(
        object_groups(&s3, "web", "public.txt").await,
        read_by(ALL_USERS)
    );

    // A copy takes the request's ACL, not its source's; a multipart
    // upload the one it was created with.
    s3.copy_object()
        .bucket("web")
        .key("copy.txt")
        .copy_source("web/public.txt")
        .send()
        .await
        .expect("copy");
    assert_refused(&anonymous(ep, "GET", "/web/copy.txt").await, "copy");
    let upload = s3
        .create_multipart_upload()
        .bucket("web")
        .key("big.bin")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .expect("create upload");
    let upload_id = upload.upload_id().expect("id");
    let part = s3
        .upload_part()
        .bucket("web")
        .key("big.bin")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"parts"))
        .send()
        .await
        .expect("part");
    s3.complete_multipart_upload()
        .bucket("web")
        .key("big.bin")
        .upload_id(upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().expect("etag"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    assert_eq!(anonymous(ep, "GET", "/web/big.bin").await.body, b"parts");
    server.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_version_has_its_own_acl() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    let ep = server.endpoint.as_str();
    s3.create_bucket()
        .bucket("ver")
        .send()
        .await
        .expect("bucket");
    s3.put_bucket_versioning()
        .bucket("ver")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    let old = s3
        .put_object()
        .bucket("ver")
        .key("k")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"old"))
        .send()
        .await
        .expect("old");
    let old_id = old.version_id().expect("version id").to_owned();
    put(&s3, "ver", "k", None).await;
    assert_refused(&anonymous(ep, "GET", "/ver/k").await, "current is private");
    let by_id = anonymous(ep, "GET", &format!("/ver/k?versionId={old_id}")).await;
    assert_eq!(
        (by_id.status, by_id.body.as_slice()),
        (200, b"old".as_slice())
    );
    let acl = s3
        .get_object_acl()
        .bucket("ver")
        .key("k")
        .version_id(&old_id)
        .send()
        .await
        .expect("old version's acl");
    assert_eq!(groups(acl.grants()), read_by(ALL_USERS));
    // PutObjectAcl on a version changes that version only.
    s3.put_object_acl()
        .bucket("ver")
        .key("k")
        .version_id(&old_id)
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .expect("old made private");
    assert_refused(
        &anonymous(ep, "GET", &format!("/ver/k?versionId={old_id}")).await,
        "old made private",
    );
    // A delete marker has no ACL.
    let marker = s3
        .delete_object()
        .bucket("ver")
        .key("k")
        .send()
        .await
        .expect("delete");
    let e = s3
        .put_object_acl()
        .bucket("ver")
        .key("k")
        .version_id(marker.version_id().expect("marker id"))
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .expect_err("marker");
    assert_eq!(e.code(), Some("MethodNotAllowed"));
    let e = s3
        .put_object_acl()
        .bucket("ver")
        .key("k")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .expect_err("current is a marker");
    assert_eq!(e.code(), Some("NoSuchKey"));
    server.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_acls_open_listing_and_writing() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    let ep = server.endpoint.as_str();
    s3.create_bucket()
        .bucket("open")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .expect("public-read bucket");
    put(&s3, "open", "a.txt", None).await;
    let acl = s3
        .get_bucket_acl()
        .bucket("open")
        .send()
        .await
        .expect("acl");
    assert_eq!(groups(acl.grants()), read_by(ALL_USERS));

    // Bucket READ lists; it does not read objects (theirs is their ACL),
    // and a missing key is now 404: the lister may know it is not there.
    let listed = anonymous(ep, "GET", "/open?list-type=2").await;
    assert_eq!(listed.status, 200);
    assert!(String::from_utf8_lossy(&listed.body).contains("<Key>a.txt</Key>"));
    assert_eq!(anonymous(ep, "HEAD", "/open").await.status, 200);
    assert_refused(&anonymous(ep, "GET", "/open/a.txt").await, "object");
    assert_eq!(anonymous(ep, "GET", "/open/missing").await.status, 404);
    assert_refused(&anonymous(ep, "PUT", "/open/new.txt").await, "write");

    // public-read-write: anyone creates and deletes objects, which are
    // private to anyone else unless they say otherwise.
    s3.put_bucket_acl()
        .bucket("open")
        .acl(BucketCannedAcl::PublicReadWrite)
        .send()
        .await
        .expect("public-read-write");
    let acl = s3
        .get_bucket_acl()
        .bucket("open")
        .send()
        .await
        .expect("acl");
    assert_eq!(
        groups(acl.grants()),
        vec![
            (ALL_USERS.to_owned(), "READ".to_owned()),
            (ALL_USERS.to_owned(), "WRITE".to_owned())
        ]
    );
    assert_eq!(anonymous(ep, "PUT", "/open/new.txt").await.status, 200);
    assert_refused(
        &anonymous(ep, "GET", "/open/new.txt").await,
        "written private",
    );
    assert_eq!(anonymous(ep, "DELETE", "/open/new.txt").await.status, 204);
    // Never the bucket's settings.
    assert_refused(&anonymous(ep, "DELETE", "/open").await, "delete bucket");
    assert_refused(&anonymous(ep, "GET", "/open?acl").await, "bucket acl");
    assert_refused(&anonymous(ep, "PUT", "/open?acl").await, "set bucket acl");

    s3.put_bucket_acl()
        .bucket("open")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .expect("private");
    assert_refused(
        &anonymous(ep, "GET", "/open?list-type=2").await,
        "private again",
    );
    let e = s3
        .put_bucket_acl()
        .bucket("open")
        .acl(BucketCannedAcl::from("log-delivery-write"))
        .send()
        .await
        .expect_err("log-delivery-write");
    assert_eq!(e.code(), Some("NotImplemented"));
    server.stop().expect("stop");
}

fn block(acls: bool, ignore: bool) -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration::builder()
        .block_public_acls(acls)
        .ignore_public_acls(ignore)
        .build()
}

fn ownership(o: ObjectOwnership) -> OwnershipControls {
    OwnershipControls::builder()
        .rules(
            OwnershipControlsRule::builder()
                .object_ownership(o)
                .build()
                .expect("rule"),
        )
        .build()
        .expect("controls")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_access_block_and_object_ownership_keep_acls_in_check() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = ArborServer::start(data.path(), &["--no-fsync"]).expect("start");
    let s3 = client(&server.endpoint, &server.access_key, &server.secret_key);
    let ep = server.endpoint.as_str();
    s3.create_bucket()
        .bucket("guard")
        .send()
        .await
        .expect("bucket");
    put(&s3, "guard", "pub", Some(ObjectCannedAcl::PublicRead)).await;
    assert_eq!(anonymous(ep, "GET", "/guard/pub").await.status, 200);

    // IgnorePublicAcls: public ACLs stay, and grant nothing.
    s3.put_public_access_block()
        .bucket("guard")
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .expect("ignore");
    assert_refused(&anonymous(ep, "GET", "/guard/pub").await, "ignored");
    assert_eq!(object_groups(&s3, "guard", "pub").await, read_by(ALL_USERS));

    // BlockPublicAcls: no new public ACL, however asked; private is fine.
    s3.put_public_access_block()
        .bucket("guard")
        .public_access_block_configuration(block(true, false))
        .send()
        .await
        .expect("block");
    assert_eq!(anonymous(ep, "GET", "/guard/pub").await.status, 200);
    for (what, result) in [
        (
            "put",
            code_of(
                s3.put_object()
                    .bucket("guard")
                    .key("new")
                    .acl(ObjectCannedAcl::PublicRead)
                    .body(ByteStream::from_static(b"x"))
                    .send()
                    .await,
            ),
        ),
        (
            "object acl",
            code_of(
                s3.put_object_acl()
                    .bucket("guard")
                    .key("pub")
                    .acl(ObjectCannedAcl::AuthenticatedRead)
                    .send()
                    .await,
            ),
        ),
        (
            "bucket acl",
            code_of(
                s3.put_bucket_acl()
                    .bucket("guard")
                    .acl(BucketCannedAcl::PublicRead)
                    .send()
                    .await,
            ),
        ),
        (
            "multipart",
            code_of(
                s3.create_multipart_upload()
                    .bucket("guard")
                    .key("new")
                    .acl(ObjectCannedAcl::PublicReadWrite)
                    .send()
                    .await,
            ),
        ),
    ] {
        assert_eq!(result, Err(Some("AccessDenied".to_owned())), "{what}");
    }
    let e = s3.head_object().bucket("guard").key("new").send().await;
    assert!(e.is_err(), "the refused put stored nothing");
    put(&s3, "guard", "private", Some(ObjectCannedAcl::Private)).await;
    s3.delete_public_access_block()
        .bucket("guard")
        .send()
        .await
        .expect("unblock");

    // BucketOwnerEnforced: refused while the bucket's ACL is public;
    // then ACLs are off: none may be set, the stored ones grant nothing.
    s3.put_bucket_acl()
        .bucket("guard")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .expect("public bucket");
    let e = s3
        .put_bucket_ownership_controls()
        .bucket("guard")
        .ownership_controls(ownership(ObjectOwnership::BucketOwnerEnforced))
        .send()
        .await
        .expect_err("public bucket acl");
    assert_eq!(e.code(), Some("InvalidBucketAclWithObjectOwnership"));
    s3.put_bucket_acl()
        .bucket("guard")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .expect("private bucket");
    s3.put_bucket_ownership_controls()
        .bucket("guard")
        .ownership_controls(ownership(ObjectOwnership::BucketOwnerEnforced))
        .send()
        .await
        .expect("enforced");
    assert_refused(&anonymous(ep, "GET", "/guard/pub").await, "ACLs disabled");
    let e = s3
        .put_object()
        .bucket("guard")
        .key("other")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("ACLs disabled");
    assert_eq!(e.code(), Some("AccessControlListNotSupported"));
    put(
        &s3,
        "guard",
        "other",
        Some(ObjectCannedAcl::BucketOwnerFullControl),
    )
    .await;
    s3.delete_bucket_ownership_controls()
        .bucket("guard")
        .send()
        .await
        .expect("ACLs enabled again");
    assert_eq!(anonymous(ep, "GET", "/guard/pub").await.status, 200);
    // Deleted, the controls are gone, as S3 answers (Terraform waits for
    // the 404), and ACLs are taken.
    let e = s3
        .get_bucket_ownership_controls()
        .bucket("guard")
        .send()
        .await
        .expect_err("none left");
    assert_eq!(e.code(), Some("OwnershipControlsNotFoundError"));
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));
    put(&s3, "guard", "again", Some(ObjectCannedAcl::PublicRead)).await;

    // CreateBucket asks both at once: refused before anything is made.
    let e = s3
        .create_bucket()
        .bucket("both")
        .acl(BucketCannedAcl::PublicRead)
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .send()
        .await
        .expect_err("public and enforced");
    assert_eq!(e.code(), Some("InvalidBucketAclWithObjectOwnership"));
    assert!(s3.head_bucket().bucket("both").send().await.is_err());
    // The bucket-owner ACLs mean nothing to a new bucket: S3 ignores them
    // there (and refuses them on PutBucketAcl).
    s3.create_bucket()
        .bucket("owner-acl")
        .acl(BucketCannedAcl::from("bucket-owner-full-control"))
        .send()
        .await
        .expect("ignored");
    assert_refused(&anonymous(ep, "GET", "/owner-acl").await, "private");
    let e = s3
        .put_bucket_acl()
        .bucket("owner-acl")
        .acl(BucketCannedAcl::from("bucket-owner-read"))
        .send()
        .await
        .expect_err("not a bucket's ACL");
    assert_eq!(e.code(), Some("InvalidArgument"));
    s3.create_bucket()
        .bucket("enforced")
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .send()
        .await
        .expect("enforced bucket");
    let got = s3
        .get_bucket_ownership_controls()
        .bucket("enforced")
        .send()
        .await
        .expect("controls");
    assert_eq!(
        got.ownership_controls().expect("controls").rules()[0].object_ownership(),
        &ObjectOwnership::BucketOwnerEnforced
    );
    server.stop().expect("stop");
}
