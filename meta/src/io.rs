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
//!
//! Plain files (Raft snapshots, see `raft::snapshot_file`) go through the
//! same seam: [`StorageIo::create_file`] and [`StorageIo::open_file`] give a
//! [`StorageFile`], read and written synchronously by blocking storage work
//! and, turned into an [`AsyncStorageFile`], by openraft as snapshot data.
//! On a [`SimDisk`] a directory is only a path prefix, and a rename or a
//! removal takes effect at once and survives a crash (the real node fsyncs
//! the directory after a rename).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

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
    /// Opens (or creates) the redb database at `path`, caching at most
    /// `cache_bytes` of its pages.
    pub(crate) fn create_database(&self, path: &Path, cache_bytes: usize) -> Result<Database> {
        match self {
            StorageIo::Os => Ok(Database::builder()
                .set_cache_size(cache_bytes)
                .create(path)?),
            StorageIo::Simulated(disk) => Ok(Database::builder()
                .set_cache_size(cache_bytes)
                .create_with_backend(disk.open(path))?),
        }
    }

    /// Creates `dir` and its parents if missing (a no-op on a [`SimDisk`]).
    /// Blocking.
    pub(crate) fn create_dir_all(&self, dir: &Path) -> Result<()> {
        match self {
            StorageIo::Os => std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e)),
            StorageIo::Simulated(_) => Ok(()),
        }
    }

    /// Creates the file at `path` (emptied if it exists), for reading and
    /// writing. Blocking.
    pub(crate) fn create_file(&self, path: &Path) -> Result<StorageFile> {
        match self {
            StorageIo::Os => {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(path)
                    .map_err(|e| io_error("create", path, e))?;
                Ok(StorageFile::Os(file))
            }
            StorageIo::Simulated(disk) => {
                let backend = disk.open(path);
                backend
                    .set_len(0)
                    .map_err(|e| io_error("create", path, e))?;
                Ok(StorageFile::Sim(SimCursor {
                    backend,
                    position: 0,
                }))
            }
        }
    }

    /// Opens the existing file at `path` for reading. Blocking.
    pub(crate) fn open_file(&self, path: &Path) -> Result<StorageFile> {
        match self {
            StorageIo::Os => {
                let file = std::fs::File::open(path).map_err(|e| io_error("open", path, e))?;
                Ok(StorageFile::Os(file))
            }
            StorageIo::Simulated(disk) => match disk.files().get(path) {
                Some(file) => Ok(StorageFile::Sim(SimCursor {
                    backend: SimBackend(file.clone()),
                    position: 0,
                })),
                None => Err(io_error(
                    "open",
                    path,
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                )),
            },
        }
    }

    /// Whether a file exists at `path`. Blocking.
    pub(crate) fn exists(&self, path: &Path) -> bool {
        match self {
            StorageIo::Os => path.is_file(),
            StorageIo::Simulated(disk) => disk.files().contains_key(path),
        }
    }

    /// Renames `from` to `to` (replacing it) and makes the rename durable.
    /// Blocking.
    pub(crate) fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        match self {
            StorageIo::Os => {
                std::fs::rename(from, to).map_err(|e| io_error("rename", from, e))?;
                if let Some(dir) = to.parent() {
                    std::fs::File::open(dir)
                        .and_then(|d| d.sync_all())
                        .map_err(|e| io_error("sync", dir, e))?;
                }
                Ok(())
            }
            StorageIo::Simulated(disk) => {
                let mut files = disk.files();
                let file = files.remove(from).ok_or_else(|| {
                    io_error(
                        "rename",
                        from,
                        std::io::Error::from(std::io::ErrorKind::NotFound),
                    )
                })?;
                files.insert(to.to_owned(), file);
                Ok(())
            }
        }
    }

    /// Removes the file at `path`; a missing file is not an error.
    /// Blocking.
    pub(crate) fn remove_file(&self, path: &Path) -> Result<()> {
        match self {
            StorageIo::Os => match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_error("remove", path, e)),
            },
            StorageIo::Simulated(disk) => {
                disk.files().remove(path);
                Ok(())
            }
        }
    }

    /// The names of the files directly inside `dir`, sorted. Blocking.
    pub(crate) fn list_dir(&self, dir: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        match self {
            StorageIo::Os => {
                let entries = std::fs::read_dir(dir).map_err(|e| io_error("list", dir, e))?;
                for entry in entries {
                    let entry = entry.map_err(|e| io_error("list", dir, e))?;
                    if let Ok(name) = entry.file_name().into_string() {
                        names.push(name);
                    }
                }
            }
            StorageIo::Simulated(disk) => {
                for path in disk.files().keys() {
                    if path.parent() == Some(dir)
                        && let Some(name) = path.file_name().and_then(|n| n.to_str())
                    {
                        names.push(name.to_owned());
                    }
                }
            }
        }
        names.sort();
        Ok(names)
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

fn io_error(verb: &str, path: &Path, e: std::io::Error) -> MetaError {
    MetaError::Storage(format!("{verb} {}: {e}", path.display()))
}

/// A plain file opened through [`StorageIo`], for blocking work.
#[derive(Debug)]
pub enum StorageFile {
    Os(std::fs::File),
    Sim(SimCursor),
}

impl StorageFile {
    /// Makes everything written so far durable.
    pub(crate) fn sync_all(&self) -> std::io::Result<()> {
        match self {
            StorageFile::Os(file) => file.sync_all(),
            StorageFile::Sim(cursor) => cursor.backend.sync_data(),
        }
    }

    /// The same file for async readers and writers (openraft's snapshot
    /// data), positioned at its start. `path` is the file's own, kept for
    /// whoever receives it.
    pub(crate) fn into_async(self, path: PathBuf) -> std::io::Result<AsyncStorageFile> {
        let inner = match self {
            StorageFile::Os(mut file) => {
                file.seek(SeekFrom::Start(0))?;
                AsyncInner::Os(tokio::fs::File::from_std(file))
            }
            StorageFile::Sim(mut cursor) => {
                cursor.position = 0;
                AsyncInner::Sim(cursor)
            }
        };
        Ok(AsyncStorageFile { path, inner })
    }
}

impl Read for StorageFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            StorageFile::Os(file) => file.read(buf),
            StorageFile::Sim(cursor) => cursor.read(buf),
        }
    }
}

