//! Access control lists. Arbor has one owner per deployment and behaves as
//! an S3 bucket whose Object Ownership is "bucket owner enforced" (the AWS
//! default since 2023): ACLs are disabled, the owner has FULL_CONTROL of
//! everything, and requests may only set ACLs that say exactly that
//! (`private`, `bucket-owner-full-control`). Anything else is refused with
//! `AccessControlListNotSupported`, never silently ignored.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::{Arbor, bucket, record_target};
use crate::error;

const GRANT_HEADERS: [&str; 5] = [
    "x-amz-grant-full-control",
    "x-amz-grant-read",
    "x-amz-grant-read-acp",
    "x-amz-grant-write",
    "x-amz-grant-write-acp",
];

fn not_supported() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("AccessControlListNotSupported".into()),
        "The bucket does not allow ACLs",
    );
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

fn refuse_grant_headers(headers: &http::HeaderMap) -> S3Result<()> {
    if GRANT_HEADERS.iter().any(|h| headers.contains_key(*h)) {
        return Err(not_supported());
    }
    Ok(())
}

/// A canned object ACL on PutObject / CopyObject / CreateMultipartUpload.
pub fn check_canned_object_acl(
    acl: Option<&ObjectCannedACL>,
    headers: &http::HeaderMap,
) -> S3Result<()> {
    refuse_grant_headers(headers)?;
    match acl.map(ObjectCannedACL::as_str) {
        None
        | Some(ObjectCannedACL::PRIVATE)
        | Some(ObjectCannedACL::BUCKET_OWNER_FULL_CONTROL) => Ok(()),
        Some(_) => Err(not_supported()),
    }
}

/// A canned bucket ACL on CreateBucket / PutBucketAcl.
pub fn check_canned_bucket_acl(
    acl: Option<&BucketCannedACL>,
    headers: &http::HeaderMap,
) -> S3Result<()> {
    refuse_grant_headers(headers)?;
    match acl.map(BucketCannedACL::as_str) {
        None | Some(BucketCannedACL::PRIVATE) => Ok(()),
        Some(_) => Err(not_supported()),
    }
}

/// The only ACL there is: the owner with FULL_CONTROL.
fn owner_full_control() -> (Owner, Grants) {
    let owner = bucket::owner();
    let grant = Grant {
        grantee: Some(Grantee {
            display_name: owner.display_name.clone(),
            email_address: None,
            id: owner.id.clone(),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    };
    (owner, vec![grant])
}

/// An AccessControlPolicy body is acceptable only if it grants exactly the
/// owner FULL_CONTROL.
fn check_policy(policy: Option<&AccessControlPolicy>) -> S3Result<()> {
    let Some(policy) = policy else { return Ok(()) };
    let owner = bucket::owner();
    let grants = policy.grants.as_deref().unwrap_or_default();
    let only_owner = grants.iter().all(|g| {
        g.permission
            .as_ref()
            .is_some_and(|p| p.as_str() == Permission::FULL_CONTROL)
            && g.grantee.as_ref().is_some_and(|e| e.id == owner.id)
    });
    if only_owner {
        Ok(())
    } else {
        Err(not_supported())
    }
}

pub async fn get_bucket(
    s3: &Arbor,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    record_target("GetBucketAcl", &req.input.bucket, None);
    s3.meta()
        .head_bucket(&req.input.bucket)
        .await
        .map_err(error::from_meta)?;
    let (owner, mut grants) = owner_full_control();
    grants.extend(key_grants(s3, &req.input.bucket).await?);
    Ok(S3Response::new(GetBucketAclOutput {
        owner: Some(owner),
        grants: Some(grants),
    }))
}

/// The access keys' permissions on `bucket` as ACL grants: `read` is
/// READ, `write` WRITE, `owner` READ_ACP and WRITE_ACP (the bucket's
/// settings), each to the key's id as a canonical user.
async fn key_grants(s3: &Arbor, bucket: &str) -> S3Result<Grants> {
    let keys = s3
        .meta()
        .read(arbor_meta::access::ListAccessKeys)
        .await
        .map_err(error::from_meta)?;
    let mut grants = Vec::new();
    for key in keys {
        let held = key.permissions(bucket);
        let names = [
            (held.read, Permission::READ),
            (held.write, Permission::WRITE),
            (held.owner, Permission::READ_ACP),
            (held.owner, Permission::WRITE_ACP),
        ];
        for (_, permission) in names.into_iter().filter(|(on, _)| *on) {
            grants.push(Grant {
                grantee: Some(Grantee {
                    display_name: Some(key.name.clone()),
                    email_address: None,
                    id: Some(key.access_key.clone()),
                    type_: Type::from_static(Type::CANONICAL_USER),
                    uri: None,
                }),
                permission: Some(Permission::from_static(permission)),
            });
        }
    }
    Ok(grants)
}

pub async fn put_bucket(
    s3: &Arbor,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    record_target("PutBucketAcl", &req.input.bucket, None);
    s3.meta()
        .head_bucket(&req.input.bucket)
        .await
        .map_err(error::from_meta)?;
    check_canned_bucket_acl(req.input.acl.as_ref(), &req.headers)?;
    check_policy(req.input.access_control_policy.as_ref())?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}

pub async fn get_object(
    s3: &Arbor,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    record_target("GetObjectAcl", &req.input.bucket, Some(&req.input.key));
    s3.meta()
        .get_object(&req.input.bucket, &req.input.key)
        .await
        .map_err(error::from_meta)?;
    let (owner, grants) = owner_full_control();
    Ok(S3Response::new(GetObjectAclOutput {
        owner: Some(owner),
        grants: Some(grants),
        ..Default::default()
    }))
}

pub async fn put_object(
    s3: &Arbor,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    record_target("PutObjectAcl", &req.input.bucket, Some(&req.input.key));
    s3.meta()
        .get_object(&req.input.bucket, &req.input.key)
        .await
        .map_err(error::from_meta)?;
    check_canned_object_acl(req.input.acl.as_ref(), &req.headers)?;
    check_policy(req.input.access_control_policy.as_ref())?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}

/// The one Object Ownership setting Arbor has: `BucketOwnerEnforced`.
fn ownership_controls() -> OwnershipControls {
    OwnershipControls {
        rules: vec![OwnershipControlsRule {
            object_ownership: ObjectOwnership::from_static(ObjectOwnership::BUCKET_OWNER_ENFORCED),
        }],
    }
}

/// GetBucketOwnershipControls: always `BucketOwnerEnforced` (ACLs
/// disabled), which infrastructure tools read before anything else.
pub async fn get_ownership_controls(
    s3: &Arbor,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
    record_target("GetBucketOwnershipControls", &req.input.bucket, None);
    s3.meta()
        .head_bucket(&req.input.bucket)
        .await
        .map_err(error::from_meta)?;
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(ownership_controls()),
    }))
}

/// PutBucketOwnershipControls: `BucketOwnerEnforced` is accepted (it is
/// what the bucket has); the settings that enable ACLs are not implemented.
pub async fn put_ownership_controls(
    s3: &Arbor,
    req: S3Request<PutBucketOwnershipControlsInput>,
) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
    let input = req.input;
    record_target("PutBucketOwnershipControls", &input.bucket, None);
    s3.meta()
        .head_bucket(&input.bucket)
        .await
        .map_err(error::from_meta)?;
    if input.ownership_controls != ownership_controls() {
        return Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "Arbor supports only the BucketOwnerEnforced object ownership (ACLs disabled).",
        ));
    }
    Ok(S3Response::new(PutBucketOwnershipControlsOutput::default()))
}
