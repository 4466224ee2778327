//! Buckets and objects: the namespace's reads and writes on the inode
//! tree (see `tree` for how directories come and go).

use std::ops::Bound;

use redb::ReadTransaction;
use serde::{Deserialize, Serialize};

use crate::access;
use crate::chunks::{self, check_placements};
use crate::context::ApplyContext;
use crate::error::{MetaError, Result};
use crate::keys::{directory_stored_name, split_key, validate_bucket_name, validate_key};
use crate::limits::CHUNK_RECORDS_READ_MAX;
use crate::op::{Apply, Outcome, Query, SIZE_BASE, SIZE_CHUNK_REF};
use crate::records::chunk::{ChunkPlacement, ChunkRecord};
use crate::records::object::{
    BucketInfo, ChunkId, ChunkOwnership, ChunkRef, DeleteCondition, DeleteOutcome, LegalHold,
    LockMode, ObjectData, ObjectHeaders, ObjectLockConfig, ObjectLockRule, ObjectVersion,
    OverwritePolicy, Retention, VersionId, VersionLock, VersionStamp, Versioning, WriteCondition,
    years_later_ms,
};
use crate::records::tree::{
    BucketRecord, ChildRecord, GcOrigin, InodeKind, ObjectEntry, ROOT_INODE,
};
use crate::schema::{
    self, child_key, decode_record, encode_record, split_version_key, version_key, version_range,
};
use crate::tree::{
    BytesTable, bucket_record, create_directory, create_inode, find_object, has_children,
    lookup_child, lookup_object, open_read, prune_empty_directories, raise_key_len_bounds,
    read_bucket, read_version, remove_child, resolve_directories,
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
    let Some(entry) = find_object(&children, record.root, key)?.filter(|e| !e.delete_marker) else {
        return Err(MetaError::NoSuchKey(key.to_owned()));
    };
    let versions = txn.open_table(schema::VERSIONS)?;
    read_version(&versions, &entry)
}

/// The version of `bucket/key` that `version_id` names, or the current one
/// (which may be a delete marker): `NoSuchKey` without any version,
/// `NoSuchVersion` for an id the key does not have.
pub fn get_object_version(
    txn: &ReadTransaction,
    bucket: &str,
    key: &str,
    version_id: Option<VersionId>,
) -> Result<ObjectVersion> {
    locate_version(txn, bucket, key, version_id).map(|(_, version)| version)
}

/// As [`get_object_version`], with the inode of the object.
fn locate_version(
    txn: &ReadTransaction,
    bucket: &str,
    key: &str,
    version_id: Option<VersionId>,
) -> Result<(u64, ObjectVersion)> {
    let record = bucket_record(txn, bucket)?;
    validate_key(key)?;
    let children = txn.open_table(schema::CHILDREN)?;
    let entry = find_object(&children, record.root, key)?;
    let versions = txn.open_table(schema::VERSIONS)?;
    match (entry, version_id) {
        (None, None) => Err(MetaError::NoSuchKey(key.to_owned())),
        (Some(entry), None) => Ok((entry.inode, read_version(&versions, &entry)?)),
        (entry, Some(id)) => {
            let found = match entry {
                Some(entry) => versions_of(&versions, entry.inode)?
                    .into_iter()
                    .find(|v| v.version_id() == id)
                    .map(|v| (entry.inode, v)),
                None => None,
            };
            found.ok_or_else(|| MetaError::NoSuchVersion {
                key: key.to_owned(),
                version_id: id.to_string(),
            })
        }
    }
}

/// The error for a version of `key` that is not there: `NoSuchKey` when
/// the current one was asked for, `NoSuchVersion` when one was named.
pub(crate) fn missing_version(key: &str, version_id: Option<VersionId>) -> MetaError {
    match version_id {
        None => MetaError::NoSuchKey(key.to_owned()),
        Some(id) => MetaError::NoSuchVersion {
            key: key.to_owned(),
            version_id: id.to_string(),
        },
    }
}

/// The version of `key`, in the bucket whose directory is `root`, that
/// `version_id` names (the current one when `None`), with the object's
/// inode; [`missing_version`] when there is none. A delete marker is
/// returned like any version: what it means is the caller's to decide.
pub(crate) fn named_version<C: BytesTable, V: BytesTable>(
    children: &C,
    versions: &V,
    root: u64,
    key: &str,
    version_id: Option<VersionId>,
) -> Result<Outcome<(u64, ObjectVersion)>> {
    let Some(entry) = find_object(children, root, key)? else {
        return Ok(Err(missing_version(key, version_id)));
    };
    let all = versions_of(versions, entry.inode)?;
    let found = match version_id {
        None => all.into_iter().next(),
        Some(id) => all.into_iter().find(|v| v.version_id() == id),
    };
    Ok(found
        .map(|version| (entry.inode, version))
        .ok_or_else(|| missing_version(key, version_id)))
}

/// The versioning state of `bucket` (unversioned without a row).
pub(crate) fn versioning_of<T: BytesTable>(table: &T, bucket: &str) -> Result<Versioning> {
    match table.get(bucket.as_bytes())? {
        Some(value) => decode_record(value.value()),
        None => Ok(Versioning::Unversioned),
    }
}

/// Every version of the object `inode`, newest first.
pub(crate) fn versions_of<T: BytesTable>(versions: &T, inode: u64) -> Result<Vec<ObjectVersion>> {
    let (start, end) = version_range(inode);
    let upper = match &end {
        Some(end) => Bound::Excluded(end.as_slice()),
        None => Bound::Unbounded,
    };
    let mut out = Vec::new();
    for row in versions.range::<&[u8]>((Bound::Included(start.as_slice()), upper))? {
        let (row_key, value) = row?;
        let (row_inode, generation, position) = split_version_key(row_key.value())?;
        let version: ObjectVersion = decode_record(value.value())?;
        if row_inode != inode
            || version.generation != generation
            || version.stamp.position != position
        {
            return Err(MetaError::Corrupt(format!(
                "version row {row_inode}/{generation}/{position} holds {}/{}",
                version.generation, version.stamp.position
            )));
        }
        out.push(version);
    }
    out.reverse();
    Ok(out)
}

/// Linearizable: the bucket, or `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBucket {
    pub name: String,
}

