//! `MetaClient`: the async API the gateway (and later chunk servers) use.
//! It proposes commands through Raft and serves linearizable reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redb::{ReadTransaction, ReadableDatabase};

use crate::command::{ChunkOwnership, Command, CommandResult, Reply, WriteCondition};
use crate::error::{MetaError, Result};
use crate::listing::{ListPage, ListRequest};
use crate::multipart::{
    self, CompletedPart, ListUploadsRequest, PartRecord, PartsPage, UploadId, UploadRecord,
    UploadsPage,
};
use crate::namespace::GcEntry;
use crate::node::NodeInner;
use crate::object::{BucketInfo, ObjectVersion, OverwritePolicy};
use crate::object::{ChunkId, ObjectChecksum};
use crate::raft::batcher;
use crate::raft::types::{Proposal, RequestId};
use crate::{keys, listing, namespace};

/// Bound on confirming leadership for a read.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Cheap to clone; every clone talks to the same metadata group.
#[derive(Clone)]
pub struct MetaClient {
    node: Arc<NodeInner>,
    /// Random per client; with `seq`, makes every proposal's [`RequestId`].
    client_id: u64,
    /// Shared by clones, so their request ids never collide.
    seq: Arc<AtomicU64>,
}

fn unexpected(reply: Reply) -> MetaError {
    MetaError::Corrupt(format!("unexpected reply {reply:?}"))
}

impl MetaClient {
    pub(crate) fn new(node: Arc<NodeInner>) -> MetaClient {
        MetaClient {
            node,
            client_id: rand::random(),
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
    /// [`crate::raft::state_store::REQUESTS_REMEMBERED_MAX`] results.
    pub async fn propose(&self, proposal: Proposal) -> CommandResult {
        self.node.proposer.propose(proposal).await
    }

    async fn write(&self, command: Command) -> CommandResult {
        let request_id = self.next_request_id();
        self.propose(Proposal {
            request_id,
            command,
        })
        .await
    }

    /// Confirms leadership (ReadIndex) and that the state machine has
    /// applied up to the read index, then runs `read` on a read transaction
    /// of the state database, off the async threads.
    async fn read<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    {
        match tokio::time::timeout(READ_TIMEOUT, self.node.raft.ensure_linearizable()).await {
            Ok(Ok(_read_log_id)) => {}
            Ok(Err(e)) => return Err(batcher::read_error(e)),
            Err(_) => return Err(MetaError::Timeout),
        }
        let db = self.node.state_db()?;
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            read(&txn)
        })
        .await
        .map_err(|e| MetaError::Storage(format!("read task failed: {e}")))?
    }

    /// Creates bucket `name` (validated against S3 naming rules).
    /// `created_ms` is the creation time chosen by the caller.
    pub async fn create_bucket(&self, name: &str, created_ms: i64) -> Result<BucketInfo> {
        keys::validate_bucket_name(name)?;
        match self
            .write(Command::CreateBucket {
                name: name.to_owned(),
                created_ms,
            })
            .await?
        {
            Reply::Bucket(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }
    /// Deletes an empty bucket (`BucketNotEmpty` otherwise).
    pub async fn delete_bucket(&self, name: &str) -> Result<()> {
        match self
            .write(Command::DeleteBucket {
                name: name.to_owned(),
            })
            .await?
        {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
    /// Linearizable: `NoSuchBucket` if it does not exist.
    pub async fn head_bucket(&self, name: &str) -> Result<BucketInfo> {
        let name = name.to_owned();
        self.read(move |txn| namespace::get_bucket(txn, &name))
            .await
    }
    /// Linearizable; sorted by name.
    pub async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        self.read(namespace::list_buckets).await
    }
    /// Commits `version`, whose chunks were just written for it, as the
    /// current version of `bucket/key`; returns it with its generation (the
    /// Raft log index of the commit).
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        version: ObjectVersion,
        condition: WriteCondition,
    ) -> Result<ObjectVersion> {
        self.commit_version(bucket, key, version, condition, ChunkOwnership::Fresh)
            .await
    }
    /// Commits `version`, whose chunks it shares with a live version (the
    /// source of a copy), as the current version of `bucket/key`. Refused
    /// with `Conflict` if a chunk lost its last reference meanwhile.
    pub async fn copy_object(
        &self,
        bucket: &str,
        key: &str,
        version: ObjectVersion,
        condition: WriteCondition,
    ) -> Result<ObjectVersion> {
        self.commit_version(bucket, key, version, condition, ChunkOwnership::Shared)
            .await
    }
    async fn commit_version(
        &self,
        bucket: &str,
        key: &str,
        version: ObjectVersion,
        condition: WriteCondition,
        ownership: ChunkOwnership,
    ) -> Result<ObjectVersion> {
        keys::validate_key(key)?;
        let command = Command::PutObject {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version,
            condition,
            ownership,
        };
        match self.write(command).await? {
            Reply::Object(version) => Ok(version),
            other => Err(unexpected(other)),
        }
    }
    /// Linearizable read of the current version.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<ObjectVersion> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.read(move |txn| namespace::get_object(txn, &bucket, &key))
            .await
    }
    /// Deletes the current version; Ok(false) if there was none.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<bool> {
        keys::validate_key(key)?;
        match self
            .write(Command::DeleteObject {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            })
            .await?
        {
            Reply::Deleted { existed } => Ok(existed),
            other => Err(unexpected(other)),
        }
    }
    /// Linearizable listing page.
    pub async fn list_objects(&self, bucket: &str, request: &ListRequest) -> Result<ListPage> {
        let (bucket, request) = (bucket.to_owned(), request.clone());
        self.read(move |txn| listing::list_objects(txn, &bucket, &request))
            .await
    }

