//! Access keys: one row per key in `ns_access_keys`, holding its sealed
//! secret and its permissions per bucket; and bucket policies, one JSON
//! document per bucket in `ns_bucket_policies` (the gateway parses and
//! enforces them); and CORS rules, one list per bucket in `ns_bucket_cors`
//! (the gateway answers browsers with them). Each change is one command, so
//! every gateway reads the same keys. The administrator's key is not among
//! them: it is the deployment's configured credentials, and the gateway
//! grants it everything.

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::context::ApplyContext;
use crate::error::{MetaError, Result};
use crate::limits::{
    ACCESS_KEY_LEN_MAX, ACCESS_KEY_LEN_MIN, ACCESS_KEY_NAME_LEN_MAX, ACCESS_KEYS_MAX,
    BUCKET_CORS_RULES_MAX, BUCKET_CORS_SIZE_MAX, BUCKET_POLICY_SIZE_MAX,
};
use crate::op::{Apply, Outcome, Query, SIZE_BASE};
use crate::records::access::{
    AccessKeyRecord, BucketAcl, CorsRule, Permissions, PublicAccessBlock,
};
use crate::schema::{self, StateTable, decode_record, encode_record};
use crate::tree::{bucket_record, open_read, read_bucket};

type Table<'txn> = crate::context::WriteTable<'txn>;

/// The row of `bucket` in the per-bucket `table`, decoded; `None` without
/// one.
fn bucket_row<T: DeserializeOwned>(
    txn: &ReadTransaction,
    table: StateTable,
    bucket: &str,
) -> Result<Option<T>> {
    let Some(table) = open_read(txn, table)? else {
        return Ok(None);
    };
    match table.get(bucket.as_bytes())? {
        Some(value) => Ok(Some(decode_record(value.value())?)),
        None => Ok(None),
    }
}

fn read_key<T: crate::tree::BytesTable>(
    table: &T,
    access_key: &str,
) -> Result<Option<AccessKeyRecord>> {
    let Some(value) = table.get(access_key.as_bytes())? else {
        return Ok(None);
    };
    let record: AccessKeyRecord = decode_record(value.value())?;
    if record.access_key != access_key {
        return Err(MetaError::Corrupt(format!(
            "access key row {access_key:?} holds {:?}",
            record.access_key
        )));
    }
    Ok(Some(record))
}

fn write_key(table: &mut Table<'_>, record: &AccessKeyRecord) -> Result<()> {
    table.insert(
        record.access_key.as_bytes(),
        encode_record(record)?.as_slice(),
    )?;
    Ok(())
}

/// Checks an access key id and a key's name: printable ASCII ids of S3's
/// usual length, names of bounded length without control characters.
fn validate(record: &AccessKeyRecord) -> std::result::Result<(), MetaError> {
    let id = &record.access_key;
    if id.len() < ACCESS_KEY_LEN_MIN
        || id.len() > ACCESS_KEY_LEN_MAX
        || !id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(MetaError::InvalidRequest(format!(
            "an access key id is {ACCESS_KEY_LEN_MIN} to {ACCESS_KEY_LEN_MAX} letters and digits"
        )));
    }
    if record.name.is_empty()
        || record.name.len() > ACCESS_KEY_NAME_LEN_MAX
        || record.name.chars().any(char::is_control)
    {
        return Err(MetaError::InvalidRequest(format!(
            "a key's name is 1 to {ACCESS_KEY_NAME_LEN_MAX} bytes without control characters"
        )));
    }
    if record.sealed_secret.is_empty() {
        return Err(MetaError::InvalidRequest("a key needs a secret".to_owned()));
    }
    Ok(())
}

/// Removes every key's permissions on `bucket` (its deletion): a bucket
/// created again under the same name starts with no grants. Visits at most
/// [`ACCESS_KEYS_MAX`] rows.
pub(crate) fn forget_bucket(ctx: &mut ApplyContext<'_>, bucket: &str) -> Result<()> {
    let mut changed = Vec::new();
    for row in ctx.access_keys.range::<&[u8]>(..)? {
        let (_, value) = row?;
        let mut record: AccessKeyRecord = decode_record(value.value())?;
        if record.buckets.remove(bucket).is_some() {
            changed.push(record);
        }
    }
    for record in &changed {
        write_key(&mut ctx.access_keys, record)?;
    }
    ctx.bucket_policies.remove(bucket.as_bytes())?;
    ctx.public_access_blocks.remove(bucket.as_bytes())?;
    ctx.bucket_cors.remove(bucket.as_bytes())?;
    ctx.bucket_acls.remove(bucket.as_bytes())?;
    Ok(())
}

