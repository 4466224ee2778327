//! `MetaClient`: the async API the gateway (and later chunk servers) use.
//! It proposes commands through Raft and serves linearizable reads, either
//! in-process on a [`crate::MetaNode`] ([`MetaClient`] from
//! [`crate::MetaNode::client`]) or over HTTP to a cluster
//! ([`MetaClient::remote`]).
//!
//! The remote transport finds the leader and follows `NotLeader` redirects
//! (the leader's address comes from openraft's `ForwardToLeader`). When it
//! gets no answer, or an answer that says "not now" (no leader known, no
//! quorum, timeout, shutting down), it retries on the next node after a
//! backoff, resending a proposal with the SAME request id, so a retried
//! write applies at most once (dedup in the state machine). A redirect to
//! the node that just failed is not followed: the others are asked until
//! one names a new leader. Every call is bounded by
//! [`RemoteConfig::call_timeout`] and [`crate::limits::REMOTE_ATTEMPTS_MAX`]
//! attempts.
//!
//! A leader that is paused (SIGSTOP, a VM frozen) keeps its connections
//! open and answers nothing. So an attempt that has no answer after
//! [`RemoteConfig::suspect_after`] asks the other nodes, every
//! [`RemoteConfig::probe_interval`], which leader they follow; as soon as
//! one names another, the attempt is abandoned and resent there (same
//! request id again). A slow but healthy leader is waited for: the others
//! still name it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::chunks::{
    ChunkCounts, ChunkRecords, ChunksReferenced, CollectOrphans, GcAck, GcQueue, ServerChunks,
    UnderReplicated, UpdateChunkReplicas,
};
use crate::clock::{Entropy, OsEntropy};
use crate::command::{CommandResult, ReadOp, WriteOp, mismatched};
use crate::error::{MetaError, Result};
use crate::keys;
use crate::limits::REMOTE_ATTEMPTS_MAX;
use crate::listing::ListObjects;
use crate::multipart::{
    AbortMultipartUpload, CompleteMultipartUpload, CreateMultipartUpload, ExpireUploads,
    GetCompletedUpload, GetUpload, ListParts, ListUploads, UploadPart,
};
use crate::namespace::{
    CreateBucket, CreateBucketAs, DeleteBucket, DeleteObject, DeleteObjectIf, DeleteObjects,
    DeleteObjectsIf, GetBucket, GetBucketTags, GetObject, ListBuckets, PutBucketTags, PutObject,
    PutObjectTags, SetObjectTags, SetOverwritePolicy,
};
use crate::raft::types::{Proposal, RequestId};
use crate::reclaim::{
    DeleteDirectory, ReclaimBatch, ReclaimProgress, ReclaimReport, ReclaimStatus,
};
use crate::records::{
    BucketInfo, ChunkId, ChunkOwnership, ChunkPlacement, ChunkRecord, ChunkServerRecord,
    CompletedPart, CompletedUpload, DeleteCondition, GcEntry, ListPage, ListRequest,
    ListUploadsRequest, ObjectChecksum, ObjectVersion, OverwritePolicy, PartRecord, PartsPage,
    ServerId, ServerStatus, UploadId, UploadRecord, UploadsPage, VersionId, VersionLock,
    WriteCondition,
};
use crate::registry::{
    ChunkServerHeartbeat, ChunkServers, MarkOfflineServers, RegisterChunkServer,
    SetChunkServerStatus,
};
use crate::rename::{
    RenameDirectory, RenameDirectoryUnlessLocked, RenameObject, RenameObjectUnlessLocked,
};
use crate::replica::Replica;
use crate::rpc::{
    AdminRequest, HttpClient, NodeStatus, PATH_ADMIN, PATH_PROPOSE, PATH_READ, TransportError,
};

/// Bound on one admin attempt: above the node's own bounds on a learner
/// catching up (30 s) and a membership change (10 s).
const ADMIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(45);
const _: () = assert!(
    ADMIN_ATTEMPT_TIMEOUT.as_secs()
        > crate::replica::MEMBERSHIP_TIMEOUT.as_secs()
            + crate::replica::LEARNER_CATCH_UP_TIMEOUT.as_secs()
);

/// Redirects followed back to back before pausing like a retry.
const REDIRECTS_WITHOUT_PAUSE_MAX: usize = 2;

