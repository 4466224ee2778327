//! Arbor's data plane: immutable chunks, each checked by SHA-256 and by a
//! CRC32C per 64 KiB block, so a ranged read verifies only what it touches.
//!
//! A chunk store never interprets keys: it knows chunk ids and bytes.
//! `store` keeps chunks on local disk; `server` serves a store over HTTP
//! and `client` talks to such servers; `replication` writes to and reads
//! from several of them, `repair` mends bad replicas and `scrub` finds
//! them. `config` runs a chunk server process (`arbor chunk`). `registry`
//! is a gateway's copy of the registered chunk servers; `cluster` and
//! `backend` are its view of the chunks (replicated on those servers, or
//! one local store); `healer` re-replicates and `gc` collects garbage, both
//! on the metadata group's decisions.

pub mod api;
pub mod backend;
pub mod client;
pub mod cluster;
pub mod config;
pub mod error;
mod format;
pub mod gc;
pub mod healer;
pub mod heartbeat;
pub mod limits;
pub mod registry;
pub mod repair;
pub mod replication;
pub mod scrub;
pub mod server;
pub mod store;

pub use api::{Inventory, ServerStatus};
pub use backend::{BackendWriter, ChunkBackend, Locations, StoredChunk};
pub use client::{ChunkClient, ChunkClients, ChunkRead, ClientOptions, ExpectedSha256};
pub use cluster::{ClusterChunks, ClusterWriter};
pub use config::{ChunkServerConfig, run, run_on};
pub use error::{ChunkError, Result};
pub use gc::{Collector, GcConfig, GcReport, OrphanSweeper};
pub use healer::{HealReport, Healer, HealerConfig};
pub use registry::Registry;
pub use repair::{RepairCounts, RepairJob, RepairOutcome, Repairer, repair};
pub use replication::{Replacement, ReplicatedWrite, Replicator};
pub use scrub::{ScrubReport, Scrubber};
pub use server::{ServerOptions, serve};
pub use store::{ChunkInfo, ChunkStore, ChunkWriter};
