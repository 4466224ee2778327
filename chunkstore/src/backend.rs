//! Where a gateway keeps chunks: `arbor serve`'s local store, or the chunk
//! servers of a cluster. The data path writes, reads and discards chunks
//! through [`ChunkBackend`] without knowing which.

use std::collections::HashMap;
use std::ops::Range;

use arbor_meta::{ChunkId, ChunkPlacement, ChunkRecord, ChunkRef};
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::cluster::{ClusterChunks, ClusterWriter};
use crate::error::{ChunkError, Result};
use crate::store::{ChunkInfo, ChunkStore, ChunkWriter};

#[derive(Clone, Debug)]
pub enum ChunkBackend {
    /// One local store, no replicas (`arbor serve`).
    Local(ChunkStore),
    /// Replicated chunks on the registered chunk servers (`arbor gateway`).
    Cluster(ClusterChunks),
}

/// Where the chunks of one read are, as their records said when looked
/// up (`None`: the chunk has no record); empty for the local store.
#[derive(Clone, Debug, Default)]
pub struct Locations(HashMap<ChunkId, Option<ChunkRecord>>);

impl Locations {
    /// The records a metadata read returned with the version
    /// (`arbor_meta::namespace::LocatedVersion::chunks`).
    pub fn from_records(records: impl IntoIterator<Item = (ChunkId, Option<ChunkRecord>)>) -> Self {
        Locations(records.into_iter().collect())
    }

    /// Whether `id` has been looked up (found or not).
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.0.contains_key(id)
    }
}

/// A chunk sealed by a [`BackendWriter`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredChunk {
    pub info: ChunkInfo,
    /// Where its replicas are, for the commit (None for the local store).
    pub placement: Option<ChunkPlacement>,
}

impl ChunkBackend {
    /// Starts a new chunk under a fresh id.
    pub async fn writer(&self) -> Result<BackendWriter> {
        self.writer_verified(None).await
    }

    /// Starts a new chunk under a fresh id whose whole content the caller
    /// verifies against `verified` (a signed payload's SHA-256, which the
    /// signature layer checks before the body ends), if given: the local
    /// store records it without hashing the bytes again, and a cluster
    /// hands it to the replicas, which record it after checking the bytes
    /// they received against this process's CRC32C, without any SHA-256
    /// pass ([`crate::Fingerprint::Verified`]).
    pub async fn writer_verified(&self, verified: Option<[u8; 32]>) -> Result<BackendWriter> {
        match self {
            ChunkBackend::Local(store) => {
                let id = store.fresh_id();
                let writer = match verified {
                    Some(_) => store.writer_vouched(id).await?,
                    None => store.writer(id).await?,
                };
                Ok(BackendWriter::Local {
                    writer,
                    id,
                    verified,
                })
            }
            ChunkBackend::Cluster(cluster) => {
                Ok(BackendWriter::Cluster(cluster.writer(verified).await?))
            }
        }
    }

    /// Whether reads need [`Locations`]: a GET asks for them with the
    /// version only then.
    pub fn needs_locations(&self) -> bool {
        match self {
            ChunkBackend::Local(_) => false,
            ChunkBackend::Cluster(_) => true,
        }
    }

    /// Looks up where `chunks` are, once per read.
    pub async fn locate(&self, chunks: &[ChunkRef]) -> Result<Locations> {
        self.locate_missing(chunks, Locations::default()).await
    }

    /// Completes `known` with where those of `chunks` it has not looked up
    /// are: no metadata read when it has them all (a GET's locations come
    /// with its version, docs/design.md "Read path").
    pub async fn locate_missing(&self, chunks: &[ChunkRef], known: Locations) -> Result<Locations> {
        match self {
            ChunkBackend::Local(_) => Ok(known),
            ChunkBackend::Cluster(cluster) => {
                let mut ids: Vec<ChunkId> = chunks
                    .iter()
                    .map(|c| c.id)
                    .filter(|id| !known.contains(id))
                    .collect();
                if ids.is_empty() {
                    return Ok(known);
                }
                ids.sort_unstable();
                ids.dedup();
                let mut found = cluster.locate(ids.clone()).await?;
                let mut locations = known;
                for id in ids {
                    let record = found.remove(&id);
                    locations.0.insert(id, record);
                }
                Ok(locations)
            }
        }
    }

