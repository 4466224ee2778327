//! Multipart uploads: the upload and part records, their reads, and the
//! mutations applied by the state machine.
//!
//! A part is a chunk list (offsets relative to the part). Complete checks
//! the client's list against the stored parts and, in one command,
//! concatenates their chunk lists with corrected offsets into a new object
//! version: no byte is copied. Parts left out, replaced parts, aborted and
//! expired uploads go to the GC queue. In-progress uploads live in their own
//! tables and create no directories, so listings never see them.

use std::fmt;

use md5::{Digest, Md5};
use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::chunks::{ChunkPlacement, check_placements};
use crate::command::{ChunkOwnership, CommandResult, Reply, WriteCondition};
use crate::error::{MetaError, Result};
use crate::keys::{prefix_successor, validate_key};
use crate::limits::{PART_NUMBER_MAX, PART_SIZE_MIN};
use crate::namespace::{NamespaceTables, open_read, read_bucket};
use crate::object::{ChunkId, ChunkRef, ObjectChecksum, ObjectData, ObjectHeaders, ObjectVersion};
use crate::schema::{
    self, GcOrigin, decode_record, encode_record, part_key, upload_index_key, upload_index_prefix,
};

/// An upload id: 48 bits of milliseconds since the epoch, then 80 random
/// bits, chosen by the proposer. Ids sort by initiation time (ULID-like).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UploadId(pub [u8; 16]);

