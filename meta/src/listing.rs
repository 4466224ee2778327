//! Listing a bucket in S3 key order by walking the directory tree (see
//! docs/design.md, "Listing").

// ------------------------------------------------------------ the walk
//
// Keys in byte order are a depth-first walk of the tree visiting children in
// byte order of stored names. The walker keeps an explicit stack of
// directories, each with the lower bound of the children still to visit, so
// it can seek to any key (a start_after, a prefix, or "past every key with
// this common prefix") with one lookup per path segment, and a directory
// that becomes a common prefix is skipped without visiting anything in it.

use std::ops::Bound;

use redb::ReadTransaction;
use serde::{Deserialize, Serialize};

use crate::error::{MetaError, Result};
use crate::keys::{SEPARATOR, prefix_successor};
use crate::limits::{LIST_PAGE_MAX, TREE_DEPTH_MAX};
use crate::namespace::versions_of;
use crate::op::Query;
use crate::records::listing::{
    ListEntry, ListPage, ListRequest, ListedObject, ListedVersion, VersionListEntry,
    VersionListRequest, VersionPage,
};
use crate::records::object::{VersionId, Versioning};
use crate::records::tree::{ChildRecord, ObjectEntry};
use crate::schema;
use crate::tree::{self, BytesTable, children_from, lookup_child, open_read};

/// One page of `bucket`'s keys and common prefixes, as [`ListRequest`] and
/// [`ListPage`] describe. `NoSuchBucket` if the bucket does not exist.
/// `max_keys` above [`LIST_PAGE_MAX`] is treated as `LIST_PAGE_MAX`; an
/// empty delimiter is no delimiter.
pub fn list_objects(txn: &ReadTransaction, bucket: &str, req: &ListRequest) -> Result<ListPage> {
    let listing = BucketListing::open(txn, bucket)?;
    listing.page(txn, req)
}

/// What a listing of one bucket needs to know before it walks.
struct BucketListing {
    root: u64,
    /// Keys whose current version is a delete marker may exist: only in a
    /// bucket that ever had versioning.
    hidden_keys: bool,
}

impl BucketListing {
    fn open(txn: &ReadTransaction, bucket: &str) -> Result<BucketListing> {
        let record = tree::bucket_record(txn, bucket)?;
        let hidden_keys = match open_read(txn, schema::BUCKET_VERSIONING)? {
            Some(table) => {
                crate::namespace::versioning_of(&table, bucket)? != Versioning::Unversioned
            }
            None => false,
        };
        Ok(BucketListing {
            root: record.root,
            hidden_keys,
        })
    }

    fn page(&self, txn: &ReadTransaction, req: &ListRequest) -> Result<ListPage> {
        let max_keys = req.max_keys.min(LIST_PAGE_MAX);
        if max_keys == 0 {
            return Ok(ListPage::default());
        }
        let children = txn.open_table(schema::CHILDREN)?;
        list_tree(&children, self.root, req, max_keys, self.hidden_keys)
    }
}

/// Linearizable listing page of `bucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListObjects {
    pub bucket: String,
    pub request: ListRequest,
}

impl Query for ListObjects {
    type Reply = ListPage;
    fn read(&self, txn: &ReadTransaction) -> Result<ListPage> {
        list_objects(txn, &self.bucket, &self.request)
    }

    /// Without hidden keys a page is bounded work: every child the walk
    /// reads is listed, folded into a listed common prefix, or ends the
    /// walk, and every directory holds a key, so it reads at most
    /// [`LIST_PAGE_MAX`] + 1 keys and the directories on their paths
    /// (docs/design.md, "Point reads run inline"). A bucket that ever had
    /// versioning may hold any number of delete markers to skip.
    fn read_inline(&self, txn: &ReadTransaction) -> Option<Result<ListPage>> {
        match BucketListing::open(txn, &self.bucket) {
            Ok(listing) if listing.hidden_keys => None,
            Ok(listing) => Some(listing.page(txn, &self.request)),
            Err(e) => Some(Err(e)),
        }
    }
}

