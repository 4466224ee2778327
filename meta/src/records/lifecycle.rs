//! A bucket's lifecycle configuration, as the gateway has checked it (see
//! docs/design.md, "Lifecycle").

use serde::{Deserialize, Serialize};

/// The rules of one bucket, at most `limits::LIFECYCLE_RULES_MAX`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleConfig {
    pub rules: Vec<LifecycleRule>,
}

/// One rule: the keys it covers (by prefix) and what happens to them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    /// The rule's ID (unique within the configuration; may be empty).
    pub id: String,
    /// Status Enabled; a disabled rule is kept but never applied.
    pub enabled: bool,
    /// Keys starting with this (empty: every key).
    pub prefix: String,
    /// The prefix came as the rule's own `<Prefix>` (the older form),
    /// not in a `<Filter>`: GetBucketLifecycleConfiguration answers it so.
    pub legacy_prefix: bool,
    /// Current versions this many days old expire.
    pub expiration_days: Option<u32>,
    /// Current versions expire from this time on (milliseconds).
    pub expiration_date_ms: Option<i64>,
    /// A delete marker that is its key's only version is removed.
    pub expired_object_delete_marker: bool,
    /// Noncurrent versions noncurrent for this many days are deleted...
    pub noncurrent_days: Option<u32>,
    /// ...except this many newest noncurrent ones.
    pub newer_noncurrent_versions: Option<u32>,
    /// Multipart uploads initiated this many days ago are aborted.
    pub abort_upload_days: Option<u32>,
}

impl LifecycleRule {
    /// Whether the rule names any action Arbor takes.
    pub fn has_action(&self) -> bool {
        self.expiration_days.is_some()
            || self.expiration_date_ms.is_some()
            || self.expired_object_delete_marker
            || self.noncurrent_days.is_some()
            || self.abort_upload_days.is_some()
    }
}

/// What a rule's `<Filter>` asks of a version beside its key's prefix:
/// tags and a size range (docs/design.md, "Lifecycle"). Kept beside the
/// rules, not in [`LifecycleRule`], whose record older releases read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleFilter {
    /// Tags a version must carry, key and value exactly (a tag given
    /// without a value matches the empty value); unique keys, sorted.
    pub tags: Vec<(String, String)>,
    /// Only versions of more bytes than this.
    pub size_greater_than: Option<u64>,
    /// Only versions of fewer bytes than this.
    pub size_less_than: Option<u64>,
    /// The filter came as `<And>`: GetBucketLifecycleConfiguration answers
    /// it so.
    pub and: bool,
}

impl LifecycleFilter {
    /// A filter that asks nothing beyond the rule's prefix.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
            && self.size_greater_than.is_none()
            && self.size_less_than.is_none()
            && !self.and
    }

    /// Whether a version of `size` bytes carrying `tags` (sorted by key, as
    /// versions keep them) passes the filter.
    pub fn matches(&self, size: u64, tags: &[(String, String)]) -> bool {
        self.size_greater_than.is_none_or(|bound| size > bound)
            && self.size_less_than.is_none_or(|bound| size < bound)
            && self.tags.iter().all(|(key, value)| {
                tags.binary_search_by(|(k, _)| k.as_str().cmp(key.as_str()))
                    .is_ok_and(|at| tags.get(at).is_some_and(|(_, v)| v == value))
            })
    }
}

/// A bucket's rules with their filters, `filters[i]` rule `i`'s.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRules {
    pub config: LifecycleConfig,
    pub filters: Vec<LifecycleFilter>,
}

impl LifecycleRules {
    /// Each rule with its filter (the empty one where none is stored).
    pub fn iter(&self) -> impl Iterator<Item = (&LifecycleRule, &LifecycleFilter)> {
        static EMPTY: LifecycleFilter = LifecycleFilter {
            tags: Vec::new(),
            size_greater_than: None,
            size_less_than: None,
            and: false,
        };
        self.config
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| (rule, self.filters.get(i).unwrap_or(&EMPTY)))
    }
}

/// What one lifecycle batch did, and where the next one starts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleProgress {
    /// Keys looked at.
    pub keys: u32,
    /// Current versions expired (deleted, or hidden by a delete marker).
    pub expired: u32,
    /// Noncurrent versions and delete markers deleted.
    pub versions_deleted: u32,
    /// Versions a rule would delete that Object Lock keeps.
    pub locked: u32,
    /// Removals the delete path refused for another reason (none are
    /// expected): skipped, the key is tried again next pass.
    pub refused: u32,
    /// Multipart uploads aborted.
    pub uploads_aborted: u32,
    /// The last key looked at, when keys remain after it.
    pub next: Option<String>,
}
