//! The inode tree's records: buckets, children, inodes, and the GC queue.

use serde::{Deserialize, Serialize};

use crate::records::object::{BucketInfo, ChunkId, ObjectCondition};

/// The root directory: the parent of every bucket's directory.
pub const ROOT_INODE: u64 = 1;

/// A bucket: what ListBuckets shows plus the inode of its directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub info: BucketInfo,
    /// The bucket's directory, a child of [`ROOT_INODE`] named `<bucket>/`.
    pub root: u64,
}

/// An entry of the children index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildRecord {
    /// Stored name ends in `/`.
    Directory { inode: u64 },
    /// Stored name has no `/`: the object's current version, with what a
    /// listing shows so a listing never reads version records.
    Object(ObjectEntry),
}

/// The current version of an object, as the children index points at it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub inode: u64,
    /// With `inode` and `position`, the key of the current version in
    /// `ns_versions`: the log index of the entry that committed it.
    pub generation: u64,
    /// Index of the committing command within its log entry (group commit
    /// puts many commands in one entry, so one generation may hold several
    /// versions of one key; the position tells them apart).
    pub position: u32,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
    pub storage_class: Option<String>,
    /// The current version is a delete marker: the key exists only for
    /// ListObjectVersions and reads naming a version.
    pub delete_marker: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InodeKind {
    Directory,
    Object,
}

/// Where an inode sits in the tree (its parent and its stored name there).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InodeRecord {
    pub parent: u64,
    #[serde(with = "super::byte_vec")]
    pub stored_name: Vec<u8>,
    pub kind: InodeKind,
}

/// Chunks whose last reference went away, and what held it: the collector
/// deletes them after a grace period, then acknowledges the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcRecord {
    pub origin: GcOrigin,
    pub chunks: Vec<ChunkId>,
}

/// What referenced the chunks of a [`GcRecord`] before it was retired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GcOrigin {
    /// An object version, replaced or deleted.
    Version {
        inode: u64,
        generation: u64,
        /// Position of the retired version within its log entry.
        position: u32,
    },
    /// A multipart part: replaced, aborted, expired, or left out of Complete.
    Part {
        upload_id: [u8; 16],
        part_number: u32,
    },
}

/// One GC-queue record and its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcEntry {
    pub key: (u64, u32),
    pub record: GcRecord,
}

/// A subtree a recursive delete detached from the tree: nothing reaches it
/// any more, and the reclaimer releases it in bounded batches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// The detached directory's inode.
    pub root: u64,
    /// Where it was, for status and logs.
    pub bucket: String,
    pub prefix: String,
    /// When the delete was proposed (the proposer's clock).
    pub deleted_ms: i64,
}

/// What a client token (`x-amz-client-token`) was used for: the parameters
/// of the rename it applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub bucket: String,
    pub source: String,
    pub destination: String,
    pub source_condition: ObjectCondition,
    pub destination_condition: ObjectCondition,
    /// A directory rename that replaces its destination.
    pub replace: bool,
}
