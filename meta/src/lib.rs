//! Arbor's metadata service: the namespace tree (buckets, directories,
//! objects), chunk tables and server registry in redb, replicated by openraft.
//!
//! Every mutation is a [`command::Command`] in the Raft log, applied by the
//! deterministic state machine in one redb write transaction. Callers use
//! [`client::MetaClient`]; a process hosting a replica runs a [`node::MetaNode`].

pub mod chunks;
pub mod client;
pub mod clock;
pub mod command;
pub mod error;
pub mod keys;
pub mod limits;
pub mod listing;
pub mod multipart;
pub mod namespace;
pub mod node;
pub mod object;
pub mod placement;
pub mod raft;
pub mod registry;
pub mod rpc;
pub mod schema;
pub mod server;
pub mod state_machine;

pub use chunks::{ChunkPlacement, ChunkRecord};
pub use client::{MetaClient, RemoteConfig};
pub use error::{MetaError, Result};
pub use node::{MetaConfig, MetaNode};
pub use object::{BucketInfo, ChunkId, ChunkRef, ObjectData, ObjectVersion, OverwritePolicy};
pub use rpc::NodeStatus;
