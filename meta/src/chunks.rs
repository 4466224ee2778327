//! Chunk records: what the metadata group knows of every chunk a version or
//! a part references, where its replicas are, and the decisions about chunk
//! files that nothing references (garbage collection).
//!
//! A record lives from the commit that first references a chunk until the
//! collector has deleted it:
//!
//! - **live** (`refs > 0`): versions and parts reference it; `servers` are
//!   the chunk servers holding its replicas (empty for `arbor serve`'s local
//!   store, `factor` 0). The healer copies and moves replicas
//!   ([`UpdateChunkReplicas`]).
//! - **dying** (`refs == 0`): the last reference went away and the chunk
//!   sits in the GC queue. It can never be referenced again; its record
//!   stays so the collector knows where the replicas are and so no orphan
//!   sweep deletes it before the queue's grace period is over.
//! - **gone**: `GcAck` removed the record after the collector deleted the
//!   replicas.
//!
//! **Orphans** are chunk files no record names: written by an upload that
//! never committed, or a replica the collector could not reach. A chunk id
//! starts with its creation time ([`ChunkId::created_ms`]). A sweep
//! ([`CollectOrphans`]) first raises the *orphan horizon* to
//! `now - grace`, then declares deletable the candidates without a record
//! created before the horizon; a commit whose fresh chunks were created
//! before the horizon is refused ([`MetaError::StaleChunk`]). Both steps are
//! Raft commands, so whichever comes first in the log wins: a chunk is never
//! both deleted and committed, even when an upload outlives the grace.
//! A replica on a server its record does not list (a copy the healer made
//! redundant, a write target that was replaced) is a **stray**, deletable
//! once the server reports it as older than the grace.
//!

use std::ops::Bound;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use crate::context::ApplyContext;
use crate::error::{MetaError, Result};
use crate::limits::{CHUNK_RECORDS_READ_MAX, ORPHAN_CANDIDATES_MAX};
use crate::op::{Apply, Outcome, Query, SIZE_BASE};
use crate::records::chunk::{ChunkPlacement, ChunkRecord};
use crate::records::object::{ChunkId, ChunkRef};
use crate::records::server::ServerId;
use crate::records::tree::{GcEntry, GcOrigin, GcRecord};
use crate::schema::{
    self, COUNTER_ORPHAN_HORIZON, decode_record, encode_record, gc_key, split_gc_key,
};
use crate::tree::open_read;

/// Why `placements` cannot describe the fresh chunks `fresh` of a command:
/// with placements at all (a cluster), each fresh chunk needs exactly one,
/// naming a factor and distinct servers; none may name another chunk.
/// Without placements the chunks are a local store's.
pub(crate) fn check_placements<'a>(
    fresh: impl IntoIterator<Item = &'a ChunkId>,
    placements: &[ChunkPlacement],
) -> Option<MetaError> {
    if placements.is_empty() {
        return None;
    }
    let invalid = |why: String| {
        Some(MetaError::InvalidRequest(format!(
            "invalid placement: {why}"
        )))
    };
    let fresh: Vec<&ChunkId> = fresh.into_iter().collect();
    for placement in placements {
        if !fresh.contains(&&placement.id) {
            return invalid(format!("chunk {} is not a fresh chunk here", placement.id));
        }
        let mut servers = placement.servers.clone();
        servers.sort_unstable();
        servers.dedup();
        if placement.factor == 0
            || placement.servers.is_empty()
            || servers.len() != placement.servers.len()
        {
            return invalid(format!(
                "chunk {}: factor {} on servers {:?}",
                placement.id, placement.factor, placement.servers
            ));
        }
    }
    for id in fresh {
        let count = placements.iter().filter(|p| p.id == *id).count();
        if count != 1 {
            return invalid(format!("chunk {id} has {count} placements"));
        }
    }
    None
}

/// About how many bytes placements take encoded: id, factor, server ids.
pub(crate) fn placements_size(placements: &[ChunkPlacement]) -> usize {
    placements
        .iter()
        .map(|p| 18usize.saturating_add(p.servers.len().saturating_mul(9)))
        .fold(0, usize::saturating_add)
}

