//! Access keys against the state machine: each change is one command,
//! refused commands change nothing, and a deleted bucket takes its grants
//! with it.

use std::collections::BTreeMap;

use arbor_meta::MetaError;
use arbor_meta::access::{
    AllowAccessKey, CreateAccessKey, DeleteAccessKey, DeleteBucketPolicy, DeletePublicAccessBlock,
    DenyAccessKey, GetAccessKey, GetBucketCors, GetBucketPolicy, GetBucketRules,
    GetPublicAccessBlock, Grant, ListAccessKeys, PutBucketPolicy, PutPublicAccessBlock,
    SetBucketCors, StoredBucketRules,
};
use arbor_meta::acl::{SetBucketAcl, SetObjectOwnership};
use arbor_meta::command::Reply;
use arbor_meta::namespace::{CreateBucket, CreateBucketAs, DeleteBucket};
use arbor_meta::op::Query;
use arbor_meta::records::{
    AccessKeyRecord, BucketAcl, CannedAcl, CorsRule, ObjectOwnership, Permissions,
    PublicAccessBlock,
};
use redb::ReadableDatabase;

mod common;
use common::Fixture;

const KEY: &str = "AKIAEXAMPLEKEY000001";

impl Fixture {
    fn key(&self, access_key: &str) -> Option<AccessKeyRecord> {
        let txn = self.db.begin_read().expect("read");
        GetAccessKey {
            access_key: access_key.to_owned(),
        }
        .read(&txn)
        .expect("get")
    }

    fn keys(&self) -> Vec<AccessKeyRecord> {
        let txn = self.db.begin_read().expect("read");
        ListAccessKeys.read(&txn).expect("list")
    }
}

fn record(access_key: &str) -> AccessKeyRecord {
    AccessKeyRecord {
        access_key: access_key.to_owned(),
        name: "backup".to_owned(),
        sealed_secret: vec![1, 2, 3],
        created_ms: 7,
        create_bucket: false,
        buckets: BTreeMap::new(),
    }
}

fn on(bucket: &str, permissions: Permissions) -> Grant {
    Grant {
        create_bucket: false,
        bucket: Some((bucket.to_owned(), permissions)),
    }
}

const READ: Permissions = Permissions {
    read: true,
    write: false,
    owner: false,
};
const WRITE: Permissions = Permissions {
    read: false,
    write: true,
    owner: false,
};

#[test]
fn a_key_is_created_once_and_deleted_once() {
    let mut f = Fixture::empty();
    assert_eq!(f.key(KEY), None);
    let created = f.apply(CreateAccessKey {
        record: record(KEY),
    });
    assert_eq!(created, Ok(Reply::CreateAccessKey(record(KEY))));
    assert_eq!(f.key(KEY), Some(record(KEY)));
    let mut other = record(KEY);
    other.name = "other".to_owned();
    assert_eq!(
        f.apply(CreateAccessKey { record: other }),
        Err(MetaError::AccessKeyExists(KEY.to_owned()))
    );
    assert_eq!(
        f.key(KEY),
        Some(record(KEY)),
        "a refused create changes nothing"
    );
    assert_eq!(f.keys(), vec![record(KEY)]);
    let delete = DeleteAccessKey {
        access_key: KEY.to_owned(),
    };
    assert_eq!(f.apply(delete.clone()), Ok(Reply::DeleteAccessKey(())));
    assert_eq!(f.key(KEY), None);
    assert_eq!(
        f.apply(delete),
        Err(MetaError::NoSuchAccessKey(KEY.to_owned()))
    );
}

#[test]
fn malformed_keys_are_refused() {
    let mut f = Fixture::empty();
    let mut bad = Vec::new();
    for id in ["short", "AKIA-WITH-DASHES-000", &"A".repeat(129)] {
        bad.push(record(id));
    }
    let mut unnamed = record(KEY);
    unnamed.name = String::new();
    bad.push(unnamed);
    let mut control = record(KEY);
    control.name = "a\nb".to_owned();
    bad.push(control);
    let mut no_secret = record(KEY);
    no_secret.sealed_secret.clear();
    bad.push(no_secret);
    let mut missing_bucket = record(KEY);
    missing_bucket.buckets.insert("nosuch".to_owned(), READ);
    for record in bad {
        let outcome = f.apply(CreateAccessKey {
            record: record.clone(),
        });
        assert!(
            matches!(outcome, Err(MetaError::InvalidRequest(_))),
            "{record:?}: {outcome:?}"
        );
    }
    assert_eq!(
        f.apply(CreateAccessKey {
            record: missing_bucket
        }),
        Err(MetaError::NoSuchBucket("nosuch".to_owned()))
    );
    assert!(f.keys().is_empty());
}

