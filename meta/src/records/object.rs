//! Records the namespace stores: buckets, object versions and their chunks.
//! These types cross crate boundaries (gateway, chunkstore) and travel in
//! Raft commands, so they are plain serde data.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::Entropy;
use crate::records::access::CannedAcl;
use crate::records::timed_id;

/// A chunk's 128-bit id, chosen by the writer before the chunk is written:
/// 48 bits of creation time (milliseconds since the Unix epoch, big-endian,
/// so ids sort by age) and 80 random bits. Chunks are immutable: one id
/// names one content forever. The creation time is what orphan collection
/// reasons about (see `chunks`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChunkId(pub [u8; 16]);

impl ChunkId {
    /// A new id created now, on the system clock and the OS's generator
    /// (tools and tests; servers use [`ChunkId::new`] with their seams).
    pub fn generate() -> Self {
        ChunkId::new(crate::clock::now_ms(), &crate::clock::OsEntropy)
    }
    /// A new id with creation time `ms` (clamped to 48 bits), drawing its
    /// random bits from the OS's generator.
    pub fn created_at(ms: i64) -> Self {
        ChunkId::new(ms, &crate::clock::OsEntropy)
    }
    /// A new id with creation time `ms` (clamped to 48 bits) and random
    /// bits from `entropy`.
    pub fn new(ms: i64, entropy: &dyn Entropy) -> Self {
        ChunkId(timed_id::make(ms, entropy))
    }
    /// When the id was generated, in milliseconds since the Unix epoch.
    pub fn created_ms(&self) -> i64 {
        timed_id::millis(&self.0)
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        timed_id::from_hex(s).map(ChunkId)
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", self.to_hex())
    }
}

/// An expectation on the current version of a key, checked inside apply
/// (compare-and-swap; docs/design.md, Conditional writes and the overwrite
/// policy).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteCondition {
    #[default]
    None,
    /// `If-None-Match: *`: the key must not exist.
    IfNoneMatchAny,
    /// `If-Match: <etag>` (hex, no quotes): the key must exist with this ETag.
    IfMatch(String),
}

/// An expectation a conditional delete has of the current version of a
/// key (`If-Match` on DeleteObject, `<ETag>` in DeleteObjects), checked
/// inside apply. A key without a current version fails either one with
/// `NoSuchKey`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeleteCondition {
    /// `If-Match: *`: the key must exist.
    Exists,
    /// `If-Match: <etag>` (no quotes): the key must exist with this ETag.
    ETag(String),
}

/// Who owns the chunks a new version references.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkOwnership {
    /// Written for this command: none may be referenced yet.
    Fresh,
    /// Shared with existing versions or parts: every one must still be
    /// referenced, else the command is refused (a chunk whose count reached
    /// zero may already be deleted, and is never referenced again).
    Shared,
}

/// What a rename expects of an object's current version (AWS's
/// `x-amz-rename-source-if-*` for the source, `If-*` for the
/// destination). Times are milliseconds since the epoch; an object's
/// last-modified time counts in whole seconds, as HTTP dates do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectCondition {
    /// The ETag (hex, no quotes) it must have; `*`: it must exist.
    pub if_match: Option<String>,
    /// The ETag it must not have; `*`: it must not exist.
    pub if_none_match: Option<String>,
    pub if_modified_since_ms: Option<i64>,
    pub if_unmodified_since_ms: Option<i64>,
}

#[cfg(test)]
mod version_id_tests {
    use super::{VersionId, VersionStamp};

    #[test]
    fn version_ids_round_trip_and_refuse_what_arbor_never_issues() {
        let id = VersionId::of(
            0x1234,
            &VersionStamp {
                position: 7,
                ..Default::default()
            },
        );
        assert_eq!(id.to_string(), "000000000000123400000007");
        assert_eq!(VersionId::parse(&id.to_string()), Some(id));
        assert_eq!(VersionId::parse("null"), Some(VersionId::Null));
        let null = VersionStamp {
            null: true,
            ..Default::default()
        };
        assert_eq!(VersionId::of(5, &null).to_string(), "null");
        for bad in [
            "",
            "NULL",
            "abc",
            "00000000000012340000000g",
            "+00000000001234000000007",
        ] {
            assert_eq!(VersionId::parse(bad), None, "{bad:?}");
        }
    }
}

