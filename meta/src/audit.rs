//! Checks the state machine's cross-table invariants on one read
//! transaction: what every replica's namespace must satisfy after every
//! applied entry, whatever the commands were. The simulation
//! (meta/tests/simulation.rs) runs it on every node after every run; an
//! operator tool may run it on a copy of `state.redb`.
//!
//! 1. The children index matches the inodes: every `ns_children` row
//!    names an inode whose record has that parent, name and kind; every
//!    inode is named by its parent's children row, except the roots of
//!    subtrees a recursive delete detached (`ns_reclaim`); every bucket's
//!    root is its `<bucket>/` row under the root directory.
//! 2. An object's current version exists: the `(inode, generation,
//!    position)` of every object row is an `ns_versions` row, and every
//!    version belongs to an object inode.
//! 3. Reference counts match the holders: each `ns_chunk_refs` count is
//!    the number of chunk references among the versions and parts, and
//!    every referenced chunk has a record.
//! 4. No chunk is both referenced and queued for collection: a chunk in
//!    the GC queue has a count of 0 (or no record, once acknowledged), and
//!    a chunk with a count of 0 is in the queue.
//!
//! Reading is linear in the state's size: a diagnostic, not a request path.

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadTransaction, ReadableTable};

use crate::error::Result;
use crate::keys::directory_stored_name;
use crate::records::chunk::ChunkRecord;
use crate::records::object::{ChunkId, ObjectVersion};
use crate::records::tree::{
    BucketRecord, ChildRecord, GcRecord, InodeKind, InodeRecord, ROOT_INODE, Tombstone,
};
use crate::records::upload::PartRecord;
use crate::schema::{self, decode_record, split_child_key, split_version_key};

/// Every broken invariant found (empty: none), each described in a line.
/// `Err` only when a table cannot be read or a record decoded.
pub fn audit(txn: &ReadTransaction) -> Result<Vec<String>> {
    let mut broken = Vec::new();

    let mut inodes: BTreeMap<u64, InodeRecord> = BTreeMap::new();
    for row in txn.open_table(schema::INODES)?.iter()? {
        let (key, value) = row?;
        let (inode, _) = split_u64(key.value(), "inode key", &mut broken);
        inodes.insert(inode, decode_record(value.value())?);
    }
    let mut children: BTreeMap<(u64, Vec<u8>), ChildRecord> = BTreeMap::new();
    for row in txn.open_table(schema::CHILDREN)?.iter()? {
        let (key, value) = row?;
        let (parent, name) = split_child_key(key.value())?;
        children.insert((parent, name.to_vec()), decode_record(value.value())?);
    }
    let mut detached = BTreeSet::new();
    for row in txn.open_table(schema::RECLAIM)?.iter()? {
        let (_, value) = row?;
        let tombstone: Tombstone = decode_record(value.value())?;
        detached.insert(tombstone.root);
    }
    let mut versions: BTreeMap<(u64, u64, u32), ObjectVersion> = BTreeMap::new();
    for row in txn.open_table(schema::VERSIONS)?.iter()? {
        let (key, value) = row?;
        versions.insert(
            split_version_key(key.value())?,
            decode_record(value.value())?,
        );
    }

    // 1 and 2: the children index against the inodes and versions.
    for ((parent, name), child) in &children {
        let (inode, kind) = match child {
            ChildRecord::Directory { inode } => (*inode, InodeKind::Directory),
            ChildRecord::Object(entry) => {
                let at = (entry.inode, entry.generation, entry.position);
                if !versions.contains_key(&at) {
                    broken.push(format!(
                        "child {parent}/{} names version {at:?}, which does not exist",
                        show(name)
                    ));
                }
                (entry.inode, InodeKind::Object)
            }
        };
        match inodes.get(&inode) {
            None => broken.push(format!(
                "child {parent}/{} names inode {inode}, which does not exist",
                show(name)
            )),
            Some(record) => {
                if record.parent != *parent || record.stored_name != *name || record.kind != kind {
                    broken.push(format!(
                        "child {parent}/{} ({kind:?}) names inode {inode}, whose record says {}/{} ({:?})",
                        show(name),
                        record.parent,
                        show(&record.stored_name),
                        record.kind
                    ));
                }
            }
        }
    }
    for (inode, record) in &inodes {
        let named = children
            .get(&(record.parent, record.stored_name.clone()))
            .is_some_and(|child| child_inode(child) == *inode);
        if !named && !detached.contains(inode) {
            broken.push(format!(
                "inode {inode} ({}/{}) is not in its parent's children",
                record.parent,
                show(&record.stored_name)
            ));
        }
    }
    for row in txn.open_table(schema::BUCKETS)?.iter()? {
        let (key, value) = row?;
        let name = String::from_utf8_lossy(key.value()).into_owned();
        let bucket: BucketRecord = decode_record(value.value())?;
        let child = children.get(&(ROOT_INODE, directory_stored_name(&name)));
        if !matches!(child, Some(ChildRecord::Directory { inode }) if *inode == bucket.root) {
            broken.push(format!(
                "bucket {name:?}: root inode {} is not its directory under the root",
                bucket.root
            ));
        }
    }
    for (inode, generation, position) in versions.keys() {
        if !inodes
            .get(inode)
            .is_some_and(|r| r.kind == InodeKind::Object)
        {
            broken.push(format!(
                "version {inode}/{generation}/{position} belongs to no object inode"
            ));
        }
    }

    // 3: reference counts against the versions and parts holding them.
    let mut held: BTreeMap<ChunkId, u64> = BTreeMap::new();
    for version in versions.values() {
        for chunk in version.chunks() {
            *held.entry(chunk.id).or_default() += 1;
        }
    }
    for row in txn.open_table(schema::PARTS)?.iter()? {
        let (_, value) = row?;
        let part: PartRecord = decode_record(value.value())?;
        for chunk in &part.chunks {
            *held.entry(chunk.id).or_default() += 1;
        }
    }
    let mut records: BTreeMap<ChunkId, ChunkRecord> = BTreeMap::new();
    for row in txn.open_table(schema::CHUNK_REFS)?.iter()? {
        let (key, value) = row?;
        let Ok(id) = <[u8; 16]>::try_from(key.value()).map(ChunkId) else {
            broken.push(format!("chunk key of {} bytes", key.value().len()));
            continue;
        };
        records.insert(id, decode_record(value.value())?);
    }
    for (id, record) in &records {
        let holders = held.get(id).copied().unwrap_or(0);
        if record.refs != holders {
            broken.push(format!(
                "chunk {id}: count {} but {holders} versions and parts reference it",
                record.refs
            ));
        }
    }
    for (id, holders) in &held {
        if !records.contains_key(id) {
            broken.push(format!("chunk {id}: {holders} references but no record"));
        }
    }

    // 4: the GC queue against the counts.
    let mut queued = BTreeSet::new();
    for row in txn.open_table(schema::GC_QUEUE)?.iter()? {
        let (_, value) = row?;
        let record: GcRecord = decode_record(value.value())?;
        for id in record.chunks {
            if held.contains_key(&id) || records.get(&id).is_some_and(|r| r.refs > 0) {
                broken.push(format!(
                    "chunk {id} is queued for collection and referenced"
                ));
            }
            queued.insert(id);
        }
    }
    for (id, record) in &records {
        if record.refs == 0 && !queued.contains(id) {
            broken.push(format!("chunk {id} has no references and is not queued"));
        }
    }
    Ok(broken)
}

