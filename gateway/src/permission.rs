//! What each S3 operation needs, and s3s's access check that enforces it
//! ([`AccessControl`]) before an operation's input is read.
//!
//! Every operation Arbor serves names what it needs in [`needed`]: a
//! permission on its bucket (read, write or owner), the right to create
//! buckets, or only a valid key (ListBuckets, which then shows the
//! buckets the key holds a permission in). An operation not named there
//! is the administrator's alone. Copies (CopyObject, UploadPartCopy) also
//! need read on their source's bucket. A bucket's policy (`policy`) may
//! allow a key more, and an explicit Deny in it refuses whatever the
//! grants say ([`authorize`]). A refusal is 403 AccessDenied with
//! the request id, logged with the access key and the operation, never a
//! secret.

use arbor_meta::records::CannedAcl;
use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{CopyObjectInput, CopySource, PostObjectInput, UploadPartCopyInput};
use s3s::path::S3Path;
use s3s::{S3Request, S3Result, s3_error};

use crate::http_server::ClientAddress;
use crate::keyring::{Keyring, Permission, Principal};
use crate::metrics::OperationSlot;
use crate::policy::{self, Decision, Facts};
use crate::post_form;
use crate::s3::RequestId;
use crate::xml_body;

/// What an operation needs of its signer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// A permission on the request's bucket.
    Bucket(Permission),
    /// The right to create buckets.
    CreateBucket,
    /// A valid key, nothing more.
    AnyKey,
}

/// What the operation s3s calls `op` needs; `None` for operations only the
/// administrator may call (those Arbor does not serve among them).
pub fn needed(op: &str) -> Option<Need> {
    use Permission::{Owner, Read, Write};
    let need = match op {
        "ListBuckets" => Need::AnyKey,
        "CreateBucket" => Need::CreateBucket,
        "HeadBucket"
        | "GetBucketLocation"
        | "GetBucketVersioning"
        | "GetBucketAcl"
        | "GetBucketTagging"
        | "GetBucketOwnershipControls"
        | "ListObjects"
        | "ListObjectsV2"
        | "ListObjectVersions"
        | "ListMultipartUploads"
        | "ListParts"
        | "GetObject"
        | "HeadObject"
        | "GetObjectAcl"
        | "GetObjectTagging"
        | "GetObjectAttributes"
        | "GetObjectRetention"
        | "GetObjectLegalHold"
        | "GetObjectLockConfiguration" => Need::Bucket(Read),
        // Object Lock headers on PutObject, CopyObject and
        // CreateMultipartUpload need no more than the write itself: Write
        // covers what AWS checks as s3:PutObjectRetention and
        // s3:PutObjectLegalHold (docs/design.md, "Object Lock").
        "PutObject"
        | "CopyObject"
        | "DeleteObject"
        | "DeleteObjects"
        | "PutObjectAcl"
        | "PutObjectTagging"
        | "DeleteObjectTagging"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload"
        | "RenameObject"
        | "PostObject"
        | "PutObjectRetention"
        | "PutObjectLegalHold" => Need::Bucket(Write),
        "DeleteBucket"
        | "PutBucketVersioning"
        | "PutObjectLockConfiguration"
        | "PutBucketAcl"
        | "PutBucketTagging"
        | "DeleteBucketTagging"
        | "PutBucketOwnershipControls"
        | "DeleteBucketOwnershipControls"
        | "GetBucketPolicy"
        | "PutBucketPolicy"
        | "DeleteBucketPolicy"
        | "GetBucketPolicyStatus"
        | "GetPublicAccessBlock"
        | "PutPublicAccessBlock"
        | "DeletePublicAccessBlock"
        | "PutBucketCors"
        | "GetBucketCors"
        | "DeleteBucketCors"
        | "PutBucketLifecycleConfiguration"
        | "GetBucketLifecycleConfiguration"
        | "DeleteBucketLifecycle"
        | "GetBucketEncryption"
        | "DeleteBucketEncryption"
        | "GetBucketWebsite"
        | "DeleteBucketWebsite"
        | "GetBucketReplication"
        | "DeleteBucketReplication"
        | "GetBucketLogging"
        | "GetBucketRequestPayment"
        | "GetBucketAccelerateConfiguration"
        | "GetBucketNotificationConfiguration" => Need::Bucket(Owner),
        _ => return None,
    };
    Some(need)
}

