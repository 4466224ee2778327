//! Chunk files on local disk.
//!
//! Layout under the root:
//! - `<root>/<first 2 hex of id>/<hex id>`: sealed chunks, one file each, in
//!   the format described in `format.rs`;
//! - `<root>/tmp/<hex id>.<random>.tmp`: writes in progress, removed by
//!   [`ChunkStore::open`]. Only one `ChunkStore::open` per root at a time.
//! - `<root>/quarantine/<hex id>.<random>`: chunks found corrupt by the
//!   scrubber, moved aside so they are never served; kept for inspection.
//!
//! A chunk becomes visible only by renaming its complete, fsynced temporary
//! file into place, so a crash never leaves a partial chunk under its id.
//! All file I/O runs on tokio's blocking pool; a writer hashes on the
//! calling task (see [`ChunkWriter`]).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use arbor_meta::ChunkId;
use arbor_meta::clock::{Clock, Entropy, SharedClock, SharedEntropy};

use crate::direct::{self, DataFile, ReadBuffers};
use crate::error::{ChunkError, Result};
use crate::format::{self, BLOCK_LEN, ChunkHasher, Footer};
use crate::limits;

const TMP_DIR: &str = "tmp";
const TMP_SUFFIX: &str = ".tmp";
const QUARANTINE_DIR: &str = "quarantine";

/// What a stored chunk is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    pub id: ChunkId,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// A new chunk id: created now by `clock`, its random tail drawn from
/// `entropy` (the layout is [`ChunkId`]'s: 48 bits of milliseconds, then
/// 80 random bits).
pub(crate) fn fresh_chunk_id(clock: &dyn Clock, entropy: &dyn Entropy) -> ChunkId {
    ChunkId::new(clock.now_ms(), entropy)
}

/// A directory of chunk files. Cheap to clone.
#[derive(Clone)]
pub struct ChunkStore {
    root: PathBuf,
    /// Now, for the age of chunk files (orphan sweeps) and new ids. File
    /// modification times come from the operating system, so outside tests
    /// this is the system clock.
    clock: SharedClock,
    /// The random bits of new ids, and of the names of temporary and
    /// quarantined files (unique per write and per quarantine).
    entropy: SharedEntropy,
    /// Buffers for reading chunk data, reused across reads.
    read_buffers: Arc<ReadBuffers>,
}

