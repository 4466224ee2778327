//! Configuration of `arbor serve`: flags override `ARBOR_*` environment
//! variables, which override the defaults here (the one place they live).

use std::net::SocketAddr;
use std::path::PathBuf;

use arbor_chunkstore::limits::{BLOCK_SIZE, CHUNK_SIZE_DEFAULT, CHUNK_SIZE_MAX};

/// Abandoned multipart uploads expire after 7 days: a client resuming an
/// upload has a week, and abandoned parts do not hold space for ever.
pub const UPLOAD_EXPIRY_SECS_DEFAULT: u64 = 7 * 24 * 60 * 60;

/// Readers of a replaced version get 15 minutes to finish.
pub const GC_GRACE_SECS_DEFAULT: u64 = 15 * 60;
/// An uncommitted chunk older than a day is garbage: no single body upload
/// (at most 5 GiB) takes that long.
pub const ORPHAN_GRACE_SECS_DEFAULT: u64 = 24 * 60 * 60;

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
    /// Multipart uploads not completed or aborted within this many seconds
    /// are aborted and their parts collected (S3 lifecycle's
    /// AbortIncompleteMultipartUpload, applied to every bucket).
    #[arg(long, env = "ARBOR_UPLOAD_EXPIRY_SECS", default_value_t = UPLOAD_EXPIRY_SECS_DEFAULT)]
    pub upload_expiry_secs: u64,
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
}

impl ServeConfig {
    /// Fails fast on settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        check_chunk_size(self.chunk_size)?;
        if self.orphan_grace_secs == 0 {
            return Err("--orphan-grace-secs must be at least 1".to_owned());
        }
        if self.upload_expiry_secs == 0 {
            return Err("--upload-expiry-secs must be at least 1".to_owned());
        }
        if let Some(domain) = &self.domain
            && (domain.is_empty() || domain.contains('/'))
        {
            return Err(format!("--domain {domain:?} is not a host name"));
        }
        Ok(())
    }
}

/// A chunk size must be a positive multiple of the CRC block, within bounds.
pub fn check_chunk_size(chunk_size: u64) -> Result<(), String> {
    if chunk_size == 0 || !chunk_size.is_multiple_of(BLOCK_SIZE) || chunk_size > CHUNK_SIZE_MAX {
        return Err(format!(
            "--chunk-size {chunk_size} must be a positive multiple of {BLOCK_SIZE} and at most {CHUNK_SIZE_MAX}"
        ));
    }
    Ok(())
}
