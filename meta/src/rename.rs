//! Renames on the tree: an object, or a whole directory, moves to another
//! name in one command. Only children rows and inode records change: the
//! versions (keyed by inode) and their chunks stay where they are, so the
//! time does not depend on the object's size or on how many keys a
//! directory holds (see docs/design.md, "Renames").

use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use crate::context::ApplyContext;
use crate::error::{MetaError, Result};
use crate::keys::{SEPARATOR, directory_stored_name, split_key, validate_key};
use crate::limits::{CLIENT_TOKEN_LEN_MAX, CLIENT_TOKENS_MAX, KEY_LEN_MAX};
use crate::namespace::{check_overwrite, lock_config_of, retire_object, versioning_of};
use crate::op::{Apply, Outcome, SIZE_BASE};
use crate::reclaim::detach;
use crate::records::object::{OverwritePolicy, Versioning, WriteCondition};
use crate::records::tree::{ObjectEntry, TokenRecord, Tombstone};
use crate::schema::{decode_record, encode_record};
use crate::tree::{
    create_directory, key_len_bound, lookup_object, move_child, prune_empty_directories,
    raise_key_len_bounds, read_bucket, remove_child, resolve_directories,
};

pub use crate::records::object::ObjectCondition;

/// Evaluating a condition against the current version.
trait Holds {
    fn check(&self, entry: Option<&ObjectEntry>, missing: impl Fn() -> MetaError) -> Outcome<()>;
    fn as_write_condition(&self) -> WriteCondition;
}

impl Holds for ObjectCondition {
    /// Whether `entry` (the current version, if any) passes. `missing` is
    /// the error for an If-Match on an absent object.
    fn check(&self, entry: Option<&ObjectEntry>, missing: impl Fn() -> MetaError) -> Outcome<()> {
        let seconds = |ms: i64| ms.div_euclid(1000);
        match (&self.if_match, entry) {
            (Some(_), None) => return Err(missing()),
            (Some(etag), Some(e)) if etag != "*" && *etag != e.etag => {
                return Err(MetaError::PreconditionFailed);
            }
            _ => {}
        }
        match (&self.if_none_match, entry) {
            (Some(etag), Some(e)) if etag == "*" || *etag == e.etag => {
                return Err(MetaError::PreconditionFailed);
            }
            _ => {}
        }
        if let Some(entry) = entry {
            let modified = seconds(entry.last_modified_ms);
            // RFC 7232: If-Unmodified-Since is ignored when If-Match is
            // present, If-Modified-Since when If-None-Match is.
            if self.if_match.is_none()
                && let Some(since) = self.if_unmodified_since_ms
                && modified > seconds(since)
            {
                return Err(MetaError::PreconditionFailed);
            }
            if self.if_none_match.is_none()
                && let Some(since) = self.if_modified_since_ms
                && modified <= seconds(since)
            {
                return Err(MetaError::PreconditionFailed);
            }
        }
        Ok(())
    }

    fn as_write_condition(&self) -> WriteCondition {
        match (&self.if_match, &self.if_none_match) {
            (Some(etag), _) if etag != "*" => WriteCondition::IfMatch(etag.clone()),
            _ => WriteCondition::None,
        }
    }
}

/// Renames the object `source` to `destination` in `bucket`: its current
/// version, with its ETag, metadata and chunks, answers under the new key
/// and the old key is gone, in one command. An object at `destination` is
/// replaced (and its chunks released) where the bucket's overwrite policy
/// and `destination_condition` allow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameObject {
    pub bucket: String,
    pub source: String,
    pub destination: String,
    pub source_condition: ObjectCondition,
    pub destination_condition: ObjectCondition,
    /// `x-amz-client-token`: a retry with the same token and parameters
    /// answers as the first rename did; other parameters are refused.
    pub client_token: Option<String>,
}

