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
//!   ([`Command::UpdateChunkReplicas`]).
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
//! ([`Command::CollectOrphans`]) first raises the *orphan horizon* to
//! `now - grace`, then declares deletable the candidates without a record
//! created before the horizon; a commit whose fresh chunks were created
//! before the horizon is refused ([`MetaError::StaleChunk`]). Both steps are
//! Raft commands, so whichever comes first in the log wins: a chunk is never
//! both deleted and committed, even when an upload outlives the grace.
//! A replica on a server its record does not list (a copy the healer made
//! redundant, a write target that was replaced) is a **stray**, deletable
//! once the server reports it as older than the grace.
//!
//! [`Command::UpdateChunkReplicas`]: crate::command::Command::UpdateChunkReplicas
//! [`Command::CollectOrphans`]: crate::command::Command::CollectOrphans

use std::ops::Bound;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use crate::command::{CommandResult, Reply};
use crate::error::{MetaError, Result};
use crate::limits::ORPHAN_CANDIDATES_MAX;
use crate::namespace::{NamespaceTables, open_read};
use crate::object::{ChunkId, ChunkRef};
use crate::registry::ServerId;
use crate::schema::{
    self, COUNTER_ORPHAN_HORIZON, GcOrigin, GcRecord, decode_record, encode_record, gc_key,
};

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
    let invalid = |why: String| Some(MetaError::Conflict(format!("invalid placement: {why}")));
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

/// Where a writer put a fresh chunk's replicas, carried by the command that
/// commits the chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPlacement {
    pub id: ChunkId,
    pub factor: u8,
    pub servers: Vec<ServerId>,
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

// ------------------------------------------------------------ mutations

