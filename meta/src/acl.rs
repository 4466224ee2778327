//! Access control lists: a bucket's canned ACL and Object Ownership, one
//! row per bucket in `ns_bucket_acls`, and each version's canned ACL, in
//! its own record (`ObjectVersion::acl`). The gateway decides what they
//! allow (docs/design.md, "Access control lists"); here they are stored,
//! and a bucket whose Object Ownership is `BucketOwnerEnforced` gets no
//! ACL but the owner's, whichever command tries.

use redb::ReadTransaction;
use serde::{Deserialize, Serialize};

use crate::context::ApplyContext;
use crate::error::{MetaError, Result};
use crate::keys::validate_key;
use crate::namespace::{CurrentMarker, rewrite_version};
use crate::op::{Apply, Outcome, Query};
use crate::records::access::{BucketAcl, CannedAcl, ObjectOwnership};
use crate::records::object::VersionId;
use crate::schema::{self, decode_record, encode_record};
use crate::tree::{BytesTable, open_read, read_bucket};

/// The ACL row of `bucket` (the default when it has none).
pub(crate) fn bucket_acl_of<T: BytesTable>(table: &T, bucket: &str) -> Result<BucketAcl> {
    match table.get(bucket.as_bytes())? {
        Some(value) => decode_record(value.value()),
        None => Ok(BucketAcl::default()),
    }
}

/// `AclNotSupported` if `bucket` has ACLs disabled and `acl` is not the
/// owner's alone: PutObject, CopyObject, CreateMultipartUpload and
/// CompleteMultipartUpload, PutObjectAcl, PutBucketAcl.
pub(crate) fn check_acl_allowed(
    ctx: &ApplyContext<'_>,
    bucket: &str,
    acl: CannedAcl,
) -> Result<Option<MetaError>> {
    if acl == CannedAcl::Private {
        return Ok(None);
    }
    let current = bucket_acl_of(&ctx.bucket_acls, bucket)?;
    Ok(current
        .ownership
        .acls_disabled()
        .then(|| MetaError::AclNotSupported(bucket.to_owned())))
}

fn store(ctx: &mut ApplyContext<'_>, bucket: &str, row: &BucketAcl) -> Result<()> {
    if *row == BucketAcl::default() {
        ctx.bucket_acls.remove(bucket.as_bytes())?;
    } else {
        ctx.bucket_acls
            .insert(bucket.as_bytes(), encode_record(row)?.as_slice())?;
    }
    Ok(())
}

/// PutBucketAcl (and CreateBucket's `x-amz-acl`). `NoSuchBucket`;
/// `AclNotSupported` for a public ACL on a bucket with ACLs disabled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetBucketAcl {
    pub bucket: String,
    pub acl: CannedAcl,
}

impl Apply for SetBucketAcl {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        if read_bucket(&ctx.buckets, &self.bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(self.bucket.clone())));
        }
        if let Some(refused) = check_acl_allowed(ctx, &self.bucket, self.acl)? {
            return Ok(Err(refused));
        }
        let mut row = bucket_acl_of(&ctx.bucket_acls, &self.bucket)?;
        row.acl = self.acl;
        store(ctx, &self.bucket, &row)?;
        Ok(Ok(()))
    }
}

/// PutBucketOwnershipControls (and CreateBucket's
/// `x-amz-object-ownership`); DeleteBucketOwnershipControls sets the
/// default. `BucketOwnerEnforced` is refused (`AclWithOwnership`) while
/// the bucket's own ACL grants anything beyond the owner, as S3 does;
/// versions' ACLs stay stored but grant nothing while ACLs are disabled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetObjectOwnership {
    pub bucket: String,
    pub ownership: ObjectOwnership,
}

impl Apply for SetObjectOwnership {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        if read_bucket(&ctx.buckets, &self.bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(self.bucket.clone())));
        }
        let mut row = bucket_acl_of(&ctx.bucket_acls, &self.bucket)?;
        if self.ownership.acls_disabled() && row.acl != CannedAcl::Private {
            return Ok(Err(MetaError::AclWithOwnership(self.bucket.clone())));
        }
        row.ownership = self.ownership;
        store(ctx, &self.bucket, &row)?;
        Ok(Ok(()))
    }
}

/// Linearizable: a bucket's ACL and Object Ownership. `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBucketAcl {
    pub bucket: String,
}

impl Query for GetBucketAcl {
    type Reply = BucketAcl;
    const INLINE: bool = true;
    fn read(&self, txn: &ReadTransaction) -> Result<BucketAcl> {
        let Some(buckets) = open_read(txn, schema::BUCKETS)? else {
            return Err(MetaError::NoSuchBucket(self.bucket.clone()));
        };
        if read_bucket(&buckets, &self.bucket)?.is_none() {
            return Err(MetaError::NoSuchBucket(self.bucket.clone()));
        }
        match open_read(txn, schema::BUCKET_ACLS)? {
            Some(table) => bucket_acl_of(&table, &self.bucket),
            None => Ok(BucketAcl::default()),
        }
    }
}

/// PutObjectAcl: sets the ACL of a version of `bucket/key` (the current
/// one when `version_id` is `None`), rewriting its record in place.
/// `NoSuchKey` / `NoSuchVersion`, `NoSuchKey` too when the current
/// version is a delete marker, `DeleteMarker` when one is named by its id
/// (it has no ACL: S3 answers 405); `AclNotSupported` for a public ACL on
/// a bucket with ACLs disabled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetObjectAcl {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<VersionId>,
    pub acl: CannedAcl,
}

impl Apply for SetObjectAcl {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        if let Err(e) = validate_key(&self.key) {
            return Ok(Err(e));
        }
        let Some(record) = read_bucket(&ctx.buckets, &self.bucket)? else {
            return Ok(Err(MetaError::NoSuchBucket(self.bucket.clone())));
        };
        if let Some(refused) = check_acl_allowed(ctx, &self.bucket, self.acl)? {
            return Ok(Err(refused));
        }
        let acl = self.acl;
        let rewritten = rewrite_version(
            ctx,
            record.root,
            &self.key,
            self.version_id,
            CurrentMarker::Missing,
            |version| version.acl = acl,
        )?;
        Ok(rewritten.map(|_| ()))
    }
}
