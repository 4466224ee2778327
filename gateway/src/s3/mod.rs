//! The S3 API on Arbor: one module per operation family, joined here into
//! s3s's `S3` trait. Handlers translate between S3 DTOs and the meta and
//! chunk-store APIs; they keep no state between requests.

mod absent;
mod acl;
mod append;
pub(crate) mod bucket;
pub(crate) mod checksum;
mod conditions;
mod cors;
mod encryption;
mod lifecycle;
mod list;
mod list_xml;
mod lock;
mod multipart;
mod object;
mod policy;
pub mod rename;
mod tagging;
mod time;

use std::sync::Arc;

use arbor_chunkstore::ChunkBackend;
use arbor_meta::MetaClient;
use arbor_meta::clock::{Entropy, OsEntropy, SharedClock, SharedEntropy, SystemClock};
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

pub use bucket::OWNER_ID;
pub use list_xml::PrerenderedBody;

/// Settings the handlers need.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    pub chunk_size: u64,
    /// Reported by GetBucketLocation; `None` means us-east-1 (reported as
    /// an empty location, as S3 does).
    pub region: Option<String>,
}

/// The S3 service: cheap to clone, shared by every connection.
#[derive(Clone)]
pub struct Arbor {
    inner: Arc<Inner>,
}

struct Inner {
    meta: MetaClient,
    chunks: ChunkBackend,
    settings: GatewaySettings,
    /// The proposer's clock: last-modified times, bucket creation, upload
    /// initiation.
    clock: SharedClock,
    /// Upload ids.
    entropy: SharedEntropy,
}

impl Arbor {
    /// The service on the system clock and the OS's generator.
    pub fn new(meta: MetaClient, chunks: ChunkBackend, settings: GatewaySettings) -> Self {
        Arbor::with_seams(
            meta,
            chunks,
            settings,
            SystemClock::shared(),
            OsEntropy::shared(),
        )
    }
    /// The service with time and chance handed in.
    pub fn with_seams(
        meta: MetaClient,
        chunks: ChunkBackend,
        settings: GatewaySettings,
        clock: SharedClock,
        entropy: SharedEntropy,
    ) -> Self {
        Arbor {
            inner: Arc::new(Inner {
                meta,
                chunks,
                settings,
                clock,
                entropy,
            }),
        }
    }
    /// Now, on the service's clock.
    fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }
    fn entropy(&self) -> &dyn Entropy {
        self.inner.entropy.as_ref()
    }
    fn meta(&self) -> &MetaClient {
        &self.inner.meta
    }
    fn chunks(&self) -> &ChunkBackend {
        &self.inner.chunks
    }
    fn settings(&self) -> &GatewaySettings {
        &self.inner.settings
    }
}

/// The id `http_server` gives every request, carried in its extensions so
/// S3 error bodies name it as well as the `x-amz-request-id` header.
#[derive(Clone, Debug, Default)]
pub struct RequestId(pub String);

impl RequestId {
    pub(crate) fn of(extensions: &http::Extensions) -> RequestId {
        extensions.get::<RequestId>().cloned().unwrap_or_default()
    }
    pub(crate) fn stamp(&self, mut e: s3s::S3Error) -> s3s::S3Error {
        if !self.0.is_empty() {
            e.set_request_id(self.0.clone());
        }
        e
    }
}

/// Records the bucket and key of the request on its span.
/// Whether `uri`'s query names `flag` (with or without a value).
pub(crate) fn has_query_flag(uri: &http::Uri, flag: &str) -> bool {
    uri.query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some(flag))
    })
}

fn record_target(op: &str, bucket: &str, key: Option<&str>) {
    let span = tracing::Span::current();
    span.record("op", op);
    span.record("bucket", bucket);
    if let Some(key) = key {
        span.record("key", key);
    }
}

