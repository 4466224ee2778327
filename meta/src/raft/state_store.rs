//! The Raft state machine on `state.redb`: the namespace tables
//! ([`schema::STATE_TABLES`]) plus this store's own tables.
//!
//! `apply` runs a whole batch of entries in ONE write transaction: the
//! namespace changes, `last_applied` and `last_membership` commit together,
//! so a crash never leaves them apart.
//!
//! Idempotence (Raft paper §8): the result of each applied proposal is
//! remembered under its [`RequestId`]; a proposal whose id is remembered
//! returns that result and is not applied again. The most recent
//! [`REQUESTS_REMEMBERED_MAX`] results are kept, evicted in apply order
//! (deterministic, so every replica remembers the same ones). These tables
//! are replicated state and travel in snapshots.
//!
//! Snapshots are files in the `snapshots/` directory next to
//! `state.redb`, in the streamed format of [`super::snapshot_file`]: built
//! from one read transaction through a buffered writer, received chunk by
//! chunk into a file, checked by streaming it once and installed by
//! streaming it again into one write transaction. Nothing holds the whole
//! state in memory. The current snapshot's meta and file name are recorded
//! in redb, so `get_current_snapshot` returns it after a restart too.
//!
//! File names: `snapshot-<sequence>.snap` for complete snapshots (the
//! current one and, briefly, the one it replaces), `.tmp` while one is
//! being built, `.recv` while one is being received. Opening the store
//! removes leftover `.tmp` and `.recv` files and every `.snap` but the
//! current one.

use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, SnapshotId,
};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableHandle, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::log_store::NON_DURABLE_COMMITS_MAX;
use super::snapshot_file::{Frame, SnapshotReader, SnapshotWriter};
use super::types::{
    BatchResult, Entry, LogId, Proposal, RequestId, Snapshot, SnapshotMeta, StorageError,
    StoredMembership, TypeConfig, decode, encode, storage_error,
};
use crate::clock::{OsEntropy, SharedEntropy};
use crate::command::{Command, CommandResult, Reply};
use crate::context::ApplyContext;
use crate::error::{MetaError, Result};
use crate::io::{AsyncStorageFile, StorageIo};
use crate::schema;

/// A replicated bytes -> bytes table (same shape as `schema::StateTable`).
type ReplicatedTable = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// `last_applied` and `last_membership` (postcard), by name.
const SM_META_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_sm_meta");
const KEY_LAST_APPLIED: &str = "last_applied";
const KEY_LAST_MEMBERSHIP: &str = "last_membership";
/// The current snapshot: [`CurrentSnapshot`] (postcard) under
/// [`KEY_CURRENT_SNAPSHOT`].
const SNAPSHOT_FILE_TABLE: TableDefinition<&str, &[u8]> =
    TableDefinition::new("raft_snapshot_file");
const KEY_CURRENT_SNAPSHOT: &str = "current";
/// Before snapshot format 3, the current snapshot's meta and whole blob
/// lived in redb here. Dropped on open (a file snapshot is built in its
/// place).
const LEGACY_SNAPSHOT_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_snapshot");
const LEGACY_KEY_SNAPSHOT_META: &str = "meta";
/// The directory of snapshot files, next to the state database.
pub const SNAPSHOT_DIR_NAME: &str = "snapshots";
/// Buffer of the snapshot writer and readers: the memory a snapshot costs
/// besides one row and redb's own pages.
const SNAPSHOT_BUFFER_BYTES: usize = 1024 * 1024;
/// Remembered results: `client (8 bytes BE) ++ seq (8 bytes BE)` -> [`Remembered`].
const REQUESTS_TABLE: ReplicatedTable = TableDefinition::new("raft_requests");
/// Apply order of remembered results, for eviction:
/// `log index (8 BE) ++ position in batch (8 BE)` -> request key.
const REQUEST_ORDER_TABLE: ReplicatedTable = TableDefinition::new("raft_request_order");
const DEDUP_TABLES: [ReplicatedTable; 2] = [REQUESTS_TABLE, REQUEST_ORDER_TABLE];

/// How many proposal results are remembered for retries. A remote client
/// retries a proposal for up to its call timeout (10 s by default), so the
/// window must span that many proposals at the group's write rate: 100,000
/// covers 30 s at ~3,000 puts/s (docs/benchmarks.md) and 4 s at the
/// 24,000 puts/s an idle one-node group commit reached without a namespace
/// (docs/design.md, openraft on redb). Results are small (a put's object data is not stored
/// twice, see [`Remembered`]): about 150 bytes each, some 15 MiB in all.
pub const REQUESTS_REMEMBERED_MAX: u64 = 100_000;

/// A remembered proposal result.
#[derive(Serialize, Deserialize)]
struct Remembered {
    result: CommandResult,
    /// The reply's object `data` equalled the proposed version's and was
    /// dropped; a retry (same request id, hence same command) restores it
    /// from its own proposal.
    data_elided: bool,
}

/// What redb records of the current snapshot.
#[derive(Serialize, Deserialize)]
struct CurrentSnapshot {
    meta: SnapshotMeta,
    /// The file's name inside the snapshot directory.
    file: String,
}

const SNAPSHOT_SUFFIX: &str = ".snap";
const BUILDING_SUFFIX: &str = ".tmp";
const RECEIVING_SUFFIX: &str = ".recv";