/// Timeouts of a remote [`MetaClient`].
#[derive(Clone, Debug)]
pub struct RemoteConfig {
    /// Bound on a whole call, redirects and retries included.
    pub call_timeout: Duration,
    /// Bound on one attempt at one node; then the next node is tried (with
    /// the same request id). An isolated old leader still takes writes and
    /// leaves them hanging (openraft 0.9 has no step-down), so this is what bounds the client's
    /// time stuck on it; a slow but healthy leader just sees the retry
    /// deduplicated.
    pub attempt_timeout: Duration,
    pub connect_timeout: Duration,
    /// First pause between retries when no leader is known; doubles up to
    /// `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long an attempt waits for an answer before the client asks the
    /// other nodes whether the group has moved to another leader.
    pub suspect_after: Duration,
    /// Then how often it asks them again.
    pub probe_interval: Duration,
    /// The cluster's secret, signing every request (see
    /// [`arbor_net::auth`]); `None` for a group without one.
    pub cluster_secret: Option<arbor_net::auth::ClusterSecret>,
}

/// Bound on one question "which leader do you follow?" to another node.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);

impl Default for RemoteConfig {
    /// A gateway's: a request waits at most 10 s for the group to have a
    /// leader (elections take well under a second), below the timeouts of
    /// S3 clients, then fails with a retryable error.
    fn default() -> Self {
        RemoteConfig {
            call_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(5),
            connect_timeout: crate::rpc::CONNECT_TIMEOUT,
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
            suspect_after: Duration::from_millis(200),
            probe_interval: Duration::from_millis(50),
            cluster_secret: None,
        }
    }
}

/// Cheap to clone; every clone talks to the same metadata group.
#[derive(Clone)]
pub struct MetaClient {
    transport: Transport,
    /// Random per client; with `seq`, makes every proposal's [`RequestId`].
    client_id: u64,
    /// Shared by clones, so their request ids never collide.
    seq: Arc<AtomicU64>,
}

#[derive(Clone)]
enum Transport {
    /// Calls into a replica of this process.
    Local(Arc<Replica>),
    /// HTTP to a cluster, following the leader.
    Remote(Arc<Remote>),
}

impl MetaClient {
    /// A client of a replica in this process.
    /// Draws its client id from `entropy` (the node's: seeded in a
    /// simulation).
    pub(crate) fn local(replica: Arc<Replica>, entropy: &dyn Entropy) -> MetaClient {
        MetaClient::with_transport(Transport::Local(replica), entropy)
    }

    /// A client of the cluster whose nodes listen at `addrs` (`host:port`,
    /// any subset of the members), with default timeouts.
    pub fn remote(addrs: Vec<String>) -> MetaClient {
        MetaClient::remote_with(addrs, RemoteConfig::default())
    }

    /// [`MetaClient::remote`] with explicit timeouts.
    pub fn remote_with(addrs: Vec<String>, config: RemoteConfig) -> MetaClient {
        MetaClient::remote_seeded(addrs, config, &OsEntropy)
    }

    /// [`MetaClient::remote_with`], drawing the client id from `entropy`.
    pub fn remote_seeded(
        addrs: Vec<String>,
        config: RemoteConfig,
        entropy: &dyn Entropy,
    ) -> MetaClient {
        let transport = Transport::Remote(Arc::new(Remote {
            http: HttpClient::new(config.connect_timeout)
                .with_secret(config.cluster_secret.clone()),
            addrs,
            leader: Mutex::new(None),
            next: AtomicUsize::new(0),
            config,
        }));
        MetaClient::with_transport(transport, entropy)
    }

