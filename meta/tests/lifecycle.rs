//! Lifecycle rules in the state machine, with a controlled clock: each
//! batch carries "now" and the day length, as the background task sends
//! them.

use arbor_meta::MetaError;
use arbor_meta::command::{Command, CommandResult, Reply};
use arbor_meta::lifecycle::{
    DeleteBucketLifecycle, GetBucketLifecycle, LifecycleBatch, LifecycleBuckets, LifecycleUploads,
    PutBucketLifecycle,
};
use arbor_meta::listing::list_object_versions;
use arbor_meta::multipart::CreateMultipartUpload;
use arbor_meta::namespace::{
    CreateLockedBucket, DeleteBucket, DeleteKey, DeleteTarget, PutObject, SetBucketVersioning,
    SetObjectLegalHold,
};
use arbor_meta::op::Query;
use arbor_meta::records::lifecycle::{LifecycleConfig, LifecycleProgress, LifecycleRule};
use arbor_meta::records::upload::{UploadId, UploadRecord};
use arbor_meta::records::{
    ChunkOwnership, ObjectHeaders, ObjectVersion, VersionId, VersionListEntry, VersionListRequest,
    Versioning, WriteCondition,
};
use arbor_meta::schema;
use redb::{ReadableDatabase, ReadableTableMetadata};

mod common;
use common::{Fixture, inline_version};

const BUCKET: &str = "bucket";
/// A short day, as the tests of the running service use.
const DAY: i64 = 1_000;

impl Fixture {
    /// With the bucket, Object Lock on if `locked`.
    fn new(locked: bool) -> Self {
        if !locked {
            return Fixture::with_bucket(BUCKET);
        }
        let mut f = Fixture::empty();
        f.apply(CreateLockedBucket {
            name: BUCKET.to_owned(),
            created_ms: 1,
        })
        .expect("create bucket");
        f
    }

    fn enable_versioning(&mut self) {
        self.apply(Command::SetBucketVersioning(SetBucketVersioning {
            bucket: BUCKET.to_owned(),
            versioning: Versioning::Enabled,
        }))
        .expect("enable versioning");
    }

    fn put(&mut self, key: &str, etag: &str, at_ms: i64) -> VersionId {
        let version = ObjectVersion {
            last_modified_ms: at_ms,
            ..inline_version(etag)
        };
        match self.apply(Command::PutObject(PutObject {
            lock: None,
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
            version,
            condition: WriteCondition::None,
            ownership: ChunkOwnership::Fresh,
            placements: Vec::new(),
        })) {
            Ok(Reply::PutObject(committed)) => committed.version_id(),
            other => panic!("put {key}: {other:?}"),
        }
    }

    fn delete(&mut self, key: &str, at_ms: i64) {
        self.apply(Command::DeleteKey(DeleteKey {
            bucket: BUCKET.to_owned(),
            target: DeleteTarget {
                key: key.to_owned(),
                version_id: None,
                condition: None,
                bypass_governance: false,
            },
            now_ms: at_ms,
        }))
        .expect("delete");
    }

    fn configure(&mut self, rules: Vec<LifecycleRule>) -> CommandResult {
        self.apply(Command::PutBucketLifecycle(PutBucketLifecycle {
            bucket: BUCKET.to_owned(),
            config: LifecycleConfig { rules },
        }))
    }

    /// Runs batches of `limit` keys over the whole bucket at `now_ms`;
    /// sums what they did.
    fn pass(&mut self, now_ms: i64, limit: u32) -> LifecycleProgress {
        let mut total = LifecycleProgress::default();
        let mut after = None;
        for _ in 0..1000 {
            let progress = match self.apply(Command::LifecycleBatch(LifecycleBatch {
                bucket: BUCKET.to_owned(),
                after: after.clone(),
                limit,
                now_ms,
                day_ms: DAY,
            })) {
                Ok(Reply::LifecycleBatch(progress)) => progress,
                other => panic!("batch: {other:?}"),
            };
            assert_eq!(progress.refused, 0, "nothing but locks refuses");
            total.keys += progress.keys;
            total.expired += progress.expired;
            total.versions_deleted += progress.versions_deleted;
            total.locked += progress.locked;
            match progress.next {
                Some(next) => after = Some(next),
                None => return total,
            }
        }
        panic!("a pass that never ends");
    }

    /// Every (key, etag, delete marker) newest first per key.
    fn versions(&self) -> Vec<(String, String, bool)> {
        let page = list_object_versions(
            &self.db.begin_read().expect("read"),
            BUCKET,
            &VersionListRequest {
                max_keys: 1000,
                ..VersionListRequest::default()
            },
        )
        .expect("list");
        page.entries
            .into_iter()
            .filter_map(|e| match e {
                VersionListEntry::Version(v) => Some((v.key, v.etag, v.delete_marker)),
                VersionListEntry::CommonPrefix(_) => None,
            })
            .collect()
    }
}

