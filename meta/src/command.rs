//! Every metadata operation, listed once. The Raft log carries [`Command`]s
//! and remembers [`Reply`]s; remote clients send [`ReadRequest`]s and get
//! [`ReadReply`]s. Both pairs of enums are generated from the lists below,
//! one variant per operation with the operation's own reply type, so a
//! caller that sends operation `O` gets `O::Reply` back: [`WriteOp`] and
//! [`ReadOp`] convert, and a mismatch does not compile.
//!
//! Adding an operation: define its struct and its `Apply` (or `Query`)
//! impl in the domain module it belongs to, then add one line to the list
//! here. The position in the list is the variant's tag in the log's
//! encoding: append, never reorder. A released write's outcome never
//! changes either; `meta/tests/outcomes.rs` pins every one.

use redb::{ReadTransaction, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::access::{
    AllowAccessKey, CreateAccessKey, DeleteAccessKey, DeleteBucketPolicy, DeletePublicAccessBlock,
    DenyAccessKey, GetAccessKey, GetBucketCors, GetBucketPolicy, GetBucketRules,
    GetPublicAccessBlock, ListAccessKeys, PutBucketPolicy, PutPublicAccessBlock, SetBucketCors,
};
use crate::acl::{GetBucketAcl, SetBucketAcl, SetObjectAcl, SetObjectOwnership};
use crate::append::AppendObject;
use crate::chunks::{
    ChunkCounts, ChunkRecords, ChunksReferenced, CollectOrphans, GcAck, GcQueue, ServerChunks,
    UnderReplicated, UpdateChunkReplicas,
};
use crate::context::ApplyContext;
use crate::error::{MetaError, Result};
use crate::lifecycle::{
    DeleteBucketLifecycle, GetBucketLifecycle, GetBucketLifecycleRules, LifecycleBatch,
    LifecycleBuckets, LifecycleUploads, PutBucketLifecycle, PutBucketLifecycleRules,
};
use crate::listing::{ListObjectVersions, ListObjects};
use crate::multipart::{
    AbortMultipartUpload, CompleteMultipartUpload, CreateMultipartUpload, ExpireUploads,
    GetCompletedUpload, GetUpload, ListParts, ListUploads, UploadPart,
};
use crate::namespace::{
    CreateBucket, CreateBucketAs, CreateLockedBucket, DeleteBucket, DeleteKey, DeleteKeys,
    DeleteObject, DeleteObjectIf, DeleteObjects, DeleteObjectsIf, GetBucket, GetBucketTags,
    GetBucketVersioning, GetLocatedVersion, GetObject, GetObjectLock, GetObjectLockConfig,
    GetObjectLockRule, GetObjectVersion, GetReadableVersion, ListBuckets, PutBucketTags, PutObject,
    PutObjectTags, ReleaseObjectLegalHold, SetBucketVersioning, SetObjectLegalHold,
    SetObjectLockConfig, SetObjectLockConfigInYears, SetObjectRetention, SetObjectRetentionStrict,
    SetObjectTags, SetOverwritePolicy,
};
use crate::op::{Apply, Outcome, Query};
use crate::reclaim::{DeleteDirectory, ReclaimBatch, ReclaimStatus};
use crate::registry::{
    ChunkServerHeartbeat, ChunkServers, MarkOfflineServers, RegisterChunkServer,
    SetChunkServerStatus,
};
use crate::rename::{
    RenameDirectory, RenameDirectoryUnlessLocked, RenameObject, RenameObjectUnlessLocked,
};

/// A write operation as the log carries it: its [`Command`] variant and
/// its [`Reply`] variant.
pub trait WriteOp: Apply + Into<Command> {
    /// The reply of this operation, if `reply` is one.
    fn from_reply(reply: Reply) -> Option<Self::Reply>;
}

/// A read operation as the wire carries it.
pub trait ReadOp: Query + Into<ReadRequest> {
    fn from_reply(reply: ReadReply) -> Option<Self::Reply>;
}

macro_rules! writes {
    ($($op:ident),* $(,)?) => {
        /// One metadata mutation: everything its apply needs (timestamps
        /// and ids are chosen by the proposer, so apply is deterministic).
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Command {
            $($op($op),)*
        }

        /// The deterministic outcome of one command, one variant per
        /// operation.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub enum Reply {
            $($op(<$op as Apply>::Reply),)*
        }

        $(
            impl From<$op> for Command {
                fn from(op: $op) -> Command {
                    Command::$op(op)
                }
            }
            impl WriteOp for $op {
                fn from_reply(reply: Reply) -> Option<<$op as Apply>::Reply> {
                    match reply {
                        Reply::$op(reply) => Some(reply),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
            }
        )*

        impl Command {
            /// Every command's name, in the log's order: a command's
            /// index here is its variant's tag in an encoded entry.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($op),)*];

            /// Applies the command at the context's position.
            pub(crate) fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<CommandResult> {
                match self {
                    $(Command::$op(op) => Ok(op.apply(ctx)?.map(Reply::$op)),)*
                }
            }

            /// About how many bytes the command takes in a log entry, for
            /// sizing group-commit batches.
            pub fn size_estimate(&self) -> usize {
                match self {
                    $(Command::$op(op) => op.size_estimate(),)*
                }
            }
        }
    };
}

macro_rules! reads {
    ($($op:ident),* $(,)?) => {
        /// A linearizable read, as a remote client sends it.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub enum ReadRequest {
            $($op($op),)*
        }

        /// The answer to a [`ReadRequest`], same variant.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub enum ReadReply {
            $($op(<$op as Query>::Reply),)*
        }

        $(
            impl From<$op> for ReadRequest {
                fn from(op: $op) -> ReadRequest {
                    ReadRequest::$op(op)
                }
            }
            impl ReadOp for $op {
                fn from_reply(reply: ReadReply) -> Option<<$op as Query>::Reply> {
                    match reply {
                        ReadReply::$op(reply) => Some(reply),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
            }
        )*

        impl ReadRequest {
            /// The operation's name, as [`crate::NodeStatus::reads`] counts it.
            pub fn name(&self) -> &'static str {
                match self {
                    $(ReadRequest::$op(_) => stringify!($op),)*
                }
            }
        }

        /// A remote read is the query it carries, answered as the same
        /// variant.
        impl Query for ReadRequest {
            type Reply = ReadReply;

            fn validate(&self) -> Result<()> {
                match self {
                    $(ReadRequest::$op(op) => op.validate(),)*
                }
            }

            fn read(&self, txn: &ReadTransaction) -> Result<ReadReply> {
                match self {
                    $(ReadRequest::$op(op) => op.read(txn).map(ReadReply::$op),)*
                }
            }

            fn read_inline(&self, txn: &ReadTransaction) -> Option<Result<ReadReply>> {
                match self {
                    $(ReadRequest::$op(op) => op
                        .read_inline(txn)
                        .map(|reply| reply.map(ReadReply::$op)),)*
                }
            }
        }
    };
}

// The order is the log's encoding: append only.
writes!(
    CreateBucket,
    DeleteBucket,
    PutObject,
    DeleteObject,
    DeleteObjects,
    CreateMultipartUpload,
    UploadPart,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ExpireUploads,
    PutObjectTags,
    SetOverwritePolicy,
    RegisterChunkServer,
    ChunkServerHeartbeat,
    SetChunkServerStatus,
    MarkOfflineServers,
    GcAck,
    UpdateChunkReplicas,
    CollectOrphans,
    RenameObject,
    RenameDirectory,
    DeleteDirectory,
    ReclaimBatch,
    DeleteObjectIf,
    DeleteObjectsIf,
    PutBucketTags,
    AppendObject,
    SetBucketVersioning,
    DeleteKey,
    DeleteKeys,
    CreateLockedBucket,
    SetObjectLockConfig,
    SetObjectRetention,
    SetObjectLegalHold,
    CreateAccessKey,
    DeleteAccessKey,
    AllowAccessKey,
    DenyAccessKey,
    CreateBucketAs,
    PutBucketPolicy,
    DeleteBucketPolicy,
    PutPublicAccessBlock,
    DeletePublicAccessBlock,
    SetBucketCors,
    PutBucketLifecycle,
    DeleteBucketLifecycle,
    LifecycleBatch,
    LifecycleUploads,
    SetBucketAcl,
    SetObjectOwnership,
    SetObjectAcl,
    SetObjectTags,
    PutBucketLifecycleRules,
    SetObjectRetentionStrict,
    SetObjectLockConfigInYears,
    ReleaseObjectLegalHold,
    RenameObjectUnlessLocked,
    RenameDirectoryUnlessLocked,
);

reads!(
    GetBucket,
    ListBuckets,
    GetObject,
    ListObjects,
    GetUpload,
    ListParts,
    ListUploads,
    GcQueue,
    ChunksReferenced,
    ChunkServers,
    ChunkRecords,
    ServerChunks,
    UnderReplicated,
    ChunkCounts,
    ReclaimStatus,
    GetCompletedUpload,
    GetBucketTags,
    GetBucketVersioning,
    GetObjectVersion,
    ListObjectVersions,
    GetObjectLockConfig,
    GetObjectLock,
    GetAccessKey,
    ListAccessKeys,
    GetBucketPolicy,
    GetPublicAccessBlock,
    GetReadableVersion,
    GetBucketCors,
    GetBucketLifecycle,
    LifecycleBuckets,
    GetBucketAcl,
    GetBucketRules,
    GetLocatedVersion,
    GetBucketLifecycleRules,
    GetObjectLockRule,
);

/// A command's outcome as the log remembers it.
pub type CommandResult = Outcome<Reply>;

/// Applies one command inside the caller's write txn, as the `position`-th
/// command of the log entry at `log_index`. Outer Err = storage failure or
/// corruption (fatal for the node); the inner result is the deterministic
/// outcome. A command whose outcome is an error leaves no change behind.
pub fn apply_command(
    txn: &WriteTransaction,
    log_index: u64,
    position: u32,
    command: &Command,
) -> Result<CommandResult> {
    let mut ctx = ApplyContext::open(txn, log_index)?;
    ctx.position = position;
    command.apply(&mut ctx)
}

/// Applies the commands of one log entry in order, as `apply_command` on
/// each (with positions 0, 1, ...) would, opening the tables once. Stops at
/// the first outer `Err`.
pub fn apply_commands(
    txn: &WriteTransaction,
    log_index: u64,
    commands: &[Command],
) -> Result<Vec<CommandResult>> {
    let mut ctx = ApplyContext::open(txn, log_index)?;
    commands
        .iter()
        .enumerate()
        .map(|(position, command)| {
            ctx.at(log_index, position)?;
            command.apply(&mut ctx)
        })
        .collect()
}

/// A reply of the wrong kind: only a corrupted log or wire gets here.
pub(crate) fn mismatched<T: std::fmt::Debug>(reply: T) -> MetaError {
    MetaError::Corrupt(format!("a reply of another operation: {reply:?}"))
}

impl Command {
    /// Whether the command removes or maintains rather than adds: deletes,
    /// aborts, reclamation, GC and the chunk-server registry. These run
    /// even when the disk is low (see [`crate::disk`]), so space can be
    /// freed through S3 and the cluster keeps its bookkeeping.
    pub fn runs_when_disk_low(&self) -> bool {
        matches!(
            self,
            Command::DeleteBucket(_)
                | Command::DeleteObject(_)
                | Command::DeleteObjects(_)
                | Command::DeleteObjectIf(_)
                | Command::DeleteObjectsIf(_)
                | Command::DeleteKey(_)
                | Command::DeleteKeys(_)
                | Command::DeleteDirectory(_)
                | Command::ReclaimBatch(_)
                | Command::AbortMultipartUpload(_)
                | Command::ExpireUploads(_)
                | Command::RegisterChunkServer(_)
                | Command::ChunkServerHeartbeat(_)
                | Command::SetChunkServerStatus(_)
                | Command::MarkOfflineServers(_)
                | Command::GcAck(_)
                | Command::UpdateChunkReplicas(_)
                | Command::CollectOrphans(_)
                | Command::DeleteAccessKey(_)
                | Command::DenyAccessKey(_)
                | Command::DeleteBucketPolicy(_)
                | Command::DeletePublicAccessBlock(_)
                | Command::DeleteBucketLifecycle(_)
                | Command::LifecycleBatch(_)
                | Command::LifecycleUploads(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::object::{
        ChunkOwnership, ObjectData, ObjectHeaders, ObjectVersion, WriteCondition,
    };

    /// Entries in logs and snapshots written by earlier releases decode
    /// only while every command keeps its place: new ones go at the end,
    /// and this list grows with them.
    #[test]
    fn the_log_encoding_only_grows_at_the_end() {
        const RELEASED: &[&str] = &[
            "CreateBucket",
            "DeleteBucket",
            "PutObject",
            "DeleteObject",
            "DeleteObjects",
            "CreateMultipartUpload",
            "UploadPart",
            "CompleteMultipartUpload",
            "AbortMultipartUpload",
            "ExpireUploads",
            "PutObjectTags",
            "SetOverwritePolicy",
            "RegisterChunkServer",
            "ChunkServerHeartbeat",
            "SetChunkServerStatus",
            "MarkOfflineServers",
            "GcAck",
            "UpdateChunkReplicas",
            "CollectOrphans",
            "RenameObject",
            "RenameDirectory",
            "DeleteDirectory",
            "ReclaimBatch",
            "DeleteObjectIf",
            "DeleteObjectsIf",
            "PutBucketTags",
            "AppendObject",
            "SetBucketVersioning",
            "DeleteKey",
            "DeleteKeys",
            "CreateLockedBucket",
            "SetObjectLockConfig",
            "SetObjectRetention",
            "SetObjectLegalHold",
            "CreateAccessKey",
            "DeleteAccessKey",
            "AllowAccessKey",
            "DenyAccessKey",
            "CreateBucketAs",
            "PutBucketPolicy",
            "DeleteBucketPolicy",
            "PutPublicAccessBlock",
            "DeletePublicAccessBlock",
            "SetBucketCors",
            "PutBucketLifecycle",
            "DeleteBucketLifecycle",
            "LifecycleBatch",
            "LifecycleUploads",
            "SetBucketAcl",
            "SetObjectOwnership",
            "SetObjectAcl",
            "SetObjectTags",
            "PutBucketLifecycleRules",
            "SetObjectRetentionStrict",
            "SetObjectLockConfigInYears",
            "ReleaseObjectLegalHold",
            "RenameObjectUnlessLocked",
            "RenameDirectoryUnlessLocked",
        ];
        assert_eq!(Command::NAMES, RELEASED);
        // The names are the tags postcard writes.
        let tag = |command: Command| crate::raft::types::encode(&command).expect("encode")[0];
        let old = tag(Command::PutObjectTags(crate::namespace::PutObjectTags {
            bucket: "b".into(),
            key: "k".into(),
            tags: Vec::new(),
        }));
        let new = tag(Command::SetObjectTags(crate::namespace::SetObjectTags {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
            tags: Vec::new(),
        }));
        let position = |name: &str| Command::NAMES.iter().position(|n| *n == name);
        assert_eq!(
            (Some(usize::from(old)), Some(usize::from(new))),
            (position("PutObjectTags"), position("SetObjectTags"))
        );
    }

    #[test]
    fn size_estimate_follows_the_payload() {
        let put = |data: ObjectData| {
            Command::from(PutObject {
                lock: None,
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
                    acl: Default::default(),
                    data,
                    stamp: Default::default(),
                },
                condition: WriteCondition::None,
                ownership: ChunkOwnership::Fresh,
                placements: Vec::new(),
            })
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
        let delete = Command::from(DeleteBucket { name: "b".into() });
        assert!(delete.size_estimate() > 0);
    }

    #[test]
    fn a_reply_converts_only_to_its_own_operation() {
        let reply = Reply::DeleteObject(true);
        assert_eq!(
            <DeleteObject as WriteOp>::from_reply(reply.clone()),
            Some(true)
        );
        assert_eq!(<DeleteBucket as WriteOp>::from_reply(reply), None);
    }
}