#[async_trait::async_trait]
impl S3 for Arbor {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let request_id = RequestId::of(&req.extensions);
        bucket::create(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let request_id = RequestId::of(&req.extensions);
        bucket::delete(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let request_id = RequestId::of(&req.extensions);
        bucket::head(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let request_id = RequestId::of(&req.extensions);
        bucket::list(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let request_id = RequestId::of(&req.extensions);
        absent::get_encryption(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        let request_id = RequestId::of(&req.extensions);
        absent::delete_encryption(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_website(
        &self,
        req: S3Request<GetBucketWebsiteInput>,
    ) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
        let request_id = RequestId::of(&req.extensions);
        absent::get_website(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn delete_bucket_website(
        &self,
        req: S3Request<DeleteBucketWebsiteInput>,
    ) -> S3Result<S3Response<DeleteBucketWebsiteOutput>> {
        let request_id = RequestId::of(&req.extensions);
        absent::delete_website(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_replication(
        &self,
        req: S3Request<GetBucketReplicationInput>,
    ) -> S3Result<S3Response<GetBucketReplicationOutput>> {
        let request_id = RequestId::of(&req.extensions);
        absent::get_replication(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn delete_bucket_replication(
        &self,
        req: S3Request<DeleteBucketReplicationInput>,
    ) -> S3Result<S3Response<DeleteBucketReplicationOutput>> {
        let request_id = RequestId::of(&req.extensions);
        absent::delete_replication(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_logging(
        &self,
        req: S3Request<GetBucketLoggingInput>,
    ) -> S3Result<S3Response<GetBucketLoggingOutput>> {
        let request_id = RequestId::of(&req.extensions);
        absent::get_logging(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_request_payment(
        &self,
        req: S3Request<GetBucketRequestPaymentInput>,
    ) -> S3Result<S3Response<GetBucketRequestPaymentOutput>> {
        let request_id = RequestId::of(&req.extensions);
        absent::get_request_payment(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_accelerate_configuration(
        &self,
        req: S3Request<GetBucketAccelerateConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketAccelerateConfigurationOutput>> {
        let request_id = RequestId::of(&req.extensions);
        absent::get_accelerate(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_notification_configuration(
        &self,
        req: S3Request<GetBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
        let request_id = RequestId::of(&req.extensions);
        absent::get_notification(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let request_id = RequestId::of(&req.extensions);
        bucket::location(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let request_id = RequestId::of(&req.extensions);
        object::put(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let request_id = RequestId::of(&req.extensions);
        object::get(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let request_id = RequestId::of(&req.extensions);
        object::head(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let request_id = RequestId::of(&req.extensions);
        object::delete(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let request_id = RequestId::of(&req.extensions);
        list::list_v1(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let request_id = RequestId::of(&req.extensions);
        list::list_v2(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let request_id = RequestId::of(&req.extensions);
        object::copy(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let request_id = RequestId::of(&req.extensions);
        object::delete_many(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let request_id = RequestId::of(&req.extensions);
        list::list_versions(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let request_id = RequestId::of(&req.extensions);
        bucket::get_versioning(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        let request_id = RequestId::of(&req.extensions);
        lock::put_config(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let request_id = RequestId::of(&req.extensions);
        lock::get_config(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        let request_id = RequestId::of(&req.extensions);
        lock::put_retention(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let request_id = RequestId::of(&req.extensions);
        lock::get_retention(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        let request_id = RequestId::of(&req.extensions);
        lock::put_legal_hold(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let request_id = RequestId::of(&req.extensions);
        lock::get_legal_hold(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let request_id = RequestId::of(&req.extensions);
        bucket::put_versioning(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let request_id = RequestId::of(&req.extensions);
        acl::get_bucket(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let request_id = RequestId::of(&req.extensions);
        acl::put_bucket(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let request_id = RequestId::of(&req.extensions);
        acl::get_object(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let request_id = RequestId::of(&req.extensions);
        acl::put_object(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let request_id = RequestId::of(&req.extensions);
        multipart::create(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let request_id = RequestId::of(&req.extensions);
        multipart::upload_part(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let request_id = RequestId::of(&req.extensions);
        multipart::complete(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let request_id = RequestId::of(&req.extensions);
        multipart::abort(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let request_id = RequestId::of(&req.extensions);
        multipart::list_parts(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let request_id = RequestId::of(&req.extensions);
        multipart::list_uploads(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let request_id = RequestId::of(&req.extensions);
        tagging::get(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let request_id = RequestId::of(&req.extensions);
        tagging::put(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let request_id = RequestId::of(&req.extensions);
        tagging::delete(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let request_id = RequestId::of(&req.extensions);
        multipart::upload_part_copy(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let request_id = RequestId::of(&req.extensions);
        tagging::get_bucket(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let request_id = RequestId::of(&req.extensions);
        tagging::put_bucket(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        let request_id = RequestId::of(&req.extensions);
        tagging::delete_bucket(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        let request_id = RequestId::of(&req.extensions);
        acl::get_ownership_controls(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        let request_id = RequestId::of(&req.extensions);
        acl::put_ownership_controls(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        let request_id = RequestId::of(&req.extensions);
        acl::delete_ownership_controls(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let request_id = RequestId::of(&req.extensions);
        cors::put(self, req).await.map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let request_id = RequestId::of(&req.extensions);
        cors::get(self, req).await.map_err(|e| request_id.stamp(e))
    }
    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        let request_id = RequestId::of(&req.extensions);
        cors::delete(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let request_id = RequestId::of(&req.extensions);
        lifecycle::put(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let request_id = RequestId::of(&req.extensions);
        lifecycle::get(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        let request_id = RequestId::of(&req.extensions);
        lifecycle::delete(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let request_id = RequestId::of(&req.extensions);
        policy::put(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let request_id = RequestId::of(&req.extensions);
        policy::get(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        let request_id = RequestId::of(&req.extensions);
        policy::delete(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        let request_id = RequestId::of(&req.extensions);
        policy::status(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let request_id = RequestId::of(&req.extensions);
        policy::put_block(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        let request_id = RequestId::of(&req.extensions);
        policy::get_block(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        let request_id = RequestId::of(&req.extensions);
        policy::delete_block(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let request_id = RequestId::of(&req.extensions);
        object::attributes(self, req)
            .await
            .map_err(|e| request_id.stamp(e))
    }
}
