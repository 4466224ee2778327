//! Versioning in the state machine: the bucket's state, versions and delete
//! markers, `null` versions, deleting a version, chunk references across
//! versions and copies, renames and recursive deletes in versioned buckets,
//! each version's tags, and both listings against a model (a `BTreeMap` of
//! keys to their versions, listed naively).

use std::collections::BTreeMap;

use arbor_meta::MetaError;
use arbor_meta::chunks;
use arbor_meta::command::{Command, CommandResult, Reply};
use arbor_meta::listing::{ListObjects, list_object_versions, list_objects};
use arbor_meta::namespace::{
    CreateBucket, CreateLockedBucket, DAY_MS, DeleteBucket, DeleteKey, DeleteKeys, DeleteObject,
    DeleteTarget, GetBucketVersioning, GetObjectLock, GetObjectLockConfig, GetObjectLockRule,
    GetObjectVersion, GetReadableVersion, PutObject, PutObjectTags, ReleaseObjectLegalHold,
    SetBucketVersioning, SetObjectLegalHold, SetObjectLockConfig, SetObjectLockConfigInYears,
    SetObjectRetention, SetObjectRetentionStrict, SetObjectTags, get_object,
};
use arbor_meta::op::Query;
use arbor_meta::reclaim::DeleteDirectory;
use arbor_meta::records::object::years_later_ms;
use arbor_meta::records::{
    ChunkId, ChunkOwnership, ChunkRecord, ChunkRef, DeleteCondition, DeleteOutcome, LegalHold,
    ListEntry, ListRequest, LockMode, ObjectData, ObjectLockConfig, ObjectLockRule, ObjectVersion,
    Retention, VersionId, VersionListEntry, VersionListRequest, VersionLock, Versioning,
    WriteCondition,
};
use arbor_meta::rename::{ObjectCondition, RenameDirectory, RenameObject};
use arbor_meta::schema;
use proptest::prelude::*;
use redb::{ReadableDatabase, ReadableTableMetadata};

mod common;
use common::{Fixture, inline_version};

const BUCKET: &str = "bucket";

impl Fixture {
    fn set_versioning(&mut self, versioning: Versioning) -> CommandResult {
        self.apply(Command::SetBucketVersioning(SetBucketVersioning {
            bucket: BUCKET.to_owned(),
            versioning,
        }))
    }

    fn versioning(&self) -> Result<Versioning, MetaError> {
        GetBucketVersioning {
            bucket: BUCKET.to_owned(),
        }
        .read(&self.db.begin_read().expect("read"))
    }

    fn put_version(&mut self, key: &str, version: ObjectVersion, shared: bool) -> ObjectVersion {
        let ownership = if shared {
            ChunkOwnership::Shared
        } else {
            ChunkOwnership::Fresh
        };
        match self.apply(Command::PutObject(PutObject {
            lock: None,
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
            version,
            condition: WriteCondition::None,
            ownership,
            placements: Vec::new(),
        })) {
            Ok(Reply::PutObject(committed)) => committed,
            other => panic!("put {key}: {other:?}"),
        }
    }

    fn put(&mut self, key: &str, etag: &str) -> ObjectVersion {
        self.put_version(key, inline_version(etag), false)
    }

    fn delete(&mut self, key: &str, version_id: Option<VersionId>) -> DeleteOutcome {
        match self.delete_if(key, version_id, None) {
            Ok(outcome) => outcome,
            Err(e) => panic!("delete {key}: {e:?}"),
        }
    }

    fn delete_if(
        &mut self,
        key: &str,
        version_id: Option<VersionId>,
        condition: Option<DeleteCondition>,
    ) -> Result<DeleteOutcome, MetaError> {
        match self.apply(Command::DeleteKey(DeleteKey {
            bucket: BUCKET.to_owned(),
            target: DeleteTarget {
                key: key.to_owned(),
                version_id,
                condition,
                bypass_governance: false,
            },
            now_ms: 99,
        })) {
            Ok(Reply::DeleteKey(outcome)) => Ok(outcome),
            Ok(other) => panic!("delete {key}: {other:?}"),
            Err(e) => Err(e),
        }
    }

    fn get(&self, key: &str) -> Result<ObjectVersion, MetaError> {
        get_object(&self.db.begin_read().expect("read"), BUCKET, key)
    }

    fn get_version(&self, key: &str, id: Option<VersionId>) -> Result<ObjectVersion, MetaError> {
        GetObjectVersion {
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
            version_id: id,
        }
        .read(&self.db.begin_read().expect("read"))
    }

