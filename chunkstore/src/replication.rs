//! Chunks on several servers: replicated streaming writes, failover reads,
//! and copies between servers. Placement is an input: callers (the gateway,
//! later with the metadata service's placement) name the servers.
//!
//! **Write** ([`Replicator::write`]): every incoming piece goes to every
//! target through its own bounded queue ([`limits::REPLICA_QUEUE_PIECES`])
//! while the SHA-256 (the chunk's fingerprint) and the CRC32C of the data
//! are computed once, here. Both are known only at the end, so they travel
//! as HTTP *trailers*. The first target hashes what it received and seals
//! the chunk only if its SHA-256 is the writer's, so the fingerprint
//! every replica records was computed twice, in two processes; the other
//! targets check the bytes they received against the CRC32C before
//! sealing (`finish_vouched`) and record the SHA-256 as given, sparing
//! them a SHA-256 pass over every byte. Either way a chunk with bytes
//! other than the writer's is never visible under its id, not even
//! briefly (docs/design.md, "Data path"). The first target gets its
//! trailer and seals before the others get theirs: if its SHA-256
//! disagrees, the write fails (the writer's hash or the bytes are wrong)
//! and no other target ever seals the chunk. (The
//! alternative, "server returns its hash, client compares and DELETEs on
//! mismatch", leaves a wrong chunk readable between the two steps and
//! forever if the DELETE fails.) A target that fails, stalls, or lags
//! the others ([`limits::REPLICA_LAG_TIMEOUT`] after a quorum took a
//! piece) is dropped from the fan-out; when the body is done, each one is replaced by the
//! next unused candidate, copied from a target that succeeded by streaming
//! server → here → server. Nothing holds a whole chunk in memory. The
//! write succeeds when as many servers as targets hold the chunk, or,
//! with no candidate left to replace a failed target, when at least the
//! caller's quorum do (the chunk is then recorded under-replicated and
//! the healer tops it up); on failure, copies already made are left for
//! garbage collection (their ids are never committed).
//!
//! **Read** ([`Replicator::read`]): tries the replicas in the given order;
//! a connection error, an error status, corruption, or no answer within
//! the lag timeout while another replica is left moves on to the next,
//! resuming mid-stream at the first byte not yet delivered. Replicas that
//! answered `not-found` or `corrupt`, or broke off mid-stream and then fail
//! a one-byte probe at that offset, are handed to the [`Repairer`]. Each
//! replica checks the block CRCs of what it sends; a replica whose stored
//! SHA-256 is not the metadata's is not read at all.

use std::fmt::Write as _;
use std::ops::Range;

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use arbor_meta::ChunkId;

use crate::client::{ChunkClient, ChunkClients, ChunkRead, ExpectedSha256};
use crate::error::{ChunkError, Result};
use crate::limits;
use crate::repair::{RepairJob, Repairer};
use crate::store::ChunkInfo;
use crate::transfer::copy_chunk;

/// Queues `piece` for every feed: whether each took it. A feed that has
/// not within `stall` is dropped, and so is one that lags: once `need`
/// feeds have taken the piece, the rest get `lag` more. Waiting out a
/// stalled replica's `stall` would starve the others of bytes for as long,
/// and they would give the body up after their own stall timeout (the
/// same length): one frozen server would fail every write.
async fn fan_out(
    feeds: &[Feed],
    piece: &Bytes,
    stall: std::time::Duration,
    lag: std::time::Duration,
    need: usize,
) -> Vec<bool> {
    let mut taken = vec![false; feeds.len()];
    let mut sending: futures::stream::FuturesUnordered<_> = feeds
        .iter()
        .enumerate()
        .map(|(index, feed)| {
            let piece = piece.clone();
            async move { (index, feed.data.send(Ok(piece)).await.is_ok()) }
        })
        .collect();
    let mut deadline = tokio::time::Instant::now() + stall;
    let mut accepted = 0;
    // Sends not done by the deadline are dropped (an mpsc send is cancel
    // safe: the piece is not queued), and their feeds with them.
    while let Ok(Some((index, ok))) = tokio::time::timeout_at(deadline, sending.next()).await {
        taken[index] = ok;
        if ok {
            accepted += 1;
            if accepted == need {
                deadline = deadline.min(tokio::time::Instant::now() + lag);
            }
        }
    }
    taken
}

