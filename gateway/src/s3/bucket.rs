//! Bucket operations: create, delete, head, list, location.

use arbor_meta::acl::{SetBucketAcl, SetObjectOwnership};
use arbor_meta::namespace::{CreateLockedBucket, GetBucketVersioning, SetBucketVersioning};
use arbor_meta::records::{CannedAcl, Versioning};
use arbor_meta::{BucketInfo, MetaError};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Arbor, acl, record_target, time};
use crate::error;
use crate::keyring::{self, Keyring, Permission, Principal};
use crate::limits::LIST_BUCKETS_MAX;

pub async fn create(
    s3: &Arbor,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let acl = acl::created_bucket_acl(req.input.acl.as_ref(), &req.headers)?;
    let ownership = req
        .input
        .object_ownership
        .as_ref()
        .map(|o| acl::parse_ownership(o.as_str()))
        .transpose()?;
    if acl.is_public() && ownership.is_some_and(|o| o.acls_disabled()) {
        return Err(error::from_meta(MetaError::AclWithOwnership(
            req.input.bucket,
        )));
    }
    let region = requested_region(s3, req.input.create_bucket_configuration.as_ref())?;
    let name = req.input.bucket;
    record_target("CreateBucket", &name, None);
    let principal = keyring::principal_of(&req.extensions)?;
    let object_lock = req.input.object_lock_enabled_for_bucket == Some(true);
    let created = match &principal {
        // With Object Lock: versioning enabled and the lock on, in the same
        // command as the bucket.
        Principal::Administrator { .. } if object_lock => {
            s3.meta()
                .write(CreateLockedBucket {
                    name: name.clone(),
                    created_ms: s3.now_ms(),
                })
                .await
        }
        Principal::Administrator { .. } => s3.meta().create_bucket(&name, s3.now_ms()).await,
        Principal::Anonymous => {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        Principal::Key(record) => {
            let created = s3
                .meta()
                .create_bucket_as(&name, s3.now_ms(), &record.access_key, object_lock)
                .await;
            if let Some(keyring) = req.extensions.get::<Keyring>() {
                keyring.forget(&record.access_key);
            }
            created
        }
    };
    // A refusal reads whether the bucket exists from the cached rules.
    if let Some(keyring) = req.extensions.get::<Keyring>() {
        keyring.forget_policy(&name);
    }
    match created {
        Ok(_) => {}
        // A bucket of another key: S3's answer for another account's.
        Err(MetaError::BucketAlreadyExists(_)) if !principal.may(&name, Permission::Owner) => {
            return Err(s3_error!(
                BucketAlreadyExists,
                "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."
            ));
        }
        // Every bucket of a deployment is its one owner's. In us-east-1
        // S3 answers a CreateBucket of a bucket the caller already owns
        // with 200, as if it had created it (its legacy behaviour, which
        // the CreateBucket reference notes); in every other region with
        // 409 BucketAlreadyOwnedByYou.
        Err(MetaError::BucketAlreadyExists(_)) if region == US_EAST_1 => {}
        Err(e) => return Err(error::from_meta(e)),
    }
    // The bucket exists, private and with ACLs enabled: what the request
    // asks beyond that follows, Object Ownership first (it decides whether
    // the ACL may be set). A request that fails here leaves the bucket
    // private, the safe side, and may be sent again.
    if let Some(ownership) = ownership {
        s3.meta()
            .write(SetObjectOwnership {
                bucket: name.clone(),
                ownership,
            })
            .await
            .map_err(error::from_meta)?;
    }
    if acl != CannedAcl::Private {
        s3.meta()
            .write(SetBucketAcl {
                bucket: name.clone(),
                acl,
            })
            .await
            .map_err(error::from_meta)?;
    }
    let output = CreateBucketOutput {
        location: Some(format!("/{name}")),
    };
    Ok(S3Response::new(output))
}

pub async fn delete(
    s3: &Arbor,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    record_target("DeleteBucket", &req.input.bucket, None);
    let deleted = s3.meta().delete_bucket(&req.input.bucket).await;
    // The bucket's grants went with it, from any key.
    if let Some(keyring) = req.extensions.get::<Keyring>() {
        keyring.forget_all();
    }
    deleted.map_err(error::from_meta)?;
    Ok(S3Response::new(DeleteBucketOutput::default()))
}

pub async fn head(
    s3: &Arbor,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    record_target("HeadBucket", &req.input.bucket, None);
    s3.meta()
        .head_bucket(&req.input.bucket)
        .await
        .map_err(error::from_meta)?;
    let output = HeadBucketOutput {
        bucket_region: Some(region_name(s3)),
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

/// ListBuckets with S3's optional pagination (`max-buckets`,
/// `continuation-token`), `prefix` and `bucket-region` (every bucket is in
/// the deployment's region: another lists none).
pub async fn list(
    s3: &Arbor,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let input = req.input;
    let max = match input.max_buckets {
        None => LIST_BUCKETS_MAX,
        Some(n) if n >= 1 && usize::try_from(n).is_ok_and(|n| n <= LIST_BUCKETS_MAX) => {
            usize::try_from(n).unwrap_or(LIST_BUCKETS_MAX)
        }
        Some(_) => {
            return Err(s3_error!(
                InvalidArgument,
                "max-buckets must be between 1 and 10000"
            ));
        }
    };
    let principal = keyring::principal_of(&req.extensions)?;
    let mut all = s3.meta().list_buckets().await.map_err(error::from_meta)?;
    // A key sees the buckets it holds a permission in.
    all.retain(|b| principal.sees(&b.name));
    let prefix = input.prefix.clone().unwrap_or_default();
    let after = input.continuation_token.clone().unwrap_or_default();
    let region = region_name(s3);
    let in_region = input
        .bucket_region
        .as_deref()
        .is_none_or(|asked| asked == region);
    let mut matching = all
        .into_iter()
        .filter(|b| in_region && b.name.starts_with(&prefix) && b.name > after);
    let page: Vec<BucketInfo> = matching.by_ref().take(max).collect();
    let truncated = matching.next().is_some();
    let continuation_token = if truncated {
        page.last().map(|b| b.name.clone())
    } else {
        None
    };
    let buckets = page
        .into_iter()
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: Some(time::timestamp(b.created_ms)),
            bucket_region: Some(region.clone()),
        })
        .collect();
    let output = ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner()),
        prefix: input.prefix,
        continuation_token,
    };
    Ok(S3Response::new(output))
}

