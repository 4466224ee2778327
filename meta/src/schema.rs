//! The namespace's redb tables, their key encodings and record formats.
//!
//! Every state table maps bytes to bytes so snapshots can dump and restore
//! them generically. Integers in keys are big-endian so byte order is
//! numeric order. Values are postcard records behind a one-byte format
//! version; a record that fails to decode is [`MetaError::Corrupt`].
//!
//! | table          | key                                   | value            |
//! |----------------|---------------------------------------|------------------|
//! | `ns_buckets`   | bucket name bytes                     | [`BucketRecord`] |
//! | `ns_children`  | parent inode BE ++ stored name        | [`ChildRecord`]  |
//! | `ns_inodes`    | inode BE                              | [`InodeRecord`]  |
//! | `ns_versions`  | inode BE ++ generation BE ++ position (u32) BE | [`ObjectVersion`]|
//! | `ns_gc_queue`  | log index BE ++ sequence (u32) BE     | [`GcRecord`]     |
//! | `ns_counters`  | counter name (`next_inode`, `orphan_horizon_ms`) | `u64` / `i64` record |
//! | `ns_chunk_refs` | chunk id (16 bytes)                  | [`crate::records::ChunkRecord`] |
//! | `ns_server_chunks` | server id BE ++ chunk id          | empty            |
//! | `ns_under_replicated` | chunk id                       | empty            |
//! | `ns_uploads`   | upload id (16 bytes)                  | [`crate::records::UploadRecord`] |
//! | `ns_upload_index` | bucket length (1 byte) ++ bucket ++ key ++ 0 ++ upload id | empty |
//! | `ns_parts`     | upload id ++ part number BE           | [`crate::records::PartRecord`] |
//! | `ns_chunk_servers` | server id BE                      | [`crate::records::ChunkServerRecord`] |
//! | `ns_dir_key_len` | directory inode BE                  | `u32`: longest key suffix below it (bound) |
//! | `ns_reclaim`   | tombstone sequence BE                 | [`crate::records::tree::Tombstone`] |
//! | `ns_client_tokens` | client token bytes                | [`crate::records::tree::TokenRecord`] |
//! | `ns_client_token_order` | log index BE ‖ position BE   | client token bytes |
//! | `ns_bucket_tags` | bucket name bytes                   | tags (`Vec<(String, String)>`) |
//! | `ns_completed_uploads` | upload id (16 bytes)         | [`crate::records::upload::CompletedUpload`] |
//! | `ns_bucket_versioning` | bucket name bytes            | [`crate::records::object::Versioning`] |
//! | `ns_bucket_lock` | bucket name bytes                  | [`crate::records::object::ObjectLockConfig`] |
//! | `ns_version_locks` | version key (as `ns_versions`)   | [`crate::records::object::VersionLock`] |
//! | `ns_access_keys` | access key id bytes                 | [`crate::records::access::AccessKeyRecord`] |
//! | `ns_bucket_policies` | bucket name bytes               | the policy's JSON (`String`) |
//! | `ns_public_access_blocks` | bucket name bytes          | [`crate::records::access::PublicAccessBlock`] |
//! | `ns_bucket_cors` | bucket name bytes                   | `Vec<`[`crate::records::access::CorsRule`]`>` |
//! | `ns_bucket_lifecycle` | bucket name bytes              | [`crate::records::lifecycle::LifecycleConfig`] |
//! | `ns_bucket_acls` | bucket name bytes                   | [`crate::records::access::BucketAcl`] |
//! | `ns_bucket_lifecycle_filters` | bucket name bytes      | `Vec<`[`crate::records::lifecycle::LifecycleFilter`]`>`, one per rule |
//! | `ns_bucket_lock_years` | bucket name bytes             | `u32`: the default retention in years, as given |
//!
//! The Raft state machine keeps its own tables beside these in the same
//! file (`raft::state_store`: last applied, membership, snapshot,
//! remembered request results).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{MetaError, Result};
pub use crate::records::tree::{
    BucketRecord, ChildRecord, GcOrigin, GcRecord, InodeKind, InodeRecord, ObjectEntry,
};