fn snapshot_file_name(sequence: u64, suffix: &str) -> String {
    format!("snapshot-{sequence:020}{suffix}")
}

/// The sequence number of a snapshot file name, whatever its suffix.
fn snapshot_sequence(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("snapshot-")?;
    let digits = rest.split('.').next()?;
    digits.parse().ok()
}

/// Every table a snapshot carries: the namespace's and the dedup tables.
fn replicated_tables() -> impl Iterator<Item = ReplicatedTable> {
    schema::STATE_TABLES.iter().copied().chain(DEDUP_TABLES)
}

fn request_key(id: RequestId) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&id.client.to_be_bytes());
    key[8..].copy_from_slice(&id.seq.to_be_bytes());
    key
}

fn order_key(log_index: u64, position: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&log_index.to_be_bytes());
    key[8..].copy_from_slice(&position.to_be_bytes());
    key
}

/// Stops a snapshot being built or installed at its next row, so a node
/// shutting down does not wait for a walk of the whole state (the build
/// runs on its own task, which openraft does not wait for, holding the
/// database open). What it stops leaves nothing behind: a build removes
/// its partial file, an install drops its uncommitted transaction.
#[derive(Clone, Debug, Default)]
pub struct SnapshotStop(Arc<AtomicBool>);

impl SnapshotStop {
    /// Stops every snapshot build and install of the store, now and later.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// `ShuttingDown` once stopped.
    fn check(&self) -> Result<()> {
        if self.0.load(Ordering::Relaxed) {
            return Err(MetaError::ShuttingDown);
        }
        Ok(())
    }
}

/// The state machine store ([`RaftStateMachine`]); also its own snapshot
/// builder. Cheap to clone: clones share the database.
#[derive(Clone)]
pub struct StateStore {
    db: Arc<Database>,
    durable: bool,
    non_durable_commits: Arc<AtomicU64>,
    /// Draws the random part of snapshot ids.
    entropy: SharedEntropy,
    /// Where the blocking work (apply, snapshots) runs and where snapshot
    /// files live.
    io: StorageIo,
    /// The directory of snapshot files.
    snapshot_dir: PathBuf,
    /// The next snapshot file's sequence number.
    snapshot_sequence: Arc<AtomicU64>,
    /// Held while a snapshot file becomes the current one (rename, record,
    /// removal of the others), so a build and an install never interleave
    /// there.
    snapshot_switch: Arc<Mutex<()>>,
    /// Shared by every clone: set at shutdown.
    snapshot_stop: SnapshotStop,
}

impl StateStore {
    /// Opens (or creates) the state database at `path`, creating every
    /// table (this store's and the namespace's) in one transaction, and
    /// the snapshot directory ([`SNAPSHOT_DIR_NAME`]) next to it.
    /// Blocking: call it from a blocking context at startup.
    pub fn open(path: &Path, durable: bool) -> Result<StateStore> {
        StateStore::open_on(path, durable, &StorageIo::Os)
    }