impl Query for GetBucket {
    type Reply = BucketInfo;
    const INLINE: bool = true;
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
    const INLINE: bool = true;
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
        ctx.bucket_versioning.remove(name.as_bytes())?;
        ctx.bucket_lock.remove(name.as_bytes())?;
        ctx.bucket_lifecycle.remove(name.as_bytes())?;
        ctx.bucket_lifecycle_filters.remove(name.as_bytes())?;
        ctx.bucket_lock_years.remove(name.as_bytes())?;
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
    /// The lock the write asks for (`x-amz-object-lock-*`), set with the
    /// version: see [`commit_version`].
    pub lock: Option<VersionLock>,
}

impl Apply for PutObject {
    type Reply = ObjectVersion;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<ObjectVersion>> {
        if let Some(refused) = lock_in_past(self.lock.as_ref(), self.version.last_modified_ms) {
            return Ok(Err(refused));
        }
        commit_version(
            ctx,
            &self.bucket,
            &self.key,
            &self.version,
            &self.condition,
            NewChunks::Owned(self.ownership),
            &self.placements,
            self.lock.as_ref(),
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

/// How the chunks of a version being committed are checked.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NewChunks {
    /// As the proposer declared them.
    Owned(ChunkOwnership),
    /// The first `shared` are the replaced version's (the caller has
    /// checked that they are), the rest were written for this command: an
    /// append.
    Appended { shared: usize },
}

/// Commits `version` as the current version of `bucket/key` at the
/// context's position: PutObject, CopyObject, CompleteMultipartUpload and
/// AppendObject. `lock`, asked with the write, is set in the same step:
/// its retention replaces the bucket's default one, its legal hold is
/// set; it needs a bucket with Object Lock (`NoObjectLockConfig`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_version(
    ctx: &mut ApplyContext<'_>,
    bucket: &str,
    key: &str,
    version: &ObjectVersion,
    condition: &WriteCondition,
    new_chunks: NewChunks,
    placements: &[ChunkPlacement],
    lock: Option<&VersionLock>,
) -> Result<Outcome<ObjectVersion>> {
    if let Err(e) = validate_key(key) {
        return Ok(Err(e));
    }
    let Some(bucket_record) = read_bucket(&ctx.buckets, bucket)? else {
        return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
    };
    if lock.is_some() && lock_config_of(&ctx.bucket_lock, bucket)?.is_none() {
        return Ok(Err(MetaError::NoObjectLockConfig(bucket.to_owned())));
    }
    if let Some(refused) = crate::acl::check_acl_allowed(ctx, bucket, version.acl)? {
        return Ok(Err(refused));
    }
    let all = version.chunks();
    let (shared, fresh) = match new_chunks {
        NewChunks::Owned(ChunkOwnership::Shared) => (all, &all[all.len()..]),
        NewChunks::Owned(ChunkOwnership::Fresh) => (&all[..0], all),
        NewChunks::Appended { shared } => all.split_at(shared.min(all.len())),
    };
    if let Some(gone) = chunks::first_unreferenced(ctx, shared.iter().map(|c| &c.id))? {
        return Ok(Err(MetaError::Conflict(format!(
            "chunk {gone} of the source is no longer referenced"
        ))));
    }
    let fresh_ids = fresh.iter().map(|c| &c.id);
    if let Some(refused) = chunks::check_fresh(ctx, fresh_ids.clone())? {
        return Ok(Err(refused));
    }
    if let Some(refused) = check_placements(fresh_ids, placements) {
        return Ok(Err(refused));
    }
    let (directories, name) = split_key(key);
    let root = bucket_record.root;
    let found = resolve_directories(&ctx.children, root, &directories)?;
    let existing = entry_in(&ctx.children, root, &directories, &found, name)?;
    let current = existing.as_ref().filter(|e| !e.delete_marker);
    if let Err(e) = check_condition(condition, current, key) {
        return Ok(Err(e));
    }
    if current.is_some()
        && let Err(e) = check_overwrite(&bucket_record.info.overwrite, condition)
    {
        return Ok(Err(e));
    }
    let versioning = versioning_of(&ctx.bucket_versioning, bucket)?;

    // Validated: from here on every step writes.
    let mut committed = version.clone();
    committed.stamp = VersionStamp::default();
    let target = Target {
        bucket,
        root,
        directories: &directories,
        found,
        name,
    };
    install_version(
        ctx, target, existing, committed, versioning, placements, lock,
    )
    .map(Ok)
}

/// Where a key sits: its bucket's directory, its path and the
/// directories of it that exist.
pub(crate) struct Target<'k> {
    pub(crate) bucket: &'k str,
    pub(crate) root: u64,
    pub(crate) directories: &'k [&'k str],
    pub(crate) found: Vec<u64>,
    pub(crate) name: &'k str,
}

/// The entry of `name` when every directory on its path exists.
fn entry_in<T: BytesTable>(
    children: &T,
    root: u64,
    directories: &[&str],
    found: &[u64],
    name: &str,
) -> Result<Option<ObjectEntry>> {
    if found.len() != directories.len() {
        return Ok(None);
    }
    lookup_object(children, found.last().copied().unwrap_or(root), name)
}

/// Writes `version` as the newest version of the key at `target`, creating
/// the directories on its path: in a bucket with versioning enabled it
/// joins the key's versions; otherwise it is the `null` version and
/// replaces the key's previous `null` version, if any (docs/design.md,
/// "Versioning"). A version (not a delete marker) of an Object Lock bucket
/// gets the bucket's default retention unless `asked` names one, and
/// `asked`'s legal hold. The caller has checked everything that may refuse.
fn install_version(
    ctx: &mut ApplyContext<'_>,
    target: Target<'_>,
    existing: Option<ObjectEntry>,
    mut version: ObjectVersion,
    versioning: Versioning,
    placements: &[ChunkPlacement],
    asked: Option<&VersionLock>,
) -> Result<ObjectVersion> {
    let Target {
        root,
        directories,
        found,
        name,
        bucket,
    } = target;
    let lock_default = lock_config_of(&ctx.bucket_lock, bucket)?.and_then(|c| c.default);
    let lock_years = lock_years_of(&ctx.bucket_lock_years, bucket)?;
    let mut path = found;
    let mut parent = path.last().copied().unwrap_or(root);
    for segment in directories.iter().skip(path.len()) {
        parent = create_directory(ctx, parent, directory_stored_name(segment))?;
        path.push(parent);
    }
    raise_key_len_bounds(ctx, &path, directories, name.len())?;
    version.generation = ctx.log_index;
    version.stamp.position = ctx.position;
    version.stamp.null = versioning != Versioning::Enabled;
    // Reference the new chunks before releasing the old version's, so a
    // chunk both share never reaches zero.
    chunks::reference(ctx, version.chunks(), placements)?;
    let inode = match &existing {
        Some(old) => {
            if version.stamp.null {
                retire_null_version(ctx, old.inode)?;
            }
            old.inode
        }
        None => create_inode(ctx, parent, name.as_bytes().to_vec(), InodeKind::Object)?,
    };
    let previous = ctx.versions.insert(
        version_key(inode, ctx.log_index, ctx.position).as_slice(),
        encode_record(&version)?.as_slice(),
    )?;
    if previous.is_some() {
        return Err(MetaError::Corrupt(format!(
            "version {inode}/{}/{} written twice",
            ctx.log_index, ctx.position
        )));
    }
    let default_retention = lock_default.map(|(mode, days)| Retention {
        mode,
        until_ms: match lock_years {
            Some(years) => years_later_ms(version.last_modified_ms, years),
            None => version
                .last_modified_ms
                .saturating_add(i64::from(days).saturating_mul(DAY_MS)),
        },
    });
    let lock = VersionLock {
        retention: asked.and_then(|a| a.retention).or(default_retention),
        // A write holds a version or not; lifted is PutObjectLegalHold's.
        legal_hold: LegalHold::of(asked.is_some_and(|a| a.legal_hold.is_on())),
    };
    if !version.stamp.delete_marker && lock != VersionLock::default() {
        ctx.version_locks.insert(
            version_key(inode, ctx.log_index, ctx.position).as_slice(),
            encode_record(&lock)?.as_slice(),
        )?;
    }
    let child = encode_record(&ChildRecord::Object(entry_of(inode, &version)))?;
    ctx.children.insert(
        child_key(parent, name.as_bytes()).as_slice(),
        child.as_slice(),
    )?;
    Ok(version)
}

