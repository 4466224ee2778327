//! Bucket lifecycle (see docs/design.md, "Lifecycle"): each bucket's
//! rules in `ns_bucket_lifecycle`, one command to set or remove them, and
//! the batches a background task proposes to apply them.
//!
//! [`LifecycleBatch`] walks a bucket's keys in order from a cursor, at most
//! `limit` keys per command, and decides inside the apply, from the "now"
//! and day length the command carries, what each enabled rule removes.
//! Every removal goes through `namespace::delete_key`, the path that
//! enforces Object Lock: a locked version is refused there, counted, and
//! skipped. [`LifecycleUploads`] aborts old multipart uploads the same
//! way. The cursor lives in the task, so a leader change restarts a pass,
//! which finds done work done.

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::context::ApplyContext;
use crate::error::{MetaError, Result};
use crate::limits::{
    LIFECYCLE_BATCH_MAX, LIFECYCLE_FILTER_TAGS_MAX, LIFECYCLE_RULE_ID_LEN_MAX, LIFECYCLE_RULES_MAX,
};
use crate::listing::list_versions_tree;
use crate::multipart::remove_upload;
use crate::namespace::{DeleteTarget, delete_key, versions_of};
use crate::op::{Apply, Outcome, Query, SIZE_BASE};
use crate::records::lifecycle::{
    LifecycleConfig, LifecycleFilter, LifecycleProgress, LifecycleRule, LifecycleRules,
};
use crate::records::listing::{VersionListEntry, VersionListRequest};
use crate::records::object::ObjectVersion;
use crate::records::upload::UploadRecord;
use crate::schema::{self, decode_record, encode_record, upload_index_prefix};
use crate::tree::{find_object, open_read, read_bucket};

/// Checks what the gateway already checked, so no command stores a
/// configuration the worker would misread.
fn validate(config: &LifecycleConfig) -> std::result::Result<(), MetaError> {
    if config.rules.is_empty() || config.rules.len() > LIFECYCLE_RULES_MAX {
        return Err(MetaError::InvalidRequest(format!(
            "a lifecycle configuration has 1 to {LIFECYCLE_RULES_MAX} rules"
        )));
    }
    let mut ids = std::collections::BTreeSet::new();
    for rule in &config.rules {
        if rule.id.len() > LIFECYCLE_RULE_ID_LEN_MAX {
            return Err(MetaError::InvalidRequest(format!(
                "a rule ID is at most {LIFECYCLE_RULE_ID_LEN_MAX} bytes"
            )));
        }
        if !rule.id.is_empty() && !ids.insert(rule.id.as_str()) {
            return Err(MetaError::InvalidRequest(format!(
                "rule ID {:?} is not unique",
                rule.id
            )));
        }
        if !rule.has_action() {
            return Err(MetaError::InvalidRequest(
                "a lifecycle rule names at least one action".to_owned(),
            ));
        }
    }
    Ok(())
}

/// Checks the filters of `config`'s rules (one each, in order) as the
/// gateway did.
fn validate_filters(
    config: &LifecycleConfig,
    filters: &[LifecycleFilter],
) -> std::result::Result<(), MetaError> {
    if filters.len() != config.rules.len() {
        return Err(MetaError::InvalidRequest(format!(
            "{} lifecycle filters for {} rules",
            filters.len(),
            config.rules.len()
        )));
    }
    for (rule, filter) in config.rules.iter().zip(filters) {
        if filter.tags.len() > LIFECYCLE_FILTER_TAGS_MAX {
            return Err(MetaError::InvalidRequest(format!(
                "a lifecycle filter has at most {LIFECYCLE_FILTER_TAGS_MAX} tags"
            )));
        }
        if filter.tags.iter().any(|(key, _)| key.is_empty())
            || !filter.tags.windows(2).all(|pair| match pair {
                [a, b] => a.0 < b.0,
                _ => true,
            })
        {
            return Err(MetaError::InvalidRequest(
                "lifecycle filter tags need unique, non-empty keys in order".to_owned(),
            ));
        }
        if let (Some(greater), Some(less)) = (filter.size_greater_than, filter.size_less_than)
            && greater >= less
        {
            return Err(MetaError::InvalidRequest(
                "a lifecycle filter's size range is empty".to_owned(),
            ));
        }
        let by_version = !filter.tags.is_empty()
            || filter.size_greater_than.is_some()
            || filter.size_less_than.is_some();
        if by_version && rule.abort_upload_days.is_some() {
            return Err(MetaError::InvalidRequest(
                "AbortIncompleteMultipartUpload takes no tag or size filter".to_owned(),
            ));
        }
        if !filter.tags.is_empty() && rule.expired_object_delete_marker {
            return Err(MetaError::InvalidRequest(
                "ExpiredObjectDeleteMarker takes no tag filter".to_owned(),
            ));
        }
    }
    Ok(())
}

