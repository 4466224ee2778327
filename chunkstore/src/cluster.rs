//! Chunks on the chunk servers of a cluster, as a gateway sees them.
//!
//! Servers are looked up in the [`Registry`], read at most once per
//! [`limits::REGISTRY_REFRESH`] and shared by every request. A new chunk gets a fresh id and is placed by [`placement::place`]: the
//! first `factor` servers of the ranking are the targets, the rest stand by
//! as replacements ([`Replicator::write`]). Where it lands is returned as a
//! [`ChunkPlacement`] for the commit to record; reads ask the metadata
//! group where a chunk's replicas are and fail over between them, ONLINE
//! servers first.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use arbor_meta::clock::{SharedClock, SharedEntropy};
use arbor_meta::records::ServerId;
use arbor_meta::{ChunkId, ChunkPlacement, ChunkRecord, MetaClient, placement};
use bytes::Bytes;
use futures::stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::{ChunkClients, ChunkRead, ClientOptions};
use crate::error::{ChunkError, Result};
use crate::limits;
use crate::registry::{CachedRegistry, Registry};
use crate::replication::{Fingerprint, ReplicatedWrite, Replicator};
use crate::store::{ChunkInfo, fresh_chunk_id};

/// A gateway's access to the cluster's chunks. Cheap to clone.
#[derive(Clone)]
pub struct ClusterChunks {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClusterChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterChunks")
            .field("factor", &self.inner.factor)
            .finish_non_exhaustive()
    }
}

struct Inner {
    meta: MetaClient,
    replicator: Replicator,
    factor: u8,
    registry: CachedRegistry,
    /// Stamp and draw the ids of new chunks.
    clock: SharedClock,
    entropy: SharedEntropy,
}

impl ClusterChunks {
    /// `factor`: replicas per chunk (1..=`limits::REPLICAS_MAX`); new
    /// chunk ids are created by `clock` with random bits from `entropy`.
    pub fn new(
        meta: MetaClient,
        replicator: Replicator,
        factor: u8,
        clock: SharedClock,
        entropy: SharedEntropy,
    ) -> Result<ClusterChunks> {
        if factor == 0 || usize::from(factor) > limits::REPLICAS_MAX {
            return Err(ChunkError::InvalidConfig(format!(
                "replication factor {factor} (1..={})",
                limits::REPLICAS_MAX
            )));
        }
        Ok(ClusterChunks {
            inner: Arc::new(Inner {
                meta,
                replicator,
                factor,
                registry: CachedRegistry::default(),
                clock,
                entropy,
            }),
        })
    }

    /// A cluster client with default timeouts and no repairer.
    pub fn with_defaults(
        meta: MetaClient,
        factor: u8,
        clock: SharedClock,
        entropy: SharedEntropy,
    ) -> Result<ClusterChunks> {
        let clients = ChunkClients::new(ClientOptions::default());
        ClusterChunks::new(meta, Replicator::new(clients, None), factor, clock, entropy)
    }

    pub fn meta(&self) -> &MetaClient {
        &self.inner.meta
    }

    pub fn replicator(&self) -> &Replicator {
        &self.inner.replicator
    }

    /// The registry, read again if the copy held is older than
    /// [`limits::REGISTRY_REFRESH`]. When the metadata group cannot be
    /// reached, the last copy is used for another refresh period. One
    /// caller refreshes at a time; the others wait for its answer.
    pub async fn registry(&self) -> Result<Registry> {
        self.inner.registry.get(&self.inner.meta).await
    }

