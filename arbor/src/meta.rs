//! `arbor meta`: one node of the metadata group, plus the background
//! tasks that act on the group's decisions (offline marking,
//! re-replication, garbage collection, upload expiry; see `tasks`).
//!
//! The background tasks run beside every metadata node; only the
//! leader's get answers (the others' calls find `NotLeader`), so exactly
//! one of each acts at a time, and a new leader's take over.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use arbor_chunkstore::{
    ChunkBackend, ChunkClients, ClientOptions, ClusterChunks, Collector, GcConfig, Healer,
    HealerConfig, Replicator,
};
use arbor_meta::{MetaConfig, MetaNode};
use tokio_util::sync::CancellationToken;

use crate::config::{GC_GRACE_SECS_DEFAULT, UPLOAD_EXPIRY_SECS_DEFAULT};
use crate::tasks::{self, Tasks};

/// `arbor meta`: one node of the metadata group.
#[derive(Clone, Debug, clap::Args)]
pub struct MetaArgs {
    /// This node's id, unique in the group (never reuse one).
    #[arg(long, env = "ARBOR_NODE_ID")]
    pub node_id: u64,
    /// Directory for the node's redb files.
    #[arg(long, env = "ARBOR_DATA_DIR", default_value = "./arbor-data/meta")]
    pub data_dir: PathBuf,
    /// Address serving Raft and client RPCs.
    #[arg(long, env = "ARBOR_LISTEN", default_value = "127.0.0.1:9200")]
    pub listen: SocketAddr,
    /// host:port that peers and clients use to reach this node (default:
    /// the bound listen address).
    #[arg(long, env = "ARBOR_ADVERTISE")]
    pub advertise: Option<String>,
    /// On an empty data directory, start a new one-node group led by this
    /// node (the first node of a cluster). Without it, a new node waits to
    /// be added with `arbor admin meta add-learner`.
    #[arg(long, env = "ARBOR_BOOTSTRAP", default_value_t = false)]
    pub bootstrap: bool,
    /// Skip fsync on commits (tests and benchmarks only).
    #[arg(long, env = "ARBOR_NO_FSYNC", default_value_t = false)]
    pub no_fsync: bool,
    /// A chunk server silent for this many seconds is marked OFFLINE.
    #[arg(long, env = "ARBOR_CHUNK_HEARTBEAT_TIMEOUT_SECS", default_value_t = 10)]
    pub chunk_heartbeat_timeout_secs: u64,
    /// Seconds a chunk server may stay OFFLINE before its chunks are
    /// re-replicated elsewhere.
    #[arg(long, env = "ARBOR_OFFLINE_GRACE_SECS", default_value_t = 300)]
    pub offline_grace_secs: u64,
    /// Seconds between two re-replication passes.
    #[arg(long, env = "ARBOR_HEAL_INTERVAL_SECS", default_value_t = 10)]
    pub heal_interval_secs: u64,
    /// Seconds a chunk that lost its last reference is kept before deletion.
    #[arg(long, env = "ARBOR_GC_GRACE_SECS", default_value_t = GC_GRACE_SECS_DEFAULT)]
    pub gc_grace_secs: u64,
    /// Multipart uploads older than this many seconds are aborted.
    #[arg(long, env = "ARBOR_UPLOAD_EXPIRY_SECS", default_value_t = UPLOAD_EXPIRY_SECS_DEFAULT)]
    pub upload_expiry_secs: u64,
}

pub async fn run(args: MetaArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = MetaConfig {
        listen_addr: Some(args.listen),
        advertise_addr: args.advertise.clone(),
        ..MetaConfig::new(&args.data_dir, args.node_id)
            .with_bootstrap(args.bootstrap)
            .with_durable(!args.no_fsync)
    };
    let node = MetaNode::open(config)
        .await
        .context("starting the metadata node")?;
    let bound = node.local_addr().map(|a| a.to_string()).unwrap_or_default();
    // stdout, so scripts and tests can read it.
    println!("meta node:   {}", node.node_id());
    println!("listening:   {bound}");
    println!("advertised:  {}", node.advertise_addr());
    let mut background = Tasks::default();
    background.spawn(
        "offline marking",
        tasks::mark_offline(
            node.client(),
            Duration::from_secs(args.chunk_heartbeat_timeout_secs.max(1)),
            shutdown.clone(),
        ),
    );
    let clients = ChunkClients::new(ClientOptions::default());
    let heal_config = HealerConfig {
        interval: Duration::from_secs(args.heal_interval_secs.max(1)),
        offline_grace: Duration::from_secs(args.offline_grace_secs),
    };
    let heal_interval = heal_config.interval;
    let healer = Healer::new(
        node.client(),
        Replicator::new(clients.clone(), None),
        heal_config,
    );
    background.spawn(
        "re-replication",
        tasks::heal(healer, heal_interval, shutdown.clone()),
    );
    // The collector only deletes: no replication factor applies.
    let chunks = ClusterChunks::new(node.client(), Replicator::new(clients, None), 1)?;
    let gc_config = GcConfig {
        grace: Duration::from_secs(args.gc_grace_secs),
        // Orphans are swept by each chunk server.
        orphan_grace: Duration::from_secs(args.gc_grace_secs),
    };
    let gc_interval = tasks::collect_interval(gc_config.grace);
    background.spawn(
        "garbage collection",
        tasks::collect(
            Collector::new(node.client(), ChunkBackend::Cluster(chunks), gc_config),
            gc_interval,
            shutdown.clone(),
        ),
    );
    background.spawn(
        "upload expiry",
        tasks::expire_uploads(
            node.client(),
            Duration::from_secs(args.upload_expiry_secs.max(1)),
            shutdown.clone(),
        ),
    );
    shutdown.cancelled().await;
    // Each task finishes the batch in hand (its Raft commands need the
    // node), then Raft stops.
    background.drain(tasks::DRAIN_TIMEOUT).await;
    node.shutdown()
        .await
        .context("stopping the metadata node")?;
    Ok(())
}