/// Sets a bucket's lifecycle configuration, replacing any. `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutBucketLifecycle {
    pub bucket: String,
    pub config: LifecycleConfig,
}

impl Apply for PutBucketLifecycle {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        if read_bucket(&ctx.buckets, &self.bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(self.bucket.clone())));
        }
        if let Err(e) = validate(&self.config) {
            return Ok(Err(e));
        }
        ctx.bucket_lifecycle.insert(
            self.bucket.as_bytes(),
            encode_record(&self.config)?.as_slice(),
        )?;
        ctx.bucket_lifecycle_filters
            .remove(self.bucket.as_bytes())?;
        Ok(Ok(()))
    }

    fn size_estimate(&self) -> usize {
        SIZE_BASE
            .saturating_add(self.bucket.len())
            .saturating_add(rules_size(&self.config))
    }
}

fn rules_size(config: &LifecycleConfig) -> usize {
    config
        .rules
        .iter()
        .map(|r| r.id.len().saturating_add(r.prefix.len()).saturating_add(64))
        .sum()
}

/// Sets a bucket's lifecycle configuration whose rules filter by tag or
/// size too, replacing any. [`PutBucketLifecycle`] sets one of prefixes
/// only, a command every release applies; this one came later (see
/// docs/OPERATING.md, "Upgrading a metadata group"). `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutBucketLifecycleRules {
    pub bucket: String,
    pub rules: LifecycleRules,
}

impl Apply for PutBucketLifecycleRules {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        if read_bucket(&ctx.buckets, &self.bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(self.bucket.clone())));
        }
        let LifecycleRules { config, filters } = &self.rules;
        if let Err(e) = validate(config).and_then(|()| validate_filters(config, filters)) {
            return Ok(Err(e));
        }
        let name = self.bucket.as_bytes();
        ctx.bucket_lifecycle
            .insert(name, encode_record(config)?.as_slice())?;
        if filters.iter().all(LifecycleFilter::is_empty) {
            ctx.bucket_lifecycle_filters.remove(name)?;
        } else {
            ctx.bucket_lifecycle_filters
                .insert(name, encode_record(filters)?.as_slice())?;
        }
        Ok(Ok(()))
    }

    fn size_estimate(&self) -> usize {
        let tags: usize = self
            .rules
            .filters
            .iter()
            .flat_map(|f| &f.tags)
            .map(|(k, v)| k.len().saturating_add(v.len()).saturating_add(4))
            .sum();
        SIZE_BASE
            .saturating_add(self.bucket.len())
            .saturating_add(rules_size(&self.rules.config))
            .saturating_add(tags)
            .saturating_add(self.rules.filters.len().saturating_mul(24))
    }
}

/// Removes a bucket's lifecycle configuration, if any. `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteBucketLifecycle {
    pub bucket: String,
}

impl Apply for DeleteBucketLifecycle {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        if read_bucket(&ctx.buckets, &self.bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(self.bucket.clone())));
        }
        ctx.bucket_lifecycle.remove(self.bucket.as_bytes())?;
        ctx.bucket_lifecycle_filters
            .remove(self.bucket.as_bytes())?;
        Ok(Ok(()))
    }
}

/// Linearizable: the bucket's lifecycle configuration, if it has one.
/// `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBucketLifecycle {
    pub bucket: String,
}

