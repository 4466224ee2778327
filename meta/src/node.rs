//! A process's metadata replica: redb files, the Raft instance, the
//! group-commit batcher, and the `MetaClient`s it hands out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};
use redb::Database;

use crate::client::MetaClient;
use crate::error::{MetaError, Result};
use crate::raft::batcher::{self, Batcher, Proposer};
use crate::raft::types::{NodeId, Raft, RaftMetrics};
use crate::raft::{LogStore, LogWriter, SingleNodeNetworkFactory, StateStore};

/// The Raft log's redb file inside `data_dir`.
pub const LOG_FILE_NAME: &str = "raft-log.redb";
/// The state machine's redb file inside `data_dir`.
pub const STATE_FILE_NAME: &str = "state.redb";

/// Longest wait at startup for this node to become leader.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// Longest wait at shutdown for the last users of the redb files (Raft's
/// state-machine worker, a snapshot being built) to let go of them.
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// Raft timing (ms): the heartbeat must cover a full append (up to
/// `max_payload_entries`) plus the follower's fsync (notes §5).
const HEARTBEAT_INTERVAL_MS: u64 = 100;
const ELECTION_TIMEOUT_MIN_MS: u64 = 400;
const ELECTION_TIMEOUT_MAX_MS: u64 = 800;
/// Build a snapshot (and purge the log) every this many entries.
const SNAPSHOT_LOGS_SINCE_LAST: u64 = 5000;
const SNAPSHOT_LOGS_TO_KEEP: u64 = 1000;
/// Above the snapshot interval, so a lagging learner catches up by log.
const REPLICATION_LAG_THRESHOLD: u64 = 5000;

const _: () = assert!(ELECTION_TIMEOUT_MIN_MS > HEARTBEAT_INTERVAL_MS);
const _: () = assert!(REPLICATION_LAG_THRESHOLD >= SNAPSHOT_LOGS_SINCE_LAST);

#[derive(Clone, Debug)]
pub struct MetaConfig {
    /// Directory holding this node's redb files (created if missing).
    pub data_dir: PathBuf,
    pub node_id: u64,
    /// fsync every commit (default true). Tests and benchmarks may turn it off.
    pub durable: bool,
}

impl MetaConfig {
    /// The defaults: fsync every commit.
    pub fn new(data_dir: impl Into<PathBuf>, node_id: u64) -> MetaConfig {
        MetaConfig {
            data_dir: data_dir.into(),
            node_id,
            durable: true,
        }
    }
}

/// One metadata replica. Call [`MetaNode::shutdown`] before dropping it:
/// Raft's tasks and the redb files outlive a plain drop.
pub struct MetaNode {
    inner: Arc<NodeInner>,
}

/// What clients of this node share.
pub(crate) struct NodeInner {
    pub(crate) id: NodeId,
    pub(crate) raft: Raft,
    pub(crate) proposer: Proposer,
    /// `None` once shut down.
    state_db: RwLock<Option<Arc<Database>>>,
    lifecycle: tokio::sync::Mutex<Lifecycle>,
}

/// What shutdown stops, in order.
struct Lifecycle {
    batcher: Batcher,
    log_writer: LogWriter,
    log_db: Weak<Database>,
    state_db: Weak<Database>,
    shut_down: bool,
}

impl NodeInner {
    /// The state database for a read transaction.
    pub(crate) fn state_db(&self) -> Result<Arc<Database>> {
        let guard = self.state_db.read().unwrap_or_else(PoisonError::into_inner);
        guard.clone().ok_or(MetaError::ShuttingDown)
    }
}

fn raft_config() -> Result<Config> {
    let config = Config {
        cluster_name: "arbor-meta".into(),
        heartbeat_interval: HEARTBEAT_INTERVAL_MS,
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_LOGS_SINCE_LAST),
        max_in_snapshot_log_to_keep: SNAPSHOT_LOGS_TO_KEEP,
        replication_lag_threshold: REPLICATION_LAG_THRESHOLD,
        ..Default::default()
    };
    config
        .validate()
        .map_err(|e| MetaError::Raft(format!("raft config: {e}")))
}