/// Adds a key; `AccessKeyExists` if its id is taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAccessKey {
    pub record: AccessKeyRecord,
}

impl Apply for CreateAccessKey {
    type Reply = AccessKeyRecord;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<AccessKeyRecord>> {
        let record = &self.record;
        if let Err(e) = validate(record) {
            return Ok(Err(e));
        }
        if read_key(&ctx.access_keys, &record.access_key)?.is_some() {
            return Ok(Err(MetaError::AccessKeyExists(record.access_key.clone())));
        }
        if ctx.access_keys.len()? >= ACCESS_KEYS_MAX {
            return Ok(Err(MetaError::InvalidRequest(format!(
                "there are already {ACCESS_KEYS_MAX} access keys"
            ))));
        }
        for bucket in record.buckets.keys() {
            if read_bucket(&ctx.buckets, bucket)?.is_none() {
                return Ok(Err(MetaError::NoSuchBucket(bucket.clone())));
            }
        }
        write_key(&mut ctx.access_keys, record)?;
        Ok(Ok(record.clone()))
    }

    fn size_estimate(&self) -> usize {
        let buckets: usize = self.record.buckets.keys().map(|b| b.len() + 3).sum();
        SIZE_BASE
            .saturating_add(self.record.name.len())
            .saturating_add(self.record.sealed_secret.len())
            .saturating_add(buckets)
    }
}

/// Removes a key; `NoSuchAccessKey` if there is none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteAccessKey {
    pub access_key: String,
}

impl Apply for DeleteAccessKey {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        if ctx
            .access_keys
            .remove(self.access_key.as_bytes())?
            .is_none()
        {
            return Ok(Err(MetaError::NoSuchAccessKey(self.access_key.clone())));
        }
        Ok(Ok(()))
    }
}

/// What an [`AllowAccessKey`] or [`DenyAccessKey`] changes: the right to
/// create buckets, and permissions on one bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub create_bucket: bool,
    /// The bucket and the permissions on it, if any.
    pub bucket: Option<(String, Permissions)>,
}

/// Adds permissions to a key; replies with the key as it now is.
/// `NoSuchAccessKey`, `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowAccessKey {
    pub access_key: String,
    pub grant: Grant,
}

impl Apply for AllowAccessKey {
    type Reply = AccessKeyRecord;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<AccessKeyRecord>> {
        let Some(mut record) = read_key(&ctx.access_keys, &self.access_key)? else {
            return Ok(Err(MetaError::NoSuchAccessKey(self.access_key.clone())));
        };
        record.create_bucket |= self.grant.create_bucket;
        if let Some((bucket, permissions)) = &self.grant.bucket {
            if read_bucket(&ctx.buckets, bucket)?.is_none() {
                return Ok(Err(MetaError::NoSuchBucket(bucket.clone())));
            }
            let now = record.permissions(bucket).union(*permissions);
            if !now.is_empty() {
                record.buckets.insert(bucket.clone(), now);
            }
        }
        write_key(&mut ctx.access_keys, &record)?;
        Ok(Ok(record))
    }
}

/// Takes permissions from a key; replies with the key as it now is. A
/// bucket left with no permission is dropped from the key; denying on a
/// bucket that no longer exists is allowed. `NoSuchAccessKey`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenyAccessKey {
    pub access_key: String,
    pub grant: Grant,
}

impl Apply for DenyAccessKey {
    type Reply = AccessKeyRecord;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<AccessKeyRecord>> {
        let Some(mut record) = read_key(&ctx.access_keys, &self.access_key)? else {
            return Ok(Err(MetaError::NoSuchAccessKey(self.access_key.clone())));
        };
        if self.grant.create_bucket {
            record.create_bucket = false;
        }
        if let Some((bucket, permissions)) = &self.grant.bucket {
            let now = record.permissions(bucket).without(*permissions);
            if now.is_empty() {
                record.buckets.remove(bucket);
            } else {
                record.buckets.insert(bucket.clone(), now);
            }
        }
        write_key(&mut ctx.access_keys, &record)?;
        Ok(Ok(record))
    }
}

