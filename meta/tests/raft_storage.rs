//! The redb-backed Raft stores against openraft's storage test suite, plus
//! what the suite does not cover: applying our payloads, idempotent
//! retries, snapshots carrying namespace state, and restart.

use arbor_meta::command::{Command, Reply};
use arbor_meta::error::MetaError;
use arbor_meta::namespace::CreateBucket;
use arbor_meta::raft::types::{Entry, LogId, StorageError, TypeConfig};
use arbor_meta::raft::{LogStore, Proposal, RequestId, StateStore};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder};
use redb::ReadableDatabase;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateStore, TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateStore), StorageError> {
        let dir = TempDir::new().expect("temp dir");
        let (log, _writer) =
            LogStore::open(&dir.path().join("raft-log.redb"), false).expect("open log store");
        let sm = StateStore::open(&dir.path().join("state.redb"), false).expect("open state store");
        Ok((dir, log, sm))
    }
}

#[test]
#[expect(
    clippy::result_large_err,
    reason = "openraft's suite returns its own error type"
)]
fn openraft_storage_suite() -> Result<(), StorageError> {
    Suite::test_all(RedbBuilder)
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId {
        leader_id: CommittedLeaderId::new(term, 0),
        index,
    }
}

fn normal(index: u64, proposals: Vec<Proposal>) -> Entry {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(proposals),
    }
}

fn create_bucket(client: u64, seq: u64, name: &str) -> Proposal {
    Proposal {
        request_id: RequestId { client, seq },
        command: Command::CreateBucket(CreateBucket {
            name: name.to_owned(),
            created_ms: 1_700_000_000_000,
        }),
    }
}

fn open_state(dir: &TempDir) -> StateStore {
    StateStore::open(&dir.path().join("state.redb"), true).expect("open state store")
}

#[tokio::test]
async fn apply_batches_and_retries_apply_once() {
    let dir = TempDir::new().expect("temp dir");
    let mut sm = open_state(&dir);

    // One entry carrying two proposals: both applied, results in order.
    let first = create_bucket(7, 1, "bucket-a");
    let replies = sm
        .apply([normal(
            1,
            vec![first.clone(), create_bucket(7, 2, "bucket-a")],
        )])
        .await
        .expect("apply");
    assert_eq!(replies.len(), 1);
    assert!(matches!(replies[0][0], Ok(Reply::CreateBucket(ref b)) if b.name == "bucket-a"));
    assert_eq!(
        replies[0][1],
        Err(MetaError::BucketAlreadyExists("bucket-a".into()))
    );

    // The same request id again (a client retry): the remembered result,
    // not BucketAlreadyExists.
    let replies = sm
        .apply([normal(2, vec![first.clone()])])
        .await
        .expect("apply retry");
    assert_eq!(replies[0][0], replies_first_ok(&first));
    let (applied, _) = sm.applied_state().await.expect("applied state");
    assert_eq!(applied, Some(log_id(1, 2)));

    // Still remembered after a restart.
    drop(sm);
    let mut sm = open_state(&dir);
    let replies = sm
        .apply([normal(3, vec![first.clone()])])
        .await
        .expect("apply after restart");
    assert_eq!(replies[0][0], replies_first_ok(&first));
}

fn replies_first_ok(p: &Proposal) -> arbor_meta::command::CommandResult {
    match &p.command {
        Command::CreateBucket(CreateBucket { name, created_ms }) => {
            Ok(Reply::CreateBucket(arbor_meta::BucketInfo {
                overwrite: arbor_meta::OverwritePolicy::Allow,
                name: name.clone(),
                created_ms: *created_ms,
            }))
        }
        _ => unreachable!("test builds CreateBucket only"),
    }
}

