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
//! Snapshots are a postcard blob holding every row of every replicated
//! table. The last one built or installed is persisted, so
//! `get_current_snapshot` returns it after a restart too.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
use super::types::{
    BatchResult, Entry, LogId, Proposal, RequestId, Snapshot, SnapshotMeta, StorageError,
    StoredMembership, TypeConfig, decode, encode, storage_error,
};
use crate::clock::{OsEntropy, SharedEntropy};
use crate::command::{Command, CommandResult, Reply};
use crate::error::{MetaError, Result};
use crate::io::StorageIo;
use crate::{command, schema};

/// A key and value of a replicated table, as snapshots carry them.
type Row = (Vec<u8>, Vec<u8>);

/// A replicated bytes -> bytes table (same shape as `schema::StateTable`).
type ReplicatedTable = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// `last_applied` and `last_membership` (postcard), by name.
const SM_META_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_sm_meta");
const KEY_LAST_APPLIED: &str = "last_applied";
const KEY_LAST_MEMBERSHIP: &str = "last_membership";
/// The current snapshot: its meta and its blob.
const SNAPSHOT_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_snapshot");
const KEY_SNAPSHOT_META: &str = "meta";
const KEY_SNAPSHOT_DATA: &str = "data";
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

/// Version of the snapshot blob layout.
/// 2: version keys gained the position in the entry (inode ‖ generation ‖ position).
const SNAPSHOT_FORMAT: u32 = 2;

/// A remembered proposal result.
#[derive(Serialize, Deserialize)]
struct Remembered {
    result: CommandResult,
    /// The reply's object `data` equalled the proposed version's and was
    /// dropped; a retry (same request id, hence same command) restores it
    /// from its own proposal.
    data_elided: bool,
}