// ---------------------------------------------------------------- keys

/// `ns_server_chunks` key: server id BE ‖ chunk id.
fn server_chunk_key(server: ServerId, id: &ChunkId) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&server.to_be_bytes());
    key[8..].copy_from_slice(&id.0);
    key
}

fn chunk_id_at(bytes: &[u8]) -> Result<ChunkId> {
    <[u8; 16]>::try_from(bytes)
        .map(ChunkId)
        .map_err(|_| MetaError::Corrupt(format!("chunk id of {} bytes", bytes.len())))
}

// ---------------------------------------------------------------- reads

/// The record of each id (`None`: no version or part ever committed it, or
/// it has been collected).
pub fn chunk_records(txn: &ReadTransaction, ids: &[ChunkId]) -> Result<Vec<Option<ChunkRecord>>> {
    let Some(table) = open_read(txn, schema::CHUNK_REFS)? else {
        return Ok(vec![None; ids.len()]);
    };
    ids.iter()
        .map(|id| match table.get(id.0.as_slice())? {
            Some(value) => Ok(Some(decode_record(value.value())?)),
            None => Ok(None),
        })
        .collect()
}

/// For each id, whether any version or part references it.
pub fn chunks_referenced(txn: &ReadTransaction, ids: &[ChunkId]) -> Result<Vec<bool>> {
    Ok(chunk_records(txn, ids)?
        .into_iter()
        .map(|record| record.is_some_and(|r| r.refs > 0))
        .collect())
}

/// Up to `limit` chunks whose records list `server`, in id order after
/// `after`.
pub fn server_chunks(
    txn: &ReadTransaction,
    server: ServerId,
    after: Option<ChunkId>,
    limit: usize,
) -> Result<Vec<ChunkId>> {
    let Some(table) = open_read(txn, schema::SERVER_CHUNKS)? else {
        return Ok(Vec::new());
    };
    let start = match after {
        Some(id) => Bound::Excluded(server_chunk_key(server, &id)),
        None => Bound::Included(server_chunk_key(server, &ChunkId([0; 16]))),
    };
    let end = Bound::Included(server_chunk_key(server, &ChunkId([0xff; 16])));
    let range = (
        start.as_ref().map(|k| k.as_slice()),
        end.as_ref().map(|k| k.as_slice()),
    );
    let mut ids = Vec::new();
    for row in table.range::<&[u8]>(range)?.take(limit) {
        let (key, _) = row?;
        ids.push(chunk_id_at(key.value().get(8..).unwrap_or_default())?);
    }
    Ok(ids)
}

/// Up to `limit` live chunks with fewer replicas than their factor, in id
/// order after `after`.
pub fn under_replicated(
    txn: &ReadTransaction,
    after: Option<ChunkId>,
    limit: usize,
) -> Result<Vec<ChunkId>> {
    let Some(table) = open_read(txn, schema::UNDER_REPLICATED)? else {
        return Ok(Vec::new());
    };
    let start = match after {
        Some(id) => Bound::Excluded(id.0),
        None => Bound::Unbounded,
    };
    let range = (start.as_ref().map(|k| k.as_slice()), Bound::Unbounded);
    let mut ids = Vec::new();
    for row in table.range::<&[u8]>(range)?.take(limit) {
        let (key, _) = row?;
        ids.push(chunk_id_at(key.value())?);
    }
    Ok(ids)
}

/// Counts for `arbor admin`: chunk records, and those under-replicated.
pub fn chunk_counts(txn: &ReadTransaction) -> Result<(u64, u64)> {
    let records = match open_read(txn, schema::CHUNK_REFS)? {
        Some(table) => table.len()?,
        None => 0,
    };
    let under = match open_read(txn, schema::UNDER_REPLICATED)? {
        Some(table) => table.len()?,
        None => 0,
    };
    Ok((records, under))
}