/// Gives `access_key` every permission on `bucket` (which it just
/// created). `Ok(Err)` as the outcome if the key is gone or may not create
/// buckets; checked before the caller's first write by [`may_create_bucket`].
pub(crate) fn grant_owner(
    ctx: &mut ApplyContext<'_>,
    access_key: &str,
    bucket: &str,
) -> Result<()> {
    let Some(mut record) = read_key(&ctx.access_keys, access_key)? else {
        return Err(MetaError::Corrupt(format!(
            "access key {access_key} vanished within one command"
        )));
    };
    record.buckets.insert(bucket.to_owned(), Permissions::ALL);
    write_key(&mut ctx.access_keys, &record)
}

/// Whether `access_key` may create buckets: the outcome to refuse with if
/// not (`NoSuchAccessKey`, `AccessDenied`).
pub(crate) fn may_create_bucket(ctx: &ApplyContext<'_>, access_key: &str) -> Result<Outcome<()>> {
    match read_key(&ctx.access_keys, access_key)? {
        None => Ok(Err(MetaError::NoSuchAccessKey(access_key.to_owned()))),
        Some(record) if !record.create_bucket => Ok(Err(MetaError::AccessDenied(format!(
            "access key {access_key} may not create buckets"
        )))),
        Some(_) => Ok(Ok(())),
    }
}

/// Linearizable: one key, if it exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetAccessKey {
    pub access_key: String,
}

impl Query for GetAccessKey {
    type Reply = Option<AccessKeyRecord>;
    const INLINE: bool = true;
    fn read(&self, txn: &ReadTransaction) -> Result<Option<AccessKeyRecord>> {
        let Some(table) = open_read(txn, schema::ACCESS_KEYS)? else {
            return Ok(None);
        };
        read_key(&table, &self.access_key)
    }
}

/// Linearizable: every key, by access key id (at most [`ACCESS_KEYS_MAX`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListAccessKeys;

impl Query for ListAccessKeys {
    type Reply = Vec<AccessKeyRecord>;
    fn read(&self, txn: &ReadTransaction) -> Result<Vec<AccessKeyRecord>> {
        let Some(table) = open_read(txn, schema::ACCESS_KEYS)? else {
            return Ok(Vec::new());
        };
        let mut keys = Vec::new();
        for row in table.range::<&[u8]>(..)? {
            let (_, value) = row?;
            keys.push(decode_record(value.value())?);
        }
        Ok(keys)
    }
}

/// Sets a bucket's policy (JSON the gateway has checked). `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutBucketPolicy {
    pub bucket: String,
    pub policy: String,
}

impl Apply for PutBucketPolicy {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        if read_bucket(&ctx.buckets, &self.bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(self.bucket.clone())));
        }
        if self.policy.is_empty() || self.policy.len() > BUCKET_POLICY_SIZE_MAX {
            return Ok(Err(MetaError::InvalidRequest(format!(
                "a bucket policy is 1 to {BUCKET_POLICY_SIZE_MAX} bytes"
            ))));
        }
        ctx.bucket_policies.insert(
            self.bucket.as_bytes(),
            encode_record(&self.policy)?.as_slice(),
        )?;
        Ok(Ok(()))
    }

    fn size_estimate(&self) -> usize {
        SIZE_BASE
            .saturating_add(self.bucket.len())
            .saturating_add(self.policy.len())
    }
}

/// Removes a bucket's policy, if any. `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteBucketPolicy {
    pub bucket: String,
}

impl Apply for DeleteBucketPolicy {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        if read_bucket(&ctx.buckets, &self.bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(self.bucket.clone())));
        }
        ctx.bucket_policies.remove(self.bucket.as_bytes())?;
        Ok(Ok(()))
    }
}

/// Linearizable: the bucket's policy, if it has one. `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBucketPolicy {
    pub bucket: String,
}

impl Query for GetBucketPolicy {
    type Reply = Option<String>;
    const INLINE: bool = true;
    fn read(&self, txn: &ReadTransaction) -> Result<Option<String>> {
        bucket_record(txn, &self.bucket)?;
        bucket_row(txn, schema::BUCKET_POLICIES, &self.bucket)
    }
}

/// Sets a bucket's public access block. `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutPublicAccessBlock {
    pub bucket: String,
    pub block: PublicAccessBlock,
}

impl Apply for PutPublicAccessBlock {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        if read_bucket(&ctx.buckets, &self.bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(self.bucket.clone())));
        }
        ctx.public_access_blocks.insert(
            self.bucket.as_bytes(),
            encode_record(&self.block)?.as_slice(),
        )?;
        Ok(Ok(()))
    }
}

/// Removes a bucket's public access block, if any. `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletePublicAccessBlock {
    pub bucket: String,
}