impl fmt::Debug for ChunkStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl ChunkStore {
    /// Opens (creating if needed) a store rooted at `root`; removes temporary
    /// files left by writes that never finished. `clock` and `entropy` are
    /// the process's ([`arbor_meta::clock::SystemClock`] and
    /// [`arbor_meta::clock::OsEntropy`] outside tests).
    pub async fn open(
        root: &Path,
        clock: SharedClock,
        entropy: SharedEntropy,
    ) -> Result<ChunkStore> {
        let root = root.to_path_buf();
        let tmp = root.join(TMP_DIR);
        blocking(move || -> Result<()> {
            fs::create_dir_all(&tmp)?;
            let mut removed = 0u64;
            for entry in fs::read_dir(&tmp)? {
                let entry = entry?;
                if !entry.file_type()?.is_dir() {
                    remove_if_exists(&entry.path())?;
                    removed += 1;
                }
            }
            if removed > 0 {
                tracing::info!(removed, dir = %tmp.display(), "removed unfinished chunk writes");
            }
            Ok(())
        })
        .await??;
        Ok(ChunkStore {
            root,
            clock,
            entropy,
            read_buffers: Arc::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The clock file ages are judged by.
    pub(crate) fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// A new chunk id from the store's clock and entropy.
    pub(crate) fn fresh_id(&self) -> ChunkId {
        fresh_chunk_id(&*self.clock, &*self.entropy)
    }

    /// Starts writing chunk `id`, hashing its SHA-256 as it comes. Nothing
    /// is visible under `id` until [`ChunkWriter::finish`] returns.
    pub async fn writer(&self, id: ChunkId) -> Result<ChunkWriter> {
        self.writer_with(id, ChunkHasher::new()).await
    }

    /// Starts writing chunk `id` whose writer vouches for its SHA-256:
    /// only the CRCs are computed here, and
    /// [`ChunkWriter::finish_vouched`] checks the data's CRC32C against
    /// the writer's before recording the writer's SHA-256.
    pub async fn writer_vouched(&self, id: ChunkId) -> Result<ChunkWriter> {
        self.writer_with(id, ChunkHasher::without_sha256()).await
    }

    async fn writer_with(&self, id: ChunkId, hasher: ChunkHasher) -> Result<ChunkWriter> {
        let root = self.root.clone();
        let tmp_name = format!("{}.{}{TMP_SUFFIX}", id.to_hex(), self.fresh_id().to_hex());
        let tmp_path = self.root.join(TMP_DIR).join(tmp_name);
        let path = tmp_path.clone();
        // One blocking hop: the free-space check, the file, its direct I/O
        // mode and staging buffer.
        let file = blocking(move || -> Result<DataFile> {
            if let Ok(free) = arbor_meta::disk::available_bytes(&root)
                && free < limits::DISK_RESERVE_BYTES
            {
                return Err(ChunkError::Io(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    format!(
                        "{free} bytes free on the chunk store's disk, fewer than the {} kept in reserve",
                        limits::DISK_RESERVE_BYTES
                    ),
                )));
            }
            let file = OpenOptions::new().write(true).create_new(true).open(&path)?;
            Ok(DataFile::new(file))
        })
        .await??;
        Ok(ChunkWriter {
            id,
            tmp_path,
            final_path: self.chunk_path(id),
            hasher: Box::new(hasher),
            batch: Vec::new(),
            batch_len: 0,
            file: FileState::Idle(Box::new(file)),
            len: 0,
            closed: false,
        })
    }

    /// Streams bytes `range` of chunk `id`, verifying the CRC32C of every
    /// block it touches before yielding it (a mismatch ends the stream with
    /// `Corrupt` before the block's bytes). The SHA-256 is not recomputed:
    /// the block CRCs are the read-time check (docs/design.md, "Data
    /// path"); [`ChunkStore::read_checked`] does both.
    pub async fn read(
        &self,
        id: ChunkId,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        self.read_with(id, Some(range)).await
    }

    /// Streams the whole chunk `id`, verifying every block's CRC32C and, at
    /// the end, the SHA-256 of the data against the footer's (`Corrupt` on
    /// a mismatch): the scrubber's full check.
    pub async fn read_checked(&self, id: ChunkId) -> Result<BoxStream<'static, Result<Bytes>>> {
        self.read_with(id, None).await
    }

    /// Reads `range`, or with `None` the whole chunk checked against its
    /// SHA-256 too.
    async fn read_with(
        &self,
        id: ChunkId,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        let path = self.chunk_path(id);
        let (file, footer, direct) = blocking(move || -> Result<(File, Footer, bool)> {
            let mut file = open_chunk(&path, id)?;
            let footer = Footer::read_from(&mut file, id)?;
            let direct = direct::try_direct(&file);
            Ok((file, footer, direct))
        })
        .await??;
        let size = footer.data_len;
        let check_sha256 = range.is_none();
        let range = range.unwrap_or(0..size);
        if range.start > range.end || range.end > size {
            return Err(ChunkError::InvalidRange {
                id,
                start: range.start,
                end: range.end,
                size,
            });
        }
        let reader = RangeReader {
            id,
            file: Arc::new(file),
            direct: Arc::new(AtomicBool::new(direct)),
            block_crcs: footer.block_crcs.into(),
            size,
            pos: range.start,
            end: range.end,
            sha: check_sha256.then(|| (Sha256::new(), footer.sha256)),
            ahead: None,
            done: false,
            buffers: Arc::clone(&self.read_buffers),
        };
        let pieces = stream::unfold(reader, |mut reader| async move {
            let item = reader.next_piece().await?;
            Some((item, reader))
        });
        Ok(pieces.boxed())
    }

    pub async fn stat(&self, id: ChunkId) -> Result<ChunkInfo> {
        let path = self.chunk_path(id);
        let footer = blocking(move || -> Result<Footer> {
            let mut file = open_chunk(&path, id)?;
            Footer::read_from(&mut file, id)
        })
        .await??;
        Ok(ChunkInfo {
            id,
            size: footer.data_len,
            sha256: footer.sha256,
        })
    }

    /// Removes chunk `id`; Ok if it was already gone.
    pub async fn delete(&self, id: ChunkId) -> Result<()> {
        let path = self.chunk_path(id);
        blocking(move || remove_if_exists(&path)).await??;
        Ok(())
    }

    /// Removes chunk `id` only if its file is still at least `age` old (an
    /// orphan sweep's decision, re-checked just before acting: a put of the
    /// same id meanwhile makes a fresh file). Returns whether it went.
    pub async fn delete_if_older_than(&self, id: ChunkId, age: Duration) -> Result<bool> {
        let path = self.chunk_path(id);
        let now_ms = self.clock.now_ms();
        blocking(move || -> Result<bool> {
            let metadata = match fs::metadata(&path) {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(error) => return Err(error.into()),
            };
            if !is_older_than(&metadata, now_ms, age)? {
                return Ok(false);
            }
            remove_if_exists(&path)?;
            Ok(true)
        })
        .await?
    }

    /// Every chunk id stored (the inventory), in increasing order.
    pub async fn list(&self) -> Result<Vec<ChunkId>> {
        let root = self.root.clone();
        blocking(move || -> Result<Vec<ChunkId>> {
            let mut ids = Vec::new();
            walk_chunks(&root, |id, _| {
                ids.push(id);
                Ok(())
            })?;
            ids.sort_unstable();
            Ok(ids)
        })
        .await?
    }

    /// Ids of the chunks sealed at least `age` ago (by file modification
    /// time), in increasing order: candidates for orphan collection.
    pub async fn list_older_than(&self, age: Duration) -> Result<Vec<ChunkId>> {
        let root = self.root.clone();
        let now_ms = self.clock.now_ms();
        blocking(move || -> Result<Vec<ChunkId>> {
            let mut ids = Vec::new();
            walk_chunks(&root, |id, entry| {
                if is_older_than(&entry.metadata()?, now_ms, age)? {
                    ids.push(id);
                }
                Ok(())
            })?;
            ids.sort_unstable();
            Ok(ids)
        })
        .await?
    }

    /// Number of chunks stored and their total size on disk (footers
    /// included), from file metadata only.
    pub async fn usage(&self) -> Result<(u64, u64)> {
        let root = self.root.clone();
        blocking(move || -> Result<(u64, u64)> {
            let (mut chunks, mut bytes) = (0u64, 0u64);
            walk_chunks(&root, |_, entry| {
                // Counted once its size is known: a chunk collected under
                // the walk is skipped, in both totals.
                let len = entry.metadata()?.len();
                chunks += 1;
                bytes = bytes.saturating_add(len);
                Ok(())
            })?;
            Ok((chunks, bytes))
        })
        .await?
    }

    /// Moves chunk `id` aside into the quarantine directory, so it is no
    /// longer served, listed or counted; a later write may store it again.
    /// Returns false if it was not stored.
    pub async fn quarantine(&self, id: ChunkId) -> Result<bool> {
        let path = self.chunk_path(id);
        let dir = self.root.join(QUARANTINE_DIR);
        let aside = dir.join(format!("{}.{}", id.to_hex(), self.fresh_id().to_hex()));
        blocking(move || -> Result<bool> {
            create_dir_durably(&dir)?;
            match fs::rename(&path, &aside) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(error) => return Err(error.into()),
            }
            sync_dir(&dir)?;
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
            }
            Ok(true)
        })
        .await?
    }

    /// Ids of the quarantined chunk files (one per file, so an id
    /// quarantined twice appears twice), in increasing order.
    pub async fn quarantined(&self) -> Result<Vec<ChunkId>> {
        let dir = self.root.join(QUARANTINE_DIR);
        blocking(move || -> Result<Vec<ChunkId>> {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(error) => return Err(error.into()),
            };
            let mut ids = Vec::new();
            for entry in entries {
                let name = entry?.file_name();
                let id = name
                    .to_str()
                    .and_then(|name| name.split('.').next())
                    .and_then(ChunkId::from_hex);
                ids.extend(id);
            }
            ids.sort_unstable();
            Ok(ids)
        })
        .await?
    }

    fn chunk_path(&self, id: ChunkId) -> PathBuf {
        self.root.join(prefix_dir_name(id)).join(id.to_hex())
    }
}