/// Up to `limit` GC-queue records after `after`, in queue order.
pub fn gc_queue(
    txn: &ReadTransaction,
    after: Option<(u64, u32)>,
    limit: usize,
) -> Result<Vec<GcEntry>> {
    let Some(queue) = open_read(txn, schema::GC_QUEUE)? else {
        return Ok(Vec::new());
    };
    let start = match after {
        Some((index, sequence)) => Bound::Excluded(gc_key(index, sequence)),
        None => Bound::Unbounded,
    };
    let start_ref = match &start {
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    };
    let mut entries = Vec::new();
    for row in queue.range::<&[u8]>((start_ref, Bound::Unbounded))? {
        if entries.len() == limit {
            break;
        }
        let (key, value) = row?;
        entries.push(GcEntry {
            key: split_gc_key(key.value())?,
            record: decode_record(value.value())?,
        });
    }
    Ok(entries)
}

// ------------------------------------------------------------ queries

/// Up to `limit` GC-queue records after `after` (in queue order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcQueue {
    pub after: Option<(u64, u32)>,
    pub limit: usize,
}

impl Query for GcQueue {
    type Reply = Vec<GcEntry>;
    fn read(&self, txn: &ReadTransaction) -> Result<Vec<GcEntry>> {
        gc_queue(txn, self.after, self.limit)
    }
}

/// For each id, whether any version or part references it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunksReferenced {
    pub ids: Vec<ChunkId>,
}

impl Query for ChunksReferenced {
    type Reply = Vec<bool>;
    fn read(&self, txn: &ReadTransaction) -> Result<Vec<bool>> {
        chunks_referenced(txn, &self.ids)
    }
}

/// The record of each chunk (`None`: not committed, or collected); at most
/// [`CHUNK_RECORDS_READ_MAX`] ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecords {
    pub ids: Vec<ChunkId>,
}

impl Query for ChunkRecords {
    type Reply = Vec<Option<ChunkRecord>>;
    fn validate(&self) -> Result<()> {
        if self.ids.len() > CHUNK_RECORDS_READ_MAX {
            return Err(MetaError::InvalidRequest(format!(
                "{} chunk ids (at most {CHUNK_RECORDS_READ_MAX})",
                self.ids.len()
            )));
        }
        Ok(())
    }
    fn read(&self, txn: &ReadTransaction) -> Result<Vec<Option<ChunkRecord>>> {
        chunk_records(txn, &self.ids)
    }
}

/// Up to `limit` (at most [`CHUNK_RECORDS_READ_MAX`]) chunks whose records
/// list `server`, after `after`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerChunks {
    pub server: ServerId,
    pub after: Option<ChunkId>,
    pub limit: usize,
}

impl Query for ServerChunks {
    type Reply = Vec<ChunkId>;
    fn read(&self, txn: &ReadTransaction) -> Result<Vec<ChunkId>> {
        let limit = self.limit.min(CHUNK_RECORDS_READ_MAX);
        server_chunks(txn, self.server, self.after, limit)
    }
}

/// Up to `limit` (at most [`CHUNK_RECORDS_READ_MAX`]) live chunks with
/// fewer replicas than their factor, after `after`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnderReplicated {
    pub after: Option<ChunkId>,
    pub limit: usize,
}

impl Query for UnderReplicated {
    type Reply = Vec<ChunkId>;
    fn read(&self, txn: &ReadTransaction) -> Result<Vec<ChunkId>> {
        let limit = self.limit.min(CHUNK_RECORDS_READ_MAX);
        under_replicated(txn, self.after, limit)
    }
}

/// How many chunk records there are, and how many are under-replicated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkCounts;

/// The answer to [`ChunkCounts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkTally {
    pub records: u64,
    pub under_replicated: u64,
}

impl Query for ChunkCounts {
    type Reply = ChunkTally;
    fn read(&self, txn: &ReadTransaction) -> Result<ChunkTally> {
        let (records, under_replicated) = chunk_counts(txn)?;
        Ok(ChunkTally {
            records,
            under_replicated,
        })
    }
}

// ------------------------------------------------ reference counting

pub(crate) fn read_chunk(ctx: &ApplyContext<'_>, id: &ChunkId) -> Result<Option<ChunkRecord>> {
    match ctx.chunk_refs.get(id.0.as_slice())? {
        Some(value) => Ok(Some(decode_record(value.value())?)),
        None => Ok(None),
    }
}