#[test]
fn allow_and_deny_add_and_take_permissions() {
    let mut f = Fixture::empty();
    f.bucket("photos");
    f.apply(CreateAccessKey {
        record: record(KEY),
    })
    .expect("create");
    let allow = |grant| AllowAccessKey {
        access_key: KEY.to_owned(),
        grant,
    };
    let deny = |grant| DenyAccessKey {
        access_key: KEY.to_owned(),
        grant,
    };
    f.apply(allow(on("photos", READ))).expect("allow read");
    f.apply(allow(on("photos", WRITE))).expect("allow write");
    let key = f.key(KEY).expect("key");
    assert_eq!(key.permissions("photos"), READ.union(WRITE));
    assert_eq!(key.permissions("other"), Permissions::NONE);
    assert_eq!(
        f.apply(allow(on("nosuch", READ))),
        Err(MetaError::NoSuchBucket("nosuch".to_owned()))
    );
    f.apply(deny(on("photos", READ))).expect("deny read");
    assert_eq!(f.key(KEY).expect("key").permissions("photos"), WRITE);
    f.apply(deny(on("photos", Permissions::ALL)))
        .expect("deny all");
    assert!(f.key(KEY).expect("key").buckets.is_empty());
    let create = Grant {
        create_bucket: true,
        bucket: None,
    };
    f.apply(allow(create.clone())).expect("allow create");
    assert!(f.key(KEY).expect("key").create_bucket);
    f.apply(deny(create)).expect("deny create");
    assert!(!f.key(KEY).expect("key").create_bucket);
    for outcome in [
        f.apply(AllowAccessKey {
            access_key: "NOSUCHKEY0000000".to_owned(),
            grant: on("photos", READ),
        }),
        f.apply(DenyAccessKey {
            access_key: "NOSUCHKEY0000000".to_owned(),
            grant: on("photos", READ),
        }),
    ] {
        assert_eq!(
            outcome,
            Err(MetaError::NoSuchAccessKey("NOSUCHKEY0000000".to_owned()))
        );
    }
}

#[test]
fn a_key_owns_the_buckets_it_creates_only_if_it_may_create_them() {
    let mut f = Fixture::empty();
    f.apply(CreateAccessKey {
        record: record(KEY),
    })
    .expect("create");
    let create_as = |name: &str| CreateBucketAs {
        bucket: CreateBucket {
            name: name.to_owned(),
            created_ms: 5,
        },
        access_key: KEY.to_owned(),
        object_lock: false,
    };
    assert!(matches!(
        f.apply(create_as("mine")),
        Err(MetaError::AccessDenied(_))
    ));
    let txn = f.db.begin_read().expect("read");
    assert!(arbor_meta::namespace::get_bucket(&txn, "mine").is_err());
    drop(txn);
    f.apply(AllowAccessKey {
        access_key: KEY.to_owned(),
        grant: Grant {
            create_bucket: true,
            bucket: None,
        },
    })
    .expect("allow create");
    f.apply(create_as("mine")).expect("create as");
    assert_eq!(
        f.key(KEY).expect("key").permissions("mine"),
        Permissions::ALL
    );
    f.bucket("theirs");
    assert_eq!(
        f.apply(create_as("theirs")),
        Err(MetaError::BucketAlreadyExists("theirs".to_owned()))
    );
    assert_eq!(
        f.key(KEY).expect("key").permissions("theirs"),
        Permissions::NONE,
        "a refused create grants nothing"
    );
    let gone = CreateBucketAs {
        access_key: "NOSUCHKEY0000000".to_owned(),
        ..create_as("other")
    };
    assert_eq!(
        f.apply(gone),
        Err(MetaError::NoSuchAccessKey("NOSUCHKEY0000000".to_owned()))
    );
}

