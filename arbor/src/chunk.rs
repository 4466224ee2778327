//! `arbor chunk`: a chunk server. The chunk store runs it
//! (`arbor_chunkstore::run_on`: store, server, scrubber and, with
//! metadata nodes, heartbeats, orphan sweeps and scrub repairs); this role
//! turns the command line into its `ChunkServerConfig`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use arbor_chunkstore::config::ChunkServerConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ORPHAN_GRACE_SECS_DEFAULT;

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

pub async fn run(args: ChunkArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
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
    arbor_chunkstore::config::run_on(config, listener, shutdown)
        .await
        .context("chunk server")?;
    Ok(())
}
