//! The inode tree: lookups over any table (a read or a write
//! transaction's), and the steps that grow and shrink it inside an apply.
//!
//! Directories exist exactly while they hold something: a PutObject creates
//! the missing directories on its key's path, a DeleteObject removes every
//! directory it leaves empty, walking up and stopping at the first one that
//! still has a child. A bucket's own directory is removed only by
//! DeleteBucket.

use std::ops::Bound;

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, TableError};

use crate::context::ApplyContext;
use crate::error::{MetaError, Result};
use crate::keys::{SEPARATOR, directory_stored_name, is_directory_stored_name, split_key};
use crate::records::object::ObjectVersion;
use crate::records::tree::{
    BucketRecord, ChildRecord, InodeKind, InodeRecord, ObjectEntry, ROOT_INODE,
};
use crate::schema::{
    self, StateTable, child_key, decode_record, encode_record, inode_key, split_child_key,
    version_key,
};

/// Any table of the namespace, opened by a read or a write transaction.
pub(crate) trait BytesTable: ReadableTable<&'static [u8], &'static [u8]> {}
impl<T: ReadableTable<&'static [u8], &'static [u8]>> BytesTable for T {}

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
    let mut first = Vec::with_capacity(1);
    children_from(children, parent, lower, 1, b"", &mut first)?;
    Ok(first.pop())
}

