//! What each S3 operation needs, and s3s's access check that enforces it
//! ([`AccessControl`]) before an operation's input is read.
//!
//! Every operation Arbor serves names what it needs in [`needed`]: a
//! permission on its bucket (read, write or owner), the right to create
//! buckets, or only a valid key (ListBuckets, which then shows the
//! buckets the key holds a permission in). An operation not named there
//! is the administrator's alone. Copies (CopyObject, UploadPartCopy) also
//! need read on their source's bucket. A refusal is 403 AccessDenied with
//! the request id, logged with the access key and the operation, never a
//! secret.

use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{CopyObjectInput, CopySource, UploadPartCopyInput};
use s3s::path::S3Path;
use s3s::{S3Request, S3Result, s3_error};

use crate::keyring::{Keyring, Permission, Principal};
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
        | "GetObjectAttributes" => Need::Bucket(Read),
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
        | "RenameObject" => Need::Bucket(Write),
        "DeleteBucket"
        | "PutBucketAcl"
        | "PutBucketTagging"
        | "DeleteBucketTagging"
        | "PutBucketOwnershipControls" => Need::Bucket(Owner),
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
        (Some(Need::AnyKey), _) => true,
        (Some(Need::CreateBucket), _) => principal.may_create_bucket(),
        (Some(Need::Bucket(permission)), Some(bucket)) => principal.may(bucket, permission),
        (Some(Need::Bucket(_)), None) | (None, _) => false,
    }
}

/// The signer of a signed request, or the refusal of an anonymous one.
pub async fn principal(
    keyring: &Keyring,
    credentials: Option<&s3s::auth::Credentials>,
) -> S3Result<Principal> {
    let Some(credentials) = credentials else {
        return Err(s3_error!(AccessDenied, "Access Denied"));
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
        xml_body::check_signed_and_size(cx)?;
        let principal = principal(&self.keyring, cx.credentials()).await?;
        let op = cx.s3_op().name();
        let bucket = match cx.s3_path() {
            S3Path::Root => None,
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(&**bucket),
        };
        if !allows(&principal, op, bucket) {
            return Err(denied(&principal, op, bucket));
        }
        cx.extensions_mut().insert(principal);
        // CreateBucket tells it of the grant it made.
        cx.extensions_mut().insert(self.keyring.clone());
        Ok(())
    }
}

/// A copy needs read on its source's bucket.
fn check_copy_source(extensions: &http::Extensions, op: &str, source: &CopySource) -> S3Result<()> {
    let principal = crate::keyring::principal_of(extensions)?;
    let request_id = RequestId::of(extensions);
    let bucket = match source {
        CopySource::Bucket { bucket, .. } => Some(&**bucket),
        _ => None,
    };
    let readable = match bucket {
        Some(bucket) => principal.may(bucket, Permission::Read),
        None => principal.is_administrator(),
    };
    if readable {
        Ok(())
    } else {
        Err(request_id.stamp(denied(&principal, op, bucket)))
    }
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
        check_copy_source(&req.extensions, "CopyObject", &req.input.copy_source)
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        check_copy_source(&req.extensions, "UploadPartCopy", &req.input.copy_source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