/// Streams one chunk's bytes to a temporary file, hashing as it goes.
///
/// Bytes are hashed on the calling task as they come and gathered into
/// batches of [`limits::WRITE_BATCH_SIZE`]; each batch goes to the file on
/// the blocking pool while the next one gathers, so a writer costs one
/// blocking-pool hop per batch, whatever the size of the pieces it is
/// given, and holds at most two batches.
pub struct ChunkWriter {
    id: ChunkId,
    tmp_path: PathBuf,
    final_path: PathBuf,
    /// Boxed: a SHA-256 state makes it most of the writer's size.
    hasher: Box<ChunkHasher>,
    /// Pieces not yet handed to the file, `batch_len` bytes in all.
    batch: Vec<Bytes>,
    batch_len: usize,
    file: FileState,
    len: u64,
    /// The temporary file is gone (renamed or removed): nothing to clean up.
    closed: bool,
}

/// Where a writer's file is.
enum FileState {
    Idle(Box<DataFile>),
    /// Writing a batch on the blocking pool.
    Writing(JoinHandle<(Box<DataFile>, io::Result<()>)>),
    /// Lost for good: a write failed or was cancelled (the file's contents
    /// are then unknown).
    Unusable,
}

impl ChunkWriter {
    /// Appends `data`. Fails with `TooLarge`, writing nothing, if the chunk
    /// would exceed [`limits::CHUNK_SIZE_MAX`]; the writer stays usable.
    /// After any other error the writer can only be aborted or dropped. An
    /// error of the file may surface one call late (the batch before this
    /// one is still being written when this returns).
    pub async fn write(&mut self, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let too_large = || ChunkError::TooLarge {
            id: self.id,
            max: limits::CHUNK_SIZE_MAX,
        };
        let added = u64::try_from(data.len()).map_err(|_| too_large())?;
        let len = self
            .len
            .checked_add(added)
            .filter(|len| *len <= limits::CHUNK_SIZE_MAX)
            .ok_or_else(too_large)?;
        if matches!(self.file, FileState::Unusable) {
            return Err(unusable());
        }
        self.hasher.update(&data);
        self.batch_len += data.len();
        self.batch.push(data);
        self.len = len;
        if self.batch_len >= limits::WRITE_BATCH_SIZE {
            let file = self.idle_file().await?;
            let batch = std::mem::take(&mut self.batch);
            self.batch_len = 0;
            self.file = FileState::Writing(tokio::task::spawn_blocking(move || {
                let mut file = file;
                let written = write_batch(&mut file, &batch);
                (file, written)
            }));
        }
        Ok(())
    }

