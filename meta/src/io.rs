//! Storage I/O as a seam: where a node's redb files live and where its
//! blocking storage work runs.
//!
//! A process-level node ([`StorageIo::Os`]) keeps its redb files on the
//! operating system's file system, runs long redb work on tokio's blocking
//! pool and writes the Raft log from a dedicated thread. A simulated node
//! ([`StorageIo::Simulated`]) keeps them on a [`SimDisk`] in memory and runs
//! every piece of storage work inline, on the thread of the task asking for
//! it, with the log writer as a task: on a current-thread runtime with a
//! paused clock, the order in which storage work completes is then a
//! function of the order tasks run in, not of the operating system's
//! thread scheduling (docs/design.md, "Deterministic simulation").
//!
//! A [`SimDisk`] models what survives a crash: a file's writes reach its
//! durable image only when redb syncs it (a commit with
//! `Durability::Immediate`); [`SimDisk::crash`] throws away everything
//! written since the last sync of each file. Writes are not torn: a crash
//! loses whole unsynced writes, never part of one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::{Database, StorageBackend};

use crate::error::{MetaError, Result};

/// How a node's storage does its I/O.
#[derive(Clone, Debug, Default)]
pub enum StorageIo {
    /// redb files on the operating system's file system; long storage work
    /// on tokio's blocking pool; the log writer on its own thread.
    #[default]
    Os,
    /// redb files on a [`SimDisk`]; storage work inline; the log writer a
    /// task. Needs a tokio runtime (a current-thread one to be
    /// deterministic).
    Simulated(SimDisk),
}

impl StorageIo {
    /// Opens (or creates) the redb database at `path`.
    pub(crate) fn create_database(&self, path: &Path) -> Result<Database> {
        match self {
            StorageIo::Os => Ok(Database::create(path)?),
            StorageIo::Simulated(disk) => {
                Ok(Database::builder().create_with_backend(disk.open(path))?)
            }
        }
    }

    /// Whether storage work runs inline (no blocking pool, no threads).
    pub(crate) fn inline(&self) -> bool {
        matches!(self, StorageIo::Simulated(_))
    }

    /// Runs blocking storage work: on the blocking pool, or inline.
    pub(crate) async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match self {
            StorageIo::Os => tokio::task::spawn_blocking(f)
                .await
                .map_err(|e| MetaError::Storage(format!("storage task failed: {e}"))),
            StorageIo::Simulated(_) => Ok(f()),
        }
    }
}

/// An in-memory disk for simulated nodes: files by path, each with the
/// bytes the process sees and the bytes a crash would leave. Cheap to
/// clone: clones share the files.
#[derive(Clone, Default)]
pub struct SimDisk {
    files: Arc<Mutex<BTreeMap<PathBuf, Arc<SimFile>>>>,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files: Vec<PathBuf> = self.files().keys().cloned().collect();
        f.debug_struct("SimDisk").field("files", &files).finish()
    }
}

impl SimDisk {
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    fn files(&self) -> MutexGuard<'_, BTreeMap<PathBuf, Arc<SimFile>>> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file at `path`, created empty if there is none.
    fn open(&self, path: &Path) -> SimBackend {
        let file = self.files().entry(path.to_owned()).or_default().clone();
        SimBackend(file)
    }

    /// Power loss: every file goes back to what it held at its last sync.
    /// Handles opened before the crash (the crashed process's) fail every
    /// later write and sync, so nothing they do reaches the disk; the next
    /// [`StorageIo::create_database`] on a path opens the surviving bytes.
    pub fn crash(&self) {
        let mut files = self.files();
        for file in files.values_mut() {
            let survived = {
                let mut state = file.state();
                state.crashed = true;
                state.synced.clone()
            };
            *file = Arc::new(SimFile {
                state: Mutex::new(FileState {
                    data: survived.clone(),
                    synced: survived,
                    dirty: Vec::new(),
                    crashed: false,
                }),
            });
        }
    }
}

#[derive(Default)]
struct SimFile {
    state: Mutex<FileState>,
}

