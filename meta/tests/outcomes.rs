//! The outcomes of the log's commands, pinned.
//!
//! A command's outcome (its reply, or the error it refuses with) is
//! replicated: the request table remembers it, and every node of a group
//! must reach the same one for the same entry, whichever release it runs.
//! So an outcome, once released, never changes; a new behaviour is a new
//! command appended to `meta::command` (docs/OPERATING.md, upgrading).
//!
//! This test drives every command through one script of successes and
//! refusals and compares each outcome with `outcomes.golden` beside it. A
//! difference fails the test. If the change is intended (a new command, or
//! a new step), re-record with `ARBOR_BLESS=1 cargo test -p arbor-meta
//! --test outcomes` and review the file's diff: only added lines are
//! acceptable for commands already released. Add steps at the end of the
//! script: the lines are numbered, and log indexes (and with them
//! generations and version ids) run on from step to step, so a step put
//! in the middle changes every line after it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::PathBuf;

use arbor_meta::access::{
    AllowAccessKey, CreateAccessKey, DeleteAccessKey, DeleteBucketPolicy, DeletePublicAccessBlock,
    DenyAccessKey, Grant, PutBucketPolicy, PutPublicAccessBlock, SetBucketCors,
};
use arbor_meta::acl::{SetBucketAcl, SetObjectAcl, SetObjectOwnership};
use arbor_meta::append::AppendObject;
use arbor_meta::chunks::{CollectOrphans, GcAck, GcQueue, UpdateChunkReplicas};
use arbor_meta::clock::Entropy;
use arbor_meta::command::{Command, Reply};
use arbor_meta::lifecycle::{
    DeleteBucketLifecycle, LifecycleBatch, LifecycleUploads, PutBucketLifecycle,
    PutBucketLifecycleRules,
};
use arbor_meta::multipart::{
    AbortMultipartUpload, CompleteMultipartUpload, CreateMultipartUpload, ExpireUploads, UploadPart,
};
use arbor_meta::namespace::{
    CreateBucket, CreateBucketAs, CreateLockedBucket, DeleteBucket, DeleteKey, DeleteKeys,
    DeleteObject, DeleteObjectIf, DeleteObjects, DeleteObjectsIf, DeleteTarget, PutBucketTags,
    PutObject, PutObjectTags, ReleaseObjectLegalHold, SetBucketVersioning, SetObjectLegalHold,
    SetObjectLockConfig, SetObjectLockConfigInYears, SetObjectRetention, SetObjectRetentionStrict,
    SetObjectTags, SetOverwritePolicy,
};
use arbor_meta::reclaim::{DeleteDirectory, ReclaimBatch};
use arbor_meta::records::lifecycle::{
    LifecycleConfig, LifecycleFilter, LifecycleRule, LifecycleRules,
};
use arbor_meta::records::{
    AccessKeyRecord, CannedAcl, ChunkId, ChunkOwnership, ChunkPlacement, ChunkRef, CompletedPart,
    CorsRule, DeleteCondition, LockMode, ObjectData, ObjectLockConfig, ObjectOwnership,
    ObjectVersion, OverwritePolicy, PartRecord, Permissions, PublicAccessBlock, Retention,
    ServerStatus, UploadId, UploadRecord, VersionId, Versioning, WriteCondition,
};
use arbor_meta::registry::{
    ChunkServerHeartbeat, MarkOfflineServers, RegisterChunkServer, SetChunkServerStatus,
};
use arbor_meta::rename::{
    ObjectCondition, RenameDirectory, RenameDirectoryUnlessLocked, RenameObject,
    RenameObjectUnlessLocked,
};

mod common;
use common::{Fixture, inline_version};

/// Random bits that are not: the same ids on every run.
struct Fixed(u8);

impl Entropy for Fixed {
    fn fill(&self, bytes: &mut [u8]) {
        bytes.fill(self.0);
    }
}

/// The script's state: the fixture and what it has answered so far.
struct Script {
    f: Fixture,
    lines: Vec<String>,
    covered: BTreeSet<&'static str>,
}