fn child_inode(child: &ChildRecord) -> u64 {
    match child {
        ChildRecord::Directory { inode } => *inode,
        ChildRecord::Object(entry) => entry.inode,
    }
}

/// The big-endian u64 a key starts with (0, noted as broken, if shorter).
fn split_u64<'a>(key: &'a [u8], what: &str, broken: &mut Vec<String>) -> (u64, &'a [u8]) {
    match key.split_first_chunk::<8>() {
        Some((head, rest)) => (u64::from_be_bytes(*head), rest),
        None => {
            broken.push(format!("{what} of {} bytes", key.len()));
            (0, key)
        }
    }
}

fn show(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

#[cfg(test)]
mod tests {
    use redb::{Database, ReadableDatabase, ReadableTableMetadata, WriteTransaction};

    use super::*;
    use crate::command::{Command, apply_command};
    use crate::namespace::{CreateBucket, PutObject};
    use crate::records::object::{
        ChunkOwnership, ChunkRef, ObjectData, ObjectHeaders, WriteCondition,
    };
    use crate::schema::{child_key, encode_record, gc_key};

    fn chunk(n: u8) -> ChunkId {
        ChunkId([n; 16])
    }

    fn put(key: &str, chunks: &[u8]) -> Command {
        let refs: Vec<ChunkRef> = chunks
            .iter()
            .zip(0u64..)
            .map(|(&n, i)| ChunkRef {
                id: chunk(n),
                offset: i * 10,
                size: 10,
                sha256: [n; 32],
            })
            .collect();
        Command::PutObject(PutObject {
            bucket: "bucket".into(),
            key: key.into(),
            version: ObjectVersion {
                generation: 0,
                size: 10 * refs.len() as u64,
                etag: format!("etag-{key}"),
                last_modified_ms: 1,
                headers: ObjectHeaders::default(),
                user_metadata: Vec::new(),
                checksum: None,
                storage_class: None,
                parts: Vec::new(),
                tags: Vec::new(),
                acl: Default::default(),
                data: ObjectData::Chunks(refs),
                stamp: Default::default(),
            },
            condition: WriteCondition::None,
            ownership: ChunkOwnership::Fresh,
            placements: Vec::new(),
            lock: None,
        })
    }

    /// A bucket with `dir/a` on chunks 1 and 2 and `b` on chunk 4, whose
    /// first version (chunk 3) went to the GC queue.
    fn state() -> Database {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("in-memory db");
        let txn = db.begin_write().expect("write");
        schema::create_state_tables(&txn).expect("tables");
        let commands = [
            Command::CreateBucket(CreateBucket {
                name: "bucket".into(),
                created_ms: 1,
            }),
            put("dir/a", &[1, 2]),
            put("b", &[3]),
            put("b", &[4]),
        ];
        for (log_index, command) in (1u64..).zip(&commands) {
            let result = apply_command(&txn, log_index, 0, command).expect("apply");
            assert!(result.is_ok(), "{command:?}: {result:?}");
        }
        txn.commit().expect("commit");
        db
    }

    fn audited(db: &Database) -> Vec<String> {
        audit(&db.begin_read().expect("read")).expect("audit")
    }

    fn corrupt(db: &Database, f: impl FnOnce(&WriteTransaction)) {
        let txn = db.begin_write().expect("write");
        f(&txn);
        txn.commit().expect("commit");
    }

    fn set_refs(txn: &WriteTransaction, id: ChunkId, refs: u64) {
        let mut table = txn.open_table(schema::CHUNK_REFS).expect("table");
        let mut record: ChunkRecord = {
            let value = table.get(id.0.as_slice()).expect("get").expect("record");
            decode_record(value.value()).expect("decode")
        };
        record.refs = refs;
        let bytes = encode_record(&record).expect("encode");
        table
            .insert(id.0.as_slice(), bytes.as_slice())
            .expect("insert");
    }

    fn flagged(broken: &[String], what: &str) -> bool {
        broken.iter().any(|line| line.contains(what))
    }

    #[test]
    fn a_consistent_state_passes() {
        let db = state();
        assert_eq!(audited(&db), Vec::<String>::new());
        let txn = db.begin_read().expect("read");
        let queue = txn.open_table(schema::GC_QUEUE).expect("queue");
        assert_eq!(queue.len().expect("len"), 1, "chunk 3 is queued");
    }

    #[test]
    fn a_wrong_reference_count_is_flagged() {
        let db = state();
        corrupt(&db, |txn| set_refs(txn, chunk(1), 2));
        let broken = audited(&db);
        assert!(flagged(&broken, "count 2 but 1"), "{broken:?}");
    }

    #[test]
    fn an_inode_missing_from_the_children_index_is_flagged() {
        let db = state();
        corrupt(&db, |txn| {
            let mut children = txn.open_table(schema::CHILDREN).expect("table");
            let bucket = children
                .get(child_key(ROOT_INODE, b"bucket/").as_slice())
                .expect("get")
                .map(|v| decode_record::<ChildRecord>(v.value()).expect("decode"));
            let Some(ChildRecord::Directory { inode: root }) = bucket else {
                panic!("no bucket directory: {bucket:?}");
            };
            let removed = children
                .remove(child_key(root, b"dir/").as_slice())
                .expect("remove");
            assert!(removed.is_some(), "dir/ was a child of the bucket");
        });
        let broken = audited(&db);
        assert!(
            flagged(&broken, "is not in its parent's children"),
            "{broken:?}"
        );
    }

    #[test]
    fn a_referenced_chunk_in_the_gc_queue_is_flagged() {
        let db = state();
        corrupt(&db, |txn| {
            let record = GcRecord {
                origin: crate::records::tree::GcOrigin::Part {
                    upload_id: [0; 16],
                    part_number: 1,
                },
                chunks: vec![chunk(2)],
            };
            let bytes = encode_record(&record).expect("encode");
            txn.open_table(schema::GC_QUEUE)
                .expect("queue")
                .insert(gc_key(99, 0).as_slice(), bytes.as_slice())
                .expect("insert");
        });
        let broken = audited(&db);
        assert!(
            flagged(&broken, "queued for collection and referenced"),
            "{broken:?}"
        );
    }

    #[test]
    fn an_unreferenced_chunk_out_of_the_gc_queue_is_flagged() {
        let db = state();
        corrupt(&db, |txn| {
            let mut queue = txn.open_table(schema::GC_QUEUE).expect("queue");
            let first = queue
                .first()
                .expect("first")
                .map(|(k, _)| k.value().to_vec());
            queue
                .remove(first.expect("a queued record").as_slice())
                .expect("remove");
        });
        let broken = audited(&db);
        assert!(
            flagged(&broken, "no references and is not queued"),
            "{broken:?}"
        );
    }
}