/// The children-index entry of `version` of object `inode`.
fn entry_of(inode: u64, version: &ObjectVersion) -> ObjectEntry {
    ObjectEntry {
        inode,
        generation: version.generation,
        position: version.stamp.position,
        size: version.size,
        etag: version.etag.clone(),
        last_modified_ms: version.last_modified_ms,
        storage_class: version.storage_class.clone(),
        delete_marker: version.stamp.delete_marker,
    }
}

/// Removes the `null` version of object `inode`, if it has one.
fn retire_null_version(ctx: &mut ApplyContext<'_>, inode: u64) -> Result<()> {
    let null = versions_of(&ctx.versions, inode)?
        .into_iter()
        .find(|v| v.stamp.null);
    if let Some(null) = null {
        remove_version(ctx, inode, null.generation, null.stamp.position)?;
    }
    Ok(())
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
    if versioning_of(&ctx.bucket_versioning, bucket)? != Versioning::Unversioned {
        // These commands carry no time for a delete marker.
        return Ok(Err(MetaError::InvalidRequest(
            "a versioned bucket's keys are deleted with DeleteKey".to_owned(),
        )));
    }
    let root = bucket_record.root;
    let (directories, name) = split_key(key);
    let found = resolve_directories(&ctx.children, root, &directories)?;
    let parent = found.last().copied().unwrap_or(root);
    let existing = entry_in(&ctx.children, root, &directories, &found, name)?;
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

/// DeleteObject as S3 defines it in every versioning state: without a
/// version id, an unversioned bucket loses the key, a versioned one gets a
/// delete marker (the `null` one when versioning is suspended, replacing
/// the key's `null` version); with one, that version goes for good and the
/// next newest becomes current. `condition` is checked against the
/// current version, or the named one; `now_ms` (the proposer's clock) is a
/// delete marker's last-modified time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteKey {
    pub bucket: String,
    pub target: DeleteTarget,
    pub now_ms: i64,
}

/// One key of a [`DeleteKey`] or [`DeleteKeys`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTarget {
    pub key: String,
    pub version_id: Option<VersionId>,
    pub condition: Option<DeleteCondition>,
    /// `x-amz-bypass-governance-retention`: a GOVERNANCE retention does
    /// not hold this delete (COMPLIANCE and legal holds still do).
    pub bypass_governance: bool,
}

impl DeleteTarget {
    fn size(&self) -> usize {
        let etag = match &self.condition {
            Some(DeleteCondition::ETag(etag)) => etag.len(),
            _ => 0,
        };
        self.key.len().saturating_add(etag).saturating_add(32)
    }
}

impl Apply for DeleteKey {
    type Reply = DeleteOutcome;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<DeleteOutcome>> {
        delete_key(ctx, &self.bucket, &self.target, self.now_ms)
    }

    fn size_estimate(&self) -> usize {
        SIZE_BASE.saturating_add(self.target.size())
    }
}

/// [`DeleteKey`] for each target, in one command (S3's DeleteObjects, with
/// version ids and `<ETag>` conditions); each outcome is reported on its
/// own, and a missing bucket fails the whole command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteKeys {
    pub bucket: String,
    pub targets: Vec<DeleteTarget>,
    pub now_ms: i64,
}

impl Apply for DeleteKeys {
    type Reply = Vec<Outcome<DeleteOutcome>>;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<Vec<Outcome<DeleteOutcome>>>> {
        if read_bucket(&ctx.buckets, &self.bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(self.bucket.clone())));
        }
        let mut outcomes = Vec::with_capacity(self.targets.len());
        for target in &self.targets {
            outcomes.push(delete_key(ctx, &self.bucket, target, self.now_ms)?);
        }
        Ok(Ok(outcomes))
    }

    fn size_estimate(&self) -> usize {
        SIZE_BASE.saturating_add(self.targets.iter().map(DeleteTarget::size).sum::<usize>())
    }
}