/// The listing of the bucket whose directory is `root`; `max_keys` > 0.
/// With `hidden_keys`, keys whose current version is a delete marker may
/// exist: they are skipped, and so is a directory holding nothing else.
pub(crate) fn list_tree<T: BytesTable>(
    children: &T,
    root: u64,
    req: &ListRequest,
    max_keys: usize,
    hidden_keys: bool,
) -> Result<ListPage> {
    let prefix = req.prefix.as_bytes();
    let delimiter = req
        .delimiter
        .as_deref()
        .map(str::as_bytes)
        .filter(|d| !d.is_empty());
    let start_after = req.start_after.as_deref().map(str::as_bytes);
    let mut page = PageBuilder {
        // A page fills to max_keys (at most LIST_PAGE_MAX) more often
        // than not: one allocation instead of ten doublings.
        entries: Vec::with_capacity(max_keys.min(LIST_PAGE_MAX)),
        max_keys,
        start_after,
        is_truncated: false,
    };
    let mut walker = Walker {
        children,
        root,
        stack: Vec::new(),
        wanted: max_keys.saturating_add(1),
    };
    match start_after {
        Some(after) if after >= prefix => walker.seek(Seek::Excluded(after))?,
        _ => walker.seek(Seek::Included(prefix))?,
    }

    while let Some(step) = walker.next()? {
        match step {
            Step::Object { entry, .. } if entry.delete_marker => continue,
            Step::Object { key, entry } => {
                if !key.starts_with(prefix) {
                    if key.as_slice() > prefix {
                        break; // past every key with the prefix
                    }
                    continue;
                }
                if let Some(common) = common_prefix(&key, prefix, delimiter) {
                    if !page.push_common_prefix(common)? {
                        break;
                    }
                    walker.seek(Seek::PastPrefix(common))?;
                } else if !page.push(listed_object(key, entry)?) {
                    break;
                }
            }
            Step::Directory { path, inode } => {
                if !path.starts_with(prefix) {
                    if prefix.starts_with(&path) {
                        walker.descend(inode, path)?;
                    } else if path.as_slice() > prefix {
                        break;
                    }
                    continue;
                }
                // A directory always holds an object, so if the delimiter
                // occurs within its path every key below shares one common
                // prefix, known without visiting them (in a versioned
                // bucket, once one of them is found not to be deleted).
                match common_prefix(&path, prefix, delimiter) {
                    Some(_) if hidden_keys && !holds_live_key(children, inode)? => {}
                    Some(common) => {
                        if !page.push_common_prefix(common)? {
                            break;
                        }
                        if common.len() < path.len() {
                            walker.seek(Seek::PastPrefix(common))?;
                        }
                    }
                    None => walker.descend(inode, path)?,
                }
            }
        }
    }
    Ok(ListPage {
        entries: page.entries,
        is_truncated: page.is_truncated,
    })
}

/// Whether directory `inode` holds, at any depth, a key whose current
/// version is not a delete marker: a walk, in range scans of
/// [`LIVE_KEY_SCAN_ROWS`] children, that stops at the first one.
fn holds_live_key<T: BytesTable>(children: &T, inode: u64) -> Result<bool> {
    // Directories still to look in: inode, where to resume, depth.
    let mut stack: Vec<(u64, Bound<Vec<u8>>, usize)> = vec![(inode, Bound::Unbounded, 1)];
    let mut batch = Vec::with_capacity(LIVE_KEY_SCAN_ROWS);
    while let Some((directory, lower, depth)) = stack.pop() {
        batch.clear();
        children_from(
            children,
            directory,
            lower.as_ref().map(Vec::as_slice),
            LIVE_KEY_SCAN_ROWS,
            b"",
            &mut batch,
        )?;
        if batch.len() == LIVE_KEY_SCAN_ROWS
            && let Some((last, _)) = batch.last()
        {
            stack.push((directory, Bound::Excluded(last.clone()), depth));
        }
        for (_, record) in batch.drain(..) {
            match record {
                ChildRecord::Object(entry) if !entry.delete_marker => return Ok(true),
                ChildRecord::Object(_) => {}
                ChildRecord::Directory { inode } => {
                    if depth >= TREE_DEPTH_MAX {
                        return Err(MetaError::Corrupt(format!(
                            "directory tree deeper than {TREE_DEPTH_MAX}"
                        )));
                    }
                    stack.push((inode, Bound::Unbounded, depth + 1));
                }
            }
        }
    }
    Ok(false)
}

/// Children [`holds_live_key`] reads per range scan: a directory of delete
/// markers costs one scan per this many, not one seek per key.
const LIVE_KEY_SCAN_ROWS: usize = 64;