    /// Every key ListObjects shows (pages of 1000, no delimiter).
    fn keys(&self) -> Vec<String> {
        self.list("", None, None, 1000)
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Vec<(String, bool)> {
        let page = list_objects(
            &self.db.begin_read().expect("read"),
            BUCKET,
            &ListRequest {
                prefix: prefix.to_owned(),
                delimiter: delimiter.map(str::to_owned),
                start_after: start_after.map(str::to_owned),
                max_keys,
            },
        )
        .expect("list");
        page.entries
            .iter()
            .map(|e| (e.name().to_owned(), matches!(e, ListEntry::CommonPrefix(_))))
            .collect()
    }

    fn versions_page(&self, request: &VersionListRequest) -> (Vec<Listed>, bool) {
        let page = list_object_versions(&self.db.begin_read().expect("read"), BUCKET, request)
            .expect("list versions");
        let entries = page
            .entries
            .into_iter()
            .map(|e| match e {
                VersionListEntry::Version(v) => Listed::Version {
                    key: v.key,
                    id: v.version_id,
                    latest: v.is_latest,
                    marker: v.delete_marker,
                    etag: v.etag,
                },
                VersionListEntry::CommonPrefix(p) => Listed::Prefix(p),
            })
            .collect();
        (entries, page.is_truncated)
    }

    /// Every version of every key, one page.
    fn all_versions(&self) -> Vec<Listed> {
        self.versions_page(&VersionListRequest {
            max_keys: 1000,
            ..VersionListRequest::default()
        })
        .0
    }

    fn record(&self, id: ChunkId) -> Option<ChunkRecord> {
        chunks::chunk_records(&self.db.begin_read().expect("read"), &[id])
            .expect("records")
            .pop()
            .flatten()
    }

    fn table_len(&self, table: schema::StateTable) -> u64 {
        let txn = self.db.begin_read().expect("read");
        txn.open_table(table).expect("table").len().expect("len")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Listed {
    Version {
        key: String,
        id: VersionId,
        latest: bool,
        marker: bool,
        etag: String,
    },
    Prefix(String),
}

fn chunked(etag: &str, ids: &[u8]) -> ObjectVersion {
    let chunks = ids
        .iter()
        .enumerate()
        .map(|(i, &n)| ChunkRef {
            id: ChunkId([n; 16]),
            offset: i as u64,
            size: 1,
            sha256: [n; 32],
        })
        .collect();
    ObjectVersion {
        size: ids.len() as u64,
        data: ObjectData::Chunks(chunks),
        ..inline_version(etag)
    }
}

fn refs(f: &Fixture, n: u8) -> u64 {
    f.record(ChunkId([n; 16])).map_or(0, |r| r.refs)
}

fn version(key: &str, id: VersionId, latest: bool, marker: bool, etag: &str) -> Listed {
    Listed::Version {
        key: key.to_owned(),
        id,
        latest,
        marker,
        etag: etag.to_owned(),
    }
}

#[test]
fn a_bucket_is_unversioned_until_enabled_and_never_again() {
    let mut f = Fixture::with_bucket(BUCKET);
    assert_eq!(f.versioning(), Ok(Versioning::Unversioned));
    assert!(matches!(
        f.set_versioning(Versioning::Unversioned),
        Err(MetaError::InvalidRequest(_))
    ));
    f.set_versioning(Versioning::Enabled).expect("enable");
    assert_eq!(f.versioning(), Ok(Versioning::Enabled));
    f.set_versioning(Versioning::Suspended).expect("suspend");
    assert_eq!(f.versioning(), Ok(Versioning::Suspended));
    assert!(matches!(
        f.apply(Command::SetBucketVersioning(SetBucketVersioning {
            bucket: "missing".to_owned(),
            versioning: Versioning::Enabled,
        })),
        Err(MetaError::NoSuchBucket(_))
    ));
    // Deleting the bucket forgets its state: a new bucket of that name
    // starts unversioned.
    f.apply(Command::DeleteBucket(DeleteBucket {
        name: BUCKET.to_owned(),
    }))
    .expect("delete bucket");
    f.apply(Command::CreateBucket(CreateBucket {
        name: BUCKET.to_owned(),
        created_ms: 2,
    }))
    .expect("create again");
    assert_eq!(f.versioning(), Ok(Versioning::Unversioned));
}

#[test]
fn every_write_in_an_enabled_bucket_keeps_a_version_and_deletes_add_markers() {
    let mut f = Fixture::with_bucket(BUCKET);
    let null = f.put("d/k", "v0");
    assert_eq!(null.version_id(), VersionId::Null);
    f.set_versioning(Versioning::Enabled).expect("enable");
    let v1 = f.put("d/k", "v1");
    let v2 = f.put("d/k", "v2");
    assert!(!v1.stamp.null && v1.version_id() != v2.version_id());
    assert_eq!(f.get("d/k").expect("get").etag, "v2");
    for (id, etag) in [
        (VersionId::Null, "v0"),
        (v1.version_id(), "v1"),
        (v2.version_id(), "v2"),
    ] {
        assert_eq!(f.get_version("d/k", Some(id)).expect("version").etag, etag);
    }
    let unknown = VersionId::At {
        generation: 9_999,
        position: 0,
    };
    assert!(matches!(
        f.get_version("d/k", Some(unknown)),
        Err(MetaError::NoSuchVersion { .. })
    ));

    // A delete adds a marker: the key is gone for reads and ListObjects,
    // with its directory, and every version stays.
    let deleted = f.delete("d/k", None);
    let marker = deleted.version_id.expect("marker id");
    assert!(deleted.delete_marker);
    assert_eq!(f.get("d/k"), Err(MetaError::NoSuchKey("d/k".to_owned())));
    let current = f.get_version("d/k", None).expect("current");
    assert!(current.stamp.delete_marker && current.last_modified_ms == 99);
    assert!(f.keys().is_empty());
    assert!(
        f.list("", Some("/"), None, 10).is_empty(),
        "no common prefix"
    );
    assert_eq!(
        f.all_versions(),
        [
            version("d/k", marker, true, true, ""),
            version("d/k", v2.version_id(), false, false, "v2"),
            version("d/k", v1.version_id(), false, false, "v1"),
            version("d/k", VersionId::Null, false, false, "v0"),
        ]
    );
    // A conditional delete of a deleted key finds nothing.
    assert_eq!(
        f.delete_if("d/k", None, Some(DeleteCondition::Exists)),
        Err(MetaError::NoSuchKey("d/k".to_owned()))
    );
    // A delete of a key that never existed adds a marker too (S3 does).
    let ghost = f.delete("never", None);
    assert!(ghost.delete_marker);
    assert_eq!(f.all_versions().len(), 5);

    // Removing the marker brings the previous version back.
    let removed = f.delete("d/k", Some(marker));
    assert_eq!(
        removed,
        DeleteOutcome {
            version_id: Some(marker),
            delete_marker: true
        }
    );
    assert_eq!(f.get("d/k").expect("back").etag, "v2");
    assert_eq!(f.keys(), ["d/k"]);
    // Removing the current version promotes the next newest.
    f.delete("d/k", Some(v2.version_id()));
    assert_eq!(f.get("d/k").expect("v1").etag, "v1");
    // Removing a version that does not exist changes nothing.
    assert_eq!(
        f.delete("d/k", Some(unknown)),
        DeleteOutcome {
            version_id: Some(unknown),
            delete_marker: false
        }
    );
    // Removing the last versions removes the key and its directory.
    f.delete("d/k", Some(VersionId::Null));
    f.delete("d/k", Some(v1.version_id()));
    assert_eq!(
        f.get_version("d/k", None),
        Err(MetaError::NoSuchKey("d/k".to_owned()))
    );
    f.delete("never", ghost.version_id);
    assert!(f.all_versions().is_empty());
    assert_eq!(f.table_len(schema::VERSIONS), 0);
    assert_eq!(
        f.table_len(schema::INODES),
        1,
        "only the bucket's directory"
    );
}

#[test]
fn a_suspended_bucket_writes_and_deletes_the_null_version() {
    let mut f = Fixture::with_bucket(BUCKET);
    f.set_versioning(Versioning::Enabled).expect("enable");
    let kept = f.put_version("k", chunked("kept", &[1]), false);
    f.set_versioning(Versioning::Suspended).expect("suspend");
    let first = f.put_version("k", chunked("n1", &[2]), false);
    assert_eq!(first.version_id(), VersionId::Null);
    // The next null version replaces the first, whose chunk is released.
    f.put_version("k", chunked("n2", &[3]), false);
    assert_eq!((refs(&f, 1), refs(&f, 2), refs(&f, 3)), (1, 0, 1));
    assert_eq!(
        f.all_versions(),
        [
            version("k", VersionId::Null, true, false, "n2"),
            version("k", kept.version_id(), false, false, "kept"),
        ]
    );
    // A delete replaces the null version with a null delete marker.
    let deleted = f.delete("k", None);
    assert_eq!(
        deleted,
        DeleteOutcome {
            version_id: Some(VersionId::Null),
            delete_marker: true
        }
    );
    assert_eq!(refs(&f, 3), 0);
    assert_eq!(
        f.all_versions(),
        [
            version("k", VersionId::Null, true, true, ""),
            version("k", kept.version_id(), false, false, "kept"),
        ]
    );
    // The old commands, which carry no time for a marker, are refused.
    assert!(matches!(
        f.apply(Command::DeleteObject(DeleteObject {
            bucket: BUCKET.to_owned(),
            key: "k".to_owned(),
        })),
        Err(MetaError::InvalidRequest(_))
    ));
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Fixture {
    fn set_tags(
        &mut self,
        key: &str,
        version_id: Option<VersionId>,
        pairs: &[(&str, &str)],
    ) -> Result<VersionId, MetaError> {
        match self.apply(Command::SetObjectTags(SetObjectTags {
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
            version_id,
            tags: tags(pairs),
        })) {
            Ok(Reply::SetObjectTags(id)) => Ok(id),
            Ok(other) => panic!("tag {key}: {other:?}"),
            Err(e) => Err(e),
        }
    }
}

#[test]
fn each_version_keeps_its_own_tags() {
    let mut f = Fixture::with_bucket(BUCKET);
    f.set_versioning(Versioning::Enabled).expect("enable");
    let old = f.put("k", "old");
    let new = f.put("k", "new");

    assert_eq!(
        f.set_tags("k", Some(old.version_id()), &[("a", "1")]),
        Ok(old.version_id())
    );
    assert_eq!(
        f.set_tags("k", None, &[("b", "2")]),
        Ok(new.version_id()),
        "without an id, the current version"
    );
    let tagged = f.get_version("k", Some(old.version_id())).expect("old");
    assert_eq!(tagged.tags, tags(&[("a", "1")]));
    assert_eq!(
        (tagged.etag.as_str(), tagged.last_modified_ms, tagged.data),
        ("old", old.last_modified_ms, old.data.clone()),
        "only the tags change"
    );
    assert_eq!(f.get("k").expect("current").tags, tags(&[("b", "2")]));

    // An empty set removes them (DeleteObjectTagging), of that version only.
    f.set_tags("k", Some(old.version_id()), &[])
        .expect("untag old");
    assert!(
        f.get_version("k", Some(old.version_id()))
            .expect("old")
            .tags
            .is_empty()
    );
    assert_eq!(f.get("k").expect("current").tags, tags(&[("b", "2")]));

    // The commands written before SetObjectTags tag the current version.
    f.apply(Command::PutObjectTags(PutObjectTags {
        bucket: BUCKET.to_owned(),
        key: "k".to_owned(),
        tags: tags(&[("c", "3")]),
    }))
    .expect("old command");
    assert_eq!(f.get("k").expect("current").tags, tags(&[("c", "3")]));

    let unknown = VersionId::At {
        generation: 999,
        position: 0,
    };
    assert_eq!(
        f.set_tags("k", Some(unknown), &[("a", "1")]),
        Err(MetaError::NoSuchVersion {
            key: "k".to_owned(),
            version_id: unknown.to_string(),
        })
    );
    assert_eq!(
        f.set_tags("missing", None, &[("a", "1")]),
        Err(MetaError::NoSuchKey("missing".to_owned()))
    );

    // A delete marker has no tags, current or named (S3 answers 405).
    let marker = f.delete("k", None).version_id.expect("marker id");
    let refused = Err(MetaError::DeleteMarker("k".to_owned()));
    assert_eq!(f.set_tags("k", Some(marker), &[("a", "1")]), refused);
    assert_eq!(f.set_tags("k", None, &[("a", "1")]), refused);
    assert_eq!(
        f.apply(Command::PutObjectTags(PutObjectTags {
            bucket: BUCKET.to_owned(),
            key: "k".to_owned(),
            tags: tags(&[("a", "1")]),
        })),
        Err(MetaError::DeleteMarker("k".to_owned()))
    );
    assert_eq!(
        f.apply(Command::PutObjectTags(PutObjectTags {
            bucket: BUCKET.to_owned(),
            key: "missing".to_owned(),
            tags: tags(&[("a", "1")]),
        })),
        Err(MetaError::NoSuchKey("missing".to_owned()))
    );
    let still = f.get_version("k", Some(marker)).expect("marker");
    assert!(
        still.stamp.delete_marker && still.tags.is_empty(),
        "{still:?}"
    );
    assert_eq!(
        f.get_version("k", Some(new.version_id()))
            .expect("new")
            .tags,
        tags(&[("c", "3")]),
        "refused commands change nothing"
    );

    // A suspended bucket's null version is named `null`.
    f.set_versioning(Versioning::Suspended).expect("suspend");
    f.put("k", "null");
    assert_eq!(
        f.set_tags("k", Some(VersionId::Null), &[("n", "1")]),
        Ok(VersionId::Null)
    );
    assert_eq!(f.get("k").expect("null").tags, tags(&[("n", "1")]));
}

#[test]
fn chunks_are_shared_across_versions_and_copies_and_freed_with_the_last() {
    let mut f = Fixture::with_bucket(BUCKET);
    f.set_versioning(Versioning::Enabled).expect("enable");
    let a = f.put_version("a", chunked("a1", &[1, 2]), false);
    // A copy of that version shares its chunks; a new version of `a` keeps
    // chunk 2 and adds chunk 3.
    f.put_version("copy", a.clone(), true);
    f.put_version("a", chunked("a2", &[3]), false);
    f.put_version("a", a.clone(), true);
    assert_eq!((refs(&f, 1), refs(&f, 2), refs(&f, 3)), (3, 3, 1));
    // Versions go one by one; a chunk is queued for GC with its last one.
    for listed in f.all_versions() {
        let Listed::Version { key, id, .. } = listed else {
            panic!("no prefixes without a delimiter");
        };
        f.delete(&key, Some(id));
    }
    assert_eq!((refs(&f, 1), refs(&f, 2), refs(&f, 3)), (0, 0, 0));
    assert_eq!(f.table_len(schema::VERSIONS), 0);
}

#[test]
fn renames_move_every_version_and_versioned_buckets_refuse_what_would_lose_one() {
    let mut f = Fixture::with_bucket(BUCKET);
    f.set_versioning(Versioning::Enabled).expect("enable");
    let v1 = f.put("src/a", "a1");
    f.put("src/a", "a2");
    f.delete("src/b", None);
    f.apply(Command::RenameDirectory(RenameDirectory {
        bucket: BUCKET.to_owned(),
        source: "src/".to_owned(),
        destination: "dst/".to_owned(),
        replace: false,
        now_ms: 1,
        client_token: None,
    }))
    .expect("rename directory");
    assert_eq!(f.get("dst/a").expect("moved").etag, "a2");
    assert_eq!(
        f.get_version("dst/a", Some(v1.version_id()))
            .expect("old version moved")
            .etag,
        "a1"
    );
    assert!(
        f.get_version("dst/b", None)
            .expect("marker")
            .stamp
            .delete_marker
    );
    assert_eq!(f.all_versions().len(), 3);

    // An object rename onto a key with versions, or a directory rename that
    // replaces its destination, would merge or drop histories: refused.
    f.put("other", "o");
    let rename = |source: &str, destination: &str| {
        Command::RenameObject(RenameObject {
            bucket: BUCKET.to_owned(),
            source: source.to_owned(),
            destination: destination.to_owned(),
            source_condition: ObjectCondition::default(),
            destination_condition: ObjectCondition::default(),
            client_token: None,
        })
    };
    assert!(matches!(
        f.apply(rename("other", "dst/a")),
        Err(MetaError::VersionedBucket(_))
    ));
    assert!(matches!(
        f.apply(rename("other", "dst/b")),
        Err(MetaError::VersionedBucket(_))
    ));
    // A deleted key cannot be a rename's source.
    assert_eq!(
        f.apply(rename("dst/b", "fresh")),
        Err(MetaError::NoSuchKey("dst/b".to_owned()))
    );
    f.apply(rename("other", "fresh"))
        .expect("rename to a new key");
    f.put("x/y", "y");
    assert!(matches!(
        f.apply(Command::RenameDirectory(RenameDirectory {
            bucket: BUCKET.to_owned(),
            source: "x/".to_owned(),
            destination: "dst/".to_owned(),
            replace: true,
            now_ms: 1,
            client_token: None,
        })),
        Err(MetaError::VersionedBucket(_))
    ));
    // A recursive delete is refused, naming the bucket.
    match f.apply(Command::DeleteDirectory(DeleteDirectory {
        bucket: BUCKET.to_owned(),
        prefix: "dst/".to_owned(),
        deleted_ms: 1,
    })) {
        Err(MetaError::VersionedBucket(message)) => assert!(message.contains(BUCKET), "{message}"),
        other => panic!("recursive delete: {other:?}"),
    }
    assert_eq!(f.all_versions().len(), 5);
}

#[test]
fn delete_keys_reports_each_target() {
    let mut f = Fixture::with_bucket(BUCKET);
    f.set_versioning(Versioning::Enabled).expect("enable");
    let v = f.put("a", "a1");
    f.put("b", "b1");
    let result = f.apply(Command::DeleteKeys(DeleteKeys {
        bucket: BUCKET.to_owned(),
        targets: vec![
            DeleteTarget {
                key: "a".to_owned(),
                version_id: Some(v.version_id()),
                condition: None,
                bypass_governance: false,
            },
            DeleteTarget {
                key: "b".to_owned(),
                version_id: None,
                condition: Some(DeleteCondition::ETag("wrong".to_owned())),
                bypass_governance: false,
            },
            DeleteTarget {
                key: "b".to_owned(),
                version_id: None,
                condition: None,
                bypass_governance: false,
            },
        ],
        now_ms: 5,
    }));
    let Ok(Reply::DeleteKeys(outcomes)) = result else {
        panic!("delete keys: {result:?}");
    };
    assert_eq!(outcomes.len(), 3);
    assert_eq!(
        outcomes[0],
        Ok(DeleteOutcome {
            version_id: Some(v.version_id()),
            delete_marker: false
        })
    );
    assert_eq!(outcomes[1], Err(MetaError::PreconditionFailed));
    assert!(matches!(&outcomes[2], Ok(o) if o.delete_marker));
    assert!(f.keys().is_empty());
}

#[test]
fn a_directory_of_delete_markers_is_a_common_prefix_only_once_it_holds_a_live_key() {
    let mut f = Fixture::with_bucket(BUCKET);
    f.set_versioning(Versioning::Enabled).expect("enable");
    // More markers than one range scan of the look for a live key reads,
    // and one more in a directory below.
    for i in 0..150 {
        let key = format!("d/m{i:03}");
        f.put(&key, "v");
        f.delete(&key, None);
    }
    f.put("d/s/deep/k", "v");
    f.delete("d/s/deep/k", None);
    f.put("e", "v");
    let top = |f: &Fixture| f.list("", Some("/"), None, 1000);
    assert_eq!(top(&f), [("e".to_owned(), false)]);

    // A live key after every marker, then one two directories down.
    f.put("d/z", "v");
    assert_eq!(top(&f), [("d/".to_owned(), true), ("e".to_owned(), false)]);
    f.delete("d/z", None);
    assert_eq!(top(&f), [("e".to_owned(), false)]);
    f.put("d/s/deep/live", "v");
    assert_eq!(top(&f), [("d/".to_owned(), true), ("e".to_owned(), false)]);
    assert_eq!(
        f.list("d/", Some("/"), None, 1000),
        [("d/s/".to_owned(), true)]
    );
}

#[test]
fn only_a_bucket_that_never_had_versioning_lists_on_the_calling_task() {
    let mut f = Fixture::with_bucket(BUCKET);
    f.put("a/b", "v");
    f.put("c", "v");
    let query = |bucket: &str| ListObjects {
        bucket: bucket.to_owned(),
        request: ListRequest {
            max_keys: 1000,
            ..ListRequest::default()
        },
    };
    let inline =
        |f: &Fixture, bucket: &str| query(bucket).read_inline(&f.db.begin_read().expect("read"));
    let page = inline(&f, BUCKET)
        .expect("unversioned: inline")
        .expect("list");
    assert_eq!(Ok(&page), f.read(query(BUCKET)).as_ref());
    assert_eq!(page.entries.len(), 2);
    assert!(matches!(
        inline(&f, "missing"),
        Some(Err(MetaError::NoSuchBucket(_)))
    ));

    // Delete markers may hide any number of keys from now on, even once
    // versioning is suspended: such pages go to the blocking pool.
    f.set_versioning(Versioning::Enabled).expect("enable");
    f.delete("c", None);
    assert!(inline(&f, BUCKET).is_none());
    f.set_versioning(Versioning::Suspended).expect("suspend");
    assert!(inline(&f, BUCKET).is_none());
    let page = f.read(query(BUCKET)).expect("list");
    assert_eq!(
        page.entries.iter().map(ListEntry::name).collect::<Vec<_>>(),
        ["a/b"]
    );
}

#[test]
fn version_listing_pages_resume_inside_a_key() {
    let mut f = Fixture::with_bucket(BUCKET);
    f.set_versioning(Versioning::Enabled).expect("enable");
    for i in 0..3 {
        f.put("a", &format!("a{i}"));
    }
    f.put("b/c", "c");
    f.put("d", "d");
    let mut request = VersionListRequest {
        delimiter: Some("/".to_owned()),
        max_keys: 2,
        ..VersionListRequest::default()
    };
    let mut seen = Vec::new();
    for _ in 0..10 {
        let (entries, truncated) = f.versions_page(&request);
        let last = entries.last().cloned();
        seen.extend(entries);
        if !truncated {
            break;
        }
        match last.expect("a truncated page has entries") {
            Listed::Version { key, id, .. } => {
                request.key_marker = Some(key);
                request.version_id_marker = Some(id);
            }
            Listed::Prefix(p) => {
                request.key_marker = Some(p);
                request.version_id_marker = None;
            }
        }
    }
    let names: Vec<String> = seen
        .iter()
        .map(|e| match e {
            Listed::Version { key, etag, .. } => format!("{key}:{etag}"),
            Listed::Prefix(p) => format!("{p}*"),
        })
        .collect();
    assert_eq!(names, ["a:a2", "a:a1", "a:a0", "b/*", "d:d"]);
}

// ------------------------------------------------------------- Object Lock

impl Fixture {
    fn delete_at(
        &mut self,
        key: &str,
        id: VersionId,
        now_ms: i64,
        bypass_governance: bool,
    ) -> Result<DeleteOutcome, MetaError> {
        match self.apply(Command::DeleteKey(DeleteKey {
            bucket: BUCKET.to_owned(),
            target: DeleteTarget {
                key: key.to_owned(),
                version_id: Some(id),
                condition: None,
                bypass_governance,
            },
            now_ms,
        })) {
            Ok(Reply::DeleteKey(outcome)) => Ok(outcome),
            Ok(other) => panic!("delete {key}: {other:?}"),
            Err(e) => Err(e),
        }
    }

    fn retain(
        &mut self,
        key: &str,
        id: VersionId,
        retention: Option<Retention>,
        bypass_governance: bool,
        now_ms: i64,
    ) -> CommandResult {
        self.apply(Command::SetObjectRetention(SetObjectRetention {
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
            version_id: Some(id),
            retention,
            bypass_governance,
            now_ms,
        }))
    }

    fn lock_of(&self, key: &str, id: Option<VersionId>) -> Result<VersionLock, MetaError> {
        GetObjectLock {
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
            version_id: id,
        }
        .read(&self.db.begin_read().expect("read"))
    }
}

/// A fixture whose bucket was created with Object Lock.
fn locked_bucket() -> Fixture {
    let mut f = Fixture::with_bucket(BUCKET);
    f.apply(Command::DeleteBucket(DeleteBucket {
        name: BUCKET.to_owned(),
    }))
    .expect("delete the plain bucket");
    f.apply(Command::CreateLockedBucket(CreateLockedBucket {
        name: BUCKET.to_owned(),
        created_ms: 1,
    }))
    .expect("create a locked bucket");
    f
}

fn retention(mode: LockMode, until_ms: i64) -> Option<Retention> {
    Some(Retention { mode, until_ms })
}

#[test]
fn compliance_retention_refuses_every_delete_before_its_date() {
    let mut f = locked_bucket();
    assert_eq!(f.versioning(), Ok(Versioning::Enabled));
    // Versioning stays enabled under Object Lock.
    assert!(matches!(
        f.set_versioning(Versioning::Suspended),
        Err(MetaError::InvalidBucketState(_))
    ));
    let v = f.put("k", "locked").version_id();
    f.retain("k", v, retention(LockMode::Compliance, 1_000), false, 10)
        .expect("retain");
    for bypass in [false, true] {
        match f.delete_at("k", v, 999, bypass) {
            Err(MetaError::ObjectLocked(message)) => {
                assert!(
                    message.contains("COMPLIANCE") && message.contains("\"k\""),
                    "{message}"
                );
            }
            other => panic!("delete before the date: {other:?}"),
        }
    }
    // Shortening, removing or weakening it is refused, even bypassing.
    for (new, bypass) in [
        (retention(LockMode::Compliance, 500), true),
        (None, true),
        (retention(LockMode::Governance, 2_000), true),
    ] {
        assert!(
            matches!(
                f.retain("k", v, new, bypass, 20),
                Err(MetaError::ObjectLocked(_))
            ),
            "{new:?}"
        );
    }
    f.retain("k", v, retention(LockMode::Compliance, 2_000), false, 20)
        .expect("lengthen");
    // A delete without a version id only adds a marker: allowed.
    assert!(f.delete("k", None).delete_marker);
    assert_eq!(f.get_version("k", Some(v)).expect("kept").etag, "locked");
    assert!(matches!(
        f.delete_at("k", v, 1_999, false),
        Err(MetaError::ObjectLocked(_))
    ));
    // From its date on, the version goes like any other.
    f.delete_at("k", v, 2_000, false)
        .expect("delete after the date");
    assert_eq!(
        f.get_version("k", Some(v)),
        Err(MetaError::NoSuchVersion {
            key: "k".to_owned(),
            version_id: v.to_string()
        })
    );
    assert_eq!(f.table_len(schema::VERSION_LOCKS), 0);
}

impl Fixture {
    /// PutObject of an inline version asking for `lock`.
    fn put_locked(&mut self, key: &str, etag: &str, lock: VersionLock) -> CommandResult {
        self.apply(Command::PutObject(PutObject {
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
            version: inline_version(etag),
            condition: WriteCondition::None,
            ownership: ChunkOwnership::Fresh,
            placements: Vec::new(),
            lock: Some(lock),
        }))
    }
}

#[test]
fn a_lock_asked_with_a_write_is_set_by_the_commit() {
    let mut f = locked_bucket();
    let asked = VersionLock {
        retention: retention(LockMode::Compliance, 1_000),
        legal_hold: LegalHold::On,
    };
    let v = match f.put_locked("k", "locked", asked) {
        Ok(Reply::PutObject(v)) => v,
        other => panic!("put: {other:?}"),
    };
    assert_eq!(f.lock_of("k", Some(v.version_id())), Ok(asked));
    let read = GetReadableVersion {
        bucket: BUCKET.to_owned(),
        key: "k".to_owned(),
        version_id: None,
    }
    .read(&f.db.begin_read().expect("read"));
    assert_eq!(read, Ok((v.clone(), asked)));
    assert!(matches!(
        f.delete_at("k", v.version_id(), 5_000, true),
        Err(MetaError::ObjectLocked(_))
    ));
    // A retention ending by the version's time is refused; nothing written.
    let before = f.table_len(schema::VERSIONS);
    let past = VersionLock {
        retention: retention(LockMode::Governance, 7),
        legal_hold: LegalHold::Never,
    };
    assert!(matches!(
        f.put_locked("p", "past", past),
        Err(MetaError::InvalidRequest(_))
    ));
    assert_eq!(f.table_len(schema::VERSIONS), before);
    // The asked retention replaces the bucket's default; a legal hold
    // alone keeps it.
    f.apply(Command::SetObjectLockConfig(SetObjectLockConfig {
        bucket: BUCKET.to_owned(),
        config: ObjectLockConfig {
            default: Some((LockMode::Governance, 1)),
        },
    }))
    .expect("default retention");
    let asked = VersionLock {
        retention: retention(LockMode::Compliance, 100),
        legal_hold: LegalHold::Never,
    };
    f.put_locked("o", "override", asked).expect("put");
    assert_eq!(f.lock_of("o", None), Ok(asked));
    let hold = VersionLock {
        retention: None,
        legal_hold: LegalHold::On,
    };
    f.put_locked("h", "hold", hold).expect("put");
    assert_eq!(
        f.lock_of("h", None),
        Ok(VersionLock {
            retention: retention(LockMode::Governance, 7 + DAY_MS),
            legal_hold: LegalHold::On
        })
    );

    // Without Object Lock, a lock asked with a write is refused and
    // nothing is written.
    let mut f = Fixture::with_bucket(BUCKET);
    f.set_versioning(Versioning::Enabled).expect("enable");
    assert_eq!(
        f.put_locked("k", "plain", hold),
        Err(MetaError::NoObjectLockConfig(BUCKET.to_owned()))
    );
    assert_eq!(f.table_len(schema::VERSIONS), 0);
    assert_eq!(f.get("k"), Err(MetaError::NoSuchKey("k".to_owned())));
}

#[test]
fn governance_yields_to_a_bypass_and_legal_holds_to_nothing() {
    let mut f = locked_bucket();
    let v = f.put("g", "gov").version_id();
    f.retain("g", v, retention(LockMode::Governance, 1_000), false, 10)
        .expect("retain");
    assert!(matches!(
        f.delete_at("g", v, 500, false),
        Err(MetaError::ObjectLocked(_))
    ));
    assert!(matches!(
        f.retain("g", v, retention(LockMode::Governance, 100), false, 10),
        Err(MetaError::ObjectLocked(_))
    ));
    f.retain("g", v, retention(LockMode::Governance, 100), true, 10)
        .expect("shorten, bypassing");
    // A legal hold keeps it whatever the retention and the bypass.
    f.apply(Command::SetObjectLegalHold(SetObjectLegalHold {
        bucket: BUCKET.to_owned(),
        key: "g".to_owned(),
        version_id: None,
        on: true,
    }))
    .expect("hold");
    assert_eq!(
        f.lock_of("g", None),
        Ok(VersionLock {
            retention: retention(LockMode::Governance, 100),
            legal_hold: LegalHold::On
        })
    );
    match f.delete_at("g", v, 5_000, true) {
        Err(MetaError::ObjectLocked(message)) => assert!(message.contains("legal hold")),
        other => panic!("delete under a legal hold: {other:?}"),
    }
    f.apply(Command::SetObjectLegalHold(SetObjectLegalHold {
        bucket: BUCKET.to_owned(),
        key: "g".to_owned(),
        version_id: Some(v),
        on: false,
    }))
    .expect("lift");
    // Lifted by the command as first released: forgotten, as never held.
    assert_eq!(
        f.lock_of("g", None).map(|l| l.legal_hold),
        Ok(LegalHold::Never)
    );
    // Held and released: remembered as lifted, and deletable.
    f.apply(Command::SetObjectLegalHold(SetObjectLegalHold {
        bucket: BUCKET.to_owned(),
        key: "g".to_owned(),
        version_id: Some(v),
        on: true,
    }))
    .expect("hold again");
    f.apply(Command::ReleaseObjectLegalHold(ReleaseObjectLegalHold {
        bucket: BUCKET.to_owned(),
        key: "g".to_owned(),
        version_id: Some(v),
    }))
    .expect("release");
    assert_eq!(
        f.lock_of("g", None).map(|l| l.legal_hold),
        Ok(LegalHold::Off)
    );
    assert!(matches!(
        f.delete_at("g", v, 50, false),
        Err(MetaError::ObjectLocked(_))
    ));
    f.delete_at("g", v, 50, true).expect("bypassed");
}

#[test]
fn governance_changes_mode_only_with_a_bypass() {
    let mut f = locked_bucket();
    let v = f.put("g", "gov").version_id();
    let strict = |f: &mut Fixture, new: Option<Retention>, bypass_governance: bool| {
        f.apply(Command::SetObjectRetentionStrict(SetObjectRetentionStrict(
            SetObjectRetention {
                bucket: BUCKET.to_owned(),
                key: "g".to_owned(),
                version_id: Some(v),
                retention: new,
                bypass_governance,
                now_ms: 10,
            },
        )))
    };
    f.retain("g", v, retention(LockMode::Governance, 1_000), false, 10)
        .expect("retain");
    // The same date or a later one, as COMPLIANCE, without the bypass.
    for until in [1_000, 2_000] {
        match strict(&mut f, retention(LockMode::Compliance, until), false) {
            Err(MetaError::ObjectLocked(message)) => assert!(
                message.contains("GOVERNANCE") && message.contains("bypass"),
                "{message}"
            ),
            other => panic!("GOVERNANCE to COMPLIANCE: {other:?}"),
        }
    }
    // Shortening and removing still need it too.
    for new in [retention(LockMode::Governance, 500), None] {
        assert!(matches!(
            strict(&mut f, new, false),
            Err(MetaError::ObjectLocked(_))
        ));
    }
    assert_eq!(
        f.lock_of("g", None).map(|lock| lock.retention),
        Ok(retention(LockMode::Governance, 1_000))
    );
    // Lengthening as GOVERNANCE needs no bypass.
    strict(&mut f, retention(LockMode::Governance, 1_500), false).expect("lengthen");
    strict(&mut f, retention(LockMode::Compliance, 1_500), true).expect("bypassing");
    assert_eq!(
        f.lock_of("g", None).map(|lock| lock.retention),
        Ok(retention(LockMode::Compliance, 1_500))
    );
    // COMPLIANCE is as before: lengthened only, whatever the bypass.
    assert!(matches!(
        strict(&mut f, retention(LockMode::Governance, 3_000), true),
        Err(MetaError::ObjectLocked(_))
    ));
    strict(&mut f, retention(LockMode::Compliance, 3_000), false).expect("lengthen");
}

/// `SetObjectRetention`'s outcome is replicated in the log's request
/// table, so it stays what the first release answered: GOVERNANCE becomes
/// COMPLIANCE without the bypass.
#[test]
fn the_released_retention_command_keeps_its_outcome() {
    let mut f = locked_bucket();
    let v = f.put("g", "gov").version_id();
    f.retain("g", v, retention(LockMode::Governance, 1_000), false, 10)
        .expect("retain");
    f.retain("g", v, retention(LockMode::Compliance, 1_000), false, 10)
        .expect("as released");
    assert_eq!(
        f.lock_of("g", None).map(|lock| lock.retention),
        Ok(retention(LockMode::Compliance, 1_000))
    );
}

#[test]
fn a_default_retention_locks_every_new_version() {
    let mut f = Fixture::with_bucket(BUCKET);
    let config = ObjectLockConfig {
        default: Some((LockMode::Compliance, 2)),
    };
    let set = |config| {
        Command::SetObjectLockConfig(SetObjectLockConfig {
            bucket: BUCKET.to_owned(),
            config,
        })
    };
    // Object Lock needs versioning enabled (the outcome every release's
    // replicas remember for this command: it must not change).
    assert!(matches!(
        f.apply(set(config)),
        Err(MetaError::VersionedBucket(_))
    ));
    let no_config = GetObjectLockConfig {
        bucket: BUCKET.to_owned(),
    }
    .read(&f.db.begin_read().expect("read"));
    assert_eq!(
        no_config,
        Err(MetaError::NoObjectLockConfig(BUCKET.to_owned()))
    );
    f.set_versioning(Versioning::Enabled).expect("enable");
    assert!(matches!(
        f.apply(set(ObjectLockConfig {
            default: Some((LockMode::Compliance, 0))
        })),
        Err(MetaError::InvalidRequest(_))
    ));
    f.apply(set(config)).expect("lock");
    let v = f.put("d", "dflt");
    let until = v.last_modified_ms + 2 * DAY_MS;
    assert_eq!(
        f.lock_of("d", None),
        Ok(VersionLock {
            retention: retention(LockMode::Compliance, until),
            legal_hold: LegalHold::Never
        })
    );
    assert!(matches!(
        f.delete_at("d", v.version_id(), until - 1, true),
        Err(MetaError::ObjectLocked(_))
    ));
    // Delete markers hold nothing and get no retention.
    let marker = f.delete("d", None).version_id.expect("marker");
    f.delete_at("d", marker, 0, false).expect("a marker goes");
    f.delete_at("d", v.version_id(), until, false)
        .expect("after the date");
    // Without Object Lock, retention and holds are refused.
    let mut plain = Fixture::with_bucket(BUCKET);
    let w = plain.put("p", "p").version_id();
    assert_eq!(
        plain.retain("p", w, retention(LockMode::Governance, 5), false, 1),
        Err(MetaError::NoObjectLockConfig(BUCKET.to_owned()))
    );
}

#[test]
fn a_default_retention_in_years_reads_back_as_years_and_ends_on_the_anniversary() {
    let mut f = Fixture::with_bucket(BUCKET);
    f.set_versioning(Versioning::Enabled).expect("enable");
    f.apply(Command::SetObjectLockConfigInYears(
        SetObjectLockConfigInYears {
            bucket: BUCKET.to_owned(),
            mode: LockMode::Governance,
            years: 3,
        },
    ))
    .expect("lock in years");
    let rule = |f: &Fixture| {
        GetObjectLockRule {
            bucket: BUCKET.to_owned(),
        }
        .read(&f.db.begin_read().expect("read"))
    };
    let in_days = |days| ObjectLockConfig {
        default: Some((LockMode::Governance, days)),
    };
    assert_eq!(
        rule(&f),
        Ok(ObjectLockRule {
            config: in_days(1095),
            years: Some(3)
        })
    );
    // A query of the releases before reads 365 days a year.
    let config = GetObjectLockConfig {
        bucket: BUCKET.to_owned(),
    }
    .read(&f.db.begin_read().expect("read"));
    assert_eq!(config, Ok(in_days(1095)));
    let v = f.put("y", "yearly");
    let until = years_later_ms(v.last_modified_ms, 3);
    assert_eq!(
        until,
        v.last_modified_ms + 1096 * DAY_MS,
        "from 1970: over 29 February 1972"
    );
    assert_eq!(
        f.lock_of("y", None).map(|lock| lock.retention),
        Ok(retention(LockMode::Governance, until))
    );
    // A rule in days replaces it, years and all.
    f.apply(Command::SetObjectLockConfig(SetObjectLockConfig {
        bucket: BUCKET.to_owned(),
        config: in_days(3),
    }))
    .expect("lock in days");
    assert_eq!(
        rule(&f),
        Ok(ObjectLockRule {
            config: in_days(3),
            years: None
        })
    );
    let w = f.put("d", "daily");
    assert_eq!(
        f.lock_of("d", None).map(|lock| lock.retention),
        Ok(retention(
            LockMode::Governance,
            w.last_modified_ms + 3 * DAY_MS
        ))
    );
    // Refusals leave the rule as it was.
    for years in [0, u32::MAX] {
        assert!(matches!(
            f.apply(Command::SetObjectLockConfigInYears(
                SetObjectLockConfigInYears {
                    bucket: BUCKET.to_owned(),
                    mode: LockMode::Compliance,
                    years,
                }
            )),
            Err(MetaError::InvalidRequest(_))
        ));
    }
    assert_eq!(rule(&f).map(|r| r.years), Ok(None));
}

// ------------------------------------------------------------- the model

#[derive(Clone, Debug, PartialEq)]
struct ModelVersion {
    id: VersionId,
    etag: String,
    marker: bool,
}

/// Each key's versions, newest first.
type Model = BTreeMap<String, Vec<ModelVersion>>;

#[derive(Clone, Debug)]
enum Op {
    Put(String),
    Delete(String),
    /// Deletes the i-th version (mod their number) of the key, or a
    /// version it never had when i is 7.
    DeleteVersion(String, usize),
    Versioning(bool),
    RenameDirectory(String, String),
}

fn key_strategy() -> impl Strategy<Value = String> {
    "[ab/.-]{1,5}"
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => key_strategy().prop_map(Op::Put),
        3 => key_strategy().prop_map(Op::Delete),
        3 => (key_strategy(), 0..8usize).prop_map(|(k, i)| Op::DeleteVersion(k, i)),
        1 => any::<bool>().prop_map(Op::Versioning),
        1 => ("([ab]{0,2}/){1,2}", "([ab]{0,2}/){1,2}")
            .prop_map(|(a, b)| Op::RenameDirectory(a, b)),
    ]
}

fn live_keys(model: &Model) -> Vec<String> {
    model
        .iter()
        .filter(|(_, versions)| versions.first().is_some_and(|v| !v.marker))
        .map(|(key, _)| key.clone())
        .collect()
}

fn common(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
    let d = delimiter?;
    key[prefix.len()..]
        .find(d)
        .map(|i| key[..prefix.len() + i + d.len()].to_owned())
}

/// Every entry of ListObjects, computed naively.
fn model_list(model: &Model, prefix: &str, delimiter: Option<&str>) -> Vec<(String, bool)> {
    let mut entries: Vec<(String, bool)> = Vec::new();
    for key in live_keys(model).iter().filter(|k| k.starts_with(prefix)) {
        let entry = match common(key, prefix, delimiter) {
            Some(c) => (c, true),
            None => (key.clone(), false),
        };
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    entries.sort();
    entries
}

/// Every entry of ListObjectVersions, computed naively.
fn model_versions(model: &Model, prefix: &str, delimiter: Option<&str>) -> Vec<Listed> {
    let mut entries: Vec<Listed> = Vec::new();
    for (key, versions) in model.iter().filter(|(k, _)| k.starts_with(prefix)) {
        match common(key, prefix, delimiter) {
            Some(c) => {
                if !entries.contains(&Listed::Prefix(c.clone())) {
                    entries.push(Listed::Prefix(c));
                }
            }
            None => {
                for (i, v) in versions.iter().enumerate() {
                    entries.push(version(key, v.id, i == 0, v.marker, &v.etag));
                }
            }
        }
    }
    // Common prefixes sort among keys by name (versions of one key keep
    // their order: the sort is stable).
    entries.sort_by(|a, b| name_of(a).cmp(name_of(b)));
    entries
}

fn name_of(entry: &Listed) -> &str {
    match entry {
        Listed::Version { key, .. } => key,
        Listed::Prefix(p) => p,
    }
}

fn model_rename_directory(model: &mut Model, source: &str, destination: &str) -> bool {
    if destination.starts_with(source) {
        return false;
    }
    let moved: Vec<String> = model
        .keys()
        .filter(|k| k.starts_with(source))
        .cloned()
        .collect();
    if moved.is_empty() || model.keys().any(|k| k.starts_with(destination)) {
        return false;
    }
    for key in moved {
        let versions = model.remove(&key).expect("listed");
        model.insert(format!("{destination}{}", &key[source.len()..]), versions);
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    #[test]
    fn listings_match_a_model_of_versions(
        ops in proptest::collection::vec(op_strategy(), 1..40),
        prefixes in proptest::collection::vec("[ab/.-]{0,2}", 4),
        page_size in 1..4usize,
    ) {
        let mut f = Fixture::with_bucket(BUCKET);
        let mut model = Model::new();
        let mut versioning = Versioning::Unversioned;
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Put(key) => {
                    let etag = format!("e{i}");
                    let committed = f.put(key, &etag);
                    let null = versioning != Versioning::Enabled;
                    let versions = model.entry(key.clone()).or_default();
                    if null {
                        versions.retain(|v| v.id != VersionId::Null);
                    }
                    prop_assert_eq!(committed.version_id() == VersionId::Null, null);
                    versions.insert(0, ModelVersion { id: committed.version_id(), etag, marker: false });
                }
                Op::Delete(key) => {
                    let outcome = f.delete(key, None);
                    if versioning == Versioning::Unversioned {
                        prop_assert_eq!(outcome, DeleteOutcome { version_id: None, delete_marker: false });
                        model.remove(key);
                    } else {
                        let id = outcome.version_id.expect("marker id");
                        prop_assert!(outcome.delete_marker);
                        let versions = model.entry(key.clone()).or_default();
                        if id == VersionId::Null {
                            versions.retain(|v| v.id != VersionId::Null);
                        }
                        versions.insert(0, ModelVersion { id, etag: String::new(), marker: true });
                    }
                }
                Op::DeleteVersion(key, n) => {
                    let versions = model.get(key).cloned().unwrap_or_default();
                    let target = match versions.get(n % versions.len().max(1)) {
                        Some(v) if *n != 7 => v.clone(),
                        _ => ModelVersion {
                            id: VersionId::At { generation: 1_000_000, position: 0 },
                            etag: String::new(),
                            marker: false,
                        },
                    };
                    let outcome = f.delete(key, Some(target.id));
                    prop_assert_eq!(outcome, DeleteOutcome { version_id: Some(target.id), delete_marker: target.marker });
                    if let Some(versions) = model.get_mut(key) {
                        versions.retain(|v| v.id != target.id);
                        if versions.is_empty() {
                            model.remove(key);
                        }
                    }
                }
                Op::Versioning(enable) => {
                    let wanted = if *enable { Versioning::Enabled } else { Versioning::Suspended };
                    f.set_versioning(wanted).expect("set versioning");
                    versioning = wanted;
                }
                Op::RenameDirectory(source, destination) => {
                    let result = f.apply(Command::RenameDirectory(RenameDirectory {
                        bucket: BUCKET.to_owned(),
                        source: source.clone(),
                        destination: destination.clone(),
                        replace: false,
                        now_ms: 1,
                        client_token: None,
                    }));
                    let moved = model_rename_directory(&mut model, source, destination);
                    prop_assert_eq!(result.is_ok(), moved, "{:?}", result);
                }
            }
            prop_assert_eq!(f.keys(), live_keys(&model));
            prop_assert_eq!(f.all_versions(), model_versions(&model, "", None));
        }
        let version_count: usize = model.values().map(Vec::len).sum();
        prop_assert_eq!(f.table_len(schema::VERSIONS), version_count as u64);
        for key in model.keys() {
            let current = f.get_version(key, None).expect("current");
            prop_assert_eq!(current.version_id(), model[key][0].id);
        }

        for prefix in &prefixes {
            for delimiter in [None, Some("/"), Some("-")] {
                // ListObjects, page by page.
                let expected = model_list(&model, prefix, delimiter);
                let mut got = Vec::new();
                let mut after: Option<String> = None;
                for _ in 0..=expected.len() {
                    let page = f.list(prefix, delimiter, after.as_deref(), page_size);
                    let done = page.len() < page_size;
                    after = page.last().map(|(name, _)| name.clone());
                    got.extend(page);
                    if done || after.is_none() {
                        break;
                    }
                }
                prop_assert_eq!(&got, &expected, "list {:?} {:?}", prefix, delimiter);

                // ListObjectVersions, page by page with both markers.
                let expected = model_versions(&model, prefix, delimiter);
                let mut request = VersionListRequest {
                    prefix: prefix.clone(),
                    delimiter: delimiter.map(str::to_owned),
                    max_keys: page_size,
                    ..VersionListRequest::default()
                };
                let mut got = Vec::new();
                for _ in 0..=expected.len() {
                    let (entries, truncated) = f.versions_page(&request);
                    prop_assert!(entries.len() <= page_size);
                    let last = entries.last().cloned();
                    got.extend(entries);
                    if !truncated {
                        break;
                    }
                    match last.expect("a truncated page has entries") {
                        Listed::Version { key, id, .. } => {
                            request.key_marker = Some(key);
                            request.version_id_marker = Some(id);
                        }
                        Listed::Prefix(p) => {
                            request.key_marker = Some(p);
                            request.version_id_marker = None;
                        }
                    }
                }
                prop_assert_eq!(&got, &expected, "versions {:?} {:?}", prefix, delimiter);
            }
        }
    }
}