impl Apply for DeletePublicAccessBlock {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        if read_bucket(&ctx.buckets, &self.bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(self.bucket.clone())));
        }
        ctx.public_access_blocks.remove(self.bucket.as_bytes())?;
        Ok(Ok(()))
    }
}

/// Linearizable: the bucket's public access block, if set. `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetPublicAccessBlock {
    pub bucket: String,
}

impl Query for GetPublicAccessBlock {
    type Reply = Option<PublicAccessBlock>;
    const INLINE: bool = true;
    fn read(&self, txn: &ReadTransaction) -> Result<Option<PublicAccessBlock>> {
        bucket_record(txn, &self.bucket)?;
        bucket_row(txn, schema::PUBLIC_ACCESS_BLOCKS, &self.bucket)
    }
}

/// A bucket's rules as stored, read together: its policy (JSON, as put),
/// its public access block and its ACL with Object Ownership.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBucketRules {
    pub policy: Option<String>,
    pub block: Option<PublicAccessBlock>,
    pub acl: BucketAcl,
}

/// Linearizable: what [`GetBucketPolicy`], [`GetPublicAccessBlock`] and
/// [`crate::acl::GetBucketAcl`] answer, from one read transaction, so the
/// three agree and a gateway fetches them in one round trip.
/// `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBucketRules {
    pub bucket: String,
}

impl Query for GetBucketRules {
    type Reply = StoredBucketRules;
    const INLINE: bool = true;
    fn read(&self, txn: &ReadTransaction) -> Result<StoredBucketRules> {
        bucket_record(txn, &self.bucket)?;
        Ok(StoredBucketRules {
            policy: bucket_row(txn, schema::BUCKET_POLICIES, &self.bucket)?,
            block: bucket_row(txn, schema::PUBLIC_ACCESS_BLOCKS, &self.bucket)?,
            acl: bucket_row(txn, schema::BUCKET_ACLS, &self.bucket)?.unwrap_or_default(),
        })
    }
}

/// Sets a bucket's CORS rules (as the gateway checked them), or removes
/// them when `rules` is empty. At most [`BUCKET_CORS_RULES_MAX`] rules of
/// at most [`BUCKET_CORS_SIZE_MAX`] bytes in all. `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetBucketCors {
    pub bucket: String,
    pub rules: Vec<CorsRule>,
}

impl Apply for SetBucketCors {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        if read_bucket(&ctx.buckets, &self.bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(self.bucket.clone())));
        }
        if self.rules.is_empty() {
            ctx.bucket_cors.remove(self.bucket.as_bytes())?;
            return Ok(Ok(()));
        }
        if self.rules.len() > BUCKET_CORS_RULES_MAX {
            return Ok(Err(MetaError::InvalidRequest(format!(
                "a bucket has at most {BUCKET_CORS_RULES_MAX} CORS rules"
            ))));
        }
        let encoded = encode_record(&self.rules)?;
        if encoded.len() > BUCKET_CORS_SIZE_MAX {
            return Ok(Err(MetaError::InvalidRequest(format!(
                "a bucket's CORS rules take at most {BUCKET_CORS_SIZE_MAX} bytes"
            ))));
        }
        ctx.bucket_cors
            .insert(self.bucket.as_bytes(), encoded.as_slice())?;
        Ok(Ok(()))
    }

    fn size_estimate(&self) -> usize {
        self.rules.iter().map(CorsRule::size_estimate).fold(
            SIZE_BASE.saturating_add(self.bucket.len()),
            usize::saturating_add,
        )
    }
}

/// Linearizable: the bucket's CORS rules, in order; empty when it has
/// none. `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBucketCors {
    pub bucket: String,
}

impl Query for GetBucketCors {
    type Reply = Vec<CorsRule>;
    const INLINE: bool = true;
    fn read(&self, txn: &ReadTransaction) -> Result<Vec<CorsRule>> {
        let Some(buckets) = open_read(txn, schema::BUCKETS)? else {
            return Err(MetaError::NoSuchBucket(self.bucket.clone()));
        };
        if read_bucket(&buckets, &self.bucket)?.is_none() {
            return Err(MetaError::NoSuchBucket(self.bucket.clone()));
        }
        let Some(table) = open_read(txn, schema::BUCKET_CORS)? else {
            return Ok(Vec::new());
        };
        match table.get(self.bucket.as_bytes())? {
            Some(value) => Ok(decode_record(value.value())?),
            None => Ok(Vec::new()),
        }
    }
}
