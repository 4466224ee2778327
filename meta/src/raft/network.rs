//! Raft transport.
//!
//! This release runs a ONE-NODE group, so Raft never needs to reach a peer:
//! [`SingleNodeNetworkFactory`] hands out clients that answer every RPC with
//! [`RPCError::Unreachable`] (openraft then backs off). It is a placeholder,
//! to be replaced by the hyper HTTP transport (postcard bodies, TCP_NODELAY,
//! `Unreachable` on transport failure, `RemoteError` for remote Raft errors;
//! design/openraft-redb-notes.md §5) when multi-node groups arrive.

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};

use super::types::{NodeId, TypeConfig};

/// Why every RPC fails.
#[derive(Debug, thiserror::Error)]
#[error(
    "node {target} is unreachable: this node runs a one-node group without a network transport"
)]
pub struct NoTransport {
    pub target: NodeId,
}

/// Creates [`SingleNodeNetwork`] clients.
#[derive(Clone, Debug, Default)]
pub struct SingleNodeNetworkFactory;

/// A client that cannot reach anyone.
#[derive(Clone, Debug)]
pub struct SingleNodeNetwork {
    target: NodeId,
}

impl SingleNodeNetwork {
    fn unreachable<E: std::error::Error>(&self) -> RPCError<NodeId, BasicNode, E> {
        RPCError::Unreachable(Unreachable::new(&NoTransport {
            target: self.target,
        }))
    }
}

impl RaftNetworkFactory<TypeConfig> for SingleNodeNetworkFactory {
    type Network = SingleNodeNetwork;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Self::Network {
        SingleNodeNetwork { target }
    }
}

impl RaftNetwork<TypeConfig> for SingleNodeNetwork {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        Err(self.unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        Err(self.unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        Err(self.unreachable())
    }
}
