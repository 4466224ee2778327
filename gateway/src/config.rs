//! Configuration of `arbor serve`: flags override `ARBOR_*` environment
//! variables, which override the defaults here (the one place they live).

use std::net::SocketAddr;
use std::path::PathBuf;

use arbor_chunkstore::limits::{BLOCK_SIZE, CHUNK_SIZE_DEFAULT, CHUNK_SIZE_MAX};

#[derive(Clone, Debug, clap::Args)]
pub struct ServeConfig {
    /// Address the S3 endpoint listens on.
    #[arg(long, env = "ARBOR_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Directory holding metadata, chunks and credentials.
    #[arg(long, env = "ARBOR_DATA_DIR", default_value = "./arbor-data")]
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
    /// Skip fsync on metadata commits. Faster, and loses acknowledged writes
    /// on power failure: for tests and benchmarks only.
    #[arg(long, env = "ARBOR_NO_FSYNC", default_value_t = false)]
    pub no_fsync: bool,
}

impl ServeConfig {
    /// Fails fast on settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.chunk_size == 0
            || self.chunk_size % BLOCK_SIZE != 0
            || self.chunk_size > CHUNK_SIZE_MAX
        {
            return Err(format!(
                "--chunk-size {} must be a positive multiple of {BLOCK_SIZE} and at most {CHUNK_SIZE_MAX}",
                self.chunk_size
            ));
        }
        if let Some(domain) = &self.domain
            && (domain.is_empty() || domain.contains('/'))
        {
            return Err(format!("--domain {domain:?} is not a host name"));
        }
        Ok(())
    }
}