    /// The file once the batch being written (if any) is on it. The writer
    /// is unusable from the call until this returns `Ok`.
    async fn idle_file(&mut self) -> Result<Box<DataFile>> {
        match std::mem::replace(&mut self.file, FileState::Unusable) {
            FileState::Idle(file) => Ok(file),
            FileState::Writing(write) => {
                let (file, written) = write.await.map_err(|error| {
                    io::Error::other(format!("chunk store blocking task failed: {error}"))
                })?;
                written?;
                Ok(file)
            }
            FileState::Unusable => Err(unusable()),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Seals the chunk: writes its block CRCs and SHA-256, fsyncs, renames
    /// into place (and fsyncs the directory). If `expected_sha256` is given
    /// and differs, nothing is stored and `ChecksumMismatch` is returned.
    /// Re-writing an existing id with the same content is idempotent.
    pub async fn finish(self, expected_sha256: Option<[u8; 32]>) -> Result<ChunkInfo> {
        self.seal(Expected::Sha256(expected_sha256)).await
    }

    /// Seals a chunk started with [`ChunkStore::writer_vouched`]: as
    /// [`ChunkWriter::finish`], but nothing is stored unless the data's
    /// CRC32C is `crc32c`, and the SHA-256 recorded is `sha256`.
    pub async fn finish_vouched(self, sha256: [u8; 32], crc32c: u32) -> Result<ChunkInfo> {
        self.seal(Expected::Vouched { sha256, crc32c }).await
    }

    /// Seals a chunk started with [`ChunkStore::writer_vouched`] whose
    /// SHA-256 the caller verified over these very bytes as they passed
    /// (a signed payload's, checked by the signature layer before the
    /// body ends): recorded as given, without a second pass.
    pub async fn finish_verified(self, sha256: [u8; 32]) -> Result<ChunkInfo> {
        self.seal(Expected::Verified(sha256)).await
    }

    async fn seal(mut self, expected: Expected) -> Result<ChunkInfo> {
        let mut file = self.idle_file().await?;
        let batch = std::mem::take(&mut self.batch);
        let hasher = std::mem::replace(&mut self.hasher, Box::new(ChunkHasher::without_sha256()));
        let (id, len) = (self.id, self.len);
        let tmp = self.tmp_path.clone();
        let dst = self.final_path.clone();
        let sealed = blocking(move || {
            write_batch(&mut file, &batch)?;
            seal(id, *file, *hasher, len, expected, &tmp, &dst)
        })
        .await?;
        // On other errors the temporary file may remain: Drop removes it.
        if matches!(sealed, Ok(_) | Err(ChunkError::ChecksumMismatch { .. })) {
            self.closed = true;
        }
        sealed
    }

    /// Discards the partial chunk.
    pub async fn abort(mut self) -> Result<()> {
        // A batch still being written is finished with first, so that the
        // file is closed before it is removed; its error does not matter.
        let file = self.idle_file().await.ok();
        let tmp = self.tmp_path.clone();
        blocking(move || {
            drop(file);
            remove_if_exists(&tmp)
        })
        .await??;
        self.closed = true;
        Ok(())
    }
}

impl fmt::Debug for ChunkWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkWriter")
            .field("id", &self.id)
            .field("len", &self.len)
            .field("tmp_path", &self.tmp_path)
            .finish_non_exhaustive()
    }
}

