//! A process's metadata replica: redb files, the Raft instance, the HTTP
//! server (cluster members), the group-commit batcher, and the
//! `MetaClient`s it hands out; membership administration.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use arbor_net::auth::ClusterSecret;
use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, Config, RaftNetworkFactory, ServerState, SnapshotPolicy};
use redb::{Database, ReadableDatabase};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::client::MetaClient;
use crate::clock::{OsEntropy, SharedEntropy};
use crate::disk::DiskGuard;
use crate::error::{MetaError, Result};
use crate::io::{SimDisk, StorageIo};
use crate::limits::DISK_RESERVE_BYTES;
use crate::namespace;
use crate::raft::batcher::{self, Batcher};
use crate::raft::network::HttpNetworkFactory;
use crate::raft::read_rounds::ReadRounds;
use crate::raft::types::{NodeId, Raft, RaftMetrics, TypeConfig};
use crate::raft::{LogStore, LogWriter, SnapshotStop, StateStore};
use crate::records::object::ObjectVersion;
use crate::replica::Replica;
use crate::rpc::{HttpClient, NodeStatus, SharedFaults};
use crate::server::ServerHandle;

/// The Raft log's redb file inside `data_dir`.
pub const LOG_FILE_NAME: &str = "raft-log.redb";
/// The state machine's redb file inside `data_dir`.
pub const STATE_FILE_NAME: &str = "state.redb";

/// Longest wait at startup for this node to become leader.
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// Longest wait at shutdown for the last users of the redb files (Raft's
/// state-machine worker, a snapshot being built) to let go of them.
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// Per snapshot chunk; openraft's 200 ms default is too short for a chunk
/// of 3 MiB plus the install on the follower's side.
const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 5_000;
/// Raft timing (ms): the heartbeat must cover a full append (up to
/// `max_payload_entries`) plus the follower's fsync; openraft bounds each
/// append by it.
const HEARTBEAT_INTERVAL_MS: u64 = 100;
/// A follower that has heard nothing from the leader for a random time in
/// this range stands for election. A voter also refuses to vote until the
/// maximum has passed since it last heard the leader (openraft's leader
/// lease), so the first candidate is usually refused and the next round
/// wins: a new leader about two timeouts (600 ms) after the old one died
/// or froze, which bounds failover. Two heartbeats may be lost before the
/// minimum.
const ELECTION_TIMEOUT_MIN_MS: u64 = 200;
const ELECTION_TIMEOUT_MAX_MS: u64 = 400;
/// Build a snapshot (and purge the log) every this many entries.
const SNAPSHOT_LOGS_SINCE_LAST: u64 = 5000;
const SNAPSHOT_LOGS_TO_KEEP: u64 = 1000;
/// Above the snapshot interval, so a lagging learner catches up by log.
const REPLICATION_LAG_THRESHOLD: u64 = 5000;

const _: () = assert!(ELECTION_TIMEOUT_MIN_MS >= 2 * HEARTBEAT_INTERVAL_MS);
const _: () = assert!(REPLICATION_LAG_THRESHOLD >= SNAPSHOT_LOGS_SINCE_LAST);

#[derive(Clone, Debug)]
pub struct MetaConfig {
    /// Directory holding this node's redb files (created if missing).
    pub data_dir: PathBuf,
    pub node_id: u64,
    /// fsync every commit (default true). Tests and benchmarks may turn it off.
    pub durable: bool,
    /// Where [`MetaNode::open`] serves Raft and client RPCs over HTTP
    /// (`None`: in-process only, a one-node group). Port 0 picks a free one.
    pub listen_addr: Option<SocketAddr>,
    /// The `host:port` peers and remote clients use to reach this node; by
    /// default the bound listen address. Stored in the group's membership.
    pub advertise_addr: Option<String>,
    /// What a node with an empty data directory does: `true` initializes a
    /// one-member group led by itself (the first node of a cluster); `false`
    /// waits to be added by the leader (`add_learner`, then
    /// `change_membership`). Ignored once the node holds Raft state.
    pub bootstrap: bool,
    /// The cluster's secret: the server refuses requests without a valid
    /// MAC under it, and Raft messages to peers carry one. `None`: no
    /// authentication (in-process groups, tests).
    pub cluster_secret: Option<ClusterSecret>,
}

