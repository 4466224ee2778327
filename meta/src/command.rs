//! Raft commands and their replies. A command is everything `apply` needs:
//! timestamps and ids are chosen by the proposer, so apply is deterministic.

use serde::{Deserialize, Serialize};

use crate::chunks::{ChunkPlacement, ChunkRecord};
use crate::error::MetaError;
use crate::multipart::{CompletedPart, PartRecord, UploadId, UploadRecord};
use crate::object::{
    BucketInfo, ChunkId, ObjectChecksum, ObjectData, ObjectVersion, OverwritePolicy,
};
use crate::registry::{ChunkServerRecord, ServerId, ServerStatus};

/// An expectation on the current version of a key, checked inside apply
/// (compare-and-swap; brief.md §3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteCondition {
    #[default]
    None,
    /// `If-None-Match: *`: the key must not exist.
    IfNoneMatchAny,
    /// `If-Match: <etag>` (hex, no quotes): the key must exist with this ETag.
    IfMatch(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    CreateBucket {
        name: String,
        created_ms: i64,
    },
    DeleteBucket {
        name: String,
    },
    /// Make `version` the current version of `bucket/key`, creating the
    /// directories on its path in the same transaction.
    PutObject {
        bucket: String,
        key: String,
        version: ObjectVersion,
        condition: WriteCondition,
        /// Whether the version's chunks were just written for it, or are
        /// shared with live versions (CopyObject).
        ownership: ChunkOwnership,
        /// Where the fresh chunks' replicas are (empty for a local store).
        placements: Vec<ChunkPlacement>,
    },
    /// Remove the current version of `bucket/key` and every directory left
    /// empty by it. Deleting a missing key succeeds (S3 semantics).
    DeleteObject {
        bucket: String,
        key: String,
    },
    /// DeleteObject for each key, in one command (S3's DeleteObjects):
    /// each key's outcome is reported on its own.
    DeleteObjects {
        bucket: String,
        keys: Vec<String>,
    },
    CreateMultipartUpload {
        upload: UploadRecord,
    },
    /// Record (or replace) one part of an upload.
    UploadPart {
        upload_id: UploadId,
        part: PartRecord,
        /// Chunks of `part` shared with live versions (UploadPartCopy): each
        /// must still be referenced, else `Conflict`. The rest are fresh.
        shared: Vec<ChunkId>,
        /// Where the fresh chunks' replicas are (empty for a local store).
        placements: Vec<ChunkPlacement>,
    },
    /// Check `parts` against the stored parts and commit the object they
    /// form, all or nothing. `checksum` is the object's checksum as the
    /// proposer computed it from the parts' checksums in `parts`.
    CompleteMultipartUpload {
        upload_id: UploadId,
        parts: Vec<CompletedPart>,
        checksum: Option<ObjectChecksum>,
        last_modified_ms: i64,
        condition: WriteCondition,
    },
    AbortMultipartUpload {
        upload_id: UploadId,
    },
    /// Abort uploads initiated before the given time (chosen by the
    /// proposer), at most `limit` of them.
    ExpireUploads {
        initiated_before_ms: i64,
        limit: u32,
    },
    /// Replace the tags of the current version of `bucket/key` (its ETag and
    /// last-modified time stay).
    PutObjectTags {
        bucket: String,
        key: String,
        tags: Vec<(String, String)>,
    },
    /// Set what writes to existing keys of `bucket` need.
    SetOverwritePolicy {
        bucket: String,
        policy: OverwritePolicy,
    },
    /// A chunk server (re-)registers; `now_ms` is the proposer's clock.
    RegisterChunkServer {
        id: ServerId,
        addr: String,
        zone: String,
        capacity: u64,
        now_ms: i64,
    },
    ChunkServerHeartbeat {
        id: ServerId,
        used: u64,
        chunks: u64,
        now_ms: i64,
    },
    /// An operator sets DRAINING or ONLINE.
    SetChunkServerStatus {
        id: ServerId,
        status: ServerStatus,
    },
    /// Servers whose last heartbeat is older than `now_ms - timeout_ms`
    /// become OFFLINE.
    MarkOfflineServers {
        now_ms: i64,
        timeout_ms: i64,
    },
    /// The collector deleted the chunks of these GC-queue records: the
    /// records go, with the chunks' own records.
    GcAck {
        records: Vec<(u64, u32)>,
    },
    /// The healer copied chunk `id` to the servers `add`; the servers
    /// `remove` no longer count as replicas. `Conflict` if the chunk has
    /// lost its last reference meanwhile.
    UpdateChunkReplicas {
        id: ChunkId,
        add: Vec<ServerId>,
        remove: Vec<ServerId>,
    },
    /// An orphan sweep: raise the orphan horizon to `now_ms - grace_ms` and
    /// answer which of `candidates` (chunk files on `server`, or on the
    /// local store for `None`, older than the grace) may be deleted (see
    /// `chunks`).
    CollectOrphans {
        server: Option<ServerId>,
        candidates: Vec<ChunkId>,
        now_ms: i64,
        grace_ms: i64,
    },
}

/// Who owns the chunks a new version references.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkOwnership {
    /// Written for this command: none may be referenced yet.
    Fresh,
    /// Shared with existing versions or parts: every one must still be
    /// referenced, else the command is refused (a chunk whose count reached
    /// zero may already be deleted, and is never referenced again).
    Shared,
}

