//! The Raft log in its own redb file (`raft-log.redb`): entries, vote,
//! committed and purged log ids.
//!
//! All writes (appends, vote, committed, truncate, purge) go through one
//! dedicated writer thread, in queue order, so write IO is serialized as
//! openraft requires (a task instead, with storage work inline:
//! [`crate::io::StorageIo::Simulated`]). The thread drains whatever is queued into one redb
//! transaction (group commit at the log level) and reports each append's
//! completion through its [`LogFlushed`] callback after `commit()`.
//!
//! An appended entry is readable as soon as `append` returns: it sits in an
//! in-memory map of pending entries until its transaction commits. Readers
//! snapshot that map *before* opening their read transaction, so an entry is
//! always in one or the other (docs/design.md, openraft on redb).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use super::types::{Entry, LogId, StorageError, TypeConfig, Vote, decode, encode, storage_error};
use crate::error::{MetaError, Result};
use crate::io::StorageIo;

/// Log entries by index, each a postcard-encoded [`Entry`].
const LOG_TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Vote, committed and purged log ids (postcard), by name.
const LOG_META_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_log_meta");
const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";

/// Writes waiting for the writer thread. openraft awaits every append, so
/// the queue rarely holds more than a few; the bound only caps memory.
const WRITE_QUEUE_MAX: usize = 1024;
/// Most queued writes grouped into one redb transaction.
const WRITES_PER_TXN_MAX: usize = 64;
/// With `durable == false`, every this many non-durable commits one
/// durable commit lets redb reclaim pages freed meanwhile (a non-durable
/// commit can only free pages allocated by other non-durable commits).
pub(crate) const NON_DURABLE_COMMITS_MAX: u64 = 1024;
/// A range read larger than this runs on a blocking thread.
const INLINE_READ_ENTRIES_MAX: u64 = 64;

