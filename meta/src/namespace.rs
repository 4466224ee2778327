//! Buckets and objects: the namespace's reads and writes on the inode
//! tree (see `tree` for how directories come and go).

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::access;
use crate::chunks::{self, check_placements};
use crate::context::ApplyContext;
use crate::error::{MetaError, Result};
use crate::keys::{directory_stored_name, split_key, validate_bucket_name, validate_key};
use crate::op::{Apply, Outcome, Query, SIZE_BASE, SIZE_CHUNK_REF};
use crate::records::chunk::ChunkPlacement;
use crate::records::object::{
    BucketInfo, ChunkOwnership, ChunkRef, DeleteCondition, ObjectData, ObjectVersion,
    OverwritePolicy, WriteCondition,
};
use crate::records::tree::{
    BucketRecord, ChildRecord, GcOrigin, InodeKind, ObjectEntry, ROOT_INODE,
};
use crate::schema::{self, child_key, decode_record, encode_record, version_key};
use crate::tree::{
    bucket_record, create_directory, create_inode, find_object, has_children, lookup_child,
    lookup_object, open_read, prune_empty_directories, raise_key_len_bounds, read_bucket,
    read_version, remove_child, resolve_directories,
};

// ---------------------------------------------------------------- reads

/// The bucket's record; `NoSuchBucket` if it does not exist.
pub fn get_bucket(txn: &ReadTransaction, name: &str) -> Result<BucketInfo> {
    Ok(bucket_record(txn, name)?.info)
}

/// Every bucket, sorted by name.
pub fn list_buckets(txn: &ReadTransaction) -> Result<Vec<BucketInfo>> {
    let Some(buckets) = open_read(txn, schema::BUCKETS)? else {
        return Ok(Vec::new());
    };
    let mut infos = Vec::new();
    for row in buckets.range::<&[u8]>(..)? {
        let (name, value) = row?;
        let record: BucketRecord = decode_record(value.value())?;
        if record.info.name.as_bytes() != name.value() {
            return Err(MetaError::Corrupt(format!(
                "bucket row {:?} holds {:?}",
                name.value(),
                record.info.name
            )));
        }
        infos.push(record.info);
    }
    Ok(infos)
}

/// The current version of `bucket/key`: `NoSuchBucket` / `NoSuchKey`.
pub fn get_object(txn: &ReadTransaction, bucket: &str, key: &str) -> Result<ObjectVersion> {
    let record = bucket_record(txn, bucket)?;
    validate_key(key)?;
    let children = txn.open_table(schema::CHILDREN)?;
    let Some(entry) = find_object(&children, record.root, key)? else {
        return Err(MetaError::NoSuchKey(key.to_owned()));
    };
    let versions = txn.open_table(schema::VERSIONS)?;
    read_version(&versions, &entry)
}

/// Linearizable: the bucket, or `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBucket {
    pub name: String,
}

impl Query for GetBucket {
    type Reply = BucketInfo;
    fn read(&self, txn: &ReadTransaction) -> Result<BucketInfo> {
        get_bucket(txn, &self.name)
    }
}

/// Linearizable: every bucket, sorted by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListBuckets;

impl Query for ListBuckets {
    type Reply = Vec<BucketInfo>;
    fn read(&self, txn: &ReadTransaction) -> Result<Vec<BucketInfo>> {
        list_buckets(txn)
    }
}

/// Linearizable: the current version of `bucket/key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetObject {
    pub bucket: String,
    pub key: String,
}

impl Query for GetObject {
    type Reply = ObjectVersion;
    fn read(&self, txn: &ReadTransaction) -> Result<ObjectVersion> {
        get_object(txn, &self.bucket, &self.key)
    }
}

// ------------------------------------------------------------ mutations

/// Creates a bucket (validated against S3 naming rules); `created_ms` is
/// the proposer's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBucket {
    pub name: String,
    pub created_ms: i64,
}