impl Query for GetBucketLifecycle {
    type Reply = Option<LifecycleConfig>;
    const INLINE: bool = true;
    fn read(&self, txn: &ReadTransaction) -> Result<Option<LifecycleConfig>> {
        let Some(buckets) = open_read(txn, schema::BUCKETS)? else {
            return Err(MetaError::NoSuchBucket(self.bucket.clone()));
        };
        if read_bucket(&buckets, &self.bucket)?.is_none() {
            return Err(MetaError::NoSuchBucket(self.bucket.clone()));
        }
        let Some(table) = open_read(txn, schema::BUCKET_LIFECYCLE)? else {
            return Ok(None);
        };
        match table.get(self.bucket.as_bytes())? {
            Some(value) => Ok(Some(decode_record(value.value())?)),
            None => Ok(None),
        }
    }
}

/// Linearizable: the bucket's lifecycle rules with their filters, if it
/// has a configuration. `NoSuchBucket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBucketLifecycleRules {
    pub bucket: String,
}

impl Query for GetBucketLifecycleRules {
    type Reply = Option<LifecycleRules>;
    const INLINE: bool = true;
    fn read(&self, txn: &ReadTransaction) -> Result<Option<LifecycleRules>> {
        let Some(config) = (GetBucketLifecycle {
            bucket: self.bucket.clone(),
        })
        .read(txn)?
        else {
            return Ok(None);
        };
        let filters = match open_read(txn, schema::BUCKET_LIFECYCLE_FILTERS)? {
            Some(table) => match table.get(self.bucket.as_bytes())? {
                Some(value) => decode_record(value.value())?,
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        Ok(Some(LifecycleRules { config, filters }))
    }
}

/// Linearizable: the buckets that have a lifecycle configuration with an
/// enabled rule, in name order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleBuckets;

impl Query for LifecycleBuckets {
    type Reply = Vec<String>;
    fn read(&self, txn: &ReadTransaction) -> Result<Vec<String>> {
        let Some(table) = open_read(txn, schema::BUCKET_LIFECYCLE)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.range::<&[u8]>(..)? {
            let (key, value) = row?;
            let config: LifecycleConfig = decode_record(value.value())?;
            if config.rules.iter().any(|r| r.enabled) {
                let name = String::from_utf8(key.value().to_vec())
                    .map_err(|_| MetaError::Corrupt("a bucket name not UTF-8".to_owned()))?;
                out.push(name);
            }
        }
        Ok(out)
    }
}

/// How old something is at `now_ms`, in whole days of `day_ms`.
fn older_than(since_ms: i64, days: u32, now_ms: i64, day_ms: i64) -> bool {
    let age = i64::from(days).saturating_mul(day_ms);
    now_ms.saturating_sub(since_ms) >= age
}

fn checked_batch(limit: u32, day_ms: i64) -> std::result::Result<(), MetaError> {
    if limit == 0 || limit > LIFECYCLE_BATCH_MAX {
        return Err(MetaError::InvalidRequest(format!(
            "a lifecycle batch of {limit} (1..={LIFECYCLE_BATCH_MAX})"
        )));
    }
    if day_ms <= 0 {
        return Err(MetaError::InvalidRequest(format!(
            "a lifecycle day of {day_ms} ms"
        )));
    }
    Ok(())
}

/// `bucket`'s rules and their filters, if it has a configuration.
fn rules_of(ctx: &ApplyContext<'_>, bucket: &str) -> Result<Option<LifecycleRules>> {
    let Some(value) = ctx.bucket_lifecycle.get(bucket.as_bytes())? else {
        return Ok(None);
    };
    let config = decode_record(value.value())?;
    let filters = match ctx.bucket_lifecycle_filters.get(bucket.as_bytes())? {
        Some(value) => decode_record(value.value())?,
        None => Vec::new(),
    };
    Ok(Some(LifecycleRules { config, filters }))
}

/// Applies `bucket`'s enabled rules to at most `limit` keys after `after`
/// (from the first key without one), with "now" and the length of a day
/// as the proposer gives them; replies what it did and the key to go on
/// after. A bucket without a configuration (or gone) has nothing to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleBatch {
    pub bucket: String,
    pub after: Option<String>,
    pub limit: u32,
    pub now_ms: i64,
    pub day_ms: i64,
}

impl Apply for LifecycleBatch {
    type Reply = LifecycleProgress;

    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<LifecycleProgress>> {
        if let Err(e) = checked_batch(self.limit, self.day_ms) {
            return Ok(Err(e));
        }
        let mut progress = LifecycleProgress::default();
        let Some(bucket_record) = read_bucket(&ctx.buckets, &self.bucket)? else {
            return Ok(Ok(progress));
        };
        let Some(all) = rules_of(ctx, &self.bucket)? else {
            return Ok(Ok(progress));
        };
        let rules: Vec<(&LifecycleRule, &LifecycleFilter)> =
            all.iter().filter(|(r, _)| r.enabled).collect();
        if rules.is_empty() {
            return Ok(Ok(progress));
        }
        let request = VersionListRequest {
            prefix: String::new(),
            delimiter: None,
            key_marker: self.after.clone(),
            version_id_marker: None,
            max_keys: usize::try_from(self.limit).unwrap_or(usize::MAX),
        };
        let page = list_versions_tree(
            &ctx.children,
            &ctx.versions,
            bucket_record.root,
            &request,
            request.max_keys,
        )?;
        let mut keys: Vec<String> = Vec::new();
        for entry in page.entries {
            if let VersionListEntry::Version(version) = entry
                && keys.last() != Some(&version.key)
            {
                keys.push(version.key);
            }
        }
        for key in &keys {
            progress.keys = progress.keys.saturating_add(1);
            for (rule, filter) in rules
                .iter()
                .filter(|(r, _)| key.starts_with(r.prefix.as_str()))
            {
                self.apply_rule(ctx, bucket_record.root, key, rule, filter, &mut progress)?;
            }
        }
        if page.is_truncated {
            progress.next = keys.last().cloned();
        }
        Ok(Ok(progress))
    }