    // ------------------------------------------------------- multipart

    pub async fn create_multipart_upload(&self, upload: UploadRecord) -> Result<()> {
        keys::validate_key(&upload.key)?;
        match self
            .write(Command::CreateMultipartUpload { upload })
            .await?
        {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
    /// Linearizable: the upload, or `NoSuchUpload`.
    pub async fn get_upload(&self, upload_id: UploadId) -> Result<UploadRecord> {
        self.read(move |txn| multipart::get_upload(txn, &upload_id))
            .await
    }
    /// Records a part whose chunks were just written for it.
    pub async fn upload_part(&self, upload_id: UploadId, part: PartRecord) -> Result<()> {
        self.upload_part_sharing(upload_id, part, Vec::new()).await
    }
    /// Records a part some of whose chunks (`shared`) belong to live
    /// versions (UploadPartCopy); `Conflict` if one lost its last reference.
    pub async fn upload_part_sharing(
        &self,
        upload_id: UploadId,
        part: PartRecord,
        shared: Vec<ChunkId>,
    ) -> Result<()> {
        match self
            .write(Command::UploadPart {
                upload_id,
                part,
                shared,
            })
            .await?
        {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
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
        let command = Command::CompleteMultipartUpload {
            upload_id,
            parts,
            checksum,
            last_modified_ms,
            condition,
        };
        match self.write(command).await? {
            Reply::Object(version) => Ok(version),
            other => Err(unexpected(other)),
        }
    }
    pub async fn abort_multipart_upload(&self, upload_id: UploadId) -> Result<()> {
        match self
            .write(Command::AbortMultipartUpload { upload_id })
            .await?
        {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
    /// Aborts uploads initiated before `initiated_before_ms`, at most
    /// `limit`; returns how many.
    pub async fn expire_uploads(&self, initiated_before_ms: i64, limit: u32) -> Result<u32> {
        match self
            .write(Command::ExpireUploads {
                initiated_before_ms,
                limit,
            })
            .await?
        {
            Reply::Expired { count } => Ok(count),
            other => Err(unexpected(other)),
        }
    }
    /// Linearizable page of parts numbered above `after`.
    pub async fn list_parts(
        &self,
        upload_id: UploadId,
        after: u32,
        max: usize,
    ) -> Result<PartsPage> {
        self.read(move |txn| multipart::list_parts(txn, &upload_id, after, max))
            .await
    }
    /// Linearizable page of in-progress uploads.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        request: &ListUploadsRequest,
    ) -> Result<UploadsPage> {
        let (bucket, request) = (bucket.to_owned(), request.clone());
        self.read(move |txn| multipart::list_uploads(txn, &bucket, &request))
            .await
    }

    // -------------------------------------------------- garbage collection

    /// Up to `limit` GC-queue records after `after` (in queue order).
    pub async fn gc_queue(&self, after: Option<(u64, u32)>, limit: usize) -> Result<Vec<GcEntry>> {
        self.read(move |txn| namespace::gc_queue(txn, after, limit))
            .await
    }
    /// For each id, whether any version or part references it.
    pub async fn chunks_referenced(&self, ids: Vec<ChunkId>) -> Result<Vec<bool>> {
        self.read(move |txn| namespace::chunks_referenced(txn, &ids))
            .await
    }
    /// Removes GC-queue records whose chunks have been deleted.
    pub async fn gc_ack(&self, records: Vec<(u64, u32)>) -> Result<()> {
        match self.write(Command::GcAck { records }).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Replaces the tags of the current version of `bucket/key`.
    pub async fn put_object_tags(
        &self,
        bucket: &str,
        key: &str,
        tags: Vec<(String, String)>,
    ) -> Result<()> {
        keys::validate_key(key)?;
        let command = Command::PutObjectTags {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            tags,
        };
        match self.write(command).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Sets the bucket's overwrite policy; returns the updated bucket.
    pub async fn set_overwrite_policy(
        &self,
        bucket: &str,
        policy: OverwritePolicy,
    ) -> Result<BucketInfo> {
        let command = Command::SetOverwritePolicy {
            bucket: bucket.to_owned(),
            policy,
        };
        match self.write(command).await? {
            Reply::Bucket(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }
}