/// The refusal, logged with who asked for what.
pub fn denied(principal: &Principal, op: &str, bucket: Option<&str>) -> s3s::S3Error {
    tracing::info!(
        access_key = principal.access_key(),
        action = op,
        bucket = bucket.unwrap_or(""),
        "access denied"
    );
    s3_error!(AccessDenied, "Access Denied")
}

/// Whether `principal` may call `op` on `bucket` (`None`: the root).
pub fn allows(principal: &Principal, op: &str, bucket: Option<&str>) -> bool {
    if principal.is_administrator() {
        return true;
    }
    match (needed(op), bucket) {
        (Some(Need::AnyKey), _) => !principal.is_anonymous(),
        (Some(Need::CreateBucket), _) => principal.may_create_bucket(),
        (Some(Need::Bucket(permission)), Some(bucket)) => principal.may(bucket, permission),
        (Some(Need::Bucket(_)), None) | (None, _) => false,
    }
}

/// What a request is, for [`authorize`].
pub struct Request<'a> {
    pub op: &'a str,
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    pub uri: &'a http::Uri,
    pub extensions: &'a http::Extensions,
}

/// What an access check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The request may run.
    Granted,
    /// A GetObject or HeadObject that only the ACL of the version it reads
    /// may allow: its handler decides, once it has the version.
    IfObjectAcl(ObjectAclGate),
}

/// A read that the version's own ACL must allow ([`Access::IfObjectAcl`]),
/// put in the request's extensions for the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectAclGate {
    /// Whether the request is unsigned (AuthenticatedUsers does not
    /// include it).
    pub anonymous: bool,
    /// Whether the requester may list the bucket: a key that does not
    /// exist is then 404, as S3 answers, otherwise 403, which tells
    /// nothing of what the bucket holds.
    pub may_list: bool,
}

impl ObjectAclGate {
    /// Whether a version with `acl` may be read.
    pub fn admits(&self, acl: CannedAcl) -> bool {
        acl.grants_read(self.anonymous)
    }

    /// The refusal, logged as [`denied`] logs it.
    pub fn refusal(&self, op: &str, bucket: &str) -> s3s::S3Error {
        tracing::info!(
            anonymous = self.anonymous,
            action = op,
            bucket,
            "access denied by ACL"
        );
        s3_error!(AccessDenied, "Access Denied")
    }

    /// What a read that failed (`NoSuchKey`, `NoSuchVersion`, a delete
    /// marker) answers: the failure itself to one who may list the
    /// bucket, 403 to anyone else. A bucket that does not exist is
    /// NoSuchBucket to anyone, as S3 answers.
    pub fn hide(&self, e: s3s::S3Error, op: &str, bucket: &str) -> s3s::S3Error {
        if self.may_list || *e.code() == s3s::S3ErrorCode::NoSuchBucket {
            e
        } else {
            self.refusal(op, bucket)
        }
    }
}