impl Command {
    /// About how many bytes the command takes in a log entry (inline data
    /// and chunk lists dominate), for sizing group-commit batches.
    pub fn size_estimate(&self) -> usize {
        /// Names, ids, timestamps, headers and encoding overhead.
        const BASE: usize = 256;
        /// An encoded `ChunkRef`: id, offset, size, SHA-256.
        const CHUNK_REF: usize = 16 + 8 + 8 + 32;
        match self {
            Command::CreateBucket { .. }
            | Command::DeleteBucket { .. }
            | Command::AbortMultipartUpload { .. }
            | Command::ExpireUploads { .. }
            | Command::SetOverwritePolicy { .. }
            | Command::ChunkServerHeartbeat { .. }
            | Command::SetChunkServerStatus { .. }
            | Command::MarkOfflineServers { .. } => BASE,
            Command::RegisterChunkServer { addr, zone, .. } => BASE + addr.len() + zone.len(),
            Command::DeleteObject { key, .. } => BASE + key.len(),
            Command::DeleteObjects { keys, .. } => {
                BASE.saturating_add(keys.iter().map(|k| k.len() + 8).sum::<usize>())
            }
            Command::CreateMultipartUpload { upload } => {
                let metadata: usize = upload
                    .user_metadata
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum();
                BASE.saturating_add(upload.key.len())
                    .saturating_add(metadata)
            }
            Command::UploadPart {
                part,
                shared,
                placements,
                ..
            } => BASE
                .saturating_add(part.chunks.len().saturating_mul(CHUNK_REF))
                .saturating_add(shared.len().saturating_mul(16))
                .saturating_add(placements_size(placements)),
            Command::UpdateChunkReplicas { add, remove, .. } => {
                BASE.saturating_add((add.len() + remove.len()).saturating_mul(8))
            }
            Command::CollectOrphans { candidates, .. } => {
                BASE.saturating_add(candidates.len().saturating_mul(16))
            }
            // Part number, ETag and checksum of each completed part.
            Command::CompleteMultipartUpload { parts, .. } => {
                BASE.saturating_add(parts.len().saturating_mul(96))
            }
            Command::PutObjectTags { key, tags, .. } => {
                let tags: usize = tags.iter().map(|(k, v)| k.len() + v.len()).sum();
                BASE.saturating_add(key.len()).saturating_add(tags)
            }
            Command::GcAck { records } => BASE.saturating_add(records.len().saturating_mul(12)),
            Command::PutObject {
                key,
                version,
                placements,
                ..
            } => {
                let data = match &version.data {
                    ObjectData::Inline(bytes) => bytes.len(),
                    ObjectData::Chunks(chunks) => chunks.len().saturating_mul(CHUNK_REF),
                };
                let metadata: usize = version
                    .user_metadata
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum();
                BASE.saturating_add(key.len())
                    .saturating_add(metadata)
                    .saturating_add(data)
                    .saturating_add(placements_size(placements))
            }
        }
    }
}

/// About how many bytes placements take encoded: id, factor, server ids.
fn placements_size(placements: &[ChunkPlacement]) -> usize {
    placements
        .iter()
        .map(|p| 18usize.saturating_add(p.servers.len().saturating_mul(9)))
        .fold(0, usize::saturating_add)
}

/// The deterministic outcome of applying one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[expect(
    clippy::large_enum_variant,
    reason = "replies are short-lived and mostly objects; boxing buys nothing"
)]
pub enum Reply {
    Done,
    Bucket(BucketInfo),
    /// The committed version, with its generation filled in.
    Object(ObjectVersion),
    /// DeleteObject: whether a version existed and was removed.
    Deleted {
        existed: bool,
    },
    ChunkServer(ChunkServerRecord),
    MarkedOffline(Vec<ServerId>),
    /// DeleteObjects: per key, whether a version existed, or why not.
    DeletedMany(Vec<Result<bool, MetaError>>),
    /// ExpireUploads: how many uploads were aborted.
    Expired {
        count: u32,
    },
    /// UpdateChunkReplicas: the chunk's record as it now is.
    Chunk(ChunkRecord),
    /// CollectOrphans: the candidates that may be deleted.
    Orphans(Vec<ChunkId>),
}

pub type CommandResult = Result<Reply, MetaError>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::ObjectHeaders;

    #[test]
    fn size_estimate_follows_the_payload() {
        let put = |data: ObjectData| Command::PutObject {
            bucket: "b".into(),
            key: "k".into(),
            version: ObjectVersion {
                generation: 0,
                size: 0,
                etag: String::new(),
                last_modified_ms: 0,
                headers: ObjectHeaders::default(),
                user_metadata: vec![("a".into(), "bc".into())],
                checksum: None,
                storage_class: None,
                parts: Vec::new(),
                tags: Vec::new(),
                data,
            },
            condition: WriteCondition::None,
            ownership: ChunkOwnership::Fresh,
            placements: Vec::new(),
        };
        let small = put(ObjectData::Inline(Vec::new())).size_estimate();
        let inline = put(ObjectData::Inline(vec![0; 65536])).size_estimate();
        assert_eq!(inline - small, 65536);
        let command = put(ObjectData::Inline(vec![7; 1000]));
        let encoded = postcard::to_allocvec(&command).expect("encode").len();
        assert!(
            command.size_estimate() >= encoded,
            "estimate covers the encoding"
        );
        let delete = Command::DeleteBucket { name: "b".into() };
        assert!(delete.size_estimate() > 0);
    }
}
