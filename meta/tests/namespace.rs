//! The namespace state machine and listing against redb: unit cases and a
//! model-based property test (a `BTreeMap` of keys, listed naively).

use std::collections::BTreeMap;

use arbor_meta::chunks::{self, CollectOrphans, GcAck, UpdateChunkReplicas};
use arbor_meta::command::{Command, CommandResult, Reply, apply_command, apply_commands};
use arbor_meta::listing::ListObjects;
use arbor_meta::namespace::{
    CreateBucket, DeleteBucket, DeleteObject, DeleteObjectIf, DeleteObjectsIf, GetBucketTags,
    GetLocatedVersion, GetReadableVersion, LocatedVersion, PutBucketTags, PutObject, ReadSpan,
    SetOverwritePolicy, get_bucket, get_object, list_buckets,
};
use arbor_meta::op::Query as _;
use arbor_meta::reclaim::{DeleteDirectory, ReclaimBatch};
use arbor_meta::records::{
    ChunkId, ChunkOwnership, ChunkPlacement, ChunkRecord, ChunkRef, DeleteCondition, ListEntry,
    ListPage, ListRequest, ObjectData, ObjectVersion, OverwritePolicy, WriteCondition,
};
use arbor_meta::rename::{ObjectCondition, RenameDirectory, RenameObject};
use arbor_meta::schema::{
    self, ChildRecord, GcOrigin, GcRecord, decode_record, split_child_key, split_gc_key,
};
use arbor_meta::{BucketInfo, MetaError};
use proptest::prelude::*;
use redb::{ReadableDatabase, ReadableTableMetadata};

mod common;
use common::{Fixture, inline_version};

const BUCKET: &str = "bucket";

impl Fixture {
    /// Applies `commands` as one log entry (one index, one transaction).
    fn apply_entry(&mut self, commands: &[Command]) -> Vec<CommandResult> {
        self.log_index += 1;
        let txn = self.db.begin_write().expect("begin");
        let results = match commands {
            [command] => vec![apply_command(&txn, self.log_index, 0, command).expect("apply")],
            _ => apply_commands(&txn, self.log_index, commands).expect("apply"),
        };
        txn.commit().expect("commit");
        results
    }

    fn rename(&mut self, source: &str, destination: &str) -> CommandResult {
        self.apply(Command::RenameObject(RenameObject {
            bucket: BUCKET.to_owned(),
            source: source.to_owned(),
            destination: destination.to_owned(),
            source_condition: ObjectCondition::default(),
            destination_condition: ObjectCondition::default(),
            client_token: None,
        }))
    }

    fn delete_directory(&mut self, prefix: &str) -> CommandResult {
        self.apply(Command::DeleteDirectory(DeleteDirectory {
            bucket: BUCKET.to_owned(),
            prefix: prefix.to_owned(),
            deleted_ms: 1,
        }))
    }

    fn reclaim(&mut self, limit: u32) -> CommandResult {
        self.apply(Command::ReclaimBatch(ReclaimBatch { limit }))
    }

    /// Runs the reclaimer until nothing is left; how many batches it took.
    fn reclaim_all(&mut self, limit: u32) -> usize {
        for batches in 1..10_000 {
            match self.reclaim(limit) {
                Ok(Reply::ReclaimBatch(progress)) if progress.pending == 0 => return batches,
                Ok(Reply::ReclaimBatch(_)) => {}
                other => panic!("reclaim: {other:?}"),
            }
        }
        panic!("the reclaimer did not finish");
    }

    fn rename_directory(&mut self, source: &str, destination: &str) -> CommandResult {
        self.apply(Command::RenameDirectory(RenameDirectory {
            bucket: BUCKET.to_owned(),
            source: source.to_owned(),
            destination: destination.to_owned(),
            replace: false,
            now_ms: 1,
            client_token: None,
        }))
    }

    fn put(
        &mut self,
        key: &str,
        version: ObjectVersion,
        condition: WriteCondition,
    ) -> CommandResult {
        self.apply(Command::PutObject(PutObject {
            lock: None,
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
            version,
            condition,
            ownership: ChunkOwnership::Fresh,
            placements: Vec::new(),
        }))
    }

    fn put_inline(&mut self, key: &str) -> ObjectVersion {
        match self.put(
            key,
            inline_version(&format!("etag-{key}")),
            WriteCondition::None,
        ) {
            Ok(Reply::PutObject(version)) => version,
            other => panic!("put {key:?}: {other:?}"),
        }
    }

    fn delete(&mut self, key: &str) -> CommandResult {
        self.apply(Command::DeleteObject(DeleteObject {
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
        }))
    }

    fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> ListPage {
        self.try_list(BUCKET, prefix, delimiter, start_after, max_keys)
            .expect("list")
    }

