//! The chunk-server registry: who holds chunks, where, how full, and
//! whether they are alive.
//!
//! Servers register (and re-register after a restart), send heartbeats with
//! their usage, and are marked OFFLINE by [`MarkOfflineServers`] when their
//! last heartbeat is older than the timeout; the time is the proposer's (the
//! apply step reads no clock). An operator can set DRAINING (no new chunks;
//! its chunks are moved off) and back to ONLINE. The task that proposes
//! `MarkOfflineServers` is `offline`.

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::context::ApplyContext;
use crate::error::{MetaError, Result};
use crate::op::{Apply, Outcome, Query, SIZE_BASE};
use crate::records::server::{ChunkServerRecord, ServerId, ServerStatus};
use crate::schema::{self, decode_record, encode_record};
use crate::tree::open_read;

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

/// Linearizable list of registered servers, by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkServers;

impl Query for ChunkServers {
    type Reply = Vec<ChunkServerRecord>;
    fn read(&self, txn: &ReadTransaction) -> Result<Vec<ChunkServerRecord>> {
        chunk_servers(txn)
    }
}

/// A chunk server registers (or re-registers after a restart); a DRAINING
/// server stays DRAINING. `now_ms` is the proposer's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterChunkServer {
    pub id: ServerId,
    pub addr: String,
    pub zone: String,
    pub capacity: u64,
    pub now_ms: i64,
}

impl Apply for RegisterChunkServer {
    type Reply = ChunkServerRecord;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<ChunkServerRecord>> {
        let (id, addr, zone, capacity, now_ms) = (
            self.id,
            self.addr.as_str(),
            self.zone.as_str(),
            self.capacity,
            self.now_ms,
        );

        let previous = read_server(ctx, id)?;
        // One address, one server: another record at this address is a
        // server that was replaced (its data directory wiped or moved), so
        // it is retired: OFFLINE, with no address anything could reach.
        let mut replaced = Vec::new();
        for row in ctx.chunk_servers.iter()? {
            let (_, value) = row?;
            let record: ChunkServerRecord = decode_record(value.value())?;
            if record.id != id && record.addr == addr {
                replaced.push(record);
            }
        }
        for mut record in replaced {
            record.status = ServerStatus::Offline;
            record.addr = String::new();
            write_server(ctx, &record)?;
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
        write_server(ctx, &record)?;
        Ok(Ok(record))
    }

    fn size_estimate(&self) -> usize {
        SIZE_BASE + self.addr.len() + self.zone.len()
    }
}

/// A heartbeat: usage now, and an OFFLINE server is back ONLINE.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkServerHeartbeat {
    pub id: ServerId,
    pub used: u64,
    pub chunks: u64,
    pub now_ms: i64,
}

impl Apply for ChunkServerHeartbeat {
    type Reply = ChunkServerRecord;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<ChunkServerRecord>> {
        let (id, used, chunks, now_ms) = (self.id, self.used, self.chunks, self.now_ms);

        let Some(mut record) = read_server(ctx, id)? else {
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
        write_server(ctx, &record)?;
        Ok(Ok(record))
    }
}

/// An operator sets DRAINING or ONLINE (OFFLINE is the detector's alone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetChunkServerStatus {
    pub id: ServerId,
    pub status: ServerStatus,
}

impl Apply for SetChunkServerStatus {
    type Reply = ChunkServerRecord;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<ChunkServerRecord>> {
        let (id, status) = (self.id, self.status);

        let Some(mut record) = read_server(ctx, id)? else {
            return Ok(Err(MetaError::NoSuchChunkServer(id)));
        };
        if status == ServerStatus::Offline {
            return Ok(Err(MetaError::InvalidRequest(
                "OFFLINE is set by missed heartbeats, not by hand".to_owned(),
            )));
        }
        record.status = status;
        write_server(ctx, &record)?;
        Ok(Ok(record))
    }
}

/// Servers whose last heartbeat is older than `now_ms - timeout_ms` become
/// OFFLINE; replies with their ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkOfflineServers {
    pub now_ms: i64,
    pub timeout_ms: i64,
}

impl Apply for MarkOfflineServers {
    type Reply = Vec<ServerId>;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<Vec<ServerId>>> {
        let (now_ms, timeout_ms) = (self.now_ms, self.timeout_ms);

        let cutoff = now_ms.saturating_sub(timeout_ms);
        let mut late = Vec::new();
        for row in ctx.chunk_servers.iter()? {
            let (_, value) = row?;
            let record: ChunkServerRecord = decode_record(value.value())?;
            if record.status == ServerStatus::Online && record.last_heartbeat_ms < cutoff {
                late.push(record);
            }
        }
        let mut ids = Vec::with_capacity(late.len());
        for mut record in late {
            record.status = ServerStatus::Offline;
            write_server(ctx, &record)?;
            ids.push(record.id);
        }
        Ok(Ok(ids))
    }
}

fn read_server(ctx: &ApplyContext<'_>, id: ServerId) -> Result<Option<ChunkServerRecord>> {
    match ctx.chunk_servers.get(id.to_be_bytes().as_slice())? {
        Some(value) => Ok(Some(decode_record(value.value())?)),
        None => Ok(None),
    }
}

fn write_server(ctx: &mut ApplyContext<'_>, record: &ChunkServerRecord) -> Result<()> {
    ctx.chunk_servers.insert(
        record.id.to_be_bytes().as_slice(),
        encode_record(record)?.as_slice(),
    )?;
    Ok(())
}