pub(crate) fn delete_key(
    ctx: &mut ApplyContext<'_>,
    bucket: &str,
    target: &DeleteTarget,
    now_ms: i64,
) -> Result<Outcome<DeleteOutcome>> {
    let DeleteTarget {
        key,
        version_id,
        condition,
        bypass_governance,
    } = target;
    if let Err(e) = validate_key(key) {
        return Ok(Err(e));
    }
    let Some(bucket_record) = read_bucket(&ctx.buckets, bucket)? else {
        return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
    };
    let versioning = versioning_of(&ctx.bucket_versioning, bucket)?;
    let root = bucket_record.root;
    let (directories, name) = split_key(key);
    let found = resolve_directories(&ctx.children, root, &directories)?;
    let existing = entry_in(&ctx.children, root, &directories, &found, name)?;
    let place = Target {
        bucket,
        root,
        directories: &directories,
        found,
        name,
    };
    if let Some(id) = version_id {
        let lock_check = LockCheck {
            key,
            now_ms,
            bypass_governance: *bypass_governance,
        };
        return delete_version(ctx, place, existing, *id, condition.as_ref(), lock_check);
    }
    let current = existing.as_ref().filter(|e| !e.delete_marker);
    match (condition, current) {
        (None, _) => {}
        (Some(_), None) => return Ok(Err(MetaError::NoSuchKey(key.to_owned()))),
        (Some(DeleteCondition::ETag(etag)), Some(entry)) if entry.etag != *etag => {
            return Ok(Err(MetaError::PreconditionFailed));
        }
        (Some(_), Some(_)) => {}
    }
    if versioning == Versioning::Unversioned {
        if let Some(entry) = current {
            retire_version(ctx, entry)?;
            let parent = place.found.last().copied().unwrap_or(root);
            remove_child(ctx, parent, name.as_bytes(), entry.inode)?;
            prune_empty_directories(ctx, root, &directories, &place.found)?;
        }
        return Ok(Ok(DeleteOutcome {
            version_id: None,
            delete_marker: false,
        }));
    }
    let marker = ObjectVersion {
        generation: 0,
        size: 0,
        etag: String::new(),
        last_modified_ms: now_ms,
        headers: ObjectHeaders::default(),
        user_metadata: Vec::new(),
        checksum: None,
        storage_class: None,
        parts: Vec::new(),
        tags: Vec::new(),
        acl: Default::default(),
        data: ObjectData::Inline(Vec::new()),
        stamp: VersionStamp {
            delete_marker: true,
            ..VersionStamp::default()
        },
    };
    let marker = install_version(ctx, place, existing, marker, versioning, &[], None)?;
    Ok(Ok(DeleteOutcome {
        version_id: Some(marker.version_id()),
        delete_marker: true,
    }))
}

/// Removes version `id` of the key at `place` for good; when it was the
/// current one, the next newest becomes current, and a key left without
/// versions leaves the tree. A version the key does not have is no error
/// (S3 answers 204 and names it).
/// What Object Lock weighs when a version is to go.
struct LockCheck<'k> {
    key: &'k str,
    now_ms: i64,
    bypass_governance: bool,
}

fn delete_version(
    ctx: &mut ApplyContext<'_>,
    place: Target<'_>,
    existing: Option<ObjectEntry>,
    id: VersionId,
    condition: Option<&DeleteCondition>,
    lock_check: LockCheck<'_>,
) -> Result<Outcome<DeleteOutcome>> {
    let absent = DeleteOutcome {
        version_id: Some(id),
        delete_marker: false,
    };
    let Some(entry) = existing else {
        return Ok(Ok(absent));
    };
    let all = versions_of(&ctx.versions, entry.inode)?;
    let Some(doomed) = all.iter().find(|v| v.version_id() == id) else {
        return Ok(Ok(absent));
    };
    if let Some(DeleteCondition::ETag(etag)) = condition
        && doomed.etag != *etag
    {
        return Ok(Err(MetaError::PreconditionFailed));
    }
    let lock = version_lock(&ctx.version_locks, entry.inode, doomed)?;
    if let Some(why) = lock.refusal(lock_check.now_ms, lock_check.bypass_governance) {
        return Ok(Err(MetaError::ObjectLocked(format!(
            "version {id} of {:?} cannot be deleted: {why}",
            lock_check.key
        ))));
    }
    let removed = remove_version(ctx, entry.inode, doomed.generation, doomed.stamp.position)?;
    let parent = place.found.last().copied().unwrap_or(place.root);
    let was_current =
        entry.generation == removed.generation && entry.position == removed.stamp.position;
    if was_current {
        match all.iter().find(|v| v.version_id() != id) {
            Some(next) => {
                let child = encode_record(&ChildRecord::Object(entry_of(entry.inode, next)))?;
                ctx.children.insert(
                    child_key(parent, place.name.as_bytes()).as_slice(),
                    child.as_slice(),
                )?;
            }
            None => {
                remove_child(ctx, parent, place.name.as_bytes(), entry.inode)?;
                prune_empty_directories(ctx, place.root, place.directories, &place.found)?;
            }
        }
    }
    Ok(Ok(DeleteOutcome {
        version_id: Some(id),
        delete_marker: removed.stamp.delete_marker,
    }))
}

/// Replaces the tags of the current version of `bucket/key` (its ETag and
/// last-modified time stay): [`SetObjectTags`] without a version id, and
/// what tagging the current version proposes, since nodes of releases
/// before `SetObjectTags` apply it too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutObjectTags {
    pub bucket: String,
    pub key: String,
    pub tags: Vec<(String, String)>,
}

impl Apply for PutObjectTags {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        let outcome = set_version_tags(ctx, &self.bucket, &self.key, None, &self.tags)?;
        Ok(outcome.map(|_| ()))
    }

    fn size_estimate(&self) -> usize {
        tags_size_estimate(&self.key, &self.tags)
    }
}

/// PutObjectTagging and DeleteObjectTagging (an empty set): replaces the
/// tags of the version of `bucket/key` that `version_id` names (the
/// current one when `None`), rewriting its record in place; its ETag and
/// last-modified time stay. Replies the id of the version tagged.
/// `NoSuchKey` / `NoSuchVersion`, `NoSuchKey` too when the current version
/// is a delete marker, `DeleteMarker` when one is named by its id (it has
/// no tags: S3 answers 405).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetObjectTags {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<VersionId>,
    pub tags: Vec<(String, String)>,
}

impl Apply for SetObjectTags {
    type Reply = VersionId;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<VersionId>> {
        set_version_tags(ctx, &self.bucket, &self.key, self.version_id, &self.tags)
    }

    fn size_estimate(&self) -> usize {
        tags_size_estimate(&self.key, &self.tags)
    }
}

fn tags_size_estimate(key: &str, tags: &[(String, String)]) -> usize {
    let tags: usize = tags.iter().map(|(k, v)| k.len() + v.len()).sum();
    SIZE_BASE.saturating_add(key.len()).saturating_add(tags)
}

/// Sets the tags of the version of `bucket/key` that `version_id` names
/// (see [`SetObjectTags`]).
fn set_version_tags(
    ctx: &mut ApplyContext<'_>,
    bucket: &str,
    key: &str,
    version_id: Option<VersionId>,
    tags: &[(String, String)],
) -> Result<Outcome<VersionId>> {
    if let Err(e) = validate_key(key) {
        return Ok(Err(e));
    }
    let Some(record) = read_bucket(&ctx.buckets, bucket)? else {
        return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
    };
    rewrite_version(
        ctx,
        record.root,
        key,
        version_id,
        CurrentMarker::NotAllowed,
        |version| version.tags = tags.to_vec(),
    )
}