impl MetaConfig {
    /// The defaults: fsync every commit, in-process only, bootstrap a
    /// one-node group on first start.
    pub fn new(data_dir: impl Into<PathBuf>, node_id: u64) -> MetaConfig {
        MetaConfig {
            data_dir: data_dir.into(),
            node_id,
            durable: true,
            listen_addr: None,
            advertise_addr: None,
            bootstrap: true,
            cluster_secret: None,
        }
    }

    /// Sets [`MetaConfig::cluster_secret`].
    pub fn with_cluster_secret(mut self, secret: Option<ClusterSecret>) -> MetaConfig {
        self.cluster_secret = secret;
        self
    }

    /// Serves RPCs on `listen_addr` (see [`MetaConfig::listen_addr`]).
    pub fn with_listen_addr(mut self, listen_addr: SocketAddr) -> MetaConfig {
        self.listen_addr = Some(listen_addr);
        self
    }

    /// Sets [`MetaConfig::bootstrap`].
    pub fn with_bootstrap(mut self, bootstrap: bool) -> MetaConfig {
        self.bootstrap = bootstrap;
        self
    }

    /// Sets [`MetaConfig::durable`].
    pub fn with_durable(mut self, durable: bool) -> MetaConfig {
        self.durable = durable;
        self
    }
}

/// One metadata replica. Call [`MetaNode::shutdown`] before dropping it:
/// Raft's tasks, the server and the redb files outlive a plain drop.
pub struct MetaNode {
    inner: Arc<Replica>,
    /// Draws the client ids of [`MetaNode::client`]s.
    entropy: SharedEntropy,
    local_addr: Option<SocketAddr>,
    lifecycle: tokio::sync::Mutex<Lifecycle>,
}

/// What shutdown stops, in order.
struct Lifecycle {
    server: Option<ServerHandle>,
    batcher: Batcher,
    log_writer: LogWriter,
    log_db: Weak<Database>,
    state_db: Weak<Database>,
    /// Stops a snapshot build or install still running at shutdown.
    snapshot_stop: SnapshotStop,
    shut_down: bool,
}

/// `election_timeout_ms`: a fixed election timeout instead of a random
/// one in [`ELECTION_TIMEOUT_MIN_MS`, `ELECTION_TIMEOUT_MAX_MS`) (see
/// [`Simulated::election_timeout_ms`]).
fn raft_config(election_timeout_ms: Option<u64>) -> Result<Config> {
    let (election_timeout_min, election_timeout_max) = match election_timeout_ms {
        Some(ms) => (ms, ms.saturating_add(1)),
        None => (ELECTION_TIMEOUT_MIN_MS, ELECTION_TIMEOUT_MAX_MS),
    };
    let config = Config {
        cluster_name: "arbor-meta".into(),
        heartbeat_interval: HEARTBEAT_INTERVAL_MS,
        election_timeout_min,
        election_timeout_max,
        install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
        snapshot_max_chunk_size: crate::limits::SNAPSHOT_CHUNK_BYTES_MAX,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_LOGS_SINCE_LAST),
        max_in_snapshot_log_to_keep: SNAPSHOT_LOGS_TO_KEEP,
        replication_lag_threshold: REPLICATION_LAG_THRESHOLD,
        ..Default::default()
    };
    config
        .validate()
        .map_err(|e| MetaError::Raft(format!("raft config: {e}")))
}

