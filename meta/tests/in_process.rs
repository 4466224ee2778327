//! The Raft network seam: three metadata nodes in one process, their Raft
//! messages carried by a router the test controls (no HTTP). The router
//! can cut a node off; the group elects another leader, keeps committing,
//! and the node catches up once it is reconnected. The deterministic
//! simulation (`simulation.rs`) builds on the same seam.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arbor_meta::clock::SeededEntropy;
use arbor_meta::raft::types::{NodeId, Raft, TypeConfig};
use arbor_meta::records::{ObjectData, ObjectHeaders, ObjectVersion, WriteCondition};
use arbor_meta::{MetaClient, MetaConfig, MetaError, MetaNode};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use tempfile::TempDir;

/// Every node's Raft handle, and the nodes cut off from the rest.
#[derive(Clone, Default)]
struct Router {
    inner: Arc<Mutex<RouterState>>,
}

#[derive(Default)]
struct RouterState {
    nodes: HashMap<NodeId, Raft>,
    cut_off: HashSet<NodeId>,
}

impl Router {
    fn lock(&self) -> std::sync::MutexGuard<'_, RouterState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn add(&self, id: NodeId, raft: Raft) {
        self.lock().nodes.insert(id, raft);
    }
    fn cut(&self, id: NodeId, cut: bool) {
        let mut state = self.lock();
        if cut {
            state.cut_off.insert(id);
        } else {
            state.cut_off.remove(&id);
        }
    }
    /// The target's handle, if the message from `from` gets through.
    fn route(&self, from: NodeId, to: NodeId) -> Result<Raft, std::io::Error> {
        let state = self.lock();
        if state.cut_off.contains(&from) || state.cut_off.contains(&to) {
            return Err(std::io::Error::other(format!("{from} -> {to}: cut off")));
        }
        state
            .nodes
            .get(&to)
            .cloned()
            .ok_or_else(|| std::io::Error::other(format!("node {to} is not up")))
    }
}

/// One node's side of the router.
struct RouterFactory {
    from: NodeId,
    router: Router,
}

struct RouterLink {
    from: NodeId,
    to: NodeId,
    router: Router,
}

impl RaftNetworkFactory<TypeConfig> for RouterFactory {
    type Network = RouterLink;
    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> RouterLink {
        RouterLink {
            from: self.from,
            to: target,
            router: self.router.clone(),
        }
    }
}

type Rpc<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

#[expect(
    clippy::result_large_err,
    reason = "openraft's error type, as its traits return it"
)]
impl RouterLink {
    fn target<E: std::error::Error>(&self) -> Result<Raft, RPCError<NodeId, BasicNode, E>> {
        self.router
            .route(self.from, self.to)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }
    fn remote<T, E: std::error::Error>(
        &self,
        result: Result<T, RaftError<NodeId, E>>,
    ) -> Rpc<T, E> {
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}

impl RaftNetwork<TypeConfig> for RouterLink {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<NodeId>> {
        let raft = self.target()?;
        self.remote(raft.append_entries(rpc).await)
    }
    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let raft = self.target()?;
        self.remote(raft.install_snapshot(rpc).await)
    }
    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Rpc<VoteResponse<NodeId>> {
        let raft = self.target()?;
        self.remote(raft.vote(rpc).await)
    }
}

fn version(etag: &str) -> ObjectVersion {
    ObjectVersion {
        generation: 0,
        size: 1,
        etag: etag.into(),
        last_modified_ms: 1,
        headers: ObjectHeaders::default(),
        user_metadata: Vec::new(),
        checksum: None,
        storage_class: None,
        parts: Vec::new(),
        tags: Vec::new(),
        acl: Default::default(),
        data: ObjectData::Inline(vec![1]),
        stamp: Default::default(),
    }
}

/// Retries `put` until some node leads and takes it (bounded).
async fn put_on_leader(nodes: &[Arc<MetaNode>], key: &str, etag: &str) -> (NodeId, ObjectVersion) {
    for _ in 0..200 {
        for node in nodes {
            match node
                .client()
                .put_object(
                    "bucket",
                    key,
                    version(etag),
                    WriteCondition::None,
                    Vec::new(),
                )
                .await
            {
                Ok(v) => return (node.node_id(), v),
                Err(
                    MetaError::NotLeader { .. } | MetaError::Unavailable(_) | MetaError::Timeout,
                ) => {}
                Err(e) => panic!("put {key}: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no leader took {key} in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_a_router_fail_over_and_catch_up() {
    let router = Router::default();
    let dirs: Vec<TempDir> = (0..3).map(|_| TempDir::new().expect("temp dir")).collect();
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let id = u64::try_from(i + 1).expect("small");
        let config = MetaConfig::new(dir.path(), id)
            .with_durable(false)
            .with_bootstrap(id == 1);
        let network = RouterFactory {
            from: id,
            router: router.clone(),
        };
        let node = MetaNode::open_with(config, network, SeededEntropy::new(id))
            .await
            .expect("open");
        router.add(id, node.raft().clone());
        nodes.push(node);
    }
    let first = nodes[0].clone();
    first.add_learner(2, "").await.expect("learner 2");
    first.add_learner(3, "").await.expect("learner 3");
    first
        .change_membership(BTreeSet::from([1, 2, 3]))
        .await
        .expect("voters");
    let leader: MetaClient = first.client();
    leader.create_bucket("bucket", 1).await.expect("bucket");
    let (_, before) = put_on_leader(&nodes, "before", "e1").await;

    // Cut the leader off: the other two elect a leader and commit.
    router.cut(1, true);
    let rest = [nodes[1].clone(), nodes[2].clone()];
    let (new_leader, during) = put_on_leader(&rest, "during", "e2").await;
    assert_ne!(new_leader, 1);
    assert!(during.generation > before.generation);
    assert!(
        first.read_local_object("bucket", "during").await.is_err(),
        "a cut-off node has not seen the write"
    );

    // Reconnected, the old leader catches up from the new one.
    router.cut(1, false);
    let mut caught_up = false;
    for _ in 0..200 {
        if first.read_local_object("bucket", "during").await.as_ref() == Ok(&during) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(caught_up, "node 1 applied the write it missed");
    for node in &nodes {
        node.shutdown().await.expect("shutdown");
    }
}