    /// [`StateStore::open`] on `io`.
    pub fn open_on(path: &Path, durable: bool, io: &StorageIo) -> Result<StateStore> {
        let snapshot_dir = path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(SNAPSHOT_DIR_NAME);
        io.create_dir_all(&snapshot_dir)?;
        let db = Arc::new(io.create_database(path, crate::limits::REDB_STATE_CACHE_BYTES)?);
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| MetaError::Storage(e.to_string()))?;
        txn.open_table(SM_META_TABLE)?;
        txn.open_table(SNAPSHOT_FILE_TABLE)?;
        for table in DEDUP_TABLES {
            txn.open_table(table)?;
        }
        schema::create_state_tables(&txn)?;
        let had_legacy_snapshot = txn
            .open_table(LEGACY_SNAPSHOT_TABLE)?
            .get(LEGACY_KEY_SNAPSHOT_META)?
            .is_some();
        txn.delete_table(LEGACY_SNAPSHOT_TABLE)?;
        txn.commit()?;
        let store = StateStore {
            db,
            durable,
            non_durable_commits: Arc::new(AtomicU64::new(0)),
            entropy: OsEntropy::shared(),
            io: io.clone(),
            snapshot_dir,
            snapshot_sequence: Arc::new(AtomicU64::new(0)),
            snapshot_switch: Arc::new(Mutex::new(())),
            snapshot_stop: SnapshotStop::default(),
        };
        let current = store.read_current_snapshot()?;
        let sequence_next = store.clean_snapshot_dir(current.as_ref().map(|c| c.file.as_str()))?;
        store
            .snapshot_sequence
            .store(sequence_next, Ordering::Relaxed);
        let current_missing = current
            .as_ref()
            .is_some_and(|c| !io.exists(&store.snapshot_dir.join(&c.file)));
        if had_legacy_snapshot || current_missing {
            // The log may be purged up to the old snapshot: a snapshot must
            // exist. The state is at or past it (snapshots commit durably),
            // so one of the state as it is now stands in.
            tracing::info!(
                legacy = had_legacy_snapshot,
                missing = current_missing,
                "building a snapshot file at open"
            );
            store.build_snapshot_blocking()?;
        }
        Ok(store)
    }

    /// Removes leftover partial snapshot files and complete ones other
    /// than `current`; returns the sequence number after every name seen.
    fn clean_snapshot_dir(&self, current: Option<&str>) -> Result<u64> {
        let mut sequence_next = 0;
        for name in self.io.list_dir(&self.snapshot_dir)? {
            let Some(sequence) = snapshot_sequence(&name) else {
                continue;
            };
            sequence_next = sequence_next.max(sequence.saturating_add(1));
            if Some(name.as_str()) != current {
                self.io.remove_file(&self.snapshot_dir.join(&name))?;
            }
        }
        Ok(sequence_next)
    }

    /// Removes complete snapshot files other than `current` (partial ones
    /// may be in use: a snapshot being received).
    fn remove_old_snapshots(&self, current: &str) -> Result<()> {
        for name in self.io.list_dir(&self.snapshot_dir)? {
            if name.ends_with(SNAPSHOT_SUFFIX) && name != current {
                self.io.remove_file(&self.snapshot_dir.join(&name))?;
            }
        }
        Ok(())
    }

    fn next_snapshot_path(&self, suffix: &str) -> (String, PathBuf) {
        let sequence = self.snapshot_sequence.fetch_add(1, Ordering::Relaxed);
        let name = snapshot_file_name(sequence, suffix);
        let path = self.snapshot_dir.join(&name);
        (name, path)
    }

    fn read_current_snapshot(&self) -> Result<Option<CurrentSnapshot>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SNAPSHOT_FILE_TABLE)?;
        match table.get(KEY_CURRENT_SNAPSHOT)? {
            Some(bytes) => Ok(Some(decode(bytes.value(), "current snapshot")?)),
            None => Ok(None),
        }
    }

    /// The directory holding this store's snapshot files.
    pub fn snapshot_dir(&self) -> &Path {
        &self.snapshot_dir
    }

    /// Draws snapshot ids from `entropy` (a seeded one replays exactly).
    pub fn with_entropy(mut self, entropy: SharedEntropy) -> StateStore {
        self.entropy = entropy;
        self
    }

    /// The handle that stops this store's snapshot builds and installs.
    pub fn snapshot_stop(&self) -> SnapshotStop {
        self.snapshot_stop.clone()
    }

    /// The state database, for read transactions (linearizable reads are
    /// served from it once Raft has confirmed the read index).
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// Begins a write transaction with the configured durability. Without
    /// `durable`, every [`NON_DURABLE_COMMITS_MAX`]th commit is still made
    /// durable so redb can reclaim freed pages.
    fn begin_write(&self) -> Result<WriteTransaction> {
        let mut txn = self.db.begin_write()?;
        let sync = self.durable
            || self.non_durable_commits.fetch_add(1, Ordering::Relaxed) % NON_DURABLE_COMMITS_MAX
                == NON_DURABLE_COMMITS_MAX - 1;
        let durability = if sync {
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(durability)
            .map_err(|e| MetaError::Storage(e.to_string()))?;
        Ok(txn)
    }

    fn read_applied_state(&self) -> Result<(Option<LogId>, StoredMembership)> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(SM_META_TABLE)?;
        let last_applied = match meta.get(KEY_LAST_APPLIED)? {
            Some(bytes) => decode(bytes.value(), KEY_LAST_APPLIED)?,
            None => None,
        };
        let membership = match meta.get(KEY_LAST_MEMBERSHIP)? {
            Some(bytes) => decode(bytes.value(), KEY_LAST_MEMBERSHIP)?,
            None => StoredMembership::default(),
        };
        Ok((last_applied, membership))
    }

    /// Applies `entries` in one transaction; returns one result list per
    /// entry. An `Err` is a storage failure (fatal for Raft); command
    /// outcomes are inside the lists.
    fn apply_blocking(&self, entries: Vec<Entry>) -> Result<Vec<BatchResult>> {
        let txn = self.begin_write()?;
        let mut replies = Vec::with_capacity(entries.len());
        let mut last_applied = None;
        let mut last_membership = None;
        {
            let mut requests = txn.open_table(REQUESTS_TABLE)?;
            let mut order = txn.open_table(REQUEST_ORDER_TABLE)?;
            // The state tables, opened once for every command of every
            // entry: opening and closing them per command was a tenth of a
            // 4 KiB PUT's CPU (docs/benchmarks.md, "Profiles").
            let mut ctx = ApplyContext::open(&txn, 0)?;
            for entry in entries {
                last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => replies.push(Vec::new()),
                    EntryPayload::Membership(membership) => {
                        last_membership =
                            Some(StoredMembership::new(Some(entry.log_id), membership));
                        replies.push(Vec::new());
                    }
                    EntryPayload::Normal(batch) => {
                        let mut results = Vec::with_capacity(batch.len());
                        for (position, proposal) in batch.iter().enumerate() {
                            ctx.at(entry.log_id.index, position)?;
                            results.push(apply_proposal(
                                &mut ctx,
                                &mut requests,
                                &mut order,
                                proposal,
                            )?);
                        }
                        replies.push(results);
                    }
                }
            }
            while order.len()? > REQUESTS_REMEMBERED_MAX {
                let Some((_, request)) = order.pop_first()? else {
                    break;
                };
                requests.remove(request.value())?;
            }
        }
        {
            let mut meta = txn.open_table(SM_META_TABLE)?;
            if let Some(log_id) = last_applied {
                meta.insert(KEY_LAST_APPLIED, encode(&Some(log_id))?.as_slice())?;
            }
            if let Some(membership) = last_membership {
                meta.insert(KEY_LAST_MEMBERSHIP, encode(&membership)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(replies)
    }

    /// Streams the replicated tables at one read point into a new
    /// snapshot file and makes it the current snapshot.
    fn build_snapshot_blocking(&self) -> Result<Snapshot> {
        let txn = self.db.begin_read()?;
        let sm_meta = txn.open_table(SM_META_TABLE)?;
        let last_log_id: Option<LogId> = match sm_meta.get(KEY_LAST_APPLIED)? {
            Some(bytes) => decode(bytes.value(), KEY_LAST_APPLIED)?,
            None => None,
        };
        let last_membership: StoredMembership = match sm_meta.get(KEY_LAST_MEMBERSHIP)? {
            Some(bytes) => decode(bytes.value(), KEY_LAST_MEMBERSHIP)?,
            None => StoredMembership::default(),
        };
        let snapshot_id: SnapshotId = match last_log_id {
            Some(id) => format!(
                "{}-{}-{:016x}",
                id.leader_id.term,
                id.index,
                self.entropy.next_u64()
            ),
            None => format!("none-{:016x}", self.entropy.next_u64()),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let (_, building) = self.next_snapshot_path(BUILDING_SUFFIX);
        let (name, path) = self.next_snapshot_path(SNAPSHOT_SUFFIX);
        let written = self.write_snapshot_file(&txn, &building);
        drop(sm_meta);
        drop(txn);
        if let Err(e) = written {
            self.io.remove_file(&building)?;
            return Err(e);
        }
        let _switch = self
            .snapshot_switch
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = self.io.rename(&building, &path) {
            self.io.remove_file(&building)?;
            return Err(e);
        }
        if let Err(e) = self.record_current_snapshot(&meta, &name) {
            self.io.remove_file(&path)?;
            return Err(e);
        }
        self.remove_old_snapshots(&name)?;
        let file = self
            .io
            .open_file(&path)?
            .into_async(path)
            .map_err(|e| MetaError::Storage(format!("open snapshot: {e}")))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }

    /// Writes every replicated table as of `txn` to a new file at `path`
    /// and syncs it.
    fn write_snapshot_file(&self, txn: &ReadTransaction, path: &Path) -> Result<()> {
        let file = self.io.create_file(path)?;
        let mut writer =
            SnapshotWriter::new(BufWriter::with_capacity(SNAPSHOT_BUFFER_BYTES, file))?;
        for definition in replicated_tables() {
            writer.table(definition.name())?;
            let table = txn.open_table(definition)?;
            for row in table.iter()? {
                self.snapshot_stop.check()?;
                let (key, value) = row?;
                writer.row(key.value(), value.value())?;
            }
        }
        let file = writer
            .finish()?
            .into_inner()
            .map_err(|e| MetaError::Storage(format!("write snapshot: {}", e.error())))?;
        file.sync_all()
            .map_err(|e| MetaError::Storage(format!("sync snapshot: {e}")))?;
        Ok(())
    }

    /// Records `meta` and file `name` as the current snapshot, durably
    /// whatever the store's durability: the previous snapshot file is
    /// removed next, so the record must not fall back to it after a crash.
    fn record_current_snapshot(&self, meta: &SnapshotMeta, name: &str) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| MetaError::Storage(e.to_string()))?;
        write_current_snapshot(&txn, meta, name)?;
        txn.commit()?;
        Ok(())
    }

    /// A fresh file for a snapshot being received.
    fn begin_receiving_blocking(&self) -> Result<AsyncStorageFile> {
        // openraft receives one snapshot at a time: files of abandoned
        // streams go.
        for name in self.io.list_dir(&self.snapshot_dir)? {
            if name.ends_with(RECEIVING_SUFFIX) {
                self.io.remove_file(&self.snapshot_dir.join(&name))?;
            }
        }
        let (_, path) = self.next_snapshot_path(RECEIVING_SUFFIX);
        self.io
            .create_file(&path)?
            .into_async(path)
            .map_err(|e| MetaError::Storage(format!("create snapshot: {e}")))
    }

    /// Checks the received file at `received` by streaming it once, then
    /// replaces every replicated table with its rows, sets the applied
    /// state from `meta` and makes it the current snapshot, in one
    /// transaction. A file that fails the check is removed and the state
    /// is left as it was.
    fn install_snapshot_blocking(&self, meta: SnapshotMeta, received: &Path) -> Result<()> {
        let is_received = received.parent() == Some(self.snapshot_dir.as_path())
            && received
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(RECEIVING_SUFFIX));
        if !is_received {
            // Not a file `begin_receiving_snapshot` handed out (openraft's
            // full-snapshot API and its storage suite pass any snapshot
            // file): stream a copy into one, and install that.
            let copy = self.copy_into_received(received)?;
            return self.install_snapshot_blocking(meta, &copy);
        }
        let checked = self.verify_snapshot_file(received).and_then(|()| {
            self.io
                .open_file(received)?
                .sync_all()
                .map_err(|e| MetaError::Storage(format!("sync snapshot: {e}")))
        });
        if let Err(e) = checked {
            self.io.remove_file(received)?;
            return Err(e);
        }
        let _switch = self
            .snapshot_switch
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (name, path) = self.next_snapshot_path(SNAPSHOT_SUFFIX);
        self.io.rename(received, &path)?;
        if let Err(e) = self.import_snapshot_file(&meta, &name, &path) {
            self.io.remove_file(&path)?;
            return Err(e);
        }
        self.remove_old_snapshots(&name)?;
        // Receiving and installing take turns (openraft's state-machine
        // worker runs them in order): other received files are abandoned.
        for name in self.io.list_dir(&self.snapshot_dir)? {
            if name.ends_with(RECEIVING_SUFFIX) {
                self.io.remove_file(&self.snapshot_dir.join(&name))?;
            }
        }
        Ok(())
    }

    fn read_snapshot_file(
        &self,
        path: &Path,
    ) -> Result<SnapshotReader<BufReader<crate::io::StorageFile>>> {
        let file = self.io.open_file(path)?;
        SnapshotReader::new(BufReader::with_capacity(SNAPSHOT_BUFFER_BYTES, file))
    }

    /// Copies the file at `source` into a new received file; returns its
    /// path.
    fn copy_into_received(&self, source: &Path) -> Result<PathBuf> {
        let (_, path) = self.next_snapshot_path(RECEIVING_SUFFIX);
        let copied = (|| {
            let mut from =
                BufReader::with_capacity(SNAPSHOT_BUFFER_BYTES, self.io.open_file(source)?);
            let mut to =
                BufWriter::with_capacity(SNAPSHOT_BUFFER_BYTES, self.io.create_file(&path)?);
            std::io::copy(&mut from, &mut to)
                .map_err(|e| MetaError::Storage(format!("copy snapshot: {e}")))?;
            to.into_inner()
                .map_err(|e| MetaError::Storage(format!("copy snapshot: {}", e.error())))?;
            Ok(())
        })();
        if let Err(e) = copied {
            self.io.remove_file(&path)?;
            return Err(e);
        }
        Ok(path)
    }

    /// Streams the file once: structure, known table names, checksum.
    fn verify_snapshot_file(&self, path: &Path) -> Result<()> {
        let mut reader = self.read_snapshot_file(path)?;
        while let Some(frame) = reader.next_frame()? {
            self.snapshot_stop.check()?;
            if let Frame::Table(name) = frame {
                replicated_table(&name)?;
            }
        }
        Ok(())
    }

    /// Streams the (verified) file into one write transaction.
    fn import_snapshot_file(&self, meta: &SnapshotMeta, name: &str, path: &Path) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| MetaError::Storage(e.to_string()))?;
        for definition in replicated_tables() {
            txn.delete_table(definition)?;
            txn.open_table(definition)?;
        }
        {
            let mut reader = self.read_snapshot_file(path)?;
            let mut table = None;
            while let Some(frame) = reader.next_frame()? {
                self.snapshot_stop.check()?;
                match frame {
                    Frame::Table(name) => {
                        // Tables differ (the reader refuses one twice), so
                        // the previous handle may stay open meanwhile.
                        table = Some(txn.open_table(replicated_table(&name)?)?);
                    }
                    Frame::Row(key, value) => {
                        let table = table.as_mut().ok_or_else(|| {
                            MetaError::Corrupt("snapshot row before any table".into())
                        })?;
                        table.insert(key.as_slice(), value.as_slice())?;
                    }
                }
            }
        }
        {
            let mut sm_meta = txn.open_table(SM_META_TABLE)?;
            sm_meta.insert(KEY_LAST_APPLIED, encode(&meta.last_log_id)?.as_slice())?;
            sm_meta.insert(
                KEY_LAST_MEMBERSHIP,
                encode(&meta.last_membership)?.as_slice(),
            )?;
        }
        write_current_snapshot(&txn, meta, name)?;
        // Dropped without commit on any error above: nothing installed.
        txn.commit()?;
        Ok(())
    }

    fn current_snapshot_blocking(&self) -> Result<Option<Snapshot>> {
        let Some(current) = self.read_current_snapshot()? else {
            return Ok(None);
        };
        let path = self.snapshot_dir.join(&current.file);
        let file = self
            .io
            .open_file(&path)?
            .into_async(path)
            .map_err(|e| MetaError::Storage(format!("open snapshot: {e}")))?;
        Ok(Some(Snapshot {
            meta: current.meta,
            snapshot: Box::new(file),
        }))
    }

    /// Runs blocking redb work off the async threads (or inline, see
    /// [`StorageIo`]).
    async fn blocking<T, F>(
        &self,
        subject: ErrorSubject<u64>,
        verb: ErrorVerb,
        f: F,
    ) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(StateStore) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        match self.io.blocking(move || f(store)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) | Err(e) => Err(storage_error(subject, verb, e)),
        }
    }
}