    fn with_transport(transport: Transport, entropy: &dyn Entropy) -> MetaClient {
        MetaClient {
            transport,
            client_id: entropy.next_u64(),
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A request id never used by this client (or its clones) before.
    pub fn next_request_id(&self) -> RequestId {
        RequestId {
            client: self.client_id,
            seq: self.seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1),
        }
    }

    /// Proposes `proposal` through Raft (group-committed with others) and
    /// returns its result. Resubmitting a proposal with the same request id
    /// (e.g. after `Timeout`) returns the first result without applying it
    /// twice, as long as it is among the most recent
    /// [`crate::raft::state_store::REQUESTS_REMEMBERED_MAX`] results. A
    /// remote client does so itself across leader changes.
    pub async fn propose(&self, proposal: Proposal) -> CommandResult {
        match &self.transport {
            Transport::Local(replica) => replica.proposer.propose(proposal).await,
            Transport::Remote(remote) => remote.call(PATH_PROPOSE, &proposal).await,
        }
    }

    /// Proposes the write `op` and returns its own reply.
    pub async fn write<W: WriteOp>(&self, op: W) -> Result<W::Reply> {
        let request_id = self.next_request_id();
        let reply = self
            .propose(Proposal {
                request_id,
                command: op.into(),
            })
            .await?;
        W::from_reply(reply).ok_or_else(|| mismatched("write"))
    }

    /// Runs the read `op` linearizably (see `Replica::query`).
    pub async fn read<R: ReadOp>(&self, op: R) -> Result<R::Reply> {
        match &self.transport {
            Transport::Local(replica) => replica.query(op).await,
            Transport::Remote(remote) => {
                op.validate()?;
                let reply = remote.call(PATH_READ, &op.into()).await?;
                R::from_reply(reply).ok_or_else(|| mismatched("read"))
            }
        }
    }

    /// A membership change (on the leader).
    async fn change(&self, request: AdminRequest) -> Result<()> {
        match &self.transport {
            Transport::Local(replica) => replica.change(request).await,
            Transport::Remote(remote) => {
                // Membership changes wait for a learner to catch up or for
                // joint consensus: give them the server's own bound.
                let attempt = remote.config.attempt_timeout.max(ADMIN_ATTEMPT_TIMEOUT);
                let call = remote.config.call_timeout.max(attempt);
                remote
                    .call_bounded(PATH_ADMIN, &request, attempt, call)
                    .await
            }
        }
    }

    /// Adds node `id`, reachable at `addr`, as a learner (on the leader)
    /// and waits, bounded, until it has caught up.
    pub async fn add_learner(&self, id: u64, addr: &str) -> Result<()> {
        self.change(AdminRequest::AddLearner {
            id,
            addr: addr.to_owned(),
        })
        .await
    }

    /// Makes `voters` the voter set (on the leader); members left out leave.
    pub async fn change_membership(&self, voters: BTreeSet<u64>) -> Result<()> {
        self.change(AdminRequest::ChangeMembership { voters }).await
    }

    /// Removes node `id` from the group (on the leader).
    pub async fn remove_node(&self, id: u64) -> Result<()> {
        self.change(AdminRequest::RemoveNode { id }).await
    }

    /// The status of the node that answers (the leader when one is known).
    pub async fn status(&self) -> Result<NodeStatus> {
        match &self.transport {
            Transport::Local(replica) => Ok(replica.status()),
            Transport::Remote(remote) => remote.call(PATH_ADMIN, &AdminRequest::Status).await,
        }
    }

    /// Creates bucket `name` (validated against S3 naming rules).
    /// `created_ms` is the creation time chosen by the caller.
    pub async fn create_bucket(&self, name: &str, created_ms: i64) -> Result<BucketInfo> {
        keys::validate_bucket_name(name)?;
        let name = name.to_owned();
        self.write(CreateBucket { name, created_ms }).await
    }
    /// Creates a bucket owned by `access_key`, which must be allowed to
    /// create buckets; with `object_lock`, with versioning enabled and
    /// Object Lock on.
    pub async fn create_bucket_as(
        &self,
        name: &str,
        created_ms: i64,
        access_key: &str,
        object_lock: bool,
    ) -> Result<BucketInfo> {
        keys::validate_bucket_name(name)?;
        let bucket = CreateBucket {
            name: name.to_owned(),
            created_ms,
        };
        let access_key = access_key.to_owned();
        self.write(CreateBucketAs {
            bucket,
            access_key,
            object_lock,
        })
        .await
    }
    /// Deletes an empty bucket (`BucketNotEmpty` otherwise).
    pub async fn delete_bucket(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write(DeleteBucket { name }).await
    }
    /// Linearizable: `NoSuchBucket` if it does not exist.
    pub async fn head_bucket(&self, name: &str) -> Result<BucketInfo> {
        let name = name.to_owned();
        self.read(GetBucket { name }).await
    }
    /// Linearizable; sorted by name.
    pub async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        self.read(ListBuckets).await
    }
    /// Commits `version`, whose chunks were just written for it, as the
    /// current version of `bucket/key`; returns it with its generation (the
    /// Raft log index of the commit).
    /// `placements` says where the replicas of its chunks are (empty for a
    /// local store).
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        version: ObjectVersion,
        condition: WriteCondition,
        placements: Vec<ChunkPlacement>,
    ) -> Result<ObjectVersion> {
        self.put_object_locked(bucket, key, version, condition, placements, None)
            .await
    }
    /// As [`MetaClient::put_object`], setting `lock` (Object Lock headers)
    /// on the version in the same command.
    pub async fn put_object_locked(
        &self,
        bucket: &str,
        key: &str,
        version: ObjectVersion,
        condition: WriteCondition,
        placements: Vec<ChunkPlacement>,
        lock: Option<VersionLock>,
    ) -> Result<ObjectVersion> {
        keys::validate_key(key)?;
        self.write(PutObject {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version,
            condition,
            ownership: ChunkOwnership::Fresh,
            placements,
            lock,
        })
        .await
    }
    /// Commits `version`, whose chunks it shares with a live version (the
    /// source of a copy), as the current version of `bucket/key`. Refused
    /// with `Conflict` if a chunk lost its last reference meanwhile.
    /// `lock` (Object Lock headers) is set on the copy in the same command.
    pub async fn copy_object(
        &self,
        bucket: &str,
        key: &str,
        version: ObjectVersion,
        condition: WriteCondition,
        lock: Option<VersionLock>,
    ) -> Result<ObjectVersion> {
        keys::validate_key(key)?;
        self.write(PutObject {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version,
            condition,
            ownership: ChunkOwnership::Shared,
            placements: Vec::new(),
            lock,
        })
        .await
    }
    /// Linearizable read of the current version.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<ObjectVersion> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.read(GetObject { bucket, key }).await
    }
    /// Deletes the current version; Ok(false) if there was none.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<bool> {
        keys::validate_key(key)?;
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.write(DeleteObject { bucket, key }).await
    }
    /// Deletes the current version of each key in one command; per key,
    /// whether one existed or why it could not be deleted.
    pub async fn delete_objects(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Result<bool, MetaError>>> {
        let count = keys.len();
        let bucket = bucket.to_owned();
        let outcomes = self.write(DeleteObjects { bucket, keys }).await?;
        if outcomes.len() != count {
            return Err(MetaError::Corrupt(format!(
                "{} outcomes for {count} keys",
                outcomes.len()
            )));
        }
        Ok(outcomes)
    }
    /// Deletes the current version if `condition` holds of it, checked in
    /// the same apply: `PreconditionFailed` or `NoSuchKey` otherwise.
    pub async fn delete_object_if(
        &self,
        bucket: &str,
        key: &str,
        condition: DeleteCondition,
    ) -> Result<bool> {
        keys::validate_key(key)?;
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.write(DeleteObjectIf {
            bucket,
            key,
            condition,
        })
        .await
    }
    /// [`delete_objects`](Self::delete_objects) with a condition per key.
    pub async fn delete_objects_if(
        &self,
        bucket: &str,
        objects: Vec<(String, Option<DeleteCondition>)>,
    ) -> Result<Vec<Result<bool, MetaError>>> {
        let count = objects.len();
        let bucket = bucket.to_owned();
        let outcomes = self.write(DeleteObjectsIf { bucket, objects }).await?;
        if outcomes.len() != count {
            return Err(MetaError::Corrupt(format!(
                "{} outcomes for {count} keys",
                outcomes.len()
            )));
        }
        Ok(outcomes)
    }
    /// Linearizable listing page.
    pub async fn list_objects(&self, bucket: &str, request: &ListRequest) -> Result<ListPage> {
        let (bucket, request) = (bucket.to_owned(), request.clone());
        self.read(ListObjects { bucket, request }).await
    }
}

