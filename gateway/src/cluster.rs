//! The cluster processes of the `arbor` binary: `arbor meta` (one node of
//! the metadata group, plus the background services that act on the
//! group's decisions: offline detection, re-replication, garbage
//! collection, upload expiry), `arbor chunk` (a chunk server) and `arbor
//! gateway` (a stateless S3 front end writing replicated chunks), and the
//! membership commands of `arbor admin meta`.
//!
//! The background services run beside every metadata node; only the
//! leader's get answers (the others' calls find `NotLeader`), so exactly
//! one of each acts at a time, and a new leader's take over.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use arbor_chunkstore::config::ChunkServerConfig;
use arbor_chunkstore::limits::CHUNK_SIZE_DEFAULT;
use arbor_chunkstore::{
    ChunkBackend, ChunkClients, ClientOptions, ClusterChunks, Collector, GcConfig, Healer,
    HealerConfig, Repairer, Replicator,
};
use arbor_meta::clock::{OsEntropy, SystemClock};
use arbor_meta::records::{ChunkServerRecord, ServerStatus};
use arbor_meta::{ChunkId, MetaClient, MetaConfig, MetaNode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{GC_GRACE_SECS_DEFAULT, ORPHAN_GRACE_SECS_DEFAULT, UPLOAD_EXPIRY_SECS_DEFAULT};
use crate::s3::GatewaySettings;

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
    let detector = tokio::spawn(arbor_meta::offline::offline_detector(
        node.client(),
        arbor_meta::clock::SystemClock::shared(),
        Duration::from_secs(args.chunk_heartbeat_timeout_secs.max(1)),
        shutdown.clone(),
    ));
    let clients = ChunkClients::new(ClientOptions::default());
    let healer = Healer::new(
        node.client(),
        Replicator::new(clients.clone(), None),
        HealerConfig {
            interval: Duration::from_secs(args.heal_interval_secs.max(1)),
            offline_grace: Duration::from_secs(args.offline_grace_secs),
        },
        SystemClock::shared(),
    );
    let heal = tokio::spawn(healer.run(shutdown.clone()));
    // The collector only deletes: no replication factor applies.
    let chunks = ClusterChunks::new(
        node.client(),
        Replicator::new(clients, None),
        1,
        SystemClock::shared(),
        OsEntropy::shared(),
    )?;
    let collector = Collector::new(
        node.client(),
        ChunkBackend::Cluster(chunks),
        GcConfig {
            grace: Duration::from_secs(args.gc_grace_secs),
            // Orphans are swept by each chunk server.
            orphan_grace: Duration::from_secs(args.gc_grace_secs),
        },
    );
    let gc = tokio::spawn(collector.run(shutdown.clone()));
    let expiry = tokio::spawn(crate::serve::expire_uploads(
        node.client(),
        Duration::from_secs(args.upload_expiry_secs.max(1)),
        shutdown.clone(),
    ));
    shutdown.cancelled().await;
    for task in [detector, heal, gc, expiry] {
        task.abort();
    }
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
    /// Seconds between two scrub passes (each reads every chunk once).
    #[arg(long, env = "ARBOR_SCRUB_INTERVAL_SECS")]
    pub scrub_interval_secs: Option<u64>,
    /// Seconds after which a chunk file that the metadata group does not
    /// know (an upload that never committed, a surplus replica) is deleted.
    #[arg(long, env = "ARBOR_ORPHAN_GRACE_SECS", default_value_t = ORPHAN_GRACE_SECS_DEFAULT)]
    pub orphan_grace_secs: u64,
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
        orphan_grace: Duration::from_secs(args.orphan_grace_secs.max(1)),
        scrub_interval: args
            .scrub_interval_secs
            .map_or(defaults.scrub_interval, |s| Duration::from_secs(s.max(1))),
        ..defaults
    };
    config.validate().context("chunk server configuration")?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    println!("chunk server listening: {}", listener.local_addr()?);
    arbor_chunkstore::config::run_on(
        config,
        listener,
        SystemClock::shared(),
        OsEntropy::shared(),
        shutdown,
    )
    .await
    .context("chunk server")?;
    Ok(())
}

