//! Access control lists, as S3's canned ACLs define them (docs/design.md,
//! "Access control lists"). Every bucket and object of a deployment
//! belongs to its one owner, who has FULL_CONTROL; an ACL says what the
//! groups S3 predefines get beside: AllUsers (anyone, signed or not) and
//! AuthenticatedUsers (any key of the deployment). Requests set an ACL
//! with `x-amz-acl`, with `x-amz-grant-*` headers or an
//! AccessControlPolicy body; grants that no canned ACL makes (to a single
//! key, by e-mail, READ_ACP to a group...) are NotImplemented, never
//! stored half. A bucket's Object Ownership `BucketOwnerEnforced` disables
//! ACLs (meta refuses them), and its public access block refuses
//! (BlockPublicAcls) or disregards (IgnorePublicAcls) public ones.

use arbor_meta::access::GetPublicAccessBlock;
use arbor_meta::acl::{GetBucketAcl, SetBucketAcl, SetObjectAcl, SetObjectOwnership};
use arbor_meta::records::{self, CannedAcl};
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::object::{parse_version_id, readable_version};
use super::{Arbor, bucket, record_target};
use crate::error;
use crate::keyring::Keyring;

/// The grant headers, with the permission each grants.
const GRANT_HEADERS: [(&str, &str); 5] = [
    ("x-amz-grant-full-control", Permission::FULL_CONTROL),
    ("x-amz-grant-read", Permission::READ),
    ("x-amz-grant-read-acp", Permission::READ_ACP),
    ("x-amz-grant-write", Permission::WRITE),
    ("x-amz-grant-write-acp", Permission::WRITE_ACP),
];

/// The group S3 calls AllUsers.
pub const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// The group S3 calls AuthenticatedUsers.
pub const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

fn unsupported_grants() -> S3Error {
    s3_error!(
        NotImplemented,
        "Arbor supports the canned ACLs private, public-read, public-read-write and authenticated-read, and the grants to AllUsers and AuthenticatedUsers they make; grants to single keys are the keys' permissions (arbor admin key allow)."
    )
}

/// Who a grant names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grantee {
    Owner,
    AllUsers,
    AuthenticatedUsers,
}

/// The canned ACL that grants exactly `grants` beside the owner's.
fn canned_of(grants: &[(Grantee, &str)]) -> S3Result<CannedAcl> {
    let mut all = (false, false);
    let mut authenticated = false;
    for (grantee, permission) in grants {
        match (grantee, *permission) {
            (Grantee::Owner, _) => {}
            (Grantee::AllUsers, Permission::READ) => all.0 = true,
            (Grantee::AllUsers, Permission::WRITE) => all.1 = true,
            (Grantee::AuthenticatedUsers, Permission::READ) => authenticated = true,
            _ => return Err(unsupported_grants()),
        }
    }
    match (all, authenticated) {
        ((false, false), false) => Ok(CannedAcl::Private),
        ((true, false), false) => Ok(CannedAcl::PublicRead),
        ((true, true), false) => Ok(CannedAcl::PublicReadWrite),
        ((false, false), true) => Ok(CannedAcl::AuthenticatedRead),
        _ => Err(unsupported_grants()),
    }
}

/// The grantee a grant header's `type="value"` item names.
fn header_grantee(item: &str) -> S3Result<Grantee> {
    let invalid = || s3_error!(InvalidArgument, "Invalid grant header: {}", item.trim());
    let (kind, value) = item.split_once('=').ok_or_else(invalid)?;
    let value = value.trim().trim_matches('"');
    match kind.trim().to_ascii_lowercase().as_str() {
        "uri" => group_grantee(value),
        "id" if Some(value) == bucket::owner().id.as_deref() => Ok(Grantee::Owner),
        "id" | "emailaddress" => Err(unsupported_grants()),
        _ => Err(invalid()),
    }
}

fn group_grantee(uri: &str) -> S3Result<Grantee> {
    match uri {
        ALL_USERS => Ok(Grantee::AllUsers),
        AUTHENTICATED_USERS => Ok(Grantee::AuthenticatedUsers),
        _ => Err(unsupported_grants()),
    }
}

/// The grants of the `x-amz-grant-*` headers.
fn header_grants(headers: &http::HeaderMap) -> S3Result<Vec<(Grantee, &'static str)>> {
    let mut grants = Vec::new();
    for (name, permission) in GRANT_HEADERS {
        for value in headers.get_all(name) {
            let value = value
                .to_str()
                .map_err(|_| s3_error!(InvalidArgument, "Invalid grant header {name}"))?;
            for item in value.split(',').filter(|i| !i.trim().is_empty()) {
                grants.push((header_grantee(item)?, permission));
            }
        }
    }
    Ok(grants)
}