/// Whether `principal` may make `request`: the administrator always; a
/// key if its bucket's policy does not deny it and either the policy
/// allows it or the key's grants do ([`allows`]); failing those, the
/// bucket's ACL or, for a read, the version's ([`acl_access`]).
pub async fn authorize(
    keyring: &Keyring,
    principal: &Principal,
    request: &Request<'_>,
) -> S3Result<Access> {
    if principal.is_administrator() {
        return Ok(Access::Granted);
    }
    let granted = allows(principal, request.op, request.bucket);
    let decision = match request.bucket {
        Some(bucket) if matches!(needed(request.op), Some(Need::Bucket(_)) | None) => {
            let action = policy::action(request.op);
            policy_decision(keyring, principal, request, bucket, &action, request.key).await?
        }
        _ => Decision::Silent,
    };
    match (decision, granted, request.bucket) {
        (Decision::Allow, _, _) | (Decision::Silent, true, _) => Ok(Access::Granted),
        (Decision::Silent, false, Some(bucket)) => {
            match acl_access(keyring, principal, request, bucket).await? {
                Some(access) => Ok(access),
                // S3 tells anyone that a bucket does not exist (its name is
                // global): 404 NoSuchBucket, not 403. From the cached rules
                // (at most a second old), so a refusal costs no extra read.
                None if request.op != "CreateBucket"
                    && !keyring.bucket_rules(bucket).await?.exists =>
                {
                    Err(crate::error::from_meta(
                        arbor_meta::MetaError::NoSuchBucket(bucket.to_owned()),
                    ))
                }
                None => Err(denied(principal, request.op, request.bucket)),
            }
        }
        (Decision::Deny, _, _) | (Decision::Silent, false, None) => {
            Err(denied(principal, request.op, request.bucket))
        }
    }
}

/// What the bucket's ACL allows `request` that nothing else does
/// (docs/design.md, "Access control lists"): READ lists the bucket,
/// WRITE creates, replaces and deletes its objects; a GetObject or
/// HeadObject may still be allowed by the version's own ACL.
async fn acl_access(
    keyring: &Keyring,
    principal: &Principal,
    request: &Request<'_>,
    bucket: &str,
) -> S3Result<Option<Access>> {
    let rules = keyring.bucket_rules(bucket).await?;
    let anonymous = principal.is_anonymous();
    let acl = rules.effective_acl();
    let by_bucket = match policy::action(request.op).as_str() {
        "s3:ListBucket" | "s3:ListBucketVersions" | "s3:ListBucketMultipartUploads" => {
            acl.grants_read(anonymous)
        }
        "s3:PutObject"
        | "s3:DeleteObject"
        | "s3:AbortMultipartUpload"
        | "s3:ListMultipartUploadParts" => acl.grants_write(),
        _ => false,
    };
    if by_bucket {
        return Ok(Some(Access::Granted));
    }
    let reads_object = matches!(request.op, "GetObject" | "HeadObject") && request.key.is_some();
    if !reads_object || !rules.object_acls_count() {
        return Ok(None);
    }
    let may_list = allows(principal, "ListObjects", Some(bucket))
        || acl.grants_read(anonymous)
        || policy_decision(keyring, principal, request, bucket, "s3:ListBucket", None).await?
            == Decision::Allow;
    Ok(Some(Access::IfObjectAcl(ObjectAclGate {
        anonymous,
        may_list,
    })))
}

/// Refuses `request` if its bucket's policy denies any of `actions` on
/// `key` (a rename's source: moving a key out of a denied prefix would
/// lift the Deny).
pub async fn check_policy_denies(
    keyring: &Keyring,
    principal: &Principal,
    request: &Request<'_>,
    actions: &[&str],
    key: &str,
) -> S3Result<()> {
    let Some(bucket) = request.bucket else {
        return Ok(());
    };
    if principal.is_administrator() {
        return Ok(());
    }
    for action in actions {
        let decision =
            policy_decision(keyring, principal, request, bucket, action, Some(key)).await?;
        if decision == Decision::Deny {
            return Err(denied(principal, request.op, Some(bucket)));
        }
    }
    Ok(())
}

/// Operations that honour `x-amz-bypass-governance-retention`.
const BYPASSING_OPERATIONS: [&str; 3] = ["DeleteObject", "DeleteObjects", "PutObjectRetention"];

