//! Group commit above Raft.
//!
//! openraft 0.9 flushes every `client_write` on its own, so batching at the
//! log store never sees two appends (docs/design.md, openraft on redb).
//! Instead one task drains the proposal queue and puts up to
//! [`COMMANDS_PER_ENTRY_MAX`] proposals (and about [`ENTRY_SIZE_TARGET`]
//! bytes) into one log entry, with up to
//! [`WRITES_IN_FLIGHT_MAX`] entries in flight (the second only for a deep
//! queue): while they are being written, the next batch accumulates in the
//! queue. Each entry's results
//! are fanned out to the proposers in order.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use openraft::BasicNode;
use openraft::error::{CheckIsLeaderError, ClientWriteError, Fatal, ForwardToLeader, RaftError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::types::{NodeId, Proposal, Raft};
use crate::command::CommandResult;
use crate::disk::DiskGuard;
use crate::error::MetaError;
use crate::limits::{COMMANDS_PER_ENTRY_MAX, ENTRY_SIZE_TARGET, PROPOSALS_QUEUED_MAX};

/// Log entries written concurrently. openraft's core appends them one at a
/// time anyway; a second one in flight overlaps the log fsync of one entry
/// with the apply of the previous, but halves batches. So a write beyond
/// the first starts only when [`EAGER_BATCH_MIN`] proposals are waiting.
pub const WRITES_IN_FLIGHT_MAX: usize = 2;
/// Queued proposals that justify starting another write while one is in
/// flight (fsync-bound: bigger entries beat more of them; measured in
/// docs/benchmarks.md).
pub const EAGER_BATCH_MIN: usize = 32;
/// Bound on one `client_write`. An isolated leader's `client_write` hangs
/// (openraft 0.9 has no step-down; docs/design.md, openraft on redb); past
/// this the outcome is unknown.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a whole proposal: queueing, waiting for a free write slot and
/// the write itself.
pub const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(30);

const _: () = assert!(COMMANDS_PER_ENTRY_MAX > 0 && WRITES_IN_FLIGHT_MAX > 0);
const _: () = assert!(EAGER_BATCH_MIN <= COMMANDS_PER_ENTRY_MAX);
const _: () = assert!(PROPOSAL_TIMEOUT.as_secs() > WRITE_TIMEOUT.as_secs());

/// A proposal waiting for its batch, and where its result goes.
pub(crate) struct Submission {
    proposal: Proposal,
    reply: oneshot::Sender<CommandResult>,
}

/// Sends proposals to the batcher. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Proposer {
    tx: mpsc::Sender<Submission>,
    /// Refuses commands that add data while the disk is low.
    disk: Option<DiskGuard>,
}

impl Proposer {
    /// Proposes through Raft and waits for the applied result. Errors that
    /// are not command outcomes (timeouts, leadership, shutdown) come back
    /// as `Err` too.
    pub(crate) async fn propose(&self, proposal: Proposal) -> CommandResult {
        if let Some(disk) = &self.disk
            && !proposal.command.runs_when_disk_low()
        {
            disk.check()?;
        }
        let (reply, result) = oneshot::channel();
        let submit_and_wait = async {
            self.tx
                .send(Submission { proposal, reply })
                .await
                .map_err(|_| MetaError::ShuttingDown)?;
            // A dropped sender means the batcher stopped before answering.
            result.await.unwrap_or(Err(MetaError::ShuttingDown))
        };
        match tokio::time::timeout(PROPOSAL_TIMEOUT, submit_and_wait).await {
            Ok(result) => result,
            Err(_) => Err(MetaError::Timeout),
        }
    }
}

/// The running batcher task.
pub(crate) struct Batcher {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Batcher {
    pub(crate) fn spawn(raft: Raft, disk: Option<DiskGuard>) -> (Proposer, Batcher) {
        let (tx, rx) = mpsc::channel(PROPOSALS_QUEUED_MAX);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(raft, rx, stopped));
        (
            Proposer { tx, disk },
            Batcher {
                stop: Some(stop),
                task: Some(task),
            },
        )
    }

    /// Stops taking proposals; queued ones fail with `ShuttingDown`. Writes
    /// in flight go on until [`Batcher::join`].
    pub(crate) fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // Fails only if the task already ended.
            let _ = stop.send(());
        }
    }

    /// Waits for the task to end (after [`Batcher::begin_stop`]; in-flight
    /// writes end within [`WRITE_TIMEOUT`], at once if Raft has stopped).
    pub(crate) async fn join(&mut self) {
        self.begin_stop();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "group-commit batcher task failed");
        }
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Submission>, mut stopped: oneshot::Receiver<()>) {
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            next = rx.recv(), if in_flight.is_empty()
                || (in_flight.len() < WRITES_IN_FLIGHT_MAX && rx.len() >= EAGER_BATCH_MIN) => {
                let Some(first) = next else { break };
                let mut size = first.proposal.command.size_estimate();
                let mut batch = vec![first];
                while batch.len() < COMMANDS_PER_ENTRY_MAX && size < ENTRY_SIZE_TARGET {
                    match rx.try_recv() {
                        Ok(submission) => {
                            size = size.saturating_add(submission.proposal.command.size_estimate());
                            batch.push(submission);
                        }
                        Err(_) => break,
                    }
                }
                in_flight.push(write_batch(raft.clone(), batch));
            }
        }
    }
    rx.close();
    while let Ok(submission) = rx.try_recv() {
        let _ = submission.reply.send(Err(MetaError::ShuttingDown));
    }
    while in_flight.next().await.is_some() {}
    tracing::debug!("group-commit batcher stopped");
}

/// Writes one log entry carrying `batch` and answers every proposer.
async fn write_batch(raft: Raft, batch: Vec<Submission>) {
    let (proposals, replies): (Vec<Proposal>, Vec<oneshot::Sender<CommandResult>>) =
        batch.into_iter().map(|s| (s.proposal, s.reply)).unzip();
    let outcome = match tokio::time::timeout(WRITE_TIMEOUT, raft.client_write(proposals)).await {
        Err(_) => Err(MetaError::Timeout),
        Ok(Err(e)) => Err(write_error(e)),
        Ok(Ok(response)) if response.data.len() == replies.len() => Ok(response.data),
        Ok(Ok(response)) => Err(MetaError::Corrupt(format!(
            "log entry {} applied {} results for {} proposals",
            response.log_id,
            response.data.len(),
            replies.len()
        ))),
    };
    match outcome {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                // The proposer may have timed out and left.
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

fn not_leader(forward: ForwardToLeader<NodeId, BasicNode>) -> MetaError {
    let leader = forward
        .leader_node
        .map(|node| node.addr)
        .filter(|addr| !addr.is_empty());
    MetaError::NotLeader { leader }
}

pub(crate) fn fatal_error(e: Fatal<NodeId>) -> MetaError {
    match e {
        Fatal::Stopped => MetaError::ShuttingDown,
        Fatal::StorageError(e) => MetaError::Raft(format!("storage failure, raft stopped: {e}")),
        Fatal::Panicked => MetaError::Raft("raft core panicked".into()),
    }
}

pub(crate) fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> MetaError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => not_leader(forward),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            MetaError::Raft(e.to_string())
        }
        RaftError::Fatal(e) => fatal_error(e),
    }
}

pub(crate) fn read_error(e: RaftError<NodeId, CheckIsLeaderError<NodeId, BasicNode>>) -> MetaError {
    match e {
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)) => not_leader(forward),
        RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)) => {
            MetaError::Unavailable(e.to_string())
        }
        RaftError::Fatal(e) => fatal_error(e),
    }
}