/// The ACL a request asks for with `canned` (the `x-amz-acl` value, when
/// the operation was given one) or with grant headers; `None` when it
/// asks for none. Both at once is S3's 400 InvalidRequest.
fn asked(
    canned: Option<&str>,
    headers: &http::HeaderMap,
    bucket_acl: bool,
) -> S3Result<Option<CannedAcl>> {
    let grants = header_grants(headers)?;
    let has_grants = GRANT_HEADERS.iter().any(|(h, _)| headers.contains_key(*h));
    match (canned, has_grants) {
        (Some(_), true) => Err(s3_error!(
            InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed"
        )),
        (None, true) => canned_of(&grants).map(Some),
        (None, false) => Ok(None),
        (Some(name), false) => parse_canned(name, bucket_acl).map(Some),
    }
}

/// A canned ACL by its S3 name. On an object `bucket-owner-read` and
/// `bucket-owner-full-control` are `private`: the bucket's owner is the
/// object's.
fn parse_canned(name: &str, bucket_acl: bool) -> S3Result<CannedAcl> {
    match name {
        "private" => Ok(CannedAcl::Private),
        "public-read" => Ok(CannedAcl::PublicRead),
        "public-read-write" => Ok(CannedAcl::PublicReadWrite),
        "authenticated-read" => Ok(CannedAcl::AuthenticatedRead),
        "bucket-owner-read" | "bucket-owner-full-control" if !bucket_acl => Ok(CannedAcl::Private),
        "aws-exec-read" | "log-delivery-write" => Err(s3_error!(
            NotImplemented,
            "The canned ACL {name} is not supported."
        )),
        _ => Err(s3_error!(InvalidArgument, "Invalid canned ACL {name}")),
    }
}

/// The ACL an object write (PutObject, CopyObject, CreateMultipartUpload,
/// a browser upload's `acl` field) asks for: private unless it names one.
pub fn object_acl(acl: Option<&ObjectCannedACL>, headers: &http::HeaderMap) -> S3Result<CannedAcl> {
    Ok(asked(acl.map(ObjectCannedACL::as_str), headers, false)?.unwrap_or_default())
}

/// The ACL CreateBucket asks for: private unless it names one. The
/// `bucket-owner-read` and `bucket-owner-full-control` of objects, which
/// S3 ignores when it creates a bucket (its canned ACL table says so), are
/// `private` too.
pub fn created_bucket_acl(
    acl: Option<&BucketCannedACL>,
    headers: &http::HeaderMap,
) -> S3Result<CannedAcl> {
    let name = acl.map(BucketCannedACL::as_str).map(|name| match name {
        "bucket-owner-read" | "bucket-owner-full-control" => "private",
        other => other,
    });
    Ok(asked(name, headers, true)?.unwrap_or_default())
}

/// Refuses a public `acl` on `bucket` whose public access block has
/// BlockPublicAcls, with S3's 403 AccessDenied. Reads the block only for
/// a public ACL.
pub async fn check_public_allowed(s3: &Arbor, bucket: &str, acl: CannedAcl) -> S3Result<()> {
    if !acl.is_public() {
        return Ok(());
    }
    let block = s3
        .meta()
        .read(GetPublicAccessBlock {
            bucket: bucket.to_owned(),
        })
        .await
        .map_err(error::from_meta)?;
    if block.is_some_and(|b| b.block_public_acls) {
        return Err(s3_error!(
            AccessDenied,
            "Access Denied: the bucket's public access block (BlockPublicAcls) refuses public ACLs"
        ));
    }
    Ok(())
}

