//! Lifecycle rules in the state machine, with a controlled clock: each
//! batch carries "now" and the day length, as the background task sends
//! them.

use arbor_meta::MetaError;
use arbor_meta::command::{Command, CommandResult, Reply};
use arbor_meta::lifecycle::{
    DeleteBucketLifecycle, GetBucketLifecycle, GetBucketLifecycleRules, LifecycleBatch,
    LifecycleBuckets, LifecycleUploads, PutBucketLifecycle, PutBucketLifecycleRules,
};
use arbor_meta::listing::list_object_versions;
use arbor_meta::multipart::CreateMultipartUpload;
use arbor_meta::namespace::{
    CreateLockedBucket, DeleteBucket, DeleteKey, DeleteTarget, PutObject, SetBucketVersioning,
    SetObjectLegalHold,
};
use arbor_meta::op::Query;
use arbor_meta::records::lifecycle::{
    LifecycleConfig, LifecycleFilter, LifecycleProgress, LifecycleRule, LifecycleRules,
};
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

    /// A version of `size` bytes carrying `tags` (sorted), written at `at_ms`.
    fn put_tagged(&mut self, key: &str, etag: &str, at_ms: i64, size: u64, tags: &[(&str, &str)]) {
        let version = ObjectVersion {
            last_modified_ms: at_ms,
            size,
            data: arbor_meta::records::ObjectData::Inline(vec![
                0;
                usize::try_from(size).expect("size")
            ]),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..inline_version(etag)
        };
        let reply = self.apply(Command::PutObject(PutObject {
            lock: None,
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
            version,
            condition: WriteCondition::None,
            ownership: ChunkOwnership::Fresh,
            placements: Vec::new(),
        }));
        assert!(
            matches!(reply, Ok(Reply::PutObject(_))),
            "put {key}: {reply:?}"
        );
    }

    fn configure_filtered(
        &mut self,
        rules: Vec<(LifecycleRule, LifecycleFilter)>,
    ) -> CommandResult {
        let (rules, filters) = rules.into_iter().unzip();
        self.apply(Command::PutBucketLifecycleRules(PutBucketLifecycleRules {
            bucket: BUCKET.to_owned(),
            rules: LifecycleRules {
                config: LifecycleConfig { rules },
                filters,
            },
        }))
    }

    fn rules(&self) -> Result<Option<LifecycleRules>, MetaError> {
        GetBucketLifecycleRules {
            bucket: BUCKET.to_owned(),
        }
        .read(&self.db.begin_read().expect("read"))
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

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn filters_by_tag_and_size_pick_the_versions_a_rule_removes() {
    let mut f = Fixture::new(false);
    f.enable_versioning();
    let mut tagged = rule("t/");
    tagged.expiration_days = Some(1);
    let mut sized = rule("s/");
    sized.expiration_days = Some(1);
    let mut noncurrent = rule("n/");
    noncurrent.noncurrent_days = Some(1);
    let by_tags = LifecycleFilter {
        tags: tags(&[("class", "tmp"), ("team", "")]),
        and: true,
        ..LifecycleFilter::default()
    };
    let by_size = LifecycleFilter {
        size_greater_than: Some(10),
        size_less_than: Some(100),
        ..LifecycleFilter::default()
    };
    let big = LifecycleFilter {
        size_greater_than: Some(50),
        ..LifecycleFilter::default()
    };
    f.configure_filtered(vec![
        (tagged, by_tags.clone()),
        (sized, by_size.clone()),
        (noncurrent, big.clone()),
    ])
    .expect("put");
    // Both tags (and more) match; one of them, a wrong value, or none do not.
    f.put_tagged(
        "t/both",
        "x",
        0,
        3,
        &[("class", "tmp"), ("other", "1"), ("team", "")],
    );
    f.put_tagged("t/one", "x", 0, 3, &[("class", "tmp")]);
    f.put_tagged("t/wrong", "x", 0, 3, &[("class", "tmp"), ("team", "a")]);
    f.put_tagged("t/none", "x", 0, 3, &[]);
    // Sizes are bounds that exclude themselves.
    for size in [10, 11, 99, 100] {
        f.put_tagged(&format!("s/{size}"), "x", 0, size, &[]);
    }
    // Noncurrent versions are judged by their own size, not the current's.
    f.put_tagged("n/k", "small", 0, 5, &[]);
    f.put_tagged("n/k", "large", 100, 60, &[]);
    f.put_tagged("n/k", "current", 200, 1, &[]);
    let done = f.pass(5_000, 1000);
    assert_eq!((done.expired, done.versions_deleted), (3, 1));
    let current: Vec<(String, String, bool)> = f.versions();
    for key in ["t/both", "s/11", "s/99"] {
        assert_eq!(
            current.iter().find(|(k, _, _)| k == key).map(|v| v.2),
            Some(true),
            "{key} expired behind a marker"
        );
    }
    for key in ["t/one", "t/wrong", "t/none", "s/10", "s/100"] {
        assert_eq!(
            current.iter().find(|(k, _, _)| k == key).map(|v| v.2),
            Some(false),
            "{key} kept"
        );
    }
    let n: Vec<&str> = current
        .iter()
        .filter(|(k, _, _)| k == "n/k")
        .map(|(_, etag, _)| etag.as_str())
        .collect();
    assert_eq!(n, ["current", "small"]);
    // Stored beside the rules and answered with them.
    let stored = f.rules().expect("rules").expect("some");
    assert_eq!(stored.filters, vec![by_tags, by_size, big]);
    assert_eq!(stored.config.rules.len(), 3);
}

#[test]
fn filters_are_checked_and_go_with_the_configuration() {
    let mut f = Fixture::new(false);
    let mut expire = rule("");
    expire.expiration_days = Some(1);
    let tag = LifecycleFilter {
        tags: tags(&[("a", "1")]),
        ..LifecycleFilter::default()
    };
    let refused = |f: &mut Fixture, rules: Vec<(LifecycleRule, LifecycleFilter)>| {
        matches!(
            f.configure_filtered(rules),
            Err(MetaError::InvalidRequest(_))
        )
    };
    let mut abort = rule("up/");
    abort.abort_upload_days = Some(1);
    let mut marker = rule("m/");
    marker.expired_object_delete_marker = true;
    let unsorted = LifecycleFilter {
        tags: tags(&[("b", "1"), ("a", "1")]),
        ..LifecycleFilter::default()
    };
    let empty_range = LifecycleFilter {
        size_greater_than: Some(5),
        size_less_than: Some(5),
        ..LifecycleFilter::default()
    };
    assert!(refused(&mut f, vec![(expire.clone(), unsorted)]));
    assert!(refused(&mut f, vec![(expire.clone(), empty_range)]));
    assert!(refused(&mut f, vec![(abort.clone(), tag.clone())]));
    assert!(refused(&mut f, vec![(marker, tag.clone())]));
    // One filter per rule.
    let rules = vec![expire.clone()];
    assert!(matches!(
        f.apply(Command::PutBucketLifecycleRules(PutBucketLifecycleRules {
            bucket: BUCKET.to_owned(),
            rules: LifecycleRules {
                config: LifecycleConfig { rules },
                filters: Vec::new(),
            },
        })),
        Err(MetaError::InvalidRequest(_))
    ));
    assert_eq!(f.rules(), Ok(None));
    // An upload rule with a filter of a prefix only (an `<And>`) is fine.
    let and_prefix = LifecycleFilter {
        and: true,
        ..LifecycleFilter::default()
    };
    f.configure_filtered(vec![(expire.clone(), tag.clone()), (abort, and_prefix)])
        .expect("put");
    let filters_rows = |f: &Fixture| {
        let txn = f.db.begin_read().expect("read");
        let table = txn
            .open_table(schema::BUCKET_LIFECYCLE_FILTERS)
            .expect("table");
        table.len().expect("len")
    };
    assert_eq!(filters_rows(&f), 1);
    // The older command (prefixes only) replaces the filters too.
    f.configure(vec![expire.clone()]).expect("put prefixes");
    assert_eq!(filters_rows(&f), 0);
    assert_eq!(
        f.rules().expect("rules").map(|r| r.filters),
        Some(Vec::new())
    );
    // Filters that ask nothing leave no row; delete and the bucket's
    // removal take the row.
    f.configure_filtered(vec![(expire.clone(), LifecycleFilter::default())])
        .expect("put empty");
    assert_eq!(filters_rows(&f), 0);
    f.configure_filtered(vec![(expire.clone(), tag.clone())])
        .expect("put");
    f.apply(Command::DeleteBucketLifecycle(DeleteBucketLifecycle {
        bucket: BUCKET.to_owned(),
    }))
    .expect("delete");
    assert_eq!(filters_rows(&f), 0);
    f.configure_filtered(vec![(expire, tag)]).expect("put");
    f.apply(Command::DeleteBucket(DeleteBucket {
        name: BUCKET.to_owned(),
    }))
    .expect("delete bucket");
    assert_eq!(filters_rows(&f), 0);
}
