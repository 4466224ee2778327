//! Bucket policies: Put, Get, Delete and GetBucketPolicyStatus. The
//! language and its enforcement are `crate::policy` and
//! `crate::permission`; here the document is checked and stored.

use arbor_meta::access::{DeleteBucketPolicy, GetBucketPolicy, PutBucketPolicy};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::{Arbor, record_target};
use crate::error;
use crate::keyring::Keyring;
use crate::policy::Policy;

/// Drops this gateway's cached copy of the bucket's policy.
fn forget(extensions: &http::Extensions, bucket: &str) {
    if let Some(keyring) = extensions.get::<Keyring>() {
        keyring.forget_policy(bucket);
    }
}

async fn stored(s3: &Arbor, bucket: &str) -> S3Result<String> {
    let policy = s3
        .meta()
        .read(GetBucketPolicy {
            bucket: bucket.to_owned(),
        })
        .await
        .map_err(error::from_meta)?;
    policy.ok_or_else(|| s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"))
}

pub async fn put(
    s3: &Arbor,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let bucket = req.input.bucket;
    record_target("PutBucketPolicy", &bucket, None);
    let text = req.input.policy;
    if text.len() > arbor_meta::limits::BUCKET_POLICY_SIZE_MAX {
        return Err(s3_error!(
            MalformedPolicy,
            "Policies must be no more than 20 KB"
        ));
    }
    Policy::parse(&bucket, &text)
        .map_err(|where_| S3Error::with_message(S3ErrorCode::MalformedPolicy, where_))?;
    let written = s3
        .meta()
        .write(PutBucketPolicy {
            bucket: bucket.clone(),
            policy: text,
        })
        .await;
    forget(&req.extensions, &bucket);
    written.map_err(error::from_meta)?;
    Ok(S3Response::new(PutBucketPolicyOutput::default()))
}

pub async fn get(
    s3: &Arbor,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    record_target("GetBucketPolicy", &req.input.bucket, None);
    let policy = stored(s3, &req.input.bucket).await?;
    Ok(S3Response::new(GetBucketPolicyOutput {
        policy: Some(policy),
    }))
}

pub async fn delete(
    s3: &Arbor,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let bucket = req.input.bucket;
    record_target("DeleteBucketPolicy", &bucket, None);
    let deleted = s3
        .meta()
        .write(DeleteBucketPolicy {
            bucket: bucket.clone(),
        })
        .await;
    forget(&req.extensions, &bucket);
    deleted.map_err(error::from_meta)?;
    let mut response = S3Response::new(DeleteBucketPolicyOutput::default());
    response.status = Some(http::StatusCode::NO_CONTENT);
    Ok(response)
}

pub async fn status(
    s3: &Arbor,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let bucket = req.input.bucket;
    record_target("GetBucketPolicyStatus", &bucket, None);
    let text = stored(s3, &bucket).await?;
    let policy = Policy::parse(&bucket, &text)
        .map_err(|e| error::internal("a stored bucket policy does not parse", e))?;
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus {
            is_public: Some(policy.is_public()),
        }),
    }))
}