/// The HTTP transport of a remote client.
struct Remote {
    http: HttpClient,
    /// The nodes to try, in turn, when no leader is known.
    addrs: Vec<String>,
    /// The last leader seen (from a redirect or a successful answer).
    leader: Mutex<Option<String>>,
    /// Round-robin position in `addrs`.
    next: AtomicUsize,
    config: RemoteConfig,
}

/// What one attempt tells the retry loop.
enum Attempt<T> {
    Done(Result<T>),
    /// Try `addr` at once (a redirect to a node not just tried).
    Redirect(String),
    /// Back off, then try another node; `error` is returned if time runs out.
    Retry(MetaError),
}

impl Remote {
    fn leader(&self) -> Option<String> {
        self.leader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_leader(&self, leader: Option<String>) {
        *self.leader.lock().unwrap_or_else(PoisonError::into_inner) = leader;
    }

    /// The known leader, else the next address in turn.
    fn pick(&self) -> Option<String> {
        if let Some(leader) = self.leader() {
            return Some(leader);
        }
        if self.addrs.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len();
        self.addrs.get(i).cloned()
    }

    /// Sends `request` to the leader, following redirects and retrying
    /// (same request body, hence same request id) until an answer that
    /// settles it, the deadline, or the attempt limit.
    async fn call<Q, T>(&self, path: &str, request: &Q) -> Result<T>
    where
        Q: Serialize,
        T: DeserializeOwned,
    {
        self.call_bounded(
            path,
            request,
            self.config.attempt_timeout,
            self.config.call_timeout,
        )
        .await
    }

    /// [`Remote::call`] with explicit bounds.
    async fn call_bounded<Q, T>(
        &self,
        path: &str,
        request: &Q,
        attempt_timeout: Duration,
        call_timeout: Duration,
    ) -> Result<T>
    where
        Q: Serialize,
        T: DeserializeOwned,
    {
        let deadline = Instant::now() + call_timeout;
        let mut backoff = self.config.backoff_min;
        let mut last_error = MetaError::Unavailable("no metadata node address".into());
        let mut target = self.pick();
        let mut redirects = 0usize;
        // The node the last attempt failed at (no answer, or "not now").
        let mut failed: Option<String> = None;
        for _ in 0..REMOTE_ATTEMPTS_MAX {
            let Some(addr) = target.take() else {
                return Err(last_error);
            };
            let now = Instant::now();
            let Some(left) = deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                return Err(last_error);
            };
            let timeout = left.min(attempt_timeout);
            let answer: std::result::Result<Result<T>, TransportError> = tokio::select! {
                answer = self.http.call(&addr, path, request, timeout) => answer,
                moved = self.leader_moved(&addr) => {
                    // `addr` is silent and the group follows another
                    // leader: resend there (same request id).
                    tracing::debug!(%addr, leader = %moved, "leader moved while waiting");
                    self.set_leader(Some(moved.clone()));
                    target = Some(moved);
                    continue;
                }
            };
            let judged = match self.judge(&addr, answer) {
                // A follower still names the node that just failed: ask
                // the others (after a pause) until one names its successor.
                Attempt::Redirect(leader) if failed.as_deref() == Some(leader.as_str()) => {
                    self.set_leader(None);
                    Attempt::Retry(MetaError::NotLeader {
                        leader: Some(leader),
                    })
                }
                Attempt::Retry(error) => {
                    if !matches!(error, MetaError::NotLeader { .. }) {
                        failed = Some(addr.clone());
                    }
                    Attempt::Retry(error)
                }
                other => other,
            };
            match judged {
                Attempt::Done(result) => {
                    // Only the leader settles a call.
                    self.set_leader(Some(addr));
                    return result;
                }
                Attempt::Redirect(leader) => {
                    redirects += 1;
                    if redirects > REDIRECTS_WITHOUT_PAUSE_MAX {
                        // Nodes disagree on the leader (an election is
                        // settling): do not spin between them.
                        let left = deadline.saturating_duration_since(Instant::now());
                        tokio::time::sleep(backoff.min(left)).await;
                        backoff = (backoff * 2).min(self.config.backoff_max);
                    }
                    self.set_leader(Some(leader.clone()));
                    target = Some(leader);
                }
                Attempt::Retry(error) => {
                    tracing::debug!(%addr, %error, "meta call failed; retrying");
                    last_error = error;
                    let left = deadline.saturating_duration_since(Instant::now());
                    tokio::time::sleep(backoff.min(left)).await;
                    backoff = (backoff * 2).min(self.config.backoff_max);
                    target = self.pick();
                }
            }
        }
        Err(last_error)
    }