#[cfg(test)]
mod chunk_id_tests {
    use super::ChunkId;

    #[test]
    fn ids_carry_their_creation_time_and_sort_by_it() {
        let early = ChunkId::created_at(1_700_000_000_000);
        let late = ChunkId::created_at(1_700_000_000_001);
        assert_eq!(early.created_ms(), 1_700_000_000_000);
        assert!(early < late);
        assert_ne!(
            ChunkId::created_at(5),
            ChunkId::created_at(5),
            "random tail"
        );
        assert_eq!(ChunkId::created_at(-1).created_ms(), 0);
        let now = ChunkId::generate().created_ms();
        assert!(now > 1_700_000_000_000);
    }
}

/// One chunk of an object: its bytes are object bytes `offset..offset+size`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: ChunkId,
    /// Offset of the chunk's first byte within the object.
    pub offset: u64,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// Where an object's bytes live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectData {
    /// Small objects (≤ `limits::INLINE_OBJECT_SIZE_MAX`) live in the record.
    Inline(#[serde(with = "super::byte_vec")] Vec<u8>),
    /// Chunks in object order; offsets are contiguous from 0 to `size`.
    Chunks(Vec<ChunkRef>),
}

/// The standard HTTP headers S3 stores with an object and returns on GET/HEAD.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    /// Kept verbatim as the client sent it (an HTTP date).
    pub expires: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

/// An additional checksum (`x-amz-checksum-*`) stored with an object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectChecksum {
    pub algorithm: ChecksumAlgorithm,
    /// Base64 of the checksum bytes, as S3 transmits it (multipart composite
    /// checksums carry their `-N` suffix here).
    pub value: String,
    /// FULL_OBJECT (true) or COMPOSITE (false).
    pub full_object: bool,
    /// The parts' checksums (base64, same algorithm), in part order, for an
    /// object made of parts (multipart or appended) when every part had
    /// one; empty otherwise. GetObjectAttributes returns them per part.
    pub parts: Vec<String>,
}

/// One committed version of an object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectVersion {
    /// The Raft log index of the commit that created this version. Assigned
    /// by the state machine; ignored (send 0) in a proposal.
    pub generation: u64,
    pub size: u64,
    /// Hex ETag without quotes (`-N` suffix for multipart objects).
    pub etag: String,
    /// Chosen by the proposer before the command enters the log (apply
    /// reads no clock), milliseconds since the Unix epoch.
    pub last_modified_ms: i64,
    pub headers: ObjectHeaders,
    /// `x-amz-meta-*` pairs, names lowercased without the prefix, sorted.
    pub user_metadata: Vec<(String, String)>,
    pub checksum: Option<ObjectChecksum>,
    pub storage_class: Option<String>,
    /// Sizes of the parts of a multipart object, in order (GetObject with
    /// `partNumber` reads one); empty for an object uploaded in one piece.
    pub parts: Vec<u64>,
    /// Object tags (key, value), sorted by key; at most 10.
    pub tags: Vec<(String, String)>,
    /// The version's ACL (PutObject's `x-amz-acl`, PutObjectAcl): a
    /// version's own, not inherited by copies.
    pub acl: CannedAcl,
    pub data: ObjectData,
    /// What names the version beside its generation, and whether it is a
    /// delete marker. Assigned by the state machine; send
    /// `VersionStamp::default()` in a proposal.
    pub stamp: VersionStamp,
}

/// A version's identity beside its generation (docs/design.md,
/// "Versioning").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionStamp {
    /// The committing command's position within its log entry.
    pub position: u32,
    /// The version's id is `null`: it was written while the bucket's
    /// versioning was off or suspended, and the next such write replaces it.
    pub null: bool,
    /// A delete marker: no data, and a key whose current version is one
    /// does not exist for reads and listings.
    pub delete_marker: bool,
}

