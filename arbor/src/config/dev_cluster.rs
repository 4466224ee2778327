//! `arbor dev-cluster`'s settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    DEV_CLUSTER_BASE_PORT_DEFAULT, DEV_CLUSTER_CHUNK_DEFAULT, DEV_CLUSTER_CHUNK_MAX,
    DEV_CLUSTER_GATEWAYS_DEFAULT, DEV_CLUSTER_GATEWAYS_MAX, DEV_CLUSTER_META_DEFAULT,
    DEV_CLUSTER_META_MAX, Settings, check_path, check_range, describe, refuse,
};

/// A whole cluster on loopback, one process per node, for development and
/// fault-injection tests.
#[derive(Clone, Debug, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevClusterConfig {
    /// Directory holding every node's data, the credentials, the ports and
    /// the logs. Required. Started again on the same directory, the same
    /// cluster comes back.
    #[arg(long, env = "ARBOR_DIR")]
    pub dir: Option<PathBuf>,
    /// First port: meta nodes on BASE.., chunk servers next, gateways
    /// next. 0 picks free ports on the first start and reuses them after.
    #[arg(long, env = "ARBOR_BASE_PORT", default_value_t = DEV_CLUSTER_BASE_PORT_DEFAULT)]
    pub base_port: u16,
    /// Metadata nodes (the Raft group's voters).
    #[arg(long, env = "ARBOR_META", default_value_t = DEV_CLUSTER_META_DEFAULT)]
    pub meta: u64,
    /// Chunk servers, each in its own zone.
    #[arg(long, env = "ARBOR_CHUNK", default_value_t = DEV_CLUSTER_CHUNK_DEFAULT)]
    pub chunk: u64,
    /// S3 gateways.
    #[arg(long, env = "ARBOR_GATEWAYS", default_value_t = DEV_CLUSTER_GATEWAYS_DEFAULT)]
    pub gateways: u64,
    /// Skip fsync on the meta nodes' commits (tests only).
    #[arg(long, env = "ARBOR_NO_FSYNC", default_value_t = false)]
    pub no_fsync: bool,
    /// The cluster's secret, given to every process (default:
    /// `cluster.secret` in --dir). Created if missing.
    #[arg(long, env = "ARBOR_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
}

impl Settings for DevClusterConfig {
    fn validate(&self) -> anyhow::Result<()> {
        let Some(dir) = &self.dir else {
            anyhow::bail!("{} is required", describe("dir"));
        };
        check_path("dir", dir)?;
        check_range("meta", self.meta, 1, DEV_CLUSTER_META_MAX)?;
        check_range("chunk", self.chunk, 1, DEV_CLUSTER_CHUNK_MAX)?;
        check_range("gateways", self.gateways, 1, DEV_CLUSTER_GATEWAYS_MAX)?;
        if self.base_port != 0 {
            let last = u64::from(self.base_port) + self.processes() - 1;
            if last > u64::from(u16::MAX) {
                return Err(refuse(
                    "base_port",
                    self.base_port,
                    format_args!(
                        "{} processes need ports up to {last}, past {}",
                        self.processes(),
                        u16::MAX
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl DevClusterConfig {
    /// How many processes the cluster runs.
    pub fn processes(&self) -> u64 {
        self.meta + self.chunk + self.gateways
    }
}