/// What an operation that rewrites a version answers when the key's
/// current version is a delete marker (one named by its id is always
/// `DeleteMarker`, 405).
#[derive(Clone, Copy, Debug)]
pub(crate) enum CurrentMarker {
    /// `NoSuchKey`, as GetObject answers (PutObjectAcl).
    Missing,
    /// `DeleteMarker` (405), as S3 answers the tagging operations.
    NotAllowed,
}

/// Rewrites in place, with `change`, the record of the version of the
/// key at `root` (a bucket's directory) that `version_id` names, the
/// current one when `None`; its id. `NoSuchKey` / `NoSuchVersion` when
/// there is none; a delete marker has nothing to change (see
/// [`CurrentMarker`]).
pub(crate) fn rewrite_version(
    ctx: &mut ApplyContext<'_>,
    root: u64,
    key: &str,
    version_id: Option<VersionId>,
    current_marker: CurrentMarker,
    change: impl FnOnce(&mut ObjectVersion),
) -> Result<Outcome<VersionId>> {
    let (inode, mut version) =
        match named_version(&ctx.children, &ctx.versions, root, key, version_id)? {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
    if version.stamp.delete_marker {
        return Ok(Err(match (version_id, current_marker) {
            (None, CurrentMarker::Missing) => missing_version(key, None),
            _ => MetaError::DeleteMarker(key.to_owned()),
        }));
    }
    change(&mut version);
    let row = version_key(inode, version.generation, version.stamp.position);
    let replaced = ctx
        .versions
        .insert(row.as_slice(), encode_record(&version)?.as_slice())?;
    if replaced.is_none() {
        return Err(MetaError::Corrupt(format!(
            "version {} of inode {inode} was listed but has no row",
            version.version_id()
        )));
    }
    Ok(Ok(version.version_id()))
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
    const INLINE: bool = true;
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

/// PutBucketVersioning: enables or suspends versioning of `bucket`. A
/// bucket never goes back to unversioned (S3's rule), so that state is
/// refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetBucketVersioning {
    pub bucket: String,
    pub versioning: Versioning,
}

impl Apply for SetBucketVersioning {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        if read_bucket(&ctx.buckets, &self.bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(self.bucket.clone())));
        }
        if self.versioning == Versioning::Unversioned {
            return Ok(Err(MetaError::InvalidRequest(
                "versioning can be enabled or suspended, never turned off".to_owned(),
            )));
        }
        if self.versioning != Versioning::Enabled
            && lock_config_of(&ctx.bucket_lock, &self.bucket)?.is_some()
        {
            return Ok(Err(MetaError::InvalidBucketState(format!(
                "bucket {:?} has Object Lock enabled: its versioning stays enabled",
                self.bucket
            ))));
        }
        ctx.bucket_versioning.insert(
            self.bucket.as_bytes(),
            encode_record(&self.versioning)?.as_slice(),
        )?;
        Ok(Ok(()))
    }
}

/// Linearizable: the versioning state of `bucket`; `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBucketVersioning {
    pub bucket: String,
}

impl Query for GetBucketVersioning {
    type Reply = Versioning;
    const INLINE: bool = true;
    fn read(&self, txn: &ReadTransaction) -> Result<Versioning> {
        bucket_record(txn, &self.bucket)?;
        match open_read(txn, schema::BUCKET_VERSIONING)? {
            Some(table) => versioning_of(&table, &self.bucket),
            None => Ok(Versioning::Unversioned),
        }
    }
}

/// Linearizable: a version of `bucket/key` (see [`get_object_version`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetObjectVersion {
    pub bucket: String,
    pub key: String,
    /// `None`: the current version, which may be a delete marker.
    pub version_id: Option<VersionId>,
}

impl Query for GetObjectVersion {
    type Reply = ObjectVersion;
    const INLINE: bool = true;
    fn read(&self, txn: &ReadTransaction) -> Result<ObjectVersion> {
        get_object_version(txn, &self.bucket, &self.key, self.version_id)
    }
}

/// Linearizable: a version of `bucket/key` as GetObject and HeadObject
/// serve it, with its retention and legal hold (empty outside an Object
/// Lock bucket).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetReadableVersion {
    pub bucket: String,
    pub key: String,
    /// `None`: the current version, which may be a delete marker.
    pub version_id: Option<VersionId>,
}

impl Query for GetReadableVersion {
    type Reply = (ObjectVersion, VersionLock);
    const INLINE: bool = true;
    fn read(&self, txn: &ReadTransaction) -> Result<(ObjectVersion, VersionLock)> {
        let (inode, version) = locate_version(txn, &self.bucket, &self.key, self.version_id)?;
        let lock = match open_read(txn, schema::VERSION_LOCKS)? {
            Some(table) => version_lock(&table, inode, &version)?,
            None => VersionLock::default(),
        };
        Ok((version, lock))
    }
}

/// Bytes of a version whose chunks a read wants located, as GetObject's
/// Range header or `partNumber` names them (resolved against the version,
/// which only the metadata read knows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadSpan {
    /// From byte `first` through byte `last` (to the end when `None`).
    Bytes { first: u64, last: Option<u64> },
    /// The last `length` bytes.
    Suffix { length: u64 },
    /// Part `number` (from 1) of a multipart object; an object uploaded in
    /// one piece has one part.
    Part { number: u32 },
}

impl ReadSpan {
    /// The whole version.
    pub const WHOLE: ReadSpan = ReadSpan::Bytes {
        first: 0,
        last: None,
    };

    /// The bytes of `version` the span covers (empty when it covers none:
    /// the read then fails on the range, not here).
    pub fn resolve(self, version: &ObjectVersion) -> std::ops::Range<u64> {
        let size = version.size;
        match self {
            ReadSpan::Bytes { first, last } => {
                let end = last.map_or(size, |l| l.saturating_add(1).min(size));
                first.min(end)..end
            }
            ReadSpan::Suffix { length } => size.saturating_sub(length)..size,
            ReadSpan::Part { number } => {
                let sizes = if version.parts.is_empty() {
                    std::slice::from_ref(&size)
                } else {
                    &version.parts
                };
                let index = usize::try_from(number).unwrap_or(usize::MAX);
                let Some(part) = index.checked_sub(1).and_then(|i| sizes.get(i)) else {
                    return 0..0;
                };
                let start = sizes
                    .iter()
                    .take(index.saturating_sub(1))
                    .fold(0u64, |sum, s| sum.saturating_add(*s));
                start..start.saturating_add(*part).min(size)
            }
        }
    }
}

