//! A one-node `MetaNode` on a temp dir: CRUD through `MetaClient`, restart,
//! group commit under concurrency, idempotent retries, shutdown.

use std::sync::Arc;
use std::time::Instant;

use arbor_meta::command::{Command, Reply};
use arbor_meta::namespace::PutObject;
use arbor_meta::raft::Proposal;
use arbor_meta::records::{
    ChunkOwnership, ListEntry, ListRequest, ObjectData, ObjectHeaders, ObjectVersion,
    WriteCondition,
};
use arbor_meta::{MetaConfig, MetaError, MetaNode};
use tempfile::TempDir;

const BUCKET: &str = "photos";

async fn open(dir: &TempDir, durable: bool) -> Arc<MetaNode> {
    let config = MetaConfig {
        durable,
        ..MetaConfig::new(dir.path().join("meta"), 1)
    };
    MetaNode::open_single(config).await.expect("open meta node")
}

fn inline(body: &[u8]) -> ObjectVersion {
    ObjectVersion {
        generation: 0,
        size: body.len() as u64,
        etag: format!("etag-{}", body.len()),
        last_modified_ms: 1_700_000_000_000,
        headers: ObjectHeaders::default(),
        user_metadata: Vec::new(),
        checksum: None,
        storage_class: None,
        parts: Vec::new(),
        tags: Vec::new(),
        acl: Default::default(),
        data: ObjectData::Inline(body.to_vec()),
        stamp: Default::default(),
    }
}

fn list_all() -> ListRequest {
    ListRequest {
        prefix: String::new(),
        delimiter: None,
        start_after: None,
        max_keys: 1000,
    }
}