#[tokio::test]
async fn snapshot_carries_namespace_and_request_ids() {
    let leader_dir = TempDir::new().expect("temp dir");
    let mut leader = open_state(&leader_dir);
    let proposal = create_bucket(9, 1, "snap-bucket");
    leader
        .apply([normal(1, vec![proposal.clone()])])
        .await
        .expect("apply");
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build snapshot");

    let follower_dir = TempDir::new().expect("temp dir");
    let mut follower = open_state(&follower_dir);
    // Something the snapshot must replace.
    follower
        .apply([normal(1, vec![create_bucket(3, 1, "stale-bucket")])])
        .await
        .expect("apply");
    // As openraft receives it: chunks written into the file the follower
    // hands out, then shut down.
    let mut received = follower
        .begin_receiving_snapshot()
        .await
        .expect("begin receiving");
    let mut source = snapshot.snapshot;
    let mut chunk = vec![0u8; 100];
    let mut chunks = 0;
    loop {
        let n = source.read(&mut chunk).await.expect("read snapshot");
        if n == 0 {
            break;
        }
        received.write_all(&chunk[..n]).await.expect("write chunk");
        chunks += 1;
    }
    assert!(chunks > 1, "the snapshot travelled in several chunks");
    received.shutdown().await.expect("shutdown");
    let received_path = received.path().to_owned();
    follower
        .install_snapshot(&snapshot.meta, received)
        .await
        .expect("install snapshot");
    assert!(
        !received_path.exists(),
        "the received file became the current one"
    );
    let snapshot_files: Vec<_> = std::fs::read_dir(follower.snapshot_dir())
        .expect("snapshot dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(snapshot_files.len(), 1, "{snapshot_files:?}");

    let buckets = {
        let txn = follower.database().begin_read().expect("read txn");
        arbor_meta::namespace::list_buckets(&txn).expect("list buckets")
    };
    let names: Vec<_> = buckets.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["snap-bucket"]);
    // The request id came along: a retry on the follower is not re-applied.
    let replies = follower
        .apply([normal(2, vec![proposal.clone()])])
        .await
        .expect("apply retry");
    assert_eq!(replies[0][0], replies_first_ok(&proposal));
    let current = follower
        .get_current_snapshot()
        .await
        .expect("current snapshot")
        .expect("a snapshot");
    assert_eq!(current.meta, snapshot.meta);
}

#[tokio::test]
async fn log_survives_restart_after_truncate_and_purge() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("raft-log.redb");
    {
        let (mut log, mut writer) = LogStore::open(&path, true).expect("open log");
        for i in 0..5 {
            append(
                &mut log,
                vec![normal(i, vec![create_bucket(1, i, "b-bucket")])],
            )
            .await;
        }
        log.truncate(log_id(1, 3)).await.expect("truncate");
        log.purge(log_id(1, 0)).await.expect("purge");
        drop(log);
        writer.stop().await;
    }
    let (mut log, mut writer) = LogStore::open(&path, true).expect("reopen log");
    let state = log.get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 0)));
    assert_eq!(state.last_log_id, Some(log_id(1, 2)));
    let entries = log.try_get_log_entries(0..10).await.expect("read");
    let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
    assert_eq!(indexes, [1, 2]);
    drop(log);
    writer.stop().await;
}

/// Appends and waits for the flush, as openraft 0.9's core does.
async fn append(log: &mut LogStore, entries: Vec<Entry>) {
    log.blocking_append(entries).await.expect("append");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_entries_are_readable_before_their_commit() {
    let dir = TempDir::new().expect("temp dir");
    let (mut log, mut writer) =
        LogStore::open(&dir.path().join("raft-log.redb"), true).expect("open log");
    let mut reader = log.get_log_reader().await;
    let db = log.database().clone();
    // Hold redb's single writer lock: the writer thread cannot commit.
    let blocker = tokio::task::spawn_blocking(move || db.begin_write().expect("begin write"))
        .await
        .expect("blocker");
    let append = tokio::spawn(async move {
        append(
            &mut log,
            (0..3)
                .map(|i| normal(i, vec![create_bucket(1, i, "p-bucket")]))
                .collect(),
        )
        .await;
        log
    });
    let mut seen = Vec::new();
    for _ in 0..500 {
        seen = reader
            .try_get_log_entries(0..3)
            .await
            .expect("read pending");
        if seen.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(
        seen.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(
        !append.is_finished(),
        "the append cannot have been flushed yet"
    );

    drop(blocker);
    let mut log = append.await.expect("append task");
    let state = log.get_log_state().await.expect("log state");
    assert_eq!(state.last_log_id, Some(log_id(1, 2)));
    assert_eq!(
        reader
            .try_get_log_entries(..)
            .await
            .expect("read committed")
            .len(),
        3
    );
    drop((log, reader));
    writer.stop().await;
}