impl MetaNode {
    /// Opens (or creates) the node's storage and starts Raft. On a fresh
    /// data directory it initializes a one-node group with itself as voter;
    /// on restart it recovers log, vote and state machine from redb.
    pub async fn open_single(config: MetaConfig) -> Result<Arc<MetaNode>> {
        let id = config.node_id;
        let raft_config = Arc::new(raft_config()?);
        let (log_store, mut log_writer, state_store) = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || -> Result<(LogStore, LogWriter, StateStore)> {
                std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                    MetaError::Storage(format!("create {}: {e}", config.data_dir.display()))
                })?;
                let (log_store, log_writer) =
                    LogStore::open(&config.data_dir.join(LOG_FILE_NAME), config.durable)?;
                let state_store =
                    StateStore::open(&config.data_dir.join(STATE_FILE_NAME), config.durable)?;
                Ok((log_store, log_writer, state_store))
            })
            .await
            .map_err(|e| MetaError::Storage(format!("open storage: {e}")))??
        };
        let log_db = Arc::downgrade(log_store.database());
        let state_db = state_store.database().clone();

        let raft = match Raft::new(
            id,
            raft_config,
            SingleNodeNetworkFactory,
            log_store,
            state_store,
        )
        .await
        {
            Ok(raft) => raft,
            Err(e) => {
                log_writer.stop().await;
                return Err(batcher::fatal_error(e));
            }
        };
        if let Err(e) = start_single(&raft, id).await {
            tracing::error!(error = %e, node_id = id, "meta node failed to start");
            if let Err(e) = raft.shutdown().await {
                tracing::error!(error = %e, "raft shutdown failed");
            }
            log_writer.stop().await;
            return Err(e);
        }

        let (proposer, batcher) = Batcher::spawn(raft.clone());
        let lifecycle = Lifecycle {
            batcher,
            log_writer,
            log_db,
            state_db: Arc::downgrade(&state_db),
            shut_down: false,
        };
        let inner = NodeInner {
            id,
            raft,
            proposer,
            state_db: RwLock::new(Some(state_db)),
            lifecycle: tokio::sync::Mutex::new(lifecycle),
        };
        tracing::info!(node_id = id, data_dir = %config.data_dir.display(), durable = config.durable, "meta node started");
        Ok(Arc::new(MetaNode {
            inner: Arc::new(inner),
        }))
    }

    pub fn client(&self) -> MetaClient {
        MetaClient::new(self.inner.clone())
    }

    /// This node's Raft id.
    pub fn node_id(&self) -> u64 {
        self.inner.id
    }

    /// The latest Raft metrics (log index, applied index, leader, ...).
    pub fn raft_metrics(&self) -> RaftMetrics {
        self.inner.raft.metrics().borrow().clone()
    }

    /// The Raft instance, for the transport server and admin calls.
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// Stops Raft and closes redb; in-flight proposals fail with ShuttingDown.
    pub async fn shutdown(&self) -> Result<()> {
        let mut lifecycle = self.inner.lifecycle.lock().await;
        if lifecycle.shut_down {
            return Ok(());
        }
        lifecycle.shut_down = true;
        // 1. Refuse new and queued proposals.
        lifecycle.batcher.begin_stop();
        // 2. Stop Raft; writes still in flight then fail fast.
        let raft_result = self.inner.raft.shutdown().await;
        lifecycle.batcher.join().await;
        // 3. Stop the log writer after Raft's last write.
        lifecycle.log_writer.stop().await;
        // 4. Close redb: drop our handle and wait for the last users.
        self.inner
            .state_db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let deadline = Instant::now() + CLOSE_WAIT;
        while lifecycle.log_db.strong_count() > 0 || lifecycle.state_db.strong_count() > 0 {
            if Instant::now() >= deadline {
                tracing::warn!("redb files still open {CLOSE_WAIT:?} after shutdown");
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!(node_id = self.inner.id, "meta node stopped");
        raft_result.map_err(|e| MetaError::Raft(format!("raft shutdown: {e}")))
    }
}

/// Initializes a fresh one-node group (no log, no vote) and waits until
/// this node leads.
async fn start_single(raft: &Raft, id: NodeId) -> Result<()> {
    let initialized = raft.is_initialized().await.map_err(batcher::fatal_error)?;
    if !initialized {
        let members = BTreeMap::from([(id, BasicNode::new(""))]);
        match raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(RaftError::APIError(e)) => return Err(MetaError::Raft(format!("initialize: {e}"))),
            Err(RaftError::Fatal(e)) => return Err(batcher::fatal_error(e)),
        }
    }
    raft.wait(Some(LEADER_WAIT))
        .metrics(
            |m| m.current_leader == Some(id) && m.state == ServerState::Leader,
            "this node leads",
        )
        .await
        .map_err(|e| MetaError::Unavailable(format!("no leader after {LEADER_WAIT:?}: {e}")))?;
    Ok(())
}