#[test]
fn a_deleted_bucket_takes_its_grants_with_it() {
    let mut f = Fixture::empty();
    f.bucket("photos");
    f.bucket("logs");
    let mut granted = record(KEY);
    granted.buckets.insert("photos".to_owned(), READ);
    granted.buckets.insert("logs".to_owned(), WRITE);
    f.apply(CreateAccessKey { record: granted })
        .expect("create");
    f.apply(DeleteBucket {
        name: "photos".to_owned(),
    })
    .expect("delete bucket");
    f.bucket("photos");
    let key = f.key(KEY).expect("key");
    assert_eq!(key.permissions("photos"), Permissions::NONE);
    assert_eq!(key.permissions("logs"), WRITE);
}

#[test]
fn a_bucket_policy_is_set_removed_and_goes_with_its_bucket() {
    let mut f = Fixture::empty();
    let policy = |f: &Fixture| {
        let txn = f.db.begin_read().expect("read");
        GetBucketPolicy {
            bucket: "photos".to_owned(),
        }
        .read(&txn)
    };
    let put = PutBucketPolicy {
        bucket: "photos".to_owned(),
        policy: "{}".to_owned(),
    };
    assert_eq!(
        f.apply(put.clone()),
        Err(MetaError::NoSuchBucket("photos".to_owned()))
    );
    assert_eq!(
        policy(&f),
        Err(MetaError::NoSuchBucket("photos".to_owned()))
    );
    f.bucket("photos");
    assert_eq!(policy(&f), Ok(None));
    f.apply(put.clone()).expect("put");
    assert_eq!(policy(&f), Ok(Some("{}".to_owned())));
    for bad in [
        String::new(),
        "x".repeat(arbor_meta::limits::BUCKET_POLICY_SIZE_MAX + 1),
    ] {
        let outcome = f.apply(PutBucketPolicy {
            bucket: "photos".to_owned(),
            policy: bad,
        });
        assert!(
            matches!(outcome, Err(MetaError::InvalidRequest(_))),
            "{outcome:?}"
        );
    }
    f.apply(DeleteBucketPolicy {
        bucket: "photos".to_owned(),
    })
    .expect("delete");
    assert_eq!(policy(&f), Ok(None));
    f.apply(put).expect("put again");
    f.apply(DeleteBucket {
        name: "photos".to_owned(),
    })
    .expect("delete bucket");
    f.bucket("photos");
    assert_eq!(policy(&f), Ok(None), "a new bucket of the name has none");
}

#[test]
fn a_public_access_block_is_set_removed_and_goes_with_its_bucket() {
    let mut f = Fixture::empty();
    let read = |f: &Fixture| {
        let txn = f.db.begin_read().expect("read");
        GetPublicAccessBlock {
            bucket: "photos".to_owned(),
        }
        .read(&txn)
    };
    let block = PublicAccessBlock {
        block_public_policy: true,
        restrict_public_buckets: true,
        ..PublicAccessBlock::default()
    };
    let put = PutPublicAccessBlock {
        bucket: "photos".to_owned(),
        block,
    };
    assert_eq!(
        f.apply(put.clone()),
        Err(MetaError::NoSuchBucket("photos".to_owned()))
    );
    assert_eq!(read(&f), Err(MetaError::NoSuchBucket("photos".to_owned())));
    f.bucket("photos");
    assert_eq!(read(&f), Ok(None));
    f.apply(put.clone()).expect("put");
    assert_eq!(read(&f), Ok(Some(block)));
    f.apply(DeletePublicAccessBlock {
        bucket: "photos".to_owned(),
    })
    .expect("delete");
    assert_eq!(read(&f), Ok(None));
    f.apply(put).expect("put again");
    f.apply(DeleteBucket {
        name: "photos".to_owned(),
    })
    .expect("delete bucket");
    f.bucket("photos");
    assert_eq!(read(&f), Ok(None));
}