impl UploadId {
    pub fn new(now_ms: i64) -> UploadId {
        let mut id: [u8; 16] = rand::random();
        let ms = u64::try_from(now_ms).unwrap_or(0).to_be_bytes();
        id[..6].copy_from_slice(&ms[2..]);
        UploadId(id)
    }
    /// The milliseconds the id was made at.
    pub fn millis(&self) -> i64 {
        let mut ms = [0u8; 8];
        ms[2..].copy_from_slice(&self.0[..6]);
        i64::try_from(u64::from_be_bytes(ms)).unwrap_or(i64::MAX)
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn parse(s: &str) -> Option<UploadId> {
        let mut id = [0u8; 16];
        hex::decode_to_slice(s, &mut id).ok()?;
        Some(UploadId(id))
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
    pub checksum: Option<(crate::object::ChecksumAlgorithm, bool)>,
    /// Tags the completed object gets (`x-amz-tagging` on Create).
    pub tags: Vec<(String, String)>,
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

/// The multipart ETag: hex(MD5(concatenated binary part MD5s)) + `-N`.
pub fn multipart_etag(part_etags: &[&str]) -> Result<String> {
    let mut md5 = Md5::new();
    for etag in part_etags {
        let mut digest = [0u8; 16];
        hex::decode_to_slice(etag, &mut digest)
            .map_err(|_| MetaError::Corrupt(format!("part ETag {etag:?} is not a hex MD5")))?;
        md5.update(digest);
    }
    Ok(format!(
        "{}-{}",
        hex::encode(md5.finalize()),
        part_etags.len()
    ))
}

// ---------------------------------------------------------------- reads

pub fn get_upload(txn: &ReadTransaction, upload_id: &UploadId) -> Result<UploadRecord> {
    let missing = || MetaError::NoSuchUpload(upload_id.to_hex());
    let Some(uploads) = open_read(txn, schema::UPLOADS)? else {
        return Err(missing());
    };
    let value = uploads.get(upload_id.0.as_slice())?.ok_or_else(missing)?;
    decode_record(value.value())
}

/// Parts of `upload_id` numbered above `after`, at most `max`.
pub fn list_parts(
    txn: &ReadTransaction,
    upload_id: &UploadId,
    after: u32,
    max: usize,
) -> Result<PartsPage> {
    get_upload(txn, upload_id)?;
    let Some(parts) = open_read(txn, schema::PARTS)? else {
        return Ok(PartsPage::default());
    };
    let start = part_key(&upload_id.0, after.saturating_add(1));
    let end = part_key(&upload_id.0, u32::MAX);
    let mut page = PartsPage::default();
    if after >= PART_NUMBER_MAX {
        return Ok(page);
    }
    for row in parts.range::<&[u8]>(start.as_slice()..=end.as_slice())? {
        let (_, value) = row?;
        if page.parts.len() == max {
            page.is_truncated = true;
            break;
        }
        page.parts.push(decode_record(value.value())?);
    }
    Ok(page)
}

/// In-progress uploads of `bucket` in (key, initiation) order, S3 style:
/// after `key_marker` (and, for that key, after `upload_id_marker`), with
/// `prefix` and `delimiter` rolling keys up into common prefixes.
pub fn list_uploads(
    txn: &ReadTransaction,
    bucket: &str,
    req: &ListUploadsRequest,
) -> Result<UploadsPage> {
    let Some(buckets) = open_read(txn, schema::BUCKETS)? else {
        return Err(MetaError::NoSuchBucket(bucket.to_owned()));
    };
    if read_bucket(&buckets, bucket)?.is_none() {
        return Err(MetaError::NoSuchBucket(bucket.to_owned()));
    }
    let mut page = UploadsPage::default();
    if req.max_uploads == 0 {
        return Ok(page);
    }
    let (Some(index), Some(uploads)) = (
        open_read(txn, schema::UPLOAD_INDEX)?,
        open_read(txn, schema::UPLOADS)?,
    ) else {
        return Ok(page);
    };
    let bucket_prefix = upload_index_prefix(bucket);
    let mut start = bucket_prefix.clone();
    start.extend_from_slice(req.prefix.as_bytes());
    if let Some(marker) = req
        .key_marker
        .as_deref()
        .filter(|m| m.as_bytes() > req.prefix.as_bytes())
    {
        start = bucket_prefix.clone();
        start.extend_from_slice(marker.as_bytes());
    }
    let Some(end) = prefix_successor(&bucket_prefix) else {
        return Ok(page);
    };
    let mut cursor = start;
    loop {
        let mut jump: Option<Vec<u8>> = None;
        for row in index.range::<&[u8]>(cursor.as_slice()..end.as_slice())? {
            let (index_key, _) = row?;
            let (key, id) = split_index_key(index_key.value(), bucket_prefix.len())?;
            if !key.starts_with(&req.prefix) {
                return Ok(page);
            }
            if let Some(marker) = req.key_marker.as_deref() {
                let after_marker = match key.as_str().cmp(marker) {
                    std::cmp::Ordering::Less => false,
                    std::cmp::Ordering::Equal => req.upload_id_marker.is_some_and(|m| id > m.0),
                    std::cmp::Ordering::Greater => true,
                };
                if !after_marker {
                    continue;
                }
            }
            let common_prefix = common_prefix_of(&key, &req.prefix, req.delimiter.as_deref());
            let entry = match &common_prefix {
                // Returned on an earlier page.
                Some(cp) if req.key_marker.as_deref().is_some_and(|m| cp.as_str() <= m) => None,
                Some(cp) => Some(UploadEntry::CommonPrefix(cp.clone())),
                None => {
                    let value = uploads.get(id.as_slice())?.ok_or_else(|| {
                        MetaError::Corrupt("upload index names a missing upload".to_owned())
                    })?;
                    Some(UploadEntry::Upload(decode_record(value.value())?))
                }
            };
            if let Some(entry) = entry {
                if page.entries.len() == req.max_uploads {
                    page.is_truncated = true;
                    return Ok(page);
                }
                page.entries.push(entry);
            }
            if let Some(cp) = common_prefix {
                // Jump past every key under the common prefix.
                let mut under = bucket_prefix.clone();
                under.extend_from_slice(cp.as_bytes());
                match prefix_successor(&under) {
                    Some(next) => jump = Some(next),
                    None => return Ok(page),
                }
                break;
            }
        }
        match jump {
            Some(next) => cursor = next,
            None => break,
        }
    }
    Ok(page)
}

/// (key, upload id) of an upload index key, given its bucket prefix length.
fn split_index_key(index_key: &[u8], bucket_prefix_len: usize) -> Result<(String, [u8; 16])> {
    let corrupt = || MetaError::Corrupt("malformed upload index key".to_owned());
    let rest = index_key.get(bucket_prefix_len..).ok_or_else(corrupt)?;
    let split = rest.len().checked_sub(17).ok_or_else(corrupt)?;
    let key = std::str::from_utf8(rest.get(..split).ok_or_else(corrupt)?).map_err(|_| corrupt())?;
    let id: [u8; 16] = rest
        .get(split + 1..)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(corrupt)?;
    Ok((key.to_owned(), id))
}

fn common_prefix_of(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
    let d = delimiter?;
    key.get(prefix.len()..)?
        .find(d)
        .map(|at| key[..prefix.len() + at + d.len()].to_owned())
}

// ------------------------------------------------------------ mutations

impl NamespaceTables<'_> {
    fn read_upload(&self, upload_id: &UploadId) -> Result<Option<UploadRecord>> {
        match self.uploads.get(upload_id.0.as_slice())? {
            Some(value) => Ok(Some(decode_record(value.value())?)),
            None => Ok(None),
        }
    }

    pub(crate) fn create_upload(&mut self, upload: &UploadRecord) -> Result<CommandResult> {
        if let Err(e) = validate_key(&upload.key) {
            return Ok(Err(e));
        }
        if read_bucket(&self.buckets, &upload.bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(upload.bucket.clone())));
        }
        if self.read_upload(&upload.upload_id)?.is_some() {
            return Err(MetaError::Corrupt(format!(
                "upload id {} reused",
                upload.upload_id
            )));
        }
        self.uploads.insert(
            upload.upload_id.0.as_slice(),
            encode_record(upload)?.as_slice(),
        )?;
        let index_key = upload_index_key(&upload.bucket, &upload.key, &upload.upload_id.0);
        self.upload_index
            .insert(index_key.as_slice(), [].as_slice())?;
        Ok(Ok(Reply::Done))
    }