/// A version id as S3 clients see it: `null`, or the generation and
/// position of the version in 24 hex digits (so ids of one key sort by
/// age, and stay the same across renames).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VersionId {
    Null,
    At { generation: u64, position: u32 },
}

impl VersionId {
    /// The id of the version written at `generation`/`position`.
    pub fn of(generation: u64, stamp: &VersionStamp) -> VersionId {
        if stamp.null {
            VersionId::Null
        } else {
            VersionId::At {
                generation,
                position: stamp.position,
            }
        }
    }

    /// Parses an id a client sent; `None` if it cannot be one Arbor issued.
    pub fn parse(s: &str) -> Option<VersionId> {
        if s == "null" {
            return Some(VersionId::Null);
        }
        if s.len() != 24 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let generation = u64::from_str_radix(s.get(..16)?, 16).ok()?;
        let position = u32::from_str_radix(s.get(16..)?, 16).ok()?;
        Some(VersionId::At {
            generation,
            position,
        })
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionId::Null => f.write_str("null"),
            VersionId::At {
                generation,
                position,
            } => write!(f, "{generation:016x}{position:08x}"),
        }
    }
}

/// What a DeleteObject did: removed the key (unversioned bucket), added a
/// delete marker, or removed the version it named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteOutcome {
    /// The marker added or the version named (`None` in an unversioned
    /// bucket, where nothing is named).
    pub version_id: Option<VersionId>,
    /// A delete marker was added, or the version removed was one.
    pub delete_marker: bool,
}

/// Object Lock retention modes: GOVERNANCE yields to a request that
/// bypasses it; COMPLIANCE to nothing until its date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockMode {
    Governance,
    Compliance,
}

/// A version's retention: it cannot be deleted before `until_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub mode: LockMode,
    /// Milliseconds since the Unix epoch.
    pub until_ms: i64,
}

/// What holds a version in an Object Lock bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionLock {
    pub retention: Option<Retention>,
    pub legal_hold: LegalHold,
}

/// A version's legal hold. Was a `bool` (false, true), which postcard
/// writes as the bytes 0 and 1, the indexes of `Never` and `On`: records
/// and replies written before `Off` existed decode as they were.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegalHold {
    /// Never set (or set OFF by a release before `Off`, or by a write's
    /// `x-amz-object-lock-legal-hold: OFF`): GetObjectLegalHold finds none.
    #[default]
    Never,
    On,
    /// Lifted by PutObjectLegalHold OFF ([`crate::namespace::ReleaseObjectLegalHold`]).
    Off,
}

impl LegalHold {
    /// `On` for true, else never set: what a write's lock headers and the
    /// first released PutObjectLegalHold command record.
    pub fn of(on: bool) -> LegalHold {
        if on { LegalHold::On } else { LegalHold::Never }
    }

    pub fn is_on(self) -> bool {
        self == LegalHold::On
    }
}

impl VersionLock {
    /// Why the version cannot be deleted at `now_ms`, if it cannot: a
    /// legal hold, a COMPLIANCE retention, or a GOVERNANCE one not
    /// bypassed.
    pub fn refusal(&self, now_ms: i64, bypass_governance: bool) -> Option<&'static str> {
        if self.legal_hold.is_on() {
            return Some("it is under a legal hold");
        }
        match self.retention {
            Some(r) if r.until_ms > now_ms && r.mode == LockMode::Compliance => {
                Some("it is under COMPLIANCE retention")
            }
            Some(r) if r.until_ms > now_ms && !bypass_governance => {
                Some("it is under GOVERNANCE retention")
            }
            _ => None,
        }
    }
}

/// A bucket's Object Lock configuration; a bucket without one has Object
/// Lock disabled. Once enabled it stays, and versioning stays enabled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLockConfig {
    /// The retention every new version gets: its mode and length in days.
    pub default: Option<(LockMode, u32)>,
}

/// A bucket's Object Lock rule as PutObjectLockConfiguration gave it: the
/// configuration, and the default retention's length in years when the
/// client named years (`config` then holds 365 days a year, what older
/// releases read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLockRule {
    pub config: ObjectLockConfig,
    pub years: Option<u32>,
}

const MS_PER_DAY: i64 = 86_400_000;

