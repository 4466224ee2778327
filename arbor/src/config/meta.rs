//! `arbor meta`'s settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use arbor_meta::MetaConfig;
use serde::{Deserialize, Serialize};

use super::{
    CHUNK_HEARTBEAT_TIMEOUT_SECS_DEFAULT, GC_GRACE_SECS_DEFAULT, HEAL_INTERVAL_SECS_DEFAULT,
    LIFECYCLE_DAY_SECS_DEFAULT, LIFECYCLE_INTERVAL_SECS_DEFAULT, META_DATA_DIR_DEFAULT,
    META_LISTEN_DEFAULT, OFFLINE_GRACE_SECS_DEFAULT, Settings, UPLOAD_EXPIRY_SECS_DEFAULT,
    check_host_port, check_path, check_secs, describe, secs,
};

/// A metadata node and the background tasks beside it.
#[derive(Clone, Debug, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaNodeConfig {
    /// This node's id, unique in the group (never reuse one). Required.
    #[arg(long, env = "ARBOR_NODE_ID")]
    pub node_id: Option<u64>,
    /// Directory for the node's redb files.
    #[arg(long, env = "ARBOR_DATA_DIR", default_value = META_DATA_DIR_DEFAULT)]
    pub data_dir: PathBuf,
    /// Address serving Raft and client RPCs.
    #[arg(long, env = "ARBOR_LISTEN", default_value = META_LISTEN_DEFAULT)]
    pub listen: SocketAddr,
    /// Address of the Prometheus metrics endpoint (`GET /metrics`, plain
    /// HTTP without authentication); off if unset.
    #[arg(long, env = "ARBOR_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
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
    #[arg(long, env = "ARBOR_CHUNK_HEARTBEAT_TIMEOUT_SECS", default_value_t = CHUNK_HEARTBEAT_TIMEOUT_SECS_DEFAULT)]
    pub chunk_heartbeat_timeout_secs: u64,
    /// Seconds a chunk server may stay OFFLINE before its chunks are
    /// re-replicated elsewhere.
    #[arg(long, env = "ARBOR_OFFLINE_GRACE_SECS", default_value_t = OFFLINE_GRACE_SECS_DEFAULT)]
    pub offline_grace_secs: u64,
    /// Seconds between two re-replication passes.
    #[arg(long, env = "ARBOR_HEAL_INTERVAL_SECS", default_value_t = HEAL_INTERVAL_SECS_DEFAULT)]
    pub heal_interval_secs: u64,
    /// Seconds a chunk that lost its last reference is kept before deletion.
    #[arg(long, env = "ARBOR_GC_GRACE_SECS", default_value_t = GC_GRACE_SECS_DEFAULT)]
    pub gc_grace_secs: u64,
    /// Multipart uploads older than this many seconds are aborted.
    #[arg(long, env = "ARBOR_UPLOAD_EXPIRY_SECS", default_value_t = UPLOAD_EXPIRY_SECS_DEFAULT)]
    pub upload_expiry_secs: u64,
    /// Length in seconds of a lifecycle rule's day (test and ops knob:
    /// rules count their Days in these).
    #[arg(long, env = "ARBOR_LIFECYCLE_DAY_SECS", default_value_t = LIFECYCLE_DAY_SECS_DEFAULT)]
    pub lifecycle_day_secs: u64,
    /// Seconds between two passes applying the buckets' lifecycle rules
    /// (test and ops knob).
    #[arg(long, env = "ARBOR_LIFECYCLE_INTERVAL_SECS", default_value_t = LIFECYCLE_INTERVAL_SECS_DEFAULT)]
    pub lifecycle_interval_secs: u64,
    /// File holding the cluster's secret (64 hex digits, made by `arbor
    /// admin cluster-secret FILE`): every request between the cluster's
    /// processes carries a MAC under it. Required.
    #[arg(long, env = "ARBOR_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
}

impl Settings for MetaNodeConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if self.node_id.is_none() {
            anyhow::bail!("{} is required", describe("node_id"));
        }
        check_path("data_dir", &self.data_dir)?;
        if let Some(advertise) = &self.advertise {
            check_host_port("advertise", advertise)?;
        }
        check_secs(
            "chunk_heartbeat_timeout_secs",
            self.chunk_heartbeat_timeout_secs,
            1,
        )?;
        check_secs("offline_grace_secs", self.offline_grace_secs, 0)?;
        check_secs("heal_interval_secs", self.heal_interval_secs, 1)?;
        check_secs("gc_grace_secs", self.gc_grace_secs, 0)?;
        check_secs("upload_expiry_secs", self.upload_expiry_secs, 1)?;
        check_secs("lifecycle_day_secs", self.lifecycle_day_secs, 1)?;
        check_secs("lifecycle_interval_secs", self.lifecycle_interval_secs, 1)?;
        if self.cluster_secret_file.is_none() {
            anyhow::bail!("{} is required", describe("cluster_secret_file"));
        }
        Ok(())
    }
}

impl MetaNodeConfig {
    /// The metadata node's own configuration (validated settings only).
    pub fn node_config(&self) -> anyhow::Result<MetaConfig> {
        let node_id = self
            .node_id
            .ok_or_else(|| anyhow::anyhow!("{} is required", describe("node_id")))?;
        let secret = super::cluster_secret(self.cluster_secret_file.as_deref())?;
        Ok(MetaConfig {
            listen_addr: Some(self.listen),
            advertise_addr: self.advertise.clone(),
            ..MetaConfig::new(&self.data_dir, node_id)
                .with_bootstrap(self.bootstrap)
                .with_durable(!self.no_fsync)
                .with_cluster_secret(Some(secret))
        })
    }

    pub fn chunk_heartbeat_timeout(&self) -> Duration {
        secs(self.chunk_heartbeat_timeout_secs)
    }

    pub fn offline_grace(&self) -> Duration {
        secs(self.offline_grace_secs)
    }

    pub fn heal_interval(&self) -> Duration {
        secs(self.heal_interval_secs)
    }

    pub fn gc_grace(&self) -> Duration {
        secs(self.gc_grace_secs)
    }

    pub fn upload_expiry(&self) -> Duration {
        secs(self.upload_expiry_secs)
    }

    pub fn lifecycle_day(&self) -> Duration {
        secs(self.lifecycle_day_secs)
    }

    pub fn lifecycle_interval(&self) -> Duration {
        secs(self.lifecycle_interval_secs)
    }
}