    /// Streams bytes `range` of `chunk`, verified.
    pub async fn read(
        &self,
        chunk: &ChunkRef,
        locations: &Locations,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        match self {
            ChunkBackend::Local(store) => store.read(chunk.id, range).await,
            ChunkBackend::Cluster(cluster) => {
                let record = locations
                    .0
                    .get(&chunk.id)
                    .and_then(Option::as_ref)
                    .ok_or(ChunkError::NotFound(chunk.id))?;
                let read = cluster
                    .read(chunk.id, chunk.sha256, &record.servers, range)
                    .await?;
                Ok(read.body)
            }
        }
    }

    /// Best-effort removal of a chunk written for a commit that did not
    /// happen; garbage collection finds what this misses.
    pub async fn discard(&self, id: ChunkId, placement: Option<&ChunkPlacement>) {
        match self {
            ChunkBackend::Local(store) => {
                if let Err(error) = store.delete(id).await {
                    tracing::warn!(chunk = %id, %error, "could not delete unreferenced chunk");
                }
            }
            ChunkBackend::Cluster(cluster) => {
                if let Some(placement) = placement {
                    cluster.delete(id, &placement.servers).await;
                }
            }
        }
    }
}

/// A chunk being written, locally or to its replicas.
#[derive(Debug)]
pub enum BackendWriter {
    Local {
        writer: ChunkWriter,
        id: ChunkId,
        /// The SHA-256 to record (`ChunkBackend::writer_verified`).
        verified: Option<[u8; 32]>,
    },
    Cluster(ClusterWriter),
}

impl BackendWriter {
    pub fn id(&self) -> ChunkId {
        match self {
            BackendWriter::Local { id, .. } => *id,
            BackendWriter::Cluster(writer) => writer.id(),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        match self {
            BackendWriter::Local { writer, .. } => writer.len(),
            BackendWriter::Cluster(writer) => writer.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the chunk's SHA-256 is one the caller verified
    /// ([`ChunkBackend::writer_verified`]): it must then be the whole
    /// verified content, or be aborted.
    pub fn is_verified(&self) -> bool {
        match self {
            BackendWriter::Local { verified, .. } => verified.is_some(),
            BackendWriter::Cluster(writer) => writer.is_verified(),
        }
    }

    pub async fn write(&mut self, data: Bytes) -> Result<()> {
        match self {
            BackendWriter::Local { writer, .. } => writer.write(data).await,
            BackendWriter::Cluster(writer) => writer.write(data).await,
        }
    }

    /// Seals the chunk: durable on every replica when this returns.
    pub async fn finish(self) -> Result<StoredChunk> {
        match self {
            BackendWriter::Local {
                writer, verified, ..
            } => Ok(StoredChunk {
                info: match verified {
                    Some(sha256) => writer.finish_verified(sha256).await?,
                    None => writer.finish(None).await?,
                },
                placement: None,
            }),
            BackendWriter::Cluster(writer) => {
                let (info, placement) = writer.finish().await?;
                Ok(StoredChunk {
                    info,
                    placement: Some(placement),
                })
            }
        }
    }

    /// Abandons the chunk; nothing is stored under its id.
    pub async fn abort(self) {
        let id = self.id();
        match self {
            BackendWriter::Local { writer, .. } => {
                if let Err(error) = writer.abort().await {
                    tracing::warn!(chunk = %id, %error, "could not abort partial chunk");
                }
            }
            BackendWriter::Cluster(writer) => writer.abort().await,
        }
    }
}
