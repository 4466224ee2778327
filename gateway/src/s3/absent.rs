//! Bucket settings of features Arbor does not have (default encryption,
//! website hosting, replication, server access logging, requester pays,
//! transfer acceleration, event notifications): reading one answers what
//! S3 answers for a bucket where it was never set (for default encryption,
//! what it answered before 2023), and deleting one succeeds with nothing
//! to delete, because both are true of every Arbor bucket. Setting one
//! stays NotImplemented (docs/conformance.md).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Arbor, record_target};
use crate::error;

/// `NoSuchBucket` unless `bucket` exists.
async fn existing(s3: &Arbor, op: &str, bucket: &str) -> S3Result<()> {
    record_target(op, bucket, None);
    s3.meta()
        .head_bucket(bucket)
        .await
        .map(|_| ())
        .map_err(error::from_meta)
}

/// 204, as S3 answers a delete of a bucket setting.
fn no_content<T>(output: T) -> S3Response<T> {
    let mut response = S3Response::new(output);
    response.status = Some(http::StatusCode::NO_CONTENT);
    response
}

/// GetBucketEncryption: Arbor does not encrypt (docs/design.md,
/// "Encryption at rest"), so no bucket has a default encryption: 404, as
/// S3 answered before every bucket got one (2023) and as MinIO and Ceph
/// answer (s3s's table says 400; the clients that look at the status, and
/// S3 itself, use 404). Terraform recognises the message's "encryption
/// configuration was not found".
pub async fn get_encryption(
    s3: &Arbor,
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    existing(s3, "GetBucketEncryption", &req.input.bucket).await?;
    let mut e = s3_error!(
        ServerSideEncryptionConfigurationNotFoundError,
        "The server side encryption configuration was not found"
    );
    e.set_status_code(http::StatusCode::NOT_FOUND);
    Err(e)
}

pub async fn delete_encryption(
    s3: &Arbor,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    existing(s3, "DeleteBucketEncryption", &req.input.bucket).await?;
    Ok(no_content(DeleteBucketEncryptionOutput::default()))
}

pub async fn get_website(
    s3: &Arbor,
    req: S3Request<GetBucketWebsiteInput>,
) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
    existing(s3, "GetBucketWebsite", &req.input.bucket).await?;
    Err(s3_error!(
        NoSuchWebsiteConfiguration,
        "The specified bucket does not have a website configuration"
    ))
}

pub async fn delete_website(
    s3: &Arbor,
    req: S3Request<DeleteBucketWebsiteInput>,
) -> S3Result<S3Response<DeleteBucketWebsiteOutput>> {
    existing(s3, "DeleteBucketWebsite", &req.input.bucket).await?;
    Ok(no_content(DeleteBucketWebsiteOutput::default()))
}

pub async fn get_replication(
    s3: &Arbor,
    req: S3Request<GetBucketReplicationInput>,
) -> S3Result<S3Response<GetBucketReplicationOutput>> {
    existing(s3, "GetBucketReplication", &req.input.bucket).await?;
    Err(s3_error!(
        ReplicationConfigurationNotFoundError,
        "The replication configuration was not found"
    ))
}

pub async fn delete_replication(
    s3: &Arbor,
    req: S3Request<DeleteBucketReplicationInput>,
) -> S3Result<S3Response<DeleteBucketReplicationOutput>> {
    existing(s3, "DeleteBucketReplication", &req.input.bucket).await?;
    Ok(no_content(DeleteBucketReplicationOutput::default()))
}

/// GetBucketLogging: logging disabled, an empty `BucketLoggingStatus`.
pub async fn get_logging(
    s3: &Arbor,
    req: S3Request<GetBucketLoggingInput>,
) -> S3Result<S3Response<GetBucketLoggingOutput>> {
    existing(s3, "GetBucketLogging", &req.input.bucket).await?;
    Ok(S3Response::new(GetBucketLoggingOutput::default()))
}

/// GetBucketRequestPayment: the bucket's owner pays, always.
pub async fn get_request_payment(
    s3: &Arbor,
    req: S3Request<GetBucketRequestPaymentInput>,
) -> S3Result<S3Response<GetBucketRequestPaymentOutput>> {
    existing(s3, "GetBucketRequestPayment", &req.input.bucket).await?;
    Ok(S3Response::new(GetBucketRequestPaymentOutput {
        payer: Some(Payer::from_static(Payer::BUCKET_OWNER)),
    }))
}

/// GetBucketAccelerateConfiguration: never set, so no `Status`.
pub async fn get_accelerate(
    s3: &Arbor,
    req: S3Request<GetBucketAccelerateConfigurationInput>,
) -> S3Result<S3Response<GetBucketAccelerateConfigurationOutput>> {
    existing(s3, "GetBucketAccelerateConfiguration", &req.input.bucket).await?;
    Ok(S3Response::new(
        GetBucketAccelerateConfigurationOutput::default(),
    ))
}

/// GetBucketNotificationConfiguration: an empty configuration.
pub async fn get_notification(
    s3: &Arbor,
    req: S3Request<GetBucketNotificationConfigurationInput>,
) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
    existing(s3, "GetBucketNotificationConfiguration", &req.input.bucket).await?;
    Ok(S3Response::new(
        GetBucketNotificationConfigurationOutput::default(),
    ))
}