/// Every state table is bytes->bytes so snapshots can dump/restore them generically.
pub type StateTable = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;

/// Bucket name → [`BucketRecord`].
pub const BUCKETS: StateTable = StateTable::new("ns_buckets");
/// `child_key(parent, stored_name)` → [`ChildRecord`].
pub const CHILDREN: StateTable = StateTable::new("ns_children");
/// `inode_key(inode)` → [`InodeRecord`].
pub const INODES: StateTable = StateTable::new("ns_inodes");
/// `version_key(inode, generation, position)` → `ObjectVersion`.
pub const VERSIONS: StateTable = StateTable::new("ns_versions");
/// `gc_key(log_index, sequence)` → [`GcRecord`]: chunks no version uses any more.
pub const GC_QUEUE: StateTable = StateTable::new("ns_gc_queue");
/// Counter name → `u64`.
pub const COUNTERS: StateTable = StateTable::new("ns_counters");

/// Every namespace table, for snapshot dump/restore.
/// upload id (16 bytes) → [`crate::records::UploadRecord`].
pub const UPLOADS: StateTable = StateTable::new("ns_uploads");
/// `upload_index_key(bucket, key, upload id)` → empty: in-progress uploads in
/// ListMultipartUploads order (bucket, key, initiation).
pub const UPLOAD_INDEX: StateTable = StateTable::new("ns_upload_index");
/// upload id ‖ part number BE → [`crate::records::PartRecord`].
pub const PARTS: StateTable = StateTable::new("ns_parts");
/// chunk id (16 bytes) → [`crate::records::ChunkRecord`]: how many versions
/// and parts reference the chunk and where its replicas are. A chunk whose
/// count reached zero is never referenced again (see
/// `command::ChunkOwnership`); its row goes when the collector is done.
pub const CHUNK_REFS: StateTable = StateTable::new("ns_chunk_refs");
/// server id BE ‖ chunk id → empty: the chunks each server should hold (an
/// index of `ns_chunk_refs`).
pub const SERVER_CHUNKS: StateTable = StateTable::new("ns_server_chunks");
/// chunk id → empty: live chunks with fewer replicas than their factor (an
/// index of `ns_chunk_refs`), the healer's work list.
pub const UNDER_REPLICATED: StateTable = StateTable::new("ns_under_replicated");
/// server id BE → [`crate::records::ChunkServerRecord`].
pub const CHUNK_SERVERS: StateTable = StateTable::new("ns_chunk_servers");
/// directory inode BE → `u32`: an upper bound on the bytes a key below the
/// directory has after the directory's own prefix. Raised by every commit
/// under it, never lowered by deletes; a directory rename checks it so no
/// renamed key grows past the key-length limit. A directory without a row
/// (written before the table existed) counts as unbounded.
pub const DIR_KEY_LEN: StateTable = StateTable::new("ns_dir_key_len");
/// tombstone sequence BE → [`crate::records::tree::Tombstone`]: detached
/// subtrees of recursive deletes whose metadata and chunks the reclaimer
/// has still to release, oldest first.
pub const RECLAIM: StateTable = StateTable::new("ns_reclaim");
/// client token → [`crate::records::tree::TokenRecord`]: the renames a
/// client token (`x-amz-client-token`) already applied, so a retry with
/// the same token answers as the first did and a reuse with other
/// parameters is refused. At most [`crate::limits::CLIENT_TOKENS_MAX`].
pub const CLIENT_TOKENS: StateTable = StateTable::new("ns_client_tokens");
/// log index BE ‖ position BE → client token: the tokens oldest first, so
/// the oldest goes when the table is full.
pub const CLIENT_TOKEN_ORDER: StateTable = StateTable::new("ns_client_token_order");
/// upload id → [`crate::records::upload::CompletedUpload`]: the last
/// [`crate::limits::COMPLETED_UPLOADS_MAX`] completed uploads (by upload
/// id, i.e. initiation order), for retried completions.
pub const COMPLETED_UPLOADS: StateTable = StateTable::new("ns_completed_uploads");
/// bucket name → the bucket's tags, sorted by key (PutBucketTagging); no
/// row when it has none. Kept beside `ns_buckets` so bucket records keep
/// their format.
pub const BUCKET_TAGS: StateTable = StateTable::new("ns_bucket_tags");
/// bucket name → [`crate::records::object::Versioning`]; no row while the
/// bucket is unversioned. Kept beside `ns_buckets` so bucket records keep
/// their format.
pub const BUCKET_VERSIONING: StateTable = StateTable::new("ns_bucket_versioning");
/// bucket name → [`crate::records::object::ObjectLockConfig`]: the buckets
/// with Object Lock enabled.
pub const BUCKET_LOCK: StateTable = StateTable::new("ns_bucket_lock");
/// version key → [`crate::records::object::VersionLock`]: the retention
/// and legal hold of a version; no row when it has neither.
pub const VERSION_LOCKS: StateTable = StateTable::new("ns_version_locks");
/// access key id → [`crate::records::access::AccessKeyRecord`]: the keys
/// beside the administrator's, with sealed secrets and grants.
pub const ACCESS_KEYS: StateTable = StateTable::new("ns_access_keys");
/// bucket name → the bucket's policy, JSON as PutBucketPolicy gave it.
pub const BUCKET_POLICIES: StateTable = StateTable::new("ns_bucket_policies");
/// bucket name → [`crate::records::access::PublicAccessBlock`].
pub const PUBLIC_ACCESS_BLOCKS: StateTable = StateTable::new("ns_public_access_blocks");
/// bucket name → the bucket's CORS rules (`Vec<CorsRule>`), in their
/// order; no row when it has none.
pub const BUCKET_CORS: StateTable = StateTable::new("ns_bucket_cors");
/// bucket name → [`crate::records::lifecycle::LifecycleConfig`].
pub const BUCKET_LIFECYCLE: StateTable = StateTable::new("ns_bucket_lifecycle");
/// bucket name → [`crate::records::access::BucketAcl`]; no row while the
/// bucket has the default (private, ACLs enabled).
pub const BUCKET_ACLS: StateTable = StateTable::new("ns_bucket_acls");
/// bucket name → the filters of its lifecycle rules beside their prefixes
/// (`Vec<LifecycleFilter>`, one per rule, in order); no row when no rule
/// filters by tag or size. Apart from `ns_bucket_lifecycle`, so its
/// records stay as older releases read them.
pub const BUCKET_LIFECYCLE_FILTERS: StateTable = StateTable::new("ns_bucket_lifecycle_filters");
/// bucket name → `u32`: the length in years of the bucket's default
/// retention, when PutObjectLockConfiguration named years; no row when it
/// named days. Apart from `ns_bucket_lock`, so its records stay as older
/// releases read them.
pub const BUCKET_LOCK_YEARS: StateTable = StateTable::new("ns_bucket_lock_years");
pub const STATE_TABLES: &[StateTable] = &[
    BUCKETS,
    CHILDREN,
    INODES,
    VERSIONS,
    GC_QUEUE,
    COUNTERS,
    UPLOADS,
    UPLOAD_INDEX,
    PARTS,
    CHUNK_REFS,
    SERVER_CHUNKS,
    UNDER_REPLICATED,
    CHUNK_SERVERS,
    DIR_KEY_LEN,
    RECLAIM,
    CLIENT_TOKENS,
    CLIENT_TOKEN_ORDER,
    COMPLETED_UPLOADS,
    BUCKET_TAGS,
    BUCKET_VERSIONING,
    BUCKET_LOCK,
    VERSION_LOCKS,
    ACCESS_KEYS,
    BUCKET_POLICIES,
    PUBLIC_ACCESS_BLOCKS,
    BUCKET_CORS,
    BUCKET_LIFECYCLE,
    BUCKET_ACLS,
    BUCKET_LIFECYCLE_FILTERS,
    BUCKET_LOCK_YEARS,
];