/// The ACL an AccessControlPolicy body grants. Its Owner, if named, is the
/// owner: an ACL cannot give the bucket or object away (S3's 403).
fn policy_acl(policy: &AccessControlPolicy) -> S3Result<CannedAcl> {
    if let Some(id) = policy.owner.as_ref().and_then(|o| o.id.as_deref())
        && Some(id) != bucket::owner().id.as_deref()
    {
        return Err(s3_error!(AccessDenied, "Access Denied"));
    }
    let mut grants = Vec::new();
    for grant in policy.grants.as_deref().unwrap_or_default() {
        let permission = match grant.permission.as_ref().map(Permission::as_str) {
            Some(Permission::FULL_CONTROL) => Permission::FULL_CONTROL,
            Some(Permission::READ) => Permission::READ,
            Some(Permission::WRITE) => Permission::WRITE,
            Some(Permission::READ_ACP) => Permission::READ_ACP,
            Some(Permission::WRITE_ACP) => Permission::WRITE_ACP,
            _ => {
                return Err(s3_error!(
                    MalformedACLError,
                    "The XML you provided was not well-formed or did not validate against our published schema"
                ));
            }
        };
        let Some(grantee) = grant.grantee.as_ref() else {
            return Err(s3_error!(
                MalformedACLError,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        };
        let who = match grantee.type_.as_str() {
            Type::GROUP => group_grantee(grantee.uri.as_deref().unwrap_or_default())?,
            Type::CANONICAL_USER if grantee.id == bucket::owner().id => Grantee::Owner,
            Type::CANONICAL_USER | Type::AMAZON_CUSTOMER_BY_EMAIL => {
                return Err(unsupported_grants());
            }
            _ => {
                return Err(s3_error!(
                    MalformedACLError,
                    "The XML you provided was not well-formed or did not validate against our published schema"
                ));
            }
        };
        grants.push((who, permission));
    }
    canned_of(&grants)
}

/// The ACL a PutBucketAcl / PutObjectAcl sets: a canned ACL, grant
/// headers or a body, exactly one of them.
fn acl_to_set(
    canned: Option<&str>,
    headers: &http::HeaderMap,
    policy: Option<&AccessControlPolicy>,
    bucket_acl: bool,
) -> S3Result<CannedAcl> {
    let from_headers = asked(canned, headers, bucket_acl)?;
    match (from_headers, policy) {
        (Some(_), Some(_)) => Err(s3_error!(
            UnexpectedContent,
            "This request does not support content"
        )),
        (Some(acl), None) => Ok(acl),
        (None, Some(policy)) => policy_acl(policy),
        (None, None) => Err(s3_error!(
            MissingSecurityHeader,
            "Your request was missing a required header"
        )),
    }
}

/// The owner's FULL_CONTROL, then what `acl` grants the groups.
fn grants_of(acl: CannedAcl) -> (Owner, Grants) {
    let owner = bucket::owner();
    let mut grants = vec![Grant {
        grantee: Some(s3s::dto::Grantee {
            display_name: owner.display_name.clone(),
            email_address: None,
            id: owner.id.clone(),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    }];
    let group = |uri: &str, permission: &'static str| Grant {
        grantee: Some(s3s::dto::Grantee {
            display_name: None,
            email_address: None,
            id: None,
            type_: Type::from_static(Type::GROUP),
            uri: Some(uri.to_owned()),
        }),
        permission: Some(Permission::from_static(permission)),
    };
    match acl {
        CannedAcl::Private => {}
        CannedAcl::PublicRead => grants.push(group(ALL_USERS, Permission::READ)),
        CannedAcl::PublicReadWrite => {
            grants.push(group(ALL_USERS, Permission::READ));
            grants.push(group(ALL_USERS, Permission::WRITE));
        }
        CannedAcl::AuthenticatedRead => grants.push(group(AUTHENTICATED_USERS, Permission::READ)),
    }
    (owner, grants)
}

pub async fn get_bucket(
    s3: &Arbor,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    record_target("GetBucketAcl", &req.input.bucket, None);
    let stored = s3
        .meta()
        .read(GetBucketAcl {
            bucket: req.input.bucket.clone(),
        })
        .await
        .map_err(error::from_meta)?;
    let (owner, mut grants) = grants_of(stored.acl);
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
                grantee: Some(s3s::dto::Grantee {
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

/// Tells this gateway's keyring that `bucket`'s ACL changed (the others
/// see it within the keyring's cache time).
fn forget_rules(extensions: &http::Extensions, bucket: &str) {
    if let Some(keyring) = extensions.get::<Keyring>() {
        keyring.forget_policy(bucket);
    }
}

pub async fn put_bucket(
    s3: &Arbor,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let S3Request {
        input,
        headers,
        extensions,
        ..
    } = req;
    record_target("PutBucketAcl", &input.bucket, None);
    let acl = acl_to_set(
        input.acl.as_ref().map(BucketCannedACL::as_str),
        &headers,
        input.access_control_policy.as_ref(),
        true,
    )?;
    check_public_allowed(s3, &input.bucket, acl).await?;
    s3.meta()
        .write(SetBucketAcl {
            bucket: input.bucket.clone(),
            acl,
        })
        .await
        .map_err(error::from_meta)?;
    forget_rules(&extensions, &input.bucket);
    Ok(S3Response::new(PutBucketAclOutput::default()))
}

pub async fn get_object(
    s3: &Arbor,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let input = req.input;
    record_target("GetObjectAcl", &input.bucket, Some(&input.key));
    let version =
        readable_version(s3, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    let (owner, grants) = grants_of(version.acl);
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
    let S3Request { input, headers, .. } = req;
    record_target("PutObjectAcl", &input.bucket, Some(&input.key));
    let acl = acl_to_set(
        input.acl.as_ref().map(ObjectCannedACL::as_str),
        &headers,
        input.access_control_policy.as_ref(),
        false,
    )?;
    check_public_allowed(s3, &input.bucket, acl).await?;
    s3.meta()
        .write(SetObjectAcl {
            bucket: input.bucket,
            key: input.key,
            version_id: parse_version_id(input.version_id.as_deref())?,
            acl,
        })
        .await
        .map_err(error::from_meta)?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}

/// The controls GetBucketOwnershipControls answers; `None` when the
/// bucket has none.
fn dto_ownership(ownership: records::ObjectOwnership) -> Option<OwnershipControls> {
    let name = match ownership {
        records::ObjectOwnership::BucketOwnerPreferred => ObjectOwnership::BUCKET_OWNER_PREFERRED,
        records::ObjectOwnership::ObjectWriter => ObjectOwnership::OBJECT_WRITER,
        records::ObjectOwnership::BucketOwnerEnforced => ObjectOwnership::BUCKET_OWNER_ENFORCED,
        records::ObjectOwnership::Unset => return None,
    };
    Some(OwnershipControls {
        rules: vec![OwnershipControlsRule {
            object_ownership: ObjectOwnership::from_static(name),
        }],
    })
}

/// An Object Ownership by its S3 name; anything else is 400
/// InvalidArgument (MalformedXML for a body without exactly one rule).
pub fn parse_ownership(name: &str) -> S3Result<records::ObjectOwnership> {
    match name {
        ObjectOwnership::BUCKET_OWNER_PREFERRED => {
            Ok(records::ObjectOwnership::BucketOwnerPreferred)
        }
        ObjectOwnership::OBJECT_WRITER => Ok(records::ObjectOwnership::ObjectWriter),
        ObjectOwnership::BUCKET_OWNER_ENFORCED => Ok(records::ObjectOwnership::BucketOwnerEnforced),
        other => Err(s3_error!(
            InvalidArgument,
            "Invalid ObjectOwnership {other}"
        )),
    }
}

/// GetBucketOwnershipControls: the bucket's Object Ownership;
/// `BucketOwnerPreferred` (ACLs enabled) until one is set; once the
/// controls are deleted, 404 OwnershipControlsNotFoundError, as S3 answers
/// (Terraform waits for it after deleting them).
pub async fn get_ownership_controls(
    s3: &Arbor,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
    record_target("GetBucketOwnershipControls", &req.input.bucket, None);
    let stored = s3
        .meta()
        .read(GetBucketAcl {
            bucket: req.input.bucket,
        })
        .await
        .map_err(error::from_meta)?;
    let Some(controls) = dto_ownership(stored.ownership) else {
        return Err(s3_error!(
            OwnershipControlsNotFoundError,
            "The bucket ownership controls were not found"
        ));
    };
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(controls),
    }))
}

/// PutBucketOwnershipControls: exactly one rule. `BucketOwnerEnforced`
/// disables ACLs; S3 refuses it while the bucket's ACL is public.
pub async fn put_ownership_controls(
    s3: &Arbor,
    req: S3Request<PutBucketOwnershipControlsInput>,
) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
    let S3Request {
        input, extensions, ..
    } = req;
    record_target("PutBucketOwnershipControls", &input.bucket, None);
    let [rule] = input.ownership_controls.rules.as_slice() else {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    };
    let ownership = parse_ownership(rule.object_ownership.as_str())?;
    s3.meta()
        .write(SetObjectOwnership {
            bucket: input.bucket.clone(),
            ownership,
        })
        .await
        .map_err(error::from_meta)?;
    forget_rules(&extensions, &input.bucket);
    Ok(S3Response::new(PutBucketOwnershipControlsOutput::default()))
}

/// DeleteBucketOwnershipControls: no controls left, ACLs enabled.
pub async fn delete_ownership_controls(
    s3: &Arbor,
    req: S3Request<DeleteBucketOwnershipControlsInput>,
) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
    let S3Request {
        input, extensions, ..
    } = req;
    record_target("DeleteBucketOwnershipControls", &input.bucket, None);
    s3.meta()
        .write(SetObjectOwnership {
            bucket: input.bucket.clone(),
            ownership: records::ObjectOwnership::Unset,
        })
        .await
        .map_err(error::from_meta)?;
    forget_rules(&extensions, &input.bucket);
    Ok(S3Response::new(
        DeleteBucketOwnershipControlsOutput::default(),
    ))
}