#[derive(Serialize, Deserialize)]
struct SnapshotBlob {
    format: u32,
    tables: Vec<SnapshotTable>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotTable {
    name: String,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
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

/// The state machine store ([`RaftStateMachine`]); also its own snapshot
/// builder. Cheap to clone: clones share the database.
#[derive(Clone)]
pub struct StateStore {
    db: Arc<Database>,
    durable: bool,
    non_durable_commits: Arc<AtomicU64>,
    /// Draws the random part of snapshot ids.
    entropy: SharedEntropy,
    /// Where the blocking work (apply, snapshots) runs.
    io: StorageIo,
}

impl StateStore {
    /// Opens (or creates) the state database at `path`, creating every
    /// table (this store's and the namespace's) in one transaction.
    /// Blocking: call it from a blocking context at startup.
    pub fn open(path: &Path, durable: bool) -> Result<StateStore> {
        StateStore::open_on(path, durable, &StorageIo::Os)
    }

    /// [`StateStore::open`] on `io`.
    pub fn open_on(path: &Path, durable: bool, io: &StorageIo) -> Result<StateStore> {
        let db = Arc::new(io.create_database(path)?);
        let txn = db.begin_write()?;
        txn.open_table(SM_META_TABLE)?;
        txn.open_table(SNAPSHOT_TABLE)?;
        for table in DEDUP_TABLES {
            txn.open_table(table)?;
        }
        schema::create_state_tables(&txn)?;
        txn.commit()?;
        Ok(StateStore {
            db,
            durable,
            non_durable_commits: Arc::new(AtomicU64::new(0)),
            entropy: OsEntropy::shared(),
            io: io.clone(),
        })
    }

    /// Draws snapshot ids from `entropy` (a seeded one replays exactly).
    pub fn with_entropy(mut self, entropy: SharedEntropy) -> StateStore {
        self.entropy = entropy;
        self
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
                            let position = u32::try_from(position).map_err(|_| {
                                MetaError::Corrupt("a log entry of over 2^32 commands".into())
                            })?;
                            results.push(apply_proposal(
                                &txn,
                                &mut requests,
                                &mut order,
                                entry.log_id.index,
                                position,
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

    /// Dumps the replicated tables at one read point and persists the
    /// result as the current snapshot.
    fn build_snapshot_blocking(&self) -> Result<Snapshot> {
        let (meta, data) = {
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
            let tables = dump_tables(&txn)?;
            let data = encode(&SnapshotBlob {
                format: SNAPSHOT_FORMAT,
                tables,
            })?;
            let snapshot_id: SnapshotId = match last_log_id {
                Some(id) => format!(
                    "{}-{}-{:016x}",
                    id.leader_id.term,
                    id.index,
                    self.entropy.next_u64()
                ),
                None => format!("none-{:016x}", self.entropy.next_u64()),
            };
            (
                SnapshotMeta {
                    last_log_id,
                    last_membership,
                    snapshot_id,
                },
                data,
            )
        };
        let txn = self.begin_write()?;
        {
            let mut table = txn.open_table(SNAPSHOT_TABLE)?;
            table.insert(KEY_SNAPSHOT_META, encode(&meta)?.as_slice())?;
            table.insert(KEY_SNAPSHOT_DATA, data.as_slice())?;
        }
        txn.commit()?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }

    /// Replaces every replicated table with the snapshot's rows, sets the
    /// applied state from `meta` and keeps the snapshot as the current one,
    /// all in one transaction.
    fn install_snapshot_blocking(&self, meta: SnapshotMeta, data: Vec<u8>) -> Result<()> {
        let blob: SnapshotBlob = decode(&data, "snapshot")?;
        if blob.format != SNAPSHOT_FORMAT {
            return Err(MetaError::Corrupt(format!(
                "snapshot format {} (expected {SNAPSHOT_FORMAT})",
                blob.format
            )));
        }
        let known: HashMap<String, ReplicatedTable> = replicated_tables()
            .map(|t| (t.name().to_owned(), t))
            .collect();
        let mut rows_by_table: HashMap<String, Vec<Row>> = HashMap::new();
        for table in blob.tables {
            if !known.contains_key(&table.name) {
                return Err(MetaError::Corrupt(format!(
                    "snapshot holds unknown table {:?}",
                    table.name
                )));
            }
            if rows_by_table
                .insert(table.name.clone(), table.rows)
                .is_some()
            {
                return Err(MetaError::Corrupt(format!(
                    "snapshot holds table {:?} twice",
                    table.name
                )));
            }
        }
        let txn = self.begin_write()?;
        for (name, definition) in &known {
            txn.delete_table(*definition)?;
            let mut table = txn.open_table(*definition)?;
            for (key, value) in rows_by_table.remove(name).unwrap_or_default() {
                table.insert(key.as_slice(), value.as_slice())?;
            }
        }
        {
            let mut sm_meta = txn.open_table(SM_META_TABLE)?;
            sm_meta.insert(KEY_LAST_APPLIED, encode(&meta.last_log_id)?.as_slice())?;
            sm_meta.insert(
                KEY_LAST_MEMBERSHIP,
                encode(&meta.last_membership)?.as_slice(),
            )?;
            let mut snapshot = txn.open_table(SNAPSHOT_TABLE)?;
            snapshot.insert(KEY_SNAPSHOT_META, encode(&meta)?.as_slice())?;
            snapshot.insert(KEY_SNAPSHOT_DATA, data.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    fn current_snapshot_blocking(&self) -> Result<Option<Snapshot>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SNAPSHOT_TABLE)?;
        let Some(meta) = table.get(KEY_SNAPSHOT_META)? else {
            return Ok(None);
        };
        let meta: SnapshotMeta = decode(meta.value(), "snapshot meta")?;
        let data = match table.get(KEY_SNAPSHOT_DATA)? {
            Some(data) => data.value().to_vec(),
            None => return Err(MetaError::Corrupt("snapshot meta without data".into())),
        };
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
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

/// Applies one proposal, or returns its remembered result.
fn apply_proposal(
    txn: &WriteTransaction,
    requests: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    order: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    log_index: u64,
    position: u32,
    proposal: &Proposal,
) -> Result<CommandResult> {
    let at = order_key(log_index, u64::from(position));
    let key = request_key(proposal.request_id);
    if let Some(bytes) = requests.get(key.as_slice())? {
        let remembered: Remembered = decode(bytes.value(), "remembered result")?;
        return Ok(restore(remembered, &proposal.command));
    }
    let result = command::apply_command(txn, log_index, position, &proposal.command)?;
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

fn dump_tables(txn: &ReadTransaction) -> Result<Vec<SnapshotTable>> {
    let mut tables = Vec::new();
    for definition in replicated_tables() {
        let table = txn.open_table(definition)?;
        let mut rows = Vec::new();
        for row in table.iter()? {
            let (key, value) = row?;
            rows.push((key.value().to_vec(), value.value().to_vec()));
        }
        tables.push(SnapshotTable {
            name: definition.name().to_owned(),
            rows,
        });
    }
    Ok(tables)
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let meta = meta.clone();
        let data = snapshot.into_inner();
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        self.blocking(subject, ErrorVerb::Write, move |store| {
            store.install_snapshot_blocking(meta, data)
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
