//! The cluster processes of the `arbor` binary: `arbor meta` (one node of
//! the metadata group) and `arbor chunk` (a chunk server), and the
//! membership commands of `arbor admin meta`.
//!
//! Not yet here (see the issues): chunk servers registering with the
//! metadata group, placement, and `arbor gateway` writing through
//! replicated chunk servers; `arbor serve` runs the whole data path in one
//! process meanwhile.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use arbor_chunkstore::config::ChunkServerConfig;
use arbor_meta::registry::{ChunkServerRecord, ServerStatus};
use arbor_meta::{MetaClient, MetaConfig, MetaNode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
}

pub async fn run_meta(args: MetaArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
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
    let detector = tokio::spawn(arbor_meta::registry::offline_detector(
        node.client(),
        Duration::from_secs(args.chunk_heartbeat_timeout_secs.max(1)),
        shutdown.clone(),
    ));
    shutdown.cancelled().await;
    detector.abort();
    node.shutdown()
        .await
        .context("stopping the metadata node")?;
    Ok(())
}

/// `arbor chunk`: a chunk server.
#[derive(Clone, Debug, clap::Args)]
pub struct ChunkArgs {
    #[arg(long, env = "ARBOR_DATA_DIR", default_value = "./arbor-data/chunk")]
    pub data_dir: PathBuf,
    #[arg(long, env = "ARBOR_LISTEN", default_value = "127.0.0.1:9100")]
    pub listen: SocketAddr,
    /// Metadata nodes (host:port, comma-separated) to register with.
    #[arg(long, env = "ARBOR_META", value_delimiter = ',')]
    pub meta: Vec<String>,
    /// Failure-domain label (zone or rack) for placement.
    #[arg(long, env = "ARBOR_ZONE", default_value = "default")]
    pub zone: String,
    /// Bytes this server offers.
    #[arg(long, env = "ARBOR_CAPACITY")]
    pub capacity: Option<u64>,
    /// Scrub rate in bytes per second.
    #[arg(long, env = "ARBOR_SCRUB_RATE")]
    pub scrub_rate: Option<u64>,
    /// host:port to announce to the metadata group (default: the bound
    /// listen address).
    #[arg(long, env = "ARBOR_ADVERTISE")]
    pub advertise: Option<String>,
    /// Seconds between heartbeats to the metadata group.
    #[arg(long, env = "ARBOR_HEARTBEAT_SECS")]
    pub heartbeat_secs: Option<u64>,
}

pub async fn run_chunk(args: ChunkArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let defaults = ChunkServerConfig::default();
    let config = ChunkServerConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        meta: args.meta,
        zone: args.zone,
        capacity: args.capacity.unwrap_or(defaults.capacity),
        scrub_rate: args.scrub_rate.unwrap_or(defaults.scrub_rate),
        advertise: args.advertise,
        heartbeat_interval: args
            .heartbeat_secs
            .map_or(defaults.heartbeat_interval, Duration::from_secs),
        ..defaults
    };
    config.validate().context("chunk server configuration")?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    println!("chunk server listening: {}", listener.local_addr()?);
    arbor_chunkstore::config::run_on(config, listener, shutdown)
        .await
        .context("chunk server")?;
    Ok(())
}

/// `arbor admin meta ...`: membership of the metadata group, spoken to the
/// group's own RPC endpoint.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum MetaAdmin {
    /// The answering node's view of the group (JSON).
    Status,
    /// Add node ID at ADDR as a learner; returns once it has caught up.
    AddLearner { id: u64, addr: String },
    /// Make exactly these node ids the voters (learners are promoted,
    /// voters left out leave the group).
    ChangeMembership {
        #[arg(value_delimiter = ',', required = true)]
        voters: Vec<u64>,
    },
    /// Remove node ID from the group.
    RemoveNode { id: u64 },
    /// Registered chunk servers with status, zone and usage (JSON lines).
    ChunkServers,
    /// Stop placing new chunks on chunk server ID and move its chunks off.
    Drain { id: u64 },
    /// Put a drained chunk server back in service.
    Undrain { id: u64 },
}

fn server_json(server: &ChunkServerRecord) -> serde_json::Value {
    serde_json::json!({
        "id": server.id,
        "addr": server.addr,
        "zone": server.zone,
        "status": server.status.as_str(),
        "capacity": server.capacity,
        "used": server.used,
        "chunks": server.chunks,
        "last_heartbeat_ms": server.last_heartbeat_ms,
    })
}

pub async fn run_meta_admin(meta: Vec<String>, command: MetaAdmin) -> anyhow::Result<()> {
    anyhow::ensure!(!meta.is_empty(), "--meta names no metadata node");
    let client = MetaClient::remote(meta);
    let bound = Duration::from_secs(120);
    let result = tokio::time::timeout(bound, async {
        match command {
            MetaAdmin::Status => {
                let status = client.status().await?;
                println!("{}", serde_json::to_string(&status).unwrap_or_default());
            }
            MetaAdmin::AddLearner { id, addr } => {
                client.add_learner(id, &addr).await?;
                println!("{{\"added_learner\":{id}}}");
            }
            MetaAdmin::ChangeMembership { voters } => {
                let voters: BTreeSet<u64> = voters.into_iter().collect();
                client.change_membership(voters.clone()).await?;
                println!("{{\"voters\":{:?}}}", voters.iter().collect::<Vec<_>>());
            }
            MetaAdmin::RemoveNode { id } => {
                client.remove_node(id).await?;
                println!("{{\"removed\":{id}}}");
            }
            MetaAdmin::ChunkServers => {
                for server in client.chunk_servers().await? {
                    println!("{}", server_json(&server));
                }
            }
            MetaAdmin::Drain { id } => {
                let server = client
                    .set_chunk_server_status(id, ServerStatus::Draining)
                    .await?;
                println!("{}", server_json(&server));
            }
            MetaAdmin::Undrain { id } => {
                let server = client
                    .set_chunk_server_status(id, ServerStatus::Online)
                    .await?;
                println!("{}", server_json(&server));
            }
        }
        Ok::<(), arbor_meta::MetaError>(())
    })
    .await;
    match result {
        Ok(inner) => inner.map_err(|e| anyhow::anyhow!("{e}")),
        Err(_) => anyhow::bail!("no answer within {bound:?}"),
    }
}
