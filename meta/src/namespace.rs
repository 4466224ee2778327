//! The namespace tree: reads of buckets and objects, and the mutations the
//! state machine applies (buckets, object versions, implicit directories).
//!
//! Directories exist exactly while they hold something: a PutObject creates
//! the missing directories on its key's path, a DeleteObject removes every
//! directory it leaves empty, walking up and stopping at the first one that
//! still has a child. A bucket's own directory is removed only by
//! DeleteBucket.

use std::ops::Bound;

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, Table, TableError, WriteTransaction};

use crate::chunks::{ChunkPlacement, check_placements};
use crate::command::{ChunkOwnership, CommandResult, Reply, WriteCondition};
use crate::error::{MetaError, Result};
use crate::keys::{
    SEPARATOR, directory_stored_name, is_directory_stored_name, split_key, validate_bucket_name,
    validate_key,
};
use crate::object::{BucketInfo, ChunkRef, ObjectVersion, OverwritePolicy};
use crate::schema::{
    self, BucketRecord, ChildRecord, GcOrigin, GcRecord, InodeKind, InodeRecord, ObjectEntry,
    ROOT_INODE, StateTable, child_key, decode_record, encode_record, gc_key, inode_key,
    split_child_key, split_gc_key, version_key,
};

/// Any table of the namespace, opened by a read or a write transaction.
pub(crate) trait BytesTable: ReadableTable<&'static [u8], &'static [u8]> {}
impl<T: ReadableTable<&'static [u8], &'static [u8]>> BytesTable for T {}

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

/// The bucket's record, including its directory inode; `NoSuchBucket` if missing.
pub(crate) fn bucket_record(txn: &ReadTransaction, name: &str) -> Result<BucketRecord> {
    let missing = || MetaError::NoSuchBucket(name.to_owned());
    let Some(buckets) = open_read(txn, schema::BUCKETS)? else {
        return Err(missing());
    };
    read_bucket(&buckets, name)?.ok_or_else(missing)
}

