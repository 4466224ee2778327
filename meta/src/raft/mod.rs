//! Raft plumbing for the metadata group: the openraft type configuration,
//! the redb-backed log store and state-machine store, the HTTP network transport
//! and the group-commit batcher.
//!
//! Storage layout of a node's data directory:
//! - `raft-log.redb` ([`log_store`]): log entries, vote, committed and purged
//!   log ids. Written by one dedicated thread that groups queued appends
//!   into one transaction.
//! - `state.redb` ([`state_store`]): the namespace tables
//!   ([`crate::schema::STATE_TABLES`]) plus the store's own tables (last
//!   applied / membership, the current snapshot's meta and file name,
//!   remembered request results). Separate files, so `apply` and `append`
//!   never wait for each other's writer lock (see docs/design.md, openraft
//!   on redb).
//! - `snapshots/` ([`state_store`], format in [`snapshot_file`]): the
//!   current snapshot as a file, streamed in and out, never whole in memory.
//!
//! Group commit happens above Raft ([`batcher`]): one log entry carries a
//! batch of [`types::Proposal`]s, because openraft 0.9 flushes every append
//! on its own.

pub mod batcher;
pub mod log_store;
pub mod network;
pub(crate) mod read_rounds;
pub mod snapshot_file;
pub mod state_store;
pub mod types;

pub use log_store::{LogReader, LogStore, LogWriter};
pub use network::{HttpNetwork, HttpNetworkFactory};
pub use state_store::{SnapshotStop, StateStore};
pub use types::{Proposal, RequestId, TypeConfig};