/// Applies one proposal at `ctx`'s log position, or returns its
/// remembered result.
fn apply_proposal(
    ctx: &mut ApplyContext<'_>,
    requests: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    order: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    proposal: &Proposal,
) -> Result<CommandResult> {
    let at = order_key(ctx.log_index, u64::from(ctx.position));
    let key = request_key(proposal.request_id);
    if let Some(bytes) = requests.get(key.as_slice())? {
        let remembered: Remembered = decode(bytes.value(), "remembered result")?;
        return Ok(restore(remembered, &proposal.command));
    }
    let result = proposal.command.apply(ctx)?;
    let remembered = elide(&result, &proposal.command);
    requests.insert(key.as_slice(), encode(&remembered)?.as_slice())?;
    order.insert(at.as_slice(), key.as_slice())?;
    Ok(result)
}

/// What to remember of `result`: without the object data when it is the
/// proposal's own (a put returns the proposed version plus its generation).
fn elide(result: &CommandResult, command: &Command) -> Remembered {
    if let (Ok(Reply::PutObject(version)), Command::PutObject(put)) = (result, command)
        && version.data == put.version.data
    {
        let mut stored = version.clone();
        stored.data = crate::records::ObjectData::Inline(Vec::new());
        return Remembered {
            result: Ok(Reply::PutObject(stored)),
            data_elided: true,
        };
    }
    Remembered {
        result: result.clone(),
        data_elided: false,
    }
}