fn rule(prefix: &str) -> LifecycleRule {
    LifecycleRule {
        id: format!("rule-{prefix}"),
        enabled: true,
        prefix: prefix.to_owned(),
        ..LifecycleRule::default()
    }
}

fn v(key: &str, etag: &str, marker: bool) -> (String, String, bool) {
    (key.to_owned(), etag.to_owned(), marker)
}

#[test]
fn a_configuration_is_stored_replaced_removed_and_dropped_with_its_bucket() {
    let mut f = Fixture::new(false);
    let get = |f: &Fixture| {
        GetBucketLifecycle {
            bucket: BUCKET.to_owned(),
        }
        .read(&f.db.begin_read().expect("read"))
    };
    assert_eq!(get(&f), Ok(None));
    let mut expire = rule("logs/");
    expire.expiration_days = Some(3);
    f.configure(vec![expire.clone()]).expect("put");
    assert_eq!(
        get(&f),
        Ok(Some(LifecycleConfig {
            rules: vec![expire.clone()]
        }))
    );
    let buckets = |f: &Fixture| LifecycleBuckets.read(&f.db.begin_read().expect("read"));
    assert_eq!(buckets(&f), Ok(vec![BUCKET.to_owned()]));
    // Refused: no rules, duplicate IDs, a rule without an action, and a
    // bucket that does not exist; the stored one stays.
    assert!(matches!(
        f.configure(vec![]),
        Err(MetaError::InvalidRequest(_))
    ));
    assert!(matches!(
        f.configure(vec![expire.clone(), expire.clone()]),
        Err(MetaError::InvalidRequest(_))
    ));
    assert!(matches!(
        f.configure(vec![rule("x")]),
        Err(MetaError::InvalidRequest(_))
    ));
    assert!(matches!(
        f.apply(Command::PutBucketLifecycle(PutBucketLifecycle {
            bucket: "nope".to_owned(),
            config: LifecycleConfig {
                rules: vec![expire.clone()]
            },
        })),
        Err(MetaError::NoSuchBucket(_))
    ));
    assert!(get(&f).expect("get").is_some());
    // A configuration with only disabled rules has nothing to run.
    let mut disabled = expire.clone();
    disabled.enabled = false;
    f.configure(vec![disabled]).expect("put disabled");
    assert_eq!(buckets(&f), Ok(vec![]));
    f.apply(Command::DeleteBucketLifecycle(DeleteBucketLifecycle {
        bucket: BUCKET.to_owned(),
    }))
    .expect("delete");
    assert_eq!(get(&f), Ok(None));
    f.configure(vec![expire]).expect("put again");
    f.apply(Command::DeleteBucket(DeleteBucket {
        name: BUCKET.to_owned(),
    }))
    .expect("delete bucket");
    let txn = f.db.begin_read().expect("read");
    let table = txn.open_table(schema::BUCKET_LIFECYCLE).expect("table");
    assert_eq!(table.len().expect("len"), 0, "dropped with the bucket");
}

#[test]
fn current_versions_expire_within_the_prefix_only() {
    let mut f = Fixture::new(false);
    let mut expire = rule("logs/");
    expire.expiration_days = Some(2);
    f.configure(vec![expire]).expect("put");
    for i in 0..5 {
        f.put(&format!("logs/{i}"), "old", 0);
    }
    f.put("logs/new", "new", 1_500);
    f.put("keep/0", "old", 0);
    f.put("logsx", "old", 0);
    // A day and a half later nothing is two days old.
    assert_eq!(f.pass(1_999, 2).expired, 0);
    // Batches of two keys, resumed from the cursor.
    let done = f.pass(2_000, 2);
    assert_eq!(done.expired, 5);
    assert_eq!(done.keys, 8);
    assert_eq!(
        f.versions(),
        vec![
            v("keep/0", "old", false),
            v("logs/new", "new", false),
            v("logsx", "old", false),
        ]
    );
    // Once the new one is old enough, it goes too; a repeat does nothing.
    assert_eq!(f.pass(3_500, 1000).expired, 1);
    assert_eq!(f.pass(3_500, 1000).expired, 0);
}

#[test]
fn versioned_expiry_adds_markers_and_noncurrent_versions_go_keeping_the_newest() {
    let mut f = Fixture::new(false);
    f.enable_versioning();
    let mut current = rule("");
    current.expiration_days = Some(10);
    let mut noncurrent = rule("a");
    noncurrent.noncurrent_days = Some(1);
    noncurrent.newer_noncurrent_versions = Some(1);
    f.configure(vec![current, noncurrent]).expect("put");
    // Versions of "a" written at 0, 1000, 2000, 3000: v0 noncurrent since
    // 1000, v1 since 2000, v2 since 3000.
    for (i, at) in [0, 1_000, 2_000, 3_000].into_iter().enumerate() {
        f.put("a", &format!("a{i}"), at);
    }
    f.put("b", "b0", 0);
    f.put("b", "b1", 1_000);
    // At 3500 the noncurrent a0 and a1 are 1 day old or more, a2 not;
    // keeping one newest noncurrent (a2) leaves a1 and a0 to go.
    let done = f.pass(3_500, 1000);
    assert_eq!(done.versions_deleted, 2);
    assert_eq!(
        f.versions(),
        vec![
            v("a", "a3", false),
            v("a", "a2", false),
            v("b", "b1", false),
            v("b", "b0", false),
        ]
    );
    // "b" is outside the noncurrent rule's prefix. Ten days on, the
    // current versions expire behind delete markers.
    let done = f.pass(13_000, 1000);
    assert_eq!(done.expired, 2);
    let versions = f.versions();
    assert_eq!(versions.first(), Some(&v("a", "", true)));
    assert!(versions.contains(&v("b", "", true)));
}

