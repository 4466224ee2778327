//! Recursive delete: a directory and everything below it leaves the tree in
//! one command, and its metadata and chunks are released later, in bounded
//! batches (see docs/design.md, "Recursive delete").
//!
//! [`DeleteDirectory`] removes the directory's row from its parent, so no
//! read or listing reaches the subtree from that command on, and records a
//! [`Tombstone`] naming the detached directory. [`ReclaimBatch`], proposed
//! over and over by a background task on the leader, walks the oldest
//! tombstone's subtree depth first and removes at most `limit` rows per
//! command: objects (their versions go, their chunks to the GC queue) and
//! the directories they leave empty, and finally the tombstone. The work
//! lives in the replicated state, so it survives restarts and leader
//! changes: whichever node leads next picks up where the last batch ended.

use std::ops::Bound;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use crate::context::ApplyContext;
use crate::error::{MetaError, Result};
use crate::keys::{SEPARATOR, directory_stored_name, split_key, validate_key};
use crate::limits::{RECLAIM_BATCH_MAX, TREE_DEPTH_MAX};
use crate::namespace::{retire_object, versioning_of};
use crate::op::{Apply, Outcome, Query, SIZE_BASE};
use crate::records::object::Versioning;
use crate::records::tree::{ChildRecord, Tombstone};
use crate::schema::{self, decode_record, encode_record, inode_key};
use crate::tree::{
    first_child, open_read, prune_empty_directories, read_bucket, resolve_directories,
};

/// Deletes the directory `prefix` (ending in `/`) of `bucket` with every
/// key below it, in one command; replies whether there was one. The
/// subtree's metadata and chunks are released afterwards by
/// [`ReclaimBatch`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteDirectory {
    pub bucket: String,
    pub prefix: String,
    /// The proposer's clock, recorded in the tombstone.
    pub deleted_ms: i64,
}

impl Apply for DeleteDirectory {
    type Reply = bool;

    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<bool>> {
        let DeleteDirectory {
            bucket,
            prefix,
            deleted_ms,
        } = self;
        if prefix.as_bytes().last() != Some(&SEPARATOR) {
            return Ok(Err(MetaError::InvalidKey(format!(
                "a recursive delete names a prefix ending in '/', not {prefix:?}"
            ))));
        }
        if let Err(e) = validate_key(prefix) {
            return Ok(Err(e));
        }
        let Some(bucket_record) = read_bucket(&ctx.buckets, bucket)? else {
            return Ok(Err(MetaError::NoSuchBucket(bucket.clone())));
        };
        if versioning_of(&ctx.bucket_versioning, bucket)? != Versioning::Unversioned {
            // docs/design.md, "Versioning": a versioned bucket keeps what
            // was deleted, which one unlink cannot do for a whole subtree.
            return Ok(Err(MetaError::VersionedBucket(format!(
                "a recursive delete is refused in versioned bucket {bucket:?}: \
                 delete its keys one by one (each gets a delete marker)"
            ))));
        }
        let root = bucket_record.root;
        let (directories, _) = split_key(prefix);
        let found = resolve_directories(&ctx.children, root, &directories)?;
        if found.len() < directories.len() {
            return Ok(Ok(false));
        }
        let (Some(&detached), Some(segment)) = (found.last(), directories.last()) else {
            return Err(MetaError::Corrupt(
                "a directory prefix without segments".into(),
            ));
        };
        let parent = found
            .len()
            .checked_sub(2)
            .and_then(|i| found.get(i).copied())
            .unwrap_or(root);

        detach(
            ctx,
            (parent, &directory_stored_name(segment)),
            Tombstone {
                root: detached,
                bucket: bucket.clone(),
                prefix: prefix.clone(),
                deleted_ms: *deleted_ms,
            },
        )?;
        let parents = &directories[..directories.len() - 1];
        prune_empty_directories(ctx, root, parents, &found[..parents.len()])?;
        Ok(Ok(true))
    }

    fn size_estimate(&self) -> usize {
        SIZE_BASE.saturating_add(self.prefix.len())
    }
}