fn restore(remembered: Remembered, command: &Command) -> CommandResult {
    if !remembered.data_elided {
        return remembered.result;
    }
    match (remembered.result, command) {
        (Ok(Reply::PutObject(mut version)), Command::PutObject(put)) => {
            version.data = put.version.data.clone();
            Ok(Reply::PutObject(version))
        }
        _ => Err(MetaError::Corrupt(
            "request id reused for a different command".into(),
        )),
    }
}

/// The replicated table named `name` (a snapshot naming any other is
/// corrupt).
fn replicated_table(name: &str) -> Result<ReplicatedTable> {
    replicated_tables()
        .find(|t| t.name() == name)
        .ok_or_else(|| MetaError::Corrupt(format!("snapshot holds unknown table {name:?}")))
}

fn write_current_snapshot(txn: &WriteTransaction, meta: &SnapshotMeta, name: &str) -> Result<()> {
    let current = CurrentSnapshot {
        meta: meta.clone(),
        file: name.to_owned(),
    };
    txn.open_table(SNAPSHOT_FILE_TABLE)?
        .insert(KEY_CURRENT_SNAPSHOT, encode(&current)?.as_slice())?;
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for StateStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        self.blocking(ErrorSubject::Snapshot(None), ErrorVerb::Write, |store| {
            store.build_snapshot_blocking()
        })
        .await
    }
}