/// A version as a GET reads it, with where its chunks are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatedVersion {
    pub version: ObjectVersion,
    pub lock: VersionLock,
    /// The record of each distinct chunk holding bytes of the span, in the
    /// order of the object (`None`: no record, which a committed version's
    /// chunk always has); at most [`CHUNK_RECORDS_READ_MAX`], the first
    /// ones: a reader looks the rest up itself. Empty for an inline object
    /// or a delete marker.
    pub chunks: Vec<(ChunkId, Option<ChunkRecord>)>,
}

/// Linearizable: [`GetReadableVersion`] and the records of the chunks
/// holding bytes `span` of the version, read in one transaction, so a
/// cluster GET finds its chunks' replicas without a second metadata read
/// and the records are those of the version it serves (docs/design.md,
/// "Read path"). HeadObject, which reads no bytes, asks
/// [`GetReadableVersion`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetLocatedVersion {
    pub bucket: String,
    pub key: String,
    /// `None`: the current version, which may be a delete marker.
    pub version_id: Option<VersionId>,
    pub span: ReadSpan,
}

impl Query for GetLocatedVersion {
    type Reply = LocatedVersion;
    const INLINE: bool = true;
    fn read(&self, txn: &ReadTransaction) -> Result<LocatedVersion> {
        let (version, lock) = GetReadableVersion {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            version_id: self.version_id,
        }
        .read(txn)?;
        let bytes = self.span.resolve(&version);
        let mut ids: Vec<ChunkId> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for chunk in version.chunks() {
            if ids.len() == CHUNK_RECORDS_READ_MAX {
                break;
            }
            let end = chunk.offset.saturating_add(chunk.size);
            // A chunk shared twice by one object (UploadPartCopy) is
            // located once.
            if chunk.offset < bytes.end && end > bytes.start && seen.insert(chunk.id) {
                ids.push(chunk.id);
            }
        }
        let records = chunks::chunk_records(txn, &ids)?;
        Ok(LocatedVersion {
            version,
            lock,
            chunks: ids.into_iter().zip(records).collect(),
        })
    }
}

/// Deletes the version `entry` points at and releases its chunks.
/// Returns how many chunk references it released.
pub(crate) fn retire_version(ctx: &mut ApplyContext<'_>, entry: &ObjectEntry) -> Result<usize> {
    let old = remove_version(ctx, entry.inode, entry.generation, entry.position)?;
    Ok(old.chunks().len())
}

/// Deletes every version of object `inode` and releases their chunks.
/// Returns how many chunk references it released.
pub(crate) fn retire_object(ctx: &mut ApplyContext<'_>, inode: u64) -> Result<usize> {
    let mut released = 0usize;
    for version in versions_of(&ctx.versions, inode)? {
        let old = remove_version(ctx, inode, version.generation, version.stamp.position)?;
        released = released.saturating_add(old.chunks().len());
    }
    Ok(released)
}

/// Deletes one version row of `inode` and releases its chunks.
fn remove_version(
    ctx: &mut ApplyContext<'_>,
    inode: u64,
    generation: u64,
    position: u32,
) -> Result<ObjectVersion> {
    let old: ObjectVersion = match ctx
        .versions
        .remove(version_key(inode, generation, position).as_slice())?
    {
        Some(value) => decode_record(value.value())?,
        None => {
            return Err(MetaError::Corrupt(format!(
                "inode {inode} has no version {generation}/{position}"
            )));
        }
    };
    // A lock row left here held nothing any more: every path that removes
    // versions of an Object Lock bucket checks it first (`delete_version`;
    // the others never run there, as its versioning stays enabled).
    ctx.version_locks
        .remove(version_key(inode, generation, position).as_slice())?;
    let origin = GcOrigin::Version {
        inode,
        generation,
        position,
    };
    chunks::release(ctx, origin, old.chunks().iter().map(|c: &ChunkRef| c.id))?;
    Ok(old)
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

// ------------------------------------------------------------ Object Lock

/// One day in milliseconds: default retentions count in days.
pub const DAY_MS: i64 = 86_400_000;

/// A lock asked with a write whose retention ends by `now_ms` (the
/// proposer's clock) is refused.
pub(crate) fn lock_in_past(lock: Option<&VersionLock>, now_ms: i64) -> Option<MetaError> {
    lock.and_then(|l| l.retention)
        .is_some_and(|r| r.until_ms <= now_ms)
        .then(|| {
            MetaError::InvalidRequest("the retain until date must be in the future".to_owned())
        })
}

/// The Object Lock configuration of `bucket`, if it has Object Lock.
pub(crate) fn lock_config_of<T: BytesTable>(
    table: &T,
    bucket: &str,
) -> Result<Option<ObjectLockConfig>> {
    match table.get(bucket.as_bytes())? {
        Some(value) => Ok(Some(decode_record(value.value())?)),
        None => Ok(None),
    }
}

/// The lock of `version` of object `inode` (none: an empty lock).
fn version_lock<T: BytesTable>(
    table: &T,
    inode: u64,
    version: &ObjectVersion,
) -> Result<VersionLock> {
    match table.get(version_key(inode, version.generation, version.stamp.position).as_slice())? {
        Some(value) => decode_record(value.value()),
        None => Ok(VersionLock::default()),
    }
}

/// CreateBucket with `x-amz-bucket-object-lock-enabled: true`: the bucket,
/// its versioning enabled and Object Lock enabled, in one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateLockedBucket {
    pub name: String,
    pub created_ms: i64,
}

impl Apply for CreateLockedBucket {
    type Reply = BucketInfo;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<BucketInfo>> {
        let created = CreateBucket {
            name: self.name.clone(),
            created_ms: self.created_ms,
        }
        .apply(ctx)?;
        let info = match created {
            Ok(info) => info,
            Err(e) => return Ok(Err(e)),
        };
        let name = self.name.as_bytes();
        ctx.bucket_versioning
            .insert(name, encode_record(&Versioning::Enabled)?.as_slice())?;
        ctx.bucket_lock.insert(
            name,
            encode_record(&ObjectLockConfig::default())?.as_slice(),
        )?;
        Ok(Ok(info))
    }
}

/// PutObjectLockConfiguration: enables Object Lock (the bucket's
/// versioning must be enabled) and sets the default retention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetObjectLockConfig {
    pub bucket: String,
    pub config: ObjectLockConfig,
}