/// What a node takes from outside: how Raft messages travel, where ids
/// come from, the fault switch its HTTP network and server share, where
/// its storage does its I/O, and a fixed election timeout (simulations).
struct Seams<N> {
    network: N,
    entropy: SharedEntropy,
    faults: SharedFaults,
    io: StorageIo,
    election_timeout_ms: Option<u64>,
}

/// What a deterministic simulation swaps in besides the network and the
/// entropy (docs/design.md, "Deterministic simulation").
#[derive(Clone, Debug)]
pub struct Simulated {
    /// Holds the node's redb files; [`SimDisk::crash`] loses what was not
    /// synced. Storage work runs inline ([`StorageIo::Simulated`]).
    pub disk: SimDisk,
    /// The node's election timeout. openraft draws it from the thread's
    /// random generator in `[min, max)`; a simulation fixes it per node
    /// (`max = min + 1`) so that no unseeded draw decides who stands for
    /// election first. At least twice the heartbeat interval (100 ms).
    pub election_timeout_ms: u64,
}

impl Seams<HttpNetworkFactory> {
    /// Raft over HTTP with the OS's generator: every process-level node.
    fn http(secret: Option<ClusterSecret>) -> Self {
        let faults = SharedFaults::default();
        Seams {
            network: HttpNetworkFactory::new(
                HttpClient::default().with_secret(secret),
                faults.clone(),
            ),
            entropy: OsEntropy::shared(),
            faults,
            io: StorageIo::Os,
            election_timeout_ms: None,
        }
    }
}

/// How a node starts its Raft group.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// In-process one-node group: initialize if fresh, always wait to lead.
    Single,
    /// Cluster member: initialize if fresh and `bootstrap`; wait to lead
    /// only when it is the group's only voter.
    Member { bootstrap: bool },
}

impl MetaNode {
    /// Opens (or creates) the node's storage and starts Raft. On a fresh
    /// data directory it initializes a one-node group with itself as voter;
    /// on restart it recovers log, vote and state machine from redb.
    /// In-process only: `listen_addr`, `advertise_addr` and `bootstrap` are
    /// ignored.
    pub async fn open_single(config: MetaConfig) -> Result<Arc<MetaNode>> {
        MetaNode::start(config, None, Start::Single, Seams::http(None)).await
    }

    /// Opens a member of an in-process group whose Raft messages travel
    /// over `network` (a test's router, or a simulated network that drops,
    /// delays and partitions), drawing snapshot and client ids from
    /// `entropy`. Serves no HTTP: `listen_addr` is ignored; members reach
    /// each other through `network`, and `advertise_addr` (default "") is
    /// the address stored in the membership. Bootstraps like
    /// [`MetaNode::open`].
    pub async fn open_with<N>(
        config: MetaConfig,
        network: N,
        entropy: SharedEntropy,
    ) -> Result<Arc<MetaNode>>
    where
        N: RaftNetworkFactory<TypeConfig>,
    {
        let bootstrap = config.bootstrap;
        let seams = Seams {
            network,
            entropy,
            faults: SharedFaults::default(),
            io: StorageIo::Os,
            election_timeout_ms: None,
        };
        MetaNode::start(config, None, Start::Member { bootstrap }, seams).await
    }

    /// [`MetaNode::open_with`] for a deterministic simulation: the redb
    /// files live on `sim.disk` (under `config.data_dir` as a name only),
    /// storage work runs inline on the calling thread, and the election
    /// timeout is `sim.election_timeout_ms`. Run it on a current-thread
    /// tokio runtime with the clock paused; with a seeded `network` and
    /// `entropy`, a run is then a function of its seeds.
    pub async fn open_simulated<N>(
        config: MetaConfig,
        network: N,
        entropy: SharedEntropy,
        sim: Simulated,
    ) -> Result<Arc<MetaNode>>
    where
        N: RaftNetworkFactory<TypeConfig>,
    {
        if sim.election_timeout_ms < 2 * HEARTBEAT_INTERVAL_MS {
            return Err(MetaError::InvalidRequest(format!(
                "election timeout {} ms is below twice the heartbeat ({HEARTBEAT_INTERVAL_MS} ms)",
                sim.election_timeout_ms
            )));
        }
        let bootstrap = config.bootstrap;
        let seams = Seams {
            network,
            entropy,
            faults: SharedFaults::default(),
            io: StorageIo::Simulated(sim.disk),
            election_timeout_ms: Some(sim.election_timeout_ms),
        };
        MetaNode::start(config, None, Start::Member { bootstrap }, seams).await
    }