impl SimFile {
    fn state(&self) -> MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct FileState {
    /// What the process reads: every write, synced or not.
    data: Vec<u8>,
    /// What survives a crash: `data` as of the last sync.
    synced: Vec<u8>,
    /// Ranges (offset, length) written since the last sync.
    dirty: Vec<(u64, u64)>,
    /// This handle belongs to a crashed process.
    crashed: bool,
}

impl FileState {
    fn refuse_if_crashed(&self) -> std::io::Result<()> {
        if self.crashed {
            return Err(std::io::Error::other("simulated crash: the disk is gone"));
        }
        Ok(())
    }
}

/// One open [`SimFile`], as redb's storage backend.
struct SimBackend(Arc<SimFile>);

impl std::fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.0.state();
        f.debug_struct("SimBackend")
            .field("len", &state.data.len())
            .field("dirty_ranges", &state.dirty.len())
            .finish()
    }
}

fn out_of_range() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "offset out of range")
}

fn to_usize(n: u64) -> std::io::Result<usize> {
    usize::try_from(n).map_err(|_| out_of_range())
}

impl StorageBackend for SimBackend {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.0.state().data.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let state = self.0.state();
        let start = to_usize(offset)?;
        let end = start.checked_add(out.len()).ok_or_else(out_of_range)?;
        let source = state.data.get(start..end).ok_or_else(out_of_range)?;
        out.copy_from_slice(source);
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let mut state = self.0.state();
        state.refuse_if_crashed()?;
        let old = state.data.len() as u64;
        state.data.resize(to_usize(len)?, 0);
        if len > old {
            // The new bytes are zeros only once synced.
            state.dirty.push((old, len - old));
        }
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        let mut state = self.0.state();
        state.refuse_if_crashed()?;
        let FileState {
            data,
            synced,
            dirty,
            ..
        } = &mut *state;
        synced.resize(data.len(), 0);
        for (offset, len) in dirty.drain(..) {
            let start = to_usize(offset)?.min(data.len());
            let end = to_usize(offset.saturating_add(len))?.min(data.len());
            if let (Some(to), Some(from)) = (synced.get_mut(start..end), data.get(start..end)) {
                to.copy_from_slice(from);
            }
        }
        Ok(())
    }

    fn write(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        let mut state = self.0.state();
        state.refuse_if_crashed()?;
        let start = to_usize(offset)?;
        let end = start.checked_add(bytes.len()).ok_or_else(out_of_range)?;
        if state.data.len() < end {
            state.data.resize(end, 0);
        }
        let target = state.data.get_mut(start..end).ok_or_else(out_of_range)?;
        target.copy_from_slice(bytes);
        state.dirty.push((offset, bytes.len() as u64));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, TableDefinition};

    use super::*;

    const TABLE: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn put(db: &Database, key: u64, durability: redb::Durability) {
        let mut txn = db.begin_write().expect("begin");
        txn.set_durability(durability).expect("durability");
        txn.open_table(TABLE)
            .expect("table")
            .insert(key, key)
            .expect("insert");
        txn.commit().expect("commit");
    }

    fn keys(db: &Database) -> Vec<u64> {
        let txn = db.begin_read().expect("read");
        let table = txn.open_table(TABLE).expect("table");
        table
            .range(0..)
            .expect("range")
            .map(|row| row.expect("row").0.value())
            .collect()
    }

    #[test]
    fn a_crash_keeps_synced_commits_and_loses_the_rest() {
        let disk = SimDisk::new();
        let io = StorageIo::Simulated(disk.clone());
        let path = Path::new("/sim/a.redb");
        let db = io.create_database(path).expect("create");
        put(&db, 1, redb::Durability::Immediate);
        put(&db, 2, redb::Durability::None);
        assert_eq!(keys(&db), [1, 2]);
        disk.crash();
        // The crashed process's handle can no longer write.
        let mut txn = db.begin_write().expect("begin");
        txn.set_durability(redb::Durability::Immediate)
            .expect("durability");
        txn.open_table(TABLE)
            .expect("table")
            .insert(3, 3)
            .expect("insert");
        assert!(txn.commit().is_err(), "a crashed disk takes no commit");
        drop(db);
        let db = io.create_database(path).expect("reopen");
        assert_eq!(keys(&db), [1], "only the synced commit survived");
        put(&db, 4, redb::Durability::Immediate);
        drop(db);
        let db = io.create_database(path).expect("reopen cleanly");
        assert_eq!(keys(&db), [1, 4]);
    }
}