/// Appends to `out` up to `limit` children of `parent` whose stored names
/// are within `lower`, in stored-name order, read in one range scan; fewer
/// than `limit` means there are no more. Each name is `path` followed by
/// the stored name (a listing builds whole keys in one allocation).
pub(crate) fn children_from<T: BytesTable>(
    children: &T,
    parent: u64,
    lower: Bound<&[u8]>,
    limit: usize,
    path: &[u8],
    out: &mut Vec<(Vec<u8>, ChildRecord)>,
) -> Result<()> {
    let start = match lower {
        Bound::Included(name) => Bound::Included(child_key(parent, name)),
        Bound::Excluded(name) => Bound::Excluded(child_key(parent, name)),
        Bound::Unbounded => Bound::Included(child_key(parent, b"")),
    };
    let end = match parent.checked_add(1) {
        Some(next) => Bound::Excluded(child_key(next, b"")),
        None => Bound::Unbounded,
    };
    let range = children.range::<&[u8]>((
        start.as_ref().map(Vec::as_slice),
        end.as_ref().map(Vec::as_slice),
    ))?;
    for row in range.take(limit) {
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
        let mut name = Vec::with_capacity(path.len() + stored_name.len());
        name.extend_from_slice(path);
        name.extend_from_slice(stored_name);
        out.push((name, record));
    }
    Ok(())
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

// ------------------------------------------------------------ growing and shrinking

/// Creates directory `stored_name` (ending in `/`) in `parent`.
pub(crate) fn create_directory(
    ctx: &mut ApplyContext<'_>,
    parent: u64,
    stored_name: Vec<u8>,
) -> Result<u64> {
    let inode = create_inode(ctx, parent, stored_name.clone(), InodeKind::Directory)?;
    let child = encode_record(&ChildRecord::Directory { inode })?;
    ctx.children
        .insert(child_key(parent, &stored_name).as_slice(), child.as_slice())?;
    // A new directory holds nothing yet: its bound starts at 0 (a missing
    // bound means a directory older than the bounds, unbounded).
    ctx.dir_key_len.insert(
        inode_key(inode).as_slice(),
        encode_record(&0u32)?.as_slice(),
    )?;
    Ok(inode)
}

/// Allocates an inode in directory `parent` and records where it sits.
pub(crate) fn create_inode(
    ctx: &mut ApplyContext<'_>,
    parent: u64,
    stored_name: Vec<u8>,
    kind: InodeKind,
) -> Result<u64> {
    if parent != ROOT_INODE {
        require_directory(ctx, parent)?;
    }
    let inode = allocate_inode(ctx)?;
    let record = InodeRecord {
        parent,
        stored_name,
        kind,
    };
    let previous = ctx.inodes.insert(
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
fn require_directory(ctx: &ApplyContext<'_>, inode: u64) -> Result<()> {
    let Some(value) = ctx.inodes.get(inode_key(inode).as_slice())? else {
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

fn allocate_inode(ctx: &mut ApplyContext<'_>) -> Result<u64> {
    let next = match ctx.counters.get(schema::COUNTER_NEXT_INODE)? {
        Some(value) => decode_record::<u64>(value.value())?,
        None => schema::FIRST_ALLOCATED_INODE,
    };
    let after = next
        .checked_add(1)
        .ok_or_else(|| MetaError::Corrupt("inode ids exhausted".to_owned()))?;
    ctx.counters.insert(
        schema::COUNTER_NEXT_INODE,
        encode_record(&after)?.as_slice(),
    )?;
    Ok(next)
}

/// Removes the child row `parent/stored_name` and the inode it names.
pub(crate) fn remove_child(
    ctx: &mut ApplyContext<'_>,
    parent: u64,
    stored_name: &[u8],
    inode: u64,
) -> Result<()> {
    let removed_child = ctx
        .children
        .remove(child_key(parent, stored_name).as_slice())?
        .is_some();
    let removed_inode = ctx.inodes.remove(inode_key(inode).as_slice())?.is_some();
    ctx.dir_key_len.remove(inode_key(inode).as_slice())?;
    if !removed_child || !removed_inode {
        return Err(MetaError::Corrupt(format!(
            "removing inode {inode}: child or inode row missing"
        )));
    }
    Ok(())
}

/// Moves the child `old_parent/old_name` (an object or a directory, with
/// everything below it) to `new_parent/new_name`: two children rows and
/// the inode's record change; nothing below it is touched.
pub(crate) fn move_child(
    ctx: &mut ApplyContext<'_>,
    (old_parent, old_name): (u64, &[u8]),
    (new_parent, new_name): (u64, &[u8]),
) -> Result<()> {
    let Some(value) = ctx
        .children
        .remove(child_key(old_parent, old_name).as_slice())?
    else {
        return Err(MetaError::Corrupt(format!(
            "moving {old_name:?} of {old_parent}: no such child"
        )));
    };
    let child = value.value().to_vec();
    drop(value);
    let record: ChildRecord = decode_record(&child)?;
    let inode = match record {
        ChildRecord::Directory { inode } => inode,
        ChildRecord::Object(ref entry) => entry.inode,
    };
    if new_parent != ROOT_INODE {
        require_directory(ctx, new_parent)?;
    }
    let previous = ctx
        .children
        .insert(child_key(new_parent, new_name).as_slice(), child.as_slice())?;
    if previous.is_some() {
        return Err(MetaError::Corrupt(format!(
            "moving inode {inode} onto the taken name {new_name:?} of {new_parent}"
        )));
    }
    let Some(value) = ctx.inodes.get(inode_key(inode).as_slice())? else {
        return Err(MetaError::Corrupt(format!("inode {inode} has no record")));
    };
    let mut inode_record: InodeRecord = decode_record(value.value())?;
    drop(value);
    inode_record.parent = new_parent;
    inode_record.stored_name = new_name.to_vec();
    ctx.inodes.insert(
        inode_key(inode).as_slice(),
        encode_record(&inode_record)?.as_slice(),
    )?;
    Ok(())
}

/// Removes the directories on `directories` (whose inodes are `found`,
/// under `root`) that are left empty, deepest first, stopping at the first
/// one that still holds something.
pub(crate) fn prune_empty_directories(
    ctx: &mut ApplyContext<'_>,
    root: u64,
    directories: &[&str],
    found: &[u64],
) -> Result<()> {
    let parents = std::iter::once(root).chain(found.iter().copied());
    let mut path: Vec<(u64, &str, u64)> = parents
        .zip(directories.iter().copied())
        .zip(found.iter().copied())
        .map(|((p, s), d)| (p, s, d))
        .collect();
    while let Some((dir_parent, segment, directory)) = path.pop() {
        if has_children(&ctx.children, directory)? {
            break;
        }
        remove_child(ctx, dir_parent, &directory_stored_name(segment), directory)?;
    }
    Ok(())
}

/// The bound of `directory` (see `schema::DIR_KEY_LEN`); `None` when it
/// has none (unbounded).
pub(crate) fn key_len_bound(ctx: &ApplyContext<'_>, directory: u64) -> Result<Option<u32>> {
    match ctx.dir_key_len.get(inode_key(directory).as_slice())? {
        Some(value) => Ok(Some(decode_record(value.value())?)),
        None => Ok(None),
    }
}

/// Raises the bounds of the directories `path` (inodes from the bucket's
/// first level down, under segments `segments`) for a key suffix of
/// `suffix_len` bytes below the deepest of them.
pub(crate) fn raise_key_len_bounds(
    ctx: &mut ApplyContext<'_>,
    path: &[u64],
    segments: &[&str],
    suffix_len: usize,
) -> Result<()> {
    // Below directory i lie segments i+1.. of the path, each with its `/`.
    let mut below = suffix_len;
    for (directory, segment) in path.iter().zip(segments).rev() {
        let bound = u32::try_from(below).unwrap_or(u32::MAX);
        // No bound: a directory older than the bounds, which stays
        // unbounded (a bound written now would cover only this key).
        let raise = match key_len_bound(ctx, *directory)? {
            Some(current) => bound > current,
            None => false,
        };
        if raise {
            ctx.dir_key_len.insert(
                inode_key(*directory).as_slice(),
                encode_record(&bound)?.as_slice(),
            )?;
        }
        below = below.saturating_add(segment.len() + 1);
    }
    Ok(())
}
