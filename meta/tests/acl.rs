//! ACLs against the state machine (docs/design.md, "Access control
//! lists"): a bucket's ACL and Object Ownership, each version's own ACL,
//! and BucketOwnerEnforced refusing every command that would set a public
//! one, whichever path it takes.

use arbor_meta::MetaError;
use arbor_meta::acl::{GetBucketAcl, SetBucketAcl, SetObjectAcl, SetObjectOwnership};
use arbor_meta::command::{CommandResult, Reply};
use arbor_meta::multipart::CreateMultipartUpload;
use arbor_meta::namespace::{
    CreateBucket, DeleteBucket, DeleteKey, DeleteTarget, GetObjectVersion, PutObject,
    SetBucketVersioning,
};
use arbor_meta::records::{
    BucketAcl, CannedAcl, ChunkOwnership, ObjectData, ObjectHeaders, ObjectOwnership,
    ObjectVersion, UploadId, UploadRecord, VersionId, Versioning, WriteCondition,
};

mod common;
use common::Fixture;

const BUCKET: &str = "bucket";

impl Fixture {
    fn bucket_acl(&self) -> BucketAcl {
        self.read(GetBucketAcl {
            bucket: BUCKET.to_owned(),
        })
        .expect("bucket acl")
    }

    fn version(&self, key: &str, version_id: Option<VersionId>) -> ObjectVersion {
        self.read(GetObjectVersion {
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
            version_id,
        })
        .expect("version")
    }

    fn put(&mut self, key: &str, acl: CannedAcl) -> CommandResult {
        self.apply(PutObject {
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
            version: version(acl),
            condition: WriteCondition::None,
            ownership: ChunkOwnership::Fresh,
            placements: Vec::new(),
            lock: None,
        })
    }

    fn set_object_acl(
        &mut self,
        key: &str,
        version_id: Option<VersionId>,
        acl: CannedAcl,
    ) -> CommandResult {
        self.apply(SetObjectAcl {
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
            version_id,
            acl,
        })
    }

    fn ownership(&mut self, ownership: ObjectOwnership) -> CommandResult {
        self.apply(SetObjectOwnership {
            bucket: BUCKET.to_owned(),
            ownership,
        })
    }
}

fn version(acl: CannedAcl) -> ObjectVersion {
    ObjectVersion {
        generation: 0,
        size: 2,
        etag: "e".to_owned(),
        last_modified_ms: 5,
        headers: ObjectHeaders::default(),
        user_metadata: Vec::new(),
        checksum: None,
        storage_class: None,
        parts: Vec::new(),
        tags: Vec::new(),
        acl,
        data: ObjectData::Inline(b"hi".to_vec()),
        stamp: Default::default(),
    }
}

fn committed(result: CommandResult) -> ObjectVersion {
    match result {
        Ok(Reply::PutObject(version)) => version,
        other => panic!("put: {other:?}"),
    }
}

#[test]
fn a_bucket_acl_is_set_kept_apart_from_ownership_and_goes_with_its_bucket() {
    let mut f = Fixture::with_bucket(BUCKET);
    assert_eq!(f.bucket_acl(), BucketAcl::default());
    f.apply(SetBucketAcl {
        bucket: BUCKET.to_owned(),
        acl: CannedAcl::PublicReadWrite,
    })
    .expect("set");
    f.ownership(ObjectOwnership::ObjectWriter)
        .expect("ownership");
    assert_eq!(
        f.bucket_acl(),
        BucketAcl {
            acl: CannedAcl::PublicReadWrite,
            ownership: ObjectOwnership::ObjectWriter,
        }
    );
    assert_eq!(
        f.apply(SetBucketAcl {
            bucket: "nope".to_owned(),
            acl: CannedAcl::PublicRead,
        }),
        Err(MetaError::NoSuchBucket("nope".to_owned()))
    );
    f.apply(DeleteBucket {
        name: BUCKET.to_owned(),
    })
    .expect("delete bucket");
    f.apply(CreateBucket {
        name: BUCKET.to_owned(),
        created_ms: 2,
    })
    .expect("again");
    assert_eq!(
        f.bucket_acl(),
        BucketAcl::default(),
        "nothing outlives its bucket"
    );
}