impl Write for StorageFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            StorageFile::Os(file) => file.write(buf),
            StorageFile::Sim(cursor) => cursor.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            StorageFile::Os(file) => file.flush(),
            StorageFile::Sim(_) => Ok(()),
        }
    }
}

impl Seek for StorageFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        match self {
            StorageFile::Os(file) => file.seek(pos),
            StorageFile::Sim(cursor) => cursor.seek(pos),
        }
    }
}

/// A plain file opened through [`StorageIo`], for async readers and
/// writers: a tokio file, or a [`SimDisk`] file whose every operation is
/// ready at once (so a simulation stays deterministic). Knows its path.
#[derive(Debug)]
pub struct AsyncStorageFile {
    path: PathBuf,
    inner: AsyncInner,
}

#[derive(Debug)]
enum AsyncInner {
    Os(tokio::fs::File),
    Sim(SimCursor),
}

impl AsyncStorageFile {
    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl tokio::io::AsyncRead for AsyncStorageFile {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().inner {
            AsyncInner::Os(file) => Pin::new(file).poll_read(cx, buf),
            AsyncInner::Sim(cursor) => {
                let n = cursor.read(buf.initialize_unfilled())?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl tokio::io::AsyncWrite for AsyncStorageFile {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().inner {
            AsyncInner::Os(file) => Pin::new(file).poll_write(cx, buf),
            AsyncInner::Sim(cursor) => Poll::Ready(cursor.write(buf)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().inner {
            AsyncInner::Os(file) => Pin::new(file).poll_flush(cx),
            AsyncInner::Sim(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().inner {
            AsyncInner::Os(file) => Pin::new(file).poll_shutdown(cx),
            AsyncInner::Sim(_) => Poll::Ready(Ok(())),
        }
    }
}

impl tokio::io::AsyncSeek for AsyncStorageFile {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> std::io::Result<()> {
        match &mut self.get_mut().inner {
            AsyncInner::Os(file) => Pin::new(file).start_seek(position),
            AsyncInner::Sim(cursor) => cursor.seek(position).map(|_| ()),
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        match &mut self.get_mut().inner {
            AsyncInner::Os(file) => Pin::new(file).poll_complete(cx),
            AsyncInner::Sim(cursor) => Poll::Ready(Ok(cursor.position)),
        }
    }
}

/// A position in one [`SimDisk`] file. Reads see every write; writes
/// reach the crash image only at [`StorageFile::sync_all`].
pub struct SimCursor {
    backend: SimBackend,
    position: u64,
}

impl std::fmt::Debug for SimCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCursor")
            .field("file", &self.backend)
            .field("position", &self.position)
            .finish()
    }
}

impl Read for SimCursor {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let len = self.backend.len()?;
        let left = len.saturating_sub(self.position);
        let n = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
        let Some(out) = buf.get_mut(..n) else {
            return Err(out_of_range());
        };
        self.backend.read(self.position, out)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl Write for SimCursor {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.backend.write(self.position, buf)?;
        self.position += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for SimCursor {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let base = match pos {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.backend.len()?.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = base.ok_or_else(out_of_range)?;
        Ok(self.position)
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
        let db = io
            .create_database(path, crate::limits::REDB_STATE_CACHE_BYTES)
            .expect("create");
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
        let db = io
            .create_database(path, crate::limits::REDB_STATE_CACHE_BYTES)
            .expect("reopen");
        assert_eq!(keys(&db), [1], "only the synced commit survived");
        put(&db, 4, redb::Durability::Immediate);
        drop(db);
        let db = io
            .create_database(path, crate::limits::REDB_STATE_CACHE_BYTES)
            .expect("reopen cleanly");
        assert_eq!(keys(&db), [1, 4]);
    }
}
