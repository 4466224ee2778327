//! Multipart upload records: the upload, its parts, and the pages of
//! ListParts and ListMultipartUploads.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::Entropy;
use crate::records::access::CannedAcl;
use crate::records::object::{
    ChecksumAlgorithm, ChunkRef, ObjectChecksum, ObjectHeaders, VersionLock,
};
use crate::records::timed_id;

/// An upload id: 48 bits of milliseconds since the epoch, then 80 random
/// bits, chosen by the proposer. Ids sort by initiation time (ULID-like).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UploadId(pub [u8; 16]);

impl UploadId {
    /// A new id initiated at `now_ms`, with random bits from the OS.
    pub fn new(now_ms: i64) -> UploadId {
        UploadId::with_entropy(now_ms, &crate::clock::OsEntropy)
    }
    /// A new id initiated at `now_ms`, with random bits from `entropy`.
    pub fn with_entropy(now_ms: i64, entropy: &dyn Entropy) -> UploadId {
        UploadId(timed_id::make(now_ms, entropy))
    }
    /// The milliseconds the id was made at.
    pub fn millis(&self) -> i64 {
        timed_id::millis(&self.0)
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn parse(s: &str) -> Option<UploadId> {
        timed_id::from_hex(s).map(UploadId)
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UploadId({})", self.to_hex())
    }
}

/// An in-progress upload: what CreateMultipartUpload recorded for the object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub upload_id: UploadId,
    pub bucket: String,
    pub key: String,
    pub initiated_ms: i64,
    pub headers: ObjectHeaders,
    pub user_metadata: Vec<(String, String)>,
    pub storage_class: Option<String>,
    /// The checksum algorithm the client declared, and whether it asked for
    /// a full-object (true) or composite (false) checksum.
    pub checksum: Option<(ChecksumAlgorithm, bool)>,
    /// Tags the completed object gets (`x-amz-tagging` on Create).
    pub tags: Vec<(String, String)>,
    /// The lock the completed object gets (`x-amz-object-lock-*` on
    /// Create), set by CompleteMultipartUpload's command.
    pub lock: Option<VersionLock>,
    /// The ACL the completed object gets (`x-amz-acl` on Create).
    pub acl: CannedAcl,
}

/// One uploaded part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub part_number: u32,
    pub size: u64,
    /// Hex MD5 of the part's bytes.
    pub etag: String,
    pub last_modified_ms: i64,
    pub checksum: Option<ObjectChecksum>,
    /// Offsets relative to the part's first byte.
    pub chunks: Vec<ChunkRef>,
}

/// A completed upload, remembered (`ns_completed_uploads`) so a retried
/// CompleteMultipartUpload with the same part list answers as the first
/// one did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedUpload {
    pub upload_id: UploadId,
    pub bucket: String,
    pub key: String,
    /// [`crate::multipart::parts_digest`] of the part list that completed it.
    pub parts_digest: [u8; 16],
    /// The object's ETag and checksum as the completion made them.
    pub etag: String,
    pub checksum: Option<ObjectChecksum>,
}

/// One entry of CompleteMultipartUpload's part list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedPart {
    pub part_number: u32,
    /// Hex, no quotes.
    pub etag: String,
    /// The part's checksum value, when the proposer knows it: checked
    /// against the stored part so the composite checksum it computed from
    /// these values is the object's.
    pub checksum: Option<String>,
}

/// A page of ListParts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartsPage {
    pub parts: Vec<PartRecord>,
    pub is_truncated: bool,
}

/// ListMultipartUploads parameters (raw strings).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListUploadsRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: Option<String>,
    pub upload_id_marker: Option<UploadId>,
    pub max_uploads: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[expect(
    clippy::large_enum_variant,
    reason = "a listing page holds at most 1000; most entries are uploads"
)]
pub enum UploadEntry {
    Upload(UploadRecord),
    CommonPrefix(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadsPage {
    pub entries: Vec<UploadEntry>,
    pub is_truncated: bool,
}