#[test]
fn each_version_keeps_its_own_acl() {
    let mut f = Fixture::with_bucket(BUCKET);
    f.apply(SetBucketVersioning {
        bucket: BUCKET.to_owned(),
        versioning: Versioning::Enabled,
    })
    .expect("versioning");
    let old = committed(f.put("k", CannedAcl::PublicRead));
    let new = committed(f.put("k", CannedAcl::Private));
    assert_eq!(f.version("k", None).acl, CannedAcl::Private);
    assert_eq!(
        f.version("k", Some(old.version_id())).acl,
        CannedAcl::PublicRead
    );

    f.set_object_acl("k", Some(old.version_id()), CannedAcl::AuthenticatedRead)
        .expect("old");
    assert_eq!(
        f.version("k", Some(old.version_id())).acl,
        CannedAcl::AuthenticatedRead
    );
    assert_eq!(
        f.version("k", Some(new.version_id())).acl,
        CannedAcl::Private
    );
    let rewritten = f.version("k", Some(old.version_id()));
    assert_eq!(
        (
            rewritten.etag.as_str(),
            rewritten.last_modified_ms,
            rewritten.data
        ),
        ("e", 5, ObjectData::Inline(b"hi".to_vec())),
        "only the ACL changes"
    );

    f.set_object_acl("k", None, CannedAcl::PublicRead)
        .expect("current");
    assert_eq!(f.version("k", None).acl, CannedAcl::PublicRead);
    assert_eq!(
        f.set_object_acl("missing", None, CannedAcl::PublicRead),
        Err(MetaError::NoSuchKey("missing".to_owned()))
    );

    // A delete marker has none: named, 405; current, the key is missing.
    f.apply(DeleteKey {
        bucket: BUCKET.to_owned(),
        target: DeleteTarget {
            key: "k".to_owned(),
            version_id: None,
            condition: None,
            bypass_governance: false,
        },
        now_ms: 9,
    })
    .expect("marker");
    let marker = f.version("k", None);
    assert!(marker.stamp.delete_marker);
    assert_eq!(
        f.set_object_acl("k", Some(marker.version_id()), CannedAcl::PublicRead),
        Err(MetaError::DeleteMarker("k".to_owned()))
    );
    assert_eq!(
        f.set_object_acl("k", None, CannedAcl::PublicRead),
        Err(MetaError::NoSuchKey("k".to_owned()))
    );
}

#[test]
fn bucket_owner_enforced_refuses_every_public_acl() {
    let mut f = Fixture::with_bucket(BUCKET);
    f.apply(SetBucketAcl {
        bucket: BUCKET.to_owned(),
        acl: CannedAcl::PublicRead,
    })
    .expect("public bucket");
    assert_eq!(
        f.ownership(ObjectOwnership::BucketOwnerEnforced),
        Err(MetaError::AclWithOwnership(BUCKET.to_owned()))
    );
    f.apply(SetBucketAcl {
        bucket: BUCKET.to_owned(),
        acl: CannedAcl::Private,
    })
    .expect("private bucket");
    f.put("old", CannedAcl::PublicRead).expect("before");
    f.ownership(ObjectOwnership::BucketOwnerEnforced)
        .expect("enforced");

    let refused = Err(MetaError::AclNotSupported(BUCKET.to_owned()));
    assert_eq!(f.put("new", CannedAcl::PublicRead), refused);
    assert_eq!(
        f.set_object_acl("old", None, CannedAcl::AuthenticatedRead),
        refused
    );
    assert_eq!(
        f.apply(SetBucketAcl {
            bucket: BUCKET.to_owned(),
            acl: CannedAcl::PublicRead,
        }),
        refused
    );
    let upload = |id: i64, acl: CannedAcl| UploadRecord {
        upload_id: UploadId::new(id),
        bucket: BUCKET.to_owned(),
        key: "up".to_owned(),
        initiated_ms: id,
        headers: ObjectHeaders::default(),
        user_metadata: Vec::new(),
        storage_class: None,
        checksum: None,
        tags: Vec::new(),
        lock: None,
        acl,
    };
    assert_eq!(
        f.apply(CreateMultipartUpload {
            upload: upload(1, CannedAcl::PublicRead),
        }),
        refused
    );
    // Private is always fine, and what was stored stays (the gateway
    // disregards it while ACLs are off).
    f.put("new", CannedAcl::Private).expect("private put");
    f.set_object_acl("old", None, CannedAcl::Private)
        .expect("private acl");
    f.apply(CreateMultipartUpload {
        upload: upload(2, CannedAcl::Private),
    })
    .expect("private upload");
    assert_eq!(f.version("new", None).acl, CannedAcl::Private);
}