/// What a replicated write knows of its chunk's SHA-256 before the bytes
/// come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fingerprint {
    /// Nothing: the writer hashes the bytes as they pass.
    Unknown,
    /// A SHA-256 the bytes must have: the writer hashes them as they pass
    /// and, on a mismatch, lets no server seal them.
    Claimed([u8; 32]),
    /// The SHA-256 of exactly these bytes, checked by the caller as they
    /// passed (a signed payload's, whose mismatch ends the body with an
    /// error before its end): not hashed again, here or by any target.
    /// Every target checks the CRC32C of what it received against the one
    /// computed here over the bytes sent, so each holds the bytes the
    /// caller hashed; the fingerprint was computed twice already, by the
    /// client that signed it and by the caller.
    Verified([u8; 32]),
}

/// A chunk's SHA-256 while its bytes pass: given by a verified
/// fingerprint, or being computed.
enum Sha256State {
    Known([u8; 32]),
    Hashing(Sha256),
}

/// The outcome of a replicated write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicatedWrite {
    pub info: ChunkInfo,
    /// The servers holding the chunk: the targets in their order, each
    /// failed one in place of its replacement, or left out if it had none.
    pub replicas: Vec<String>,
    pub replaced: Vec<Replacement>,
}

/// A target that failed during a write and the candidate that took its
/// place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    pub failed: String,
    pub error: String,
    pub replacement: String,
}

/// Writes, reads and copies chunks across chunk servers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Replicator {
    clients: ChunkClients,
    repairer: Option<Repairer>,
}

impl Replicator {
    /// `repairer` receives the replicas that reads found missing or
    /// corrupt; without one, they are only logged.
    pub fn new(clients: ChunkClients, repairer: Option<Repairer>) -> Replicator {
        Replicator { clients, repairer }
    }

    pub fn clients(&self) -> &ChunkClients {
        &self.clients
    }

    /// Streams `body` as chunk `id` to every server in `targets` at once;
    /// a target that fails is replaced by the next of `candidates`, or,
    /// when none is left, dropped as long as `quorum` servers still hold
    /// the chunk. `fingerprint` says what the caller knows of the chunk's
    /// SHA-256: a claimed one is checked here before any server may seal
    /// the bytes (a mismatch stores nothing anywhere), a verified one is
    /// taken as it is.
    pub async fn write<S>(
        &self,
        id: ChunkId,
        targets: &[String],
        candidates: &[String],
        quorum: usize,
        fingerprint: Fingerprint,
        body: S,
    ) -> Result<ReplicatedWrite>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        check_servers(id, targets, candidates)?;
        let stall = self.clients.options().stall_timeout;
        let lag = self.clients.options().lag_timeout;
        let mut tasks = Tasks(Vec::with_capacity(targets.len()));
        let mut live = Vec::with_capacity(targets.len());
        for (position, addr) in targets.iter().enumerate() {
            let client = self.clients.server(addr)?;
            let (data, queue) = mpsc::channel::<Result<Bytes>>(limits::REPLICA_QUEUE_PIECES);
            let checking =
                position == CHECKING_TARGET && !matches!(fingerprint, Fingerprint::Verified(_));
            let (digests, expected) = if checking {
                let (sender, trailer) = oneshot::channel();
                (Digests::Checked(sender), ExpectedSha256::Trailer(trailer))
            } else {
                let (sender, trailer) = oneshot::channel();
                (Digests::Vouched(sender), ExpectedSha256::Vouched(trailer))
            };
            let pieces = stream::unfold(queue, |mut queue| async move {
                queue.recv().await.map(|piece| (piece, queue))
            });
            tasks.0.push(tokio::spawn(async move {
                client.put(id, expected, pieces).await
            }));
            live.push(Feed {
                position,
                data,
                digests,
            });
        }