impl Apply for CreateBucket {
    type Reply = BucketInfo;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<BucketInfo>> {
        let CreateBucket { name, created_ms } = self;
        let created_ms = *created_ms;

        if let Err(e) = validate_bucket_name(name) {
            return Ok(Err(e));
        }
        if read_bucket(&ctx.buckets, name)?.is_some() {
            return Ok(Err(MetaError::BucketAlreadyExists(name.to_owned())));
        }
        let stored_name = directory_stored_name(name);
        if lookup_child(&ctx.children, ROOT_INODE, &stored_name)?.is_some() {
            return Err(MetaError::Corrupt(format!(
                "root holds {name:?}/ without a bucket row"
            )));
        }
        let root = create_directory(ctx, ROOT_INODE, stored_name)?;
        let info = BucketInfo {
            overwrite: OverwritePolicy::Allow,
            name: name.to_owned(),
            created_ms,
        };
        let record = BucketRecord {
            info: info.clone(),
            root,
        };
        ctx.buckets
            .insert(name.as_bytes(), encode_record(&record)?.as_slice())?;
        Ok(Ok(info))
    }
}

/// Deletes an empty bucket (`BucketNotEmpty` otherwise).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteBucket {
    pub name: String,
}

impl Apply for DeleteBucket {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        let name = &self.name;

        let Some(record) = read_bucket(&ctx.buckets, name)? else {
            return Ok(Err(MetaError::NoSuchBucket(name.to_owned())));
        };
        if has_children(&ctx.children, record.root)? {
            return Ok(Err(MetaError::BucketNotEmpty(name.to_owned())));
        }
        ctx.buckets.remove(name.as_bytes())?;
        ctx.bucket_tags.remove(name.as_bytes())?;
        access::forget_bucket(ctx, name)?;
        remove_child(ctx, ROOT_INODE, &directory_stored_name(name), record.root)?;
        Ok(Ok(()))
    }
}

/// Makes `version` the current version of `bucket/key`, creating the
/// directories on its path in the same transaction; replies with the
/// version and its generation (the log index of the commit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutObject {
    pub bucket: String,
    pub key: String,
    pub version: ObjectVersion,
    pub condition: WriteCondition,
    /// Whether the version's chunks were just written for it, or are
    /// shared with live versions (CopyObject).
    pub ownership: ChunkOwnership,
    /// Where the fresh chunks' replicas are (empty for a local store).
    pub placements: Vec<ChunkPlacement>,
}

impl Apply for PutObject {
    type Reply = ObjectVersion;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<ObjectVersion>> {
        commit_version(
            ctx,
            &self.bucket,
            &self.key,
            &self.version,
            &self.condition,
            self.ownership,
            &self.placements,
        )
    }

    fn size_estimate(&self) -> usize {
        let data = match &self.version.data {
            ObjectData::Inline(bytes) => bytes.len(),
            ObjectData::Chunks(chunks) => chunks.len().saturating_mul(SIZE_CHUNK_REF),
        };
        let metadata: usize = self
            .version
            .user_metadata
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        SIZE_BASE
            .saturating_add(self.key.len())
            .saturating_add(metadata)
            .saturating_add(data)
            .saturating_add(chunks::placements_size(&self.placements))
    }
}

