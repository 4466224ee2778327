//! `arbor gateway`'s settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use arbor_chunkstore::limits::REPLICAS_MAX;
use arbor_gateway::auth::Credentials;
use arbor_gateway::s3::GatewaySettings;
use serde::{Deserialize, Serialize};

use super::{
    CHUNK_SIZE_DEFAULT, DATA_DIR_DEFAULT, REPLICATION_FACTOR_DEFAULT, S3_LISTEN_DEFAULT, Secret,
    Settings, check_front_end, check_key_pair, check_meta_addrs, check_path, check_range, describe,
    front_end_settings, key_pair,
};

#[derive(Clone, Debug, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address the S3 endpoint listens on.
    #[arg(long, env = "ARBOR_LISTEN", default_value = S3_LISTEN_DEFAULT)]
    pub listen: SocketAddr,
    /// Address of the Prometheus metrics endpoint (`GET /metrics`, plain
    /// HTTP without authentication); off if unset.
    #[arg(long, env = "ARBOR_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Metadata nodes (host:port, comma-separated). Required.
    #[arg(long, env = "ARBOR_META", value_delimiter = ',')]
    pub meta: Vec<String>,
    /// File holding the cluster's secret (64 hex digits, made by `arbor
    /// admin cluster-secret FILE`): every request between the cluster's
    /// processes carries a MAC under it. Required.
    #[arg(long, env = "ARBOR_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Directory holding `credentials.json`, read when neither
    /// ARBOR_ACCESS_KEY nor ARBOR_SECRET_KEY is set. Every gateway of a
    /// cluster must use the same credentials.
    #[arg(long, env = "ARBOR_DATA_DIR", default_value = DATA_DIR_DEFAULT)]
    pub data_dir: PathBuf,
    /// Replicas written per chunk.
    #[arg(long, env = "ARBOR_REPLICATION_FACTOR", default_value_t = REPLICATION_FACTOR_DEFAULT)]
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
    /// Access key clients sign with (file or ARBOR_ACCESS_KEY).
    #[arg(skip)]
    pub access_key: Option<Secret>,
    /// Its secret key (file or ARBOR_SECRET_KEY).
    #[arg(skip)]
    pub secret_key: Option<Secret>,
}

impl Settings for GatewayConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if self.meta.is_empty() {
            anyhow::bail!("{} names no metadata node", describe("meta"));
        }
        check_meta_addrs(&self.meta)?;
        check_path("data_dir", &self.data_dir)?;
        check_range(
            "replication_factor",
            u64::from(self.replication_factor),
            1,
            u64::try_from(REPLICAS_MAX).unwrap_or(u64::MAX),
        )?;
        check_front_end(
            self.chunk_size,
            self.region.as_deref(),
            self.domain.as_deref(),
        )?;
        check_key_pair(self.access_key.as_ref(), self.secret_key.as_ref())?;
        if self.cluster_secret_file.is_none() {
            anyhow::bail!("{} is required", describe("cluster_secret_file"));
        }
        Ok(())
    }
}

impl GatewayConfig {
    /// The key pair the settings name (else the stored one).
    pub fn credentials(&self) -> Option<Credentials> {
        key_pair(self.access_key.as_ref(), self.secret_key.as_ref())
    }

    pub fn gateway_settings(&self) -> GatewaySettings {
        front_end_settings(self.chunk_size, self.region.as_ref())
    }
}