    fn size_estimate(&self) -> usize {
        SIZE_BASE
            .saturating_add(self.bucket.len())
            .saturating_add(self.after.as_ref().map_or(0, String::len))
    }
}

impl LifecycleBatch {
    /// The versions of `key`, newest first (none once it left the tree).
    fn versions(ctx: &ApplyContext<'_>, root: u64, key: &str) -> Result<Vec<ObjectVersion>> {
        match find_object(&ctx.children, root, key)? {
            Some(entry) => versions_of(&ctx.versions, entry.inode),
            None => Ok(Vec::new()),
        }
    }

    /// Deletes one version of `key` through the path that enforces Object
    /// Lock; true if it went, false if a lock kept it.
    fn delete_version(
        &self,
        ctx: &mut ApplyContext<'_>,
        key: &str,
        version: &ObjectVersion,
        progress: &mut LifecycleProgress,
    ) -> Result<bool> {
        let target = DeleteTarget {
            key: key.to_owned(),
            version_id: Some(version.version_id()),
            condition: None,
            bypass_governance: false,
        };
        match delete_key(ctx, &self.bucket, &target, self.now_ms)? {
            Ok(_) => {
                progress.versions_deleted = progress.versions_deleted.saturating_add(1);
                Ok(true)
            }
            Err(MetaError::ObjectLocked(_)) => {
                progress.locked = progress.locked.saturating_add(1);
                Ok(false)
            }
            // Refused before anything changed: skipped, as a lock is.
            Err(_) => {
                progress.refused = progress.refused.saturating_add(1);
                Ok(false)
            }
        }
    }