/// Replaces the record of `id` (`old` as read, `new` None to remove it),
/// keeping the server index and the under-replicated set in step.
fn write_chunk(
    ctx: &mut ApplyContext<'_>,
    id: &ChunkId,
    old: Option<&ChunkRecord>,
    new: Option<&ChunkRecord>,
) -> Result<()> {
    let old_servers = old.map_or(&[][..], |r| r.servers.as_slice());
    let new_servers = new.map_or(&[][..], |r| r.servers.as_slice());
    for server in old_servers.iter().filter(|s| !new_servers.contains(s)) {
        ctx.server_chunks
            .remove(server_chunk_key(*server, id).as_slice())?;
    }
    for server in new_servers.iter().filter(|s| !old_servers.contains(s)) {
        ctx.server_chunks
            .insert(server_chunk_key(*server, id).as_slice(), [].as_slice())?;
    }
    let was_under = old.is_some_and(ChunkRecord::under_replicated);
    let is_under = new.is_some_and(ChunkRecord::under_replicated);
    if is_under && !was_under {
        ctx.under_replicated
            .insert(id.0.as_slice(), [].as_slice())?;
    } else if was_under && !is_under {
        ctx.under_replicated.remove(id.0.as_slice())?;
    }
    match new {
        Some(record) => {
            debug_assert!(
                {
                    let mut s = record.servers.clone();
                    s.sort_unstable();
                    s.dedup();
                    s.len() == record.servers.len()
                },
                "a chunk record names a server twice"
            );
            ctx.chunk_refs
                .insert(id.0.as_slice(), encode_record(record)?.as_slice())?;
        }
        None => {
            ctx.chunk_refs.remove(id.0.as_slice())?;
        }
    }
    Ok(())
}

/// The first of `ids` that no version or part references, if any.
pub(crate) fn first_unreferenced<'a>(
    ctx: &ApplyContext<'_>,
    ids: impl IntoIterator<Item = &'a ChunkId>,
) -> Result<Option<ChunkId>> {
    for id in ids {
        if read_chunk(ctx, id)?.is_none_or(|r| r.refs == 0) {
            return Ok(Some(*id));
        }
    }
    Ok(None)
}

/// Why fresh chunks (just written for the command at hand) cannot be
/// committed: one was created before the orphan horizon (an orphan
/// sweep may have deleted it), or has lost its last reference already
/// (the collector may have deleted it).
pub(crate) fn check_fresh<'a>(
    ctx: &ApplyContext<'_>,
    ids: impl IntoIterator<Item = &'a ChunkId>,
) -> Result<Option<MetaError>> {
    let horizon = orphan_horizon(ctx)?;
    for id in ids {
        match read_chunk(ctx, id)? {
            Some(record) if record.refs == 0 => {
                return Ok(Some(MetaError::Conflict(format!(
                    "chunk {id} is being collected"
                ))));
            }
            // Referenced already: one more reference is harmless.
            Some(_) => {}
            None if id.created_ms() < horizon => {
                return Ok(Some(MetaError::StaleChunk(id.to_hex())));
            }
            None => {}
        }
    }
    Ok(None)
}

/// Adds one reference to each chunk, creating the records of fresh
/// chunks (their replicas named in `placements`).
pub(crate) fn reference<'a>(
    ctx: &mut ApplyContext<'_>,
    chunks: impl IntoIterator<Item = &'a ChunkRef>,
    placements: &[ChunkPlacement],
) -> Result<()> {
    for chunk in chunks {
        let old = read_chunk(ctx, &chunk.id)?;
        let new = match &old {
            Some(record) if record.refs == 0 => {
                return Err(MetaError::Corrupt(format!(
                    "chunk {} referenced after its last reference went away",
                    chunk.id
                )));
            }
            Some(record) => ChunkRecord {
                refs: record.refs.checked_add(1).ok_or_else(|| {
                    MetaError::Corrupt(format!("chunk {} reference count overflows", chunk.id))
                })?,
                ..record.clone()
            },
            None => {
                let placement = placements.iter().find(|p| p.id == chunk.id);
                ChunkRecord {
                    refs: 1,
                    size: chunk.size,
                    sha256: chunk.sha256,
                    factor: placement.map_or(0, |p| p.factor),
                    servers: placement.map(|p| p.servers.clone()).unwrap_or_default(),
                }
            }
        };
        write_chunk(ctx, &chunk.id, old.as_ref(), Some(&new))?;
    }
    Ok(())
}

