//! The chunk-server registry: who holds chunks, where, how full, and
//! whether they are alive (brief.md §4, issue 4).
//!
//! Servers register (and re-register after a restart), send heartbeats with
//! their usage, and are marked OFFLINE by `MarkOfflineServers` when their
//! last heartbeat is older than the timeout; the time is the proposer's (the
//! apply step reads no clock). An operator can set DRAINING (no new chunks;
//! its chunks are moved off) and back to ONLINE.

use std::time::Duration;

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::command::{CommandResult, Reply};
use crate::error::{MetaError, Result};
use crate::namespace::{NamespaceTables, open_read};
use crate::schema::{self, decode_record, encode_record};

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

/// Every registered server, by id.
pub fn chunk_servers(txn: &ReadTransaction) -> Result<Vec<ChunkServerRecord>> {
    let Some(table) = open_read(txn, schema::CHUNK_SERVERS)? else {
        return Ok(Vec::new());
    };
    let mut servers = Vec::new();
    for row in table.iter()? {
        let (_, value) = row?;
        servers.push(decode_record(value.value())?);
    }
    Ok(servers)
}

impl NamespaceTables<'_> {
    fn read_server(&self, id: ServerId) -> Result<Option<ChunkServerRecord>> {
        match self.chunk_servers.get(id.to_be_bytes().as_slice())? {
            Some(value) => Ok(Some(decode_record(value.value())?)),
            None => Ok(None),
        }
    }

    fn write_server(&mut self, record: &ChunkServerRecord) -> Result<()> {
        self.chunk_servers.insert(
            record.id.to_be_bytes().as_slice(),
            encode_record(record)?.as_slice(),
        )?;
        Ok(())
    }

    /// Registers (or re-registers after a restart) a server; a DRAINING
    /// server stays DRAINING.
    pub(crate) fn register_server(
        &mut self,
        id: ServerId,
        addr: &str,
        zone: &str,
        capacity: u64,
        now_ms: i64,
    ) -> Result<CommandResult> {
        let previous = self.read_server(id)?;
        // One address, one server: another record at this address is a
        // server that was replaced (its data directory wiped or moved), so
        // it is retired: OFFLINE, with no address anything could reach.
        let mut replaced = Vec::new();
        for row in self.chunk_servers.iter()? {
            let (_, value) = row?;
            let record: ChunkServerRecord = decode_record(value.value())?;
            if record.id != id && record.addr == addr {
                replaced.push(record);
            }
        }
        for mut record in replaced {
            record.status = ServerStatus::Offline;
            record.addr = String::new();
            self.write_server(&record)?;
        }
        let status = match previous.as_ref().map(|p| p.status) {
            Some(ServerStatus::Draining) => ServerStatus::Draining,
            _ => ServerStatus::Online,
        };
        let record = ChunkServerRecord {
            id,
            addr: addr.to_owned(),
            zone: zone.to_owned(),
            capacity,
            used: previous.as_ref().map_or(0, |p| p.used),
            chunks: previous.as_ref().map_or(0, |p| p.chunks),
            status,
            last_heartbeat_ms: now_ms,
        };
        self.write_server(&record)?;
        Ok(Ok(Reply::ChunkServer(record)))
    }

    /// A heartbeat: usage now, and an OFFLINE server is back ONLINE.
    pub(crate) fn heartbeat(
        &mut self,
        id: ServerId,
        used: u64,
        chunks: u64,
        now_ms: i64,
    ) -> Result<CommandResult> {
        let Some(mut record) = self.read_server(id)? else {
            return Ok(Err(MetaError::NoSuchChunkServer(id)));
        };
        if record.addr.is_empty() {
            // Retired (another server took its address): it must register
            // again, saying where it is now.
            return Ok(Err(MetaError::NoSuchChunkServer(id)));
        }
        record.used = used;
        record.chunks = chunks;
        record.last_heartbeat_ms = record.last_heartbeat_ms.max(now_ms);
        if record.status == ServerStatus::Offline {
            record.status = ServerStatus::Online;
        }
        self.write_server(&record)?;
        Ok(Ok(Reply::ChunkServer(record)))
    }

    /// An operator's DRAINING or ONLINE (OFFLINE is the detector's alone).
    pub(crate) fn set_server_status(
        &mut self,
        id: ServerId,
        status: ServerStatus,
    ) -> Result<CommandResult> {
        let Some(mut record) = self.read_server(id)? else {
            return Ok(Err(MetaError::NoSuchChunkServer(id)));
        };
        if status == ServerStatus::Offline {
            return Ok(Err(MetaError::Conflict(
                "OFFLINE is set by missed heartbeats, not by hand".to_owned(),
            )));
        }
        record.status = status;
        self.write_server(&record)?;
        Ok(Ok(Reply::ChunkServer(record)))
    }

    /// Marks ONLINE servers whose last heartbeat is older than
    /// `now_ms - timeout_ms` OFFLINE; returns their ids.
    pub(crate) fn mark_offline(&mut self, now_ms: i64, timeout_ms: i64) -> Result<CommandResult> {
        let cutoff = now_ms.saturating_sub(timeout_ms);
        let mut late = Vec::new();
        for row in self.chunk_servers.iter()? {
            let (_, value) = row?;
            let record: ChunkServerRecord = decode_record(value.value())?;
            if record.status == ServerStatus::Online && record.last_heartbeat_ms < cutoff {
                late.push(record);
            }
        }
        let mut ids = Vec::with_capacity(late.len());
        for mut record in late {
            record.status = ServerStatus::Offline;
            self.write_server(&record)?;
            ids.push(record.id);
        }
        Ok(Ok(Reply::MarkedOffline(ids)))
    }
}

/// Marks servers OFFLINE whose heartbeats stopped for `timeout`, checking a
/// few times per timeout. Run it beside every node: on a follower the
/// proposal is refused (NotLeader) and nothing happens.
pub async fn offline_detector(
    client: crate::MetaClient,
    timeout: Duration,
    shutdown: CancellationToken,
) {
    let interval = (timeout / 3).max(Duration::from_millis(100));
    let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now_ms = crate::clock::now_ms();
        match client.mark_offline_servers(now_ms, timeout_ms).await {
            Ok(ids) if !ids.is_empty() => tracing::warn!(?ids, "chunk servers marked OFFLINE"),
            Ok(_) | Err(MetaError::NotLeader { .. }) => {}
            Err(e) => tracing::debug!(error = %e, "offline detection skipped"),
        }
    }
}