    fn apply_rule(
        &self,
        ctx: &mut ApplyContext<'_>,
        root: u64,
        key: &str,
        rule: &LifecycleRule,
        filter: &LifecycleFilter,
        progress: &mut LifecycleProgress,
    ) -> Result<()> {
        let (now_ms, day_ms) = (self.now_ms, self.day_ms);
        // Noncurrent versions: version i (newest first) became noncurrent
        // when version i - 1 was written.
        if let Some(days) = rule.noncurrent_days {
            let versions = Self::versions(ctx, root, key)?;
            let keep =
                usize::try_from(rule.newer_noncurrent_versions.unwrap_or(0)).unwrap_or(usize::MAX);
            let doomed: Vec<ObjectVersion> = versions
                .windows(2)
                .enumerate()
                .filter_map(|(noncurrent_rank, pair)| match pair {
                    [newer, older]
                        if noncurrent_rank >= keep
                            && older_than(newer.last_modified_ms, days, now_ms, day_ms)
                            && filter.matches(older.size, &older.tags) =>
                    {
                        Some(older.clone())
                    }
                    _ => None,
                })
                .collect();
            for version in &doomed {
                self.delete_version(ctx, key, version, progress)?;
            }
        }
        // The current version.
        if rule.expiration_days.is_some() || rule.expiration_date_ms.is_some() {
            let versions = Self::versions(ctx, root, key)?;
            if let Some(current) = versions.first()
                && !current.stamp.delete_marker
                && filter.matches(current.size, &current.tags)
            {
                let by_days = rule
                    .expiration_days
                    .is_some_and(|days| older_than(current.last_modified_ms, days, now_ms, day_ms));
                let by_date = rule.expiration_date_ms.is_some_and(|date| date <= now_ms);
                if by_days || by_date {
                    let target = DeleteTarget {
                        key: key.to_owned(),
                        version_id: None,
                        condition: None,
                        bypass_governance: false,
                    };
                    match delete_key(ctx, &self.bucket, &target, now_ms)? {
                        Ok(_) => progress.expired = progress.expired.saturating_add(1),
                        // Refused before anything changed: skipped.
                        Err(_) => progress.refused = progress.refused.saturating_add(1),
                    }
                }
            }
        }
        // A delete marker left alone.
        if rule.expired_object_delete_marker {
            let versions = Self::versions(ctx, root, key)?;
            if let [only] = versions.as_slice()
                && only.stamp.delete_marker
                && filter.matches(only.size, &only.tags)
            {
                self.delete_version(ctx, key, only, progress)?;
            }
        }
        Ok(())
    }
}

/// Aborts at most `limit` of `bucket`'s multipart uploads that an enabled
/// rule's AbortIncompleteMultipartUpload covers (key under its prefix,
/// initiated at least its days before `now_ms`); replies how many.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleUploads {
    pub bucket: String,
    pub limit: u32,
    pub now_ms: i64,
    pub day_ms: i64,
}

impl Apply for LifecycleUploads {
    type Reply = u32;

    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<u32>> {
        if let Err(e) = checked_batch(self.limit, self.day_ms) {
            return Ok(Err(e));
        }
        let Some(all) = rules_of(ctx, &self.bucket)? else {
            return Ok(Ok(0));
        };
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let bucket_prefix = upload_index_prefix(&self.bucket);
        let mut doomed: Vec<UploadRecord> = Vec::new();
        for (rule, filter) in all.iter().filter(|(r, _)| r.enabled) {
            let Some(days) = rule.abort_upload_days else {
                continue;
            };
            // Refused when the rule is set (an upload has no tags or size
            // yet); skipped rather than applied too widely.
            if !filter.tags.is_empty()
                || filter.size_greater_than.is_some()
                || filter.size_less_than.is_some()
            {
                continue;
            }
            let mut start = bucket_prefix.clone();
            start.extend_from_slice(rule.prefix.as_bytes());
            for row in ctx.upload_index.range::<&[u8]>(start.as_slice()..)? {
                if doomed.len() >= limit {
                    break;
                }
                let (index_key, _) = row?;
                let index_key = index_key.value();
                if !index_key.starts_with(&start) {
                    break;
                }
                let id: [u8; 16] = index_key
                    .len()
                    .checked_sub(16)
                    .and_then(|at| index_key.get(at..))
                    .and_then(|id| id.try_into().ok())
                    .ok_or_else(|| MetaError::Corrupt("a short upload index key".to_owned()))?;
                let Some(value) = ctx.uploads.get(id.as_slice())? else {
                    return Err(MetaError::Corrupt(
                        "an upload index row without its upload".to_owned(),
                    ));
                };
                let upload: UploadRecord = decode_record(value.value())?;
                if older_than(upload.initiated_ms, days, self.now_ms, self.day_ms)
                    && !doomed.iter().any(|d| d.upload_id == upload.upload_id)
                {
                    doomed.push(upload);
                }
            }
        }
        for upload in &doomed {
            remove_upload(ctx, upload)?;
        }
        Ok(Ok(u32::try_from(doomed.len()).unwrap_or(u32::MAX)))
    }

    fn size_estimate(&self) -> usize {
        SIZE_BASE.saturating_add(self.bucket.len())
    }
}