        let mut sha256 = match fingerprint {
            Fingerprint::Unknown | Fingerprint::Claimed(_) => Sha256State::Hashing(Sha256::new()),
            Fingerprint::Verified(sha256) => Sha256State::Known(sha256),
        };
        let mut crc = 0u32;
        let mut size = 0u64;
        let mut body = std::pin::pin!(body);
        while let Some(piece) = body.next().await {
            // On a source error, dropping the feeds aborts every put.
            let piece = piece?;
            size = size
                .checked_add(u64::try_from(piece.len()).unwrap_or(u64::MAX))
                .filter(|size| *size <= limits::CHUNK_SIZE_MAX)
                .ok_or(ChunkError::TooLarge {
                    id,
                    max: limits::CHUNK_SIZE_MAX,
                })?;
            if let Sha256State::Hashing(hasher) = &mut sha256 {
                hasher.update(&piece);
            }
            crc = crc32c::crc32c_append(crc, &piece);
            let need = quorum.clamp(1, live.len());
            let sent = fan_out(&live, &piece, stall, lag, need).await;
            let mut sent = sent.into_iter();
            // A feed whose put ended, stalled or lagged is dropped, and
            // its put aborted at once: a put stuck on a frozen server
            // would otherwise hold the write until its own stall timeout.
            live.retain(|feed| {
                let kept = sent.next().unwrap_or(false);
                if !kept {
                    tasks.0[feed.position].abort();
                }
                kept
            });
            if live.is_empty() {
                break;
            }
        }
        let sha256: [u8; 32] = match sha256 {
            Sha256State::Known(sha256) => sha256,
            Sha256State::Hashing(hasher) => hasher.finalize().into(),
        };
        if matches!(fingerprint, Fingerprint::Claimed(claimed) if claimed != sha256) {
            // Dropping the feeds (no trailers) and the tasks aborts every
            // put: no server keeps the chunk.
            return Err(ChunkError::ChecksumMismatch { id });
        }
        // The checking target (none for a verified fingerprint) seals
        // first: the others are handed only a fingerprint it computed too,
        // so on a disagreement none of them ever seals the chunk (their
        // puts end without trailers).
        let (checking, vouching): (Vec<Feed>, Vec<Feed>) = live
            .into_iter()
            .partition(|feed| matches!(feed.digests, Digests::Checked(_)));
        let mut checked = None;
        if let Some(Feed { data, digests, .. }) = checking.into_iter().next() {
            // The body ends (its queue closes), then the trailer goes.
            drop(data);
            digests.send(sha256, crc);
            let outcome = (&mut tasks.0[CHECKING_TARGET]).await;
            if let Ok(Err(ChunkError::ChecksumMismatch { .. })) = outcome {
                let addr = &targets[CHECKING_TARGET];
                tracing::error!(%id, server = %addr,
                    "the checking replica hashed the chunk to another SHA-256 than the writer");
                // Dropping the other feeds (no trailers) and the tasks
                // aborts every other put: no server keeps the chunk.
                return Err(ChunkError::Corrupt {
                    id,
                    detail: format!(
                        "{addr} hashed the bytes it received to another SHA-256 than the writer's"
                    ),
                });
            }
            checked = Some(outcome);
        }
        for feed in vouching {
            // If the put already ended, its result below says why.
            feed.digests.send(sha256, crc);
        }

        let mut held = Vec::with_capacity(targets.len());
        let mut failed = Vec::new();
        for (position, (addr, task)) in targets.iter().zip(tasks.0.iter_mut()).enumerate() {
            let result = if position == CHECKING_TARGET
                && let Some(outcome) = checked.take()
            {
                outcome
            } else {
                task.await
            };
            let outcome = match result {
                Ok(Ok(info)) if info.sha256 == sha256 && info.size == size => Ok(()),
                Ok(Ok(info)) => Err(format!(
                    "stored {} bytes with another SHA-256 ({})",
                    info.size,
                    hex::encode(info.sha256)
                )),
                Ok(Err(error)) => Err(error.to_string()),
                Err(error) => Err(format!("put task failed: {error}")),
            };
            match outcome {
                Ok(()) => held.push(addr.clone()),
                Err(error) => {
                    tracing::warn!(%id, server = %addr, %error, "replica write failed");
                    failed.push((addr.clone(), error));
                }
            }
        }
        let info = ChunkInfo { id, size, sha256 };
        if held.is_empty() {
            return Err(ChunkError::ReplicasUnavailable {
                id,
                detail: describe(&failed),
            });
        }