    /// Resolves, once `addr` has been silent for
    /// [`RemoteConfig::suspect_after`], with the address of the leader
    /// another node follows if it is not `addr`; stays pending while the
    /// others still follow `addr` (or do not answer either).
    async fn leader_moved(&self, addr: &str) -> String {
        tokio::time::sleep(self.config.suspect_after).await;
        loop {
            for other in self.addrs.iter().filter(|a| a.as_str() != addr) {
                let status: std::result::Result<Result<NodeStatus>, TransportError> = self
                    .http
                    .call(other, PATH_ADMIN, &AdminRequest::Status, PROBE_TIMEOUT)
                    .await;
                if let Ok(Ok(status)) = status
                    && let Some(leader) = followed_leader(&status)
                    && leader != addr
                {
                    return leader;
                }
            }
            tokio::time::sleep(self.config.probe_interval).await;
        }
    }

    /// Classifies one attempt at `addr`.
    fn judge<T>(
        &self,
        addr: &str,
        answer: std::result::Result<Result<T>, TransportError>,
    ) -> Attempt<T> {
        match answer {
            Ok(Err(MetaError::NotLeader {
                leader: Some(leader),
            })) if leader != addr => Attempt::Redirect(leader),
            Ok(Err(e @ MetaError::NotLeader { .. })) => {
                // No leader known yet (or a stale one pointing at itself).
                self.set_leader(None);
                Attempt::Retry(e)
            }
            Ok(Err(
                e @ (MetaError::Unavailable(_) | MetaError::Timeout | MetaError::ShuttingDown),
            )) => {
                self.set_leader(None);
                Attempt::Retry(e)
            }
            Ok(result) => Attempt::Done(result),
            Err(TransportError::Timeout { .. }) => {
                self.set_leader(None);
                Attempt::Retry(MetaError::Timeout)
            }
            Err(e) => {
                self.set_leader(None);
                Attempt::Retry(MetaError::Unavailable(e.to_string()))
            }
        }
    }
}

