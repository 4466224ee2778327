//! Three (or four) meta nodes over loopback HTTP, each on an ephemeral port
//! with its own temp dir: replication, leader loss, restart, catch-up by
//! snapshot, isolation, and the remote client across a leader change.
//! Every wait is bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor_meta::records::WriteCondition;
use arbor_meta::records::{ObjectData, ObjectHeaders, ObjectVersion};
use arbor_meta::{MetaClient, MetaConfig, MetaError, MetaNode, RemoteConfig};
use openraft::ServerState;
use tempfile::TempDir;

const BUCKET: &str = "cluster";
/// Bound on electing a leader (a new one took 1.3–1.6 s after a kill;
/// docs/design.md, openraft on redb).
const ELECTION_WAIT: Duration = Duration::from_secs(10);
/// Bound on a node catching up or rejoining.
const CATCH_UP_WAIT: Duration = Duration::from_secs(15);

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

fn remote_config() -> RemoteConfig {
    RemoteConfig {
        call_timeout: Duration::from_secs(15),
        attempt_timeout: Duration::from_secs(2),
        ..RemoteConfig::default()
    }
}

struct Cluster {
    dirs: Vec<TempDir>,
    addrs: Vec<SocketAddr>,
    /// `None` once killed.
    nodes: Vec<Option<Arc<MetaNode>>>,
}

