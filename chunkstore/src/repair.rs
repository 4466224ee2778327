//! Repair of one bad replica: delete it, copy the chunk back from a good
//! one. Reads find the bad replicas ([`crate::Replicator::read`]) and
//! queue them here; later, re-replication after a server loss (decided by
//! the metadata service) can run the same [`repair`].
//!
//! The bad copy is deleted before the copy is written because a store only
//! replaces an existing file whose *footer* is damaged: a copy with a bad
//! data block but an intact footer would otherwise be kept as "already
//! stored". The deletion happens only once a source holding the expected
//! content has been found, and only for a replica that itself answered
//! `not-found` or `corrupt` (or failed a probe of the byte where a read of
//! it broke off).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use arbor_meta::ChunkId;

use crate::client::{ChunkClient, ChunkClients};
use crate::error::{ChunkError, Result};
use crate::heartbeat::Announcement;
use crate::limits;
use crate::registry::Registry;
use crate::transfer::copy_chunk;

/// A replica to repair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairJob {
    pub id: ChunkId,
    /// The server whose copy is bad.
    pub target: String,
    /// Servers that may hold a good copy, tried in order.
    pub sources: Vec<String>,
    /// The chunk's SHA-256 if known (from metadata); else the first
    /// source's is trusted, which its own server has verified.
    pub sha256: Option<[u8; 32]>,
    /// Probe `target` at this offset first (where a read of it broke off,
    /// which may have been the network) and repair only if that read says
    /// `corrupt` or `not-found`.
    pub probe: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairOutcome {
    Repaired {
        from: String,
    },
    /// The probe read fine: the earlier failure was not the copy's.
    NotNeeded,
}

/// Counters of a [`Repairer`], for status pages and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairCounts {
    pub submitted: u64,
    /// Not queued: the queue was full or the same repair was pending.
    pub dropped: u64,
    pub repaired: u64,
    pub not_needed: u64,
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    submitted: AtomicU64,
    dropped: AtomicU64,
    repaired: AtomicU64,
    not_needed: AtomicU64,
    failed: AtomicU64,
}

/// A bounded queue of repairs run in the background, a few at a time.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Repairer {
    queue: mpsc::Sender<RepairJob>,
    pending: Arc<Mutex<HashSet<(ChunkId, String)>>>,
    counters: Arc<Counters>,
}

impl Repairer {
    /// Starts the repair worker; it stops (abandoning queued and running
    /// repairs) when `shutdown` is cancelled.
    pub fn start(clients: ChunkClients, shutdown: CancellationToken) -> (Repairer, JoinHandle<()>) {
        let (queue, jobs) = mpsc::channel(limits::REPAIR_QUEUE_MAX);
        let repairer = Repairer {
            queue,
            pending: Arc::default(),
            counters: Arc::default(),
        };
        let worker = tokio::spawn(work(clients, jobs, repairer.clone(), shutdown));
        (repairer, worker)
    }