/// One ListObjectVersions page of `bucket`: every key's versions and delete
/// markers, newest first, keys in byte order, with common prefixes as
/// ListObjects has them. `NoSuchBucket` if the bucket does not exist.
pub fn list_object_versions(
    txn: &ReadTransaction,
    bucket: &str,
    req: &VersionListRequest,
) -> Result<VersionPage> {
    let record = tree::bucket_record(txn, bucket)?;
    let max_keys = req.max_keys.min(LIST_PAGE_MAX);
    if max_keys == 0 {
        return Ok(VersionPage::default());
    }
    let children = txn.open_table(schema::CHILDREN)?;
    let versions = txn.open_table(schema::VERSIONS)?;
    list_versions_tree(&children, &versions, record.root, req, max_keys)
}

/// Linearizable ListObjectVersions page of `bucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListObjectVersions {
    pub bucket: String,
    pub request: VersionListRequest,
}

impl Query for ListObjectVersions {
    type Reply = VersionPage;
    fn read(&self, txn: &ReadTransaction) -> Result<VersionPage> {
        list_object_versions(txn, &self.bucket, &self.request)
    }
}

pub(crate) fn list_versions_tree<T: BytesTable, V: BytesTable>(
    children: &T,
    versions: &V,
    root: u64,
    req: &VersionListRequest,
    max_keys: usize,
) -> Result<VersionPage> {
    let prefix = req.prefix.as_bytes();
    let delimiter = req
        .delimiter
        .as_deref()
        .map(str::as_bytes)
        .filter(|d| !d.is_empty());
    let marker = req.key_marker.as_deref().map(str::as_bytes);
    // Within the marker key, the versions after this one are still due.
    let resume = marker.zip(req.version_id_marker);
    let mut page = VersionPage::default();
    let mut walker = Walker {
        children,
        root,
        stack: Vec::new(),
        wanted: max_keys.saturating_add(1),
    };
    match (marker, resume) {
        (Some(after), None) if after >= prefix => walker.seek(Seek::Excluded(after))?,
        (Some(at), Some(_)) if at >= prefix => walker.seek(Seek::Included(at))?,
        _ => walker.seek(Seek::Included(prefix))?,
    }
    let full = |page: &mut VersionPage| {
        if page.entries.len() >= max_keys {
            page.is_truncated = true;
            true
        } else {
            false
        }
    };
    // A common prefix at or before the key marker was listed already.
    let push_common = |page: &mut VersionPage, common: &[u8]| -> Result<bool> {
        if marker.is_some_and(|m| common <= m) {
            return Ok(true);
        }
        if full(page) {
            return Ok(false);
        }
        page.entries
            .push(VersionListEntry::CommonPrefix(utf8(common.to_vec())?));
        Ok(true)
    };

    while let Some(step) = walker.next()? {
        match step {
            Step::Object { key, entry } => {
                if !key.starts_with(prefix) {
                    if key.as_slice() > prefix {
                        break;
                    }
                    continue;
                }
                let resuming = match (marker, resume) {
                    (Some(m), Some((_, id))) if key.as_slice() == m => Some(id),
                    (Some(m), _) if key.as_slice() <= m => continue,
                    _ => None,
                };
                if let Some(common) = common_prefix(&key, prefix, delimiter) {
                    if !push_common(&mut page, common)? {
                        break;
                    }
                    walker.seek(Seek::PastPrefix(common))?;
                    continue;
                }
                let all = versions_of(versions, entry.inode)?;
                let skip = match resuming {
                    None => 0,
                    Some(id) => match all.iter().position(|v| v.version_id() == id) {
                        Some(at) => at + 1,
                        // The marker version is gone: resume after where
                        // it sat, or, for a null one, after the whole key.
                        None => match id {
                            VersionId::At {
                                generation,
                                position,
                            } => all
                                .iter()
                                .take_while(|v| {
                                    (v.generation, v.stamp.position) >= (generation, position)
                                })
                                .count(),
                            VersionId::Null => all.len(),
                        },
                    },
                };
                let key = utf8(key)?;
                for (index, version) in all.iter().enumerate().skip(skip) {
                    if full(&mut page) {
                        break;
                    }
                    page.entries.push(VersionListEntry::Version(ListedVersion {
                        key: key.clone(),
                        version_id: version.version_id(),
                        is_latest: index == 0,
                        delete_marker: version.stamp.delete_marker,
                        size: version.size,
                        etag: version.etag.clone(),
                        last_modified_ms: version.last_modified_ms,
                        storage_class: version.storage_class.clone(),
                    }));
                }
                if page.is_truncated {
                    break;
                }
            }
            Step::Directory { path, inode } => {
                if !path.starts_with(prefix) {
                    if prefix.starts_with(&path) {
                        walker.descend(inode, path)?;
                    } else if path.as_slice() > prefix {
                        break;
                    }
                    continue;
                }
                match common_prefix(&path, prefix, delimiter) {
                    Some(common) => {
                        if !push_common(&mut page, common)? {
                            break;
                        }
                        if common.len() < path.len() {
                            walker.seek(Seek::PastPrefix(common))?;
                        }
                    }
                    None => walker.descend(inode, path)?,
                }
            }
        }
    }
    Ok(page)
}

