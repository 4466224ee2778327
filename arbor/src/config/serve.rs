//! `arbor serve`'s settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use arbor_gateway::auth::Credentials;
use arbor_gateway::s3::GatewaySettings;
use serde::{Deserialize, Serialize};

use super::{
    CHUNK_SIZE_DEFAULT, DATA_DIR_DEFAULT, GC_GRACE_SECS_DEFAULT, LIFECYCLE_DAY_SECS_DEFAULT,
    LIFECYCLE_INTERVAL_SECS_DEFAULT, ORPHAN_GRACE_SECS_DEFAULT, S3_LISTEN_DEFAULT, Secret,
    Settings, UPLOAD_EXPIRY_SECS_DEFAULT, check_front_end, check_key_pair, check_path, check_secs,
    front_end_settings, key_pair, secs,
};

#[derive(Clone, Debug, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address the S3 endpoint listens on.
    #[arg(long, env = "ARBOR_LISTEN", default_value = S3_LISTEN_DEFAULT)]
    pub listen: SocketAddr,
    /// Address of the Prometheus metrics endpoint (`GET /metrics`, plain
    /// HTTP without authentication); off if unset.
    #[arg(long, env = "ARBOR_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Directory holding metadata, chunks and credentials.
    #[arg(long, env = "ARBOR_DATA_DIR", default_value = DATA_DIR_DEFAULT)]
    pub data_dir: PathBuf,
    /// Accept only requests signed for this region (any region if unset).
    #[arg(long, env = "ARBOR_REGION")]
    pub region: Option<String>,
    /// Domain for virtual-host-style addressing (`bucket.DOMAIN`); path-style
    /// always works.
    #[arg(long, env = "ARBOR_DOMAIN")]
    pub domain: Option<String>,
    /// Chunk size in bytes (a multiple of 64 KiB, at most 256 MiB).
    #[arg(long, env = "ARBOR_CHUNK_SIZE", default_value_t = CHUNK_SIZE_DEFAULT)]
    pub chunk_size: u64,
    /// Multipart uploads not completed or aborted within this many seconds
    /// are aborted and their parts collected (S3 lifecycle's
    /// AbortIncompleteMultipartUpload, applied to every bucket).
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
    /// Seconds a chunk that lost its last reference is kept before deletion,
    /// so readers already streaming it finish.
    #[arg(long, env = "ARBOR_GC_GRACE_SECS", default_value_t = GC_GRACE_SECS_DEFAULT)]
    pub gc_grace_secs: u64,
    /// Seconds after which a chunk file that no version or part references
    /// is an orphan (an upload that never committed) and is deleted. Must
    /// exceed the longest single-body upload.
    #[arg(long, env = "ARBOR_ORPHAN_GRACE_SECS", default_value_t = ORPHAN_GRACE_SECS_DEFAULT)]
    pub orphan_grace_secs: u64,
    /// Skip fsync on metadata commits. Faster, and loses acknowledged writes
    /// on power failure: for tests and benchmarks only.
    #[arg(long, env = "ARBOR_NO_FSYNC", default_value_t = false)]
    pub no_fsync: bool,
    /// Access key clients sign with (file or ARBOR_ACCESS_KEY; with
    /// neither key set, the data directory's `credentials.json`).
    #[arg(skip)]
    pub access_key: Option<Secret>,
    /// Its secret key (file or ARBOR_SECRET_KEY).
    #[arg(skip)]
    pub secret_key: Option<Secret>,
}

impl Settings for ServeConfig {
    fn validate(&self) -> anyhow::Result<()> {
        check_path("data_dir", &self.data_dir)?;
        check_front_end(
            self.chunk_size,
            self.region.as_deref(),
            self.domain.as_deref(),
        )?;
        check_secs("upload_expiry_secs", self.upload_expiry_secs, 1)?;
        check_secs("lifecycle_day_secs", self.lifecycle_day_secs, 1)?;
        check_secs("lifecycle_interval_secs", self.lifecycle_interval_secs, 1)?;
        check_secs("gc_grace_secs", self.gc_grace_secs, 0)?;
        check_secs("orphan_grace_secs", self.orphan_grace_secs, 1)?;
        check_key_pair(self.access_key.as_ref(), self.secret_key.as_ref())
    }
}

impl ServeConfig {
    /// The key pair the settings name (else the stored or a new one).
    pub fn credentials(&self) -> Option<Credentials> {
        key_pair(self.access_key.as_ref(), self.secret_key.as_ref())
    }

    pub fn gateway_settings(&self) -> GatewaySettings {
        front_end_settings(self.chunk_size, self.region.as_ref())
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

    pub fn gc_grace(&self) -> Duration {
        secs(self.gc_grace_secs)
    }

    pub fn orphan_grace(&self) -> Duration {
        secs(self.orphan_grace_secs)
    }
}