/// The address of the leader `status`'s node follows (itself, if it
/// leads), when it knows one.
fn followed_leader(status: &NodeStatus) -> Option<String> {
    let leader = status.leader?;
    status
        .voters
        .iter()
        .chain(&status.learners)
        .find(|(id, _)| *id == leader)
        .map(|(_, addr)| addr.clone())
        .filter(|addr| !addr.is_empty())
}

impl MetaClient {
    // ------------------------------------------------------- multipart

    pub async fn create_multipart_upload(&self, upload: UploadRecord) -> Result<()> {
        keys::validate_key(&upload.key)?;
        self.write(CreateMultipartUpload { upload }).await
    }
    /// Linearizable: the upload, or `NoSuchUpload`.
    pub async fn get_upload(&self, upload_id: UploadId) -> Result<UploadRecord> {
        self.read(GetUpload { upload_id }).await
    }
    /// Replaces a bucket's tags (empty: removes them).
    pub async fn put_bucket_tags(&self, bucket: &str, tags: Vec<(String, String)>) -> Result<()> {
        let bucket = bucket.to_owned();
        self.write(PutBucketTags { bucket, tags }).await
    }
    /// A bucket's tags, empty if it has none.
    pub async fn get_bucket_tags(&self, bucket: &str) -> Result<Vec<(String, String)>> {
        let bucket = bucket.to_owned();
        self.read(GetBucketTags { bucket }).await
    }
    /// The completed upload, if still remembered.
    pub async fn get_completed_upload(
        &self,
        upload_id: UploadId,
    ) -> Result<Option<CompletedUpload>> {
        self.read(GetCompletedUpload { upload_id }).await
    }
    /// Records a part whose chunks were just written for it.
    pub async fn upload_part(
        &self,
        upload_id: UploadId,
        part: PartRecord,
        placements: Vec<ChunkPlacement>,
    ) -> Result<()> {
        self.upload_part_sharing(upload_id, part, Vec::new(), placements)
            .await
    }
    /// Records a part some of whose chunks (`shared`) belong to live
    /// versions (UploadPartCopy); `Conflict` if one lost its last reference.
    pub async fn upload_part_sharing(
        &self,
        upload_id: UploadId,
        part: PartRecord,
        shared: Vec<ChunkId>,
        placements: Vec<ChunkPlacement>,
    ) -> Result<()> {
        self.write(UploadPart {
            upload_id,
            part,
            shared,
            placements,
        })
        .await
    }
    /// Commits the object formed by `parts`; returns its version.
    pub async fn complete_multipart_upload(
        &self,
        upload_id: UploadId,
        parts: Vec<CompletedPart>,
        checksum: Option<ObjectChecksum>,
        last_modified_ms: i64,
        condition: WriteCondition,
    ) -> Result<ObjectVersion> {
        self.write(CompleteMultipartUpload {
            upload_id,
            parts,
            checksum,
            last_modified_ms,
            condition,
        })
        .await
    }
    pub async fn abort_multipart_upload(&self, upload_id: UploadId) -> Result<()> {
        self.write(AbortMultipartUpload { upload_id }).await
    }
    /// Aborts uploads initiated before `initiated_before_ms`, at most
    /// `limit`; returns how many.
    pub async fn expire_uploads(&self, initiated_before_ms: i64, limit: u32) -> Result<u32> {
        self.write(ExpireUploads {
            initiated_before_ms,
            limit,
        })
        .await
    }
    /// Linearizable page of parts numbered above `after`.
    pub async fn list_parts(
        &self,
        upload_id: UploadId,
        after: u32,
        max: usize,
    ) -> Result<PartsPage> {
        self.read(ListParts {
            upload_id,
            after,
            max,
        })
        .await
    }
    /// Linearizable page of in-progress uploads.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        request: &ListUploadsRequest,
    ) -> Result<UploadsPage> {
        let (bucket, request) = (bucket.to_owned(), request.clone());
        self.read(ListUploads { bucket, request }).await
    }

    // -------------------------------------------------- garbage collection

    /// Up to `limit` GC-queue records after `after` (in queue order).
    pub async fn gc_queue(&self, after: Option<(u64, u32)>, limit: usize) -> Result<Vec<GcEntry>> {
        self.read(GcQueue { after, limit }).await
    }
    /// For each id, whether any version or part references it.
    pub async fn chunks_referenced(&self, ids: Vec<ChunkId>) -> Result<Vec<bool>> {
        self.read(ChunksReferenced { ids }).await
    }
    /// The record of each chunk (`None`: not committed, or collected).
    pub async fn chunk_records(&self, ids: Vec<ChunkId>) -> Result<Vec<Option<ChunkRecord>>> {
        self.read(ChunkRecords { ids }).await
    }
    /// Up to `limit` chunks whose records list `server`, after `after`.
    pub async fn server_chunks(
        &self,
        server: ServerId,
        after: Option<ChunkId>,
        limit: usize,
    ) -> Result<Vec<ChunkId>> {
        self.read(ServerChunks {
            server,
            after,
            limit,
        })
        .await
    }
    /// Up to `limit` live chunks with fewer replicas than their factor.
    pub async fn under_replicated(
        &self,
        after: Option<ChunkId>,
        limit: usize,
    ) -> Result<Vec<ChunkId>> {
        self.read(UnderReplicated { after, limit }).await
    }
    /// How many chunk records there are, and how many are under-replicated.
    pub async fn chunk_counts(&self) -> Result<(u64, u64)> {
        let tally = self.read(ChunkCounts).await?;
        Ok((tally.records, tally.under_replicated))
    }
    /// Records that chunk `id` was copied to `add` and that `remove` no
    /// longer hold it; returns the updated record.
    pub async fn update_chunk_replicas(
        &self,
        id: ChunkId,
        add: Vec<ServerId>,
        remove: Vec<ServerId>,
    ) -> Result<ChunkRecord> {
        self.write(UpdateChunkReplicas { id, add, remove }).await
    }
    /// An orphan sweep (see `chunks`): which of `candidates` may be deleted.
    pub async fn collect_orphans(
        &self,
        server: Option<ServerId>,
        candidates: Vec<ChunkId>,
        now_ms: i64,
        grace_ms: i64,
    ) -> Result<Vec<ChunkId>> {
        self.write(CollectOrphans {
            server,
            candidates,
            now_ms,
            grace_ms,
        })
        .await
    }
    /// Removes GC-queue records whose chunks have been deleted.
    pub async fn gc_ack(&self, records: Vec<(u64, u32)>) -> Result<()> {
        self.write(GcAck { records }).await
    }

    /// Replaces the tags of the version of `bucket/key` that `version_id`
    /// names (the current one when `None`); the id of a version named.
    /// The current version is tagged with [`PutObjectTags`], which nodes
    /// of earlier releases apply too, so tagging keeps working while a
    /// group is upgraded node by node; only a named version needs
    /// [`SetObjectTags`].
    pub async fn put_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<VersionId>,
        tags: Vec<(String, String)>,
    ) -> Result<Option<VersionId>> {
        keys::validate_key(key)?;
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        match version_id {
            None => self
                .write(PutObjectTags { bucket, key, tags })
                .await
                .map(|()| None),
            Some(id) => self
                .write(SetObjectTags {
                    bucket,
                    key,
                    version_id: Some(id),
                    tags,
                })
                .await
                .map(Some),
        }
    }

    /// Sets the bucket's overwrite policy; returns the updated bucket.
    pub async fn set_overwrite_policy(
        &self,
        bucket: &str,
        policy: OverwritePolicy,
    ) -> Result<BucketInfo> {
        let bucket = bucket.to_owned();
        self.write(SetOverwritePolicy { bucket, policy }).await
    }
}