impl Drop for ChunkWriter {
    /// Best-effort removal of an unfinished chunk's temporary file; whatever
    /// is missed, the next [`ChunkStore::open`] removes.
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // A batch still being written holds the file until it is done; on
        // Unix the removal below does not wait for it.
        let file = std::mem::replace(&mut self.file, FileState::Unusable);
        let tmp = std::mem::take(&mut self.tmp_path);
        let id = self.id;
        let cleanup = move || {
            drop(file);
            if let Err(error) = remove_if_exists(&tmp) {
                tracing::warn!(%id, %error, "could not remove unfinished chunk write");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(cleanup)),
            Err(_) => cleanup(),
        }
    }
}

/// What a sealed chunk's data must match.
enum Expected {
    /// The SHA-256 computed here, if given.
    Sha256(Option<[u8; 32]>),
    /// The writer's CRC32C; its SHA-256 is recorded as given.
    Vouched { sha256: [u8; 32], crc32c: u32 },
    /// A SHA-256 the caller verified over the bytes; recorded as given.
    Verified([u8; 32]),
}

/// Appends a writer's gathered pieces to its file, in order.
fn write_batch(file: &mut DataFile, batch: &[Bytes]) -> io::Result<()> {
    batch.iter().try_for_each(|piece| file.write(piece))
}

/// Finishes a write on the blocking pool: see [`ChunkWriter::finish`].
fn seal(
    id: ChunkId,
    file: DataFile,
    hasher: ChunkHasher,
    len: u64,
    expected: Expected,
    tmp: &Path,
    dst: &Path,
) -> Result<ChunkInfo> {
    let digests = hasher.finish();
    let sha256 = match (expected, digests.sha256) {
        (Expected::Sha256(expected), Some(computed))
            if expected.is_none_or(|expected| expected == computed) =>
        {
            Some(computed)
        }
        // A SHA-256 computed here as well must agree.
        (Expected::Vouched { sha256, crc32c }, computed)
            if crc32c == digests.crc32c && computed.is_none_or(|computed| computed == sha256) =>
        {
            Some(sha256)
        }
        (Expected::Verified(sha256), computed)
            if computed.is_none_or(|computed| computed == sha256) =>
        {
            Some(sha256)
        }
        (Expected::Sha256(_), None) => {
            return Err(io::Error::other(
                "a chunk written as vouched for must be sealed with finish_vouched",
            )
            .into());
        }
        _ => None,
    };
    let Some(sha256) = sha256 else {
        drop(file);
        remove_if_exists(tmp)?;
        return Err(ChunkError::ChecksumMismatch { id });
    };
    let block_crcs = digests.block_crcs;
    let footer = Footer {
        sha256,
        data_len: len,
        block_crcs,
    };
    drop(file.finish(&footer.encode()?)?);
    let info = ChunkInfo {
        id,
        size: len,
        sha256,
    };

    let dir = dst
        .parent()
        .ok_or_else(|| io::Error::other("chunk path has no parent directory"))?;
    create_dir_durably(dir)?;
    match File::open(dst) {
        Ok(mut existing) => match Footer::read_from(&mut existing, id) {
            Ok(old) if old.sha256 == sha256 && old.data_len == len => {
                // Already stored (a retried put, or a copy onto a server
                // holding an old stray): the new file replaces it, same
                // bytes, so its age restarts; orphan sweeps judge by age
                // and must not take a copy just made (see `gc`).
            }
            Ok(_) => {
                remove_if_exists(tmp)?;
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("chunk {id} already exists with different content"),
                )
                .into());
            }
            Err(ChunkError::Corrupt { detail, .. }) => {
                tracing::warn!(%id, %detail, "replacing corrupt chunk file with a new write");
            }
            Err(error) => return Err(error),
        },
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error.into()),
    }
    fs::rename(tmp, dst)?;
    sync_dir(dir)?;
    Ok(info)
}