fn keys_of(entries: &[ListEntry]) -> Vec<String> {
    entries.iter().map(|e| e.name().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_survives_restart() {
    let dir = TempDir::new().expect("temp dir");
    let started = Instant::now();
    let node = open(&dir, true).await;
    eprintln!("fresh open: {:?}", started.elapsed());
    let client = node.client();

    let bucket = client
        .create_bucket(BUCKET, 42)
        .await
        .expect("create bucket");
    assert_eq!(bucket.name, BUCKET);
    assert_eq!(
        client.create_bucket(BUCKET, 43).await,
        Err(MetaError::BucketAlreadyExists(BUCKET.into()))
    );
    assert!(matches!(
        client.create_bucket("Not_A_Bucket", 1).await,
        Err(MetaError::InvalidBucketName(_))
    ));
    assert_eq!(
        client.head_bucket(BUCKET).await.expect("head bucket"),
        bucket
    );
    assert_eq!(
        client.list_buckets().await.expect("list buckets"),
        vec![bucket.clone()]
    );

    let keys = ["a", "a/b", "a/c/d", "b", "dir/"];
    let mut versions = Vec::new();
    for key in keys {
        let v = client
            .put_object(
                BUCKET,
                key,
                inline(key.as_bytes()),
                WriteCondition::None,
                Vec::new(),
            )
            .await
            .expect("put");
        assert!(v.generation > 0);
        assert_eq!(v.data, ObjectData::Inline(key.as_bytes().to_vec()));
        versions.push(v);
    }
    // Generations follow commit order.
    assert!(
        versions
            .windows(2)
            .all(|w| w[0].generation < w[1].generation)
    );
    assert_eq!(
        client.get_object(BUCKET, "a/b").await.expect("get"),
        versions[1]
    );

    let page = client
        .list_objects(BUCKET, &list_all())
        .await
        .expect("list");
    assert_eq!(keys_of(&page.entries), keys);
    assert!(!page.is_truncated);

    assert!(client.delete_object(BUCKET, "b").await.expect("delete"));
    assert!(
        !client
            .delete_object(BUCKET, "b")
            .await
            .expect("delete again")
    );
    assert_eq!(
        client.get_object(BUCKET, "b").await,
        Err(MetaError::NoSuchKey("b".into()))
    );
    assert_eq!(
        client.delete_bucket(BUCKET).await,
        Err(MetaError::BucketNotEmpty(BUCKET.into()))
    );

    node.shutdown().await.expect("shutdown");
    node.shutdown().await.expect("second shutdown is a no-op");
    assert_eq!(
        client.get_object(BUCKET, "a").await,
        Err(MetaError::ShuttingDown)
    );
    assert_eq!(
        client.delete_object(BUCKET, "a").await,
        Err(MetaError::ShuttingDown)
    );

    let started = Instant::now();
    let node = open(&dir, true).await;
    eprintln!("restart: {:?}", started.elapsed());
    let client = node.client();
    assert_eq!(
        client
            .head_bucket(BUCKET)
            .await
            .expect("head after restart"),
        bucket
    );
    for (key, version) in keys.iter().zip(&versions) {
        if *key == "b" {
            continue;
        }
        assert_eq!(
            &client
                .get_object(BUCKET, key)
                .await
                .expect("get after restart"),
            version,
            "{key}"
        );
    }
    assert_eq!(
        client.get_object(BUCKET, "b").await,
        Err(MetaError::NoSuchKey("b".into()))
    );
    let page = client
        .list_objects(BUCKET, &list_all())
        .await
        .expect("list after restart");
    assert_eq!(keys_of(&page.entries), ["a", "a/b", "a/c/d", "dir/"]);

    // New writes continue after the old generations.
    let last = versions
        .iter()
        .map(|v| v.generation)
        .max()
        .expect("some versions");
    let v = client
        .put_object(
            BUCKET,
            "a",
            inline(b"new"),
            WriteCondition::None,
            Vec::new(),
        )
        .await
        .expect("put after restart");
    assert!(v.generation > last);

    for key in ["a", "a/b", "a/c/d", "dir/"] {
        assert!(client.delete_object(BUCKET, key).await.expect("delete"));
    }
    client.delete_bucket(BUCKET).await.expect("delete bucket");
    assert_eq!(
        client.head_bucket(BUCKET).await,
        Err(MetaError::NoSuchBucket(BUCKET.into()))
    );
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_are_group_committed() {
    const TASKS: usize = 64;
    const PUTS_PER_TASK: usize = 8;
    let dir = TempDir::new().expect("temp dir");
    let node = open(&dir, true).await;
    let client = node.client();
    client
        .create_bucket(BUCKET, 1)
        .await
        .expect("create bucket");
    let log_before = node.raft_metrics().last_log_index.expect("log index");

    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut generations = Vec::new();
            for i in 0..PUTS_PER_TASK {
                let key = format!("t{t:02}/k{i}");
                let v = client
                    .put_object(
                        BUCKET,
                        &key,
                        inline(key.as_bytes()),
                        WriteCondition::None,
                        Vec::new(),
                    )
                    .await;
                generations.push(v.expect("concurrent put").generation);
            }
            generations
        }));
    }
    let mut generations = Vec::new();
    for task in tasks {
        generations.extend(task.await.expect("put task"));
    }
    let elapsed = started.elapsed();
    let puts = TASKS * PUTS_PER_TASK;
    let entries = node.raft_metrics().last_log_index.expect("log index") - log_before;
    eprintln!("{puts} puts in {elapsed:?}: {entries} log entries");
    assert_eq!(generations.len(), puts);
    assert!(
        (entries as usize) * 4 <= puts,
        "group commit: {entries} log entries for {puts} puts"
    );
    let page = client
        .list_objects(BUCKET, &list_all())
        .await
        .expect("list");
    assert_eq!(page.entries.len(), puts);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_proposal_applies_once() {
    let dir = TempDir::new().expect("temp dir");
    let node = open(&dir, false).await;
    let client = node.client();
    client
        .create_bucket(BUCKET, 1)
        .await
        .expect("create bucket");

    let command = Command::PutObject(PutObject {
        lock: None,
        bucket: BUCKET.into(),
        key: "k".into(),
        version: inline(b"once"),
        condition: WriteCondition::IfNoneMatchAny,
        ownership: ChunkOwnership::Fresh,
        placements: Vec::new(),
    });
    let proposal = Proposal {
        request_id: client.next_request_id(),
        command: command.clone(),
    };
    let first = match client.propose(proposal.clone()).await {
        Ok(Reply::PutObject(v)) => v,
        other => panic!("first put: {other:?}"),
    };
    // A retry with the same request id: the same version, not
    // PreconditionFailed (If-None-Match) and not a new generation.
    assert_eq!(
        client.propose(proposal.clone()).await,
        Ok(Reply::PutObject(first.clone()))
    );
    // The same command under a new id is a new proposal.
    let fresh = Proposal {
        request_id: client.next_request_id(),
        command,
    };
    assert_eq!(
        client.propose(fresh).await,
        Err(MetaError::PreconditionFailed)
    );
    assert_eq!(client.get_object(BUCKET, "k").await.expect("get"), first);

    // Remembered across a restart too.
    node.shutdown().await.expect("shutdown");
    let node = open(&dir, false).await;
    let retry_client = node.client();
    assert_eq!(
        retry_client.propose(proposal).await,
        Ok(Reply::PutObject(first))
    );
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_purged_log_survive_restart() {
    let dir = TempDir::new().expect("temp dir");
    let node = open(&dir, false).await;
    let client = node.client();
    client
        .create_bucket(BUCKET, 1)
        .await
        .expect("create bucket");
    let mut versions = Vec::new();
    for i in 0..20 {
        let key = format!("k{i:02}");
        versions.push(
            client
                .put_object(
                    BUCKET,
                    &key,
                    inline(key.as_bytes()),
                    WriteCondition::None,
                    Vec::new(),
                )
                .await
                .expect("put"),
        );
    }
    let raft = node.raft();
    raft.trigger().snapshot().await.expect("trigger snapshot");
    let applied = node.raft_metrics().last_applied.expect("applied").index;
    raft.wait(Some(std::time::Duration::from_secs(10)))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= applied),
            "snapshot built",
        )
        .await
        .expect("snapshot");
    raft.trigger()
        .purge_log(applied)
        .await
        .expect("trigger purge");
    raft.wait(Some(std::time::Duration::from_secs(10)))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index >= applied),
            "log purged",
        )
        .await
        .expect("purge");
    node.shutdown().await.expect("shutdown");
    let snapshot_files = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("meta/snapshots"))
            .expect("snapshot dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        names.sort();
        names
    };
    let before = snapshot_files();
    assert_eq!(before.len(), 1, "one snapshot file: {before:?}");
    assert!(before[0].ends_with(".snap"), "{before:?}");

    let node = open(&dir, false).await;
    let snapshot = node
        .raft_metrics()
        .snapshot
        .expect("the snapshot is current after the restart");
    assert!(snapshot.index >= applied);
    assert_eq!(snapshot_files(), before, "the same file, kept");
    let client = node.client();
    for (i, version) in versions.iter().enumerate() {
        assert_eq!(
            &client
                .get_object(BUCKET, &format!("k{i:02}"))
                .await
                .expect("get"),
            version
        );
    }
    let v = client
        .put_object(
            BUCKET,
            "after",
            inline(b"x"),
            WriteCondition::None,
            Vec::new(),
        )
        .await
        .expect("put after purge");
    assert!(v.generation > applied);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn delete_objects_reports_each_key_in_one_command() {
    let dir = TempDir::new().expect("tempdir");
    let node = open(&dir, false).await;
    let meta = node.client();
    meta.create_bucket("many", 1).await.expect("bucket");
    for key in ["a", "b/c", "b/d"] {
        meta.put_object(
            "many",
            key,
            inline(key.as_bytes()),
            WriteCondition::None,
            Vec::new(),
        )
        .await
        .expect("put");
    }
    let before = node.raft_metrics().last_log_index;
    let long = "k".repeat(1025);
    let keys: Vec<String> = ["a", "b/c", "missing", "", long.as_str()]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    let outcomes = meta
        .delete_objects("many", keys)
        .await
        .expect("delete objects");
    assert_eq!(outcomes[..3], [Ok(true), Ok(true), Ok(false)]);
    assert!(
        matches!(outcomes[3], Err(MetaError::InvalidKey(_))),
        "an empty key is refused on its own"
    );
    assert_eq!(outcomes[4], Err(MetaError::KeyTooLong));
    assert_eq!(
        node.raft_metrics().last_log_index,
        before.map(|i| i + 1),
        "one log entry"
    );
    let page = meta.list_objects("many", &list_all()).await.expect("list");
    assert_eq!(keys_of(&page.entries), ["b/d"]);
    assert_eq!(
        meta.delete_objects("nobucket", vec!["a".into()]).await,
        Err(MetaError::NoSuchBucket("nobucket".into()))
    );
    node.shutdown().await.expect("shutdown");
}
