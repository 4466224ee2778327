//! `arbor gateway`: a stateless S3 front end of a cluster, writing each
//! chunk to several chunk servers.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use arbor_chunkstore::limits::CHUNK_SIZE_DEFAULT;
use arbor_chunkstore::{
    ChunkBackend, ChunkClients, ClientOptions, ClusterChunks, Repairer, Replicator,
};
use arbor_gateway::s3::GatewaySettings;
use arbor_gateway::{auth, http_server, service};
use arbor_meta::MetaClient;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::tasks::{self, Tasks};

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

pub async fn run(args: GatewayArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    crate::config::check_chunk_size(args.chunk_size).map_err(anyhow::Error::msg)?;
    let (credentials, _) = auth::load_existing(&args.data_dir)?;
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
    )?;
    let settings = GatewaySettings {
        chunk_size: args.chunk_size,
        region: args.region.clone(),
    };
    let frontend = service::frontend(
        meta,
        ChunkBackend::Cluster(chunks),
        settings,
        &credentials,
        args.domain.clone(),
    );
    // stdout, so scripts and tests can read it.
    println!("gateway listening: http://{}", listener.local_addr()?);
    http_server::run(listener, frontend, shutdown).await;
    // The repairer stops on the same token (abandoning queued repairs,
    // which reads and the scrubber find again).
    let mut background = Tasks::default();
    background.adopt("repairs", repairs);
    background.drain(tasks::DRAIN_TIMEOUT).await;
    Ok(())
}