impl Apply for RenameObject {
    type Reply = ();

    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        let RenameObject {
            bucket,
            source,
            destination,
            source_condition,
            destination_condition,
            client_token,
        } = self;
        for key in [source, destination] {
            if let Err(e) = validate_key(key) {
                return Ok(Err(e));
            }
        }
        let used_for = TokenRecord {
            bucket: bucket.clone(),
            source: source.clone(),
            destination: destination.clone(),
            source_condition: source_condition.clone(),
            destination_condition: destination_condition.clone(),
            replace: false,
        };
        if let Some(token) = client_token
            && let Some(replayed) = replay_token(ctx, token, &used_for)?
        {
            return Ok(replayed);
        }
        let Some(bucket_record) = read_bucket(&ctx.buckets, bucket)? else {
            return Ok(Err(MetaError::NoSuchBucket(bucket.clone())));
        };
        let root = bucket_record.root;
        let (source_dirs, source_name) = split_key(source);
        let source_found = resolve_directories(&ctx.children, root, &source_dirs)?;
        let source_parent = source_found.last().copied().unwrap_or(root);
        let entry = if source_found.len() == source_dirs.len() {
            lookup_object(&ctx.children, source_parent, source_name)?
        } else {
            None
        };
        let Some(entry) = entry.filter(|e| !e.delete_marker) else {
            return Ok(Err(MetaError::NoSuchKey(source.clone())));
        };
        if let Err(e) =
            source_condition.check(Some(&entry), || MetaError::NoSuchKey(source.clone()))
        {
            return Ok(Err(e));
        }
        let (dest_dirs, dest_name) = split_key(destination);
        let dest_found = resolve_directories(&ctx.children, root, &dest_dirs)?;
        let existing = if dest_found.len() == dest_dirs.len() {
            let parent = dest_found.last().copied().unwrap_or(root);
            lookup_object(&ctx.children, parent, dest_name)?
        } else {
            None
        };
        let versioned = versioning_of(&ctx.bucket_versioning, bucket)? != Versioning::Unversioned;
        if versioned && source != destination && existing.is_some() {
            // Two keys' histories cannot become one: the destination's
            // versions would have to go or be merged.
            return Ok(Err(MetaError::VersionedBucket(format!(
                "{destination:?} has versions: a rename in a versioned bucket cannot replace it"
            ))));
        }
        let existing = existing.filter(|e| !e.delete_marker);
        if source == destination {
            // Renaming onto itself: the conditions decide, nothing moves.
            return Ok(destination_condition.check(existing.as_ref(), || {
                MetaError::NoSuchKey(destination.clone())
            }));
        }
        if let Err(e) = destination_condition.check(existing.as_ref(), || {
            MetaError::NoSuchKey(destination.clone())
        }) {
            return Ok(Err(e));
        }
        if existing.is_some()
            && let Err(e) = check_overwrite(
                &bucket_record.info.overwrite,
                &destination_condition.as_write_condition(),
            )
        {
            return Ok(Err(e));
        }

        // Validated: from here on every step writes.
        if let Some(old) = &existing {
            let parent = dest_found.last().copied().unwrap_or(root);
            retire_object(ctx, old.inode)?;
            remove_child(ctx, parent, dest_name.as_bytes(), old.inode)?;
        }
        let mut path = dest_found;
        let mut parent = path.last().copied().unwrap_or(root);
        for segment in dest_dirs.iter().skip(path.len()) {
            parent = create_directory(ctx, parent, directory_stored_name(segment))?;
            path.push(parent);
        }
        raise_key_len_bounds(ctx, &path, &dest_dirs, dest_name.len())?;
        move_child(
            ctx,
            (source_parent, source_name.as_bytes()),
            (parent, dest_name.as_bytes()),
        )?;
        // The source's directories may now be empty (the destination's
        // path cannot be: it holds the moved object).
        let source_found = resolve_directories(&ctx.children, root, &source_dirs)?;
        prune_empty_directories(ctx, root, &source_dirs, &source_found)?;
        done(ctx, client_token.as_deref(), &used_for)
    }

    fn size_estimate(&self) -> usize {
        names_size(&self.source, &self.destination)
    }
}

/// A rename's success: its client token, if any, is remembered.
fn done(
    ctx: &mut ApplyContext<'_>,
    token: Option<&str>,
    used_for: &TokenRecord,
) -> Result<Outcome<()>> {
    if let Some(token) = token {
        remember_token(ctx, token, used_for)?;
    }
    Ok(Ok(()))
}

/// A rename's size in a log entry: its two names and the rest.
fn names_size(source: &str, destination: &str) -> usize {
    SIZE_BASE
        .saturating_add(source.len())
        .saturating_add(destination.len())
}

/// What a request with client `token` answers without applying anything:
/// the first outcome (success: only successes are remembered) when the
/// token applied the same request, a mismatch when it applied another, a
/// refusal for a malformed token; `None` for a token not seen before.
fn replay_token(
    ctx: &ApplyContext<'_>,
    token: &str,
    used_for: &TokenRecord,
) -> Result<Option<Outcome<()>>> {
    if token.is_empty()
        || token.len() > CLIENT_TOKEN_LEN_MAX
        || !token.bytes().all(|b| (33..=126).contains(&b))
    {
        return Ok(Some(Err(MetaError::InvalidRequest(format!(
            "a client token is 1 to {CLIENT_TOKEN_LEN_MAX} printable ASCII characters"
        )))));
    }
    let Some(value) = ctx.client_tokens.get(token.as_bytes())? else {
        return Ok(None);
    };
    let first: TokenRecord = decode_record(value.value())?;
    Ok(Some(if first == *used_for {
        Ok(())
    } else {
        Err(MetaError::IdempotencyMismatch(token.to_owned()))
    }))
}

