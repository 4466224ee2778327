//! Re-replication: brings every chunk back to its replication factor.
//!
//! A replica counts while its server is ONLINE, or OFFLINE for less than
//! the grace period (it may be restarting). A server OFFLINE longer, or
//! DRAINING, is *lost*: each of its chunks is copied from a surviving
//! replica to a server placement picks among the ONLINE ones that do not
//! hold it, and once the chunk has its factor without the lost server, the
//! record drops it ([`MetaClient::update_chunk_replicas`], through Raft).
//! The lost server's copy becomes a stray: a DRAINING server is asked to
//! delete it at once; an OFFLINE one deletes it in its own orphan sweep
//! when it comes back (`gc`). Chunks written with fewer replicas than
//! their factor (too few servers at the time) are in the metadata's
//! under-replicated set and are topped up the same way.
//!
//! Work lists are read from the metadata group each pass (the
//! under-replicated set, and the chunks of each lost server), so a healer
//! keeps no state and any number may run: only the one beside the metadata
//! leader gets answers. Each pass handles at most
//! [`limits::HEAL_CHUNKS_PER_PASS`] chunks.

use std::time::Duration;

use arbor_meta::clock::SharedClock;
use arbor_meta::records::{ChunkServerRecord, ServerId, ServerStatus};
use arbor_meta::{ChunkId, ChunkRecord, MetaClient, MetaError, placement};
use tokio_util::sync::CancellationToken;

use crate::limits;
use crate::registry::Registry;
use crate::replication::Replicator;
use crate::store::ChunkInfo;

/// Chunk ids read per round trip.
const PAGE: usize = 256;

#[derive(Clone, Debug)]
pub struct HealerConfig {
    /// How often a pass runs.
    pub interval: Duration,
    /// How long an OFFLINE server's replicas still count.
    pub offline_grace: Duration,
}

impl Default for HealerConfig {
    fn default() -> Self {
        HealerConfig {
            interval: limits::HEAL_INTERVAL_DEFAULT,
            offline_grace: limits::OFFLINE_GRACE_DEFAULT,
        }
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealReport {
    /// Chunks looked at.
    pub examined: u64,
    /// Replicas copied and recorded.
    pub copied: u64,
    /// Replicas on lost servers dropped from records.
    pub dropped: u64,
    /// Chunks that could not be brought to their factor this pass.
    pub short: u64,
}

pub struct Healer {
    meta: MetaClient,
    replicator: Replicator,
    config: HealerConfig,
    /// Now, to tell how long an OFFLINE server has been silent (against
    /// the heartbeat times the servers stamped).
    clock: SharedClock,
    /// Where each work list's scan stopped (the under-replicated set under
    /// `None`, each lost server under its id): a pass resumes there, so
    /// chunks that cannot be healed now do not starve the others.
    cursors: std::sync::Mutex<std::collections::HashMap<Option<ServerId>, ChunkId>>,
}

impl Healer {
    pub fn new(
        meta: MetaClient,
        replicator: Replicator,
        config: HealerConfig,
        clock: SharedClock,
    ) -> Healer {
        Healer {
            meta,
            replicator,
            config,
            clock,
            cursors: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Runs passes until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.config.interval) => {}
            }
            let pass = tokio::select! {
                () = shutdown.cancelled() => return,
                pass = self.pass() => pass,
            };
            match pass {
                Ok(report) if report.copied + report.dropped + report.short > 0 => {
                    tracing::info!(?report, "re-replication pass")
                }
                Ok(_) | Err(MetaError::NotLeader { .. }) => {}
                Err(e) => tracing::warn!(error = %e, "re-replication pass failed"),
            }
        }
    }

    /// One pass over the under-replicated chunks and those of lost servers.
    pub async fn pass(&self) -> Result<HealReport, MetaError> {
        let registry = Registry {
            servers: std::sync::Arc::new(self.meta.chunk_servers().await?),
        };
        let now = self.clock.now_ms();
        let grace = i64::try_from(self.config.offline_grace.as_millis()).unwrap_or(i64::MAX);
        let lost: Vec<ServerId> = registry
            .servers
            .iter()
            .filter(|s| is_lost(s, now, grace))
            .map(|s| s.id)
            .collect();
        let mut report = HealReport::default();
        self.scan(None, &registry, &lost, &mut report).await?;
        for server in &lost {
            self.scan(Some(*server), &registry, &lost, &mut report)
                .await?;
        }
        Ok(report)
    }

    /// Heals up to [`limits::HEAL_CHUNKS_PER_PASS`] chunks of one work list
    /// (`None`: the under-replicated set; a server: its chunks), from where
    /// the last pass stopped, wrapping around at the end.
    async fn scan(
        &self,
        list: Option<ServerId>,
        registry: &Registry,
        lost: &[ServerId],
        report: &mut HealReport,
    ) -> Result<(), MetaError> {
        let mut after = self.cursor(list);
        let mut examined = 0;
        while examined < limits::HEAL_CHUNKS_PER_PASS {
            let ids = match list {
                None => self.meta.under_replicated(after, PAGE).await?,
                Some(server) => self.meta.server_chunks(server, after, PAGE).await?,
            };
            examined += ids.len();
            after = ids.last().copied();
            self.heal_batch(&ids, registry, lost, report).await?;
            if ids.len() < PAGE {
                after = None;
                break;
            }
        }
        self.set_cursor(list, after);
        Ok(())
    }

    fn cursor(&self, list: Option<ServerId>) -> Option<ChunkId> {
        let cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
        cursors.get(&list).copied()
    }