impl Apply for SetObjectLockConfig {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        let bucket = &self.bucket;
        if read_bucket(&ctx.buckets, bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(bucket.clone())));
        }
        if versioning_of(&ctx.bucket_versioning, bucket)? != Versioning::Enabled {
            return Ok(Err(MetaError::VersionedBucket(format!(
                "Object Lock needs versioning enabled on bucket {bucket:?}"
            ))));
        }
        if self.config.default.is_some_and(|(_, days)| days == 0) {
            return Ok(Err(MetaError::InvalidRequest(
                "a default retention lasts at least one day".to_owned(),
            )));
        }
        ctx.bucket_lock
            .insert(bucket.as_bytes(), encode_record(&self.config)?.as_slice())?;
        ctx.bucket_lock_years.remove(bucket.as_bytes())?;
        Ok(Ok(()))
    }
}

/// PutObjectLockConfiguration whose default retention names years: as
/// [`SetObjectLockConfig`] with 365 days a year in the configuration
/// (what older releases read), and the years beside it, so the rule reads
/// back as given and a new version's retention ends on the anniversary
/// ([`years_later_ms`]). A command of a later release than
/// `SetObjectLockConfig` (docs/OPERATING.md, "Upgrading a metadata
/// group").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetObjectLockConfigInYears {
    pub bucket: String,
    pub mode: LockMode,
    pub years: u32,
}

impl Apply for SetObjectLockConfigInYears {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        let Some(days) = self
            .years
            .checked_mul(DAYS_PER_YEAR)
            .filter(|days| *days > 0)
        else {
            return Ok(Err(MetaError::InvalidRequest(format!(
                "a default retention lasts from 1 to {} years",
                u32::MAX / DAYS_PER_YEAR
            ))));
        };
        let config = SetObjectLockConfig {
            bucket: self.bucket.clone(),
            config: ObjectLockConfig {
                default: Some((self.mode, days)),
            },
        };
        if let Err(e) = config.apply(ctx)? {
            return Ok(Err(e));
        }
        ctx.bucket_lock_years.insert(
            self.bucket.as_bytes(),
            encode_record(&self.years)?.as_slice(),
        )?;
        Ok(Ok(()))
    }
}

/// The days a year of a default retention in years counts in the
/// configuration older releases read.
const DAYS_PER_YEAR: u32 = 365;

/// The length in years of `bucket`'s default retention, if it was given
/// in years.
fn lock_years_of<T: BytesTable>(table: &T, bucket: &str) -> Result<Option<u32>> {
    match table.get(bucket.as_bytes())? {
        Some(value) => Ok(Some(decode_record(value.value())?)),
        None => Ok(None),
    }
}

/// Linearizable: the Object Lock configuration of `bucket`;
/// `NoObjectLockConfig` when Object Lock is not enabled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetObjectLockConfig {
    pub bucket: String,
}

impl Query for GetObjectLockConfig {
    type Reply = ObjectLockConfig;
    const INLINE: bool = true;
    fn read(&self, txn: &ReadTransaction) -> Result<ObjectLockConfig> {
        bucket_record(txn, &self.bucket)?;
        let config = match open_read(txn, schema::BUCKET_LOCK)? {
            Some(table) => lock_config_of(&table, &self.bucket)?,
            None => None,
        };
        config.ok_or_else(|| MetaError::NoObjectLockConfig(self.bucket.clone()))
    }
}

/// Linearizable: the Object Lock rule of `bucket` as it was given, years
/// included; `NoObjectLockConfig` when Object Lock is not enabled. A
/// query of a later release than [`GetObjectLockConfig`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetObjectLockRule {
    pub bucket: String,
}

impl Query for GetObjectLockRule {
    type Reply = ObjectLockRule;
    const INLINE: bool = true;
    fn read(&self, txn: &ReadTransaction) -> Result<ObjectLockRule> {
        let config = GetObjectLockConfig {
            bucket: self.bucket.clone(),
        }
        .read(txn)?;
        let years = match open_read(txn, schema::BUCKET_LOCK_YEARS)? {
            Some(table) => lock_years_of(&table, &self.bucket)?,
            None => None,
        };
        Ok(ObjectLockRule { config, years })
    }
}

/// The version of `bucket/key` a lock operation names (the current one
/// when `version_id` is `None`, which must not be a delete marker), in a
/// bucket with Object Lock.
fn lockable_version(
    ctx: &ApplyContext<'_>,
    bucket: &str,
    key: &str,
    version_id: Option<VersionId>,
) -> Result<Outcome<(u64, ObjectVersion)>> {
    if let Err(e) = validate_key(key) {
        return Ok(Err(e));
    }
    let Some(record) = read_bucket(&ctx.buckets, bucket)? else {
        return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
    };
    if lock_config_of(&ctx.bucket_lock, bucket)?.is_none() {
        return Ok(Err(MetaError::NoObjectLockConfig(bucket.to_owned())));
    }
    match named_version(&ctx.children, &ctx.versions, record.root, key, version_id)? {
        Ok((_, version)) if version.stamp.delete_marker => {
            Ok(Err(missing_version(key, version_id)))
        }
        found => Ok(found),
    }
}

/// Writes `lock` for `version` of `inode` (no row for an empty lock).
fn store_lock(
    ctx: &mut ApplyContext<'_>,
    inode: u64,
    version: &ObjectVersion,
    lock: &VersionLock,
) -> Result<()> {
    let row = version_key(inode, version.generation, version.stamp.position);
    if *lock == VersionLock::default() {
        ctx.version_locks.remove(row.as_slice())?;
    } else {
        ctx.version_locks
            .insert(row.as_slice(), encode_record(lock)?.as_slice())?;
    }
    Ok(())
}

/// PutObjectRetention as first released. A COMPLIANCE retention in force
/// is only ever lengthened (and stays COMPLIANCE); a GOVERNANCE one is
/// shortened, removed or made GOVERNANCE again from COMPLIANCE only with
/// `bypass_governance`. It lets a GOVERNANCE retention become COMPLIANCE
/// without the bypass, which S3 refuses: gateways propose
/// [`SetObjectRetentionStrict`] for that case, and this command's outcome
/// stays as the log remembers it. `now_ms` is the proposer's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetObjectRetention {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<VersionId>,
    pub retention: Option<Retention>,
    pub bypass_governance: bool,
    pub now_ms: i64,
}

impl Apply for SetObjectRetention {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        set_retention(ctx, self, RetentionRule::AsReleased)
    }
}

