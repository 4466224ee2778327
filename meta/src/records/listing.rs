//! A listing page: what ListObjects asks and what it answers.

use serde::{Deserialize, Serialize};

use crate::records::object::VersionId;

/// One listing page request. `prefix`, `delimiter` and `start_after` are
/// raw (already URL-decoded) strings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRequest {
    pub prefix: String,
    /// Any non-empty string; `None` lists every key under the prefix.
    pub delimiter: Option<String>,
    /// Return only entries strictly greater than this. An entry is a key or
    /// a common prefix; a common prefix `cp` is skipped when `cp <= start_after`,
    /// so a page that ended on a common prefix resumes after everything under
    /// it (S3 v1 `marker`, v2 `start-after` and continuation token all map here).
    pub start_after: Option<String>,
    /// 0..=`limits::LIST_PAGE_MAX`; 0 returns an empty, untruncated page.
    pub max_keys: usize,
}

/// A listed object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
    pub storage_class: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListEntry {
    Object(ListedObject),
    /// A common prefix: the request prefix plus everything up to and
    /// including the first delimiter after it.
    CommonPrefix(String),
}

impl ListEntry {
    /// The key or common prefix this entry stands for.
    pub fn name(&self) -> &str {
        match self {
            ListEntry::Object(o) => &o.key,
            ListEntry::CommonPrefix(p) => p,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPage {
    /// Keys and common prefixes interleaved in strictly increasing byte order;
    /// at most `max_keys` of them together.
    pub entries: Vec<ListEntry>,
    /// More entries exist after the last one returned.
    pub is_truncated: bool,
}

/// One ListObjectVersions page request: raw (URL-decoded) strings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionListRequest {
    pub prefix: String,
    /// Any non-empty string; `None` lists every key under the prefix.
    pub delimiter: Option<String>,
    /// Start after this key (or common prefix), or, with
    /// `version_id_marker`, after that version of it.
    pub key_marker: Option<String>,
    pub version_id_marker: Option<VersionId>,
    /// 0..=`limits::LIST_PAGE_MAX`: versions, delete markers and common
    /// prefixes together.
    pub max_keys: usize,
}

/// A listed version or delete marker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedVersion {
    pub key: String,
    pub version_id: VersionId,
    /// The key's current version.
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
    pub storage_class: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionListEntry {
    Version(ListedVersion),
    CommonPrefix(String),
}

/// A ListObjectVersions page: keys in byte order, each key's versions
/// newest first, interleaved with common prefixes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionPage {
    pub entries: Vec<VersionListEntry>,
    /// More entries follow; the next page starts after the last entry
    /// (its key, and its version id if it is a version).
    pub is_truncated: bool,
}
