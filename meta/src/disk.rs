//! Free space on a data directory's file system. The proposer checks it
//! before a write enters the Raft log, and the chunk store before it
//! writes a chunk, so that a filling disk refuses writes with a retryable
//! error instead of failing redb mid-commit, which stops Raft
//! (docs/design.md, "Full disks").

use std::path::{Path, PathBuf};

use crate::error::MetaError;

/// Bytes the file system holding `path` has free for this process.
pub fn available_bytes(path: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Refuses writes while fewer than `reserve` bytes are free under `path`.
#[derive(Clone, Debug)]
pub struct DiskGuard {
    path: PathBuf,
    reserve: u64,
}

impl DiskGuard {
    pub fn new(path: impl Into<PathBuf>, reserve: u64) -> DiskGuard {
        DiskGuard {
            path: path.into(),
            reserve,
        }
    }

    /// `InsufficientStorage` while fewer than the reserve are free. A file
    /// system that cannot be asked counts as having room: the write itself
    /// reports what is wrong.
    pub fn check(&self) -> Result<(), MetaError> {
        match available_bytes(&self.path) {
            Ok(free) if free < self.reserve => Err(MetaError::InsufficientStorage(format!(
                "{free} bytes free under {}, fewer than the {} kept in reserve",
                self.path.display(),
                self.reserve
            ))),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::debug!(path = %self.path.display(), error = %e, "free space unknown");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_refuses_below_its_reserve() {
        let dir = std::env::temp_dir();
        let free = available_bytes(&dir).expect("statvfs");
        assert!(free > 0);
        assert!(DiskGuard::new(&dir, 0).check().is_ok());
        assert!(matches!(
            DiskGuard::new(&dir, u64::MAX).check(),
            Err(MetaError::InsufficientStorage(_))
        ));
        assert!(
            DiskGuard::new("/no/such/directory", u64::MAX)
                .check()
                .is_ok(),
            "unknown free space lets the write report"
        );
    }
}