#[test]
fn a_lone_delete_marker_goes_with_expired_object_delete_marker() {
    let mut f = Fixture::new(false);
    f.enable_versioning();
    let mut noncurrent = rule("");
    noncurrent.noncurrent_days = Some(1);
    let mut markers = rule("");
    markers.id = "markers".to_owned();
    markers.expired_object_delete_marker = true;
    f.configure(vec![noncurrent, markers]).expect("put");
    f.put("gone", "g0", 0);
    f.delete("gone", 500);
    f.put("kept", "k0", 0);
    f.delete("kept", 5_000);
    f.pass(2_000, 1000);
    // "gone": its only other version expired, then the lone marker went.
    // "kept": the version is noncurrent for less than a day.
    assert_eq!(
        f.versions(),
        vec![v("kept", "", true), v("kept", "k0", false)]
    );
}

#[test]
fn a_locked_version_survives_and_the_pass_goes_on() {
    let mut f = Fixture::new(true);
    let mut noncurrent = rule("");
    noncurrent.noncurrent_days = Some(1);
    f.configure(vec![noncurrent]).expect("put");
    let held = f.put("a", "held", 0);
    f.put("a", "a1", 100);
    f.put("b", "b0", 0);
    f.put("b", "b1", 100);
    f.apply(Command::SetObjectLegalHold(SetObjectLegalHold {
        bucket: BUCKET.to_owned(),
        key: "a".to_owned(),
        version_id: Some(held),
        on: true,
    }))
    .expect("hold");
    let done = f.pass(5_000, 1000);
    assert_eq!(done.locked, 1);
    assert_eq!(done.versions_deleted, 1);
    assert_eq!(
        f.versions(),
        vec![
            v("a", "a1", false),
            v("a", "held", false),
            v("b", "b1", false)
        ]
    );
}

#[test]
fn old_uploads_under_the_prefix_are_aborted() {
    let mut f = Fixture::new(false);
    let mut abort = rule("tmp/");
    abort.abort_upload_days = Some(1);
    f.configure(vec![abort]).expect("put");
    let upload = |f: &mut Fixture, key: &str, at_ms: i64| {
        f.apply(Command::CreateMultipartUpload(CreateMultipartUpload {
            upload: UploadRecord {
                upload_id: UploadId::new(at_ms),
                bucket: BUCKET.to_owned(),
                key: key.to_owned(),
                initiated_ms: at_ms,
                headers: ObjectHeaders::default(),
                user_metadata: Vec::new(),
                storage_class: None,
                checksum: None,
                tags: Vec::new(),
                lock: None,
                acl: Default::default(),
            },
        }))
        .expect("create upload");
    };
    upload(&mut f, "tmp/old", 0);
    upload(&mut f, "tmp/old2", 10);
    upload(&mut f, "tmp/young", 900);
    upload(&mut f, "other/old", 0);
    let run = |f: &mut Fixture, limit| match f.apply(Command::LifecycleUploads(LifecycleUploads {
        bucket: BUCKET.to_owned(),
        limit,
        now_ms: 1_500,
        day_ms: DAY,
    })) {
        Ok(Reply::LifecycleUploads(count)) => count,
        other => panic!("uploads: {other:?}"),
    };
    assert_eq!(run(&mut f, 1), 1);
    assert_eq!(run(&mut f, 10), 1);
    assert_eq!(run(&mut f, 10), 0);
    let txn = f.db.begin_read().expect("read");
    assert_eq!(
        txn.open_table(schema::UPLOADS)
            .expect("uploads")
            .len()
            .expect("len"),
        2,
        "the young one and the one outside the prefix stay"
    );
}

#[test]
fn a_batch_of_no_keys_or_no_day_is_refused() {
    let mut f = Fixture::new(false);
    for (limit, day_ms) in [(0, DAY), (1001, DAY), (10, 0)] {
        assert!(matches!(
            f.apply(Command::LifecycleBatch(LifecycleBatch {
                bucket: BUCKET.to_owned(),
                after: None,
                limit,
                now_ms: 0,
                day_ms,
            })),
            Err(MetaError::InvalidRequest(_))
        ));
    }
}