/// The instant `years` calendar years after `ms` (UTC): the same time of
/// day on the same month and day, where 29 February of a year that is
/// not a leap year is 1 March, so a retention in years never ends before
/// the anniversary. Saturates at the ends of `i64`.
pub fn years_later_ms(ms: i64, years: u32) -> i64 {
    let days = ms.div_euclid(MS_PER_DAY);
    let time_of_day = ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let target = year.saturating_add(i64::from(years));
    let later = if month == 2 && day == 29 && !is_leap(target) {
        days_from_civil(target, 3, 1)
    } else {
        days_from_civil(target, month, day)
    };
    later.saturating_mul(MS_PER_DAY).saturating_add(time_of_day)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month 1..=12, day 1..=31)
/// of a day count from 1970-01-01 (H. Hinnant's `civil_from_days`). The
/// gateway writes its timestamps with it.
#[inline]
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod calendar_tests {
    use super::{civil_from_days, days_from_civil, years_later_ms};

    const DAY: i64 = 86_400_000;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn years_are_calendar_years() {
        // 2027-03-10T12:34:56.789Z
        let ms = days_from_civil(2027, 3, 10) * DAY + 45_296_789;
        let later = years_later_ms(ms, 1);
        assert_eq!(later, days_from_civil(2028, 3, 10) * DAY + 45_296_789);
        assert_eq!(later - ms, 366 * DAY, "a year over 29 February 2028");
        assert_eq!(
            years_later_ms(days_from_civil(2026, 1, 5) * DAY, 1),
            days_from_civil(2027, 1, 5) * DAY,
            "365 days otherwise"
        );
        // 29 February: to 1 March, never before the anniversary.
        let leap_day = days_from_civil(2028, 2, 29) * DAY + 1;
        assert_eq!(
            years_later_ms(leap_day, 1),
            days_from_civil(2029, 3, 1) * DAY + 1
        );
        assert_eq!(
            years_later_ms(leap_day, 4),
            days_from_civil(2032, 2, 29) * DAY + 1
        );
        assert_eq!(years_later_ms(ms, 0), ms);
        assert_eq!(
            years_later_ms(ms, 100),
            ms + 36_524 * DAY,
            "2100 is no leap year"
        );
        // Before the epoch too (a clock set wrong must not panic).
        assert_eq!(years_later_ms(-DAY, 1), days_from_civil(1970, 12, 31) * DAY);
        assert_eq!(years_later_ms(i64::MAX - 5, u32::MAX), i64::MAX);
    }
}

/// A bucket's versioning state (PutBucketVersioning). A bucket starts
/// unversioned; once enabled it can be suspended, never unversioned again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    #[default]
    Unversioned,
    Enabled,
    Suspended,
}

impl ObjectVersion {
    /// The id clients name this version by.
    pub fn version_id(&self) -> VersionId {
        VersionId::of(self.generation, &self.stamp)
    }

    /// Chunks this version references (empty for inline objects).
    pub fn chunks(&self) -> &[ChunkRef] {
        match &self.data {
            ObjectData::Inline(_) => &[],
            ObjectData::Chunks(c) => c,
        }
    }
}

/// A bucket as listed by ListBuckets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketInfo {
    pub name: String,
    pub created_ms: i64,
    pub overwrite: OverwritePolicy,
}

/// What a write to an existing key needs, per bucket: last writer wins,
/// or the bucket owner refuses to lose a write (docs/design.md, Conditional
/// writes and the overwrite policy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverwritePolicy {
    /// Any write replaces the current version (S3's behaviour).
    #[default]
    Allow,
    /// Replacing an existing object needs `If-Match` naming its ETag.
    Conditional,
    /// Write-once: an existing object is never replaced (it may be deleted).
    Deny,
}

impl OverwritePolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            OverwritePolicy::Allow => "allow",
            OverwritePolicy::Conditional => "conditional",
            OverwritePolicy::Deny => "deny",
        }
    }
    pub fn parse(s: &str) -> Option<OverwritePolicy> {
        [
            OverwritePolicy::Allow,
            OverwritePolicy::Conditional,
            OverwritePolicy::Deny,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}