/// Opens each state table so it exists (reads fail on a missing table).
pub fn create_state_tables(txn: &redb::WriteTransaction) -> Result<()> {
    for table in STATE_TABLES {
        txn.open_table(*table)?;
    }
    Ok(())
}

/// The fixed inode of the root directory; buckets are its children. It has
/// no row in `ns_inodes`.
pub use crate::records::tree::ROOT_INODE;
/// The first inode the allocator hands out.
pub const FIRST_ALLOCATED_INODE: u64 = 2;
/// `ns_counters` key of the next free inode id.
pub const COUNTER_NEXT_INODE: &[u8] = b"next_inode";
/// `ns_counters` key of the orphan horizon (see `chunks`), an `i64` record.
pub const COUNTER_ORPHAN_HORIZON: &[u8] = b"orphan_horizon_ms";
/// The next tombstone sequence number.
pub const COUNTER_NEXT_TOMBSTONE: &[u8] = b"next_tombstone";
/// How many objects the reclaimer has released, ever.
pub const COUNTER_RECLAIMED_OBJECTS: &[u8] = b"reclaimed_objects";

/// Format version byte in front of every record.
/// 2: chunk records with replicas (1 held a bare reference count).
pub const RECORD_FORMAT_VERSION: u8 = 2;

/// Key of the upload index: bucket length (1 byte) ‖ bucket ‖ key ‖ 0 ‖ id.
/// Bucket names are at most 63 bytes and keys hold no NUL in practice (XML
/// cannot carry one), so the order is (bucket, key, upload id).
pub fn upload_index_key(bucket: &str, key: &str, upload_id: &[u8; 16]) -> Vec<u8> {
    let mut out = upload_index_prefix(bucket);
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    out.extend_from_slice(upload_id);
    out
}