/// Opens a table read-only; `None` if it was never created.
pub(crate) fn open_read(
    txn: &ReadTransaction,
    table: StateTable,
) -> Result<Option<ReadOnlyTable<&'static [u8], &'static [u8]>>> {
    match txn.open_table(table) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One GC-queue record and its key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GcEntry {
    pub key: (u64, u32),
    pub record: GcRecord,
}

/// Up to `limit` GC-queue records after `after`, in queue order.
pub fn gc_queue(
    txn: &ReadTransaction,
    after: Option<(u64, u32)>,
    limit: usize,
) -> Result<Vec<GcEntry>> {
    let Some(queue) = open_read(txn, schema::GC_QUEUE)? else {
        return Ok(Vec::new());
    };
    let start = match after {
        Some((index, sequence)) => Bound::Excluded(gc_key(index, sequence)),
        None => Bound::Unbounded,
    };
    let start_ref = match &start {
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    };
    let mut entries = Vec::new();
    for row in queue.range::<&[u8]>((start_ref, Bound::Unbounded))? {
        if entries.len() == limit {
            break;
        }
        let (key, value) = row?;
        entries.push(GcEntry {
            key: split_gc_key(key.value())?,
            record: decode_record(value.value())?,
        });
    }
    Ok(entries)
}

// ------------------------------------------------- helpers on any table

pub(crate) fn read_bucket<T: BytesTable>(buckets: &T, name: &str) -> Result<Option<BucketRecord>> {
    let Some(value) = buckets.get(name.as_bytes())? else {
        return Ok(None);
    };
    let record: BucketRecord = decode_record(value.value())?;
    if record.info.name != name {
        return Err(MetaError::Corrupt(format!(
            "bucket row {name:?} holds {:?}",
            record.info.name
        )));
    }
    Ok(Some(record))
}

pub(crate) fn lookup_child<T: BytesTable>(
    children: &T,
    parent: u64,
    stored_name: &[u8],
) -> Result<Option<ChildRecord>> {
    match children.get(child_key(parent, stored_name).as_slice())? {
        Some(value) => Ok(Some(decode_record(value.value())?)),
        None => Ok(None),
    }
}

/// The first child of `parent` whose stored name is within `lower`, with its
/// stored name.
pub(crate) fn first_child<T: BytesTable>(
    children: &T,
    parent: u64,
    lower: Bound<&[u8]>,
) -> Result<Option<(Vec<u8>, ChildRecord)>> {
    let start = match lower {
        Bound::Included(name) => Bound::Included(child_key(parent, name)),
        Bound::Excluded(name) => Bound::Excluded(child_key(parent, name)),
        Bound::Unbounded => Bound::Included(child_key(parent, b"")),
    };
    let end = match parent.checked_add(1) {
        Some(next) => Bound::Excluded(child_key(next, b"")),
        None => Bound::Unbounded,
    };
    let mut range = children.range::<&[u8]>((
        start.as_ref().map(Vec::as_slice),
        end.as_ref().map(Vec::as_slice),
    ))?;
    let Some(row) = range.next() else {
        return Ok(None);
    };
    let (key, value) = row?;
    let (row_parent, stored_name) = split_child_key(key.value())?;
    if row_parent != parent {
        return Err(MetaError::Corrupt(format!(
            "children range of {parent} returned a row of {row_parent}"
        )));
    }
    let record: ChildRecord = decode_record(value.value())?;
    let is_directory = matches!(record, ChildRecord::Directory { .. });
    let well_formed = if is_directory {
        is_directory_stored_name(stored_name) && !stored_name.is_empty()
    } else {
        !stored_name.contains(&SEPARATOR)
    };
    if !well_formed {
        return Err(MetaError::Corrupt(format!(
            "child {stored_name:?} of {parent} does not fit its kind"
        )));
    }
    Ok(Some((stored_name.to_vec(), record)))
}

pub(crate) fn has_children<T: BytesTable>(children: &T, parent: u64) -> Result<bool> {
    Ok(first_child(children, parent, Bound::Unbounded)?.is_some())
}

/// Inodes of the leading directories of `directories` that exist under
/// `root`, in path order (shorter than `directories` if one is missing).
pub(crate) fn resolve_directories<T: BytesTable>(
    children: &T,
    root: u64,
    directories: &[&str],
) -> Result<Vec<u64>> {
    let mut found = Vec::with_capacity(directories.len());
    let mut parent = root;
    for segment in directories {
        match lookup_child(children, parent, &directory_stored_name(segment))? {
            Some(ChildRecord::Directory { inode }) => {
                found.push(inode);
                parent = inode;
            }
            Some(ChildRecord::Object(_)) => {
                return Err(MetaError::Corrupt(format!(
                    "object stored under directory name {segment:?}/"
                )));
            }
            None => break,
        }
    }
    Ok(found)
}

/// The object `name` directly in directory `parent`.
pub(crate) fn lookup_object<T: BytesTable>(
    children: &T,
    parent: u64,
    name: &str,
) -> Result<Option<ObjectEntry>> {
    match lookup_child(children, parent, name.as_bytes())? {
        Some(ChildRecord::Object(entry)) => Ok(Some(entry)),
        Some(ChildRecord::Directory { .. }) => Err(MetaError::Corrupt(format!(
            "directory stored under object name {name:?}"
        ))),
        None => Ok(None),
    }
}

/// The current entry of `key` in the bucket whose directory is `root`.
pub(crate) fn find_object<T: BytesTable>(
    children: &T,
    root: u64,
    key: &str,
) -> Result<Option<ObjectEntry>> {
    let (directories, name) = split_key(key);
    let found = resolve_directories(children, root, &directories)?;
    if found.len() < directories.len() {
        return Ok(None);
    }
    lookup_object(children, found.last().copied().unwrap_or(root), name)
}

pub(crate) fn read_version<T: BytesTable>(
    versions: &T,
    entry: &ObjectEntry,
) -> Result<ObjectVersion> {
    let Some(value) =
        versions.get(version_key(entry.inode, entry.generation, entry.position).as_slice())?
    else {
        return Err(MetaError::Corrupt(format!(
            "inode {} has no version {}/{} for its current entry",
            entry.inode, entry.generation, entry.position
        )));
    };
    let version: ObjectVersion = decode_record(value.value())?;
    if version.generation != entry.generation {
        return Err(MetaError::Corrupt(format!(
            "version row {}/{}/{} holds generation {}",
            entry.inode, entry.generation, entry.position, version.generation
        )));
    }
    Ok(version)
}

// ------------------------------------------------------------ mutations

/// The state tables opened for writing by one command's apply.
pub(crate) struct NamespaceTables<'txn> {
    pub(crate) buckets: Table<'txn, &'static [u8], &'static [u8]>,
    pub(crate) children: Table<'txn, &'static [u8], &'static [u8]>,
    inodes: Table<'txn, &'static [u8], &'static [u8]>,
    versions: Table<'txn, &'static [u8], &'static [u8]>,
    pub(crate) gc_queue: Table<'txn, &'static [u8], &'static [u8]>,
    pub(crate) counters: Table<'txn, &'static [u8], &'static [u8]>,
    pub(crate) chunk_refs: Table<'txn, &'static [u8], &'static [u8]>,
    pub(crate) server_chunks: Table<'txn, &'static [u8], &'static [u8]>,
    pub(crate) under_replicated: Table<'txn, &'static [u8], &'static [u8]>,
    pub(crate) chunk_servers: Table<'txn, &'static [u8], &'static [u8]>,
    pub(crate) uploads: Table<'txn, &'static [u8], &'static [u8]>,
    pub(crate) upload_index: Table<'txn, &'static [u8], &'static [u8]>,
    pub(crate) parts: Table<'txn, &'static [u8], &'static [u8]>,
}