pub async fn location(
    s3: &Arbor,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    record_target("GetBucketLocation", &req.input.bucket, None);
    s3.meta()
        .head_bucket(&req.input.bucket)
        .await
        .map_err(error::from_meta)?;
    // S3 reports us-east-1 as an empty LocationConstraint.
    let location_constraint = s3
        .settings()
        .region
        .as_deref()
        .filter(|r| *r != US_EAST_1)
        .map(|r| BucketLocationConstraint::from(r.to_owned()));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint,
    }))
}

/// The bucket's versioning state: no Status until versioning was first
/// enabled, as S3 answers.
pub async fn get_versioning(
    s3: &Arbor,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    record_target("GetBucketVersioning", &req.input.bucket, None);
    let versioning = s3
        .meta()
        .read(GetBucketVersioning {
            bucket: req.input.bucket.clone(),
        })
        .await
        .map_err(error::from_meta)?;
    let status = match versioning {
        Versioning::Unversioned => None,
        Versioning::Enabled => Some(BucketVersioningStatus::ENABLED),
        Versioning::Suspended => Some(BucketVersioningStatus::SUSPENDED),
    };
    Ok(S3Response::new(GetBucketVersioningOutput {
        status: status.map(BucketVersioningStatus::from_static),
        ..Default::default()
    }))
}

/// PutBucketVersioning: Enabled or Suspended. MFA delete is not
/// supported (NotImplemented when asked to enable it); a configuration
/// without a Status is S3's IllegalVersioningConfigurationException, and
/// a Status or MfaDelete outside S3's schema MalformedXML, as S3 answers.
pub async fn put_versioning(
    s3: &Arbor,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let input = req.input;
    record_target("PutBucketVersioning", &input.bucket, None);
    let config = input.versioning_configuration;
    let malformed = || {
        s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        )
    };
    match config.mfa_delete.as_ref().map(MFADelete::as_str) {
        None | Some(MFADelete::DISABLED) => {}
        Some(MFADelete::ENABLED) => {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported."));
        }
        Some(_) => return Err(malformed()),
    }
    let versioning = match config.status.as_ref().map(BucketVersioningStatus::as_str) {
        Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
        Some(_) => return Err(malformed()),
        None => {
            return Err(s3_error!(
                IllegalVersioningConfigurationException,
                "The Versioning element must be specified"
            ));
        }
    };
    s3.meta()
        .write(SetBucketVersioning {
            bucket: input.bucket,
            versioning,
        })
        .await
        .map_err(error::from_meta)?;
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

/// The region with S3's legacy behaviours, and Arbor's when none is pinned.
pub(crate) const US_EAST_1: &str = "us-east-1";

fn region_name(s3: &Arbor) -> String {
    s3.settings()
        .region
        .clone()
        .unwrap_or_else(|| US_EAST_1.to_owned())
}

/// The region a CreateBucket asks for: its LocationConstraint (`EU` is
/// eu-west-1's old name), else the pinned region, else us-east-1, S3's
/// region when none is named. With a region pinned, a constraint naming
/// another is refused, as a regional S3 endpoint refuses it.
fn requested_region(s3: &Arbor, config: Option<&CreateBucketConfiguration>) -> S3Result<String> {
    let asked = config
        .and_then(|c| c.location_constraint.as_ref())
        .map(|c| match c.as_str() {
            "EU" => "eu-west-1",
            other => other,
        })
        .filter(|c| !c.is_empty());
    match (asked, s3.settings().region.as_deref()) {
        (Some(asked), Some(pinned)) if asked != pinned => Err(s3_error!(
            IllegalLocationConstraintException,
            "The {asked} location constraint is incompatible for the region specific endpoint this request was sent to."
        )),
        (Some(asked), _) => Ok(asked.to_owned()),
        (None, pinned) => Ok(pinned.unwrap_or(US_EAST_1).to_owned()),
    }
}

/// The single owner of everything in this deployment.
pub fn owner() -> Owner {
    Owner {
        display_name: Some("arbor".to_owned()),
        id: Some(OWNER_ID.to_owned()),
    }
}

/// The canonical id of the one owner of every bucket and object of a
/// deployment, as ListBuckets and the ACLs name it.
pub const OWNER_ID: &str = "arbor";