/// Commits `version` as the current version of `bucket/key` at the
/// context's position: PutObject, CopyObject and CompleteMultipartUpload.
pub(crate) fn commit_version(
    ctx: &mut ApplyContext<'_>,
    bucket: &str,
    key: &str,
    version: &ObjectVersion,
    condition: &WriteCondition,
    ownership: ChunkOwnership,
    placements: &[ChunkPlacement],
) -> Result<Outcome<ObjectVersion>> {
    if let Err(e) = validate_key(key) {
        return Ok(Err(e));
    }
    let Some(bucket_record) = read_bucket(&ctx.buckets, bucket)? else {
        return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
    };
    let chunk_ids = version.chunks().iter().map(|c| &c.id);
    match ownership {
        ChunkOwnership::Shared => {
            if let Some(gone) = chunks::first_unreferenced(ctx, chunk_ids)? {
                return Ok(Err(MetaError::Conflict(format!(
                    "chunk {gone} of the source is no longer referenced"
                ))));
            }
        }
        ChunkOwnership::Fresh => {
            if let Some(refused) = chunks::check_fresh(ctx, chunk_ids.clone())? {
                return Ok(Err(refused));
            }
            if let Some(refused) = check_placements(chunk_ids, placements) {
                return Ok(Err(refused));
            }
        }
    }
    let (directories, name) = split_key(key);
    let found = resolve_directories(&ctx.children, bucket_record.root, &directories)?;
    let mut parent = found.last().copied().unwrap_or(bucket_record.root);
    let existing = if found.len() == directories.len() {
        lookup_object(&ctx.children, parent, name)?
    } else {
        None
    };
    if let Err(e) = check_condition(condition, existing.as_ref(), key) {
        return Ok(Err(e));
    }
    if existing.is_some()
        && let Err(e) = check_overwrite(&bucket_record.info.overwrite, condition)
    {
        return Ok(Err(e));
    }

    // Validated: from here on every step writes.
    let mut path = found;
    for segment in directories.iter().skip(path.len()) {
        parent = create_directory(ctx, parent, directory_stored_name(segment))?;
        path.push(parent);
    }
    raise_key_len_bounds(ctx, &path, &directories, name.len())?;
    let mut committed = version.clone();
    committed.generation = ctx.log_index;
    // Reference the new chunks before releasing the old version's, so a
    // chunk both share never reaches zero.
    chunks::reference(ctx, committed.chunks(), placements)?;
    let inode = match &existing {
        Some(old) => {
            retire_version(ctx, old)?;
            old.inode
        }
        None => create_inode(ctx, parent, name.as_bytes().to_vec(), InodeKind::Object)?,
    };
    let previous = ctx.versions.insert(
        version_key(inode, ctx.log_index, ctx.position).as_slice(),
        encode_record(&committed)?.as_slice(),
    )?;
    if previous.is_some() {
        return Err(MetaError::Corrupt(format!(
            "version {inode}/{}/{} written twice",
            ctx.log_index, ctx.position
        )));
    }
    let entry = ObjectEntry {
        inode,
        generation: ctx.log_index,
        position: ctx.position,
        size: committed.size,
        etag: committed.etag.clone(),
        last_modified_ms: committed.last_modified_ms,
        storage_class: committed.storage_class.clone(),
    };
    let child = encode_record(&ChildRecord::Object(entry))?;
    ctx.children.insert(
        child_key(parent, name.as_bytes()).as_slice(),
        child.as_slice(),
    )?;
    Ok(Ok(committed))
}

/// Removes the current version of `bucket/key` and every directory left
/// empty by it; replies whether a version existed. Deleting a missing key
/// succeeds (S3 semantics).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteObject {
    pub bucket: String,
    pub key: String,
}

impl Apply for DeleteObject {
    type Reply = bool;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<bool>> {
        delete_object(ctx, &self.bucket, &self.key, None)
    }

    fn size_estimate(&self) -> usize {
        SIZE_BASE.saturating_add(self.key.len())
    }
}

/// Deletes `bucket/key` if `condition` (if any) holds of its current
/// version: the check and the delete happen in one apply, so nothing can
/// change the key between them.
fn delete_object(
    ctx: &mut ApplyContext<'_>,
    bucket: &str,
    key: &str,
    condition: Option<&DeleteCondition>,
) -> Result<Outcome<bool>> {
    if let Err(e) = validate_key(key) {
        return Ok(Err(e));
    }
    let Some(bucket_record) = read_bucket(&ctx.buckets, bucket)? else {
        return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
    };
    let root = bucket_record.root;
    let (directories, name) = split_key(key);
    let found = resolve_directories(&ctx.children, root, &directories)?;
    let parent = found.last().copied().unwrap_or(root);
    let existing = if found.len() == directories.len() {
        lookup_object(&ctx.children, parent, name)?
    } else {
        None
    };
    let Some(entry) = existing else {
        return Ok(match condition {
            None => Ok(false),
            Some(_) => Err(MetaError::NoSuchKey(key.to_owned())),
        });
    };
    if let Some(DeleteCondition::ETag(etag)) = condition
        && entry.etag != *etag
    {
        return Ok(Err(MetaError::PreconditionFailed));
    }

    retire_version(ctx, &entry)?;
    remove_child(ctx, parent, name.as_bytes(), entry.inode)?;
    prune_empty_directories(ctx, root, &directories, &found)?;
    Ok(Ok(true))
}

/// DeleteObject for each key, in one command (S3's DeleteObjects): each
/// key's outcome (whether a version existed, or why not) is reported on
/// its own; a missing bucket fails the whole command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteObjects {
    pub bucket: String,
    pub keys: Vec<String>,
}

impl Apply for DeleteObjects {
    type Reply = Vec<Outcome<bool>>;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<Vec<Outcome<bool>>>> {
        let (bucket, keys) = (&self.bucket, &self.keys);
        if read_bucket(&ctx.buckets, bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
        }
        let mut outcomes = Vec::with_capacity(keys.len());
        for key in keys {
            outcomes.push(delete_object(ctx, bucket, key, None)?);
        }
        Ok(Ok(outcomes))
    }