        let mut replicas: Vec<String> = targets.to_vec();
        let mut replaced = Vec::new();
        let mut unused = candidates.iter();
        for (failed_addr, error) in failed {
            let replacement = match self.replace(&info, &held, &mut unused).await {
                Ok(replacement) => replacement,
                Err(e) if held.len() >= quorum.max(1) => {
                    tracing::warn!(%id, server = %failed_addr, held = held.len(), error = %e,
                        "replica lost and not replaced; the chunk is under-replicated");
                    replicas.retain(|addr| *addr != failed_addr);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(slot) = replicas.iter_mut().find(|addr| **addr == failed_addr) {
                slot.clone_from(&replacement);
            }
            held.push(replacement.clone());
            replaced.push(Replacement {
                failed: failed_addr,
                error,
                replacement,
            });
        }
        Ok(ReplicatedWrite {
            info,
            replicas,
            replaced,
        })
    }

    /// Copies `info` from one of `held` to the next candidate that takes it.
    async fn replace(
        &self,
        info: &ChunkInfo,
        held: &[String],
        unused: &mut std::slice::Iter<'_, String>,
    ) -> Result<String> {
        let mut errors = Vec::new();
        for candidate in unused.by_ref() {
            for source in held {
                match self.copy(info, source, candidate).await {
                    Ok(()) => {
                        tracing::info!(id = %info.id, from = %source, to = %candidate, "replaced failed replica");
                        return Ok(candidate.clone());
                    }
                    Err(error) => {
                        errors.push((format!("{source} → {candidate}"), error.to_string()))
                    }
                }
            }
        }
        errors.push(("candidates".to_owned(), "none left".to_owned()));
        Err(ChunkError::ReplicasUnavailable {
            id: info.id,
            detail: describe(&errors),
        })
    }

    /// Streams chunk `info.id` from server `from` to server `to`, which
    /// checks it against `info.sha256` before storing it.
    pub async fn copy(&self, info: &ChunkInfo, from: &str, to: &str) -> Result<()> {
        copy_chunk(&self.clients, info, from, to).await
    }

    /// Streams bytes `range` of chunk `id` from the first replica that can
    /// serve them, in the order given. `expected_sha256` (from the chunk's
    /// metadata) is compared with the SHA-256 a replica stored, guarding
    /// against one holding other content; the bytes themselves are checked
    /// by the serving replica's block CRCs (docs/design.md, "Data path").
    pub async fn read(
        &self,
        id: ChunkId,
        range: Range<u64>,
        replicas: &[String],
        expected_sha256: Option<[u8; 32]>,
    ) -> Result<ChunkRead> {
        if replicas.is_empty() || replicas.len() > limits::REPLICAS_MAX {
            return Err(ChunkError::ReplicasUnavailable {
                id,
                detail: format!("{} replicas given", replicas.len()),
            });
        }
        let clients = replicas
            .iter()
            .map(|addr| self.clients.server(addr))
            .collect::<Result<Vec<_>>>()?;
        let mut failover = Failover {
            id,
            start: range.start,
            pos: range.start,
            end: range.end,
            replicas: clients,
            next: 0,
            current: None,
            failures: Vec::new(),
            all_not_found: true,
            expected: expected_sha256,
            repairer: self.repairer.clone(),
            done: false,
            lag: self.clients.options().lag_timeout,
        };
        let info = failover.open().await?;
        let body = stream::unfold(failover, |mut failover| async move {
            let piece = failover.next_piece().await?;
            Some((piece, failover))
        })
        .boxed();
        Ok(ChunkRead { info, body })
    }
}

/// The target of a replicated write that hashes the bytes itself and
/// compares with the writer's SHA-256 (the others check the CRC32C only).
const CHECKING_TARGET: usize = 0;

/// One target's end of the fan-out.
struct Feed {
    /// The target's position in `targets` (and its put's in the tasks).
    position: usize,
    data: mpsc::Sender<Result<Bytes>>,
    digests: Digests,
}

/// Where the digests of everything sent go, for a target's trailers.
enum Digests {
    /// The SHA-256 only: the target hashes the bytes and compares.
    Checked(oneshot::Sender<[u8; 32]>),
    /// The SHA-256 and CRC32C: the target checks the CRC32C and records
    /// the SHA-256 as given.
    Vouched(oneshot::Sender<([u8; 32], u32)>),
}

impl Digests {
    /// Sends the trailers' digests; a put that already ended has its own
    /// result to say why.
    fn send(self, sha256: [u8; 32], crc32c: u32) {
        match self {
            Digests::Checked(sender) => drop(sender.send(sha256)),
            Digests::Vouched(sender) => drop(sender.send((sha256, crc32c))),
        }
    }
}

/// Put tasks, aborted if the write is dropped half-way.
struct Tasks(Vec<JoinHandle<Result<ChunkInfo>>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

fn check_servers(id: ChunkId, targets: &[String], candidates: &[String]) -> Result<()> {
    let count = targets.len().saturating_add(candidates.len());
    if targets.is_empty() || count > limits::REPLICAS_MAX {
        return Err(ChunkError::ReplicasUnavailable {
            id,
            detail: format!(
                "{} targets and {} candidates given (1..={} servers)",
                targets.len(),
                candidates.len(),
                limits::REPLICAS_MAX
            ),
        });
    }
    let mut all: Vec<&String> = targets.iter().chain(candidates).collect();
    all.sort();
    all.dedup();
    if all.len() != count {
        return Err(ChunkError::ReplicasUnavailable {
            id,
            detail: "a server is named twice among targets and candidates".to_owned(),
        });
    }
    Ok(())
}

fn describe(failures: &[(String, String)]) -> String {
    let mut text = String::new();
    for (i, (server, error)) in failures.iter().enumerate() {
        if i > 0 {
            text.push_str("; ");
        }
        let _ = write!(text, "{server}: {error}");
    }
    text
}

/// The state of a failover read.
struct Failover {
    id: ChunkId,
    start: u64,
    /// First byte not yet delivered.
    pos: u64,
    end: u64,
    replicas: Vec<ChunkClient>,
    /// The next replica to try.
    next: usize,
    /// The replica being read and its stream.
    current: Option<(usize, BoxStream<'static, Result<Bytes>>)>,
    failures: Vec<(String, String)>,
    all_not_found: bool,
    expected: Option<[u8; 32]>,
    repairer: Option<Repairer>,
    done: bool,
    /// How long a replica gets to answer while another is left to try
    /// (the last one gets the client's whole request timeout).
    lag: std::time::Duration,
}

impl Failover {
    /// Opens the next replica that answers for `pos..end`.
    async fn open(&mut self) -> Result<ChunkInfo> {
        while let Some(client) = self.replicas.get(self.next).cloned() {
            let index = self.next;
            self.next += 1;
            // A frozen replica (its socket accepts, nothing answers) is
            // left for the next after the lag timeout, not the request's.
            let read = client.get(self.id, self.pos..self.end);
            let answer = if self.next < self.replicas.len() {
                tokio::time::timeout(self.lag, read)
                    .await
                    .unwrap_or_else(|_| {
                        Err(ChunkError::Network {
                            server: client.addr().to_owned(),
                            detail: format!(
                                "no answer within {:?}; trying the next replica",
                                self.lag
                            ),
                        })
                    })
            } else {
                read.await
            };
            let error = match answer {
                Ok(read)
                    if self
                        .expected
                        .is_none_or(|expected| expected == read.info.sha256) =>
                {
                    self.current = Some((index, read.body));
                    return Ok(read.info);
                }
                Ok(read) => ChunkError::Corrupt {
                    id: self.id,
                    detail: format!(
                        "{} holds SHA-256 {}, not the expected one",
                        client.addr(),
                        hex::encode(read.info.sha256)
                    ),
                },
                // The range is wrong for the chunk, not for this replica.
                Err(error @ ChunkError::InvalidRange { .. }) if self.pos == self.start => {
                    return Err(error);
                }
                Err(error) => error,
            };
            self.fail(index, &client, error, None);
        }
        Err(if self.all_not_found {
            ChunkError::NotFound(self.id)
        } else {
            ChunkError::ReplicasUnavailable {
                id: self.id,
                detail: describe(&self.failures),
            }
        })
    }

    async fn next_piece(&mut self) -> Option<Result<Bytes>> {
        if self.done {
            return None;
        }
        loop {
            if self.current.is_none()
                && let Err(error) = self.open().await
            {
                self.done = true;
                return Some(Err(error));
            }
            let (index, body) = self.current.as_mut()?;
            let index = *index;
            match body.next().await {
                Some(Ok(piece)) => {
                    self.pos = self
                        .pos
                        .saturating_add(u64::try_from(piece.len()).unwrap_or(u64::MAX));
                    return Some(Ok(piece));
                }
                // ChunkClient::get ends cleanly only after every byte.
                None => {
                    self.done = true;
                    return None;
                }
                Some(Err(error)) => {
                    self.current = None;
                    if let Some(client) = self.replicas.get(index).cloned() {
                        tracing::warn!(id = %self.id, server = client.addr(), %error, pos = self.pos, "replica read broke off; failing over");
                        let probe = (self.pos < self.end).then_some(self.pos);
                        self.fail(index, &client, error, probe);
                    }
                }
            }
        }
    }

    /// Records a failed replica and, if its copy looks bad, asks for its
    /// repair from the others.
    fn fail(&mut self, index: usize, client: &ChunkClient, error: ChunkError, probe: Option<u64>) {
        let bad_copy = matches!(error, ChunkError::NotFound(_) | ChunkError::Corrupt { .. });
        if !matches!(error, ChunkError::NotFound(_)) {
            self.all_not_found = false;
        }
        self.failures
            .push((client.addr().to_owned(), error.to_string()));
        let probe = match (bad_copy, probe, &error) {
            (true, _, _) => None,
            (false, Some(probe), ChunkError::Network { .. }) => Some(probe),
            _ => return,
        };
        let Some(repairer) = &self.repairer else {
            tracing::warn!(id = %self.id, server = client.addr(), "replica needs repair; no repairer");
            return;
        };
        let sources = self
            .replicas
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, other)| other.addr().to_owned())
            .collect();
        repairer.submit(RepairJob {
            id: self.id,
            target: client.addr().to_owned(),
            sources,
            sha256: self.expected,
            probe,
        });
    }
}
