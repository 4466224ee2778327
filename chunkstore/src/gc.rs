//! Garbage collection of chunks (the decisions are the metadata group's;
//! see `arbor_meta::chunks`).
//!
//! Two sources of garbage:
//! - **The GC queue**: chunks whose last reference (a version or a part)
//!   went away, recorded by the state machine. The [`Collector`] acts on a
//!   record only after it has seen it for `grace`, so a reader already
//!   streaming an old version finishes first; it deletes every replica the
//!   chunk's record names (or the local file), then acknowledges the record
//!   through Raft, which removes the chunk records too. A chunk with no
//!   references can never gain one again (shared references require a live
//!   chunk), so the deletion cannot race a commit. A replica on a server
//!   that could not be reached stays behind as an orphan.
//! - **Orphans** (chunks written but never committed, replicas nobody
//!   reached) and **strays** (replicas their record no longer lists): each
//!   store offers the chunk files older than `orphan_grace` to the
//!   metadata group ([`MetaClient::collect_orphans`], a Raft command) and
//!   deletes what it answers. For `arbor serve` the collector sweeps the
//!   local store; in a cluster each chunk server runs an [`OrphanSweeper`].
//!
//! Both run wherever they are started, but only the metadata leader
//! answers: on a follower, a pass finds `NotLeader` and does nothing.

use std::collections::HashMap;
use std::time::Duration;

use arbor_meta::limits::CHUNK_RECORDS_READ_MAX;
use arbor_meta::records::ServerId;
use arbor_meta::{ChunkId, MetaClient, MetaError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::ChunkBackend;
use crate::store::ChunkStore;

/// GC-queue records read per round trip.
const QUEUE_PAGE: usize = 256;
/// Chunk ids offered per orphan sweep command.
const ORPHAN_BATCH: usize = 1024;

#[derive(Clone, Debug)]
pub struct GcConfig {
    /// How long a queued chunk waits before deletion.
    pub grace: Duration,
    /// How old a chunk file must be to be offered as an orphan. Must exceed
    /// the longest upload of one body and the healer's copy-then-record.
    pub orphan_grace: Duration,
}

/// How often a sweep runs: a few times per grace period, within bounds.
fn interval_for(grace: Duration) -> Duration {
    (grace / 2).clamp(Duration::from_millis(250), Duration::from_secs(60))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub queued_deleted: u64,
    pub orphans_deleted: u64,
}

/// Works the GC queue (and, for a local store, its orphans).
pub struct Collector {
    meta: MetaClient,
    backend: ChunkBackend,
    config: GcConfig,
    /// When each pending queue record was first seen (restarts and
    /// leadership changes reset it, which only delays deletion).
    first_seen: HashMap<(u64, u32), Instant>,
}

impl Collector {
    pub fn new(meta: MetaClient, backend: ChunkBackend, config: GcConfig) -> Collector {
        Collector {
            meta,
            backend,
            config,
            first_seen: HashMap::new(),
        }
    }

    /// Runs passes until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let interval = interval_for(self.config.grace.min(self.config.orphan_grace));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let pass = tokio::select! {
                () = shutdown.cancelled() => return,
                pass = self.pass() => pass,
            };
            match pass {
                Ok(report) if report != GcReport::default() => {
                    tracing::info!(?report, "garbage collected")
                }
                Ok(_) | Err(MetaError::NotLeader { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "garbage collection pass failed"),
            }
        }
    }

    /// One pass over the queue, then (local store) over orphans.
    pub async fn pass(&mut self) -> Result<GcReport, MetaError> {
        let mut report = GcReport::default();
        let now = Instant::now();
        let mut after = None;
        let mut seen = HashMap::new();
        loop {
            let page = self.meta.gc_queue(after, QUEUE_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key);
            let mut done = Vec::new();
            for entry in &page {
                let first = *self.first_seen.get(&entry.key).unwrap_or(&now);
                seen.insert(entry.key, first);
                if now.duration_since(first) < self.config.grace {
                    continue;
                }
                let mut records = Vec::with_capacity(entry.record.chunks.len());
                for batch in entry.record.chunks.chunks(CHUNK_RECORDS_READ_MAX) {
                    records.extend(self.meta.chunk_records(batch.to_vec()).await?);
                }
                for (id, record) in entry.record.chunks.iter().zip(records) {
                    // Invariant: a queued chunk has no references.
                    if let Some(record) = &record
                        && record.refs > 0
                    {
                        tracing::error!(chunk = %id, "queued chunk is referenced; keeping it");
                        continue;
                    }
                    let placement = record.map(|r| arbor_meta::ChunkPlacement {
                        id: *id,
                        factor: r.factor,
                        servers: r.servers,
                    });
                    self.backend.discard(*id, placement.as_ref()).await;
                    report.queued_deleted += 1;
                }
                done.push(entry.key);
            }
            if !done.is_empty() {
                for key in &done {
                    seen.remove(key);
                }
                self.meta.gc_ack(done).await?;
            }
            if page.len() < QUEUE_PAGE {
                break;
            }
        }
        self.first_seen = seen;

        if let ChunkBackend::Local(store) = &self.backend {
            report.orphans_deleted =
                sweep_orphans(&self.meta, store, None, self.config.orphan_grace).await?;
        }
        Ok(report)
    }
}

/// Offers the chunk files of `store` older than `grace` to the metadata
/// group as orphan candidates and deletes those it declares deletable.
/// Returns how many were deleted. Ages and the horizon proposed are both
/// by the store's clock.
pub async fn sweep_orphans(
    meta: &MetaClient,
    store: &ChunkStore,
    server: Option<ServerId>,
    grace: Duration,
) -> Result<u64, MetaError> {
    let candidates = store
        .list_older_than(grace)
        .await
        .map_err(|e| MetaError::Storage(format!("cannot list chunks: {e}")))?;
    let mut deleted = 0;
    for batch in candidates.chunks(ORPHAN_BATCH) {
        // Most old files are live chunks: a read filters them out, so the
        // Raft command (which decides, and checks again) carries only the
        // likely garbage and is skipped when there is none.
        let records = meta.chunk_records(batch.to_vec()).await?;
        let likely: Vec<ChunkId> = batch
            .iter()
            .zip(records)
            .filter(|(_, record)| match (record, server) {
                (None, _) => true,
                (Some(record), Some(server)) => {
                    record.factor > 0 && !record.servers.contains(&server)
                }
                (Some(_), None) => false,
            })
            .map(|(id, _)| *id)
            .collect();
        if likely.is_empty() {
            continue;
        }
        let deletable: Vec<ChunkId> = meta
            .collect_orphans(server, likely, store.clock().now_ms(), millis(grace))
            .await?;
        for id in deletable {
            // Re-checked: a copy of the same chunk may have landed since.
            match store.delete_if_older_than(id, grace).await {
                Ok(true) => deleted += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(chunk = %id, error = %e, "could not delete orphan chunk"),
            }
        }
    }
    Ok(deleted)
}

/// A chunk server's orphan and stray collection (see the module doc).
pub struct OrphanSweeper {
    pub meta: MetaClient,
    pub store: ChunkStore,
    pub server: ServerId,
    pub grace: Duration,
}

impl OrphanSweeper {
    pub async fn run(self, shutdown: CancellationToken) {
        let interval = interval_for(self.grace);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let swept = tokio::select! {
                () = shutdown.cancelled() => return,
                swept = sweep_orphans(&self.meta, &self.store, Some(self.server), self.grace) => swept,
            };
            match swept {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "orphan and stray chunks deleted"),
                Err(e) => tracing::warn!(error = %e, "orphan sweep failed"),
            }
        }
    }
}