/// The state of one [`ChunkStore::read`] stream.
struct RangeReader {
    id: ChunkId,
    file: Arc<File>,
    /// Data is read around the page cache (`direct.rs`); cleared, for
    /// this and every later piece, by a read the file system refused.
    direct: Arc<AtomicBool>,
    block_crcs: Arc<[u32]>,
    size: u64,
    /// Next byte to yield.
    pos: u64,
    end: u64,
    /// Running hash and the footer's SHA-256, for a checked whole read
    /// (which reads one piece at a time, in order, hashing each in the
    /// task that read it).
    sha: Option<(Sha256, [u8; 32])>,
    /// The next piece, already being read (plain reads only): reading
    /// overlaps sending the piece before it.
    ahead: Option<(u64, PieceRead)>,
    done: bool,
    buffers: Arc<ReadBuffers>,
}

/// A piece being read on the blocking pool, with the running hash of a
/// checked read.
type PieceRead = JoinHandle<Result<(Bytes, Option<Sha256>)>>;

impl Drop for RangeReader {
    /// A stream dropped half-way (the client went away) does not start a
    /// read nobody will take; one already running finishes and is ignored.
    fn drop(&mut self) {
        if let Some((_, ahead)) = self.ahead.take() {
            ahead.abort();
        }
    }
}

/// One piece of a read: whole blocks from `start`, of which bytes
/// `from..to` are yielded.
struct PiecePlan {
    start: u64,
    len: usize,
    first_block: usize,
    from: usize,
    to: usize,
    /// Where the read goes on.
    next: u64,
}

impl RangeReader {
    async fn next_piece(&mut self) -> Option<Result<Bytes>> {
        if self.done {
            return None;
        }
        if self.pos >= self.end {
            self.done = true;
            let (sha, expected) = self.sha.take()?;
            let actual: [u8; 32] = sha.finalize().into();
            // Every block matched its CRC32C, so these are the bytes the
            // server stored; what disagrees is the recorded fingerprint.
            return (actual != expected)
                .then_some(Err(ChunkError::FingerprintMismatch { id: self.id }));
        }
        let piece = self.read_piece().await;
        if piece.is_err() {
            self.done = true;
            if let Some((_, ahead)) = self.ahead.take() {
                ahead.abort();
            }
        }
        Some(piece)
    }

    /// The piece covering the next at most `READ_PIECE_SIZE_MAX` bytes
    /// from `pos`.
    fn plan(&self, pos: u64) -> Result<PiecePlan> {
        let start = pos - pos % limits::BLOCK_SIZE;
        let blocks_end = self
            .end
            .checked_next_multiple_of(limits::BLOCK_SIZE)
            .unwrap_or(self.size)
            .min(self.size);
        let end = start
            .saturating_add(limits::READ_PIECE_SIZE_MAX)
            .min(blocks_end);
        let next = self.end.min(end);
        let plan = PiecePlan {
            start,
            len: to_usize(end - start)?,
            first_block: to_usize(start / limits::BLOCK_SIZE)?,
            from: to_usize(pos - start)?,
            to: to_usize(next - start)?,
            next,
        };
        if plan.from > plan.to || plan.to > plan.len {
            return Err(io::Error::other("read piece bounds out of order").into());
        }
        Ok(plan)
    }