    fn set_cursor(&self, list: Option<ServerId>, after: Option<ChunkId>) {
        let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
        match after {
            Some(id) => cursors.insert(list, id),
            None => cursors.remove(&list),
        };
    }

    async fn heal_batch(
        &self,
        ids: &[ChunkId],
        registry: &Registry,
        lost: &[ServerId],
        report: &mut HealReport,
    ) -> Result<(), MetaError> {
        let records = self.meta.chunk_records(ids.to_vec()).await?;
        for (id, record) in ids.iter().zip(records) {
            report.examined += 1;
            let Some(record) = record else { continue };
            if record.refs == 0 || record.factor == 0 {
                continue;
            }
            self.heal(*id, &record, registry, lost, report).await?;
        }
        Ok(())
    }

    /// Copies chunk `id` until it has its factor, then drops lost replicas.
    async fn heal(
        &self,
        id: ChunkId,
        record: &ChunkRecord,
        registry: &Registry,
        lost: &[ServerId],
        report: &mut HealReport,
    ) -> Result<(), MetaError> {
        let gone = |s: &ServerId| lost.contains(s) || registry.get(*s).is_none();
        let counted = record.servers.iter().filter(|s| !gone(s)).count();
        // Lost replicas are dropped only when ONLINE ones (not servers that
        // may come back) make up the factor.
        let online = record
            .servers
            .iter()
            .filter(|s| {
                registry
                    .get(**s)
                    .is_some_and(|r| r.status == ServerStatus::Online)
            })
            .count();
        let dropped: Vec<ServerId> = record.servers.iter().copied().filter(gone).collect();
        let factor = usize::from(record.factor);
        let need = factor.saturating_sub(counted);
        let sources = registry.sources(&record.servers);
        let info = ChunkInfo {
            id,
            size: record.size,
            sha256: record.sha256,
        };
        let mut added = Vec::new();
        if need > 0 {
            let free: Vec<ChunkServerRecord> = registry
                .servers
                .iter()
                .filter(|s| !record.servers.contains(&s.id))
                .cloned()
                .collect();
            for target in placement::place(&free, &id, free.len()) {
                if added.len() == need {
                    break;
                }
                let Some(to) = registry.get(target) else {
                    continue;
                };
                for from in &sources {
                    match self.replicator.copy(&info, from, &to.addr).await {
                        Ok(()) => {
                            added.push(target);
                            break;
                        }
                        Err(error) => {
                            tracing::warn!(chunk = %id, %from, to = %to.addr, %error, "re-replication copy failed")
                        }
                    }
                }
            }
        }
        if counted + added.len() < factor {
            report.short += 1;
        }
        let remove = if online + added.len() >= factor {
            dropped
        } else {
            Vec::new()
        };
        if added.is_empty() && remove.is_empty() {
            return Ok(());
        }
        match self
            .meta
            .update_chunk_replicas(id, added.clone(), remove.clone())
            .await
        {
            Ok(_) => {
                report.copied += added.len() as u64;
                report.dropped += remove.len() as u64;
                tracing::info!(chunk = %id, ?added, ?remove, "chunk re-replicated");
                // A DRAINING server is reachable: take its copy away now
                // (never at an address a remaining replica answers at).
                let kept: Vec<&str> = record
                    .servers
                    .iter()
                    .chain(&added)
                    .filter(|s| !remove.contains(s))
                    .filter_map(|s| registry.get(*s).map(|r| r.addr.as_str()))
                    .collect();
                for server in &remove {
                    if let Some(drained) = registry.get(*server)
                        && drained.status == ServerStatus::Draining
                        && !drained.addr.is_empty()
                        && !kept.contains(&drained.addr.as_str())
                    {
                        self.delete_copy(id, &drained.addr).await;
                    }
                }
                Ok(())
            }
            Err(MetaError::Conflict(reason)) => {
                // The chunk lost its last reference meanwhile: the copies
                // just made are garbage.
                tracing::debug!(chunk = %id, %reason, "chunk collected while healing");
                for server in &added {
                    if let Some(record) = registry.get(*server) {
                        self.delete_copy(id, &record.addr).await;
                    }
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn delete_copy(&self, id: ChunkId, addr: &str) {
        let result = match self.replicator.clients().server(addr) {
            Ok(client) => client.delete(id).await,
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            tracing::warn!(chunk = %id, server = %addr, %error, "could not delete surplus replica");
        }
    }
}

/// DRAINING, or OFFLINE for longer than the grace.
fn is_lost(server: &ChunkServerRecord, now_ms: i64, grace_ms: i64) -> bool {
    match server.status {
        ServerStatus::Draining => true,
        ServerStatus::Offline => now_ms.saturating_sub(server.last_heartbeat_ms) > grace_ms,
        ServerStatus::Online => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: ServerStatus, last_heartbeat_ms: i64) -> ChunkServerRecord {
        ChunkServerRecord {
            id: 1,
            addr: "a:1".to_owned(),
            zone: "z".to_owned(),
            capacity: 1,
            used: 0,
            chunks: 0,
            status,
            last_heartbeat_ms,
        }
    }

    #[test]
    fn lost_means_draining_or_offline_past_the_grace() {
        assert!(!is_lost(&server(ServerStatus::Online, 0), 1_000_000, 10));
        assert!(is_lost(
            &server(ServerStatus::Draining, 1_000_000),
            1_000_000,
            10
        ));
        assert!(!is_lost(
            &server(ServerStatus::Offline, 999_995),
            1_000_000,
            10
        ));
        assert!(is_lost(
            &server(ServerStatus::Offline, 999_980),
            1_000_000,
            10
        ));
    }
}