/// A request that asks to bypass GOVERNANCE retention also needs what
/// AWS calls `s3:BypassGovernanceRetention`: the bucket's owner permission,
/// or a policy that allows that action (and no Deny of it). Without it the
/// request is refused whole (403 AccessDenied), not run without the bypass.
pub async fn authorize_bypass(
    keyring: &Keyring,
    principal: &Principal,
    request: &Request<'_>,
) -> S3Result<()> {
    let asks = request
        .headers
        .get("x-amz-bypass-governance-retention")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if !asks || principal.is_administrator() || !BYPASSING_OPERATIONS.contains(&request.op) {
        return Ok(());
    }
    let Some(bucket) = request.bucket else {
        return Ok(());
    };
    let action = "s3:BypassGovernanceRetention";
    let decision =
        policy_decision(keyring, principal, request, bucket, action, request.key).await?;
    match decision {
        Decision::Allow => Ok(()),
        Decision::Silent if principal.may(bucket, Permission::Owner) => Ok(()),
        Decision::Silent | Decision::Deny => Err(denied(principal, action, Some(bucket))),
    }
}

/// What `bucket`'s policy says of `action` on `key` (or the bucket).
async fn policy_decision(
    keyring: &Keyring,
    principal: &Principal,
    request: &Request<'_>,
    bucket: &str,
    action: &str,
    key: Option<&str>,
) -> S3Result<Decision> {
    let rules = keyring.bucket_rules(bucket).await?;
    let Some(policy) = rules.policy else {
        return Ok(Decision::Silent);
    };
    // RestrictPublicBuckets: the policy admits no anonymous request.
    if principal.is_anonymous() && rules.block.restrict_public_buckets {
        return Ok(Decision::Silent);
    }
    let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
    let prefix = query_value(request.uri, "prefix");
    // Read only for a policy that tests them (one metadata read more).
    let object_tags = match key {
        Some(key) if policy.needs_object_tags() => {
            let version_id = query_value(request.uri, "versionId");
            keyring
                .object_tags(bucket, key, version_id.as_deref())
                .await?
        }
        _ => None,
    };
    // AWS's version actions apply to a request naming a version (the
    // plain action still does: docs/OPERATING.md, "Bucket policies").
    let names_version = query_value(request.uri, "versionId").is_some_and(|v| !v.is_empty());
    let version_action = names_version
        .then(|| policy::version_action(request.op))
        .flatten()
        .filter(|_| action == policy::action(request.op));
    let facts = Facts {
        access_key: principal.key_id(),
        action,
        version_action,
        resource: policy::resource(bucket, key),
        source_ip: request.extensions.get::<ClientAddress>().map(|c| c.0),
        // Arbor serves plain HTTP.
        secure_transport: false,
        prefix: prefix.as_deref(),
        if_none_match: header("if-none-match"),
        if_match: header("if-match"),
        headers: Some(request.headers),
        query: request.uri.query(),
        object_tags: object_tags.as_deref(),
    };
    Ok(policy.evaluate(&facts))
}

/// The request's headers with what a browser upload's form fields say in
/// their place (`acl`, `x-amz-grant-*`, `tagging`, ...): a policy's
/// condition on `s3:x-amz-acl` holds for a form as for a PutObject.
fn post_form_headers(headers: &http::HeaderMap, input: &PostObjectInput) -> http::HeaderMap {
    let mut out = headers.clone();
    let fields: [(&str, Option<&str>); 12] = [
        ("x-amz-acl", input.acl.as_ref().map(|v| v.as_str())),
        (
            "x-amz-grant-full-control",
            input.grant_full_control.as_deref(),
        ),
        ("x-amz-grant-read", input.grant_read.as_deref()),
        ("x-amz-grant-read-acp", input.grant_read_acp.as_deref()),
        ("x-amz-grant-write-acp", input.grant_write_acp.as_deref()),
        (
            "x-amz-storage-class",
            input.storage_class.as_ref().map(|v| v.as_str()),
        ),
        (
            "x-amz-server-side-encryption",
            input.server_side_encryption.as_ref().map(|v| v.as_str()),
        ),
        (
            "x-amz-server-side-encryption-aws-kms-key-id",
            input.ssekms_key_id.as_deref(),
        ),
        (
            "x-amz-website-redirect-location",
            input.website_redirect_location.as_deref(),
        ),
        (
            "x-amz-object-lock-mode",
            input.object_lock_mode.as_ref().map(|v| v.as_str()),
        ),
        (
            "x-amz-object-lock-legal-hold",
            input
                .object_lock_legal_hold_status
                .as_ref()
                .map(|v| v.as_str()),
        ),
        ("x-amz-tagging", input.tagging.as_deref()),
    ];
    for (name, value) in fields {
        out.remove(name);
        if let Some(value) = value {
            // A value no header can carry stands as an empty one: present,
            // so a `Null` test or a Deny on any value still sees it.
            let value = http::HeaderValue::from_str(value)
                .unwrap_or_else(|_| http::HeaderValue::from_static(""));
            out.insert(name, value);
        }
    }
    out
}

