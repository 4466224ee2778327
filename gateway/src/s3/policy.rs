//! Bucket policies: Put, Get, Delete and GetBucketPolicyStatus; and the
//! public access block that may forbid public ones. The language and its
//! enforcement are `crate::policy` and `crate::permission`; here the
//! documents are checked and stored.

use arbor_meta::access::{
    DeleteBucketPolicy, DeletePublicAccessBlock, GetBucketPolicy, GetPublicAccessBlock,
    PutBucketPolicy, PutPublicAccessBlock,
};
use arbor_meta::records::PublicAccessBlock;
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
    let policy = Policy::parse(&bucket, &text)
        .map_err(|where_| S3Error::with_message(S3ErrorCode::MalformedPolicy, where_))?;
    let block = s3
        .meta()
        .read(GetPublicAccessBlock {
            bucket: bucket.clone(),
        })
        .await
        .map_err(error::from_meta)?
        .unwrap_or_default();
    if block.block_public_policy && policy.is_public() {
        return Err(s3_error!(
            AccessDenied,
            "Public policies are blocked by the BlockPublicPolicy block public access setting."
        ));
    }
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

pub async fn put_block(
    s3: &Arbor,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let bucket = req.input.bucket;
    record_target("PutPublicAccessBlock", &bucket, None);
    let c = req.input.public_access_block_configuration;
    let block = PublicAccessBlock {
        block_public_acls: c.block_public_acls.unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
        block_public_policy: c.block_public_policy.unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
    };
    let written = s3
        .meta()
        .write(PutPublicAccessBlock {
            bucket: bucket.clone(),
            block,
        })
        .await;
    forget(&req.extensions, &bucket);
    written.map_err(error::from_meta)?;
    Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
}

pub async fn get_block(
    s3: &Arbor,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    record_target("GetPublicAccessBlock", &req.input.bucket, None);
    let block = s3
        .meta()
        .read(GetPublicAccessBlock {
            bucket: req.input.bucket.clone(),
        })
        .await
        .map_err(error::from_meta)?;
    let Some(block) = block else {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
            "The public access block configuration was not found",
        );
        e.set_status_code(http::StatusCode::NOT_FOUND);
        return Err(e);
    };
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(block.block_public_acls),
            ignore_public_acls: Some(block.ignore_public_acls),
            block_public_policy: Some(block.block_public_policy),
            restrict_public_buckets: Some(block.restrict_public_buckets),
        }),
    }))
}

pub async fn delete_block(
    s3: &Arbor,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    let bucket = req.input.bucket;
    record_target("DeletePublicAccessBlock", &bucket, None);
    let deleted = s3
        .meta()
        .write(DeletePublicAccessBlock {
            bucket: bucket.clone(),
        })
        .await;
    forget(&req.extensions, &bucket);
    deleted.map_err(error::from_meta)?;
    let mut response = S3Response::new(DeletePublicAccessBlockOutput::default());
    response.status = Some(http::StatusCode::NO_CONTENT);
    Ok(response)
}