    fn try_list(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<ListPage, MetaError> {
        let request = ListRequest {
            prefix: prefix.to_owned(),
            delimiter: delimiter.map(str::to_owned),
            start_after: start_after.map(str::to_owned),
            max_keys,
        };
        // This suite's buckets never have versioning, so every page is
        // bounded work and answered on the calling task.
        ListObjects {
            bucket: bucket.to_owned(),
            request,
        }
        .read_inline(&self.db.begin_read().expect("read"))
        .expect("an unversioned bucket's listing runs inline")
    }

    fn get(&self, key: &str) -> Result<ObjectVersion, MetaError> {
        get_object(&self.db.begin_read().expect("read"), BUCKET, key)
    }

    /// Every key in the bucket, by listing.
    fn keys(&self) -> Vec<String> {
        names(&self.list("", None, None, 1000))
    }

    fn table_len(&self, table: schema::StateTable) -> u64 {
        let txn = self.db.begin_read().expect("read");
        txn.open_table(table).expect("table").len().expect("len")
    }

    fn gc_queue(&self) -> Vec<((u64, u32), GcRecord)> {
        let txn = self.db.begin_read().expect("read");
        let table = txn.open_table(schema::GC_QUEUE).expect("table");
        table
            .range::<&[u8]>(..)
            .expect("range")
            .map(|row| {
                let (key, value) = row.expect("row");
                (
                    split_gc_key(key.value()).expect("gc key"),
                    decode_record(value.value()).expect("gc record"),
                )
            })
            .collect()
    }

    /// Checks the tree's structural invariants: every directory holds a
    /// child, every child row has an inode row, every object one version.
    fn check_tree(&self) {
        let txn = self.db.begin_read().expect("read");
        let children = txn.open_table(schema::CHILDREN).expect("table");
        let mut parents = std::collections::BTreeSet::new();
        let mut directories = Vec::new();
        let mut objects = 0;
        for row in children.range::<&[u8]>(..).expect("range") {
            let (key, value) = row.expect("row");
            let (parent, stored_name) = split_child_key(key.value()).expect("child key");
            parents.insert(parent);
            match decode_record::<ChildRecord>(value.value()).expect("child record") {
                ChildRecord::Directory { inode } => {
                    assert!(
                        stored_name.ends_with(b"/"),
                        "directory name {stored_name:?}"
                    );
                    directories.push((parent, inode));
                }
                ChildRecord::Object(_) => {
                    assert!(!stored_name.contains(&b'/'), "object name {stored_name:?}");
                    objects += 1;
                }
            }
        }
        // Directories reachable from the root hold something; those of
        // subtrees a recursive delete detached may be emptied in steps.
        let mut reachable = std::collections::BTreeSet::from([schema::ROOT_INODE]);
        let mut frontier = vec![schema::ROOT_INODE];
        while let Some(at) = frontier.pop() {
            for (parent, inode) in &directories {
                if *parent == at && reachable.insert(*inode) {
                    frontier.push(*inode);
                }
            }
        }
        for (parent, inode) in &directories {
            // Bucket directories (children of the root) may be empty.
            assert!(
                *parent == schema::ROOT_INODE
                    || !reachable.contains(inode)
                    || parents.contains(inode),
                "empty directory inode {inode}"
            );
        }
        let inodes = txn.open_table(schema::INODES).expect("table");
        let versions = txn.open_table(schema::VERSIONS).expect("table");
        let detached = txn
            .open_table(schema::RECLAIM)
            .expect("table")
            .len()
            .expect("len");
        assert_eq!(
            inodes.len().expect("len"),
            children.len().expect("len") + detached,
            "every inode has a row, but the detached roots"
        );
        assert_eq!(versions.len().expect("len"), objects);
    }
}

fn chunk(n: u8) -> ChunkRef {
    ChunkRef {
        id: ChunkId([n; 16]),
        offset: 0,
        size: 1,
        sha256: [n; 32],
    }
}

fn chunked_version(etag: &str, chunks: Vec<ChunkRef>) -> ObjectVersion {
    ObjectVersion {
        data: ObjectData::Chunks(chunks),
        ..inline_version(etag)
    }
}

fn names(page: &ListPage) -> Vec<String> {
    page.entries.iter().map(|e| e.name().to_owned()).collect()
}

/// Names with common prefixes marked by a trailing `*`.
fn marked(page: &ListPage) -> Vec<String> {
    page.entries
        .iter()
        .map(|e| match e {
            ListEntry::Object(o) => o.key.clone(),
            ListEntry::CommonPrefix(p) => format!("{p}*"),
        })
        .collect()
}

#[test]
fn keys_list_in_byte_order() {
    let mut f = Fixture::with_bucket(BUCKET);
    let mut keys = vec![
        "a", "a-b", "a/b", "a0", "a/", "a//b", "é", "日本", "/lead", "a/b/", "a/b/c", ".", "..",
        "a b", "z",
    ];
    for key in &keys {
        f.put_inline(key);
    }
    keys.sort();
    assert_eq!(f.keys(), keys);
    assert_eq!(f.keys()[..4], [".", "..", "/lead", "a"]); // `.` < `/`
    for key in &keys {
        assert_eq!(f.get(key).expect("get").etag, format!("etag-{key}"));
    }
    f.check_tree();
}

#[test]
fn directories_come_and_go_with_their_keys() {
    let mut f = Fixture::with_bucket(BUCKET);
    let base_children = f.table_len(schema::CHILDREN);
    f.put_inline("a/b/c");
    f.put_inline("a/x");
    assert_eq!(f.table_len(schema::CHILDREN), base_children + 4); // a/, b/, c, x
    assert_eq!(f.delete("a/b/c"), Ok(Reply::DeleteObject(true)));
    // b/ is gone, a/ still holds x.
    assert_eq!(f.table_len(schema::CHILDREN), base_children + 2);
    assert_eq!(
        f.list("", Some("/"), None, 10).entries,
        vec![ListEntry::CommonPrefix("a/".to_owned())]
    );
    assert_eq!(f.delete("a/x"), Ok(Reply::DeleteObject(true)));
    assert_eq!(f.table_len(schema::CHILDREN), base_children);
    assert_eq!(f.table_len(schema::INODES), base_children);
    assert_eq!(f.delete("a/x"), Ok(Reply::DeleteObject(false)));
    assert_eq!(f.delete("nothing/here"), Ok(Reply::DeleteObject(false)));
    assert!(f.keys().is_empty());
    f.check_tree();
}

#[test]
fn markers_keep_their_directory() {
    let mut f = Fixture::with_bucket(BUCKET);
    f.put_inline("photos/");
    f.put_inline("photos/x");
    assert_eq!(f.keys(), ["photos/", "photos/x"]);
    assert_eq!(marked(&f.list("", Some("/"), None, 10)), ["photos/*"]);
    assert_eq!(
        marked(&f.list("photos/", Some("/"), None, 10)),
        ["photos/", "photos/x"]
    );
    f.delete("photos/x").expect("delete");
    assert_eq!(f.keys(), ["photos/"]);
    f.delete("photos/").expect("delete");
    assert!(f.keys().is_empty());
    f.check_tree();
    // `a//` is the marker in directory `a/` + `` + `/`.
    f.put_inline("a//");
    assert_eq!(f.get("a//").expect("get").etag, "etag-a//");
    assert_eq!(f.get("a/"), Err(MetaError::NoSuchKey("a/".to_owned())));
    assert_eq!(marked(&f.list("a/", Some("/"), None, 10)), ["a//*"]);
}

#[test]
fn bucket_lifecycle() {
    let mut f = Fixture::empty();
    let create = |name: &str| {
        Command::CreateBucket(CreateBucket {
            name: name.to_owned(),
            created_ms: 5,
        })
    };
    let info = BucketInfo {
        overwrite: arbor_meta::OverwritePolicy::Allow,
        name: "zeta".to_owned(),
        created_ms: 5,
    };
    assert_eq!(
        f.apply(create("zeta")),
        Ok(Reply::CreateBucket(info.clone()))
    );
    assert_eq!(
        f.apply(create("alpha")),
        Ok(Reply::CreateBucket(BucketInfo {
            overwrite: arbor_meta::OverwritePolicy::Allow,
            name: "alpha".to_owned(),
            created_ms: 5
        }))
    );
    assert_eq!(
        f.apply(create("zeta")),
        Err(MetaError::BucketAlreadyExists("zeta".to_owned()))
    );
    assert_eq!(
        f.apply(create("Bad_Name")),
        Err(MetaError::InvalidBucketName("Bad_Name".to_owned()))
    );
    {
        let txn = f.db.begin_read().expect("read");
        assert_eq!(get_bucket(&txn, "zeta"), Ok(info));
        let listed: Vec<String> = list_buckets(&txn)
            .expect("list")
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(listed, ["alpha", "zeta"]);
    }
    let put = Command::PutObject(PutObject {
        lock: None,
        bucket: "zeta".to_owned(),
        key: "k".to_owned(),
        version: inline_version("e"),
        condition: WriteCondition::None,
        ownership: ChunkOwnership::Fresh,
        placements: Vec::new(),
    });
    f.apply(put).expect("put");
    let delete = |name: &str| {
        Command::DeleteBucket(DeleteBucket {
            name: name.to_owned(),
        })
    };
    assert_eq!(
        f.apply(delete("zeta")),
        Err(MetaError::BucketNotEmpty("zeta".to_owned()))
    );
    f.apply(Command::DeleteObject(DeleteObject {
        bucket: "zeta".to_owned(),
        key: "k".to_owned(),
    }))
    .expect("delete");
    assert_eq!(f.apply(delete("zeta")), Ok(Reply::DeleteBucket(())));
    assert_eq!(
        f.apply(delete("zeta")),
        Err(MetaError::NoSuchBucket("zeta".to_owned()))
    );
    let missing = MetaError::NoSuchBucket("zeta".to_owned());
    assert_eq!(
        get_bucket(&f.db.begin_read().expect("read"), "zeta"),
        Err(missing.clone())
    );
    assert_eq!(f.try_list("zeta", "", None, None, 10), Err(missing.clone()));
    assert_eq!(f.try_list("zeta", "", None, None, 0), Err(missing.clone()));
    assert_eq!(
        get_object(&f.db.begin_read().expect("read"), "zeta", "k"),
        Err(missing.clone())
    );
    let put = Command::PutObject(PutObject {
        lock: None,
        bucket: "zeta".to_owned(),
        key: "k".to_owned(),
        version: inline_version("e"),
        condition: WriteCondition::None,
        ownership: ChunkOwnership::Fresh,
        placements: Vec::new(),
    });
    assert_eq!(f.apply(put), Err(missing));
    // Only alpha's directory remains.
    assert_eq!(f.table_len(schema::CHILDREN), 1);
    assert_eq!(f.table_len(schema::INODES), 1);
    // The name can be reused.
    f.apply(create("zeta")).expect("recreate");
    assert!(
        f.try_list("zeta", "", None, None, 10)
            .expect("list")
            .entries
            .is_empty()
    );
}

#[test]
fn conditions_are_checked_in_apply() {
    let mut f = Fixture::with_bucket(BUCKET);
    let children = f.table_len(schema::CHILDREN);
    let if_match = |etag: &str| WriteCondition::IfMatch(etag.to_owned());
    assert_eq!(
        f.put("d/k", inline_version("e1"), if_match("e1")),
        Err(MetaError::NoSuchKey("d/k".to_owned()))
    );
    // The failed command created no directory.
    assert_eq!(f.table_len(schema::CHILDREN), children);
    let created = f
        .put("d/k", inline_version("e1"), WriteCondition::IfNoneMatchAny)
        .expect("create");
    assert_eq!(
        f.put("d/k", inline_version("e2"), WriteCondition::IfNoneMatchAny),
        Err(MetaError::PreconditionFailed)
    );
    assert_eq!(
        f.put("d/k", inline_version("e2"), if_match("other")),
        Err(MetaError::PreconditionFailed)
    );
    assert_eq!(
        f.get("d/k"),
        Ok(match created {
            Reply::PutObject(v) => v,
            other => panic!("{other:?}"),
        })
    );
    let replaced = f
        .put("d/k", inline_version("e2"), if_match("e1"))
        .expect("replace");
    let Reply::PutObject(replaced) = replaced else {
        panic!("{replaced:?}")
    };
    assert_eq!(replaced.generation, f.log_index);
    assert_eq!(f.get("d/k"), Ok(replaced));
    assert_eq!(
        f.put("", inline_version("e"), WriteCondition::None),
        Err(MetaError::InvalidKey("key is empty".to_owned()))
    );
    assert_eq!(
        f.put(&"k".repeat(1025), inline_version("e"), WriteCondition::None),
        Err(MetaError::KeyTooLong)
    );
    f.check_tree();
}

#[test]
fn delete_conditions_are_checked_in_apply() {
    let mut f = Fixture::with_bucket(BUCKET);
    let delete_if = |f: &mut Fixture, key: &str, condition: DeleteCondition| {
        f.apply(Command::DeleteObjectIf(DeleteObjectIf {
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
            condition,
        }))
    };
    let etag = |e: &str| DeleteCondition::ETag(e.to_owned());
    // A missing key fails either condition (AWS: 404 NoSuchKey).
    assert_eq!(
        delete_if(&mut f, "d/k", DeleteCondition::Exists),
        Err(MetaError::NoSuchKey("d/k".to_owned()))
    );
    assert_eq!(
        delete_if(&mut f, "d/k", etag("x")),
        Err(MetaError::NoSuchKey("d/k".to_owned()))
    );
    let version = f.put_inline("d/k");
    assert_eq!(
        delete_if(&mut f, "d/k", etag("other")),
        Err(MetaError::PreconditionFailed)
    );
    assert_eq!(f.get("d/k"), Ok(version.clone()));
    assert_eq!(
        delete_if(&mut f, "d/k", etag(&version.etag)),
        Ok(Reply::DeleteObjectIf(true))
    );
    assert!(f.get("d/k").is_err());
    f.put_inline("d/k");
    assert_eq!(
        delete_if(&mut f, "d/k", DeleteCondition::Exists),
        Ok(Reply::DeleteObjectIf(true))
    );
    f.check_tree();

    // DeleteObjectsIf: each key's condition on its own.
    let a = f.put_inline("a");
    f.put_inline("b");
    f.put_inline("c");
    let outcome = f.apply(Command::DeleteObjectsIf(DeleteObjectsIf {
        bucket: BUCKET.to_owned(),
        objects: vec![
            ("a".to_owned(), Some(etag(&a.etag))),
            ("b".to_owned(), Some(etag("stale"))),
            ("c".to_owned(), None),
            ("gone".to_owned(), Some(DeleteCondition::Exists)),
            ("gone2".to_owned(), None),
        ],
    }));
    assert_eq!(
        outcome,
        Ok(Reply::DeleteObjectsIf(vec![
            Ok(true),
            Err(MetaError::PreconditionFailed),
            Ok(true),
            Err(MetaError::NoSuchKey("gone".to_owned())),
            Ok(false),
        ]))
    );
    assert_eq!(f.keys(), vec!["b".to_owned()]);
    f.check_tree();
}

#[test]
fn bucket_tags_are_stored_replaced_and_go_with_the_bucket() {
    use arbor_meta::op::Query;
    let mut f = Fixture::with_bucket(BUCKET);
    let read = |f: &Fixture, bucket: &str| {
        let txn = f.db.begin_read().expect("read");
        GetBucketTags {
            bucket: bucket.to_owned(),
        }
        .read(&txn)
    };
    let put = |f: &mut Fixture, bucket: &str, tags: &[(&str, &str)]| {
        f.apply(Command::PutBucketTags(PutBucketTags {
            bucket: bucket.to_owned(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }))
    };
    assert_eq!(read(&f, BUCKET), Ok(Vec::new()));
    assert_eq!(
        read(&f, "absent"),
        Err(MetaError::NoSuchBucket("absent".to_owned()))
    );
    assert_eq!(
        put(&mut f, "absent", &[("a", "1")]),
        Err(MetaError::NoSuchBucket("absent".to_owned()))
    );
    put(&mut f, BUCKET, &[("a", "1"), ("b", "2")]).expect("put");
    assert_eq!(
        read(&f, BUCKET),
        Ok(vec![("a".into(), "1".into()), ("b".into(), "2".into())])
    );
    put(&mut f, BUCKET, &[]).expect("clear");
    assert_eq!(read(&f, BUCKET), Ok(Vec::new()));
    assert_eq!(f.table_len(schema::BUCKET_TAGS), 0);
    put(&mut f, BUCKET, &[("a", "1")]).expect("put");
    f.apply(Command::DeleteBucket(DeleteBucket {
        name: BUCKET.to_owned(),
    }))
    .expect("delete bucket");
    assert_eq!(f.table_len(schema::BUCKET_TAGS), 0);
}

#[test]
fn replaced_and_deleted_chunks_are_queued_for_gc() {
    let mut f = Fixture::with_bucket(BUCKET);
    let put = |key: &str, version: ObjectVersion| {
        Command::PutObject(PutObject {
            lock: None,
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
            version,
            condition: WriteCondition::None,
            ownership: ChunkOwnership::Fresh,
            placements: Vec::new(),
        })
    };
    f.apply(put("big", chunked_version("v1", vec![chunk(1), chunk(2)])))
        .expect("put");
    let first = f.log_index;
    f.apply(put("small", inline_version("s"))).expect("put");
    f.apply(put("small", inline_version("s2")))
        .expect("inline replaced");
    assert!(f.gc_queue().is_empty(), "inline versions have no chunks");

    // Chunk 2 is shared with the replacement: only chunk 1 is queued.
    f.apply(put("big", chunked_version("v2", vec![chunk(2), chunk(3)])))
        .expect("put");
    let second = f.log_index;
    let expected = GcRecord {
        origin: GcOrigin::Version {
            inode: f.gc_inode("big"),
            generation: first,
            position: 0,
        },
        chunks: vec![ChunkId([1; 16])],
    };
    assert_eq!(f.gc_queue(), vec![((second, 0), expected)]);

    // Two retirements in one log entry get consecutive sequence numbers.
    let results = f.apply_entry(&[
        put("big", chunked_version("v3", vec![chunk(4)])),
        Command::DeleteObject(DeleteObject {
            bucket: BUCKET.to_owned(),
            key: "big".to_owned(),
        }),
    ]);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let queue = f.gc_queue();
    assert_eq!(queue.len(), 3);
    let (keys, records): (Vec<_>, Vec<_>) = queue.into_iter().skip(1).unzip();
    assert_eq!(keys, [(f.log_index, 0), (f.log_index, 1)]);
    assert_eq!(records[0].chunks, [ChunkId([2; 16]), ChunkId([3; 16])]);
    assert!(
        matches!(records[0].origin, GcOrigin::Version { generation, .. } if generation == second)
    );
    assert_eq!(records[1].chunks, [ChunkId([4; 16])]);
    assert!(
        matches!(records[1].origin, GcOrigin::Version { generation, .. } if generation == f.log_index)
    );
    assert_eq!(f.get("big"), Err(MetaError::NoSuchKey("big".to_owned())));
    f.check_tree();
}

#[test]
fn two_puts_of_one_key_in_one_entry_make_distinct_versions() {
    let mut f = Fixture::with_bucket(BUCKET);
    let put = |version: ObjectVersion| {
        Command::PutObject(PutObject {
            lock: None,
            bucket: BUCKET.to_owned(),
            key: "k".to_owned(),
            version,
            condition: WriteCondition::None,
            ownership: ChunkOwnership::Fresh,
            placements: Vec::new(),
        })
    };
    let results = f.apply_entry(&[
        put(chunked_version("first", vec![chunk(1), chunk(2)])),
        put(chunked_version("second", vec![chunk(2), chunk(3)])),
    ]);
    let versions: Vec<ObjectVersion> = results
        .into_iter()
        .map(|r| match r {
            Ok(Reply::PutObject(v)) => v,
            other => panic!("put: {other:?}"),
        })
        .collect();
    // One entry, one generation: the log index.
    assert_eq!(versions[0].generation, f.log_index);
    assert_eq!(versions[1].generation, f.log_index);
    assert_ne!(versions[0], versions[1]);
    // The later command wins.
    assert_eq!(f.get("k"), Ok(versions[1].clone()));
    let inode = f.gc_inode("k");
    // The current pointer names the second row; the first was retired, not
    // overwritten: its chunks (minus the shared one) are queued under its
    // own position.
    assert_eq!(f.version_rows(inode), [(f.log_index, 1)]);
    assert_eq!(
        f.gc_queue(),
        vec![(
            (f.log_index, 0),
            GcRecord {
                origin: GcOrigin::Version {
                    inode,
                    generation: f.log_index,
                    position: 0,
                },
                chunks: vec![ChunkId([1; 16])],
            }
        )]
    );
    // Deleting retires the second version under its position.
    f.apply(Command::DeleteObject(DeleteObject {
        bucket: BUCKET.to_owned(),
        key: "k".to_owned(),
    }))
    .expect("delete");
    let queue = f.gc_queue();
    assert_eq!(queue.len(), 2);
    assert!(matches!(
        queue[1].1.origin,
        GcOrigin::Version { generation, position: 1, .. } if generation == versions[1].generation
    ));
    assert_eq!(queue[1].1.chunks, [ChunkId([2; 16]), ChunkId([3; 16])]);
    assert!(f.version_rows(inode).is_empty());
    f.check_tree();
}

impl Fixture {
    /// `(generation, position)` of every version row of `inode`.
    fn version_rows(&self, inode: u64) -> Vec<(u64, u32)> {
        let txn = self.db.begin_read().expect("read");
        let versions = txn.open_table(schema::VERSIONS).expect("table");
        let mut rows = Vec::new();
        for row in versions.range::<&[u8]>(..).expect("range") {
            let (k, _) = row.expect("row");
            let k = k.value();
            assert_eq!(k.len(), 20, "version key length");
            if k[..8] == inode.to_be_bytes() {
                let generation = u64::from_be_bytes(k[8..16].try_into().expect("8 bytes"));
                let position = u32::from_be_bytes(k[16..].try_into().expect("4 bytes"));
                rows.push((generation, position));
            }
        }
        rows
    }

    fn gc_inode(&self, key: &str) -> u64 {
        // Only for keys without `/`: any object row with that name.
        let txn = self.db.begin_read().expect("read");
        let children = txn.open_table(schema::CHILDREN).expect("table");
        for row in children.range::<&[u8]>(..).expect("range") {
            let (k, v) = row.expect("row");
            let (_, name) = split_child_key(k.value()).expect("key");
            if name == key.as_bytes()
                && let ChildRecord::Object(entry) = decode_record(v.value()).expect("record")
            {
                return entry.inode;
            }
        }
        panic!("no object {key:?}")
    }
}

#[test]
fn delimiter_listing_and_pagination() {
    let mut f = Fixture::with_bucket(BUCKET);
    for key in [
        "photos/2024/a",
        "photos/2024/b",
        "photos/2025/c",
        "photos/x",
        "phone",
        "pi",
        "p",
    ] {
        f.put_inline(key);
    }
    assert_eq!(
        marked(&f.list("", Some("/"), None, 10)),
        ["p", "phone", "photos/*", "pi"]
    );
    assert_eq!(
        marked(&f.list("pho", Some("/"), None, 10)),
        ["phone", "photos/*"]
    );
    assert_eq!(
        marked(&f.list("photos/20", Some("/"), None, 10)),
        ["photos/2024/*", "photos/2025/*"]
    );
    assert_eq!(
        marked(&f.list("photos/2024/", Some("/"), None, 10)),
        ["photos/2024/a", "photos/2024/b"]
    );
    assert_eq!(
        marked(&f.list("photos/2024/a", Some("/"), None, 10)),
        ["photos/2024/a"]
    );
    assert!(
        f.list("photos/2026", Some("/"), None, 10)
            .entries
            .is_empty()
    );

    // One entry per page; each page resumes after the previous one's last name.
    let mut pages = Vec::new();
    let mut start_after: Option<String> = None;
    loop {
        let page = f.list("photos/", Some("/"), start_after.as_deref(), 1);
        pages.push((marked(&page), page.is_truncated));
        if !page.is_truncated {
            break;
        }
        start_after = page.entries.last().map(|e| e.name().to_owned());
    }
    let expected = [
        (vec!["photos/2024/*".to_owned()], true),
        (vec!["photos/2025/*".to_owned()], true),
        (vec!["photos/x".to_owned()], false),
    ];
    assert_eq!(pages, expected);

    // A start_after inside a common prefix skips the rest of it.
    assert_eq!(
        marked(&f.list("", Some("/"), Some("photos/2024/a"), 10)),
        ["pi"]
    );
    assert_eq!(
        marked(&f.list("photos/", Some("/"), Some("photos/2024/a"), 10)),
        ["photos/2025/*", "photos/x"]
    );
    // Other delimiters.
    assert_eq!(
        marked(&f.list("", Some("o"), None, 10)),
        ["p", "pho*", "pi"]
    );
    assert_eq!(
        marked(&f.list("photos/", Some("4/"), None, 10)),
        ["photos/2024/*", "photos/2025/c", "photos/x"]
    );
    assert_eq!(
        marked(&f.list("", Some("/2"), None, 10)),
        ["p", "phone", "photos/2*", "photos/x", "pi"]
    );
    // Page limits.
    assert_eq!(
        f.list("", None, None, 0),
        ListPage {
            entries: vec![],
            is_truncated: false
        }
    );
    let full = f.list("", None, None, 7);
    assert_eq!((full.entries.len(), full.is_truncated), (7, false));
    let short = f.list("", None, None, 6);
    assert_eq!((short.entries.len(), short.is_truncated), (6, true));
    // An empty delimiter is no delimiter.
    assert_eq!(f.list("", Some(""), None, 10).entries.len(), 7);
}

#[test]
fn deletes_leave_no_empty_directory() {
    let mut f = Fixture::with_bucket(BUCKET);
    let keys = [
        "a/b/c/d", "a/b/c/", "a/b/e", "a//", "a/x", "b/c", "/", "//", "c",
    ];
    for key in keys {
        f.put_inline(key);
    }
    f.check_tree();
    for key in keys.iter().rev() {
        assert_eq!(f.delete(key), Ok(Reply::DeleteObject(true)), "{key}");
        f.check_tree();
    }
    // Only the bucket's own directory is left.
    assert_eq!(f.table_len(schema::CHILDREN), 1);
    assert_eq!(f.table_len(schema::INODES), 1);
    assert_eq!(f.table_len(schema::VERSIONS), 0);
}

#[test]
fn deepest_key_lists_and_deletes() {
    let mut f = Fixture::with_bucket(BUCKET);
    let deepest = "/".repeat(arbor_meta::limits::KEY_LEN_MAX);
    f.put_inline(&deepest);
    f.put_inline("//x");
    assert_eq!(f.keys(), [deepest.clone(), "//x".to_owned()]);
    assert_eq!(
        names(&f.list("", None, Some("//"), 10)),
        [deepest.clone(), "//x".to_owned()]
    );
    assert_eq!(names(&f.list("///", Some("/"), None, 10)), ["////"]);
    assert_eq!(
        f.get(&deepest).expect("get").etag,
        format!("etag-{deepest}")
    );
    f.delete(&deepest).expect("delete");
    assert_eq!(f.keys(), ["//x"]);
    f.check_tree();
}

// ------------------------------------------------------------- the model

/// Keys over an alphabet with `/`, `-`, `.`, `0`, letters and multi-byte
/// characters: empty segments, leading and trailing `/` come naturally.
fn key_strategy() -> impl Strategy<Value = String> {
    "[ab/.0é日-]{1,6}"
}

#[derive(Clone, Debug)]
enum Op {
    Put(String),
    Delete(String),
    Rename(String, String),
    RenameDirectory(String, String),
    DeleteDirectory(String),
    Reclaim(u32),
}

/// Directory prefixes over a small alphabet, so renames often hit.
fn prefix_strategy() -> impl Strategy<Value = String> {
    "([ab.]{0,2}/){1,2}"
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => key_strategy().prop_map(Op::Put),
        3 => key_strategy().prop_map(Op::Delete),
        2 => (key_strategy(), key_strategy()).prop_map(|(a, b)| Op::Rename(a, b)),
        2 => (prefix_strategy(), prefix_strategy()).prop_map(|(a, b)| Op::RenameDirectory(a, b)),
        1 => prefix_strategy().prop_map(Op::DeleteDirectory),
        1 => (1..4u32).prop_map(Op::Reclaim),
    ]
}

/// What the model says a directory rename does.
fn model_rename_directory(
    model: &mut BTreeMap<String, String>,
    source: &str,
    destination: &str,
) -> Result<(), MetaError> {
    if destination.starts_with(source) {
        return Err(MetaError::InvalidRequest(String::new()));
    }
    let moved: Vec<String> = model
        .keys()
        .filter(|k| k.starts_with(source))
        .cloned()
        .collect();
    if moved.is_empty() {
        return Err(MetaError::NoSuchKey(source.to_owned()));
    }
    if model.keys().any(|k| k.starts_with(destination)) {
        return Err(MetaError::DirectoryNotEmpty(destination.to_owned()));
    }
    for key in moved {
        let etag = model.remove(&key).expect("listed");
        model.insert(format!("{destination}{}", &key[source.len()..]), etag);
    }
    Ok(())
}

#[derive(Clone, Debug)]
struct Query {
    prefix: String,
    /// If set, (i, n): the prefix is instead the first n characters of the
    /// i-th stored key (mod the number of keys), so prefixes often match.
    prefix_of_key: Option<(usize, usize)>,
    delimiter: Option<String>,
    start_after: Option<String>,
    page_size: usize,
}

impl Query {
    fn prefix(&self, model: &BTreeMap<String, String>) -> String {
        match self.prefix_of_key {
            Some((i, n)) if !model.is_empty() => model
                .keys()
                .nth(i % model.len())
                .map(|k| k.chars().take(n).collect())
                .unwrap_or_default(),
            _ => self.prefix.clone(),
        }
    }
}

fn query_strategy() -> impl Strategy<Value = Query> {
    (
        "[ab/.0é-]{0,3}",
        proptest::option::of((0..64usize, 0..6usize)),
        prop_oneof![
            Just(None),
            Just(Some("/".to_owned())),
            Just(Some("-".to_owned())),
            Just(Some("a/".to_owned()))
        ],
        proptest::option::of("[ab/.0é日-]{0,5}"),
        1..5usize,
    )
        .prop_map(
            |(prefix, prefix_of_key, delimiter, start_after, page_size)| Query {
                prefix,
                prefix_of_key,
                delimiter,
                start_after,
                page_size,
            },
        )
}

/// Every entry of a listing, computed naively: (name, is common prefix).
fn model_entries(
    model: &BTreeMap<String, String>,
    prefix: &str,
    delimiter: Option<&str>,
) -> Vec<(String, bool)> {
    let mut entries: Vec<(String, bool)> = Vec::new();
    for key in model.keys().filter(|k| k.starts_with(prefix)) {
        let common = delimiter.and_then(|d| {
            key[prefix.len()..]
                .find(d)
                .map(|i| key[..prefix.len() + i + d.len()].to_owned())
        });
        let entry = match common {
            Some(common) => (common, true),
            None => (key.clone(), false),
        };
        if entries.last() != Some(&entry) {
            entries.push(entry);
        }
    }
    entries.sort();
    entries
}

fn model_page(
    model: &BTreeMap<String, String>,
    query: &Query,
    prefix: &str,
    start_after: Option<&str>,
) -> (Vec<(String, bool)>, bool) {
    let mut entries = model_entries(model, prefix, query.delimiter.as_deref());
    entries.retain(|(name, _)| start_after.is_none_or(|after| name.as_str() > after));
    let truncated = entries.len() > query.page_size;
    entries.truncate(query.page_size);
    (entries, truncated)
}

fn page_entries(page: &ListPage) -> Vec<(String, bool)> {
    page.entries
        .iter()
        .map(|e| (e.name().to_owned(), matches!(e, ListEntry::CommonPrefix(_))))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn listing_matches_a_model(
        ops in proptest::collection::vec(op_strategy(), 1..48),
        queries in proptest::collection::vec(query_strategy(), 12),
        probes in proptest::collection::vec(key_strategy(), 4),
    ) {
        let mut f = Fixture::with_bucket(BUCKET);
        let mut model: BTreeMap<String, String> = BTreeMap::new();
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Put(key) => {
                    let etag = format!("e{i}");
                    let result = f.put(key, inline_version(&etag), WriteCondition::None);
                    prop_assert!(result.is_ok(), "put {:?}: {:?}", key, result);
                    model.insert(key.clone(), etag);
                }
                Op::Delete(key) => {
                    let existed = model.remove(key).is_some();
                    prop_assert_eq!(f.delete(key), Ok(Reply::DeleteObject(existed)));
                }
                Op::Rename(source, destination) => {
                    let result = f.rename(source, destination);
                    match model.remove(source) {
                        Some(etag) => {
                            prop_assert_eq!(result, Ok(Reply::RenameObject(())));
                            model.insert(destination.clone(), etag);
                        }
                        None => prop_assert_eq!(result, Err(MetaError::NoSuchKey(source.clone()))),
                    }
                }
                Op::DeleteDirectory(prefix) => {
                    let before = model.len();
                    model.retain(|k, _| !k.starts_with(prefix.as_str()));
                    let existed = model.len() < before;
                    prop_assert_eq!(f.delete_directory(prefix), Ok(Reply::DeleteDirectory(existed)));
                }
                Op::Reclaim(limit) => {
                    prop_assert!(matches!(f.reclaim(*limit), Ok(Reply::ReclaimBatch(_))));
                }
                Op::RenameDirectory(source, destination) => {
                    let result = f.rename_directory(source, destination);
                    match model_rename_directory(&mut model, source, destination) {
                        Ok(()) => prop_assert_eq!(result, Ok(Reply::RenameDirectory(()))),
                        Err(MetaError::InvalidRequest(_)) => prop_assert!(
                            matches!(result, Err(MetaError::InvalidRequest(_))),
                            "{:?}", result
                        ),
                        Err(expected) => prop_assert_eq!(result, Err(expected)),
                    }
                }
            }
            // After every step: the same keys, and no empty directory.
            f.check_tree();
            let keys: Vec<String> = model.keys().cloned().collect();
            prop_assert_eq!(f.keys(), keys);
        }