    /// Starts reading and checking `plan`'s blocks on the blocking pool,
    /// and hashing the piece into `sha` (a checked read) there too.
    fn spawn_read(&self, plan: &PiecePlan, sha: Option<Sha256>) -> PieceRead {
        let (file, crcs, id) = (self.file.clone(), self.block_crcs.clone(), self.id);
        let (start, len, first_block, from, to) =
            (plan.start, plan.len, plan.first_block, plan.from, plan.to);
        let direct_flag = self.direct.clone();
        let buffers = Arc::clone(&self.buffers);
        tokio::task::spawn_blocking(move || {
            let count = to_usize(format::block_count(len as u64))?;
            let expected = crcs
                .get(first_block..first_block.saturating_add(count))
                .ok_or_else(|| ChunkError::Corrupt {
                    id,
                    detail: "block CRC table too short".to_owned(),
                })?;
            let mut direct = direct_flag.load(Ordering::Relaxed);
            let read = direct::read_at(&file, &mut direct, start, len, &buffers);
            if !direct {
                direct_flag.store(false, Ordering::Relaxed);
            }
            let blocks = read.map_err(|error| {
                if error.kind() == io::ErrorKind::UnexpectedEof {
                    ChunkError::Corrupt {
                        id,
                        detail: "file shorter than its footer says".to_owned(),
                    }
                } else {
                    error.into()
                }
            })?;
            check_blocks(&blocks, id, first_block, expected)?;
            let piece = blocks.slice(from..to);
            let sha = sha.map(|mut hasher| {
                hasher.update(&piece);
                hasher
            });
            Ok((piece, sha))
        })
    }

    /// Reads the next piece (or takes the one read ahead), checks it, and
    /// returns the requested part; a plain read then starts the next.
    async fn read_piece(&mut self) -> Result<Bytes> {
        let plan = self.plan(self.pos)?;
        let (hasher, expected) = self.sha.take().unzip();
        let checked = hasher.is_some();
        let handle = match self.ahead.take() {
            Some((pos, handle)) if pos == self.pos => handle,
            Some((_, stale)) => {
                stale.abort();
                self.spawn_read(&plan, hasher)
            }
            None => self.spawn_read(&plan, hasher),
        };
        if !checked && plan.next < self.end {
            let next = self.plan(plan.next)?;
            self.ahead = Some((plan.next, self.spawn_read(&next, None)));
        }
        let (piece, hasher) = handle.await.map_err(|error| {
            io::Error::other(format!("chunk store blocking task failed: {error}"))
        })??;
        self.sha = hasher.zip(expected);
        self.pos = plan.next;
        Ok(piece)
    }
}

/// Checks each block of `blocks` (read from block number `first_block`
/// on) against `expected_crcs`.
fn check_blocks(
    blocks: &[u8],
    id: ChunkId,
    first_block: usize,
    expected_crcs: &[u32],
) -> Result<()> {
    for (i, (block, expected)) in blocks.chunks(BLOCK_LEN).zip(expected_crcs).enumerate() {
        if crc32c::crc32c(block) != *expected {
            return Err(ChunkError::Corrupt {
                id,
                detail: format!("CRC32C mismatch in block {}", first_block + i),
            });
        }
    }
    Ok(())
}

/// Calls `f` for every well-named chunk file under `root`, skipping the
/// temporary directory and anything else that is not a chunk.
///
/// Collection deletes chunk files while a walk runs, so a file listed may
/// be gone when `f` reads its metadata: `f` failing with `NotFound` skips
/// that file instead of failing the walk.
fn walk_chunks(root: &Path, mut f: impl FnMut(ChunkId, &fs::DirEntry) -> Result<()>) -> Result<()> {
    for dir in fs::read_dir(root)? {
        let dir = dir?;
        let dir_name = dir.file_name();
        let Some(prefix) = dir_name.to_str() else {
            continue;
        };
        let is_prefix = prefix.len() == 2
            && prefix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !is_prefix || !dir.file_type()?.is_dir() {
            continue;
        }
        for entry in fs::read_dir(dir.path())? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue;
            };
            let Some(id) = ChunkId::from_hex(name) else {
                continue;
            };
            // Canonical (lowercase) names in the right directory only.
            if id.to_hex() != name || prefix_dir_name(id) != prefix || !entry.file_type()?.is_file()
            {
                continue;
            }
            match f(id, &entry) {
                Err(ChunkError::Io(error)) if error.kind() == io::ErrorKind::NotFound => {}
                result => result?,
            }
        }
    }
    Ok(())
}

