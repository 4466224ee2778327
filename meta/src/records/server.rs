//! The chunk-server registry's records.

use serde::{Deserialize, Serialize};

/// A chunk server's id: random, chosen by the server on first start and
/// kept in its data directory.
pub type ServerId = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerStatus {
    Online,
    /// Missed heartbeats for longer than the timeout.
    Offline,
    /// Set by an operator: receives no new chunks; its chunks are moved off.
    Draining,
}

impl ServerStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ServerStatus::Online => "ONLINE",
            ServerStatus::Offline => "OFFLINE",
            ServerStatus::Draining => "DRAINING",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkServerRecord {
    pub id: ServerId,
    /// host:port of its chunk API.
    pub addr: String,
    /// Failure domain (zone or rack label).
    pub zone: String,
    pub capacity: u64,
    pub used: u64,
    pub chunks: u64,
    pub status: ServerStatus,
    pub last_heartbeat_ms: i64,
}

impl ChunkServerRecord {
    /// Bytes it can still take.
    pub fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.used)
    }
}