/// Renames and recursive deletes on the tree.
impl MetaClient {
    /// Renames an object (see [`RenameObject`]); refused in a bucket with
    /// Object Lock ([`RenameObjectUnlessLocked`]).
    pub async fn rename_object(&self, op: RenameObject) -> Result<()> {
        self.write(RenameObjectUnlessLocked(op)).await
    }
    /// Renames a directory with everything below it (see
    /// [`RenameDirectory`]); refused in a bucket with Object Lock
    /// ([`RenameDirectoryUnlessLocked`]).
    pub async fn rename_directory(&self, op: RenameDirectory) -> Result<()> {
        self.write(RenameDirectoryUnlessLocked(op)).await
    }
    /// Deletes the directory `prefix` with every key below it; whether it
    /// existed. Its metadata and chunks are released in the background.
    pub async fn delete_directory(
        &self,
        bucket: &str,
        prefix: &str,
        deleted_ms: i64,
    ) -> Result<bool> {
        self.write(DeleteDirectory {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            deleted_ms,
        })
        .await
    }
    /// One batch of the reclaimer (see [`ReclaimBatch`]).
    pub async fn reclaim_batch(&self, limit: u32) -> Result<ReclaimProgress> {
        self.write(ReclaimBatch { limit }).await
    }
    /// How far the reclaimer is.
    pub async fn reclaim_status(&self) -> Result<ReclaimReport> {
        self.read(ReclaimStatus).await
    }
}

