//! What the metadata group knows of each chunk, and where a writer put a
//! fresh chunk's replicas (see `chunks` for the life of a record).

use serde::{Deserialize, Serialize};

use crate::records::object::ChunkId;
use crate::records::server::ServerId;

/// What the metadata knows of one chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// Versions and parts referencing the chunk; 0 while it waits in the GC
    /// queue.
    pub refs: u64,
    pub size: u64,
    pub sha256: [u8; 32],
    /// Replicas the chunk should have; 0 for a chunk of `arbor serve`'s
    /// local store, which no healer manages.
    pub factor: u8,
    /// The chunk servers holding a replica, no duplicates.
    pub servers: Vec<ServerId>,
}

impl ChunkRecord {
    /// Fewer replicas than the chunk should have (and still worth healing).
    pub fn under_replicated(&self) -> bool {
        self.refs > 0 && self.servers.len() < usize::from(self.factor)
    }
}

/// Where a writer put a fresh chunk's replicas, carried by the command that
/// commits the chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPlacement {
    pub id: ChunkId,
    pub factor: u8,
    pub servers: Vec<ServerId>,
}