/// Drops one reference from each chunk; chunks left with none go to the
/// GC queue in one record naming `origin`.
pub(crate) fn release(
    ctx: &mut ApplyContext<'_>,
    origin: GcOrigin,
    ids: impl Iterator<Item = ChunkId>,
) -> Result<()> {
    let mut garbage = Vec::new();
    for id in ids {
        let old = match read_chunk(ctx, &id)? {
            Some(record) if record.refs > 0 => record,
            _ => {
                return Err(MetaError::Corrupt(format!(
                    "chunk {id} released but not referenced"
                )));
            }
        };
        let new = ChunkRecord {
            refs: old.refs - 1,
            ..old.clone()
        };
        if new.refs == 0 {
            garbage.push(id);
        }
        write_chunk(ctx, &id, Some(&old), Some(&new))?;
    }
    if garbage.is_empty() {
        return Ok(());
    }
    queue_gc(
        ctx,
        &GcRecord {
            origin,
            chunks: garbage,
        },
    )
}

fn orphan_horizon(ctx: &ApplyContext<'_>) -> Result<i64> {
    match ctx.counters.get(COUNTER_ORPHAN_HORIZON)? {
        Some(value) => decode_record(value.value()),
        None => Ok(i64::MIN),
    }
}

/// Appends to the GC queue under `ctx.log_index` with the next free sequence
/// number (one log entry may carry several commands).
pub(crate) fn queue_gc(ctx: &mut ApplyContext<'_>, record: &GcRecord) -> Result<()> {
    let start = gc_key(ctx.log_index, 0);
    let sequence = {
        let mut range = match ctx.log_index.checked_add(1) {
            Some(next) => ctx
                .gc_queue
                .range::<&[u8]>(start.as_slice()..gc_key(next, 0).as_slice())?,
            None => ctx.gc_queue.range::<&[u8]>(start.as_slice()..)?,
        };
        match range.next_back() {
            Some(row) => {
                let (key, _) = row?;
                let (_, sequence) = split_gc_key(key.value())?;
                sequence
                    .checked_add(1)
                    .ok_or_else(|| MetaError::Corrupt("gc queue sequence exhausted".to_owned()))?
            }
            None => 0,
        }
    };
    ctx.gc_queue.insert(
        gc_key(ctx.log_index, sequence).as_slice(),
        encode_record(record)?.as_slice(),
    )?;
    Ok(())
}

// ------------------------------------------------------------ commands

/// The collector deleted the chunks of these GC-queue records: the records
/// go, with the chunks' own records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcAck {
    pub records: Vec<(u64, u32)>,
}

impl Apply for GcAck {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        let records = &self.records;

        for (log_index, sequence) in records {
            let Some(value) = ctx
                .gc_queue
                .remove(gc_key(*log_index, *sequence).as_slice())?
            else {
                continue;
            };
            let record: GcRecord = decode_record(value.value())?;
            drop(value);
            for id in &record.chunks {
                let old = read_chunk(ctx, id)?;
                match &old {
                    Some(chunk) if chunk.refs == 0 => write_chunk(ctx, id, old.as_ref(), None)?,
                    Some(_) => {
                        return Err(MetaError::Corrupt(format!(
                            "queued chunk {id} is referenced"
                        )));
                    }
                    None => {}
                }
            }
        }
        Ok(Ok(()))
    }

    fn size_estimate(&self) -> usize {
        SIZE_BASE.saturating_add(self.records.len().saturating_mul(12))
    }
}

/// The healer copied chunk `id` to the servers `add`; the servers `remove`
/// no longer count as replicas. Replies with the chunk's record as it now
/// is; `Conflict` once the chunk has lost its last reference (its copies
/// are garbage then).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateChunkReplicas {
    pub id: ChunkId,
    pub add: Vec<ServerId>,
    pub remove: Vec<ServerId>,
}