/// Records that `token` applied `used_for`, forgetting the oldest token
/// once [`CLIENT_TOKENS_MAX`] are kept.
fn remember_token(ctx: &mut ApplyContext<'_>, token: &str, used_for: &TokenRecord) -> Result<()> {
    ctx.client_tokens
        .insert(token.as_bytes(), encode_record(used_for)?.as_slice())?;
    let mut at = [0u8; 12];
    at[..8].copy_from_slice(&ctx.log_index.to_be_bytes());
    at[8..].copy_from_slice(&ctx.position.to_be_bytes());
    ctx.client_token_order
        .insert(at.as_slice(), token.as_bytes())?;
    while ctx.client_token_order.len()? > CLIENT_TOKENS_MAX {
        let Some((_, oldest)) = ctx.client_token_order.pop_first()? else {
            break;
        };
        let oldest = oldest.value().to_vec();
        ctx.client_tokens.remove(oldest.as_slice())?;
    }
    Ok(())
}

/// Renames the directory `source` (a prefix ending in `/`) to
/// `destination` (likewise) in `bucket`: every key under the old prefix
/// answers under the new one, in one command whose cost does not depend on
/// how many keys it holds. Refused if the source holds nothing, if the
/// destination holds anything (unless `replace`), if the destination lies
/// inside the source (or, replacing, holds it), or if a renamed key would
/// grow past the key-length limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameDirectory {
    pub bucket: String,
    pub source: String,
    pub destination: String,
    /// Replace a destination that holds keys: it is deleted recursively
    /// (detached in this command, reclaimed later) and the source takes
    /// its place.
    pub replace: bool,
    /// The proposer's clock, for the replaced directory's tombstone.
    pub now_ms: i64,
    /// `x-amz-client-token`, as for [`RenameObject`].
    pub client_token: Option<String>,
}

/// [`RenameObject`], refused in a bucket with Object Lock: a rename moves
/// an object with every version, and a locked version must stay readable
/// under its key until its retention ends (S3 renames only in directory
/// buckets, which have no Object Lock). The refusal is inside apply, as
/// every Object Lock rule is, so that no proposer gets past it. A command
/// of its own, not a change to RenameObject's apply, so that a log is
/// applied alike by every release (docs/design.md, "Object Lock").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameObjectUnlessLocked(pub RenameObject);

/// [`RenameDirectory`], refused in a bucket with Object Lock, as
/// [`RenameObjectUnlessLocked`] is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameDirectoryUnlessLocked(pub RenameDirectory);

/// Refuses a rename in `bucket` if it has Object Lock.
fn refuse_in_locked_bucket(ctx: &ApplyContext<'_>, bucket: &str) -> Result<Outcome<()>> {
    if lock_config_of(&ctx.bucket_lock, bucket)?.is_some() {
        return Ok(Err(MetaError::VersionedBucket(format!(
            "bucket {bucket:?} has Object Lock: a rename would move locked versions off their key"
        ))));
    }
    Ok(Ok(()))
}

impl Apply for RenameObjectUnlessLocked {
    type Reply = ();

    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        if let Err(e) = refuse_in_locked_bucket(ctx, &self.0.bucket)? {
            return Ok(Err(e));
        }
        self.0.apply(ctx)
    }
}

impl Apply for RenameDirectoryUnlessLocked {
    type Reply = ();

    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        if let Err(e) = refuse_in_locked_bucket(ctx, &self.0.bucket)? {
            return Ok(Err(e));
        }
        self.0.apply(ctx)
    }
}

/// A directory prefix's segments: `a/b/` → `["a", "b"]`; `None` unless it
/// is a non-empty valid key prefix ending in `/`.
fn directory_segments(prefix: &str) -> Option<Vec<&str>> {
    if prefix.as_bytes().last() != Some(&SEPARATOR) || validate_key(prefix).is_err() {
        return None;
    }
    let (segments, name) = split_key(prefix);
    debug_assert!(name.is_empty());
    Some(segments)
}