/// Detaches the directory `tombstone.root`, the child `name` of `parent`:
/// its row goes (nothing reaches it any more), the inode stays, and the
/// tombstone queues it for the reclaimer.
pub(crate) fn detach(
    ctx: &mut ApplyContext<'_>,
    (parent, name): (u64, &[u8]),
    tombstone: Tombstone,
) -> Result<()> {
    if ctx
        .children
        .remove(schema::child_key(parent, name).as_slice())?
        .is_none()
    {
        return Err(MetaError::Corrupt(format!(
            "detaching {:?}: no row for it",
            tombstone.prefix
        )));
    }
    let sequence = next_counter(ctx, schema::COUNTER_NEXT_TOMBSTONE)?;
    ctx.reclaim.insert(
        sequence.to_be_bytes().as_slice(),
        encode_record(&tombstone)?.as_slice(),
    )?;
    Ok(())
}

/// Releases at most `limit` units of work of the oldest tombstones'
/// subtrees: an emptied directory costs one, an object one per chunk
/// reference it releases (at least one), so a batch stays bounded however
/// large the objects are; replies with what is left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReclaimBatch {
    pub limit: u32,
}

/// What a [`ReclaimBatch`] did, and what is left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReclaimProgress {
    /// Objects released by this batch.
    pub objects: u32,
    /// Directories removed by this batch.
    pub directories: u32,
    /// Tombstones still waiting (0: nothing left to do).
    pub pending: u64,
}

impl Apply for ReclaimBatch {
    type Reply = ReclaimProgress;

    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<ReclaimProgress>> {
        if self.limit == 0 || self.limit > RECLAIM_BATCH_MAX {
            return Ok(Err(MetaError::InvalidRequest(format!(
                "a reclaim batch of {} (1..={RECLAIM_BATCH_MAX})",
                self.limit
            ))));
        }
        let mut progress = ReclaimProgress::default();
        let mut budget = self.limit;
        while budget > 0 {
            let Some((sequence, tombstone)) = oldest_tombstone(ctx)? else {
                break;
            };
            let done = reclaim_from(ctx, &tombstone, &mut budget, &mut progress)?;
            if done {
                ctx.reclaim.remove(sequence.as_slice())?;
            }
        }
        if progress.objects > 0 {
            add_counter(
                ctx,
                schema::COUNTER_RECLAIMED_OBJECTS,
                u64::from(progress.objects),
            )?;
        }
        progress.pending = ctx.reclaim.len()?;
        Ok(Ok(progress))
    }
}

/// The oldest tombstone and its key.
fn oldest_tombstone(ctx: &ApplyContext<'_>) -> Result<Option<(Vec<u8>, Tombstone)>> {
    let Some(row) = ctx.reclaim.first()? else {
        return Ok(None);
    };
    let (key, value) = row;
    Ok(Some((key.value().to_vec(), decode_record(value.value())?)))
}

/// Removes rows of `tombstone`'s subtree, depth first, while `budget`
/// lasts; true once the whole subtree, its root included, is gone.
fn reclaim_from(
    ctx: &mut ApplyContext<'_>,
    tombstone: &Tombstone,
    budget: &mut u32,
    progress: &mut ReclaimProgress,
) -> Result<bool> {
    while *budget > 0 {
        // Descend along first children to a leaf: an object, or an empty
        // directory (only the root can be one on entry, or one emptied by
        // this batch).
        let mut parent = tombstone.root;
        let mut depth = 0usize;
        loop {
            match first_child(&ctx.children, parent, Bound::Unbounded)? {
                None => {
                    // `parent` is empty: remove it.
                    remove_empty_directory(ctx, parent)?;
                    progress.directories = progress.directories.saturating_add(1);
                    *budget -= 1;
                    if parent == tombstone.root {
                        return Ok(true);
                    }
                    break;
                }
                Some((stored_name, ChildRecord::Object(entry))) => {
                    // A huge object releases many chunk references: the
                    // budget counts them, so a batch's work stays bounded.
                    let released = retire_object(ctx, entry.inode)?;
                    remove_row(ctx, parent, &stored_name, entry.inode)?;
                    progress.objects = progress.objects.saturating_add(1);
                    let cost = u32::try_from(released.max(1)).unwrap_or(u32::MAX);
                    *budget = budget.saturating_sub(cost);
                    break;
                }
                Some((_, ChildRecord::Directory { inode })) => {
                    depth += 1;
                    if depth > TREE_DEPTH_MAX {
                        return Err(MetaError::Corrupt(format!(
                            "a detached subtree deeper than {TREE_DEPTH_MAX} under {}",
                            tombstone.root
                        )));
                    }
                    parent = inode;
                }
            }
        }
    }
    Ok(false)
}