        let all: Vec<String> = model.keys().cloned().collect();
        prop_assert_eq!(f.keys(), all.clone());
        // Once the reclaimer is done, only the model's keys hold metadata.
        f.reclaim_all(5);
        f.check_tree();
        prop_assert_eq!(f.keys(), all);
        prop_assert_eq!(f.table_len(schema::VERSIONS), u64::try_from(model.len()).expect("small"));
        for key in model.keys().chain(probes.iter()) {
            match model.get(key) {
                Some(etag) => prop_assert_eq!(&f.get(key).expect("get").etag, etag),
                None => prop_assert_eq!(f.get(key), Err(MetaError::NoSuchKey(key.clone()))),
            }
        }

        for query in &queries {
            let prefix = query.prefix(&model);
            let mut start_after = query.start_after.clone();
            for _ in 0..=model.len() + 1 {
                let page = f.list(&prefix, query.delimiter.as_deref(), start_after.as_deref(), query.page_size);
                let expected = model_page(&model, query, &prefix, start_after.as_deref());
                prop_assert_eq!(
                    (page_entries(&page), page.is_truncated), expected,
                    "query {:?} prefix {:?} start_after {:?} keys {:?}",
                    query, prefix, start_after, model.keys().collect::<Vec<_>>()
                );
                for entry in &page.entries {
                    if let ListEntry::Object(o) = entry {
                        prop_assert_eq!(Some(&o.etag), model.get(&o.key));
                    }
                }
                if !page.is_truncated {
                    break;
                }
                start_after = page.entries.last().map(|e| e.name().to_owned());
            }
        }
    }
}