/// The chunk-server registry.
impl MetaClient {
    pub async fn register_chunk_server(
        &self,
        id: ServerId,
        addr: &str,
        zone: &str,
        capacity: u64,
        now_ms: i64,
    ) -> Result<ChunkServerRecord> {
        self.write(RegisterChunkServer {
            id,
            addr: addr.to_owned(),
            zone: zone.to_owned(),
            capacity,
            now_ms,
        })
        .await
    }
    pub async fn chunk_server_heartbeat(
        &self,
        id: ServerId,
        used: u64,
        chunks: u64,
        now_ms: i64,
    ) -> Result<ChunkServerRecord> {
        self.write(ChunkServerHeartbeat {
            id,
            used,
            chunks,
            now_ms,
        })
        .await
    }
    /// DRAINING or ONLINE, by an operator.
    pub async fn set_chunk_server_status(
        &self,
        id: ServerId,
        status: ServerStatus,
    ) -> Result<ChunkServerRecord> {
        self.write(SetChunkServerStatus { id, status }).await
    }
    /// Marks servers silent for `timeout_ms` OFFLINE; returns their ids.
    pub async fn mark_offline_servers(
        &self,
        now_ms: i64,
        timeout_ms: i64,
    ) -> Result<Vec<ServerId>> {
        self.write(MarkOfflineServers { now_ms, timeout_ms }).await
    }
    /// Linearizable list of registered servers.
    pub async fn chunk_servers(&self) -> Result<Vec<ChunkServerRecord>> {
        self.read(ChunkServers).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> Remote {
        Remote {
            http: HttpClient::default(),
            addrs: vec!["a:1".into(), "b:2".into()],
            leader: Mutex::new(Some("a:1".into())),
            next: AtomicUsize::new(0),
            config: RemoteConfig::default(),
        }
    }

    #[test]
    fn answers_are_classified_for_retry() {
        let r = remote();
        let not_leader = |leader: Option<&str>| -> std::result::Result<Result<()>, _> {
            Ok(Err(MetaError::NotLeader {
                leader: leader.map(str::to_owned),
            }))
        };
        assert!(matches!(
            r.judge("a:1", not_leader(Some("b:2"))),
            Attempt::Redirect(addr) if addr == "b:2"
        ));
        // A node naming itself, or nobody, is not a redirect.
        assert!(matches!(
            r.judge("a:1", not_leader(Some("a:1"))),
            Attempt::Retry(_)
        ));
        assert!(matches!(
            r.judge("a:1", not_leader(None)),
            Attempt::Retry(_)
        ));
        assert_eq!(r.leader(), None, "a retry forgets the leader");
        for e in [
            MetaError::Unavailable("no quorum".into()),
            MetaError::Timeout,
            MetaError::ShuttingDown,
        ] {
            assert!(matches!(
                r.judge::<()>("a:1", Ok(Err(e))),
                Attempt::Retry(_)
            ));
        }
        // Command outcomes settle the call.
        assert!(matches!(
            r.judge::<()>("a:1", Ok(Err(MetaError::NoSuchBucket("b".into())))),
            Attempt::Done(Err(MetaError::NoSuchBucket(_)))
        ));
        assert!(matches!(r.judge("a:1", Ok(Ok(7))), Attempt::Done(Ok(7))));
        // No answer at all: retry elsewhere.
        let refused = TransportError::Connection {
            addr: "a:1".into(),
            reason: "refused".into(),
        };
        assert!(matches!(
            r.judge::<()>("a:1", Err(refused)),
            Attempt::Retry(MetaError::Unavailable(_))
        ));
    }

    #[test]
    fn addresses_are_tried_in_turn_without_a_leader() {
        let r = remote();
        assert_eq!(r.pick().as_deref(), Some("a:1"));
        r.set_leader(None);
        let picks: Vec<String> = (0..4).filter_map(|_| r.pick()).collect();
        assert_eq!(picks, ["a:1", "b:2", "a:1", "b:2"]);
    }
}