impl RaftStateMachine<TypeConfig> for StateStore {
    type SnapshotBuilder = StateStore;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.read_applied_state()
            .map_err(|e| storage_error(ErrorSubject::StateMachine, ErrorVerb::Read, e))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.blocking(ErrorSubject::StateMachine, ErrorVerb::Write, move |store| {
            store.apply_blocking(entries)
        })
        .await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<AsyncStorageFile>, StorageError> {
        self.blocking(ErrorSubject::Snapshot(None), ErrorVerb::Write, |store| {
            store.begin_receiving_blocking().map(Box::new)
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<AsyncStorageFile>,
    ) -> Result<(), StorageError> {
        let meta = meta.clone();
        let received = snapshot.path().to_owned();
        // openraft has shut the file down (flushed); the install reopens it.
        drop(snapshot);
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        self.blocking(subject, ErrorVerb::Write, move |store| {
            store.install_snapshot_blocking(meta, &received)
        })
        .await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        self.blocking(ErrorSubject::Snapshot(None), ErrorVerb::Read, |store| {
            store.current_snapshot_blocking()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Membership};
    use tempfile::TempDir;
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::io::SimDisk;

    type Dump = Vec<(String, Vec<(Vec<u8>, Vec<u8>)>)>;

    /// Every replicated table's rows, plus the applied state.
    fn dump(store: &StateStore) -> (Dump, Option<LogId>, StoredMembership) {
        let txn = store.db.begin_read().expect("read");
        let mut tables = Vec::new();
        for definition in replicated_tables() {
            let table = txn.open_table(definition).expect("table");
            let rows = table
                .iter()
                .expect("iter")
                .map(|row| {
                    let (k, v) = row.expect("row");
                    (k.value().to_vec(), v.value().to_vec())
                })
                .collect();
            tables.push((definition.name().to_owned(), rows));
        }
        let (applied, membership) = store.read_applied_state().expect("applied state");
        (tables, applied, membership)
    }

    /// Fills every replicated table with `rows` rows (keys and values
    /// derived from `seed`, some values large) and sets the applied state
    /// to `index`.
    fn fill(store: &StateStore, rows: u64, seed: u64, index: u64) {
        let txn = store.db.begin_write().expect("write");
        for (t, definition) in replicated_tables().enumerate() {
            let mut table = txn.open_table(definition).expect("table");
            for i in 0..rows {
                let key = format!("{seed}-{t}-{i:08}");
                let size = if i % 997 == 0 {
                    70_000
                } else {
                    (i % 50) as usize
                };
                let value = vec![(i % 251) as u8; size];
                table
                    .insert(key.as_bytes(), value.as_slice())
                    .expect("insert");
            }
        }
        let log_id = LogId {
            leader_id: CommittedLeaderId::new(3, 0),
            index,
        };
        let membership = StoredMembership::new(
            Some(log_id),
            Membership::new(vec![[1u64, 2].into_iter().collect()], None),
        );
        {
            let mut meta = txn.open_table(SM_META_TABLE).expect("meta");
            meta.insert(
                KEY_LAST_APPLIED,
                encode(&Some(log_id)).expect("enc").as_slice(),
            )
            .expect("insert");
            meta.insert(
                KEY_LAST_MEMBERSHIP,
                encode(&membership).expect("enc").as_slice(),
            )
            .expect("insert");
        }
        txn.commit().expect("commit");
    }

    /// Sends `snapshot` to `to` as openraft does: chunks written into the
    /// file `begin_receiving_snapshot` returns. Returns the received file's
    /// path.
    async fn transfer(snapshot: &mut Snapshot, to: &StateStore) -> PathBuf {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut received = to.begin_receiving_blocking().expect("begin receiving");
        let end = snapshot
            .snapshot
            .seek(std::io::SeekFrom::End(0))
            .await
            .expect("seek end");
        snapshot
            .snapshot
            .seek(std::io::SeekFrom::Start(0))
            .await
            .expect("seek start");
        let mut offset = 0u64;
        let mut chunk = vec![0u8; 64 * 1024];
        while offset < end {
            let n = snapshot.snapshot.read(&mut chunk).await.expect("read");
            assert!(n > 0, "snapshot shorter than its end");
            received
                .seek(std::io::SeekFrom::Start(offset))
                .await
                .expect("seek");
            received.write_all(&chunk[..n]).await.expect("write");
            offset += n as u64;
        }
        received.shutdown().await.expect("shutdown");
        received.path().to_owned()
    }

    fn open(dir: &Path, io: &StorageIo) -> StateStore {
        StateStore::open_on(&dir.join("state.redb"), false, io).expect("open state store")
    }

    fn files(store: &StateStore) -> Vec<String> {
        store.io.list_dir(&store.snapshot_dir).expect("list")
    }

    async fn build_install_and_compare(io: &StorageIo, leader_dir: &Path, follower_dir: &Path) {
        let leader = open(leader_dir, io);
        fill(&leader, 3_000, 1, 40);
        let mut snapshot = leader.build_snapshot_blocking().expect("build");
        assert_eq!(
            files(&leader).len(),
            1,
            "one snapshot file: {:?}",
            files(&leader)
        );

        let follower = open(follower_dir, io);
        fill(&follower, 10, 2, 7);
        let received = transfer(&mut snapshot, &follower).await;
        follower
            .install_snapshot_blocking(snapshot.meta.clone(), &received)
            .expect("install");
        assert_eq!(dump(&follower), dump(&leader), "every table equal");
        let current = follower
            .current_snapshot_blocking()
            .expect("current")
            .expect("a snapshot");
        assert_eq!(current.meta, snapshot.meta);
        assert_eq!(files(&follower).len(), 1, "{:?}", files(&follower));
    }

    #[tokio::test]
    async fn a_snapshot_of_many_rows_installs_equal_on_disk() {
        let dir = TempDir::new().expect("temp dir");
        build_install_and_compare(&StorageIo::Os, &dir.path().join("a"), &dir.path().join("b"))
            .await;
    }

    #[tokio::test]
    async fn a_snapshot_of_many_rows_installs_equal_on_a_simulated_disk() {
        let io = StorageIo::Simulated(SimDisk::new());
        build_install_and_compare(&io, Path::new("/sim/a"), Path::new("/sim/b")).await;
    }

    /// A leader of 500 rows a table with a snapshot of them, and a follower
    /// of 20 with a snapshot of its own, in `dir`.
    fn leader_and_follower(dir: &Path) -> (StateStore, Snapshot, StateStore, Snapshot) {
        let io = StorageIo::Os;
        let leader = open(&dir.join("a"), &io);
        fill(&leader, 500, 1, 40);
        let snapshot = leader.build_snapshot_blocking().expect("build");
        let follower = open(&dir.join("b"), &io);
        fill(&follower, 20, 2, 7);
        let own = follower.build_snapshot_blocking().expect("own snapshot");
        (leader, snapshot, follower, own)
    }

    #[tokio::test]
    async fn a_corrupt_or_truncated_snapshot_is_refused_and_changes_nothing() {
        let dir = TempDir::new().expect("temp dir");
        let (_leader, mut snapshot, follower, own) = leader_and_follower(dir.path());
        let before = dump(&follower);
        let files_before = files(&follower);

        type Damage = fn(&mut Vec<u8>);
        let damages: [(&str, Damage); 4] = [
            ("flip a byte in the middle", |b| {
                let at = b.len() / 2;
                b[at] ^= 0x10;
            }),
            ("flip a byte of the checksum", |b| {
                let at = b.len() - 1;
                b[at] ^= 0x01;
            }),
            ("truncate", |b| b.truncate(b.len() * 2 / 3)),
            ("drop the checksum", |b| b.truncate(b.len() - 4)),
        ];
        for (what, damage) in damages {
            let received = transfer(&mut snapshot, &follower).await;
            let mut bytes = std::fs::read(&received).expect("read");
            damage(&mut bytes);
            std::fs::write(&received, &bytes).expect("write");
            let result = follower.install_snapshot_blocking(snapshot.meta.clone(), &received);
            assert!(
                matches!(result, Err(MetaError::Corrupt(_))),
                "{what}: {result:?}"
            );
            assert_eq!(dump(&follower), before, "{what}: state untouched");
            assert_eq!(files(&follower), files_before, "{what}: files untouched");
            let current = follower
                .current_snapshot_blocking()
                .expect("current")
                .expect("a snapshot");
            assert_eq!(current.meta, own.meta, "{what}: current snapshot kept");
        }
        // Any snapshot file installs (copied first): here the follower's own.
        let current_path = follower.snapshot_dir.join(&files_before[0]);
        follower
            .install_snapshot_blocking(own.meta.clone(), &current_path)
            .expect("install a copy of the current file");
        assert_eq!(dump(&follower), before);
        assert_eq!(files(&follower).len(), 1, "{:?}", files(&follower));
    }

    #[tokio::test]
    async fn a_stopped_store_abandons_builds_and_installs_and_leaves_nothing() {
        let dir = TempDir::new().expect("temp dir");
        let (leader, mut snapshot, follower, own) = leader_and_follower(dir.path());
        let before = dump(&follower);
        let files_before = files(&follower);
        let received = transfer(&mut snapshot, &follower).await;

        // Clones share the stop, as openraft's builder (a clone) does.
        follower.clone().snapshot_stop().stop();
        let installed = follower.install_snapshot_blocking(snapshot.meta.clone(), &received);
        assert!(
            matches!(installed, Err(MetaError::ShuttingDown)),
            "{installed:?}"
        );
        let built = follower.build_snapshot_blocking();
        assert!(
            matches!(built, Err(MetaError::ShuttingDown)),
            "{:?}",
            built.err()
        );
        assert_eq!(dump(&follower), before, "state untouched");
        assert_eq!(files(&follower), files_before, "no file left behind");
        let current = follower
            .current_snapshot_blocking()
            .expect("current")
            .expect("a snapshot");
        assert_eq!(current.meta, own.meta, "current snapshot kept");
        // The leader, not stopped, still builds.
        leader.build_snapshot_blocking().expect("leader builds");
    }

    #[tokio::test]
    async fn the_current_snapshot_survives_reopening_and_leftovers_go() {
        let dir = TempDir::new().expect("temp dir");
        let io = StorageIo::Os;
        let (meta, bytes) = {
            let store = open(dir.path(), &io);
            fill(&store, 200, 1, 12);
            let first = store.build_snapshot_blocking().expect("build");
            fill(&store, 300, 2, 13);
            let second = store.build_snapshot_blocking().expect("build");
            assert_ne!(first.meta, second.meta);
            assert_eq!(files(&store).len(), 1, "the older file went");
            // Leftovers of an interrupted build and receive.
            std::fs::write(
                store
                    .snapshot_dir
                    .join(snapshot_file_name(90, BUILDING_SUFFIX)),
                b"x",
            )
            .expect("write");
            std::fs::write(
                store
                    .snapshot_dir
                    .join(snapshot_file_name(91, RECEIVING_SUFFIX)),
                b"x",
            )
            .expect("write");
            std::fs::write(
                store
                    .snapshot_dir
                    .join(snapshot_file_name(92, SNAPSHOT_SUFFIX)),
                b"x",
            )
            .expect("write");
            let name = files(&store)[0].clone();
            let bytes = std::fs::read(store.snapshot_dir.join(name)).expect("read");
            (second.meta, bytes)
        };
        let store = open(dir.path(), &io);
        let mut current = store
            .current_snapshot_blocking()
            .expect("current")
            .expect("a snapshot");
        assert_eq!(current.meta, meta);
        let mut read = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut current.snapshot, &mut read)
            .await
            .expect("read");
        assert_eq!(read, bytes);
        assert_eq!(files(&store).len(), 1, "{:?}", files(&store));
        // New files do not reuse the numbers seen.
        store.build_snapshot_blocking().expect("build");
        let name = &files(&store)[0];
        assert!(snapshot_sequence(name).expect("sequence") > 92, "{name}");
    }

    #[tokio::test]
    async fn the_current_snapshot_survives_a_crash_of_a_simulated_disk() {
        let disk = SimDisk::new();
        let io = StorageIo::Simulated(disk.clone());
        let dir = Path::new("/sim/node");
        let meta = {
            let store = open(dir, &io);
            fill(&store, 100, 1, 5);
            store.build_snapshot_blocking().expect("build").meta
        };
        disk.crash();
        let store = open(dir, &io);
        let mut current = store
            .current_snapshot_blocking()
            .expect("current")
            .expect("a snapshot");
        assert_eq!(current.meta, meta);
        let other = open(Path::new("/sim/other"), &io);
        let received = transfer(&mut current, &other).await;
        other
            .install_snapshot_blocking(meta, &received)
            .expect("the surviving file installs");
        assert_eq!(dump(&other), dump(&store));
    }

    #[tokio::test]
    async fn an_old_in_redb_snapshot_is_dropped_and_replaced_by_a_file() {
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().join("state.redb");
        {
            let store = open(dir.path(), &StorageIo::Os);
            fill(&store, 50, 1, 9);
            let txn = store.db.begin_write().expect("write");
            {
                let mut legacy = txn.open_table(LEGACY_SNAPSHOT_TABLE).expect("table");
                legacy
                    .insert(LEGACY_KEY_SNAPSHOT_META, b"old meta".as_slice())
                    .expect("insert");
                legacy
                    .insert("data", vec![7u8; 100_000].as_slice())
                    .expect("insert");
            }
            txn.commit().expect("commit");
        }
        let store = StateStore::open(&path, false).expect("reopen");
        let txn = store.db.begin_read().expect("read");
        assert!(
            txn.list_tables()
                .expect("tables")
                .all(|t| t.name() != LEGACY_SNAPSHOT_TABLE.name()),
            "the old blob is gone"
        );
        let current = store
            .current_snapshot_blocking()
            .expect("current")
            .expect("a snapshot built at open");
        let (_, applied, _) = dump(&store);
        assert_eq!(current.meta.last_log_id, applied);
        assert_eq!(files(&store).len(), 1);
    }
}