#[test]
fn a_buckets_rules_are_read_together_and_go_with_their_bucket() {
    let mut f = Fixture::empty();
    let read = |f: &Fixture| {
        let txn = f.db.begin_read().expect("read");
        GetBucketRules {
            bucket: "photos".to_owned(),
        }
        .read(&txn)
    };
    assert_eq!(read(&f), Err(MetaError::NoSuchBucket("photos".to_owned())));
    f.bucket("photos");
    assert_eq!(read(&f), Ok(StoredBucketRules::default()));

    let block = PublicAccessBlock {
        ignore_public_acls: true,
        ..PublicAccessBlock::default()
    };
    f.apply(PutBucketPolicy {
        bucket: "photos".to_owned(),
        policy: "{}".to_owned(),
    })
    .expect("put policy");
    f.apply(PutPublicAccessBlock {
        bucket: "photos".to_owned(),
        block,
    })
    .expect("put block");
    f.apply(SetBucketAcl {
        bucket: "photos".to_owned(),
        acl: CannedAcl::PublicRead,
    })
    .expect("set acl");
    f.apply(SetObjectOwnership {
        bucket: "photos".to_owned(),
        ownership: ObjectOwnership::ObjectWriter,
    })
    .expect("set ownership");
    let rules = read(&f).expect("rules");
    assert_eq!(
        rules,
        StoredBucketRules {
            policy: Some("{}".to_owned()),
            block: Some(block),
            acl: BucketAcl {
                acl: CannedAcl::PublicRead,
                ownership: ObjectOwnership::ObjectWriter,
            },
        }
    );
    // The same three as the single reads answer.
    let txn = f.db.begin_read().expect("read");
    let bucket = || "photos".to_owned();
    assert_eq!(
        GetBucketPolicy { bucket: bucket() }.read(&txn),
        Ok(rules.policy)
    );
    assert_eq!(
        GetPublicAccessBlock { bucket: bucket() }.read(&txn),
        Ok(rules.block)
    );
    assert_eq!(
        arbor_meta::acl::GetBucketAcl { bucket: bucket() }.read(&txn),
        Ok(rules.acl)
    );
    drop(txn);

    f.apply(DeleteBucket {
        name: "photos".to_owned(),
    })
    .expect("delete bucket");
    assert_eq!(read(&f), Err(MetaError::NoSuchBucket("photos".to_owned())));
    f.bucket("photos");
    assert_eq!(
        read(&f),
        Ok(StoredBucketRules::default()),
        "a new bucket of the name has none"
    );
}

#[test]
fn cors_rules_are_set_removed_bounded_and_go_with_their_bucket() {
    let mut f = Fixture::empty();
    let read = |f: &Fixture| {
        let txn = f.db.begin_read().expect("read");
        GetBucketCors {
            bucket: "photos".to_owned(),
        }
        .read(&txn)
    };
    let rule = CorsRule {
        allowed_origins: vec!["https://*.example.com".to_owned()],
        allowed_methods: vec!["GET".to_owned()],
        max_age_seconds: Some(60),
        ..CorsRule::default()
    };
    let set = |rules: Vec<CorsRule>| SetBucketCors {
        bucket: "photos".to_owned(),
        rules,
    };
    assert_eq!(
        f.apply(set(vec![rule.clone()])),
        Err(MetaError::NoSuchBucket("photos".to_owned()))
    );
    assert_eq!(read(&f), Err(MetaError::NoSuchBucket("photos".to_owned())));
    f.bucket("photos");
    assert_eq!(read(&f), Ok(Vec::new()));
    f.apply(set(vec![rule.clone()])).expect("set");
    assert_eq!(read(&f), Ok(vec![rule.clone()]));
    let too_many = vec![rule.clone(); arbor_meta::limits::BUCKET_CORS_RULES_MAX + 1];
    let too_large = vec![CorsRule {
        allowed_origins: vec!["o".repeat(arbor_meta::limits::BUCKET_CORS_SIZE_MAX)],
        ..rule.clone()
    }];
    for bad in [too_many, too_large] {
        let outcome = f.apply(set(bad));
        assert!(
            matches!(outcome, Err(MetaError::InvalidRequest(_))),
            "{outcome:?}"
        );
    }
    assert_eq!(
        read(&f),
        Ok(vec![rule.clone()]),
        "a refusal changes nothing"
    );
    f.apply(set(Vec::new())).expect("remove");
    assert_eq!(read(&f), Ok(Vec::new()));
    f.apply(set(vec![rule])).expect("set again");
    f.apply(DeleteBucket {
        name: "photos".to_owned(),
    })
    .expect("delete bucket");
    f.bucket("photos");
    assert_eq!(
        read(&f),
        Ok(Vec::new()),
        "a new bucket of the name has none"
    );
}