/// The prefix of every upload index key of `bucket`.
pub fn upload_index_prefix(bucket: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + bucket.len() + 32);
    // Bucket names are validated to at most 63 bytes before any upload exists.
    out.push(u8::try_from(bucket.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(bucket.as_bytes());
    out
}

/// upload id ‖ part number BE.
pub fn part_key(upload_id: &[u8; 16], part_number: u32) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..16].copy_from_slice(upload_id);
    out[16..].copy_from_slice(&part_number.to_be_bytes());
    out
}

/// `[RECORD_FORMAT_VERSION] ++ postcard(value)`.
pub fn encode_record<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_extend(value, vec![RECORD_FORMAT_VERSION])
        .map_err(|e| MetaError::Corrupt(format!("cannot encode record: {e}")))
}

/// Inverse of [`encode_record`]; trailing bytes or an unknown version are corruption.
pub fn decode_record<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(MetaError::Corrupt("empty record".to_owned()));
    };
    if version != RECORD_FORMAT_VERSION {
        return Err(MetaError::Corrupt(format!(
            "unknown record format version {version}"
        )));
    }
    match postcard::take_from_bytes(body) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(MetaError::Corrupt(format!(
            "{} trailing bytes in record",
            rest.len()
        ))),
        Err(e) => Err(MetaError::Corrupt(format!("cannot decode record: {e}"))),
    }
}

pub fn inode_key(inode: u64) -> [u8; 8] {
    inode.to_be_bytes()
}

/// `parent BE ++ stored_name`: one directory's children are one key range.
pub fn child_key(parent: u64, stored_name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + stored_name.len());
    key.extend_from_slice(&parent.to_be_bytes());
    key.extend_from_slice(stored_name);
    key
}

/// Inverse of [`child_key`].
pub fn split_child_key(key: &[u8]) -> Result<(u64, &[u8])> {
    let (parent, stored_name) = split_u64(key)?;
    Ok((parent, stored_name))
}

/// `inode BE ++ generation BE ++ position BE`: an object's versions are one
/// key range, in commit order; two versions committed by one log entry
/// differ by their position in it.
pub fn version_key(inode: u64, generation: u64, position: u32) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..8].copy_from_slice(&inode.to_be_bytes());
    key[8..16].copy_from_slice(&generation.to_be_bytes());
    key[16..].copy_from_slice(&position.to_be_bytes());
    key
}