    /// Queues `job` unless the queue is full or the same repair is already
    /// pending; returns whether it was queued.
    pub fn submit(&self, job: RepairJob) -> bool {
        self.counters.submitted.fetch_add(1, Ordering::Relaxed);
        let key = (job.id, job.target.clone());
        let fresh = self
            .pending
            .lock()
            .map(|mut pending| pending.insert(key.clone()))
            .unwrap_or(false);
        if !fresh {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if let Err(error) = self.queue.try_send(job) {
            tracing::warn!(id = %key.0, server = %key.1, %error, "repair not queued");
            self.finished(&key);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub fn counts(&self) -> RepairCounts {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RepairCounts {
            submitted: get(&self.counters.submitted),
            dropped: get(&self.counters.dropped),
            repaired: get(&self.counters.repaired),
            not_needed: get(&self.counters.not_needed),
            failed: get(&self.counters.failed),
        }
    }

    fn finished(&self, key: &(ChunkId, String)) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(key);
        }
    }
}

async fn work(
    clients: ChunkClients,
    mut jobs: mpsc::Receiver<RepairJob>,
    repairer: Repairer,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits::REPAIRS_CONCURRENT_MAX));
    let mut running = JoinSet::new();
    loop {
        let job = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = running.join_next() => continue,
            job = jobs.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (clients, repairer) = (clients.clone(), repairer.clone());
        running.spawn(async move {
            let outcome = repair(&clients, &job).await;
            let counters = &repairer.counters;
            match outcome {
                Ok(RepairOutcome::Repaired { from }) => {
                    tracing::info!(id = %job.id, server = %job.target, %from, "replica repaired");
                    counters.repaired.fetch_add(1, Ordering::Relaxed);
                }
                Ok(RepairOutcome::NotNeeded) => {
                    counters.not_needed.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    tracing::warn!(id = %job.id, server = %job.target, %error, "replica repair failed");
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            repairer.finished(&(job.id, job.target.clone()));
            drop(permit);
        });
    }
    running.abort_all();
    while running.join_next().await.is_some() {}
}

/// Repairs `job.target`'s copy of `job.id` from the first good source.
pub async fn repair(clients: &ChunkClients, job: &RepairJob) -> Result<RepairOutcome> {
    let target = clients.server(&job.target)?;
    if let Some(offset) = job.probe {
        match probe(&target, job.id, offset).await {
            Ok(()) => return Ok(RepairOutcome::NotNeeded),
            Err(ChunkError::NotFound(_) | ChunkError::Corrupt { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    let mut errors = Vec::new();
    for source in &job.sources {
        let info = match clients.server(source)?.stat(job.id).await {
            Ok(info) if job.sha256.is_none_or(|sha256| sha256 == info.sha256) => info,
            Ok(info) => {
                errors.push(format!(
                    "{source}: holds SHA-256 {}",
                    hex::encode(info.sha256)
                ));
                continue;
            }
            Err(error) => {
                errors.push(format!("{source}: {error}"));
                continue;
            }
        };
        target.delete(job.id).await?;
        match copy_chunk(clients, &info, source, &job.target).await {
            Ok(()) => {
                return Ok(RepairOutcome::Repaired {
                    from: source.clone(),
                });
            }
            Err(error) => errors.push(format!("{source}: {error}")),
        }
    }
    Err(ChunkError::ReplicasUnavailable {
        id: job.id,
        detail: format!(
            "no source could repair {}: {}",
            job.target,
            errors.join("; ")
        ),
    })
}

/// Reads what a broken-off read of `target` at `offset` had in flight:
/// the server reads ahead up to two pieces, all verified (by block CRC)
/// before it answers, so a bad block there gives a clean `corrupt`.
async fn probe(target: &ChunkClient, id: ChunkId, offset: u64) -> Result<()> {
    let size = target.stat(id).await?.size;
    let start = offset.min(size);
    let end = offset.saturating_add(PROBE_LEN).min(size);
    let mut body = target.get(id, start..end).await?.body;
    while let Some(piece) = body.next().await {
        piece?;
    }
    Ok(())
}

/// How much a probe reads: the server's read-ahead (see `server.rs`).
const PROBE_LEN: u64 = 2 * limits::READ_PIECE_SIZE_MAX;

/// A chunk server's answer to its scrubber: each chunk it quarantined is
/// copied back from a good replica, found through the metadata group's
/// record of the chunk (a chunk nobody references, or whose record does not
/// list this server, is garbage and left alone).
pub async fn repair_scrubbed(
    meta: arbor_meta::MetaClient,
    me: Announcement,
    clients: ChunkClients,
    mut found: mpsc::Receiver<ChunkId>,
    shutdown: CancellationToken,
) {
    loop {
        let id = tokio::select! {
            () = shutdown.cancelled() => return,
            id = found.recv() => match id {
                Some(id) => id,
                None => return,
            },
        };
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return,
            outcome = repair_from_replicas(&meta, &clients, &me, id) => outcome,
        };
        match outcome {
            Ok(Some(RepairOutcome::Repaired { from })) => {
                tracing::info!(%id, %from, "scrubbed chunk repaired")
            }
            Ok(_) => tracing::info!(%id, "scrubbed chunk is not this server's to keep"),
            Err(error) => {
                // This server no longer holds the chunk: say so, so the
                // chunk is under-replicated and the healer restores it.
                tracing::warn!(%id, %error, "cannot repair scrubbed chunk; giving up its replica");
                if let Err(error) = meta
                    .update_chunk_replicas(id, Vec::new(), vec![me.id])
                    .await
                {
                    tracing::warn!(%id, %error, "cannot give up the scrubbed replica");
                }
            }
        }
    }
}

/// Repairs this server's copy of `id` from the other replicas its record
/// names; `None` if this server should not hold the chunk.
async fn repair_from_replicas(
    meta: &arbor_meta::MetaClient,
    clients: &ChunkClients,
    me: &Announcement,
    id: ChunkId,
) -> Result<Option<RepairOutcome>> {
    let Some(record) = meta.chunk_records(vec![id]).await?.pop().flatten() else {
        return Ok(None);
    };
    if record.refs == 0 || !record.servers.contains(&me.id) {
        return Ok(None);
    }
    let registry = Registry {
        servers: Arc::new(meta.chunk_servers().await?),
    };
    let others: Vec<_> = record
        .servers
        .iter()
        .copied()
        .filter(|s| *s != me.id)
        .collect();
    let job = RepairJob {
        id,
        target: me.addr.clone(),
        sources: registry.read_order(&others),
        sha256: Some(record.sha256),
        probe: None,
    };
    repair(clients, &job).await.map(Some)
}
