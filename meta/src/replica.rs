//! A replica of the metadata group as its clients and its server use it:
//! linearizable reads (ReadIndex), proposals through the group-commit
//! batcher, membership changes and status. [`crate::node::MetaNode`] owns
//! one and its lifecycle; [`crate::server`] and [`crate::MetaClient`]'s
//! local transport call into it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use openraft::metrics::WaitError;
use openraft::{BasicNode, ChangeMembers};
use redb::{Database, ReadableDatabase};

use crate::command::{ReadReply, ReadRequest};
use crate::error::{MetaError, Result};
use crate::io::StorageIo;
use crate::op::Query;
use crate::raft::batcher::{self, Proposer};
use crate::raft::read_rounds::ReadRounds;
use crate::raft::types::{NodeId, Raft};
use crate::rpc::{AdminRequest, NodeStatus, SharedFaults};

/// Bound on confirming leadership (and catching up) for a read.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on committing a membership change (add learner, joint consensus).
pub(crate) const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a new learner catching up (by log or snapshot).
pub(crate) const LEARNER_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// One replica of the metadata group as its clients and its server see
/// it: Raft, the group-commit proposer and the state database.
pub(crate) struct Replica {
    pub(crate) id: NodeId,
    pub(crate) raft: Raft,
    pub(crate) proposer: Proposer,
    /// The advertised address ("" for an in-process node).
    pub(crate) addr: String,
    pub(crate) faults: SharedFaults,
    /// `None` once shut down.
    pub(crate) state_db: RwLock<Option<Arc<Database>>>,
    /// Where read transactions run.
    pub(crate) io: StorageIo,
    /// Remote reads served since start, by operation (for
    /// [`NodeStatus::reads`]).
    pub(crate) reads: Mutex<BTreeMap<&'static str, u64>>,
    /// Leadership confirmations shared by concurrent reads.
    pub(crate) read_rounds: ReadRounds,
}

impl Replica {
    /// The state database for a read transaction.
    pub(crate) fn state_db(&self) -> Result<Arc<Database>> {
        let guard = self.state_db.read().unwrap_or_else(PoisonError::into_inner);
        guard.clone().ok_or(MetaError::ShuttingDown)
    }

    /// Runs the query `op` linearizably: confirms leadership (ReadIndex: a
    /// heartbeat round to a quorum) and waits until the state machine has
    /// applied up to the read index, in a round shared with the reads that
    /// arrived with it ([`ReadRounds`]: the first round that starts after
    /// this call), then opens a read transaction of the state database and
    /// answers on this task when that is bounded work
    /// ([`Query::read_inline`]), else on the same transaction off the async
    /// threads. A follower answers `NotLeader` (with the leader's address,
    /// so remote clients redirect); an isolated leader answers
    /// `Unavailable`.
    pub(crate) async fn query<Q: Query>(&self, op: Q) -> Result<Q::Reply> {
        op.validate()?;
        let round = || async {
            self.raft
                .ensure_linearizable()
                .await
                .map(|_read_log_id| ())
                .map_err(batcher::read_error)
        };
        match tokio::time::timeout(READ_TIMEOUT, self.read_rounds.confirm(round)).await {
            Ok(outcome) => outcome?,
            Err(_) => return Err(MetaError::Timeout),
        }
        let txn = self.state_db()?.begin_read()?;
        match op.read_inline(&txn) {
            Some(reply) => reply,
            None => self.io.blocking(move || op.read(&txn)).await?,
        }
    }

    /// Serves one remote read.
    pub(crate) async fn read_request(&self, request: ReadRequest) -> Result<ReadReply> {
        {
            let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
            let count = reads.entry(request.name()).or_default();
            *count = count.saturating_add(1);
        }
        self.query(request).await
    }

    /// Serves one membership change.
    pub(crate) async fn change(&self, request: AdminRequest) -> Result<()> {
        match request {
            AdminRequest::AddLearner { id, addr } => self.add_learner(id, addr).await,
            AdminRequest::ChangeMembership { voters } => self.change_membership(voters).await,
            AdminRequest::RemoveNode { id } => self.remove_node(id).await,
            AdminRequest::Status => Err(MetaError::InvalidRequest(
                "status is not a membership change".to_owned(),
            )),
        }
    }

    /// Adds node `id` at `addr` as a learner, then waits until the leader
    /// has replicated the membership entry to it (by log or snapshot): the
    /// learner then holds everything committed before the call.
    /// openraft's `add_learner` alone returns before the learner has
    /// anything (docs/design.md, openraft on redb).
    pub(crate) async fn add_learner(&self, id: NodeId, addr: String) -> Result<()> {
        let response = bounded(
            MEMBERSHIP_TIMEOUT,
            self.raft.add_learner(id, BasicNode::new(addr), false),
        )
        .await?
        .map_err(batcher::write_error)?;
        let target = response.log_id.index;
        self.raft
            .wait(Some(LEARNER_CATCH_UP_TIMEOUT))
            .metrics(
                |m| {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&id).copied().flatten())
                        .is_some_and(|matched| matched.index >= target)
                },
                "learner caught up",
            )
            .await
            .map_err(wait_error)?;
        Ok(())
    }

    /// Makes `voters` the voter set through joint consensus; voters left
    /// out are removed from the group (not kept as learners).
    pub(crate) async fn change_membership(&self, voters: BTreeSet<NodeId>) -> Result<()> {
        bounded(
            MEMBERSHIP_TIMEOUT,
            self.raft.change_membership(voters, false),
        )
        .await?
        .map_err(batcher::write_error)?;
        Ok(())
    }

    /// Removes node `id`, voter or learner, from the group.
    pub(crate) async fn remove_node(&self, id: NodeId) -> Result<()> {
        let is_voter = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            metrics.membership_config.voter_ids().any(|v| v == id)
        };
        let change = if is_voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        bounded(
            MEMBERSHIP_TIMEOUT,
            self.raft.change_membership(change, false),
        )
        .await?
        .map_err(batcher::write_error)?;
        Ok(())
    }

    pub(crate) fn status(&self) -> NodeStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let mut status = NodeStatus {
            id: self.id,
            addr: self.addr.clone(),
            state: format!("{:?}", m.state),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            last_applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            voters: Vec::new(),
            learners: Vec::new(),
            reads: self
                .reads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(name, count)| ((*name).to_owned(), *count))
                .collect(),
        };
        for (id, node) in membership.nodes() {
            let row = (*id, node.addr.clone());
            if voters.contains(id) {
                status.voters.push(row);
            } else {
                status.learners.push(row);
            }
        }
        status
    }
}

/// Runs `f` for at most `timeout` (`Timeout` after it).
async fn bounded<T>(timeout: Duration, f: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| MetaError::Timeout)
}

fn wait_error(e: WaitError) -> MetaError {
    match e {
        WaitError::Timeout(..) => MetaError::Timeout,
        WaitError::ShuttingDown => MetaError::ShuttingDown,
    }
}
