//! Arbor's metadata service: the namespace tree (buckets, directories,
//! objects), chunk tables and server registry in redb, replicated by openraft.
//!
//! Every operation is a typed struct: a write implements [`op::Apply`] and
//! travels as a [`command::Command`] in the Raft log, applied by the
//! deterministic state machine in one redb write transaction; a read
//! implements [`op::Query`]. Callers use [`client::MetaClient`]; a process
//! hosting a replica runs a [`node::MetaNode`].
//!
//! Layers, lowest first (a module imports only from layers below it):
//! 1. `error`, `limits`, `clock`, `io` (where redb files live and storage
//!    work runs), `keys`, `records` (the stored and answered data);
//! 2. `schema` (tables, key encodings), `context` (the apply context),
//!    `op` (the operation traits), `tree` (inode-tree steps), `placement`;
//! 3. the domain modules, each owning its operations: `chunks`, `access`
//!    (access keys and their grants), then `namespace`, then `listing`,
//!    `multipart`, `append`, `rename`, `reclaim` and `lifecycle`;
//!    `registry`; `audit` (the state machine's cross-table invariants);
//! 4. `command` (every operation, listed once), `raft` (log, state
//!    machine store, network, group commit);
//! 5. `rpc` (the wire), `replica`, then `server` and `client`, then `node`;
//!    `offline` (a runtime task).

pub mod access;
pub mod acl;
pub mod append;
pub mod audit;
pub mod chunks;
pub mod client;
pub mod clock;
pub mod command;
pub mod context;
pub mod disk;
pub mod error;
pub mod io;
pub mod keys;
pub mod lifecycle;
pub mod limits;
pub mod listing;
pub mod multipart;
pub mod namespace;
pub mod node;
pub mod offline;
pub mod op;
pub mod placement;
pub mod raft;
pub mod reclaim;
pub mod records;
pub mod registry;
pub mod rename;
mod replica;
pub mod rpc;
pub mod schema;
pub mod server;
mod tree;

pub use client::{MetaClient, RemoteConfig};
pub use error::{MetaError, Result};
pub use node::{MetaConfig, MetaNode, Simulated};
pub use records::{
    BucketInfo, ChunkId, ChunkPlacement, ChunkRecord, ChunkRef, ObjectData, ObjectVersion,
    OverwritePolicy,
};
pub use rpc::NodeStatus;