/// Removes the child row `parent/stored_name` and the inode it names.
fn remove_row(
    ctx: &mut ApplyContext<'_>,
    parent: u64,
    stored_name: &[u8],
    inode: u64,
) -> Result<()> {
    crate::tree::remove_child(ctx, parent, stored_name, inode)
}

/// Removes an empty directory of a detached subtree: its row in its
/// parent (none for the detached root) and its inode.
fn remove_empty_directory(ctx: &mut ApplyContext<'_>, inode: u64) -> Result<()> {
    let Some(value) = ctx.inodes.remove(inode_key(inode).as_slice())? else {
        return Err(MetaError::Corrupt(format!(
            "detached directory {inode} has no inode row"
        )));
    };
    let record: crate::records::tree::InodeRecord = decode_record(value.value())?;
    drop(value);
    ctx.dir_key_len.remove(inode_key(inode).as_slice())?;
    let key = schema::child_key(record.parent, &record.stored_name);
    let names_it = match ctx.children.get(key.as_slice())? {
        Some(value) => matches!(
            decode_record::<ChildRecord>(value.value())?,
            ChildRecord::Directory { inode: child } if child == inode
        ),
        None => false,
    };
    if names_it {
        ctx.children.remove(key.as_slice())?;
    }
    Ok(())
}

fn next_counter(ctx: &mut ApplyContext<'_>, name: &[u8]) -> Result<u64> {
    let next = match ctx.counters.get(name)? {
        Some(value) => decode_record::<u64>(value.value())?,
        None => 0,
    };
    let after = next
        .checked_add(1)
        .ok_or_else(|| MetaError::Corrupt("counter exhausted".to_owned()))?;
    ctx.counters
        .insert(name, encode_record(&after)?.as_slice())?;
    Ok(next)
}

fn add_counter(ctx: &mut ApplyContext<'_>, name: &[u8], by: u64) -> Result<()> {
    let now = match ctx.counters.get(name)? {
        Some(value) => decode_record::<u64>(value.value())?,
        None => 0,
    };
    ctx.counters
        .insert(name, encode_record(&now.saturating_add(by))?.as_slice())?;
    Ok(())
}

/// How far the reclaimer is: tombstones waiting, and objects released.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReclaimStatus;

/// The answer to [`ReclaimStatus`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReclaimReport {
    /// Detached subtrees still to release, oldest first (at most
    /// [`RECLAIM_REPORT_MAX`]).
    pub pending: Vec<Tombstone>,
    /// How many there are in all.
    pub pending_count: u64,
    /// Objects released since the store began.
    pub reclaimed_objects: u64,
}

/// Tombstones a [`ReclaimReport`] lists.
pub const RECLAIM_REPORT_MAX: usize = 16;

impl Query for ReclaimStatus {
    type Reply = ReclaimReport;

    fn read(&self, txn: &ReadTransaction) -> Result<ReclaimReport> {
        let mut report = ReclaimReport::default();
        if let Some(table) = open_read(txn, schema::RECLAIM)? {
            report.pending_count = table.len()?;
            for row in table.iter()?.take(RECLAIM_REPORT_MAX) {
                let (_, value) = row?;
                report.pending.push(decode_record(value.value())?);
            }
        }
        if let Some(counters) = open_read(txn, schema::COUNTERS)?
            && let Some(value) = counters.get(schema::COUNTER_RECLAIMED_OBJECTS)?
        {
            report.reclaimed_objects = decode_record(value.value())?;
        }
        Ok(report)
    }
}
