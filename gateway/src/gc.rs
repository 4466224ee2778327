//! The garbage collector of `arbor serve`'s local chunk store.
//!
//! Two sources of garbage:
//! - **The GC queue**: chunks whose last reference (a version or a part)
//!   went away, recorded by the state machine. A record is acted on only
//!   after it has been seen for `grace`, so a reader already streaming an old
//!   version finishes first; its chunks are deleted, then the record is
//!   acknowledged through Raft. A chunk with no references can never gain
//!   one again (shared references require a live chunk), so the deletion
//!   cannot race a commit.
//! - **Orphans**: chunks written but never committed (a client that went
//!   away mid-upload, a crash between chunk write and commit). Chunk files
//!   older than `orphan_grace` that no version or part references are
//!   deleted. `orphan_grace` must exceed the longest upload of one body.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arbor_chunkstore::ChunkStore;
use arbor_meta::MetaClient;
use tokio_util::sync::CancellationToken;

/// GC-queue records read per round trip.
const QUEUE_PAGE: usize = 256;
/// Chunk ids checked per reference query.
const REFERENCE_BATCH: usize = 1024;

#[derive(Clone, Debug)]
pub struct GcConfig {
    /// How long a queued chunk waits before deletion.
    pub grace: Duration,
    /// How old an unreferenced chunk file must be to count as an orphan.
    pub orphan_grace: Duration,
}

impl GcConfig {
    /// How often the collector runs: a few times per grace period.
    fn interval(&self) -> Duration {
        (self.grace.min(self.orphan_grace) / 2)
            .clamp(Duration::from_millis(250), Duration::from_secs(60))
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub queued_deleted: u64,
    pub orphans_deleted: u64,
}

pub struct Collector {
    meta: MetaClient,
    store: ChunkStore,
    config: GcConfig,
    /// When each pending queue record was first seen (restarts reset it,
    /// which only delays deletion).
    first_seen: HashMap<(u64, u32), Instant>,
}

impl Collector {
    pub fn new(meta: MetaClient, store: ChunkStore, config: GcConfig) -> Collector {
        Collector {
            meta,
            store,
            config,
            first_seen: HashMap::new(),
        }
    }

    /// Runs passes until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let interval = self.config.interval();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            match self.pass().await {
                Ok(report) if report != GcReport::default() => {
                    tracing::info!(?report, "garbage collected")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "garbage collection pass failed"),
            }
        }
    }

    /// One pass over the queue, then over orphans.
    pub async fn pass(&mut self) -> anyhow::Result<GcReport> {
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
                let referenced = self
                    .meta
                    .chunks_referenced(entry.record.chunks.clone())
                    .await?;
                for (id, referenced) in entry.record.chunks.iter().zip(referenced) {
                    // Invariant: a queued chunk has no references (see module doc).
                    if referenced {
                        tracing::error!(chunk = %id, "queued chunk is referenced; keeping it");
                        continue;
                    }
                    self.store.delete(*id).await?;
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

        let candidates = self.store.list_older_than(self.config.orphan_grace).await?;
        for batch in candidates.chunks(REFERENCE_BATCH) {
            let referenced = self.meta.chunks_referenced(batch.to_vec()).await?;
            for (id, referenced) in batch.iter().zip(referenced) {
                if !referenced {
                    self.store.delete(*id).await?;
                    report.orphans_deleted += 1;
                }
            }
        }
        Ok(report)
    }
}