impl Script {
    /// Applies `command` as the next entry and records its outcome.
    fn run(&mut self, command: impl Into<Command>) -> Option<Reply> {
        let command = command.into();
        let name = name_of(&command);
        self.covered.insert(name);
        let outcome = self.f.apply(command);
        self.lines.push(format!(
            "{:03} {name}: {}",
            self.lines.len() + 1,
            one_line(&outcome)
        ));
        outcome.ok()
    }

    /// Applies a PutObject of `etag` at `key` and returns the version's id.
    fn put(&mut self, bucket: &str, key: &str, etag: &str) -> VersionId {
        match self.run(PutObject {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version: inline_version(etag),
            condition: WriteCondition::None,
            ownership: ChunkOwnership::Fresh,
            placements: Vec::new(),
            lock: None,
        }) {
            Some(Reply::PutObject(version)) => version.version_id(),
            other => panic!("put {bucket}/{key}: {other:?}"),
        }
    }
}

fn name_of(command: &Command) -> &'static str {
    // The variant's name, as `Command::NAMES` spells it.
    let debug = format!("{command:?}");
    let variant = debug.split('(').next().unwrap_or_default();
    Command::NAMES
        .iter()
        .find(|name| **name == variant)
        .copied()
        .unwrap_or_else(|| panic!("no name for {variant}"))
}

fn one_line(value: &impl Debug) -> String {
    format!("{value:?}")
}

fn chunk(n: u8, size: u64) -> ChunkRef {
    ChunkRef {
        id: ChunkId::new(10_000 + i64::from(n), &Fixed(n)),
        offset: 0,
        size,
        sha256: [n; 32],
    }
}

fn chunked_version(etag: &str, chunks: Vec<ChunkRef>) -> ObjectVersion {
    ObjectVersion {
        size: chunks.iter().map(|c| c.size).sum(),
        data: ObjectData::Chunks(chunks),
        ..inline_version(etag)
    }
}

fn placed(chunk: &ChunkRef, servers: &[u64]) -> ChunkPlacement {
    ChunkPlacement {
        id: chunk.id,
        factor: 2,
        servers: servers.to_vec(),
    }
}

fn upload(id: u8, bucket: &str, key: &str, initiated_ms: i64) -> UploadRecord {
    UploadRecord {
        upload_id: UploadId([id; 16]),
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        initiated_ms,
        headers: Default::default(),
        user_metadata: vec![("m".to_owned(), "1".to_owned())],
        storage_class: None,
        checksum: None,
        tags: Vec::new(),
        lock: None,
        acl: CannedAcl::default(),
    }
}

fn rule(prefix: &str) -> LifecycleRule {
    LifecycleRule {
        id: format!("rule-{prefix}"),
        enabled: true,
        prefix: prefix.to_owned(),
        expiration_days: Some(1),
        ..LifecycleRule::default()
    }
}

fn key_record(access_key: &str) -> AccessKeyRecord {
    AccessKeyRecord {
        access_key: access_key.to_owned(),
        name: "backup".to_owned(),
        sealed_secret: vec![1, 2, 3],
        created_ms: 7,
        create_bucket: false,
        buckets: BTreeMap::new(),
    }
}

const DAY: i64 = 86_400_000;
/// An access key id (16 to 128 letters and digits).
const KEY: &str = "AKOUTCOMES0000001";
/// A part's ETag is the hex MD5 of its bytes.
const PART_ETAG: &str = "0123456789abcdef0123456789abcdef";