impl Apply for RenameDirectory {
    type Reply = ();

    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        let RenameDirectory {
            bucket,
            source,
            destination,
            replace,
            now_ms,
            client_token,
        } = self;
        let (Some(source_dirs), Some(dest_dirs)) =
            (directory_segments(source), directory_segments(destination))
        else {
            return Ok(Err(MetaError::InvalidKey(
                "a directory rename names two prefixes ending in '/'".to_owned(),
            )));
        };
        let used_for = TokenRecord {
            bucket: bucket.clone(),
            source: source.clone(),
            destination: destination.clone(),
            source_condition: ObjectCondition::default(),
            destination_condition: ObjectCondition::default(),
            replace: *replace,
        };
        if let Some(token) = client_token
            && let Some(replayed) = replay_token(ctx, token, &used_for)?
        {
            return Ok(replayed);
        }
        let Some(bucket_record) = read_bucket(&ctx.buckets, bucket)? else {
            return Ok(Err(MetaError::NoSuchBucket(bucket.clone())));
        };
        let root = bucket_record.root;
        if destination.starts_with(source.as_str()) {
            return Ok(Err(MetaError::InvalidRequest(format!(
                "cannot rename directory {source:?} into itself ({destination:?})"
            ))));
        }
        let source_found = resolve_directories(&ctx.children, root, &source_dirs)?;
        if source_found.len() < source_dirs.len() {
            return Ok(Err(MetaError::NoSuchKey(source.clone())));
        }
        let (Some(&moved), Some(source_segment)) = (source_found.last(), source_dirs.last()) else {
            return Err(MetaError::Corrupt(
                "a directory prefix without segments".into(),
            ));
        };
        let source_parent = source_found
            .len()
            .checked_sub(2)
            .and_then(|i| source_found.get(i).copied())
            .unwrap_or(root);
        let mut dest_found = resolve_directories(&ctx.children, root, &dest_dirs)?;
        // Directories exist only while they hold something.
        let replaced = dest_found.len() == dest_dirs.len();
        if replaced && !replace {
            return Ok(Err(MetaError::DirectoryNotEmpty(destination.clone())));
        }
        if replaced && versioning_of(&ctx.bucket_versioning, bucket)? != Versioning::Unversioned {
            return Ok(Err(MetaError::VersionedBucket(format!(
                "cannot replace {destination:?}: a versioned bucket keeps every version, \
                 so its keys are deleted one by one"
            ))));
        }
        if replaced && source.starts_with(destination.as_str()) {
            return Ok(Err(MetaError::InvalidRequest(format!(
                "cannot replace {destination:?}: it holds the source {source:?}"
            ))));
        }
        // Replacing deletes every key of the destination: only a bucket
        // whose policy lets any write replace an object allows it.
        if replaced && bucket_record.info.overwrite != OverwritePolicy::Allow {
            return Ok(Err(MetaError::OverwriteRefused));
        }
        // The keys below grow (or shrink) by the difference in prefix
        // length; refuse if the longest could pass the limit.
        if destination.len() > source.len() {
            let longest = key_len_bound(ctx, moved)?
                .map_or(KEY_LEN_MAX, |b| usize::try_from(b).unwrap_or(KEY_LEN_MAX));
            if destination.len().saturating_add(longest) > KEY_LEN_MAX {
                return Ok(Err(MetaError::KeyTooLong));
            }
        }
        let Some((dest_segment, dest_parents)) = dest_dirs.split_last() else {
            return Err(MetaError::Corrupt(
                "a directory prefix without segments".into(),
            ));
        };
        // Validated: from here on every step writes.
        if replaced {
            let (Some(old), Some(segment)) = (dest_found.pop(), dest_dirs.last()) else {
                return Err(MetaError::Corrupt(
                    "a directory prefix without segments".into(),
                ));
            };
            let parent = dest_found.last().copied().unwrap_or(root);
            detach(
                ctx,
                (parent, &directory_stored_name(segment)),
                Tombstone {
                    root: old,
                    bucket: bucket.clone(),
                    prefix: destination.clone(),
                    deleted_ms: *now_ms,
                },
            )?;
        }
        let mut path: Vec<u64> = dest_found;
        let mut parent = path.last().copied().unwrap_or(root);
        for segment in dest_parents.iter().skip(path.len()) {
            parent = create_directory(ctx, parent, directory_stored_name(segment))?;
            path.push(parent);
        }
        let bound = key_len_bound(ctx, moved)?
            .map_or(KEY_LEN_MAX, |b| usize::try_from(b).unwrap_or(KEY_LEN_MAX));
        raise_key_len_bounds(
            ctx,
            &path,
            dest_parents,
            bound.saturating_add(dest_segment.len() + 1),
        )?;
        move_child(
            ctx,
            (source_parent, &directory_stored_name(source_segment)),
            (parent, &directory_stored_name(dest_segment)),
        )?;
        let source_found =
            resolve_directories(&ctx.children, root, &source_dirs[..source_dirs.len() - 1])?;
        prune_empty_directories(
            ctx,
            root,
            &source_dirs[..source_dirs.len() - 1],
            &source_found,
        )?;
        done(ctx, client_token.as_deref(), &used_for)
    }

    fn size_estimate(&self) -> usize {
        names_size(&self.source, &self.destination)
    }
}