/// `name` up to and including the first `delimiter` after `prefix`.
fn common_prefix<'n>(name: &'n [u8], prefix: &[u8], delimiter: Option<&[u8]>) -> Option<&'n [u8]> {
    let delimiter = delimiter?;
    let after_prefix = name.get(prefix.len()..)?;
    let position = after_prefix
        .windows(delimiter.len())
        .position(|window| window == delimiter)?;
    name.get(..prefix.len() + position + delimiter.len())
}

fn listed_object(key: Vec<u8>, entry: ObjectEntry) -> Result<ListEntry> {
    Ok(ListEntry::Object(ListedObject {
        key: utf8(key)?,
        size: entry.size,
        etag: entry.etag,
        last_modified_ms: entry.last_modified_ms,
        storage_class: entry.storage_class,
    }))
}

fn utf8(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes)
        .map_err(|e| MetaError::Corrupt(format!("stored key is not UTF-8: {e}")))
}

struct PageBuilder<'r> {
    entries: Vec<ListEntry>,
    max_keys: usize,
    start_after: Option<&'r [u8]>,
    is_truncated: bool,
}

impl PageBuilder<'_> {
    /// Adds an entry; false (and the page is truncated) if the page was full.
    fn push(&mut self, entry: ListEntry) -> bool {
        if self.entries.len() >= self.max_keys {
            self.is_truncated = true;
            return false;
        }
        let name = entry.name().as_bytes();
        let after_previous = self
            .entries
            .last()
            .is_none_or(|last| name > last.name().as_bytes());
        let after_start = self.start_after.is_none_or(|after| name > after);
        assert!(
            after_previous && after_start,
            "listing is not strictly increasing at {:?}",
            entry.name()
        );
        self.entries.push(entry);
        true
    }

    /// Adds a common prefix unless it is at or before start_after.
    fn push_common_prefix(&mut self, common: &[u8]) -> Result<bool> {
        if self.start_after.is_some_and(|after| common <= after) {
            return Ok(true);
        }
        Ok(self.push(ListEntry::CommonPrefix(utf8(common.to_vec())?)))
    }
}