    /// Starts writing a new chunk to the servers placement picks.
    /// `verified`: the SHA-256 of the chunk's whole content, which the
    /// caller checks as the bytes pass and whose mismatch it reports by
    /// ending the body with an error (see
    /// [`crate::ChunkBackend::writer_verified`]): the gateway then does
    /// not hash the bytes itself (`Fingerprint::Verified`).
    pub async fn writer(&self, verified: Option<[u8; 32]>) -> Result<ClusterWriter> {
        let registry = self.registry().await?;
        let id = fresh_chunk_id(&*self.inner.clock, &*self.inner.entropy);
        let ranking = placement::place(&registry.servers, &id, registry.servers.len());
        let factor = usize::from(self.inner.factor);
        // Fewer servers than the factor, or a target lost during the write
        // with no server left to replace it: write to those there are (the
        // healer tops the chunk up later), but never to fewer than a
        // majority of the factor.
        let quorum = factor / 2 + 1;
        if ranking.len() < quorum {
            return Err(ChunkError::ReplicasUnavailable {
                id,
                detail: format!(
                    "{} ONLINE chunk servers, {quorum} needed for {factor} replicas",
                    ranking.len()
                ),
            });
        }
        let addr = |sid: &ServerId| registry.get(*sid).map(|s| s.addr.clone());
        let targets: Vec<String> = ranking.iter().take(factor).filter_map(addr).collect();
        let candidates: Vec<String> = ranking
            .iter()
            .skip(factor)
            .take(limits::REPLICAS_MAX.saturating_sub(targets.len()))
            .filter_map(addr)
            .collect();
        let (sender, receiver) = mpsc::channel::<Result<Bytes>>(limits::REPLICA_QUEUE_PIECES);
        let body = stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|piece| (piece, receiver))
        });
        let replicator = self.inner.replicator.clone();
        let fingerprint = verified.map_or(Fingerprint::Unknown, Fingerprint::Verified);
        let task = tokio::spawn(async move {
            replicator
                .write(id, &targets, &candidates, quorum, fingerprint, body)
                .await
        });
        Ok(ClusterWriter {
            id,
            factor: self.inner.factor,
            registry,
            sender: Some(sender),
            task: Some(task),
            len: 0,
            verified: verified.is_some(),
        })
    }

    /// Where the replicas of `ids` are (`None`: the chunk has no record).
    pub async fn locate(&self, ids: Vec<ChunkId>) -> Result<HashMap<ChunkId, ChunkRecord>> {
        let mut located = HashMap::with_capacity(ids.len());
        for batch in ids.chunks(arbor_meta::limits::CHUNK_RECORDS_READ_MAX) {
            let records = self.inner.meta.chunk_records(batch.to_vec()).await?;
            for (id, record) in batch.iter().zip(records) {
                if let Some(record) = record {
                    located.insert(*id, record);
                }
            }
        }
        Ok(located)
    }

    /// Streams bytes `range` of chunk `id` from its replicas `servers`,
    /// failing over between them.
    pub async fn read(
        &self,
        id: ChunkId,
        sha256: [u8; 32],
        servers: &[ServerId],
        range: Range<u64>,
    ) -> Result<ChunkRead> {
        let registry = self.registry().await?;
        let order = registry.read_order(servers);
        self.inner
            .replicator
            .read(id, range, &order, Some(sha256))
            .await
    }

    /// Best-effort removal of chunk `id` from `servers` (an upload that
    /// will not commit); garbage collection finds whatever this misses.
    pub async fn delete(&self, id: ChunkId, servers: &[ServerId]) {
        let registry = match self.registry().await {
            Ok(registry) => registry,
            Err(error) => {
                tracing::warn!(chunk = %id, %error, "cannot delete chunk: no registry");
                return;
            }
        };
        for server in servers {
            let Some(record) = registry.get(*server) else {
                continue;
            };
            let result = match self.inner.replicator.clients().server(&record.addr) {
                Ok(client) => client.delete(id).await,
                Err(error) => Err(error),
            };
            if let Err(error) = result {
                tracing::warn!(chunk = %id, server = %record.addr, %error, "could not delete chunk replica");
            }
        }
    }
}

/// One chunk being streamed to its replicas.
pub struct ClusterWriter {
    id: ChunkId,
    factor: u8,
    registry: Registry,
    sender: Option<mpsc::Sender<Result<Bytes>>>,
    task: Option<JoinHandle<Result<ReplicatedWrite>>>,
    len: u64,
    /// Started with a verified SHA-256 ([`ClusterChunks::writer`]).
    verified: bool,
}

impl std::fmt::Debug for ClusterWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterWriter")
            .field("id", &self.id)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl ClusterWriter {
    pub fn id(&self) -> ChunkId {
        self.id
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the chunk was started with a verified SHA-256: it must then
    /// be the whole verified content, or be aborted.
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    pub async fn write(&mut self, data: Bytes) -> Result<()> {
        let size = data.len() as u64;
        let sent = match &self.sender {
            Some(sender) => sender.send(Ok(data)).await.is_ok(),
            None => false,
        };
        if !sent {
            // The write ended early (every replica failed): say why.
            self.sender = None;
            return Err(match self.join().await {
                Err(error) => error,
                Ok(_) => ChunkError::ReplicasUnavailable {
                    id: self.id,
                    detail: "the replicated write ended before its body".to_owned(),
                },
            });
        }
        self.len += size;
        Ok(())
    }

    /// Ends the body and waits for every replica; returns the chunk and
    /// where it is.
    pub async fn finish(mut self) -> Result<(ChunkInfo, ChunkPlacement)> {
        self.sender = None;
        let written = self.join().await?;
        let servers = written
            .replicas
            .iter()
            .map(|addr| {
                self.registry.id_of(addr).ok_or_else(|| {
                    ChunkError::InvalidConfig(format!("replica {addr} is not in the registry"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((
            written.info,
            ChunkPlacement {
                id: self.id,
                factor: self.factor,
                servers,
            },
        ))
    }

    /// Abandons the chunk: every replica's put is aborted, nothing is
    /// stored under its id (what slipped through is an orphan for GC).
    pub async fn abort(mut self) {
        // The error (if it fits the queue) makes the replicator abort the
        // puts; aborting the task drops them in any case, at once.
        if let Some(sender) = self.sender.take() {
            let _ = sender.try_send(Err(ChunkError::ReplicasUnavailable {
                id: self.id,
                detail: "write abandoned".to_owned(),
            }));
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    async fn join(&mut self) -> Result<ReplicatedWrite> {
        let Some(task) = self.task.take() else {
            return Err(ChunkError::ReplicasUnavailable {
                id: self.id,
                detail: "write already finished".to_owned(),
            });
        };
        task.await
            .map_err(|error| ChunkError::ReplicasUnavailable {
                id: self.id,
                detail: format!("write task failed: {error}"),
            })?
    }
}

impl Drop for ClusterWriter {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
