//! What every metadata operation is: a write ([`Apply`]), applied by the
//! state machine from the Raft log, or a linearizable read ([`Query`]),
//! answered from a read transaction. Each names its reply type, so a
//! caller's reply is checked at compile time. The domain modules
//! (`namespace`, `listing`, `multipart`, `chunks`, `registry`) implement
//! them; `command` lists them all for the log and the wire.

use std::fmt::Debug;

use redb::ReadTransaction;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::ApplyContext;
use crate::error::{MetaError, Result};

/// The deterministic outcome of one command: a reply, or the reason it was
/// refused (a refused command leaves no change behind).
pub type Outcome<T> = std::result::Result<T, MetaError>;

/// A metadata mutation: one command in the Raft log.
pub trait Apply: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static {
    type Reply: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + 'static;

    /// Applies the command inside `ctx`'s write transaction. No clocks, no
    /// randomness: timestamps and ids come in the command. The outer `Err`
    /// is a storage failure or corruption (fatal for the node); the
    /// [`Outcome`] is what the caller sees. A refused command must return
    /// before its first write.
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<Self::Reply>>;

    /// About how many bytes the command takes in a log entry (inline data
    /// and chunk lists dominate), for sizing group-commit batches.
    fn size_estimate(&self) -> usize {
        SIZE_BASE
    }
}

/// A linearizable read, served by the leader after it confirmed its
/// leadership and applied up to the read index.
pub trait Query: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static {
    type Reply: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + 'static;

    /// The read is a point read: lookups along a key's path and one
    /// record's decoding (for `GetLocatedVersion`, at most one more per
    /// chunk, [`crate::limits::CHUNK_RECORDS_READ_MAX`]), whatever the
    /// state holds, never a scan. It then runs on
    /// the calling task rather than the blocking pool, whose thread
    /// handoff costs more than the read itself (docs/design.md, "Point
    /// reads run inline").
    const INLINE: bool = false;

    /// Checks the request before any Raft round trip (bounds on its size).
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    fn read(&self, txn: &ReadTransaction) -> Result<Self::Reply>;

    /// Answers on the calling task when this request's read is bounded
    /// work, which some reads can tell only from the state (a listing of a
    /// bucket that never had versioning skips no delete markers); `None`
    /// sends the same transaction to the blocking pool for [`Query::read`].
    /// By default a point read ([`Query::INLINE`]) answers and any other
    /// read declines.
    fn read_inline(&self, txn: &ReadTransaction) -> Option<Result<Self::Reply>> {
        Self::INLINE.then(|| self.read(txn))
    }
}

/// A command's size without payload: names, ids, timestamps, headers and
/// encoding overhead.
pub const SIZE_BASE: usize = 256;
/// An encoded `ChunkRef`: id, offset, size, SHA-256.
pub const SIZE_CHUNK_REF: usize = 16 + 8 + 8 + 32;
