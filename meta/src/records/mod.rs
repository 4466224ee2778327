//! The records the metadata service stores and answers with: plain serde
//! data that crosses crate boundaries and travels in Raft commands. Leaf
//! modules: they import nothing of this crate but `clock` (for the
//! id seams), `error` and `limits`.

pub mod access;
pub(crate) mod byte_vec;
pub mod chunk;
pub mod lifecycle;
pub mod listing;
pub mod object;
pub mod server;
mod timed_id;
pub mod tree;
pub mod upload;

pub use access::{
    AccessKeyRecord, BucketAcl, CannedAcl, CorsRule, ObjectOwnership, Permissions,
    PublicAccessBlock,
};
pub use chunk::{ChunkPlacement, ChunkRecord};
pub use listing::{
    ListEntry, ListPage, ListRequest, ListedObject, ListedVersion, VersionListEntry,
    VersionListRequest, VersionPage,
};
pub use object::{
    BucketInfo, ChecksumAlgorithm, ChunkId, ChunkOwnership, ChunkRef, DeleteCondition,
    DeleteOutcome, LegalHold, LockMode, ObjectChecksum, ObjectData, ObjectHeaders,
    ObjectLockConfig, ObjectLockRule, ObjectVersion, OverwritePolicy, Retention, VersionId,
    VersionLock, VersionStamp, Versioning, WriteCondition,
};
pub use server::{ChunkServerRecord, ServerId, ServerStatus};
pub use tree::GcEntry;
pub use upload::{
    CompletedPart, CompletedUpload, ListUploadsRequest, PartRecord, PartsPage, UploadEntry,
    UploadId, UploadRecord, UploadsPage,
};