impl<'txn> NamespaceTables<'txn> {
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<Self> {
        Ok(NamespaceTables {
            buckets: txn.open_table(schema::BUCKETS)?,
            children: txn.open_table(schema::CHILDREN)?,
            inodes: txn.open_table(schema::INODES)?,
            versions: txn.open_table(schema::VERSIONS)?,
            gc_queue: txn.open_table(schema::GC_QUEUE)?,
            counters: txn.open_table(schema::COUNTERS)?,
            chunk_refs: txn.open_table(schema::CHUNK_REFS)?,
            server_chunks: txn.open_table(schema::SERVER_CHUNKS)?,
            under_replicated: txn.open_table(schema::UNDER_REPLICATED)?,
            chunk_servers: txn.open_table(schema::CHUNK_SERVERS)?,
            uploads: txn.open_table(schema::UPLOADS)?,
            upload_index: txn.open_table(schema::UPLOAD_INDEX)?,
            parts: txn.open_table(schema::PARTS)?,
        })
    }

    pub(crate) fn create_bucket(&mut self, name: &str, created_ms: i64) -> Result<CommandResult> {
        if let Err(e) = validate_bucket_name(name) {
            return Ok(Err(e));
        }
        if read_bucket(&self.buckets, name)?.is_some() {
            return Ok(Err(MetaError::BucketAlreadyExists(name.to_owned())));
        }
        let stored_name = directory_stored_name(name);
        if lookup_child(&self.children, ROOT_INODE, &stored_name)?.is_some() {
            return Err(MetaError::Corrupt(format!(
                "root holds {name:?}/ without a bucket row"
            )));
        }
        let root = self.create_directory(ROOT_INODE, stored_name)?;
        let info = BucketInfo {
            overwrite: OverwritePolicy::Allow,
            name: name.to_owned(),
            created_ms,
        };
        let record = BucketRecord {
            info: info.clone(),
            root,
        };
        self.buckets
            .insert(name.as_bytes(), encode_record(&record)?.as_slice())?;
        Ok(Ok(Reply::Bucket(info)))
    }

    pub(crate) fn delete_bucket(&mut self, name: &str) -> Result<CommandResult> {
        let Some(record) = read_bucket(&self.buckets, name)? else {
            return Ok(Err(MetaError::NoSuchBucket(name.to_owned())));
        };
        if has_children(&self.children, record.root)? {
            return Ok(Err(MetaError::BucketNotEmpty(name.to_owned())));
        }
        self.buckets.remove(name.as_bytes())?;
        self.remove_child(ROOT_INODE, &directory_stored_name(name), record.root)?;
        Ok(Ok(Reply::Done))
    }

