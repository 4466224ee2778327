//! The openraft type configuration and the payload carried in log entries.

use std::fmt;

use openraft::{AnyError, BasicNode, ErrorSubject, ErrorVerb, StorageIOError};
use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResult};
use crate::error::MetaError;
use crate::io::AsyncStorageFile;

/// Identifies one proposal across retries: `client` is chosen at random per
/// [`crate::MetaClient`], `seq` increases per proposal. A proposal whose id
/// was already applied returns the remembered result instead of being
/// applied again (Raft paper §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId {
    pub client: u64,
    pub seq: u64,
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}:{}", self.client, self.seq)
    }
}

/// One command as proposed by a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub request_id: RequestId,
    pub command: Command,
}

/// Application data of one log entry: up to
/// [`crate::limits::COMMANDS_PER_ENTRY_MAX`] proposals applied in order.
pub type Batch = Vec<Proposal>;

/// The results of a [`Batch`], in the same order.
pub type BatchResult = Vec<CommandResult>;

openraft::declare_raft_types!(
    /// Arbor's metadata group.
    pub TypeConfig:
        D = Batch,
        R = BatchResult,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = AsyncStorageFile,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Raft = openraft::Raft<TypeConfig>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, BasicNode>;

/// Builds an openraft storage error from anything printable.
pub(crate) fn storage_error(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: impl fmt::Display,
) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::error(e.to_string())).into()
}

/// Encodes a stored record. Failing to encode our own types is a bug, but
/// it is reported rather than panicking on a request path.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, MetaError> {
    postcard::to_allocvec(value).map_err(|e| MetaError::Corrupt(format!("encode: {e}")))
}

pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, MetaError> {
    postcard::from_bytes(bytes).map_err(|e| MetaError::Corrupt(format!("decode {what}: {e}")))
}