/// The subdirectory of a chunk: its id's last byte, which is random (the
/// first bytes are the creation time, shared by every chunk of an hour),
/// so chunks spread evenly over 256 directories.
fn prefix_dir_name(id: ChunkId) -> String {
    let [.., last] = id.0;
    hex::encode([last])
}

/// Whether a file last modified as `metadata` says is at least `age` old
/// at `now_ms`. A modification time after `now_ms` makes it new; one
/// before the Unix epoch, old.
fn is_older_than(metadata: &fs::Metadata, now_ms: i64, age: Duration) -> io::Result<bool> {
    let modified_ms = metadata
        .modified()?
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        });
    let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    Ok(now_ms.saturating_sub(modified_ms).max(0) >= age_ms)
}

fn open_chunk(path: &Path, id: ChunkId) -> Result<File> {
    File::open(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => ChunkError::NotFound(id),
        _ => error.into(),
    })
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error.into()),
        _ => Ok(()),
    }
}

/// Creates `dir` if missing, fsyncing its parent so the new entry survives a
/// crash.
fn create_dir_durably(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => match dir.parent() {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        },
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error.into()),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn to_usize(n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::other(format!("{n} does not fit in usize")).into())
}

fn unusable() -> ChunkError {
    io::Error::other(
        "chunk writer or reader is unusable after an earlier failed or cancelled operation",
    )
    .into()
}

/// Runs `f` on tokio's blocking pool.
async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|error| {
        io::Error::other(format!("chunk store blocking task failed: {error}")).into()
    })
}

#[cfg(test)]
mod tests {
    use arbor_meta::clock::{ManualClock, SeededEntropy, SystemClock};

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn file_ages_are_judged_by_the_stores_clock() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Files are stamped by the operating system: start the manual
        // clock at the system's now, then move it by hand.
        let clock = ManualClock::new(SystemClock.now_ms());
        let store = ChunkStore::open(dir.path(), clock.clone(), SeededEntropy::new(7))
            .await
            .expect("open");
        let id = store.fresh_id();
        let mut writer = store.writer(id).await.expect("writer");
        writer
            .write(Bytes::from_static(b"old"))
            .await
            .expect("write");
        writer.finish(None).await.expect("finish");

        assert_eq!(store.list_older_than(HOUR).await.expect("list"), []);
        assert!(!store.delete_if_older_than(id, HOUR).await.expect("delete"));

        clock.advance_ms(2 * 3600 * 1000);
        assert_eq!(store.list_older_than(HOUR).await.expect("list"), [id]);
        assert!(store.delete_if_older_than(id, HOUR).await.expect("delete"));
        assert!(matches!(store.stat(id).await, Err(ChunkError::NotFound(_))));
    }

    #[tokio::test]
    async fn a_walk_skips_chunk_files_deleted_under_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ChunkStore::open(dir.path(), SystemClock::shared(), SeededEntropy::new(3))
            .await
            .expect("open");
        let mut ids = Vec::new();
        for body in [&b"one"[..], b"two", b"three"] {
            let id = store.fresh_id();
            let mut writer = store.writer(id).await.expect("writer");
            writer.write(Bytes::from(body)).await.expect("write");
            writer.finish(None).await.expect("finish");
            ids.push(id);
        }
        ids.sort_unstable();
        // As collection does between the listing and the stat: the first
        // chunk visited is deleted before its metadata is read.
        let mut visited = Vec::new();
        walk_chunks(dir.path(), |id, entry| {
            if visited.is_empty() {
                fs::remove_file(entry.path())?;
            }
            visited.push(id);
            entry.metadata()?;
            Ok(())
        })
        .expect("the walk goes on");
        visited.sort_unstable();
        assert_eq!(visited, ids, "every chunk visited");
        assert_eq!(store.usage().await.expect("usage").0, 2);
    }

    #[test]
    fn fresh_ids_carry_the_clocks_time_and_the_entropys_bits() {
        let clock = ManualClock::new(1_700_000_000_000);
        let id = fresh_chunk_id(&*clock, &*SeededEntropy::new(1));
        assert_eq!(id.created_ms(), 1_700_000_000_000);
        assert_eq!(id, fresh_chunk_id(&*clock, &*SeededEntropy::new(1)));
        assert_ne!(id, fresh_chunk_id(&*clock, &*SeededEntropy::new(2)));
    }
}