/// `arbor gateway`: a stateless S3 front end of a cluster.
#[derive(Clone, Debug, clap::Args)]
pub struct GatewayArgs {
    /// Address the S3 endpoint listens on.
    #[arg(long, env = "ARBOR_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Metadata nodes (host:port, comma-separated).
    #[arg(long, env = "ARBOR_META", value_delimiter = ',', required = true)]
    pub meta: Vec<String>,
    /// Directory holding `credentials.json` (ARBOR_ACCESS_KEY and
    /// ARBOR_SECRET_KEY override it). Every gateway of a cluster must use
    /// the same credentials.
    #[arg(long, env = "ARBOR_DATA_DIR", default_value = "./arbor-data")]
    pub data_dir: PathBuf,
    /// Replicas written per chunk.
    #[arg(long, env = "ARBOR_REPLICATION_FACTOR", default_value_t = 3)]
    pub replication_factor: u8,
    /// Chunk size in bytes (a multiple of 64 KiB, at most 256 MiB).
    #[arg(long, env = "ARBOR_CHUNK_SIZE", default_value_t = CHUNK_SIZE_DEFAULT)]
    pub chunk_size: u64,
    /// Accept only requests signed for this region (any region if unset).
    #[arg(long, env = "ARBOR_REGION")]
    pub region: Option<String>,
    /// Domain for virtual-host-style addressing.
    #[arg(long, env = "ARBOR_DOMAIN")]
    pub domain: Option<String>,
}

pub async fn run_gateway(args: GatewayArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    crate::config::check_chunk_size(args.chunk_size).map_err(anyhow::Error::msg)?;
    let (credentials, _) = crate::auth::load_existing(&args.data_dir)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let meta = MetaClient::remote(args.meta.clone());
    let clients = ChunkClients::new(ClientOptions::default());
    let (repairer, repairs) = Repairer::start(clients.clone(), shutdown.clone());
    let chunks = ClusterChunks::new(
        meta.clone(),
        Replicator::new(clients, Some(repairer)),
        args.replication_factor,
        SystemClock::shared(),
        OsEntropy::shared(),
    )?;
    let settings = GatewaySettings {
        chunk_size: args.chunk_size,
        region: args.region.clone(),
    };
    let frontend = crate::serve::frontend(
        meta,
        ChunkBackend::Cluster(chunks),
        settings,
        &credentials,
        args.domain.clone(),
    );
    // stdout, so scripts and tests can read it.
    println!("gateway listening: http://{}", listener.local_addr()?);
    crate::http_server::run(listener, frontend, shutdown).await;
    repairs.abort();
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
    /// Where chunk ID (32 hex digits) is: references, factor, servers (JSON).
    Chunk { id: String },
    /// How many chunks the group knows, and how many lack replicas (JSON).
    Chunks,
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
            MetaAdmin::Chunk { id } => {
                let Some(chunk) = ChunkId::from_hex(&id) else {
                    return Err(arbor_meta::MetaError::Conflict(format!(
                        "{id:?} is not a chunk id (32 hex digits)"
                    )));
                };
                let record = client.chunk_records(vec![chunk]).await?.pop().flatten();
                let json = match record {
                    Some(r) => serde_json::json!({
                        "id": id,
                        "refs": r.refs,
                        "size": r.size,
                        "factor": r.factor,
                        "servers": r.servers,
                    }),
                    None => serde_json::json!({ "id": id, "known": false }),
                };
                println!("{json}");
            }
            MetaAdmin::Chunks => {
                let (records, under) = client.chunk_counts().await?;
                println!(
                    "{}",
                    serde_json::json!({ "chunks": records, "under_replicated": under })
                );
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