    /// Records a part, replacing (and queueing for GC) an earlier upload of
    /// the same part number.
    pub(crate) fn put_part(
        &mut self,
        log_index: u64,
        upload_id: &UploadId,
        part: &PartRecord,
        shared: &[ChunkId],
        placements: &[ChunkPlacement],
    ) -> Result<CommandResult> {
        if let Some(gone) = self.first_unreferenced(shared)? {
            return Ok(Err(MetaError::Conflict(format!(
                "chunk {gone} of the copy source is no longer referenced"
            ))));
        }
        let fresh = part
            .chunks
            .iter()
            .map(|c| &c.id)
            .filter(|id| !shared.contains(id));
        if let Some(refused) = self.check_fresh(fresh.clone())? {
            return Ok(Err(refused));
        }
        if let Some(refused) = check_placements(fresh, placements) {
            return Ok(Err(refused));
        }
        if self.read_upload(upload_id)?.is_none() {
            return Ok(Err(MetaError::NoSuchUpload(upload_id.to_hex())));
        }
        if part.part_number == 0 || part.part_number > PART_NUMBER_MAX {
            return Ok(Err(MetaError::InvalidPart(format!(
                "part number {}",
                part.part_number
            ))));
        }
        let key = part_key(&upload_id.0, part.part_number);
        self.reference(&part.chunks, placements)?;
        let previous: Option<PartRecord> = match self
            .parts
            .insert(key.as_slice(), encode_record(part)?.as_slice())?
        {
            Some(value) => Some(decode_record(value.value())?),
            None => None,
        };
        if let Some(previous) = previous {
            self.release_part(log_index, upload_id, &previous)?;
        }
        Ok(Ok(Reply::Done))
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the fields of Command::CompleteMultipartUpload, plus where it applies"
    )]
    pub(crate) fn complete_upload(
        &mut self,
        log_index: u64,
        position: u32,
        upload_id: &UploadId,
        completed: &[CompletedPart],
        checksum: Option<&ObjectChecksum>,
        last_modified_ms: i64,
        condition: &WriteCondition,
    ) -> Result<CommandResult> {
        let Some(upload) = self.read_upload(upload_id)? else {
            return Ok(Err(MetaError::NoSuchUpload(upload_id.to_hex())));
        };
        if completed.is_empty() {
            return Ok(Err(MetaError::InvalidPart(
                "the part list is empty".to_owned(),
            )));
        }
        if completed
            .windows(2)
            .any(|w| matches!(w, [a, b] if a.part_number >= b.part_number))
        {
            return Ok(Err(MetaError::InvalidPartOrder));
        }
        let mut parts = Vec::with_capacity(completed.len());
        for wanted in completed {
            let stored = match self
                .parts
                .get(part_key(&upload_id.0, wanted.part_number).as_slice())?
            {
                Some(value) => decode_record::<PartRecord>(value.value())?,
                None => {
                    return Ok(Err(MetaError::InvalidPart(format!(
                        "part {} was not uploaded",
                        wanted.part_number
                    ))));
                }
            };
            if stored.etag != wanted.etag {
                return Ok(Err(MetaError::InvalidPart(format!(
                    "part {} has another ETag",
                    wanted.part_number
                ))));
            }
            if let Some(sum) = &wanted.checksum
                && stored.checksum.as_ref().map(|c| &c.value) != Some(sum)
            {
                return Ok(Err(MetaError::InvalidPart(format!(
                    "part {} has another checksum",
                    wanted.part_number
                ))));
            }
            parts.push(stored);
        }
        if let Some(small) = parts.iter().rev().skip(1).find(|p| p.size < PART_SIZE_MIN) {
            return Ok(Err(MetaError::EntityTooSmall {
                part_number: small.part_number,
            }));
        }
        let etags: Vec<&str> = parts.iter().map(|p| p.etag.as_str()).collect();
        let mut chunks = Vec::new();
        let mut offset = 0u64;
        for part in &parts {
            for chunk in &part.chunks {
                chunks.push(ChunkRef {
                    offset: offset + chunk.offset,
                    ..chunk.clone()
                });
            }
            offset += part.size;
        }
        let version = ObjectVersion {
            generation: 0,
            size: offset,
            etag: multipart_etag(&etags)?,
            last_modified_ms,
            headers: upload.headers.clone(),
            user_metadata: upload.user_metadata.clone(),
            checksum: checksum.cloned(),
            storage_class: upload.storage_class.clone(),
            parts: parts.iter().map(|p| p.size).collect(),
            tags: upload.tags.clone(),
            data: ObjectData::Chunks(chunks),
        };
        let result = self.put_object(
            log_index,
            position,
            &upload.bucket,
            &upload.key,
            &version,
            condition,
            ChunkOwnership::Shared,
            &[],
        )?;
        if result.is_err() {
            // Refused (condition, bucket gone): the upload stays as it was.
            return Ok(result);
        }
        self.remove_upload(log_index, &upload)?;
        Ok(result)
    }

    pub(crate) fn abort_upload(
        &mut self,
        log_index: u64,
        upload_id: &UploadId,
    ) -> Result<CommandResult> {
        let Some(upload) = self.read_upload(upload_id)? else {
            return Ok(Err(MetaError::NoSuchUpload(upload_id.to_hex())));
        };
        self.remove_upload(log_index, &upload)?;
        Ok(Ok(Reply::Done))
    }

    /// Aborts uploads initiated before `initiated_before_ms`, oldest first,
    /// at most `limit` of them.
    pub(crate) fn expire_uploads(
        &mut self,
        log_index: u64,
        initiated_before_ms: i64,
        limit: u32,
    ) -> Result<CommandResult> {
        let mut expired = Vec::new();
        for row in self.uploads.iter()? {
            let (_, value) = row?;
            let upload: UploadRecord = decode_record(value.value())?;
            if upload.upload_id.millis() >= initiated_before_ms {
                // Ids sort by initiation time: the rest are younger.
                break;
            }
            if expired.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
                break;
            }
            expired.push(upload);
        }
        for upload in &expired {
            self.remove_upload(log_index, upload)?;
        }
        Ok(Ok(Reply::Expired {
            count: u32::try_from(expired.len()).unwrap_or(u32::MAX),
        }))
    }

    /// Deletes the upload and its parts; the chunks of every part not in
    /// `used` go to the GC queue.
    fn remove_upload(&mut self, log_index: u64, upload: &UploadRecord) -> Result<()> {
        let id = upload.upload_id;
        let first = part_key(&id.0, 0);
        let last = part_key(&id.0, u32::MAX);
        let mut removed = Vec::new();
        for row in self
            .parts
            .extract_from_if::<&[u8], _>(first.as_slice()..=last.as_slice(), |_, _| true)?
        {
            let (_, value) = row?;
            removed.push(decode_record::<PartRecord>(value.value())?);
        }
        // Every part lets go of its chunks; those the completed object uses
        // keep the reference it took.
        for part in removed {
            self.release_part(log_index, &id, &part)?;
        }
        self.uploads.remove(id.0.as_slice())?;
        let index_key = upload_index_key(&upload.bucket, &upload.key, &id.0);
        if self.upload_index.remove(index_key.as_slice())?.is_none() {
            return Err(MetaError::Corrupt(format!(
                "upload {id} missing from the index"
            )));
        }
        Ok(())
    }

    fn release_part(&mut self, log_index: u64, id: &UploadId, part: &PartRecord) -> Result<()> {
        let origin = GcOrigin::Part {
            upload_id: id.0,
            part_number: part.part_number,
        };
        self.release(log_index, origin, part.chunks.iter().map(|c| c.id))
    }
}
