//! Raft transport over HTTP (see [`crate::rpc`] for the wire).
//!
//! [`HttpNetworkFactory`] hands openraft one [`HttpNetwork`] per peer, all
//! sharing one pooled hyper client (TCP_NODELAY, connect timeout). Error
//! mapping (docs/design.md, openraft on redb):
//! - no answer (connect, IO, timeout, non-200 status) → `Unreachable`, so
//!   openraft backs off;
//! - an answer that fails to decode → `Network`;
//! - the peer's own `Err(RaftError)` → `RemoteError`.
//!
//! openraft bounds every RPC itself (`heartbeat_interval` for appends,
//! `election_timeout_min` for votes, `install_snapshot_timeout` per
//! snapshot chunk); the HTTP timeout here is a backstop just above that.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::types::{NodeId, TypeConfig};
use crate::limits::APPEND_BODY_SIZE_TARGET;
use crate::rpc::{
    HttpClient, PATH_RAFT_APPEND, PATH_RAFT_SNAPSHOT, PATH_RAFT_VOTE, SharedFaults, TransportError,
    decode_answer,
};

/// Added to openraft's own RPC deadline for the HTTP backstop timeout.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(100);

/// Why an RPC was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("node {target}: this node is isolated (fault injection)")]
    Isolated { target: NodeId },
    #[error("node {target} has no address")]
    NoAddress { target: NodeId },
    #[error("cannot encode the request to node {target}: {reason}")]
    Encode { target: NodeId, reason: String },
}

/// Creates [`HttpNetwork`] clients; cheap to clone.
#[derive(Clone)]
pub struct HttpNetworkFactory {
    http: HttpClient,
    faults: SharedFaults,
}

impl HttpNetworkFactory {
    pub fn new(http: HttpClient, faults: SharedFaults) -> HttpNetworkFactory {
        HttpNetworkFactory { http, faults }
    }
}

/// Sends Raft RPCs to one peer.
#[derive(Clone)]
pub struct HttpNetwork {
    target: NodeId,
    node: BasicNode,
    http: HttpClient,
    faults: SharedFaults,
}

impl RaftNetworkFactory<TypeConfig> for HttpNetworkFactory {
    type Network = HttpNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        HttpNetwork {
            target,
            node: node.clone(),
            http: self.http.clone(),
            faults: self.faults.clone(),
        }
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl HttpNetwork {
    fn unreachable<E: std::error::Error>(&self, e: &SendError) -> RPCError<NodeId, BasicNode, E> {
        RPCError::Unreachable(Unreachable::new(e))
    }

    /// Sends an encoded request and maps the outcome (module docs).
    async fn send<T, E>(&self, path: &str, body: Vec<u8>, option: &RPCOption) -> RpcResult<T, E>
    where
        T: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if self.faults.is_isolated() {
            return Err(self.unreachable(&SendError::Isolated {
                target: self.target,
            }));
        }
        if self.node.addr.is_empty() {
            return Err(self.unreachable(&SendError::NoAddress {
                target: self.target,
            }));
        }
        let timeout = option.hard_ttl() + TIMEOUT_MARGIN;
        let answer = match self.http.post(&self.node.addr, path, body, timeout).await {
            Ok(answer) => answer,
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
        };
        let result: Result<T, RaftError<NodeId, E>> = decode_answer(&self.node.addr, &answer)
            .map_err(|e: TransportError| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }

    #[expect(
        clippy::result_large_err,
        reason = "openraft's error type, as its traits return it"
    )]
    fn encode<Q: Serialize, E: std::error::Error>(
        &self,
        request: &Q,
    ) -> Result<Vec<u8>, RPCError<NodeId, BasicNode, E>> {
        postcard::to_allocvec(request).map_err(|e| {
            RPCError::Network(NetworkError::new(&SendError::Encode {
                target: self.target,
                reason: e.to_string(),
            }))
        })
    }
}

impl RaftNetwork<TypeConfig> for HttpNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let entries = rpc.entries.len();
        let body = self.encode(&rpc)?;
        if body.len() > APPEND_BODY_SIZE_TARGET && entries > 1 {
            // openraft retries at once with at most this many entries.
            let hint = u64::try_from(entries / 2).unwrap_or(1).max(1);
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(hint),
            ));
        }
        self.send(PATH_RAFT_APPEND, body, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let body = self.encode(&rpc)?;
        self.send(PATH_RAFT_SNAPSHOT, body, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let body = self.encode(&rpc)?;
        self.send(PATH_RAFT_VOTE, body, &option).await
    }
}