/// A write for the writer thread.
enum WriteOp {
    Append {
        entries: Vec<(LogId, Vec<u8>)>,
        callback: LogFlushed<TypeConfig>,
    },
    SaveVote {
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Fire and forget: written in whatever transaction comes next, with no
    /// fsync of its own: openraft does not need it durable, and it runs
    /// just before every apply (docs/design.md, openraft on redb).
    SaveCommitted { bytes: Vec<u8> },
    /// Delete entries with index >= `since`.
    Truncate {
        since: u64,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Delete entries with index <= `upto` and record the purged log id.
    Purge {
        upto: u64,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Finish what is queued before this and exit.
    Stop,
}

/// State shared by the store, its readers and the writer thread.
struct Shared {
    db: Arc<Database>,
    /// Appended entries whose transaction has not committed yet.
    pending: Mutex<BTreeMap<u64, Entry>>,
    /// Where large reads run.
    io: StorageIo,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, BTreeMap<u64, Entry>> {
        // A panic while holding this lock leaves the map consistent (every
        // operation on it is a single insert/remove/split).
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Entries in `[lo, hi)` (`hi == None`: unbounded), pending ones taking
    /// precedence over stored ones.
    async fn entries(
        self: &Arc<Self>,
        lo: u64,
        hi: Option<u64>,
    ) -> Result<Vec<Entry>, StorageError> {
        if hi.is_some_and(|hi| hi <= lo) {
            return Ok(Vec::new());
        }
        // Snapshot the pending map before opening the read transaction: an
        // entry leaves the map only after its commit, so it is seen in one
        // of the two.
        let pending: BTreeMap<u64, Entry> = {
            let map = self.pending();
            map.range((
                Bound::Included(lo),
                hi.map_or(Bound::Unbounded, Bound::Excluded),
            ))
            .map(|(i, e)| (*i, e.clone()))
            .collect()
        };
        if let Some(hi) = hi {
            let covered = pending.len() as u64 == hi - lo;
            if covered {
                return Ok(pending.into_values().collect());
            }
        }
        let read_err = |e: MetaError| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e);
        let small = hi.is_some_and(|hi| hi - lo <= INLINE_READ_ENTRIES_MAX);
        let mut stored = if small {
            read_stored(&self.db, lo, hi).map_err(read_err)?
        } else {
            let db = self.db.clone();
            self.io
                .blocking(move || read_stored(&db, lo, hi))
                .await
                .and_then(|read| read)
                .map_err(read_err)?
        };
        stored.extend(pending);
        Ok(stored.into_values().collect())
    }

    /// Last log id among pending entries.
    fn pending_last(&self) -> Option<LogId> {
        self.pending().last_key_value().map(|(_, e)| e.log_id)
    }
}

fn read_stored(db: &Database, lo: u64, hi: Option<u64>) -> Result<BTreeMap<u64, Entry>> {
    let txn = db.begin_read()?;
    let table = txn.open_table(LOG_TABLE)?;
    let mut out = BTreeMap::new();
    let range = (
        Bound::Included(lo),
        hi.map_or(Bound::Unbounded, Bound::Excluded),
    );
    for row in table.range::<u64>(range)? {
        let (index, bytes) = row?;
        let entry: Entry = decode(bytes.value(), "log entry")?;
        if entry.log_id.index != index.value() {
            return Err(MetaError::Corrupt(format!(
                "log entry at index {} has log id {}",
                index.value(),
                entry.log_id
            )));
        }
        out.insert(index.value(), entry);
    }
    Ok(out)
}

fn read_meta<T: for<'de> serde::Deserialize<'de>>(db: &Database, key: &str) -> Result<Option<T>> {
    let txn = db.begin_read()?;
    let table = txn.open_table(LOG_META_TABLE)?;
    match table.get(key)? {
        Some(bytes) => Ok(Some(decode(bytes.value(), key)?)),
        None => Ok(None),
    }
}

/// Converts any range of log indexes into `[lo, hi)`; `hi == None` is
/// unbounded.
fn index_bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, Option<u64>) {
    let lo = match range.start_bound() {
        Bound::Included(s) => Some(*s),
        Bound::Excluded(s) => s.checked_add(1),
        Bound::Unbounded => Some(0),
    };
    let Some(lo) = lo else {
        // Starts after u64::MAX: empty.
        return (u64::MAX, Some(u64::MAX));
    };
    let hi = match range.end_bound() {
        Bound::Included(e) => e.checked_add(1),
        Bound::Excluded(e) => Some(*e),
        Bound::Unbounded => None,
    };
    (lo, hi)
}

/// The Raft log store ([`RaftLogStorage`]) of one node.
pub struct LogStore {
    shared: Arc<Shared>,
    tx: mpsc::Sender<WriteOp>,
    /// Last value given to `save_committed` (or loaded at open).
    committed: Option<LogId>,
}

/// Reads log entries for replication; cheap to create.
pub struct LogReader {
    shared: Arc<Shared>,
}

/// Handle on the writer, kept by the node to stop it at shutdown.
/// Dropping it without [`LogWriter::stop`] detaches the writer, which then
/// exits once the store and its readers are dropped.
pub struct LogWriter {
    tx: mpsc::Sender<WriteOp>,
    writer: Option<Writer>,
}

/// The writer: a thread, or (storage work inline) a task.
enum Writer {
    Thread(JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

impl LogWriter {
    /// Lets the writer finish what is queued, then joins it. Writes queued
    /// afterwards fail. Idempotent.
    pub async fn stop(&mut self) {
        // Fails only if the thread already exited.
        let _ = self.tx.send(WriteOp::Stop).await;
        match self.writer.take() {
            Some(Writer::Thread(thread)) => {
                let joined = tokio::task::spawn_blocking(move || thread.join()).await;
                if !matches!(joined, Ok(Ok(()))) {
                    tracing::error!("raft log writer thread panicked");
                }
            }
            Some(Writer::Task(task)) => {
                let panicked = task.await.is_err();
                if panicked {
                    tracing::error!("raft log writer task panicked");
                }
            }
            None => {}
        }
    }
}

impl LogStore {
    /// Opens (or creates) the log at `path` and starts its writer thread.
    /// Blocking: call it from a blocking context at startup.
    pub fn open(path: &Path, durable: bool) -> Result<(LogStore, LogWriter)> {
        LogStore::open_on(path, durable, &StorageIo::Os)
    }

    /// [`LogStore::open`] on `io`: with [`StorageIo::Simulated`] the
    /// writer is a task of the current tokio runtime, writing inline.
    pub fn open_on(path: &Path, durable: bool, io: &StorageIo) -> Result<(LogStore, LogWriter)> {
        let db = Arc::new(io.create_database(path, crate::limits::REDB_LOG_CACHE_BYTES)?);
        // Create every table up front so read transactions never meet a
        // missing one.
        let txn = db.begin_write()?;
        txn.open_table(LOG_TABLE)?;
        txn.open_table(LOG_META_TABLE)?;
        txn.commit()?;
        let committed: Option<LogId> = read_meta::<Option<LogId>>(&db, KEY_COMMITTED)?.flatten();

        let shared = Arc::new(Shared {
            db,
            pending: Mutex::new(BTreeMap::new()),
            io: io.clone(),
        });
        let (tx, rx) = mpsc::channel(WRITE_QUEUE_MAX);
        let writer_shared = shared.clone();
        let writer = if io.inline() {
            Writer::Task(tokio::spawn(run_writer_task(writer_shared, rx, durable)))
        } else {
            let thread = std::thread::Builder::new()
                .name("arbor-raft-log".into())
                .spawn(move || run_writer(writer_shared, rx, durable))
                .map_err(|e| MetaError::Storage(format!("spawn raft log writer: {e}")))?;
            Writer::Thread(thread)
        };
        let store = LogStore {
            shared,
            tx: tx.clone(),
            committed,
        };
        Ok((
            store,
            LogWriter {
                tx,
                writer: Some(writer),
            },
        ))
    }

    /// The log database (for shutdown to watch it close).
    pub fn database(&self) -> &Arc<Database> {
        &self.shared.db
    }

    async fn send(&self, op: WriteOp) -> Result<(), StorageError> {
        self.tx.send(op).await.map_err(|_| {
            storage_error(
                ErrorSubject::Logs,
                ErrorVerb::Write,
                MetaError::ShuttingDown,
            )
        })
    }

    /// Queues `op` and waits for its transaction to commit.
    async fn write_and_wait(
        &self,
        subject: ErrorSubject<u64>,
        op: impl FnOnce(oneshot::Sender<Result<()>>) -> WriteOp,
    ) -> Result<(), StorageError> {
        let (reply, done) = oneshot::channel();
        self.send(op(reply)).await?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(storage_error(subject, ErrorVerb::Write, e)),
            Err(_) => Err(storage_error(
                subject,
                ErrorVerb::Write,
                MetaError::ShuttingDown,
            )),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (lo, hi) = index_bounds(&range);
        self.shared.entries(lo, hi).await
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (lo, hi) = index_bounds(&range);
        self.shared.entries(lo, hi).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let pending_last = self.shared.pending_last();
        let read = || -> Result<(Option<LogId>, Option<LogId>)> {
            let txn = self.shared.db.begin_read()?;
            let meta = txn.open_table(LOG_META_TABLE)?;
            let purged: Option<LogId> = match meta.get(KEY_PURGED)? {
                Some(bytes) => decode(bytes.value(), KEY_PURGED)?,
                None => None,
            };
            let log = txn.open_table(LOG_TABLE)?;
            let stored_last = match log.last()? {
                Some((_, bytes)) => Some(decode::<Entry>(bytes.value(), "log entry")?.log_id),
                None => None,
            };
            Ok((purged, stored_last))
        };
        let (last_purged_log_id, stored_last) =
            read().map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        // Once everything is purged, the last log id is the purged one.
        let last_log_id = pending_last.max(stored_last).max(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let bytes =
            encode(vote).map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        self.write_and_wait(ErrorSubject::Vote, |reply| WriteOp::SaveVote {
            bytes,
            reply,
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        read_meta(&self.shared.db, KEY_VOTE)
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let bytes = encode(&committed)
            .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        self.committed = committed;
        self.send(WriteOp::SaveCommitted { bytes }).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        let mut encoded = Vec::with_capacity(entries.len());
        for entry in &entries {
            let bytes = encode(entry)
                .map_err(|e| storage_error(ErrorSubject::Log(entry.log_id), ErrorVerb::Write, e))?;
            encoded.push((entry.log_id, bytes));
        }
        {
            let mut pending = self.shared.pending();
            for entry in entries {
                pending.insert(entry.log_id.index, entry);
            }
        }
        self.send(WriteOp::Append {
            entries: encoded,
            callback,
        })
        .await
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let since = log_id.index;
        drop(self.shared.pending().split_off(&since));
        self.write_and_wait(ErrorSubject::Logs, |reply| WriteOp::Truncate {
            since,
            reply,
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let upto = log_id.index;
        let bytes = encode(&Some(log_id))
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        self.write_and_wait(ErrorSubject::Logs, |reply| WriteOp::Purge {
            upto,
            bytes,
            reply,
        })
        .await?;
        let mut pending = self.shared.pending();
        let keep = match upto.checked_add(1) {
            Some(next) => pending.split_off(&next),
            None => BTreeMap::new(),
        };
        *pending = keep;
        Ok(())
    }
}

/// The writer thread: drains the queue, one transaction per group.
fn run_writer(shared: Arc<Shared>, mut rx: mpsc::Receiver<WriteOp>, durable: bool) {
    let mut non_durable_commits: u64 = 0;
    while let Some(first) = rx.blocking_recv() {
        if write_queued(&shared, &mut rx, first, durable, &mut non_durable_commits) {
            break;
        }
    }
    tracing::debug!("raft log writer stopped");
}

/// The writer as a task (storage work inline): the same loop, awaiting the
/// queue instead of blocking on it.
async fn run_writer_task(shared: Arc<Shared>, mut rx: mpsc::Receiver<WriteOp>, durable: bool) {
    let mut non_durable_commits: u64 = 0;
    while let Some(first) = rx.recv().await {
        if write_queued(&shared, &mut rx, first, durable, &mut non_durable_commits) {
            break;
        }
    }
    tracing::debug!("raft log writer stopped");
}

/// Writes `first` and whatever else is queued (up to
/// [`WRITES_PER_TXN_MAX`]) in one transaction and reports each outcome;
/// true once a `Stop` was reached.
fn write_queued(
    shared: &Shared,
    rx: &mut mpsc::Receiver<WriteOp>,
    first: WriteOp,
    durable: bool,
    non_durable_commits: &mut u64,
) -> bool {
    let mut ops = vec![first];
    while ops.len() < WRITES_PER_TXN_MAX {
        match rx.try_recv() {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    // Writes queued after Stop are dropped: their callers see an error.
    let stop_at = ops.iter().position(|op| matches!(op, WriteOp::Stop));
    if let Some(at) = stop_at {
        ops.truncate(at);
    }
    if !ops.is_empty() {
        // Only `committed` changed: no fsync of its own.
        let only_committed = ops
            .iter()
            .all(|op| matches!(op, WriteOp::SaveCommitted { .. }));
        let sync = if durable {
            !only_committed
        } else {
            *non_durable_commits >= NON_DURABLE_COMMITS_MAX
        };
        let result = write_group(&shared.db, &ops, sync);
        if result.is_ok() {
            *non_durable_commits = if sync { 0 } else { *non_durable_commits + 1 };
        }
        complete(shared, ops, result);
    }
    stop_at.is_some()
}

fn write_group(db: &Database, ops: &[WriteOp], sync: bool) -> Result<()> {
    let mut txn = db.begin_write()?;
    let durability = if sync {
        Durability::Immediate
    } else {
        Durability::None
    };
    txn.set_durability(durability)
        .map_err(|e| MetaError::Storage(e.to_string()))?;
    {
        let mut log = txn.open_table(LOG_TABLE)?;
        let mut meta = txn.open_table(LOG_META_TABLE)?;
        for op in ops {
            match op {
                WriteOp::Append { entries, .. } => {
                    for (log_id, bytes) in entries {
                        log.insert(log_id.index, bytes.as_slice())?;
                    }
                }
                WriteOp::SaveVote { bytes, .. } => {
                    meta.insert(KEY_VOTE, bytes.as_slice())?;
                }
                WriteOp::SaveCommitted { bytes } => {
                    meta.insert(KEY_COMMITTED, bytes.as_slice())?;
                }
                WriteOp::Truncate { since, .. } => {
                    log.retain_in(*since.., |_, _| false)?;
                }
                WriteOp::Purge { upto, bytes, .. } => {
                    meta.insert(KEY_PURGED, bytes.as_slice())?;
                    log.retain_in(..=*upto, |_, _| false)?;
                }
                WriteOp::Stop => {}
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// Reports the outcome of a group to every waiter. Pending entries leave
/// the in-memory map only once committed (and only if not replaced by a
/// later append at the same index meanwhile).
fn complete(shared: &Shared, ops: Vec<WriteOp>, result: Result<()>) {
    if result.is_ok() {
        let mut pending = shared.pending();
        for op in &ops {
            if let WriteOp::Append { entries, .. } = op {
                for (log_id, _) in entries {
                    if pending
                        .get(&log_id.index)
                        .is_some_and(|e| e.log_id == *log_id)
                    {
                        pending.remove(&log_id.index);
                    }
                }
            }
        }
    }
    for op in ops {
        match op {
            WriteOp::Append { callback, .. } => {
                let io = result
                    .clone()
                    .map_err(|e| std::io::Error::other(e.to_string()));
                callback.log_io_completed(io);
            }
            WriteOp::SaveVote { reply, .. }
            | WriteOp::Truncate { reply, .. }
            | WriteOp::Purge { reply, .. } => {
                // The caller may have given up waiting.
                let _ = reply.send(result.clone());
            }
            WriteOp::SaveCommitted { .. } | WriteOp::Stop => {}
        }
    }
}