/// Where a seek lands: at the first key `>= b`, `> b`, or after every key
/// that starts with `b`.
#[derive(Clone, Copy)]
enum Seek<'a> {
    Included(&'a [u8]),
    Excluded(&'a [u8]),
    PastPrefix(&'a [u8]),
}

/// A child met by the walk, in key order; the caller decides whether to
/// descend into a directory.
enum Step {
    Object {
        key: Vec<u8>,
        entry: ObjectEntry,
    },
    /// `path` is the directory's full path, ending in `/`.
    Directory {
        path: Vec<u8>,
        inode: u64,
    },
}

/// Children a frame reads in its first range scan; each further scan of
/// the same directory reads four times as many, up to
/// [`CHILDREN_BATCH_MAX`]. A directory left after a few children (a
/// common prefix, a deep tree's small leaves) costs little over-reading;
/// a large one is read in a few scans instead of one seek per child.
const CHILDREN_BATCH_MIN: usize = 16;
/// Largest range scan of one directory's children.
const CHILDREN_BATCH_MAX: usize = 1024;

/// A directory being visited.
struct Frame {
    inode: u64,
    /// The directory's path from the bucket (empty for the bucket itself).
    path: Vec<u8>,
    /// Children read ahead, in order, still to visit, each named by its
    /// full path (`path` and the stored name).
    ahead: std::vec::IntoIter<(Vec<u8>, ChildRecord)>,
    /// Children still to visit after those in `ahead` have stored names
    /// within this bound.
    lower: Bound<Vec<u8>>,
    /// Whether the last scan found every child within `lower`.
    drained: bool,
    /// Children the next scan reads.
    batch: usize,
}

impl Frame {
    fn new(inode: u64, path: Vec<u8>, lower: Bound<Vec<u8>>) -> Frame {
        Frame {
            inode,
            path,
            ahead: Vec::new().into_iter(),
            lower,
            drained: false,
            batch: CHILDREN_BATCH_MIN,
        }
    }
}

struct Walker<'t, T> {
    children: &'t T,
    root: u64,
    stack: Vec<Frame>,
    /// About how many more children the caller wants (it may stop sooner or
    /// later): a scan reads no more than this, or [`CHILDREN_BATCH_MIN`].
    wanted: usize,
}

impl<T: BytesTable> Walker<'_, T> {
    /// Repositions the walk from scratch at `target`, descending along its
    /// path through the directories that exist.
    fn seek(&mut self, target: Seek<'_>) -> Result<()> {
        self.stack.clear();
        let mut rest = match target {
            Seek::Included(b) | Seek::Excluded(b) | Seek::PastPrefix(b) => b,
        };
        let mut inode = self.root;
        let mut path = Vec::new();
        loop {
            let Some(end) = rest.iter().position(|&b| b == SEPARATOR) else {
                // The last, partial segment bounds the children of `inode`.
                let lower = match target {
                    Seek::Included(_) => Bound::Included(rest.to_vec()),
                    Seek::Excluded(_) => Bound::Excluded(rest.to_vec()),
                    Seek::PastPrefix(_) => match prefix_successor(rest) {
                        Some(successor) => Bound::Included(successor),
                        None => return Ok(()), // every child starts with `rest`
                    },
                };
                self.push(Frame::new(inode, path, lower))?;
                return Ok(());
            };
            let (stored_name, after) = rest.split_at_checked(end + 1).ok_or_else(|| {
                MetaError::Corrupt("separator position out of range".to_owned()) // unreachable
            })?;
            let child = lookup_child(self.children, inode, stored_name)?;
            // Whatever is in that directory is the target's side of it;
            // the parent resumes after it.
            self.push(Frame::new(
                inode,
                path.clone(),
                Bound::Excluded(stored_name.to_vec()),
            ))?;
            match child {
                Some(ChildRecord::Directory { inode: directory }) => {
                    inode = directory;
                    path.extend_from_slice(stored_name);
                    rest = after;
                }
                Some(ChildRecord::Object(_)) => {
                    return Err(MetaError::Corrupt(format!(
                        "object stored under directory name {stored_name:?}"
                    )));
                }
                None => return Ok(()),
            }
        }
    }

    /// Visits directory `inode` (at `path`) next, from its first child.
    fn descend(&mut self, inode: u64, path: Vec<u8>) -> Result<()> {
        self.push(Frame::new(inode, path, Bound::Unbounded))
    }

    fn push(&mut self, frame: Frame) -> Result<()> {
        if self.stack.len() >= TREE_DEPTH_MAX {
            return Err(MetaError::Corrupt(format!(
                "directory tree deeper than {TREE_DEPTH_MAX}"
            )));
        }
        self.stack.push(frame);
        Ok(())
    }

    /// The next child in key order, or `None` when the walk is over.
    fn next(&mut self) -> Result<Option<Step>> {
        while let Some(frame) = self.stack.last_mut() {
            let Some((name, record)) = frame.ahead.next() else {
                if frame.drained {
                    self.stack.pop();
                    continue;
                }
                let wanted = frame.batch.min(self.wanted.max(CHILDREN_BATCH_MIN));
                let mut rows = Vec::with_capacity(wanted);
                let lower = frame.lower.as_ref().map(Vec::as_slice);
                tree::children_from(
                    self.children,
                    frame.inode,
                    lower,
                    wanted,
                    &frame.path,
                    &mut rows,
                )?;
                frame.drained = rows.len() < wanted;
                frame.batch = frame.batch.saturating_mul(4).min(CHILDREN_BATCH_MAX);
                if let Some((last, _)) = rows.last() {
                    let stored_name = last.get(frame.path.len()..).unwrap_or_default();
                    frame.lower = Bound::Excluded(stored_name.to_vec());
                }
                frame.ahead = rows.into_iter();
                continue;
            };
            self.wanted = self.wanted.saturating_sub(1);
            return Ok(Some(match record {
                ChildRecord::Directory { inode } => Step::Directory { path: name, inode },
                ChildRecord::Object(entry) => Step::Object { key: name, entry },
            }));
        }
        Ok(None)
    }
}