/// The percent-decoded value of query parameter `name`.
fn query_value(uri: &http::Uri, name: &str) -> Option<String> {
    policy::query_param(uri.query()?, name)
}

/// The signer of a signed request, or [`Principal::Anonymous`].
pub async fn principal(
    keyring: &Keyring,
    credentials: Option<&s3s::auth::Credentials>,
) -> S3Result<Principal> {
    let Some(credentials) = credentials else {
        return Ok(Principal::Anonymous);
    };
    Ok(keyring.find(&credentials.access_key).await?.1)
}

/// s3s's access check: [`xml_body`]'s checks, then the signer's
/// permissions, before anything runs. The principal goes into the
/// request's extensions for the handlers.
pub struct AccessControl {
    pub keyring: Keyring,
}

impl AccessControl {
    async fn check_operation(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let operation = cx.s3_op().name().to_owned();
        if let Some(slot) = cx.extensions_mut().get::<OperationSlot>() {
            slot.set(operation);
        }
        xml_body::check_subresource_and_size(cx)?;
        let principal = principal(&self.keyring, cx.credentials()).await?;
        // The context lends its extensions mutably only: the client
        // address is copied out.
        let mut extensions = http::Extensions::new();
        if let Some(client) = cx.extensions_mut().get::<ClientAddress>().copied() {
            extensions.insert(client);
        }
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => (None, None),
            S3Path::Bucket { bucket } => (Some(&**bucket), None),
            S3Path::Object { bucket, key } => (Some(&**bucket), Some(&**key)),
        };
        let request = Request {
            op: cx.s3_op().name(),
            bucket,
            key,
            headers: cx.headers(),
            uri: cx.uri(),
            extensions: &extensions,
        };
        // A browser upload names its key in the form, which s3s has not
        // parsed yet: it is authorized in `post_object`, with the key.
        if request.op != "PostObject" {
            let access = authorize(&self.keyring, &principal, &request).await?;
            authorize_bypass(&self.keyring, &principal, &request).await?;
            check_expected_owner(&principal, &request)?;
            if let Access::IfObjectAcl(gate) = access {
                cx.extensions_mut().insert(gate);
            }
        }
        self.enter(principal, cx.extensions_mut());
        Ok(())
    }

    /// What every admitted request carries for its handlers.
    fn enter(&self, principal: Principal, extensions: &mut http::Extensions) {
        extensions.insert(principal);
        // CreateBucket tells it of the grant it made, the policy
        // operations of the policy they changed.
        extensions.insert(self.keyring.clone());
    }

    /// For a browser upload, which the gateway reads itself
    /// (`crate::post_object`): what `check` does for an operation s3s
    /// routes. The key is authorized in `post_object`, once the form
    /// named it.
    pub async fn admit(
        &self,
        credentials: Option<&s3s::auth::Credentials>,
        extensions: &mut http::Extensions,
    ) -> S3Result<()> {
        let request_id = RequestId::of(extensions);
        let principal = principal(&self.keyring, credentials)
            .await
            .map_err(|e| request_id.stamp(e))?;
        self.enter(principal, extensions);
        Ok(())
    }

    /// A copy needs read on its source's bucket (or its policy's
    /// s3:GetObject on the source), and no Deny there.
    async fn check_copy_source<T: Send + Sync>(
        &self,
        req: &S3Request<T>,
        op: &str,
        source: &CopySource,
    ) -> S3Result<()> {
        let principal = crate::keyring::principal_of(&req.extensions)?;
        let request_id = RequestId::of(&req.extensions);
        if principal.is_administrator() {
            return Ok(());
        }
        let CopySource::Bucket { bucket, key, .. } = source else {
            return Err(request_id.stamp(denied(&principal, op, None)));
        };
        let request = Request {
            op,
            bucket: Some(bucket),
            key: Some(key),
            headers: &req.headers,
            uri: &req.uri,
            extensions: &req.extensions,
        };
        let decision = policy_decision(
            &self.keyring,
            &principal,
            &request,
            bucket,
            "s3:GetObject",
            Some(key),
        )
        .await
        .map_err(|e| request_id.stamp(e))?;
        let readable = match decision {
            Decision::Allow => true,
            Decision::Deny => false,
            Decision::Silent => principal.may(bucket, Permission::Read),
        };
        if readable {
            Ok(())
        } else {
            Err(request_id.stamp(denied(&principal, op, Some(bucket))))
        }
    }
}

