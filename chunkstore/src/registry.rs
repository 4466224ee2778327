//! The chunk-server registry (the metadata group's list of chunk servers)
//! as a gateway sees it: a copy read at most once per
//! [`limits::REGISTRY_REFRESH`] and shared by every request.

use std::sync::Arc;

use arbor_meta::MetaClient;
use arbor_meta::records::{ChunkServerRecord, ServerId, ServerStatus};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{ChunkError, Result};
use crate::limits;

/// The registry as last read.
#[derive(Clone, Debug)]
pub struct Registry {
    pub servers: Arc<Vec<ChunkServerRecord>>,
}

impl Registry {
    pub fn get(&self, id: ServerId) -> Option<&ChunkServerRecord> {
        self.servers.iter().find(|s| s.id == id)
    }

    /// Addresses of `servers` in the order to read from them: ONLINE,
    /// then DRAINING, then OFFLINE (it may be back); unknown ids skipped.
    pub fn read_order(&self, servers: &[ServerId]) -> Vec<String> {
        let rank = |status: ServerStatus| match status {
            ServerStatus::Online => 0,
            ServerStatus::Draining => 1,
            ServerStatus::Offline => 2,
        };
        let mut known: Vec<&ChunkServerRecord> = servers
            .iter()
            .filter_map(|id| self.get(*id))
            .filter(|s| !s.addr.is_empty())
            .collect();
        known.sort_by_key(|s| rank(s.status));
        known.iter().map(|s| s.addr.clone()).collect()
    }

    /// As [`Registry::read_order`], without OFFLINE servers: where a copy
    /// can be taken from now.
    pub fn sources(&self, servers: &[ServerId]) -> Vec<String> {
        let reachable: Vec<ServerId> = servers
            .iter()
            .copied()
            .filter(|id| {
                self.get(*id)
                    .is_some_and(|s| s.status != ServerStatus::Offline)
            })
            .collect();
        self.read_order(&reachable)
    }

    pub(crate) fn id_of(&self, addr: &str) -> Option<ServerId> {
        // Addresses are unique among registered servers (registration
        // retires an older holder of the same address).
        self.servers
            .iter()
            .find(|s| s.addr == addr && !addr.is_empty())
            .map(|s| s.id)
    }
}

/// The registry last read and when; empty until the first read.
#[derive(Default)]
pub(crate) struct CachedRegistry {
    held: Mutex<Option<(Instant, Registry)>>,
}

impl CachedRegistry {
    /// The registry, read again from `meta` if the copy held is older than
    /// [`limits::REGISTRY_REFRESH`]. When the metadata group cannot be
    /// reached, a stale copy is better than none, and is used for another
    /// refresh period before the group is asked again. One caller refreshes
    /// at a time (the lock is held across the call); the others wait for
    /// its answer rather than asking too.
    pub(crate) async fn get(&self, meta: &MetaClient) -> Result<Registry> {
        let mut held = self.held.lock().await;
        if let Some((read_at, registry)) = held.as_ref()
            && read_at.elapsed() < limits::REGISTRY_REFRESH
        {
            return Ok(registry.clone());
        }
        match meta.chunk_servers().await {
            Ok(servers) => {
                let registry = Registry {
                    servers: Arc::new(servers),
                };
                *held = Some((Instant::now(), registry.clone()));
                Ok(registry)
            }
            Err(error) => match held.as_mut() {
                Some((read_at, registry)) => {
                    tracing::warn!(%error, "cannot refresh the chunk server registry; using the last one");
                    *read_at = Instant::now();
                    Ok(registry.clone())
                }
                None => Err(ChunkError::Meta(error)),
            },
        }
    }
}
