//! Arbor's data plane: immutable chunks, each checked by SHA-256 and by a
//! CRC32C per 64 KiB block, so a ranged read verifies only what it touches.
//! A chunk store never interprets keys: it knows chunk ids and bytes.
//!
//! Modules, lowest first. A module uses only modules on earlier lines, or
//! earlier on its own line where it says "then", so the modules form no
//! cycle. The re-exports below are for callers; modules name each other by
//! module path.
//! 1. `error`, `limits`, `api`: the vocabulary (the error type, named
//!    limits, what chunk server and client agree on).
//! 2. `format`, `direct`, then `store`: chunk files on local disk (their
//!    layout; data written and read around the page cache; the store).
//! 3. `client`, `server`, `scrub`, `heartbeat`: one chunk server: its HTTP
//!    API and a client for it, its scrubber, its registration and
//!    heartbeats.
//! 4. `registry`: the registered chunk servers, as a gateway last read them.
//! 5. `transfer`: copying a chunk from one server to another.
//! 6. `repair`, then `replication`: mending a bad replica; replicated
//!    writes and failover reads, which hand the bad replicas they find to
//!    repair.
//! 7. `cluster`, then `backend`, then `gc`; and `healer`: a gateway's view
//!    of the chunks (replicated on the registered servers, or one local
//!    store), garbage collection and re-replication, both on the metadata
//!    group's decisions.
//! 8. `config`: the chunk server process (`arbor chunk`), which runs server,
//!    scrubber, heartbeats, orphan sweeps and the repair of what the
//!    scrubber quarantines.

pub mod api;
pub mod backend;
pub mod client;
pub mod cluster;
pub mod config;
pub mod direct;
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
mod transfer;

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
pub use replication::{Fingerprint, Replacement, ReplicatedWrite, Replicator};
pub use scrub::{ScrubReport, Scrubber};
pub use server::{ServerOptions, serve};
pub use store::{ChunkInfo, ChunkStore, ChunkWriter};