/// `log_index BE ++ sequence BE`: the queue is in commit order.
pub fn gc_key(log_index: u64, sequence: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&log_index.to_be_bytes());
    key[8..].copy_from_slice(&sequence.to_be_bytes());
    key
}

/// The first row key of `inode`'s versions and the first key past them.
pub fn version_range(inode: u64) -> ([u8; 20], Option<[u8; 20]>) {
    let end = inode.checked_add(1).map(|next| version_key(next, 0, 0));
    (version_key(inode, 0, 0), end)
}

/// Inverse of [`version_key`].
pub fn split_version_key(key: &[u8]) -> Result<(u64, u64, u32)> {
    let (inode, rest) = split_u64(key)?;
    let (generation, rest) = split_u64(rest)?;
    let position = <[u8; 4]>::try_from(rest)
        .map_err(|_| MetaError::Corrupt(format!("bad version key length {}", key.len())))?;
    Ok((inode, generation, u32::from_be_bytes(position)))
}

/// Inverse of [`gc_key`].
pub fn split_gc_key(key: &[u8]) -> Result<(u64, u32)> {
    let (log_index, rest) = split_u64(key)?;
    let sequence = <[u8; 4]>::try_from(rest)
        .map_err(|_| MetaError::Corrupt(format!("bad gc queue key length {}", key.len())))?;
    Ok((log_index, u32::from_be_bytes(sequence)))
}

/// Splits a leading big-endian u64 off a key.
fn split_u64(bytes: &[u8]) -> Result<(u64, &[u8])> {
    match bytes.split_first_chunk::<8>() {
        Some((head, rest)) => Ok((u64::from_be_bytes(*head), rest)),
        None => Err(MetaError::Corrupt(format!(
            "key of {} bytes is too short",
            bytes.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let record = ChildRecord::Directory { inode: 42 };
        let bytes = encode_record(&record).expect("encode");
        assert_eq!(bytes[0], RECORD_FORMAT_VERSION);
        assert_eq!(
            decode_record::<ChildRecord>(&bytes).expect("decode"),
            record
        );

        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            decode_record::<ChildRecord>(&trailing),
            Err(MetaError::Corrupt(_))
        ));
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 99;
        assert!(matches!(
            decode_record::<ChildRecord>(&wrong_version),
            Err(MetaError::Corrupt(_))
        ));
        assert!(matches!(
            decode_record::<ChildRecord>(&[]),
            Err(MetaError::Corrupt(_))
        ));
        assert!(matches!(
            decode_record::<ChildRecord>(&[RECORD_FORMAT_VERSION, 7]),
            Err(MetaError::Corrupt(_))
        ));
    }

    #[test]
    fn keys_round_trip_and_sort_numerically() {
        assert_eq!(
            split_child_key(&child_key(7, b"a/")).expect("split"),
            (7, &b"a/"[..])
        );
        assert!(child_key(1, b"\xff") < child_key(2, b""));
        assert!(version_key(1, u64::MAX, u32::MAX) < version_key(2, 0, 0));
        assert!(version_key(1, 5, u32::MAX) < version_key(1, 6, 0));
        assert!(version_key(1, 5, 0) < version_key(1, 5, 1));
        assert_eq!(
            split_version_key(&version_key(3, 9, 2)).expect("split"),
            (3, 9, 2)
        );
        assert!(split_version_key(b"short").is_err());
        let (start, end) = version_range(4);
        assert!(
            start <= version_key(4, 0, 0) && version_key(4, u64::MAX, u32::MAX) < end.expect("end")
        );
        assert_eq!(version_range(u64::MAX).1, None);
        assert_eq!(split_gc_key(&gc_key(5, 3)).expect("split"), (5, 3));
        assert!(gc_key(5, u32::MAX) < gc_key(6, 0));
        assert!(split_gc_key(b"short").is_err());
    }
}