    fn size_estimate(&self) -> usize {
        SIZE_BASE.saturating_add(self.keys.iter().map(|k| k.len() + 8).sum::<usize>())
    }
}

/// DeleteObject with a condition on the current version (`If-Match`):
/// `PreconditionFailed` if its ETag differs, `NoSuchKey` if there is none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteObjectIf {
    pub bucket: String,
    pub key: String,
    pub condition: DeleteCondition,
}

impl Apply for DeleteObjectIf {
    type Reply = bool;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<bool>> {
        delete_object(ctx, &self.bucket, &self.key, Some(&self.condition))
    }

    fn size_estimate(&self) -> usize {
        SIZE_BASE.saturating_add(self.key.len().saturating_mul(2))
    }
}

/// DeleteObjects where each key may carry its own condition (`<ETag>` in
/// the request body); each key's outcome is reported on its own, as in
/// [`DeleteObjects`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteObjectsIf {
    pub bucket: String,
    pub objects: Vec<(String, Option<DeleteCondition>)>,
}

impl Apply for DeleteObjectsIf {
    type Reply = Vec<Outcome<bool>>;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<Vec<Outcome<bool>>>> {
        let bucket = &self.bucket;
        if read_bucket(&ctx.buckets, bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
        }
        let mut outcomes = Vec::with_capacity(self.objects.len());
        for (key, condition) in &self.objects {
            outcomes.push(delete_object(ctx, bucket, key, condition.as_ref())?);
        }
        Ok(Ok(outcomes))
    }

    fn size_estimate(&self) -> usize {
        let objects: usize = self
            .objects
            .iter()
            .map(|(key, condition)| {
                let etag = match condition {
                    Some(DeleteCondition::ETag(etag)) => etag.len(),
                    _ => 0,
                };
                key.len() + etag + 16
            })
            .sum();
        SIZE_BASE.saturating_add(objects)
    }
}

/// Replaces the tags of the current version of `bucket/key` (its ETag and
/// last-modified time stay).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutObjectTags {
    pub bucket: String,
    pub key: String,
    pub tags: Vec<(String, String)>,
}

impl Apply for PutObjectTags {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        let PutObjectTags { bucket, key, tags } = self;

        let Some(bucket_record) = read_bucket(&ctx.buckets, bucket)? else {
            return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
        };
        let (directories, name) = split_key(key);
        let found = resolve_directories(&ctx.children, bucket_record.root, &directories)?;
        let entry = if found.len() == directories.len() {
            let parent = found.last().copied().unwrap_or(bucket_record.root);
            lookup_object(&ctx.children, parent, name)?
        } else {
            None
        };
        let Some(entry) = entry else {
            return Ok(Err(MetaError::NoSuchKey(key.to_owned())));
        };
        let row = version_key(entry.inode, entry.generation, entry.position);
        let mut version: ObjectVersion = match ctx.versions.get(row.as_slice())? {
            Some(value) => decode_record(value.value())?,
            None => {
                return Err(MetaError::Corrupt(format!(
                    "inode {} has no version {}/{}",
                    entry.inode, entry.generation, entry.position
                )));
            }
        };
        version.tags = tags.to_vec();
        ctx.versions
            .insert(row.as_slice(), encode_record(&version)?.as_slice())?;
        Ok(Ok(()))
    }

    fn size_estimate(&self) -> usize {
        let tags: usize = self.tags.iter().map(|(k, v)| k.len() + v.len()).sum();
        SIZE_BASE
            .saturating_add(self.key.len())
            .saturating_add(tags)
    }
}

/// Replaces the tags of `bucket` (empty: it has none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutBucketTags {
    pub bucket: String,
    pub tags: Vec<(String, String)>,
}

impl Apply for PutBucketTags {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        let PutBucketTags { bucket, tags } = self;
        if read_bucket(&ctx.buckets, bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
        }
        if tags.is_empty() {
            ctx.bucket_tags.remove(bucket.as_bytes())?;
        } else {
            ctx.bucket_tags
                .insert(bucket.as_bytes(), encode_record(tags)?.as_slice())?;
        }
        Ok(Ok(()))
    }

    fn size_estimate(&self) -> usize {
        let tags: usize = self.tags.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        SIZE_BASE
            .saturating_add(self.bucket.len())
            .saturating_add(tags)
    }
}

