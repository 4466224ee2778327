//! The meta crate's one error type. Variants speak the namespace's language;
//! the gateway maps them to S3 codes in one place.

use serde::{Deserialize, Serialize};

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// Errors a caller of the metadata service can see.
///
/// The variants above `NotLeader` are deterministic outcomes of applying a
/// command (or of a read) and travel inside Raft replies, so they are
/// serializable and carry no foreign error types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MetaError {
    #[error("bucket {0:?} does not exist")]
    NoSuchBucket(String),
    #[error("bucket {0:?} already exists")]
    BucketAlreadyExists(String),
    #[error("bucket {0:?} is not empty")]
    BucketNotEmpty(String),
    #[error("invalid bucket name {0:?}")]
    InvalidBucketName(String),
    #[error("key {0:?} does not exist")]
    NoSuchKey(String),
    /// A client token already applied a request with other parameters.
    #[error("client token {0:?} was used with other parameters")]
    IdempotencyMismatch(String),
    /// A directory rename's destination already holds keys.
    #[error("directory {0:?} is not empty")]
    DirectoryNotEmpty(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("key is longer than {max} bytes", max = crate::limits::KEY_LEN_MAX)]
    KeyTooLong,
    #[error("multipart upload {0} does not exist")]
    NoSuchUpload(String),
    /// A completed upload names a part that was not uploaded, or whose
    /// ETag (or checksum) differs from the stored part's.
    #[error("part mismatch: {0}")]
    PartMismatch(String),
    /// A completed upload lists its parts out of ascending order.
    #[error("parts are not in ascending order")]
    PartsOutOfOrder,
    /// A part other than the last is smaller than the minimum part size.
    #[error("part {part_number} is smaller than the minimum part size")]
    PartTooSmall { part_number: u32 },
    #[error("chunk server {0} is not registered")]
    NoSuchChunkServer(u64),
    /// The state a command relied on changed while it was being prepared
    /// (e.g. a copy's source was deleted during the copy).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request itself is malformed (too many ids, a placement that does
    /// not fit the command, a part number out of range): retrying it
    /// unchanged fails the same way.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A commit names a fresh chunk created before the orphan horizon: an
    /// orphan sweep may have deleted it (the upload outlived the grace).
    #[error("chunk {0} was written too long ago to be committed; retry the upload")]
    StaleChunk(String),
    /// A write's If-Match / If-None-Match expectation did not hold.
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("access key {0} does not exist")]
    NoSuchAccessKey(String),
    #[error("access key {0} already exists")]
    AccessKeyExists(String),
    /// The key has not the permission the operation needs.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The bucket's overwrite policy refuses this write.
    #[error("overwrite refused by bucket policy")]
    OverwriteRefused,
    /// An append's offset is not the object's current size.
    #[error("write offset does not match the object's size {size}")]
    WriteOffsetMismatch { size: u64 },
    /// An append would give the object more parts than an object may have.
    #[error("the object has the maximum number of parts")]
    TooManyParts,
    /// The operation would drop or merge versions that a versioned bucket
    /// keeps (a recursive delete, a rename onto a key with versions); the
    /// text says which and what to do instead.
    #[error("{0}")]
    VersionedBucket(String),
    /// Object Lock refuses the change: a locked version cannot be deleted
    /// or replaced, a retention only lengthened; the text says which.
    #[error("{0}")]
    ObjectLocked(String),
    /// The bucket's state forbids the change (versioning of an Object Lock
    /// bucket cannot be suspended); the text says which.
    #[error("{0}")]
    InvalidBucketState(String),
    /// Object Lock is not enabled on the bucket.
    #[error("bucket {0:?} has no Object Lock configuration")]
    NoObjectLockConfig(String),
    /// A request names a version the key does not have.
    #[error("version {version_id} of key {key:?} does not exist")]
    NoSuchVersion { key: String, version_id: String },
    /// The data directory's disk is nearly full: writes that add data are
    /// refused until space is freed (retryable).
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    /// This node is not the leader; `leader` is the address of the one it
    /// knows, if any.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<String> },
    /// No quorum could be reached in time.
    #[error("metadata service unavailable: {0}")]
    Unavailable(String),
    /// A call did not finish in time; the outcome of a write is unknown
    /// unless it is retried with the same request id.
    #[error("metadata operation timed out")]
    Timeout,
    /// redb or file-system failure.
    #[error("metadata storage error: {0}")]
    Storage(String),
    /// Raft failure that is not one of the above.
    #[error("raft error: {0}")]
    Raft(String),
    /// A stored record failed to decode or broke an invariant.
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    #[error("metadata service is shutting down")]
    ShuttingDown,
    /// The bucket has ACLs disabled (Object Ownership
    /// `BucketOwnerEnforced`): only the owner's ACL may be set.
    #[error("bucket {0:?} does not allow ACLs")]
    AclNotSupported(String),
    /// `BucketOwnerEnforced` asked while the bucket's ACL grants more
    /// than the owner's.
    #[error("bucket {0:?} has an ACL beyond the owner's")]
    AclWithOwnership(String),
    /// The operation names a delete marker, which has no data, ACL or
    /// attributes to read or change.
    #[error("{0:?} is a delete marker")]
    DeleteMarker(String),
}

impl From<redb::Error> for MetaError {
    fn from(e: redb::Error) -> Self {
        MetaError::Storage(e.to_string())
    }
}
macro_rules! redb_error {
    ($($t:ty),*) => {$(
        impl From<$t> for MetaError {
            fn from(e: $t) -> Self { MetaError::Storage(e.to_string()) }
        }
    )*};
}
redb_error!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