/// Every command, in successes and refusals; the outcomes go to
/// `script.lines`.
fn script() -> Script {
    let mut s = Script {
        f: Fixture::empty(),
        lines: Vec::new(),
        covered: BTreeSet::new(),
    };
    let b = |name: &str| name.to_owned();

    // Buckets.
    s.run(CreateBucket {
        name: b("plain"),
        created_ms: 1,
    });
    s.run(CreateBucket {
        name: b("plain"),
        created_ms: 2,
    });
    s.run(CreateLockedBucket {
        name: b("locked"),
        created_ms: 3,
    });
    s.run(CreateBucketAs {
        bucket: CreateBucket {
            name: b("keyed"),
            created_ms: 4,
        },
        access_key: "AKMISSING".to_owned(),
        object_lock: false,
    });
    s.run(DeleteBucket { name: b("nothere") });
    s.run(SetOverwritePolicy {
        bucket: b("plain"),
        policy: OverwritePolicy::Conditional,
    });
    s.run(SetOverwritePolicy {
        bucket: b("plain"),
        policy: OverwritePolicy::Allow,
    });
    s.run(PutBucketTags {
        bucket: b("plain"),
        tags: vec![("team".to_owned(), "a".to_owned())],
    });
    s.run(PutBucketTags {
        bucket: b("nothere"),
        tags: Vec::new(),
    });

    // Objects.
    s.put("plain", "a/b/c", "e1");
    s.put("plain", "a/b/c", "e2");
    s.run(PutObject {
        bucket: b("plain"),
        key: b("a/b/c"),
        version: inline_version("e3"),
        condition: WriteCondition::IfNoneMatchAny,
        ownership: ChunkOwnership::Fresh,
        placements: Vec::new(),
        lock: None,
    });
    s.run(PutObject {
        bucket: b("plain"),
        key: b("a/b/c"),
        version: inline_version("e3"),
        condition: WriteCondition::IfMatch("nope".to_owned()),
        ownership: ChunkOwnership::Fresh,
        placements: Vec::new(),
        lock: None,
    });
    s.run(PutObject {
        bucket: b("plain"),
        key: b("a/b"),
        version: inline_version("dir"),
        condition: WriteCondition::None,
        ownership: ChunkOwnership::Fresh,
        placements: Vec::new(),
        lock: None,
    });
    s.run(PutObject {
        bucket: b("nothere"),
        key: b("k"),
        version: inline_version("e"),
        condition: WriteCondition::None,
        ownership: ChunkOwnership::Fresh,
        placements: Vec::new(),
        lock: None,
    });
    s.run(PutObjectTags {
        bucket: b("plain"),
        key: b("a/b/c"),
        tags: vec![("k".to_owned(), "v".to_owned())],
    });
    s.run(PutObjectTags {
        bucket: b("plain"),
        key: b("missing"),
        tags: Vec::new(),
    });
    s.run(SetObjectTags {
        bucket: b("plain"),
        key: b("a/b/c"),
        version_id: None,
        tags: vec![("k".to_owned(), "w".to_owned())],
    });
    s.run(AppendObject {
        bucket: b("plain"),
        key: b("log"),
        offset: 0,
        base: None,
        version: inline_version("ap1"),
        condition: WriteCondition::None,
        shared_chunks: 0,
        placements: Vec::new(),
    });
    s.run(AppendObject {
        bucket: b("plain"),
        key: b("log"),
        offset: 7,
        base: None,
        version: inline_version("ap2"),
        condition: WriteCondition::None,
        shared_chunks: 0,
        placements: Vec::new(),
    });
    s.run(DeleteObjectIf {
        bucket: b("plain"),
        key: b("a/b/c"),
        condition: DeleteCondition::ETag("nope".to_owned()),
    });
    s.put("plain", "x/1", "x1");
    s.put("plain", "x/2", "x2");
    s.run(DeleteObject {
        bucket: b("plain"),
        key: b("x/1"),
    });
    s.run(DeleteObject {
        bucket: b("plain"),
        key: b("x/1"),
    });
    s.run(DeleteObjects {
        bucket: b("plain"),
        keys: vec![b("x/2"), b("x/3")],
    });
    s.put("plain", "y/1", "y1");
    s.run(DeleteObjectsIf {
        bucket: b("plain"),
        objects: vec![
            (b("y/1"), Some(DeleteCondition::ETag("other".to_owned()))),
            (b("y/2"), Some(DeleteCondition::Exists)),
        ],
    });
    s.run(DeleteKey {
        bucket: b("plain"),
        target: DeleteTarget {
            key: b("y/1"),
            version_id: None,
            condition: None,
            bypass_governance: false,
        },
        now_ms: 50,
    });
    s.run(DeleteKeys {
        bucket: b("plain"),
        targets: vec![DeleteTarget {
            key: b("y/9"),
            version_id: None,
            condition: Some(DeleteCondition::Exists),
            bypass_governance: false,
        }],
        now_ms: 50,
    });

    // Renames and recursive deletes.
    s.put("plain", "r/one", "r1");
    s.put("plain", "r/sub/two", "r2");
    s.run(RenameObject {
        bucket: b("plain"),
        source: b("r/one"),
        destination: b("r/uno"),
        source_condition: ObjectCondition::default(),
        destination_condition: ObjectCondition::default(),
        client_token: Some("t1".to_owned()),
    });
    s.run(RenameObject {
        bucket: b("plain"),
        source: b("r/one"),
        destination: b("r/uno"),
        source_condition: ObjectCondition::default(),
        destination_condition: ObjectCondition::default(),
        client_token: Some("t1".to_owned()),
    });
    s.run(RenameObject {
        bucket: b("plain"),
        source: b("r/one"),
        destination: b("r/eins"),
        source_condition: ObjectCondition::default(),
        destination_condition: ObjectCondition::default(),
        client_token: None,
    });
    s.run(RenameDirectory {
        bucket: b("plain"),
        source: b("r/sub/"),
        destination: b("s/"),
        replace: false,
        now_ms: 60,
        client_token: None,
    });
    s.run(RenameDirectory {
        bucket: b("plain"),
        source: b("nodir/"),
        destination: b("t/"),
        replace: false,
        now_ms: 60,
        client_token: None,
    });
    s.run(DeleteDirectory {
        bucket: b("plain"),
        prefix: b("s/"),
        deleted_ms: 70,
    });
    s.run(DeleteDirectory {
        bucket: b("plain"),
        prefix: b("none/"),
        deleted_ms: 70,
    });
    s.run(ReclaimBatch { limit: 10 });
    s.run(ReclaimBatch { limit: 10 });

    // Versioning and Object Lock.
    s.run(SetBucketVersioning {
        bucket: b("plain"),
        versioning: Versioning::Enabled,
    });
    s.run(SetBucketVersioning {
        bucket: b("locked"),
        versioning: Versioning::Suspended,
    });
    s.run(CreateBucket {
        name: b("flat"),
        created_ms: 6,
    });
    s.run(SetObjectLockConfig {
        bucket: b("flat"),
        config: ObjectLockConfig {
            default: Some((LockMode::Governance, 1)),
        },
    });
    s.run(SetObjectLockConfig {
        bucket: b("locked"),
        config: ObjectLockConfig {
            default: Some((LockMode::Governance, 1)),
        },
    });
    s.run(SetObjectLockConfig {
        bucket: b("locked"),
        config: ObjectLockConfig { default: None },
    });
    let v = s.put("locked", "doc", "d1");
    let retention = |mode, until_ms| Some(Retention { mode, until_ms });
    let retain = |version_id, retention, bypass_governance| SetObjectRetention {
        bucket: b("locked"),
        key: b("doc"),
        version_id: Some(version_id),
        retention,
        bypass_governance,
        now_ms: 100,
    };
    s.run(retain(v, retention(LockMode::Governance, 1_000), false));
    s.run(retain(v, retention(LockMode::Governance, 500), false));
    s.run(SetObjectRetentionStrict(retain(
        v,
        retention(LockMode::Compliance, 1_000),
        false,
    )));
    s.run(retain(v, retention(LockMode::Compliance, 1_000), false));
    s.run(SetObjectRetentionStrict(retain(
        v,
        retention(LockMode::Governance, 2_000),
        true,
    )));
    s.run(SetObjectRetention {
        bucket: b("plain"),
        key: b("a/b/c"),
        version_id: None,
        retention: retention(LockMode::Governance, 1_000),
        bypass_governance: false,
        now_ms: 100,
    });
    s.run(SetObjectLegalHold {
        bucket: b("locked"),
        key: b("doc"),
        version_id: Some(v),
        on: true,
    });
    s.run(DeleteKey {
        bucket: b("locked"),
        target: DeleteTarget {
            key: b("doc"),
            version_id: Some(v),
            condition: None,
            bypass_governance: true,
        },
        now_ms: 5_000,
    });
    s.run(SetObjectLegalHold {
        bucket: b("locked"),
        key: b("gone"),
        version_id: None,
        on: true,
    });
    s.put("plain", "a/b/c", "e4");
    s.run(DeleteKey {
        bucket: b("plain"),
        target: DeleteTarget {
            key: b("a/b/c"),
            version_id: None,
            condition: None,
            bypass_governance: false,
        },
        now_ms: 200,
    });

    // Multipart uploads.
    s.run(CreateMultipartUpload {
        upload: upload(1, "plain", "big", 300),
    });
    s.run(CreateMultipartUpload {
        upload: upload(2, "nothere", "big", 300),
    });
    let part = chunk(1, 10);
    s.run(UploadPart {
        upload_id: UploadId([1; 16]),
        part: PartRecord {
            part_number: 1,
            size: 10,
            etag: PART_ETAG.to_owned(),
            last_modified_ms: 301,
            checksum: None,
            chunks: vec![part.clone()],
        },
        shared: Vec::new(),
        placements: vec![placed(&part, &[1, 2])],
    });
    s.run(UploadPart {
        upload_id: UploadId([9; 16]),
        part: PartRecord {
            part_number: 1,
            size: 10,
            etag: PART_ETAG.to_owned(),
            last_modified_ms: 301,
            checksum: None,
            chunks: Vec::new(),
        },
        shared: Vec::new(),
        placements: Vec::new(),
    });
    let complete = |etag: &str| CompleteMultipartUpload {
        upload_id: UploadId([1; 16]),
        parts: vec![CompletedPart {
            part_number: 1,
            etag: etag.to_owned(),
            checksum: None,
        }],
        checksum: None,
        last_modified_ms: 302,
        condition: WriteCondition::None,
    };
    s.run(complete("wrong"));
    s.run(complete(PART_ETAG));
    s.run(complete(PART_ETAG));
    s.run(CreateMultipartUpload {
        upload: upload(3, "plain", "aborted", 400),
    });
    s.run(AbortMultipartUpload {
        upload_id: UploadId([3; 16]),
    });
    s.run(AbortMultipartUpload {
        upload_id: UploadId([3; 16]),
    });
    s.run(CreateMultipartUpload {
        upload: upload(4, "plain", "stale", 500),
    });
    s.run(ExpireUploads {
        // Upload ids carry their time: `UploadId([4; 16])` is late in 2109.
        initiated_before_ms: 5_000_000_000_000,
        limit: 10,
    });

    // Chunk servers and chunks.
    for id in [1, 2, 3] {
        s.run(RegisterChunkServer {
            id,
            addr: format!("127.0.0.1:{}", 9000 + id),
            zone: format!("z{id}"),
            capacity: 1 << 30,
            now_ms: 1_000,
        });
    }
    s.run(ChunkServerHeartbeat {
        id: 1,
        used: 10,
        chunks: 1,
        now_ms: 2_000,
    });
    s.run(ChunkServerHeartbeat {
        id: 7,
        used: 0,
        chunks: 0,
        now_ms: 2_000,
    });
    s.run(SetChunkServerStatus {
        id: 3,
        status: ServerStatus::Draining,
    });
    s.run(SetChunkServerStatus {
        id: 8,
        status: ServerStatus::Offline,
    });
    s.run(MarkOfflineServers {
        now_ms: 20_000,
        timeout_ms: 10_000,
    });
    let stored = chunk(2, 20);
    let chunked = match s.run(PutObject {
        bucket: b("plain"),
        key: b("chunked"),
        version: chunked_version("c1", vec![stored.clone()]),
        condition: WriteCondition::None,
        ownership: ChunkOwnership::Fresh,
        placements: vec![placed(&stored, &[1, 2])],
        lock: None,
    }) {
        Some(Reply::PutObject(version)) => version.version_id(),
        other => panic!("put chunked: {other:?}"),
    };
    s.run(UpdateChunkReplicas {
        id: stored.id,
        add: vec![3],
        remove: vec![1],
    });
    s.run(UpdateChunkReplicas {
        id: ChunkId([0; 16]),
        add: vec![3],
        remove: Vec::new(),
    });
    s.run(CollectOrphans {
        server: Some(2),
        candidates: vec![stored.id, chunk(3, 1).id],
        now_ms: 1_000_000,
        grace_ms: 1_000,
    });
    s.run(SetBucketVersioning {
        bucket: b("plain"),
        versioning: Versioning::Suspended,
    });
    s.run(DeleteKey {
        bucket: b("plain"),
        target: DeleteTarget {
            key: b("chunked"),
            version_id: Some(chunked),
            condition: None,
            bypass_governance: false,
        },
        now_ms: 3_000,
    });
    let queued =
        s.f.read(GcQueue {
            after: None,
            limit: 100,
        })
        .expect("gc queue");
    s.lines.push(format!("--- GcQueue: {}", one_line(&queued)));
    s.run(GcAck {
        records: queued.iter().map(|entry| entry.key).collect(),
    });

    // Access.
    s.run(CreateAccessKey {
        record: key_record(KEY),
    });
    s.run(CreateAccessKey {
        record: key_record(KEY),
    });
    let grant = Grant {
        create_bucket: true,
        bucket: Some((
            b("plain"),
            Permissions {
                read: true,
                write: true,
                owner: false,
            },
        )),
    };
    s.run(AllowAccessKey {
        access_key: KEY.to_owned(),
        grant: grant.clone(),
    });
    s.run(AllowAccessKey {
        access_key: "AKNOSUCHKEY00000".to_owned(),
        grant: grant.clone(),
    });
    s.run(CreateBucketAs {
        bucket: CreateBucket {
            name: b("keyed"),
            created_ms: 5,
        },
        access_key: KEY.to_owned(),
        object_lock: false,
    });
    s.run(DenyAccessKey {
        access_key: KEY.to_owned(),
        grant,
    });
    s.run(DeleteAccessKey {
        access_key: KEY.to_owned(),
    });
    s.run(DeleteAccessKey {
        access_key: KEY.to_owned(),
    });
    s.run(PutBucketPolicy {
        bucket: b("plain"),
        policy: r#"{"Version":"2012-10-17","Statement":[]}"#.to_owned(),
    });
    s.run(PutBucketPolicy {
        bucket: b("nothere"),
        policy: "{}".to_owned(),
    });
    s.run(DeleteBucketPolicy { bucket: b("plain") });
    s.run(PutPublicAccessBlock {
        bucket: b("plain"),
        block: PublicAccessBlock {
            block_public_acls: true,
            ..PublicAccessBlock::default()
        },
    });
    s.run(DeletePublicAccessBlock { bucket: b("plain") });
    s.run(DeletePublicAccessBlock {
        bucket: b("nothere"),
    });
    s.run(SetBucketCors {
        bucket: b("plain"),
        rules: vec![CorsRule {
            allowed_origins: vec!["*".to_owned()],
            allowed_methods: vec!["GET".to_owned()],
            ..CorsRule::default()
        }],
    });
    s.run(SetBucketAcl {
        bucket: b("plain"),
        acl: CannedAcl::PublicRead,
    });
    s.run(SetObjectOwnership {
        bucket: b("plain"),
        ownership: ObjectOwnership::BucketOwnerEnforced,
    });
    s.run(SetBucketAcl {
        bucket: b("plain"),
        acl: CannedAcl::PublicRead,
    });
    s.run(SetObjectOwnership {
        bucket: b("plain"),
        ownership: ObjectOwnership::BucketOwnerPreferred,
    });
    s.run(SetObjectAcl {
        bucket: b("plain"),
        key: b("big"),
        version_id: None,
        acl: CannedAcl::PublicRead,
    });
    s.run(SetObjectAcl {
        bucket: b("plain"),
        key: b("missing"),
        version_id: None,
        acl: CannedAcl::Private,
    });

    // Lifecycle.
    s.run(PutBucketLifecycle {
        bucket: b("plain"),
        config: LifecycleConfig {
            rules: vec![rule("x/")],
        },
    });
    s.run(PutBucketLifecycle {
        bucket: b("plain"),
        config: LifecycleConfig { rules: Vec::new() },
    });
    s.run(PutBucketLifecycleRules {
        bucket: b("plain"),
        rules: LifecycleRules {
            config: LifecycleConfig {
                rules: vec![rule("a/"), rule("big")],
            },
            filters: vec![
                LifecycleFilter {
                    tags: vec![("k".to_owned(), "w".to_owned())],
                    ..LifecycleFilter::default()
                },
                LifecycleFilter {
                    size_greater_than: Some(5),
                    ..LifecycleFilter::default()
                },
            ],
        },
    });
    s.run(LifecycleBatch {
        bucket: b("plain"),
        after: None,
        limit: 100,
        now_ms: 30 * DAY,
        day_ms: DAY,
    });
    s.run(LifecycleUploads {
        bucket: b("plain"),
        limit: 100,
        now_ms: 30 * DAY,
        day_ms: DAY,
    });
    s.run(DeleteBucketLifecycle { bucket: b("plain") });
    s.run(DeleteBucketLifecycle {
        bucket: b("nothere"),
    });

    // Last, a bucket that is not empty, then an empty one.
    s.run(DeleteBucket { name: b("plain") });
    s.run(DeleteBucket { name: b("keyed") });

    // Default retentions in years.
    let in_years = |bucket: &str, years| SetObjectLockConfigInYears {
        bucket: b(bucket),
        mode: LockMode::Compliance,
        years,
    };
    s.run(in_years("locked", 1));
    s.put("locked", "yearly", "y1");
    s.run(in_years("locked", 0));
    s.run(in_years("locked", u32::MAX));
    s.run(in_years("nothere", 1));
    s.run(in_years("plain", 1));

    // A legal hold lifted and remembered.
    let release = |bucket: &str, key: &str| ReleaseObjectLegalHold {
        bucket: b(bucket),
        key: b(key),
        version_id: None,
    };
    s.run(release("locked", "yearly"));
    s.run(release("locked", "never-written"));
    s.run(release("nothere", "yearly"));

    // Renames that refuse to move locked versions: refused in a bucket
    // with Object Lock, as they are elsewhere.
    let rename = |bucket: &str, source: &str, destination: &str| {
        RenameObjectUnlessLocked(RenameObject {
            bucket: b(bucket),
            source: b(source),
            destination: b(destination),
            source_condition: ObjectCondition::default(),
            destination_condition: ObjectCondition::default(),
            client_token: None,
        })
    };
    s.run(rename("locked", "doc", "moved"));
    s.run(rename("locked", "yearly", "moved"));
    s.put("plain", "mv/one", "m1");
    s.run(rename("plain", "mv/one", "mv/two"));
    s.run(rename("nothere", "doc", "moved"));
    let rename_directory = |bucket: &str, source: &str, destination: &str| {
        RenameDirectoryUnlessLocked(RenameDirectory {
            bucket: b(bucket),
            source: b(source),
            destination: b(destination),
            replace: false,
            now_ms: 70,
            client_token: None,
        })
    };
    s.run(rename_directory("locked", "d/", "e/"));
    s.run(rename_directory("plain", "mv/", "mw/"));
    s
}

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/outcomes.golden")
}

#[test]
fn every_command_answers_as_released() {
    let script = script();
    let missing: Vec<&str> = Command::NAMES
        .iter()
        .copied()
        .filter(|name| !script.covered.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "commands the script leaves out: {missing:?}"
    );

    let actual = script.lines.join("\n") + "\n";
    if std::env::var_os("ARBOR_BLESS").is_some() {
        std::fs::write(golden(), &actual).expect("write the golden file");
        return;
    }
    let expected = std::fs::read_to_string(golden()).expect("read the golden file");
    let (expected, actual): (Vec<&str>, Vec<&str>) =
        (expected.lines().collect(), actual.lines().collect());
    for (line, (want, got)) in expected.iter().zip(&actual).enumerate() {
        assert_eq!(
            got,
            want,
            "outcome {} changed; a released command's outcome must not (see this file's header)",
            line + 1
        );
    }
    assert_eq!(
        actual.len(),
        expected.len(),
        "the script and outcomes.golden differ in length: re-record with ARBOR_BLESS=1"
    );
}