fn config(dir: &TempDir, id: u64, listen: SocketAddr, bootstrap: bool) -> MetaConfig {
    MetaConfig::new(dir.path().join("meta"), id)
        .with_listen_addr(listen)
        .with_bootstrap(bootstrap)
        .with_durable(false)
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

impl Cluster {
    /// Node 1 bootstraps; the others join as learners and are promoted.
    async fn start(size: u64) -> Cluster {
        let mut cluster = Cluster {
            dirs: Vec::new(),
            addrs: Vec::new(),
            nodes: Vec::new(),
        };
        for id in 1..=size {
            let dir = TempDir::new().expect("temp dir");
            let node = MetaNode::open(config(&dir, id, any_port(), id == 1))
                .await
                .expect("open node");
            cluster.addrs.push(node.local_addr().expect("listening"));
            cluster.dirs.push(dir);
            cluster.nodes.push(Some(node));
        }
        let first = cluster.node(0);
        for i in 1..cluster.nodes.len() {
            let id = cluster.node(i).node_id();
            first
                .add_learner(id, cluster.addrs[i].to_string())
                .await
                .expect("add learner");
        }
        first
            .change_membership((1..=size).collect())
            .await
            .expect("promote voters");
        cluster
    }

    fn node(&self, i: usize) -> &Arc<MetaNode> {
        self.nodes[i].as_ref().expect("node is running")
    }

    fn addr_strings(&self, except: Option<usize>) -> Vec<String> {
        (0..self.addrs.len())
            .filter(|i| Some(*i) != except)
            .map(|i| self.addrs[i].to_string())
            .collect()
    }

    /// Waits until one of the running nodes in `among` leads and every
    /// other of them follows it; returns its index.
    async fn leader(&self, among: &[usize]) -> usize {
        let deadline = Instant::now() + ELECTION_WAIT;
        loop {
            let live: Vec<usize> = among
                .iter()
                .copied()
                .filter(|i| self.nodes[*i].is_some())
                .collect();
            let leaders: Vec<usize> = live
                .iter()
                .copied()
                .filter(|i| self.node(*i).raft_metrics().state == ServerState::Leader)
                .collect();
            if let [leader] = leaders[..] {
                let id = self.node(leader).node_id();
                if live
                    .iter()
                    .all(|i| self.node(*i).raft_metrics().current_leader == Some(id))
                {
                    return leader;
                }
            }
            assert!(Instant::now() < deadline, "no leader among {among:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_applied(&self, i: usize, index: u64) {
        self.node(i)
            .raft()
            .wait(Some(CATCH_UP_WAIT))
            .applied_index_at_least(Some(index), "caught up")
            .await
            .unwrap_or_else(|e| panic!("node {} did not apply {index}: {e}", i + 1));
    }

    async fn kill(&mut self, i: usize) {
        let node = self.nodes[i].take().expect("running");
        node.shutdown().await.expect("shutdown");
    }

    async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_some() {
                self.kill(i).await;
            }
        }
    }
}

fn last_applied(node: &MetaNode) -> u64 {
    node.raft_metrics()
        .last_applied
        .map(|l| l.index)
        .expect("applied")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_replicate_to_every_node() {
    let started = Instant::now();
    let cluster = Cluster::start(3).await;
    eprintln!("3-node cluster up in {:?}", started.elapsed());
    let leader = cluster.leader(&[0, 1, 2]).await;
    let client = MetaClient::remote_with(cluster.addr_strings(None), remote_config());
    client
        .create_bucket(BUCKET, 1)
        .await
        .expect("create bucket");
    let mut written = Vec::new();
    for i in 0..20 {
        let key = format!("dir/k{i:02}");
        let v = client
            .put_object(
                BUCKET,
                &key,
                inline(key.as_bytes()),
                WriteCondition::None,
                Vec::new(),
            )
            .await
            .expect("put");
        written.push((key, v));
    }
    // A follower's in-process client redirects nobody: it says NotLeader
    // and names the leader.
    let follower = (leader + 1) % 3;
    assert_eq!(
        cluster
            .node(follower)
            .client()
            .get_object(BUCKET, "dir/k00")
            .await,
        Err(MetaError::NotLeader {
            leader: Some(cluster.addrs[leader].to_string())
        })
    );
    let target = written.last().expect("writes").1.generation;
    for i in 0..3 {
        cluster.wait_applied(i, target).await;
        for (key, version) in &written {
            assert_eq!(
                &cluster
                    .node(i)
                    .read_local_object(BUCKET, key)
                    .await
                    .expect("replicated"),
                version
            );
        }
    }
    let status = client.status().await.expect("status");
    assert_eq!(status.voters.len(), 3);
    assert_eq!(status.state, "Leader");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_keeps_acknowledged_writes_and_remote_client_follows() {
    let mut cluster = Cluster::start(3).await;
    let old = cluster.leader(&[0, 1, 2]).await;
    let client = MetaClient::remote_with(cluster.addr_strings(None), remote_config());
    client
        .create_bucket(BUCKET, 1)
        .await
        .expect("create bucket");

    // A writer runs across the kill. If-None-Match makes a write applied
    // twice visible: its second apply would be PreconditionFailed.
    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..60 {
                let key = format!("w{i:03}");
                let v = client
                    .put_object(
                        BUCKET,
                        &key,
                        inline(key.as_bytes()),
                        WriteCondition::IfNoneMatchAny,
                        Vec::new(),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("put {key}: {e}"));
                acknowledged.push((key, v));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = Instant::now();
    cluster.kill(old).await;
    let rest: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new = cluster.leader(&rest).await;
    eprintln!("new leader after {:?}", killed_at.elapsed());
    let direct = MetaClient::remote_with(vec![cluster.addrs[new].to_string()], remote_config());
    let v = direct
        .put_object(
            BUCKET,
            "after-kill",
            inline(b"x"),
            WriteCondition::None,
            Vec::new(),
        )
        .await
        .expect("write on the new leader");
    assert!(
        killed_at.elapsed() < Duration::from_secs(8),
        "write served {:?} after the kill",
        killed_at.elapsed()
    );
    assert!(v.generation > 0);

    let acknowledged = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("writer finishes")
        .expect("writer task");
    assert_eq!(acknowledged.len(), 60);
    for (key, version) in &acknowledged {
        assert_eq!(
            &client
                .get_object(BUCKET, key)
                .await
                .expect("acknowledged write"),
            version,
            "{key}"
        );
    }
    let page = client
        .list_objects(
            BUCKET,
            &arbor_meta::records::ListRequest {
                max_keys: 1000,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(page.entries.len(), 61);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_follower_catches_up_and_late_node_gets_a_snapshot() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader(&[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    let client = MetaClient::remote_with(cluster.addr_strings(Some(follower)), remote_config());
    client
        .create_bucket(BUCKET, 1)
        .await
        .expect("create bucket");
    client
        .put_object(
            BUCKET,
            "before",
            inline(b"b"),
            WriteCondition::None,
            Vec::new(),
        )
        .await
        .expect("put");

    // A follower stops; the group goes on with two of three.
    cluster.kill(follower).await;
    let mut last = None;
    for i in 0..30 {
        let key = format!("while-down/{i:02}");
        last = Some(
            client
                .put_object(
                    BUCKET,
                    &key,
                    inline(key.as_bytes()),
                    WriteCondition::None,
                    Vec::new(),
                )
                .await
                .expect("put while a follower is down"),
        );
    }
    let last = last.expect("writes");

    // It restarts from its redb files, on its old address, and catches up.
    let restarted = MetaNode::open(config(
        &cluster.dirs[follower],
        (follower + 1) as u64,
        cluster.addrs[follower],
        false,
    ))
    .await
    .expect("reopen follower");
    cluster.nodes[follower] = Some(restarted);
    cluster.wait_applied(follower, last.generation).await;
    assert_eq!(
        cluster
            .node(follower)
            .read_local_object(BUCKET, "while-down/29")
            .await
            .expect("caught up"),
        last
    );

    // Snapshot and purge the log on the leader, so a new node can only be
    // brought up by the snapshot.
    let leader_node = cluster.node(leader).clone();
    let applied = last_applied(&leader_node);
    leader_node
        .raft()
        .trigger()
        .snapshot()
        .await
        .expect("snapshot");
    leader_node
        .raft()
        .wait(Some(CATCH_UP_WAIT))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= applied),
            "snapshot",
        )
        .await
        .expect("snapshot built");
    leader_node
        .raft()
        .trigger()
        .purge_log(applied)
        .await
        .expect("purge");
    leader_node
        .raft()
        .wait(Some(CATCH_UP_WAIT))
        .metrics(|m| m.purged.is_some_and(|p| p.index >= applied), "purged")
        .await
        .expect("log purged");

    let dir = TempDir::new().expect("temp dir");
    let late = MetaNode::open(config(&dir, 4, any_port(), false))
        .await
        .expect("open late node");
    let late_addr = late.local_addr().expect("listening");
    client
        .add_learner(4, &late_addr.to_string())
        .await
        .expect("add learner 4");
    late.raft()
        .wait(Some(CATCH_UP_WAIT))
        .applied_index_at_least(Some(applied), "late node caught up")
        .await
        .expect("late node applied");
    let snapshot = late.raft_metrics().snapshot.expect("installed a snapshot");
    assert!(snapshot.index >= applied);
    // The received file became the late node's current snapshot file.
    let files: Vec<String> = std::fs::read_dir(dir.path().join("meta/snapshots"))
        .expect("snapshot dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|name| name.ends_with(".snap"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        late.read_local_object(BUCKET, "while-down/29")
            .await
            .expect("from the snapshot"),
        last
    );
    // Writes after the snapshot reach it by log.
    let after = client
        .put_object(
            BUCKET,
            "after-snapshot",
            inline(b"a"),
            WriteCondition::None,
            Vec::new(),
        )
        .await
        .expect("put");
    late.raft()
        .wait(Some(CATCH_UP_WAIT))
        .applied_index_at_least(Some(after.generation), "late node follows")
        .await
        .expect("late node applied new write");
    client.remove_node(4).await.expect("remove learner");
    late.shutdown().await.expect("shutdown late node");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isolated_leader_serves_nothing_then_rejoins() {
    let cluster = Cluster::start(3).await;
    let old = cluster.leader(&[0, 1, 2]).await;
    let client = MetaClient::remote_with(cluster.addr_strings(Some(old)), remote_config());
    client
        .create_bucket(BUCKET, 1)
        .await
        .expect("create bucket");

    let isolated = cluster.node(old).clone();
    let started = Instant::now();
    isolated.set_isolated(true);
    let local = isolated.client();
    // Reads need a quorum's confirmation: refused at once.
    let read = tokio::time::timeout(Duration::from_secs(5), local.head_bucket(BUCKET))
        .await
        .expect("read answers in time");
    assert!(
        matches!(read, Err(MetaError::Unavailable(_))),
        "isolated read: {read:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "refused at once"
    );
    // Writes cannot commit: no success within the bound.
    let write = tokio::time::timeout(
        Duration::from_millis(1500),
        local.put_object(
            BUCKET,
            "lost",
            inline(b"l"),
            WriteCondition::None,
            Vec::new(),
        ),
    )
    .await;
    assert!(
        !matches!(write, Ok(Ok(_))),
        "isolated write succeeded: {write:?}"
    );

    eprintln!("isolated read and write refused: {:?}", started.elapsed());
    // The other two elect a leader and serve writes.
    let rest: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new = cluster.leader(&rest).await;
    let v = client
        .put_object(
            BUCKET,
            "majority",
            inline(b"m"),
            WriteCondition::None,
            Vec::new(),
        )
        .await
        .expect("write on the majority side");

    eprintln!("majority write: {:?}", started.elapsed());
    // Heal: the old leader steps down, drops its uncommitted write and
    // catches up.
    isolated.set_isolated(false);
    let new_id = cluster.node(new).node_id();
    isolated
        .raft()
        .wait(Some(CATCH_UP_WAIT))
        .metrics(
            |m| m.current_leader == Some(new_id) && m.state == ServerState::Follower,
            "old leader follows",
        )
        .await
        .expect("old leader rejoined");
    eprintln!("old leader follows: {:?}", started.elapsed());
    cluster.wait_applied(old, v.generation).await;
    assert_eq!(
        isolated
            .read_local_object(BUCKET, "majority")
            .await
            .expect("replicated after heal"),
        v
    );
    assert_eq!(
        client.get_object(BUCKET, "lost").await,
        Err(MetaError::NoSuchKey("lost".into()))
    );
    assert_eq!(
        local.get_object(BUCKET, "majority").await,
        Err(MetaError::NotLeader {
            leader: Some(cluster.addrs[new].to_string())
        })
    );
    eprintln!("checked: {:?}", started.elapsed());
    cluster.shutdown().await;
    eprintln!("shut down: {:?}", started.elapsed());
}

/// A leader that stops answering (paused, or cut off while its clients'
/// connections stay open) keeps a write waiting only until another node
/// names its successor, not for the attempt timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_client_leaves_a_silent_leader_for_its_successor() {
    let cluster = Cluster::start(3).await;
    let old = cluster.leader(&[0, 1, 2]).await;
    let attempt_timeout = Duration::from_secs(8);
    let client = MetaClient::remote_with(
        cluster.addr_strings(None),
        RemoteConfig {
            call_timeout: Duration::from_secs(20),
            attempt_timeout,
            ..RemoteConfig::default()
        },
    );
    // The client learns the leader.
    client
        .create_bucket(BUCKET, 1)
        .await
        .expect("create bucket");
    let started = Instant::now();
    cluster.node(old).set_isolated(true);
    // Sent to the old leader, which takes it and never commits it.
    let v = client
        .put_object(
            BUCKET,
            "moved",
            inline(b"m"),
            WriteCondition::None,
            Vec::new(),
        )
        .await
        .expect("write through the new leader");
    let took = started.elapsed();
    eprintln!("write moved to the new leader after {took:?}");
    assert!(
        took < attempt_timeout / 2,
        "waited {took:?} on the old leader"
    );
    assert_eq!(client.get_object(BUCKET, "moved").await, Ok(v));
    cluster.node(old).set_isolated(false);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_client_without_reachable_nodes_is_bounded() {
    // Nothing listens on these ports (bound, then released).
    let addrs: Vec<String> = {
        let a = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let b = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        vec![
            a.local_addr().expect("addr").to_string(),
            b.local_addr().expect("addr").to_string(),
        ]
    };
    let client = MetaClient::remote_with(
        addrs,
        RemoteConfig {
            call_timeout: Duration::from_millis(500),
            ..RemoteConfig::default()
        },
    );
    let started = Instant::now();
    let result = client.list_buckets().await;
    assert!(
        matches!(result, Err(MetaError::Unavailable(_) | MetaError::Timeout)),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let empty = MetaClient::remote(Vec::new());
    assert!(matches!(
        empty.head_bucket(BUCKET).await,
        Err(MetaError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_refuses_what_it_cannot_handle() {
    let dir = TempDir::new().expect("temp dir");
    let node = MetaNode::open(config(&dir, 1, any_port(), true))
        .await
        .expect("open node");
    let addr = node.local_addr().expect("listening").to_string();
    let http = arbor_meta::rpc::HttpClient::default();
    let timeout = Duration::from_secs(5);
    let status = |r: Result<_, arbor_meta::rpc::TransportError>| match r {
        Err(arbor_meta::rpc::TransportError::Status { status, .. }) => status.as_u16(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        status(http.post(&addr, "/nowhere", Vec::new(), timeout).await),
        404
    );
    assert_eq!(
        status(
            http.post(&addr, arbor_meta::rpc::PATH_PROPOSE, vec![0xff; 3], timeout)
                .await
        ),
        400
    );
    // Raft routes are refused while isolated; client routes still answer.
    node.set_isolated(true);
    assert_eq!(
        status(
            http.post(&addr, arbor_meta::rpc::PATH_RAFT_VOTE, Vec::new(), timeout)
                .await
        ),
        503
    );
    node.set_isolated(false);
    let client = MetaClient::remote_with(vec![addr.clone()], remote_config());
    client
        .create_bucket(BUCKET, 1)
        .await
        .expect("create bucket");
    assert_eq!(client.list_buckets().await.expect("list").len(), 1);
    let status = client.status().await.expect("status");
    assert_eq!((status.id, status.addr.as_str()), (1, addr.as_str()));
    node.shutdown().await.expect("shutdown");
    // A stopped node answers nothing.
    assert!(matches!(
        http.post(&addr, arbor_meta::rpc::PATH_READ, Vec::new(), timeout)
            .await,
        Err(arbor_meta::rpc::TransportError::Connection { .. })
    ));
}
