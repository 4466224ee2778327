//! `arbor chunk`'s settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use arbor_chunkstore::config::{ChunkServerConfig, ZONE_LEN_MAX, zone_is_valid};
use arbor_chunkstore::limits::{SCRUB_RATE_DEFAULT, SCRUB_RATE_MIN, SERVER_CONNECTIONS_MAX};
use serde::{Deserialize, Serialize};

use super::{
    CHUNK_DATA_DIR_DEFAULT, DRAIN_TIMEOUT_SECS_DEFAULT, HEARTBEAT_SECS_DEFAULT, INTEGER_MAX,
    ORPHAN_GRACE_SECS_DEFAULT, SCRUB_INTERVAL_SECS_DEFAULT, Settings, check_host_port,
    check_meta_addrs, check_path, check_range, check_secs, chunk_server_default, describe, refuse,
    secs,
};

/// A chunk server.
#[derive(Clone, Debug, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkConfig {
    /// Directory holding the chunk files (under `chunks/`) and the server
    /// id.
    #[arg(long, env = "ARBOR_DATA_DIR", default_value = CHUNK_DATA_DIR_DEFAULT)]
    pub data_dir: PathBuf,
    /// Address the chunk API listens on.
    #[arg(long, env = "ARBOR_LISTEN", default_value_t = chunk_server_default().listen)]
    pub listen: SocketAddr,
    /// Metadata nodes (host:port, comma-separated) to register with; none
    /// for a stand-alone server.
    #[arg(long, env = "ARBOR_META", value_delimiter = ',')]
    pub meta: Vec<String>,
    /// File holding the cluster's secret (64 hex digits, made by `arbor
    /// admin cluster-secret FILE`): every request between the cluster's
    /// processes carries a MAC under it. Required.
    #[arg(long, env = "ARBOR_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Failure-domain label (zone or rack) for placement.
    #[arg(long, env = "ARBOR_ZONE", default_value_t = chunk_server_default().zone)]
    pub zone: String,
    /// Bytes this server offers.
    #[arg(long, env = "ARBOR_CAPACITY", default_value_t = chunk_server_default().capacity)]
    pub capacity: u64,
    /// Scrub rate in bytes per second.
    #[arg(long, env = "ARBOR_SCRUB_RATE", default_value_t = SCRUB_RATE_DEFAULT)]
    pub scrub_rate: u64,
    /// host:port to announce to the metadata group (default: the bound
    /// listen address).
    #[arg(long, env = "ARBOR_ADVERTISE")]
    pub advertise: Option<String>,
    /// Seconds between heartbeats to the metadata group; keep it well under
    /// the group's `chunk_heartbeat_timeout_secs`.
    #[arg(long, env = "ARBOR_HEARTBEAT_SECS", default_value_t = HEARTBEAT_SECS_DEFAULT)]
    pub heartbeat_secs: u64,
    /// Seconds between two scrub passes (each reads every chunk once).
    #[arg(long, env = "ARBOR_SCRUB_INTERVAL_SECS", default_value_t = SCRUB_INTERVAL_SECS_DEFAULT)]
    pub scrub_interval_secs: u64,
    /// Seconds after which a chunk file that the metadata group does not
    /// know (an upload that never committed, a surplus replica) is deleted.
    #[arg(long, env = "ARBOR_ORPHAN_GRACE_SECS", default_value_t = ORPHAN_GRACE_SECS_DEFAULT)]
    pub orphan_grace_secs: u64,
    /// Seconds in-flight requests get to finish at shutdown.
    #[arg(long, env = "ARBOR_DRAIN_TIMEOUT_SECS", default_value_t = DRAIN_TIMEOUT_SECS_DEFAULT)]
    pub drain_timeout_secs: u64,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, env = "ARBOR_CONNECTIONS_MAX", default_value_t = SERVER_CONNECTIONS_MAX)]
    pub connections_max: usize,
}

impl Settings for ChunkConfig {
    fn validate(&self) -> anyhow::Result<()> {
        check_path("data_dir", &self.data_dir)?;
        check_meta_addrs(&self.meta)?;
        if !zone_is_valid(&self.zone) {
            return Err(refuse(
                "zone",
                format_args!("{:?}", self.zone),
                format_args!("it must be 1 to {ZONE_LEN_MAX} of A-Z a-z 0-9 - _ . /"),
            ));
        }
        check_range("capacity", self.capacity, 1, INTEGER_MAX)?;
        check_range("scrub_rate", self.scrub_rate, SCRUB_RATE_MIN, INTEGER_MAX)?;
        if let Some(advertise) = &self.advertise {
            check_host_port("advertise", advertise)?;
        }
        check_secs("heartbeat_secs", self.heartbeat_secs, 1)?;
        check_secs("scrub_interval_secs", self.scrub_interval_secs, 1)?;
        check_secs("orphan_grace_secs", self.orphan_grace_secs, 1)?;
        check_secs("drain_timeout_secs", self.drain_timeout_secs, 0)?;
        check_range(
            "connections_max",
            u64::try_from(self.connections_max).unwrap_or(u64::MAX),
            1,
            u64::try_from(SERVER_CONNECTIONS_MAX).unwrap_or(u64::MAX),
        )?;
        // The chunk store's own checks, which the ones above cover.
        self.server_config().validate()?;
        if self.cluster_secret_file.is_none() {
            anyhow::bail!("{} is required", describe("cluster_secret_file"));
        }
        Ok(())
    }
}

impl ChunkConfig {
    /// The chunk server's own configuration, with the cluster's secret.
    pub fn server_config_with_secret(&self) -> anyhow::Result<ChunkServerConfig> {
        let secret = super::cluster_secret(self.cluster_secret_file.as_deref())?;
        Ok(ChunkServerConfig {
            cluster_secret: Some(secret),
            ..self.server_config()
        })
    }

    /// The chunk server's own configuration (without the secret, which
    /// [`ChunkConfig::server_config_with_secret`] reads).
    pub fn server_config(&self) -> ChunkServerConfig {
        ChunkServerConfig {
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            meta: self.meta.clone(),
            advertise: self.advertise.clone(),
            heartbeat_interval: secs(self.heartbeat_secs),
            zone: self.zone.clone(),
            capacity: self.capacity,
            scrub_rate: self.scrub_rate,
            scrub_interval: secs(self.scrub_interval_secs),
            drain_timeout: secs(self.drain_timeout_secs),
            connections_max: self.connections_max,
            orphan_grace: secs(self.orphan_grace_secs),
            cluster_secret: None,
        }
    }
}