    /// Opens a cluster member: like [`MetaNode::open_single`], and serves
    /// Raft and client RPCs on `config.listen_addr` when set. On a fresh
    /// data directory it initializes a one-member group if
    /// `config.bootstrap`, else it waits (as a non-member) to be added by
    /// the leader. On restart it rejoins its group; it waits to lead only
    /// when it is the group's sole voter.
    pub async fn open(config: MetaConfig) -> Result<Arc<MetaNode>> {
        let listener = match config.listen_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| MetaError::Storage(format!("cannot listen on {addr}: {e}")))?,
            ),
            None => None,
        };
        let bootstrap = config.bootstrap;
        {
            let seams = Seams::http(config.cluster_secret.clone());
            MetaNode::start(config, listener, Start::Member { bootstrap }, seams).await
        }
    }

    async fn start<N: RaftNetworkFactory<TypeConfig>>(
        config: MetaConfig,
        listener: Option<TcpListener>,
        start: Start,
        seams: Seams<N>,
    ) -> Result<Arc<MetaNode>> {
        let Seams {
            network,
            entropy,
            faults,
            io,
            election_timeout_ms,
        } = seams;
        let id = config.node_id;
        let local_addr = match &listener {
            Some(listener) => Some(
                listener
                    .local_addr()
                    .map_err(|e| MetaError::Storage(format!("listener address: {e}")))?,
            ),
            None => None,
        };
        let addr = match (&config.advertise_addr, local_addr, start) {
            (_, _, Start::Single) => String::new(),
            (Some(addr), _, _) => addr.clone(),
            (None, Some(local), _) => local.to_string(),
            (None, None, _) => String::new(),
        };
        let raft_config = Arc::new(raft_config(election_timeout_ms)?);
        let (log_store, mut log_writer, state_store) = {
            let config = config.clone();
            let entropy = entropy.clone();
            let on = io.clone();
            io.blocking(move || -> Result<(LogStore, LogWriter, StateStore)> {
                std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                    MetaError::Storage(format!("create {}: {e}", config.data_dir.display()))
                })?;
                let (log_store, log_writer) =
                    LogStore::open_on(&config.data_dir.join(LOG_FILE_NAME), config.durable, &on)?;
                let state_store = StateStore::open_on(
                    &config.data_dir.join(STATE_FILE_NAME),
                    config.durable,
                    &on,
                )?
                .with_entropy(entropy);
                Ok((log_store, log_writer, state_store))
            })
            .await??
        };
        let log_db = Arc::downgrade(log_store.database());
        let state_db = state_store.database().clone();
        let snapshot_stop = state_store.snapshot_stop();

        let raft = match Raft::new(id, raft_config, network, log_store, state_store).await {
            Ok(raft) => raft,
            Err(e) => {
                log_writer.stop().await;
                return Err(batcher::fatal_error(e));
            }
        };
        if let Err(e) = start_group(&raft, id, &addr, start).await {
            tracing::error!(error = %e, node_id = id, "meta node failed to start");
            if let Err(e) = raft.shutdown().await {
                tracing::error!(error = %e, "raft shutdown failed");
            }
            log_writer.stop().await;
            return Err(e);
        }

        let disk = DiskGuard::new(&config.data_dir, DISK_RESERVE_BYTES);
        let (proposer, batcher) = Batcher::spawn(raft.clone(), Some(disk));
        let lifecycle = Lifecycle {
            server: None,
            batcher,
            log_writer,
            log_db,
            state_db: Arc::downgrade(&state_db),
            snapshot_stop,
            shut_down: false,
        };
        let inner = Arc::new(Replica {
            id,
            raft,
            proposer,
            addr,
            faults,
            state_db: RwLock::new(Some(state_db)),
            io,
            reads: Mutex::default(),
            read_rounds: ReadRounds::default(),
        });
        let mut lifecycle = lifecycle;
        if let Some(listener) = listener {
            lifecycle.server = Some(ServerHandle::spawn(
                listener,
                inner.clone(),
                config.cluster_secret.clone(),
            ));
        }
        tracing::info!(
            node_id = id,
            data_dir = %config.data_dir.display(),
            durable = config.durable,
            addr = %inner.addr,
            "meta node started"
        );
        Ok(Arc::new(MetaNode {
            inner,
            entropy,
            local_addr,
            lifecycle: tokio::sync::Mutex::new(lifecycle),
        }))
    }

    /// An in-process client of this node. In a cluster it answers
    /// `NotLeader` unless this node leads; use [`MetaClient::remote`] to
    /// follow the leader.
    pub fn client(&self) -> MetaClient {
        MetaClient::local(self.inner.clone(), &*self.entropy)
    }

    /// This node's Raft id.
    pub fn node_id(&self) -> u64 {
        self.inner.id
    }

    /// The address the server is bound to (`None` without a listener).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The address peers and remote clients use ("" for in-process nodes).
    pub fn advertise_addr(&self) -> &str {
        &self.inner.addr
    }

    /// The latest Raft metrics (log index, applied index, leader, ...).
    pub fn raft_metrics(&self) -> RaftMetrics {
        self.inner.raft.metrics().borrow().clone()
    }

    /// The Raft instance, for the transport server and admin calls.
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// Resolves when Raft has stopped on a fatal error (a storage write
    /// that failed, such as a full disk under redb), with the error: the
    /// node then serves nothing until its process is restarted. Pending
    /// forever while Raft runs; resolves with a note if Raft shut down.
    ///
    /// It waits for the server metrics channel to close, which happens
    /// only when Raft's core task ends (after it recorded why in the full
    /// metrics), not on the full metrics themselves: those change with
    /// every request the core handles (their time since the last quorum
    /// acknowledgement is in milliseconds), and waking a task for each
    /// linearizable read cost a context switch per read.
    pub async fn raft_failure(&self) -> String {
        let mut server = self.inner.raft.server_metrics();
        loop {
            if let Err(fatal) = &self.inner.raft.metrics().borrow().running_state {
                return fatal.to_string();
            }
            if server.changed().await.is_err() {
                return match &self.inner.raft.metrics().borrow().running_state {
                    Err(fatal) => fatal.to_string(),
                    Ok(()) => "Raft stopped".to_owned(),
                };
            }
        }
    }

    /// A summary of this node's view of the group.
    pub fn status(&self) -> NodeStatus {
        self.inner.status()
    }

    /// Reads the node's status without holding the node, for a metrics
    /// endpoint. Drop it before [`MetaNode::shutdown`]: it keeps Raft's
    /// handles, and with them the redb files, open.
    pub fn status_reader(&self) -> impl Fn() -> NodeStatus + Send + Sync + 'static {
        let inner = self.inner.clone();
        move || inner.status()
    }

    /// Leader only: adds node `id` (reachable at `addr`) as a learner and
    /// waits, bounded, until it has caught up (see `Replica::add_learner`).
    pub async fn add_learner(&self, id: u64, addr: impl Into<String>) -> Result<()> {
        self.inner.add_learner(id, addr.into()).await
    }

    /// Leader only: makes `voters` the voter set; each must be a member
    /// (learner or voter) already. Voters left out leave the group.
    pub async fn change_membership(&self, voters: BTreeSet<u64>) -> Result<()> {
        self.inner.change_membership(voters).await
    }

    /// Leader only: removes node `id` (voter or learner) from the group.
    pub async fn remove_node(&self, id: u64) -> Result<()> {
        self.inner.remove_node(id).await
    }

    /// Checks this node's state machine's invariants ([`crate::audit`]) on
    /// what it has applied so far: every broken one, described (empty:
    /// none). For tests, simulations and diagnostics.
    pub async fn audit(&self) -> Result<Vec<String>> {
        let db = self.inner.state_db()?;
        self.inner
            .io
            .blocking(move || {
                let txn = db.begin_read()?;
                crate::audit::audit(&txn)
            })
            .await?
    }

    /// Reads `bucket/key` from this node's state machine WITHOUT confirming
    /// leadership: possibly stale. For tests and diagnostics (checking what
    /// a follower has applied); clients use [`MetaClient::get_object`].
    #[doc(hidden)]
    pub async fn read_local_object(&self, bucket: &str, key: &str) -> Result<ObjectVersion> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let db = self.inner.state_db()?;
        self.inner
            .io
            .blocking(move || {
                let txn = db.begin_read()?;
                namespace::get_object(&txn, &bucket, &key)
            })
            .await?
    }

    /// Fault injection for tests: while set, this node sends no Raft RPC
    /// and refuses every inbound one, as if partitioned from its peers.
    #[doc(hidden)]
    pub fn set_isolated(&self, isolated: bool) {
        self.inner.faults.set_isolated(isolated);
    }

    /// Stops the server (no new connections; open ones drain briefly, then
    /// are cut), then Raft, then closes redb; in-flight proposals fail with
    /// ShuttingDown.
    pub async fn shutdown(&self) -> Result<()> {
        let mut lifecycle = self.lifecycle.lock().await;
        if lifecycle.shut_down {
            return Ok(());
        }
        lifecycle.shut_down = true;
        // 1. Stop serving: a stopped node must not answer peers.
        if let Some(server) = lifecycle.server.take() {
            server.stop().await;
        }
        // 2. Refuse new and queued proposals.
        lifecycle.batcher.begin_stop();
        // 3. Stop Raft; writes still in flight then fail fast.
        let raft_result = self.inner.raft.shutdown().await;
        lifecycle.batcher.join().await;
        // 4. Stop the log writer after Raft's last write.
        lifecycle.log_writer.stop().await;
        // 5. Close redb: drop our handle, stop a snapshot build or install
        // (openraft runs a build on a task of its own, which its shutdown
        // does not wait for), and wait for the last users.
        lifecycle.snapshot_stop.stop();
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

/// Initializes a fresh group when `start` says so, and waits until this
/// node leads when it is (or will be) the only voter.
async fn start_group(raft: &Raft, id: NodeId, addr: &str, start: Start) -> Result<()> {
    let initialized = raft.is_initialized().await.map_err(batcher::fatal_error)?;
    let initialize = match start {
        Start::Single => !initialized,
        Start::Member { bootstrap } => !initialized && bootstrap,
    };
    if initialize {
        let members = BTreeMap::from([(id, BasicNode::new(addr))]);
        match raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(RaftError::APIError(e)) => return Err(MetaError::Raft(format!("initialize: {e}"))),
            Err(RaftError::Fatal(e)) => return Err(batcher::fatal_error(e)),
        }
    }
    let sole_voter = {
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        let voters: Vec<NodeId> = metrics.membership_config.voter_ids().collect();
        voters == [id]
    };
    if start == Start::Single || sole_voter {
        raft.wait(Some(LEADER_WAIT))
            .metrics(
                |m| m.current_leader == Some(id) && m.state == ServerState::Leader,
                "this node leads",
            )
            .await
            .map_err(|e| MetaError::Unavailable(format!("no leader after {LEADER_WAIT:?}: {e}")))?;
    }
    Ok(())
}