/// PutObjectRetention as S3 has it: like [`SetObjectRetention`], but a
/// GOVERNANCE retention in force changes in any way other than lengthening
/// as GOVERNANCE (a switch to COMPLIANCE included) only with
/// `bypass_governance`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetObjectRetentionStrict(pub SetObjectRetention);

impl Apply for SetObjectRetentionStrict {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        set_retention(ctx, &self.0, RetentionRule::Strict)
    }
}

/// Which release's rule a retention change follows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RetentionRule {
    /// GOVERNANCE may become COMPLIANCE without the bypass.
    AsReleased,
    /// GOVERNANCE changes mode only with the bypass.
    Strict,
}

fn set_retention(
    ctx: &mut ApplyContext<'_>,
    change: &SetObjectRetention,
    rule: RetentionRule,
) -> Result<Outcome<()>> {
    let (inode, version) =
        match lockable_version(ctx, &change.bucket, &change.key, change.version_id)? {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
    let mut lock = version_lock(&ctx.version_locks, inode, &version)?;
    if let Some(old) = lock.retention.filter(|r| r.until_ms > change.now_ms) {
        let lengthens = change
            .retention
            .is_some_and(|new| new.until_ms >= old.until_ms);
        let keeps = |mode: LockMode| change.retention.is_some_and(|new| new.mode == mode);
        let allowed = match (old.mode, rule) {
            (LockMode::Compliance, _) => lengthens && keeps(LockMode::Compliance),
            (LockMode::Governance, RetentionRule::AsReleased) => {
                lengthens || change.bypass_governance
            }
            (LockMode::Governance, RetentionRule::Strict) => {
                (lengthens && keeps(LockMode::Governance)) || change.bypass_governance
            }
        };
        if !allowed {
            return Ok(Err(MetaError::ObjectLocked(format!(
                "version {} of {:?} is under {} retention until {} ms: \
                 it can only be lengthened{}",
                version.version_id(),
                change.key,
                match old.mode {
                    LockMode::Compliance => "COMPLIANCE",
                    LockMode::Governance => "GOVERNANCE",
                },
                old.until_ms,
                match (old.mode, rule) {
                    (LockMode::Compliance, _) => "",
                    (LockMode::Governance, RetentionRule::AsReleased) => {
                        " without x-amz-bypass-governance-retention"
                    }
                    (LockMode::Governance, RetentionRule::Strict) => {
                        ", and stays GOVERNANCE, without x-amz-bypass-governance-retention"
                    }
                }
            ))));
        }
    }
    lock.retention = change.retention;
    store_lock(ctx, inode, &version, &lock)?;
    Ok(Ok(()))
}

/// PutObjectLegalHold: a legal hold keeps a version, whatever its
/// retention, until it is lifted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetObjectLegalHold {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<VersionId>,
    pub on: bool,
}

impl Apply for SetObjectLegalHold {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        set_legal_hold(
            ctx,
            (&self.bucket, &self.key, self.version_id),
            LegalHold::of(self.on),
        )
    }
}

/// Sets the legal hold of the version of `bucket/key` `version_id` names
/// (the current one without), keeping its retention.
fn set_legal_hold(
    ctx: &mut ApplyContext<'_>,
    (bucket, key, version_id): (&str, &str, Option<VersionId>),
    hold: LegalHold,
) -> Result<Outcome<()>> {
    let (inode, version) = match lockable_version(ctx, bucket, key, version_id)? {
        Ok(found) => found,
        Err(e) => return Ok(Err(e)),
    };
    let mut lock = version_lock(&ctx.version_locks, inode, &version)?;
    lock.legal_hold = hold;
    store_lock(ctx, inode, &version, &lock)?;
    Ok(Ok(()))
}

/// PutObjectLegalHold OFF: the hold lifted, and the version remembered
/// as having had one (GetObjectLegalHold answers OFF; of a version never
/// held, S3 finds no legal hold). [`SetObjectLegalHold`] with `on: false`,
/// as first released, forgets the hold instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseObjectLegalHold {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<VersionId>,
}

impl Apply for ReleaseObjectLegalHold {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        set_legal_hold(
            ctx,
            (&self.bucket, &self.key, self.version_id),
            LegalHold::Off,
        )
    }
}

/// Linearizable: the retention and legal hold of a version of
/// `bucket/key` (the current one without `version_id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetObjectLock {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<VersionId>,
}

impl Query for GetObjectLock {
    type Reply = VersionLock;
    const INLINE: bool = true;
    fn read(&self, txn: &ReadTransaction) -> Result<VersionLock> {
        let record = bucket_record(txn, &self.bucket)?;
        let configured = match open_read(txn, schema::BUCKET_LOCK)? {
            Some(table) => lock_config_of(&table, &self.bucket)?.is_some(),
            None => false,
        };
        if !configured {
            return Err(MetaError::NoObjectLockConfig(self.bucket.clone()));
        }
        let version = get_object_version(txn, &self.bucket, &self.key, self.version_id)?;
        if version.stamp.delete_marker {
            return Err(MetaError::NoSuchKey(self.key.clone()));
        }
        let children = txn.open_table(schema::CHILDREN)?;
        let Some(entry) = find_object(&children, record.root, &self.key)? else {
            return Err(MetaError::NoSuchKey(self.key.clone()));
        };
        match open_read(txn, schema::VERSION_LOCKS)? {
            Some(table) => version_lock(&table, entry.inode, &version),
            None => Ok(VersionLock::default()),
        }
    }
}
/// Creates a bucket for a key that may create buckets, and makes the key
/// its owner (read, write, owner), in one command. `AccessDenied` if the
/// key may not (any more) create buckets, `NoSuchAccessKey` if it is gone;
/// otherwise as [`CreateBucket`], or as [`CreateLockedBucket`] with
/// `object_lock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBucketAs {
    pub bucket: CreateBucket,
    pub access_key: String,
    /// Versioning enabled and Object Lock on, in the same command.
    pub object_lock: bool,
}

impl Apply for CreateBucketAs {
    type Reply = BucketInfo;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<BucketInfo>> {
        if let Err(e) = access::may_create_bucket(ctx, &self.access_key)? {
            return Ok(Err(e));
        }
        let created = if self.object_lock {
            CreateLockedBucket {
                name: self.bucket.name.clone(),
                created_ms: self.bucket.created_ms,
            }
            .apply(ctx)?
        } else {
            self.bucket.apply(ctx)?
        };
        let info = match created {
            Ok(info) => info,
            Err(e) => return Ok(Err(e)),
        };
        access::grant_owner(ctx, &self.access_key, &info.name)?;
        Ok(Ok(info))
    }
}