impl Apply for UpdateChunkReplicas {
    type Reply = ChunkRecord;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<ChunkRecord>> {
        let UpdateChunkReplicas { id, add, remove } = self;

        let old = match read_chunk(ctx, id)? {
            Some(record) if record.refs > 0 => record,
            _ => {
                return Ok(Err(MetaError::Conflict(format!(
                    "chunk {id} is no longer referenced"
                ))));
            }
        };
        let mut servers: Vec<ServerId> = old
            .servers
            .iter()
            .copied()
            .filter(|s| !remove.contains(s))
            .collect();
        for server in add {
            if !servers.contains(server) {
                servers.push(*server);
            }
        }
        if servers.is_empty() {
            return Ok(Err(MetaError::Conflict(format!(
                "chunk {id} would be left without a replica"
            ))));
        }
        let new = ChunkRecord {
            servers,
            ..old.clone()
        };
        write_chunk(ctx, id, Some(&old), Some(&new))?;
        Ok(Ok(new))
    }

    fn size_estimate(&self) -> usize {
        SIZE_BASE.saturating_add((self.add.len() + self.remove.len()).saturating_mul(8))
    }
}

/// An orphan sweep: raises the orphan horizon to `now_ms - grace_ms` and
/// answers which of `candidates` (chunk files on `server`, or on the local
/// store for `None`, older than the grace) may be deleted: orphans created
/// before the horizon, and strays.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectOrphans {
    pub server: Option<ServerId>,
    pub candidates: Vec<ChunkId>,
    pub now_ms: i64,
    pub grace_ms: i64,
}

impl Apply for CollectOrphans {
    type Reply = Vec<ChunkId>;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<Vec<ChunkId>>> {
        let CollectOrphans {
            server,
            candidates,
            now_ms,
            grace_ms,
        } = self;
        let (server, now_ms, grace_ms) = (*server, *now_ms, *grace_ms);

        if candidates.len() > ORPHAN_CANDIDATES_MAX {
            return Ok(Err(MetaError::InvalidRequest(format!(
                "{} orphan candidates (at most {ORPHAN_CANDIDATES_MAX})",
                candidates.len()
            ))));
        }
        let horizon = orphan_horizon(ctx)?.max(now_ms.saturating_sub(grace_ms.max(0)));
        ctx.counters
            .insert(COUNTER_ORPHAN_HORIZON, encode_record(&horizon)?.as_slice())?;
        let mut deletable = Vec::new();
        for id in candidates {
            let delete = match read_chunk(ctx, id)? {
                None => id.created_ms() < horizon,
                Some(record) => match server {
                    Some(server) => record.factor > 0 && !record.servers.contains(&server),
                    None => false,
                },
            };
            if delete {
                deletable.push(*id);
            }
        }
        Ok(Ok(deletable))
    }

    fn size_estimate(&self) -> usize {
        SIZE_BASE.saturating_add(self.candidates.len().saturating_mul(16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_chunk_keys_order_by_server_then_chunk() {
        let a = server_chunk_key(1, &ChunkId([0xff; 16]));
        let b = server_chunk_key(2, &ChunkId([0; 16]));
        assert!(a < b);
        assert_eq!(chunk_id_at(&a[8..]).ok(), Some(ChunkId([0xff; 16])));
    }

    #[test]
    fn under_replicated_needs_a_reference_and_a_factor() {
        let record = ChunkRecord {
            refs: 1,
            size: 1,
            sha256: [0; 32],
            factor: 3,
            servers: vec![1, 2],
        };
        assert!(record.under_replicated());
        assert!(
            !ChunkRecord {
                refs: 0,
                ..record.clone()
            }
            .under_replicated()
        );
        assert!(
            !ChunkRecord {
                factor: 0,
                servers: Vec::new(),
                ..record.clone()
            }
            .under_replicated()
        );
        assert!(
            !ChunkRecord {
                servers: vec![1, 2, 3],
                ..record
            }
            .under_replicated()
        );
    }
}