/// Keys in a few wide directories (hundreds of children, more than one
/// range scan of the listing walker) beside narrow ones.
fn wide_key_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..400u32).prop_map(|n| format!("w/{n:03}")),
        (0..3u32, 0..40u32).prop_map(|(d, n)| format!("w/{d}/{n}")),
        (0..300u32).prop_map(|n| format!("flat{n}")),
        (0..2u32, 0..30u32).prop_map(|(d, n)| format!("n{d}/x/{n}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Pages of every size over directories wider than the walker's reads
    /// ahead: the same entries as the model, in the same order.
    #[test]
    fn listing_wide_directories_matches_a_model(
        keys in proptest::collection::btree_set(wide_key_strategy(), 1..700),
        deleted in proptest::collection::vec(any::<proptest::sample::Index>(), 0..40),
        page_size in prop_oneof![Just(1usize), 2..40usize, Just(17), Just(1000)],
        delimiter in prop_oneof![Just(None), Just(Some("/".to_owned())), Just(Some("0".to_owned()))],
        prefix in prop_oneof![Just(""), Just("w/"), Just("w/1"), Just("fl"), Just("n1/")],
        start_after in proptest::option::of(wide_key_strategy()),
    ) {
        let mut f = Fixture::with_bucket(BUCKET);
        let mut model: BTreeMap<String, String> = BTreeMap::new();
        for (i, key) in keys.iter().enumerate() {
            let etag = format!("e{i}");
            prop_assert!(f.put(key, inline_version(&etag), WriteCondition::None).is_ok());
            model.insert(key.clone(), etag);
        }
        let all: Vec<String> = keys.iter().cloned().collect();
        for index in &deleted {
            let key = index.get(&all);
            let existed = model.remove(key).is_some();
            prop_assert_eq!(f.delete(key), Ok(Reply::DeleteObject(existed)));
        }
        let query = Query {
            prefix: prefix.to_owned(),
            prefix_of_key: None,
            delimiter,
            start_after,
            page_size,
        };
        let mut start_after = query.start_after.clone();
        for _ in 0..=model.len() + 1 {
            let page = f.list(prefix, query.delimiter.as_deref(), start_after.as_deref(), page_size);
            let expected = model_page(&model, &query, prefix, start_after.as_deref());
            prop_assert_eq!((page_entries(&page), page.is_truncated), expected, "start_after {:?}", start_after);
            if !page.is_truncated {
                break;
            }
            start_after = page.entries.last().map(|e| e.name().to_owned());
        }
    }
}

// ------------------------------------------------------- chunk records

impl Fixture {
    fn records(&self, ids: &[ChunkId]) -> Vec<Option<ChunkRecord>> {
        chunks::chunk_records(&self.db.begin_read().expect("read"), ids).expect("records")
    }
    fn server_chunks(&self, server: u64) -> Vec<ChunkId> {
        chunks::server_chunks(&self.db.begin_read().expect("read"), server, None, 100)
            .expect("server chunks")
    }
    fn under_replicated(&self) -> Vec<ChunkId> {
        chunks::under_replicated(&self.db.begin_read().expect("read"), None, 100)
            .expect("under-replicated")
    }
    fn put_placed(&mut self, key: &str, chunks: Vec<ChunkRef>, placements: Vec<ChunkPlacement>) {
        let result = self.apply(Command::PutObject(PutObject {
            lock: None,
            bucket: BUCKET.to_owned(),
            key: key.to_owned(),
            version: chunked_version("e", chunks),
            condition: WriteCondition::None,
            ownership: ChunkOwnership::Fresh,
            placements,
        }));
        assert!(result.is_ok(), "put {key}: {result:?}");
    }
    fn sweep(&mut self, server: Option<u64>, candidates: &[ChunkId], now_ms: i64) -> Vec<ChunkId> {
        match self.apply(Command::CollectOrphans(CollectOrphans {
            server,
            candidates: candidates.to_vec(),
            now_ms,
            grace_ms: 1000,
        })) {
            Ok(Reply::CollectOrphans(ids)) => ids,
            other => panic!("collect orphans: {other:?}"),
        }
    }
}

fn chunk_at(ms: i64) -> ChunkRef {
    ChunkRef {
        id: ChunkId::created_at(ms),
        offset: 0,
        size: 5,
        sha256: [9; 32],
    }
}

fn placed(chunk: &ChunkRef, servers: &[u64]) -> ChunkPlacement {
    ChunkPlacement {
        id: chunk.id,
        factor: 3,
        servers: servers.to_vec(),
    }
}

#[test]
fn chunk_records_follow_references_and_replicas() {
    let mut f = Fixture::with_bucket(BUCKET);
    let (a, b) = (chunk_at(10_000), chunk_at(10_001));
    let b_second = ChunkRef {
        offset: 5,
        ..b.clone()
    };
    f.put_placed(
        "k",
        vec![a.clone(), b_second],
        vec![placed(&a, &[1, 2, 3]), placed(&b, &[2, 3])],
    );
    let records = f.records(&[a.id, b.id]);
    let record_a = records[0].clone().expect("a recorded");
    assert_eq!((record_a.refs, record_a.size, record_a.factor), (1, 5, 3));
    assert_eq!(record_a.servers, [1, 2, 3]);
    assert_eq!(f.server_chunks(1), [a.id]);
    assert_eq!(f.server_chunks(2), [a.id, b.id]);
    assert_eq!(f.under_replicated(), [b.id], "b has 2 of 3 replicas");

    // The healer adds a replica of b and moves one of a.
    let update = |id: ChunkId, add: Vec<u64>, remove: Vec<u64>| {
        Command::UpdateChunkReplicas(UpdateChunkReplicas { id, add, remove })
    };
    assert!(f.apply(update(b.id, vec![4], Vec::new())).is_ok());
    assert!(f.under_replicated().is_empty());
    match f.apply(update(a.id, vec![4], vec![1])) {
        Ok(Reply::UpdateChunkReplicas(record)) => assert_eq!(record.servers, [2, 3, 4]),
        other => panic!("update: {other:?}"),
    }
    assert!(f.server_chunks(1).is_empty());
    assert_eq!(f.server_chunks(4), [a.id, b.id]);
    assert!(
        f.apply(update(a.id, Vec::new(), vec![2, 3, 4])).is_err(),
        "a chunk keeps at least one replica"
    );

    // Deleting the object leaves the records (dying) until the collector
    // acknowledges, then removes them with their index rows.
    f.delete("k").expect("delete");
    let dying = f.records(&[a.id, b.id]);
    assert!(
        dying
            .iter()
            .all(|r| r.as_ref().is_some_and(|r| r.refs == 0))
    );
    assert!(
        f.apply(update(a.id, vec![5], Vec::new())).is_err(),
        "no healing of garbage"
    );
    let queued: Vec<_> = f.gc_queue().into_iter().map(|(key, _)| key).collect();
    f.apply(Command::GcAck(GcAck { records: queued }))
        .expect("ack");
    assert_eq!(f.records(&[a.id, b.id]), [None, None]);
    assert!(f.server_chunks(2).is_empty() && f.server_chunks(4).is_empty());
    assert_eq!(f.table_len(schema::CHUNK_REFS), 0);
}

/// The chunk records a GET's version read returns, by the bytes it asks.
fn located(f: &Fixture, key: &str, span: ReadSpan) -> LocatedVersion {
    GetLocatedVersion {
        bucket: BUCKET.to_owned(),
        key: key.to_owned(),
        version_id: None,
        span,
    }
    .read(&f.db.begin_read().expect("read"))
    .expect("located read")
}

fn located_ids(read: &LocatedVersion) -> Vec<ChunkId> {
    read.chunks.iter().map(|(id, _)| *id).collect()
}

#[test]
fn a_located_read_returns_the_records_of_the_chunks_it_reads() {
    let mut f = Fixture::with_bucket(BUCKET);
    // Three 5-byte chunks, the last shared twice (as UploadPartCopy does).
    let (a, b, c) = (chunk_at(10_000), chunk_at(10_001), chunk_at(10_002));
    let at = |chunk: &ChunkRef, offset: u64| ChunkRef {
        offset,
        ..chunk.clone()
    };
    let refs = vec![at(&a, 0), at(&b, 5), at(&c, 10), at(&c, 15)];
    let result = f.apply(Command::PutObject(PutObject {
        lock: None,
        bucket: BUCKET.to_owned(),
        key: "k".to_owned(),
        version: ObjectVersion {
            size: 20,
            ..chunked_version("e", refs)
        },
        condition: WriteCondition::None,
        ownership: ChunkOwnership::Fresh,
        placements: vec![
            placed(&a, &[1, 2, 3]),
            placed(&b, &[2, 3, 4]),
            placed(&c, &[3, 4, 5]),
        ],
    }));
    assert!(result.is_ok(), "put: {result:?}");

    let whole = located(&f, "k", ReadSpan::WHOLE);
    let readable = GetReadableVersion {
        bucket: BUCKET.to_owned(),
        key: "k".to_owned(),
        version_id: None,
    }
    .read(&f.db.begin_read().expect("read"))
    .expect("readable");
    assert_eq!((whole.version.clone(), whole.lock), readable);
    assert_eq!(located_ids(&whole), [a.id, b.id, c.id], "c once");
    let records = f.records(&[a.id, b.id, c.id]);
    let expected: Vec<_> = [a.id, b.id, c.id].into_iter().zip(records).collect();
    assert_eq!(whole.chunks, expected);
    assert_eq!(
        whole.chunks[1].1.as_ref().map(|r| r.servers.clone()),
        Some(vec![2, 3, 4])
    );

    // Only the chunks holding the asked bytes.
    let bytes = |first, last| ReadSpan::Bytes { first, last };
    assert_eq!(located_ids(&located(&f, "k", bytes(6, Some(7)))), [b.id]);
    assert_eq!(
        located_ids(&located(&f, "k", bytes(4, Some(5)))),
        [a.id, b.id]
    );
    assert_eq!(located_ids(&located(&f, "k", bytes(9, None))), [b.id, c.id]);
    let suffix = ReadSpan::Suffix { length: 3 };
    assert_eq!(located_ids(&located(&f, "k", suffix)), [c.id]);
    // Bytes past the end (an unsatisfiable range): none.
    assert!(located(&f, "k", bytes(20, None)).chunks.is_empty());

    // A replica moved by the healer shows in the next read.
    let moved = f.apply(Command::UpdateChunkReplicas(UpdateChunkReplicas {
        id: b.id,
        add: vec![6],
        remove: vec![2],
    }));
    assert!(moved.is_ok(), "move: {moved:?}");
    let after = located(&f, "k", bytes(5, Some(9)));
    assert_eq!(
        after.chunks[0].1.as_ref().map(|r| r.servers.clone()),
        Some(vec![3, 4, 6])
    );

    // An inline object has no chunks to locate.
    f.put("i", inline_version("i"), WriteCondition::None)
        .expect("put inline");
    let inline = located(&f, "i", ReadSpan::WHOLE);
    assert!(inline.chunks.is_empty());
    assert_eq!(inline.version.data, ObjectData::Inline(b"abc".to_vec()));

    // A missing key is the error GetReadableVersion gives.
    let missing = GetLocatedVersion {
        bucket: BUCKET.to_owned(),
        key: "nope".to_owned(),
        version_id: None,
        span: ReadSpan::WHOLE,
    }
    .read(&f.db.begin_read().expect("read"));
    assert!(
        matches!(missing, Err(MetaError::NoSuchKey(_))),
        "{missing:?}"
    );
}

#[test]
fn read_spans_resolve_against_the_version() {
    let of_size = |size| ObjectVersion {
        size,
        ..inline_version("e")
    };
    let ten = of_size(10);
    let bytes = |first, last| ReadSpan::Bytes { first, last };
    assert_eq!(ReadSpan::WHOLE.resolve(&ten), 0..10);
    assert_eq!(bytes(2, Some(4)).resolve(&ten), 2..5);
    assert_eq!(bytes(2, Some(u64::MAX)).resolve(&ten), 2..10);
    assert_eq!(bytes(12, None).resolve(&ten), 10..10);
    assert_eq!(bytes(8, Some(3)).resolve(&ten), 4..4);
    assert_eq!(ReadSpan::Suffix { length: 3 }.resolve(&ten), 7..10);
    assert_eq!(ReadSpan::Suffix { length: 30 }.resolve(&ten), 0..10);
    assert_eq!(ReadSpan::WHOLE.resolve(&of_size(0)), 0..0);
    let part = |number| ReadSpan::Part { number };
    assert_eq!(part(1).resolve(&ten), 0..10, "one piece, one part");
    assert!(part(2).resolve(&ten).is_empty());
    assert!(part(0).resolve(&ten).is_empty());
    let multipart = ObjectVersion {
        parts: vec![4, 4, 2],
        ..ten
    };
    assert_eq!(part(1).resolve(&multipart), 0..4);
    assert_eq!(part(3).resolve(&multipart), 8..10);
    assert!(part(4).resolve(&multipart).is_empty());
}

#[test]
fn orphan_sweeps_and_commits_never_both_win() {
    let mut f = Fixture::with_bucket(BUCKET);
    let old = chunk_at(1_000);
    let young = chunk_at(50_000);
    let committed = chunk_at(2_000);
    f.put_placed("c", vec![committed.clone()], vec![placed(&committed, &[1])]);

    // now 10 s, grace 1 s: the horizon moves to 9 s.
    let deletable = f.sweep(Some(1), &[old.id, young.id, committed.id], 10_000);
    assert_eq!(
        deletable,
        [old.id],
        "only the unrecorded chunk older than the horizon"
    );
    // A commit of the chunk just declared an orphan is refused, and a
    // later sweep with an earlier clock does not lower the horizon.
    let refused = f.put(
        "late",
        chunked_version("l", vec![old.clone()]),
        WriteCondition::None,
    );
    assert!(
        matches!(refused, Err(MetaError::StaleChunk(_))),
        "{refused:?}"
    );
    assert_eq!(f.sweep(None, &[old.id], 0), [old.id]);
    assert!(f.get("late").is_err(), "nothing was committed");

    // A replica on a server its record does not list is a stray.
    assert_eq!(f.sweep(Some(2), &[committed.id], 10_000), [committed.id]);
    assert!(f.sweep(Some(1), &[committed.id], 10_000).is_empty());
    // The local store's chunks (no servers recorded) are never strays.
    f.put(
        "local",
        chunked_version("x", vec![young.clone()]),
        WriteCondition::None,
    )
    .expect("young chunk commits");
    assert!(f.sweep(None, &[young.id], 10_000).is_empty());

    // A chunk whose last reference went away stays protected until the
    // collector acknowledges it, and can never be committed again.
    f.delete("c").expect("delete");
    assert!(f.sweep(Some(1), &[committed.id], 10_000).is_empty());
    let again = f.put(
        "again",
        chunked_version("a", vec![committed.clone()]),
        WriteCondition::None,
    );
    assert!(matches!(again, Err(MetaError::Conflict(_))), "{again:?}");
}

#[test]
fn placements_must_describe_every_fresh_chunk_once() {
    let mut f = Fixture::with_bucket(BUCKET);
    let (a, b) = (chunk_at(10_000), chunk_at(10_001));
    let b_second = ChunkRef {
        offset: 5,
        ..b.clone()
    };
    let put = |placements: Vec<ChunkPlacement>| {
        Command::PutObject(PutObject {
            lock: None,
            bucket: BUCKET.to_owned(),
            key: "k".to_owned(),
            version: chunked_version("e", vec![a.clone(), b_second.clone()]),
            condition: WriteCondition::None,
            ownership: ChunkOwnership::Fresh,
            placements,
        })
    };
    let other = chunk_at(10_002);
    let bad = [
        vec![placed(&a, &[1, 2, 3])],
        vec![placed(&a, &[1, 2, 2]), placed(&b, &[1, 2, 3])],
        vec![placed(&a, &[]), placed(&b, &[1, 2, 3])],
        vec![
            ChunkPlacement {
                factor: 0,
                ..placed(&a, &[1])
            },
            placed(&b, &[1, 2, 3]),
        ],
        vec![placed(&a, &[1]), placed(&a, &[2]), placed(&b, &[3])],
        vec![placed(&a, &[1]), placed(&b, &[2]), placed(&other, &[3])],
    ];
    for placements in bad {
        let result = f.apply(put(placements.clone()));
        assert!(
            matches!(result, Err(MetaError::InvalidRequest(_))),
            "{placements:?}: {result:?}"
        );
        assert!(f.get("k").is_err(), "nothing committed");
        assert_eq!(f.table_len(schema::CHUNK_REFS), 0, "no record left behind");
    }
    assert!(
        f.apply(put(vec![placed(&a, &[1, 2, 3]), placed(&b, &[2, 3])]))
            .is_ok()
    );
}

// ------------------------------------------------------------- renames

#[test]
fn renaming_an_object_moves_its_version_and_touches_no_chunk() {
    let mut f = Fixture::with_bucket(BUCKET);
    let chunk = chunk_at(10_000);
    f.put_placed("a/b/big", vec![chunk.clone()], Vec::new());
    f.put_inline("a/keep");
    let before = f.get("a/b/big").expect("get");
    let records = f.records(&[chunk.id]);
    let gc_before = f.table_len(schema::GC_QUEUE);

    assert_eq!(f.rename("a/b/big", "x/y/z"), Ok(Reply::RenameObject(())));
    assert_eq!(f.get("x/y/z"), Ok(before), "same version, same generation");
    assert_eq!(
        f.get("a/b/big"),
        Err(MetaError::NoSuchKey("a/b/big".into()))
    );
    assert_eq!(f.keys(), ["a/keep", "x/y/z"]);
    assert_eq!(f.records(&[chunk.id]), records, "no reference changed");
    assert_eq!(
        f.table_len(schema::GC_QUEUE),
        gc_before,
        "nothing collected"
    );
    f.check_tree();

    // Onto an existing key: the old destination's version is released.
    assert_eq!(f.rename("a/keep", "x/y/z"), Ok(Reply::RenameObject(())));
    assert_eq!(f.keys(), ["x/y/z"]);
    assert_eq!(f.get("x/y/z").expect("get").etag, "etag-a/keep");
    assert_eq!(f.records(&[chunk.id])[0].as_ref().map(|r| r.refs), Some(0));
    f.check_tree();
    assert_eq!(
        f.rename("gone", "x"),
        Err(MetaError::NoSuchKey("gone".into()))
    );
}

#[test]
fn rename_conditions_hold_on_source_and_destination() {
    let mut f = Fixture::with_bucket(BUCKET);
    f.put_inline("src");
    f.put_inline("dst");
    let rename = |source_condition, destination_condition| {
        Command::RenameObject(RenameObject {
            bucket: BUCKET.to_owned(),
            source: "src".into(),
            destination: "dst".into(),
            source_condition,
            destination_condition,
            client_token: None,
        })
    };
    let if_match = |etag: &str| ObjectCondition {
        if_match: Some(etag.into()),
        ..ObjectCondition::default()
    };
    let if_none_match = |etag: &str| ObjectCondition {
        if_none_match: Some(etag.into()),
        ..ObjectCondition::default()
    };
    for (source, destination) in [
        (if_match("other"), ObjectCondition::default()),
        (if_none_match("etag-src"), ObjectCondition::default()),
        (ObjectCondition::default(), if_none_match("*")),
        (ObjectCondition::default(), if_match("other")),
        (
            ObjectCondition {
                if_modified_since_ms: Some(5_000),
                ..ObjectCondition::default()
            },
            ObjectCondition::default(),
        ),
    ] {
        assert_eq!(
            f.apply(rename(source.clone(), destination.clone())),
            Err(MetaError::PreconditionFailed),
            "{source:?} {destination:?}"
        );
        assert_eq!(f.keys(), ["dst", "src"], "nothing moved");
    }
    assert_eq!(
        f.apply(rename(if_match("etag-src"), if_match("etag-dst"))),
        Ok(Reply::RenameObject(()))
    );
    assert_eq!(f.keys(), ["dst"]);

    // The bucket's overwrite policy applies to the destination.
    f.put_inline("src");
    f.apply(Command::SetOverwritePolicy(SetOverwritePolicy {
        bucket: BUCKET.to_owned(),
        policy: OverwritePolicy::Deny,
    }))
    .expect("policy");
    assert_eq!(f.rename("src", "dst"), Err(MetaError::OverwriteRefused));
    assert_eq!(f.rename("src", "new"), Ok(Reply::RenameObject(())));
}

#[test]
fn renaming_a_directory_moves_every_key_below_it_at_once() {
    let mut f = Fixture::with_bucket(BUCKET);
    for key in ["p/", "p/a", "p/q/b", "p/q/r/c", "pz", "p0"] {
        f.put_inline(key);
    }
    let inodes = f.table_len(schema::INODES);
    assert_eq!(
        f.rename_directory("p/", "n/m/"),
        Ok(Reply::RenameDirectory(()))
    );
    assert_eq!(
        f.keys(),
        ["n/m/", "n/m/a", "n/m/q/b", "n/m/q/r/c", "p0", "pz"]
    );
    assert_eq!(f.get("n/m/q/r/c").expect("get").etag, "etag-p/q/r/c");
    assert_eq!(
        f.table_len(schema::INODES),
        inodes + 1,
        "one new directory (n/), nothing copied"
    );
    f.check_tree();

    assert!(matches!(
        f.rename_directory("n/", "n/m/x/"),
        Err(MetaError::InvalidRequest(_))
    ));
    f.put_inline("t/1");
    assert_eq!(
        f.rename_directory("n/", "t/"),
        Err(MetaError::DirectoryNotEmpty("t/".into()))
    );
    assert_eq!(
        f.rename_directory("none/", "u/"),
        Err(MetaError::NoSuchKey("none/".into()))
    );
    assert!(matches!(
        f.rename_directory("n", "u/"),
        Err(MetaError::InvalidKey(_))
    ));
    // Renaming back and forth returns to where it started.
    assert_eq!(
        f.rename_directory("n/m/", "p/"),
        Ok(Reply::RenameDirectory(()))
    );
    assert_eq!(
        f.keys(),
        ["p/", "p/a", "p/q/b", "p/q/r/c", "p0", "pz", "t/1"]
    );
    f.check_tree();
}

#[test]
fn a_directory_rename_never_makes_a_key_too_long() {
    let mut f = Fixture::with_bucket(BUCKET);
    let long = format!("d/{}", "k".repeat(arbor_meta::limits::KEY_LEN_MAX - 2));
    f.put_inline(&long);
    assert_eq!(f.rename_directory("d/", "dd/"), Err(MetaError::KeyTooLong));
    assert_eq!(f.keys(), std::slice::from_ref(&long));
    // Shorter is always fine, and the bound moves with the directory.
    f.put_inline("ee/x");
    assert_eq!(
        f.rename_directory("ee/", "e/"),
        Ok(Reply::RenameDirectory(()))
    );
    assert_eq!(
        f.rename_directory("d/", "f/"),
        Ok(Reply::RenameDirectory(()))
    );
    assert_eq!(f.rename_directory("f/", "gg/"), Err(MetaError::KeyTooLong));
    f.check_tree();
}

// ------------------------------------------------------- recursive delete

#[test]
fn a_recursive_delete_unlinks_at_once_and_reclaims_in_batches() {
    let mut f = Fixture::with_bucket(BUCKET);
    let chunk = chunk_at(10_000);
    f.put_placed("d/big", vec![chunk.clone()], Vec::new());
    for key in ["d/", "d/a", "d/e/f/g", "d/e/h", "dz", "keep/x"] {
        f.put_inline(key);
    }
    assert_eq!(f.delete_directory("d/"), Ok(Reply::DeleteDirectory(true)));
    assert_eq!(f.keys(), ["dz", "keep/x"], "gone from listings at once");
    assert_eq!(f.get("d/e/h"), Err(MetaError::NoSuchKey("d/e/h".into())));
    assert_eq!(f.delete_directory("d/"), Ok(Reply::DeleteDirectory(false)));
    f.check_tree();

    // A new directory of the same name is a new directory.
    f.put_inline("d/new");
    let batches = f.reclaim_all(2);
    assert!(batches >= 4, "bounded batches: {batches}");
    assert_eq!(f.keys(), ["d/new", "dz", "keep/x"]);
    assert_eq!(f.table_len(schema::RECLAIM), 0);
    assert_eq!(f.table_len(schema::VERSIONS), 3);
    assert_eq!(
        f.records(&[chunk.id])[0].as_ref().map(|r| r.refs),
        Some(0),
        "the chunk waits in the GC queue"
    );
    f.check_tree();
    // Nothing left: a batch is a no-op.
    assert!(matches!(
        f.reclaim(10),
        Ok(Reply::ReclaimBatch(p)) if p.pending == 0 && p.objects == 0
    ));
    assert!(matches!(f.reclaim(0), Err(MetaError::InvalidRequest(_))));
    assert!(matches!(
        f.delete_directory("nodir"),
        Err(MetaError::InvalidKey(_))
    ));
}

#[test]
fn a_client_token_makes_a_rename_idempotent() {
    let mut f = Fixture::with_bucket(BUCKET);
    f.put_inline("a");
    f.put_inline("c");
    let rename = |source: &str, destination: &str, token: &str| {
        Command::RenameObject(RenameObject {
            bucket: BUCKET.to_owned(),
            source: source.into(),
            destination: destination.into(),
            source_condition: ObjectCondition::default(),
            destination_condition: ObjectCondition::default(),
            client_token: Some(token.into()),
        })
    };
    assert_eq!(f.apply(rename("a", "b", "t1")), Ok(Reply::RenameObject(())));
    // The retry answers as the first did, though "a" is gone now.
    assert_eq!(f.apply(rename("a", "b", "t1")), Ok(Reply::RenameObject(())));
    assert_eq!(
        f.apply(rename("c", "d", "t1")),
        Err(MetaError::IdempotencyMismatch("t1".into()))
    );
    assert_eq!(f.keys(), ["b", "c"]);
    // A failed rename does not use up its token.
    assert_eq!(
        f.apply(rename("gone", "e", "t2")),
        Err(MetaError::NoSuchKey("gone".into()))
    );
    assert_eq!(f.apply(rename("c", "e", "t2")), Ok(Reply::RenameObject(())));
    assert!(matches!(
        f.apply(rename("b", "f", "")),
        Err(MetaError::InvalidRequest(_))
    ));
    assert!(matches!(
        f.apply(rename("b", "f", "with space")),
        Err(MetaError::InvalidRequest(_))
    ));
}

/// A rename costs the same whatever it moves: a 1 GiB object (16 chunks
/// of 64 MiB) and a directory of 100,000 keys, each timed (printed) and
/// checked to touch a handful of rows only.
#[test]
fn renames_do_not_depend_on_what_they_move() {
    const KEYS: usize = 100_000;
    const GIB_CHUNKS: u64 = 16;
    let mut f = Fixture::with_bucket(BUCKET);
    let chunks: Vec<ChunkRef> = (0..GIB_CHUNKS)
        .map(|i| ChunkRef {
            id: ChunkId::created_at(10_000 + i64::try_from(i).expect("small")),
            offset: i * 64 * 1024 * 1024,
            size: 64 * 1024 * 1024,
            sha256: [1; 32],
        })
        .collect();
    f.put_placed("gib/object", chunks, Vec::new());
    let commands: Vec<Command> = (0..KEYS)
        .map(|i| {
            Command::PutObject(PutObject {
                lock: None,
                bucket: BUCKET.to_owned(),
                key: format!("big/{}/{}/k{i}", i % 100, (i / 100) % 10),
                version: inline_version("e"),
                condition: WriteCondition::None,
                ownership: ChunkOwnership::Fresh,
                placements: Vec::new(),
            })
        })
        .collect();
    for batch in commands.chunks(1000) {
        assert!(f.apply_entry(batch).iter().all(Result::is_ok));
    }
    let rows = f.table_len(schema::CHILDREN);

    let started = std::time::Instant::now();
    assert_eq!(
        f.rename("gib/object", "moved/object"),
        Ok(Reply::RenameObject(()))
    );
    let object_time = started.elapsed();
    let started = std::time::Instant::now();
    assert_eq!(
        f.rename_directory("big/", "elsewhere/big/"),
        Ok(Reply::RenameDirectory(()))
    );
    let directory_time = started.elapsed();
    eprintln!(
        "rename of a 1 GiB object: {object_time:?}; of a directory of {KEYS} keys: {directory_time:?}"
    );
    // Each moved one row and made at most one directory: nothing below
    // the directory was visited.
    assert_eq!(
        f.table_len(schema::CHILDREN),
        rows + 1,
        "moved/ and elsewhere/ made, gib/ and big/ gone"
    );
    assert_eq!(f.get("elsewhere/big/7/0/k7").expect("moved key").etag, "e");
    assert!(f.get("big/7/0/k7").is_err());
}

/// A recursive delete of 100,000 keys is one small command; the
/// reclaimer then releases them all in bounded batches.
#[test]
fn a_recursive_delete_of_100000_keys_returns_at_once() {
    const KEYS: usize = 100_000;
    let mut f = Fixture::with_bucket(BUCKET);
    let commands: Vec<Command> = (0..KEYS)
        .map(|i| {
            Command::PutObject(PutObject {
                lock: None,
                bucket: BUCKET.to_owned(),
                key: format!("big/{}/{}/k{i}", i % 100, (i / 100) % 10),
                version: inline_version("e"),
                condition: WriteCondition::None,
                ownership: ChunkOwnership::Fresh,
                placements: Vec::new(),
            })
        })
        .collect();
    for batch in commands.chunks(1000) {
        assert!(f.apply_entry(batch).iter().all(Result::is_ok));
    }
    f.put_inline("kept");
    let started = std::time::Instant::now();
    assert_eq!(f.delete_directory("big/"), Ok(Reply::DeleteDirectory(true)));
    let delete_time = started.elapsed();
    assert_eq!(f.keys(), ["kept"]);
    let started = std::time::Instant::now();
    let batches = f.reclaim_all(1000);
    eprintln!(
        "recursive delete of {KEYS} keys: {delete_time:?}; reclaimed in {batches} batches, {:?}",
        started.elapsed()
    );
    assert!(batches >= KEYS / 1000, "bounded batches: {batches}");
    assert_eq!(f.table_len(schema::VERSIONS), 1);
    assert_eq!(f.table_len(schema::INODES), 2, "the bucket and kept");
    f.check_tree();
}

#[test]
fn a_directory_rename_may_replace_a_full_destination() {
    let mut f = Fixture::with_bucket(BUCKET);
    for key in ["new/1", "new/2", "old/a", "old/b/c"] {
        f.put_inline(key);
    }
    let rename = |source: &str, destination: &str| {
        Command::RenameDirectory(RenameDirectory {
            bucket: BUCKET.to_owned(),
            source: source.into(),
            destination: destination.into(),
            replace: true,
            now_ms: 5,
            client_token: None,
        })
    };
    assert_eq!(
        f.apply(rename("new/", "old/")),
        Ok(Reply::RenameDirectory(()))
    );
    assert_eq!(
        f.keys(),
        ["old/1", "old/2"],
        "the old directory was replaced"
    );
    assert_eq!(
        f.table_len(schema::RECLAIM),
        1,
        "and waits for the reclaimer"
    );
    f.check_tree();
    f.reclaim_all(10);
    assert_eq!(f.table_len(schema::VERSIONS), 2);
    f.check_tree();
    // Replacing a directory that holds the source would delete it.
    f.put_inline("old/in/x");
    assert!(matches!(
        f.apply(rename("old/in/", "old/")),
        Err(MetaError::InvalidRequest(_))
    ));
    assert_eq!(f.keys(), ["old/1", "old/2", "old/in/x"]);
}

#[test]
fn replacing_a_directory_obeys_the_overwrite_policy() {
    let mut f = Fixture::with_bucket(BUCKET);
    for key in ["new/1", "old/a"] {
        f.put_inline(key);
    }
    f.apply(Command::SetOverwritePolicy(SetOverwritePolicy {
        bucket: BUCKET.to_owned(),
        policy: OverwritePolicy::Conditional,
    }))
    .expect("policy");
    let replace = Command::RenameDirectory(RenameDirectory {
        bucket: BUCKET.to_owned(),
        source: "new/".into(),
        destination: "old/".into(),
        replace: true,
        now_ms: 5,
        client_token: None,
    });
    assert_eq!(f.apply(replace), Err(MetaError::OverwriteRefused));
    assert_eq!(f.keys(), ["new/1", "old/a"]);
}

#[test]
fn a_token_remembers_the_conditions_and_directory_renames_too() {
    let mut f = Fixture::with_bucket(BUCKET);
    f.put_inline("a");
    f.put_inline("d/x");
    let object = |condition: Option<&str>| {
        Command::RenameObject(RenameObject {
            bucket: BUCKET.to_owned(),
            source: "a".into(),
            destination: "b".into(),
            source_condition: ObjectCondition {
                if_match: condition.map(str::to_owned),
                ..ObjectCondition::default()
            },
            destination_condition: ObjectCondition::default(),
            client_token: Some("t".into()),
        })
    };
    assert_eq!(f.apply(object(Some("etag-a"))), Ok(Reply::RenameObject(())));
    assert_eq!(
        f.apply(object(None)),
        Err(MetaError::IdempotencyMismatch("t".into())),
        "the same names with other conditions"
    );
    let directory = || {
        Command::RenameDirectory(RenameDirectory {
            bucket: BUCKET.to_owned(),
            source: "d/".into(),
            destination: "e/".into(),
            replace: false,
            now_ms: 1,
            client_token: Some("u".into()),
        })
    };
    assert_eq!(f.apply(directory()), Ok(Reply::RenameDirectory(())));
    assert_eq!(
        f.apply(directory()),
        Ok(Reply::RenameDirectory(())),
        "a retry"
    );
    assert_eq!(f.keys(), ["b", "e/x"]);
}

#[test]
fn a_directory_older_than_the_bounds_stays_unbounded() {
    let mut f = Fixture::with_bucket(BUCKET);
    let long = format!("d/{}", "k".repeat(arbor_meta::limits::KEY_LEN_MAX - 2));
    f.put_inline(&long);
    // As a store written before the bounds existed: no bound rows.
    {
        let txn = f.db.begin_write().expect("begin");
        {
            let mut bounds = txn.open_table(schema::DIR_KEY_LEN).expect("table");
            bounds.retain(|_, _| false).expect("clear");
        }
        txn.commit().expect("commit");
    }
    // A short key below it must not give it a small bound.
    f.put_inline("d/x");
    assert_eq!(f.rename_directory("d/", "dd/"), Err(MetaError::KeyTooLong));
    assert_eq!(
        f.rename_directory("d/", "e/"),
        Ok(Reply::RenameDirectory(()))
    );
}