    /// `position` is the command's index within its log entry: with
    /// `log_index` it names the new version uniquely.
    #[expect(
        clippy::too_many_arguments,
        reason = "the fields of Command::PutObject, plus where it applies"
    )]
    pub(crate) fn put_object(
        &mut self,
        log_index: u64,
        position: u32,
        bucket: &str,
        key: &str,
        version: &ObjectVersion,
        condition: &WriteCondition,
        ownership: ChunkOwnership,
        placements: &[ChunkPlacement],
    ) -> Result<CommandResult> {
        if let Err(e) = validate_key(key) {
            return Ok(Err(e));
        }
        let Some(bucket_record) = read_bucket(&self.buckets, bucket)? else {
            return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
        };
        let chunk_ids = version.chunks().iter().map(|c| &c.id);
        match ownership {
            ChunkOwnership::Shared => {
                if let Some(gone) = self.first_unreferenced(chunk_ids)? {
                    return Ok(Err(MetaError::Conflict(format!(
                        "chunk {gone} of the source is no longer referenced"
                    ))));
                }
            }
            ChunkOwnership::Fresh => {
                if let Some(refused) = self.check_fresh(chunk_ids.clone())? {
                    return Ok(Err(refused));
                }
                if let Some(refused) = check_placements(chunk_ids, placements) {
                    return Ok(Err(refused));
                }
            }
        }
        let (directories, name) = split_key(key);
        let found = resolve_directories(&self.children, bucket_record.root, &directories)?;
        let mut parent = found.last().copied().unwrap_or(bucket_record.root);
        let existing = if found.len() == directories.len() {
            lookup_object(&self.children, parent, name)?
        } else {
            None
        };
        if let Err(e) = check_condition(condition, existing.as_ref(), key) {
            return Ok(Err(e));
        }
        if existing.is_some() {
            let allowed = match bucket_record.info.overwrite {
                OverwritePolicy::Allow => true,
                OverwritePolicy::Conditional => matches!(condition, WriteCondition::IfMatch(_)),
                OverwritePolicy::Deny => false,
            };
            if !allowed {
                return Ok(Err(MetaError::OverwriteRefused));
            }
        }

        // Validated: from here on every step writes.
        for segment in directories.iter().skip(found.len()) {
            parent = self.create_directory(parent, directory_stored_name(segment))?;
        }
        let mut committed = version.clone();
        committed.generation = log_index;
        // Reference the new chunks before releasing the old version's, so a
        // chunk both share never reaches zero.
        self.reference(committed.chunks(), placements)?;
        let inode = match &existing {
            Some(old) => {
                self.retire_version(log_index, old)?;
                old.inode
            }
            None => self.create_inode(parent, name.as_bytes().to_vec(), InodeKind::Object)?,
        };
        let previous = self.versions.insert(
            version_key(inode, log_index, position).as_slice(),
            encode_record(&committed)?.as_slice(),
        )?;
        if previous.is_some() {
            return Err(MetaError::Corrupt(format!(
                "version {inode}/{log_index}/{position} written twice"
            )));
        }
        let entry = ObjectEntry {
            inode,
            generation: log_index,
            position,
            size: committed.size,
            etag: committed.etag.clone(),
            last_modified_ms: committed.last_modified_ms,
            storage_class: committed.storage_class.clone(),
        };
        let child = encode_record(&ChildRecord::Object(entry))?;
        self.children.insert(
            child_key(parent, name.as_bytes()).as_slice(),
            child.as_slice(),
        )?;
        Ok(Ok(Reply::Object(committed)))
    }

    pub(crate) fn delete_object(
        &mut self,
        log_index: u64,
        bucket: &str,
        key: &str,
    ) -> Result<CommandResult> {
        if let Err(e) = validate_key(key) {
            return Ok(Err(e));
        }
        let Some(bucket_record) = read_bucket(&self.buckets, bucket)? else {
            return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
        };
        let root = bucket_record.root;
        let (directories, name) = split_key(key);
        let found = resolve_directories(&self.children, root, &directories)?;
        if found.len() < directories.len() {
            return Ok(Ok(Reply::Deleted { existed: false }));
        }
        let parent = found.last().copied().unwrap_or(root);
        let Some(entry) = lookup_object(&self.children, parent, name)? else {
            return Ok(Ok(Reply::Deleted { existed: false }));
        };

        self.retire_version(log_index, &entry)?;
        self.remove_child(parent, name.as_bytes(), entry.inode)?;
        // Remove the directories left empty, deepest first.
        let parents = std::iter::once(root).chain(found.iter().copied());
        let mut path: Vec<(u64, &str, u64)> = parents
            .zip(directories.iter().copied())
            .zip(found.iter().copied())
            .map(|((p, s), d)| (p, s, d))
            .collect();
        while let Some((dir_parent, segment, directory)) = path.pop() {
            if has_children(&self.children, directory)? {
                break;
            }
            self.remove_child(dir_parent, &directory_stored_name(segment), directory)?;
        }
        Ok(Ok(Reply::Deleted { existed: true }))
    }

    /// DeleteObject for each key; a missing bucket fails the whole command.
    pub(crate) fn delete_objects(
        &mut self,
        log_index: u64,
        bucket: &str,
        keys: &[String],
    ) -> Result<CommandResult> {
        if read_bucket(&self.buckets, bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
        }
        let mut outcomes = Vec::with_capacity(keys.len());
        for key in keys {
            outcomes.push(match self.delete_object(log_index, bucket, key)? {
                Ok(Reply::Deleted { existed }) => Ok(existed),
                Ok(other) => {
                    return Err(MetaError::Corrupt(format!(
                        "delete_object replied {other:?}"
                    )));
                }
                Err(e) => Err(e),
            });
        }
        Ok(Ok(Reply::DeletedMany(outcomes)))
    }

    /// Creates directory `stored_name` (ending in `/`) in `parent`.
    fn create_directory(&mut self, parent: u64, stored_name: Vec<u8>) -> Result<u64> {
        let inode = self.create_inode(parent, stored_name.clone(), InodeKind::Directory)?;
        let child = encode_record(&ChildRecord::Directory { inode })?;
        self.children
            .insert(child_key(parent, &stored_name).as_slice(), child.as_slice())?;
        Ok(inode)
    }

    /// Allocates an inode in directory `parent` and records where it sits.
    fn create_inode(&mut self, parent: u64, stored_name: Vec<u8>, kind: InodeKind) -> Result<u64> {
        if parent != ROOT_INODE {
            self.require_directory(parent)?;
        }
        let inode = self.allocate_inode()?;
        let record = InodeRecord {
            parent,
            stored_name,
            kind,
        };
        let previous = self.inodes.insert(
            inode_key(inode).as_slice(),
            encode_record(&record)?.as_slice(),
        )?;
        if previous.is_some() {
            return Err(MetaError::Corrupt(format!(
                "allocated inode {inode} is already in use"
            )));
        }
        Ok(inode)
    }

    /// A broken tree must not grow: a missing parent inode is corruption.
    fn require_directory(&self, inode: u64) -> Result<()> {
        let Some(value) = self.inodes.get(inode_key(inode).as_slice())? else {
            return Err(MetaError::Corrupt(format!(
                "parent inode {inode} is missing"
            )));
        };
        let record: InodeRecord = decode_record(value.value())?;
        if record.kind != InodeKind::Directory {
            return Err(MetaError::Corrupt(format!(
                "parent inode {inode} is not a directory"
            )));
        }
        Ok(())
    }

    fn allocate_inode(&mut self) -> Result<u64> {
        let next = match self.counters.get(schema::COUNTER_NEXT_INODE)? {
            Some(value) => decode_record::<u64>(value.value())?,
            None => schema::FIRST_ALLOCATED_INODE,
        };
        let after = next
            .checked_add(1)
            .ok_or_else(|| MetaError::Corrupt("inode ids exhausted".to_owned()))?;
        self.counters.insert(
            schema::COUNTER_NEXT_INODE,
            encode_record(&after)?.as_slice(),
        )?;
        Ok(next)
    }

    /// Removes the child row `parent/stored_name` and the inode it names.
    fn remove_child(&mut self, parent: u64, stored_name: &[u8], inode: u64) -> Result<()> {
        let removed_child = self
            .children
            .remove(child_key(parent, stored_name).as_slice())?
            .is_some();
        let removed_inode = self.inodes.remove(inode_key(inode).as_slice())?.is_some();
        if !removed_child || !removed_inode {
            return Err(MetaError::Corrupt(format!(
                "removing inode {inode}: child or inode row missing"
            )));
        }
        Ok(())
    }

    /// Deletes the version `entry` points at and releases its chunks.
    fn retire_version(&mut self, log_index: u64, entry: &ObjectEntry) -> Result<()> {
        let old: ObjectVersion = match self
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
        self.release(
            log_index,
            origin,
            old.chunks().iter().map(|c: &ChunkRef| c.id),
        )
    }

    /// Rewrites the current version of `bucket/key` with new tags.
    pub(crate) fn put_object_tags(
        &mut self,
        bucket: &str,
        key: &str,
        tags: &[(String, String)],
    ) -> Result<CommandResult> {
        let Some(bucket_record) = read_bucket(&self.buckets, bucket)? else {
            return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
        };
        let (directories, name) = split_key(key);
        let found = resolve_directories(&self.children, bucket_record.root, &directories)?;
        let entry = if found.len() == directories.len() {
            let parent = found.last().copied().unwrap_or(bucket_record.root);
            lookup_object(&self.children, parent, name)?
        } else {
            None
        };
        let Some(entry) = entry else {
            return Ok(Err(MetaError::NoSuchKey(key.to_owned())));
        };
        let row = version_key(entry.inode, entry.generation, entry.position);
        let mut version: ObjectVersion = match self.versions.get(row.as_slice())? {
            Some(value) => decode_record(value.value())?,
            None => {
                return Err(MetaError::Corrupt(format!(
                    "inode {} has no version {}/{}",
                    entry.inode, entry.generation, entry.position
                )));
            }
        };
        version.tags = tags.to_vec();
        self.versions
            .insert(row.as_slice(), encode_record(&version)?.as_slice())?;
        Ok(Ok(Reply::Done))
    }

    pub(crate) fn set_overwrite_policy(
        &mut self,
        bucket: &str,
        policy: OverwritePolicy,
    ) -> Result<CommandResult> {
        let Some(mut record) = read_bucket(&self.buckets, bucket)? else {
            return Ok(Err(MetaError::NoSuchBucket(bucket.to_owned())));
        };
        record.info.overwrite = policy;
        self.buckets
            .insert(bucket.as_bytes(), encode_record(&record)?.as_slice())?;
        Ok(Ok(Reply::Bucket(record.info)))
    }

    /// Appends to the GC queue under `log_index` with the next free sequence
    /// number (one log entry may carry several commands).
    pub(crate) fn queue_gc(&mut self, log_index: u64, record: &GcRecord) -> Result<()> {
        let start = gc_key(log_index, 0);
        let sequence = {
            let mut range = match log_index.checked_add(1) {
                Some(next) => self
                    .gc_queue
                    .range::<&[u8]>(start.as_slice()..gc_key(next, 0).as_slice())?,
                None => self.gc_queue.range::<&[u8]>(start.as_slice()..)?,
            };
            match range.next_back() {
                Some(row) => {
                    let (key, _) = row?;
                    let (_, sequence) = split_gc_key(key.value())?;
                    sequence.checked_add(1).ok_or_else(|| {
                        MetaError::Corrupt("gc queue sequence exhausted".to_owned())
                    })?
                }
                None => 0,
            }
        };
        self.gc_queue.insert(
            gc_key(log_index, sequence).as_slice(),
            encode_record(record)?.as_slice(),
        )?;
        Ok(())
    }
}

/// Compare-and-swap on the current version (brief.md §3).
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