/// Linearizable: the bucket's tags (empty if none); `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBucketTags {
    pub bucket: String,
}

impl Query for GetBucketTags {
    type Reply = Vec<(String, String)>;
    fn read(&self, txn: &ReadTransaction) -> Result<Vec<(String, String)>> {
        bucket_record(txn, &self.bucket)?;
        let Some(table) = open_read(txn, schema::BUCKET_TAGS)? else {
            return Ok(Vec::new());
        };
        match table.get(self.bucket.as_bytes())? {
            Some(value) => decode_record(value.value()),
            None => Ok(Vec::new()),
        }
    }
}

/// Sets what writes to existing keys of `bucket` need; replies with the
/// updated bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetOverwritePolicy {
    pub bucket: String,
    pub policy: OverwritePolicy,
}

impl Apply for SetOverwritePolicy {
    type Reply = BucketInfo;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<BucketInfo>> {
        let (bucket, policy) = (&self.bucket, self.policy);

        let Some(mut record) = read_bucket(&ctx.buckets, bucket)? else {
            return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
        };
        record.info.overwrite = policy;
        ctx.buckets
            .insert(bucket.as_bytes(), encode_record(&record)?.as_slice())?;
        Ok(Ok(record.info))
    }
}

/// Deletes the version `entry` points at and releases its chunks.
/// Returns how many chunk references it released.
pub(crate) fn retire_version(ctx: &mut ApplyContext<'_>, entry: &ObjectEntry) -> Result<usize> {
    let old: ObjectVersion = match ctx
        .versions
        .remove(version_key(entry.inode, entry.generation, entry.position).as_slice())?
    {
        Some(value) => decode_record(value.value())?,
        None => {
            return Err(MetaError::Corrupt(format!(
                "inode {} has no version {}/{} for its current entry",
                entry.inode, entry.generation, entry.position
            )));
        }
    };
    let origin = GcOrigin::Version {
        inode: entry.inode,
        generation: entry.generation,
        position: entry.position,
    };
    let released = old.chunks().len();
    chunks::release(ctx, origin, old.chunks().iter().map(|c: &ChunkRef| c.id))?;
    Ok(released)
}

/// Whether the bucket's overwrite policy lets a write with `condition`
/// replace an existing object.
pub(crate) fn check_overwrite(policy: &OverwritePolicy, condition: &WriteCondition) -> Outcome<()> {
    let allowed = match policy {
        OverwritePolicy::Allow => true,
        OverwritePolicy::Conditional => matches!(condition, WriteCondition::IfMatch(_)),
        OverwritePolicy::Deny => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(MetaError::OverwriteRefused)
    }
}

/// Compare-and-swap on the current version.
fn check_condition(
    condition: &WriteCondition,
    existing: Option<&ObjectEntry>,
    key: &str,
) -> Result<()> {
    match (condition, existing) {
        (WriteCondition::None, _) => Ok(()),
        (WriteCondition::IfNoneMatchAny, None) => Ok(()),
        (WriteCondition::IfNoneMatchAny, Some(_)) => Err(MetaError::PreconditionFailed),
        (WriteCondition::IfMatch(_), None) => Err(MetaError::NoSuchKey(key.to_owned())),
        (WriteCondition::IfMatch(etag), Some(entry)) if entry.etag == *etag => Ok(()),
        (WriteCondition::IfMatch(_), Some(_)) => Err(MetaError::PreconditionFailed),
    }
}

/// Creates a bucket for a key that may create buckets, and makes the key
/// its owner (read, write, owner), in one command. `AccessDenied` if the
/// key may not (any more) create buckets, `NoSuchAccessKey` if it is gone;
/// otherwise as [`CreateBucket`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBucketAs {
    pub bucket: CreateBucket,
    pub access_key: String,
}

impl Apply for CreateBucketAs {
    type Reply = BucketInfo;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<BucketInfo>> {
        if let Err(e) = access::may_create_bucket(ctx, &self.access_key)? {
            return Ok(Err(e));
        }
        let info = match self.bucket.apply(ctx)? {
            Ok(info) => info,
            Err(e) => return Ok(Err(e)),
        };
        access::grant_owner(ctx, &self.access_key, &info.name)?;
        Ok(Ok(info))
    }
}