impl NamespaceTables<'_> {
    pub(crate) fn read_chunk(&self, id: &ChunkId) -> Result<Option<ChunkRecord>> {
        match self.chunk_refs.get(id.0.as_slice())? {
            Some(value) => Ok(Some(decode_record(value.value())?)),
            None => Ok(None),
        }
    }

    /// Replaces the record of `id` (`old` as read, `new` None to remove it),
    /// keeping the server index and the under-replicated set in step.
    fn write_chunk(
        &mut self,
        id: &ChunkId,
        old: Option<&ChunkRecord>,
        new: Option<&ChunkRecord>,
    ) -> Result<()> {
        let old_servers = old.map_or(&[][..], |r| r.servers.as_slice());
        let new_servers = new.map_or(&[][..], |r| r.servers.as_slice());
        for server in old_servers.iter().filter(|s| !new_servers.contains(s)) {
            self.server_chunks
                .remove(server_chunk_key(*server, id).as_slice())?;
        }
        for server in new_servers.iter().filter(|s| !old_servers.contains(s)) {
            self.server_chunks
                .insert(server_chunk_key(*server, id).as_slice(), [].as_slice())?;
        }
        let was_under = old.is_some_and(ChunkRecord::under_replicated);
        let is_under = new.is_some_and(ChunkRecord::under_replicated);
        if is_under && !was_under {
            self.under_replicated
                .insert(id.0.as_slice(), [].as_slice())?;
        } else if was_under && !is_under {
            self.under_replicated.remove(id.0.as_slice())?;
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
                self.chunk_refs
                    .insert(id.0.as_slice(), encode_record(record)?.as_slice())?;
            }
            None => {
                self.chunk_refs.remove(id.0.as_slice())?;
            }
        }
        Ok(())
    }

    /// The first of `ids` that no version or part references, if any.
    pub(crate) fn first_unreferenced<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a ChunkId>,
    ) -> Result<Option<ChunkId>> {
        for id in ids {
            if self.read_chunk(id)?.is_none_or(|r| r.refs == 0) {
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
        &self,
        ids: impl IntoIterator<Item = &'a ChunkId>,
    ) -> Result<Option<MetaError>> {
        let horizon = self.orphan_horizon()?;
        for id in ids {
            match self.read_chunk(id)? {
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
        &mut self,
        chunks: impl IntoIterator<Item = &'a ChunkRef>,
        placements: &[ChunkPlacement],
    ) -> Result<()> {
        for chunk in chunks {
            let old = self.read_chunk(&chunk.id)?;
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
            self.write_chunk(&chunk.id, old.as_ref(), Some(&new))?;
        }
        Ok(())
    }

    /// Drops one reference from each chunk; chunks left with none go to the
    /// GC queue in one record naming `origin`.
    pub(crate) fn release(
        &mut self,
        log_index: u64,
        origin: GcOrigin,
        ids: impl Iterator<Item = ChunkId>,
    ) -> Result<()> {
        let mut garbage = Vec::new();
        for id in ids {
            let old = match self.read_chunk(&id)? {
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
            self.write_chunk(&id, Some(&old), Some(&new))?;
        }
        if garbage.is_empty() {
            return Ok(());
        }
        self.queue_gc(
            log_index,
            &GcRecord {
                origin,
                chunks: garbage,
            },
        )
    }

    /// Removes GC-queue records whose chunks the collector deleted, with
    /// the records of those chunks.
    pub(crate) fn gc_ack(&mut self, records: &[(u64, u32)]) -> Result<CommandResult> {
        for (log_index, sequence) in records {
            let Some(value) = self
                .gc_queue
                .remove(gc_key(*log_index, *sequence).as_slice())?
            else {
                continue;
            };
            let record: GcRecord = decode_record(value.value())?;
            drop(value);
            for id in &record.chunks {
                let old = self.read_chunk(id)?;
                match &old {
                    Some(chunk) if chunk.refs == 0 => self.write_chunk(id, old.as_ref(), None)?,
                    Some(_) => {
                        return Err(MetaError::Corrupt(format!(
                            "queued chunk {id} is referenced"
                        )));
                    }
                    None => {}
                }
            }
        }
        Ok(Ok(Reply::Done))
    }

    /// The healer copied chunk `id` to `add` and wants `remove` dropped.
    /// Refused (`Conflict`) once the chunk has no reference: its copies are
    /// garbage then.
    pub(crate) fn update_replicas(
        &mut self,
        id: &ChunkId,
        add: &[ServerId],
        remove: &[ServerId],
    ) -> Result<CommandResult> {
        let old = match self.read_chunk(id)? {
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
        self.write_chunk(id, Some(&old), Some(&new))?;
        Ok(Ok(Reply::Chunk(new)))
    }

    fn orphan_horizon(&self) -> Result<i64> {
        match self.counters.get(COUNTER_ORPHAN_HORIZON)? {
            Some(value) => decode_record(value.value()),
            None => Ok(i64::MIN),
        }
    }

    /// Raises the orphan horizon to `now_ms - grace_ms` and answers which
    /// `candidates` (chunk files `server` holds, older than the grace; `None`
    /// for `arbor serve`'s local store) may be deleted: orphans created
    /// before the horizon, and strays.
    pub(crate) fn collect_orphans(
        &mut self,
        server: Option<ServerId>,
        candidates: &[ChunkId],
        now_ms: i64,
        grace_ms: i64,
    ) -> Result<CommandResult> {
        if candidates.len() > ORPHAN_CANDIDATES_MAX {
            return Ok(Err(MetaError::Conflict(format!(
                "{} orphan candidates (at most {ORPHAN_CANDIDATES_MAX})",
                candidates.len()
            ))));
        }
        let horizon = self
            .orphan_horizon()?
            .max(now_ms.saturating_sub(grace_ms.max(0)));
        self.counters
            .insert(COUNTER_ORPHAN_HORIZON, encode_record(&horizon)?.as_slice())?;
        let mut deletable = Vec::new();
        for id in candidates {
            let delete = match self.read_chunk(id)? {
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
        Ok(Ok(Reply::Orphans(deletable)))
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
