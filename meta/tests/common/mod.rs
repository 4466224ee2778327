#![allow(dead_code)] // each test binary uses a different subset

//! The state machine alone, as the suites drive it: the state tables in an
//! in-memory redb, one command per log entry, queries on a fresh read
//! transaction. No raft, no disk.

use arbor_meta::MetaError;
use arbor_meta::command::{Command, CommandResult, apply_command};
use arbor_meta::namespace::CreateBucket;
use arbor_meta::op::Query;
use arbor_meta::records::{ObjectData, ObjectHeaders, ObjectVersion};
use arbor_meta::schema;
use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase};

pub struct Fixture {
    pub db: Database,
    /// The index of the last entry applied.
    pub log_index: u64,
}

impl Fixture {
    /// Empty state tables, nothing applied.
    pub fn empty() -> Self {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .expect("create db");
        let txn = db.begin_write().expect("begin");
        schema::create_state_tables(&txn).expect("create tables");
        txn.commit().expect("commit");
        Fixture { db, log_index: 0 }
    }

    /// With the bucket `name`, created at 1 ms.
    pub fn with_bucket(name: &str) -> Self {
        let mut fixture = Fixture::empty();
        fixture.bucket(name);
        fixture
    }

    /// Creates the bucket `name` (at 1 ms); panics if refused.
    pub fn bucket(&mut self, name: &str) {
        self.apply(CreateBucket {
            name: name.to_owned(),
            created_ms: 1,
        })
        .expect("create bucket");
    }

    /// Applies `command` alone as the next log entry, in its own write
    /// transaction.
    pub fn apply(&mut self, command: impl Into<Command>) -> CommandResult {
        self.log_index += 1;
        let txn = self.db.begin_write().expect("begin");
        let result = apply_command(&txn, self.log_index, 0, &command.into()).expect("apply");
        txn.commit().expect("commit");
        result
    }

    /// Answers `query` from a fresh read transaction.
    pub fn read<Q: Query>(&self, query: Q) -> Result<Q::Reply, MetaError> {
        let txn = self.db.begin_read().expect("read");
        query.read(&txn)
    }
}

/// A 3-byte inline version (`abc`) with `etag`, last modified at 7 ms,
/// for a put to stamp.
pub fn inline_version(etag: &str) -> ObjectVersion {
    ObjectVersion {
        generation: 0,
        size: 3,
        etag: etag.to_owned(),
        last_modified_ms: 7,
        headers: ObjectHeaders::default(),
        user_metadata: Vec::new(),
        checksum: None,
        storage_class: None,
        parts: Vec::new(),
        tags: Vec::new(),
        acl: Default::default(),
        data: ObjectData::Inline(b"abc".to_vec()),
        stamp: Default::default(),
    }
}