/// S3's guard against reaching another account's bucket:
/// `x-amz-expected-bucket-owner` (and a copy's
/// `x-amz-source-expected-bucket-owner`) naming another owner than the
/// bucket's is 403 AccessDenied, whoever signs. Every bucket of a
/// deployment has the one owner ([`crate::s3::OWNER_ID`]).
pub(crate) fn check_expected_owner(principal: &Principal, request: &Request<'_>) -> S3Result<()> {
    if request.bucket.is_none() {
        return Ok(());
    }
    for name in [
        "x-amz-expected-bucket-owner",
        "x-amz-source-expected-bucket-owner",
    ] {
        if let Some(expected) = request.headers.get(name)
            && expected.as_bytes() != crate::s3::OWNER_ID.as_bytes()
        {
            tracing::info!(header = name, "expected bucket owner is not the bucket's");
            return Err(denied(principal, request.op, request.bucket));
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl S3Access for AccessControl {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let request_id = RequestId::of(cx.extensions_mut());
        self.check_operation(cx)
            .await
            .map_err(|e| request_id.stamp(e))
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        self.check_copy_source(req, "CopyObject", &req.input.copy_source)
            .await
    }

    /// A browser upload (POST with a signed policy): the signer, or
    /// anyone if the bucket's policy allows `s3:PutObject` on the key to
    /// `*`, needs write on the bucket for the key the form names.
    async fn post_object(&self, req: &mut S3Request<PostObjectInput>) -> S3Result<()> {
        let request_id = RequestId::of(&req.extensions);
        // What the form says besides PutObject's fields (`post_form`):
        // AWS's `acl` field, and the file's name for `${filename}` in the
        // key.
        let found = req
            .extensions
            .get::<post_form::Found>()
            .cloned()
            .unwrap_or_default();
        if req.input.acl.is_none()
            && let Some(acl) = found.acl.clone()
        {
            req.input.acl = Some(s3s::dto::ObjectCannedACL::from(acl));
        }
        if let Some(key) = post_form::fill_filename(&req.input.key, &found) {
            if found.filename.as_deref().is_none_or(str::is_empty) {
                return Err(request_id.stamp(s3_error!(
                    InvalidArgument,
                    "The key names ${{filename}}, but the form's file has no name."
                )));
            }
            req.input.key = key;
        }
        let principal = crate::keyring::principal_of(&req.extensions)?;
        let mut headers = post_form_headers(&req.headers, &req.input);
        if let Some(owner) = req.input.expected_bucket_owner.as_deref() {
            let owner = http::HeaderValue::from_str(owner)
                .unwrap_or_else(|_| http::HeaderValue::from_static(""));
            headers.insert("x-amz-expected-bucket-owner", owner);
        }
        let request = Request {
            op: "PostObject",
            bucket: Some(&req.input.bucket),
            key: Some(&req.input.key),
            headers: &headers,
            uri: &req.uri,
            extensions: &req.extensions,
        };
        let authorized = authorize(&self.keyring, &principal, &request)
            .await
            .and_then(|access| check_expected_owner(&principal, &request).map(|()| access));
        match authorized {
            Ok(Access::Granted) => Ok(()),
            // Only reads are left to the version's ACL.
            Ok(Access::IfObjectAcl(_)) => {
                Err(request_id.stamp(denied(&principal, "PostObject", Some(&req.input.bucket))))
            }
            Err(e) => Err(request_id.stamp(e)),
        }
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        self.check_copy_source(req, "UploadPartCopy", &req.input.copy_source)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_forms_fields_stand_for_the_headers_a_policy_tests() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-amz-acl", http::HeaderValue::from_static("private"));
        headers.insert(
            "content-type",
            http::HeaderValue::from_static("multipart/form-data"),
        );
        let input = PostObjectInput {
            acl: Some(s3s::dto::ObjectCannedACL::from_static(
                s3s::dto::ObjectCannedACL::PUBLIC_READ,
            )),
            tagging: Some("a=1".to_owned()),
            grant_read: Some("bad\nvalue".to_owned()),
            ..PostObjectInput::default()
        };
        let out = post_form_headers(&headers, &input);
        let get = |name: &str| out.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(
            get("x-amz-acl"),
            Some("public-read"),
            "the form's, not the header's"
        );
        assert_eq!(get("x-amz-tagging"), Some("a=1"));
        assert_eq!(
            get("x-amz-grant-read"),
            Some(""),
            "present though unsendable"
        );
        assert_eq!(get("content-type"), Some("multipart/form-data"));
        assert_eq!(get("x-amz-storage-class"), None);
    }

    use arbor_meta::records::{AccessKeyRecord, Permissions};

    fn key(buckets: &[(&str, Permissions)], create_bucket: bool) -> Principal {
        Principal::Key(Arc::new(AccessKeyRecord {
            access_key: "AKIAEXAMPLEKEY000001".into(),
            name: "k".into(),
            sealed_secret: vec![1],
            created_ms: 0,
            create_bucket,
            buckets: buckets.iter().map(|(b, p)| ((*b).to_owned(), *p)).collect(),
        }))
    }

    const READ: Permissions = Permissions {
        read: true,
        write: false,
        owner: false,
    };

    #[test]
    fn a_key_may_only_what_its_grants_say() {
        let reader = key(&[("photos", READ)], false);
        assert!(allows(&reader, "GetObject", Some("photos")));
        assert!(allows(&reader, "ListObjectsV2", Some("photos")));
        assert!(!allows(&reader, "GetObject", Some("other")));
        assert!(!allows(&reader, "PutObject", Some("photos")));
        assert!(!allows(&reader, "DeleteBucket", Some("photos")));
        assert!(!allows(&reader, "CreateBucket", Some("new")));
        assert!(allows(&reader, "ListBuckets", None));
        assert!(
            !allows(&reader, "GetObject", None),
            "a bucket operation needs a bucket"
        );
        assert!(
            !allows(&reader, "PutBucketPolicy", Some("photos")),
            "unknown: administrator only"
        );
        let creator = key(&[], true);
        assert!(allows(&creator, "CreateBucket", Some("new")));
        let administrator = Principal::Administrator {
            access_key: "ADMIN".into(),
        };
        assert!(allows(&administrator, "PutBucketPolicy", Some("photos")));
        assert!(allows(&administrator, "DeleteBucket", Some("any")));
    }

    #[test]
    fn every_operation_arbor_serves_has_a_rule() {
        // The served rows of the conformance table (supported or partial):
        // a new served operation without a rule would be the
        // administrator's alone, and fails here until it has one.
        let table = include_str!("../../docs/conformance.md");
        let mut served = 0;
        for line in table.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if let [_, op, status, ..] = cells.as_slice()
                && (*status == "supported" || *status == "partial")
            {
                served += 1;
                assert!(needed(op).is_some(), "{op} has no access rule");
            }
        }
        assert!(served > 30, "the table was read ({served} rows)");
    }
}
