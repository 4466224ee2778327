//! Multipart uploads: the upload and part records, their reads, and the
//! mutations applied by the state machine.
//!
//! A part is a chunk list (offsets relative to the part). Complete checks
//! the client's list against the stored parts and, in one command,
//! concatenates their chunk lists with corrected offsets into a new object
//! version: no byte is copied. Parts left out, replaced parts, aborted and
//! expired uploads go to the GC queue. In-progress uploads live in their own
//! tables and create no directories, so listings never see them.

use md5::{Digest, Md5};
use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use crate::chunks::{self, check_placements};
use crate::context::ApplyContext;
use crate::error::{MetaError, Result};
use crate::keys::{prefix_successor, validate_key};
use crate::limits::{COMPLETED_UPLOADS_MAX, PART_NUMBER_MAX, PART_SIZE_MIN};
use crate::namespace::{NewChunks, commit_version, lock_config_of, lock_in_past};
use crate::op::{Apply, Outcome, Query, SIZE_BASE, SIZE_CHUNK_REF};
use crate::records::chunk::ChunkPlacement;
use crate::records::object::{
    ChunkId, ChunkOwnership, ChunkRef, ObjectChecksum, ObjectData, ObjectVersion, WriteCondition,
};
use crate::records::tree::GcOrigin;
use crate::records::upload::{
    CompletedPart, CompletedUpload, ListUploadsRequest, PartRecord, PartsPage, UploadEntry,
    UploadId, UploadRecord, UploadsPage,
};
use crate::schema::{
    self, decode_record, encode_record, part_key, upload_index_key, upload_index_prefix,
};
use crate::tree::{open_read, read_bucket};

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

/// What identifies a CompleteMultipartUpload's part list: an MD5 over each
/// part's number and ETag, in order. A retried completion matches the first
/// if its digest does (part checksums are left out: a retry may send them
/// or not, and the parts they would be checked against are gone).
pub fn parts_digest(parts: &[CompletedPart]) -> [u8; 16] {
    let mut md5 = Md5::new();
    for part in parts {
        md5.update(part.part_number.to_be_bytes());
        md5.update(
            u64::try_from(part.etag.len())
                .unwrap_or(u64::MAX)
                .to_be_bytes(),
        );
        md5.update(part.etag.as_bytes());
    }
    md5.finalize().into()
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

// ------------------------------------------------------------ queries

/// Linearizable: the upload, or `NoSuchUpload`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetUpload {
    pub upload_id: UploadId,
}

impl Query for GetUpload {
    type Reply = UploadRecord;
    fn read(&self, txn: &ReadTransaction) -> Result<UploadRecord> {
        get_upload(txn, &self.upload_id)
    }
}

/// Linearizable: the completed upload, if it is still remembered
/// (`None` if it never completed, or was forgotten).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetCompletedUpload {
    pub upload_id: UploadId,
}

impl Query for GetCompletedUpload {
    type Reply = Option<CompletedUpload>;
    fn read(&self, txn: &ReadTransaction) -> Result<Option<CompletedUpload>> {
        let Some(table) = open_read(txn, schema::COMPLETED_UPLOADS)? else {
            return Ok(None);
        };
        let Some(value) = table.get(self.upload_id.0.as_slice())? else {
            return Ok(None);
        };
        let record: CompletedUpload = decode_record(value.value())?;
        if record.upload_id != self.upload_id {
            return Err(MetaError::Corrupt(format!(
                "completed upload row {} holds {}",
                self.upload_id, record.upload_id
            )));
        }
        Ok(Some(record))
    }
}

/// Linearizable page of the parts numbered above `after`, at most `max`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListParts {
    pub upload_id: UploadId,
    pub after: u32,
    pub max: usize,
}

impl Query for ListParts {
    type Reply = PartsPage;
    fn read(&self, txn: &ReadTransaction) -> Result<PartsPage> {
        list_parts(txn, &self.upload_id, self.after, self.max)
    }
}

/// Linearizable page of a bucket's in-progress uploads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListUploads {
    pub bucket: String,
    pub request: ListUploadsRequest,
}

impl Query for ListUploads {
    type Reply = UploadsPage;
    fn read(&self, txn: &ReadTransaction) -> Result<UploadsPage> {
        list_uploads(txn, &self.bucket, &self.request)
    }
}

// ------------------------------------------------------------ commands

/// Starts an upload (its id and initiation time chosen by the proposer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateMultipartUpload {
    pub upload: UploadRecord,
}

impl Apply for CreateMultipartUpload {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        let upload = &self.upload;

        if let Err(e) = validate_key(&upload.key) {
            return Ok(Err(e));
        }
        if read_bucket(&ctx.buckets, &upload.bucket)?.is_none() {
            return Ok(Err(MetaError::NoSuchBucket(upload.bucket.clone())));
        }
        if upload.lock.is_some() && lock_config_of(&ctx.bucket_lock, &upload.bucket)?.is_none() {
            return Ok(Err(MetaError::NoObjectLockConfig(upload.bucket.clone())));
        }
        if let Some(refused) = lock_in_past(upload.lock.as_ref(), upload.initiated_ms) {
            return Ok(Err(refused));
        }
        if let Some(refused) = crate::acl::check_acl_allowed(ctx, &upload.bucket, upload.acl)? {
            return Ok(Err(refused));
        }
        if read_upload(ctx, &upload.upload_id)?.is_some() {
            return Err(MetaError::Corrupt(format!(
                "upload id {} reused",
                upload.upload_id
            )));
        }
        ctx.uploads.insert(
            upload.upload_id.0.as_slice(),
            encode_record(upload)?.as_slice(),
        )?;
        let index_key = upload_index_key(&upload.bucket, &upload.key, &upload.upload_id.0);
        ctx.upload_index
            .insert(index_key.as_slice(), [].as_slice())?;
        Ok(Ok(()))
    }

    fn size_estimate(&self) -> usize {
        let upload = &self.upload;
        let metadata: usize = upload
            .user_metadata
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        SIZE_BASE
            .saturating_add(upload.key.len())
            .saturating_add(metadata)
    }
}

/// Records (or replaces, queueing the old chunks for GC) one part of an
/// upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadPart {
    pub upload_id: UploadId,
    pub part: PartRecord,
    /// Chunks of `part` shared with live versions (UploadPartCopy): each
    /// must still be referenced, else `Conflict`. The rest are fresh.
    pub shared: Vec<ChunkId>,
    /// Where the fresh chunks' replicas are (empty for a local store).
    pub placements: Vec<ChunkPlacement>,
}

impl Apply for UploadPart {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        let UploadPart {
            upload_id,
            part,
            shared,
            placements,
        } = self;

        if let Some(gone) = chunks::first_unreferenced(ctx, shared)? {
            return Ok(Err(MetaError::Conflict(format!(
                "chunk {gone} of the copy source is no longer referenced"
            ))));
        }
        let fresh = part
            .chunks
            .iter()
            .map(|c| &c.id)
            .filter(|id| !shared.contains(id));
        if let Some(refused) = chunks::check_fresh(ctx, fresh.clone())? {
            return Ok(Err(refused));
        }
        if let Some(refused) = check_placements(fresh, placements) {
            return Ok(Err(refused));
        }
        if read_upload(ctx, upload_id)?.is_none() {
            return Ok(Err(MetaError::NoSuchUpload(upload_id.to_hex())));
        }
        if part.part_number == 0 || part.part_number > PART_NUMBER_MAX {
            return Ok(Err(MetaError::InvalidRequest(format!(
                "part number {}",
                part.part_number
            ))));
        }
        let key = part_key(&upload_id.0, part.part_number);
        chunks::reference(ctx, &part.chunks, placements)?;
        let previous: Option<PartRecord> = match ctx
            .parts
            .insert(key.as_slice(), encode_record(part)?.as_slice())?
        {
            Some(value) => Some(decode_record(value.value())?),
            None => None,
        };
        if let Some(previous) = previous {
            release_part(ctx, upload_id, &previous)?;
        }
        Ok(Ok(()))
    }

    fn size_estimate(&self) -> usize {
        SIZE_BASE
            .saturating_add(self.part.chunks.len().saturating_mul(SIZE_CHUNK_REF))
            .saturating_add(self.shared.len().saturating_mul(16))
            .saturating_add(chunks::placements_size(&self.placements))
    }
}

/// Checks `parts` against the stored parts and commits the object they
/// form, all or nothing, replying with its version. `checksum` is the
/// object's checksum as the proposer computed it from the parts'
/// checksums.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteMultipartUpload {
    pub upload_id: UploadId,
    pub parts: Vec<CompletedPart>,
    pub checksum: Option<ObjectChecksum>,
    pub last_modified_ms: i64,
    pub condition: WriteCondition,
}

impl Apply for CompleteMultipartUpload {
    type Reply = ObjectVersion;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<ObjectVersion>> {
        let CompleteMultipartUpload {
            upload_id,
            parts: completed,
            checksum,
            last_modified_ms,
            condition,
        } = self;
        let (checksum, last_modified_ms) = (checksum.as_ref(), *last_modified_ms);

        let Some(upload) = read_upload(ctx, upload_id)? else {
            return Ok(Err(MetaError::NoSuchUpload(upload_id.to_hex())));
        };
        if completed.is_empty() {
            return Ok(Err(MetaError::PartMismatch(
                "the part list is empty".to_owned(),
            )));
        }
        if completed
            .windows(2)
            .any(|w| matches!(w, [a, b] if a.part_number >= b.part_number))
        {
            return Ok(Err(MetaError::PartsOutOfOrder));
        }
        let mut parts = Vec::with_capacity(completed.len());
        for wanted in completed {
            let stored = match ctx
                .parts
                .get(part_key(&upload_id.0, wanted.part_number).as_slice())?
            {
                Some(value) => decode_record::<PartRecord>(value.value())?,
                None => {
                    return Ok(Err(MetaError::PartMismatch(format!(
                        "part {} was not uploaded",
                        wanted.part_number
                    ))));
                }
            };
            if stored.etag != wanted.etag {
                return Ok(Err(MetaError::PartMismatch(format!(
                    "part {} has another ETag",
                    wanted.part_number
                ))));
            }
            if let Some(sum) = &wanted.checksum
                && stored.checksum.as_ref().map(|c| &c.value) != Some(sum)
            {
                return Ok(Err(MetaError::PartMismatch(format!(
                    "part {} has another checksum",
                    wanted.part_number
                ))));
            }
            parts.push(stored);
        }
        if let Some(small) = parts.iter().rev().skip(1).find(|p| p.size < PART_SIZE_MIN) {
            return Ok(Err(MetaError::PartTooSmall {
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
            acl: upload.acl,
            data: ObjectData::Chunks(chunks),
            stamp: Default::default(),
        };
        let result = commit_version(
            ctx,
            &upload.bucket,
            &upload.key,
            &version,
            condition,
            NewChunks::Owned(ChunkOwnership::Shared),
            &[],
            upload.lock.as_ref(),
        )?;
        if result.is_err() {
            // Refused (condition, bucket gone): the upload stays as it was.
            return Ok(result);
        }
        remove_upload(ctx, &upload)?;
        if let Ok(version) = &result {
            remember_completed(
                ctx,
                &CompletedUpload {
                    upload_id: *upload_id,
                    bucket: upload.bucket.clone(),
                    key: upload.key.clone(),
                    parts_digest: parts_digest(completed),
                    etag: version.etag.clone(),
                    checksum: version.checksum.clone(),
                },
            )?;
        }
        Ok(result)
    }

    /// Part number, ETag and checksum of each completed part.
    fn size_estimate(&self) -> usize {
        SIZE_BASE.saturating_add(self.parts.len().saturating_mul(96))
    }
}

/// Aborts an upload: its parts' chunks go to the GC queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortMultipartUpload {
    pub upload_id: UploadId,
}

impl Apply for AbortMultipartUpload {
    type Reply = ();
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<()>> {
        let upload_id = &self.upload_id;

        let Some(upload) = read_upload(ctx, upload_id)? else {
            return Ok(Err(MetaError::NoSuchUpload(upload_id.to_hex())));
        };
        remove_upload(ctx, &upload)?;
        Ok(Ok(()))
    }
}

/// Aborts uploads initiated before `initiated_before_ms` (the proposer's
/// clock), oldest first, at most `limit` of them; replies how many.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireUploads {
    pub initiated_before_ms: i64,
    pub limit: u32,
}

impl Apply for ExpireUploads {
    type Reply = u32;
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Result<Outcome<u32>> {
        let (initiated_before_ms, limit) = (self.initiated_before_ms, self.limit);

        let mut expired = Vec::new();
        for row in ctx.uploads.iter()? {
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
            remove_upload(ctx, upload)?;
        }
        Ok(Ok(u32::try_from(expired.len()).unwrap_or(u32::MAX)))
    }
}

// ------------------------------------------------------------ helpers

fn read_upload(ctx: &ApplyContext<'_>, upload_id: &UploadId) -> Result<Option<UploadRecord>> {
    match ctx.uploads.get(upload_id.0.as_slice())? {
        Some(value) => Ok(Some(decode_record(value.value())?)),
        None => Ok(None),
    }
}

/// Deletes the upload and its parts; the chunks of every part not in
/// `used` go to the GC queue.
pub(crate) fn remove_upload(ctx: &mut ApplyContext<'_>, upload: &UploadRecord) -> Result<()> {
    let id = upload.upload_id;
    let first = part_key(&id.0, 0);
    let last = part_key(&id.0, u32::MAX);
    let mut removed = Vec::new();
    for row in ctx
        .parts
        .extract_from_if::<&[u8], _>(first.as_slice()..=last.as_slice(), |_, _| true)?
    {
        let (_, value) = row?;
        removed.push(decode_record::<PartRecord>(value.value())?);
    }
    // Every part lets go of its chunks; those the completed object uses
    // keep the reference it took.
    for part in removed {
        release_part(ctx, &id, &part)?;
    }
    ctx.uploads.remove(id.0.as_slice())?;
    let index_key = upload_index_key(&upload.bucket, &upload.key, &id.0);
    if ctx.upload_index.remove(index_key.as_slice())?.is_none() {
        return Err(MetaError::Corrupt(format!(
            "upload {id} missing from the index"
        )));
    }
    Ok(())
}

/// Records a completed upload, forgetting the first-initiated ones beyond
/// [`COMPLETED_UPLOADS_MAX`].
fn remember_completed(ctx: &mut ApplyContext<'_>, completed: &CompletedUpload) -> Result<()> {
    ctx.completed_uploads.insert(
        completed.upload_id.0.as_slice(),
        encode_record(completed)?.as_slice(),
    )?;
    while ctx.completed_uploads.len()? > COMPLETED_UPLOADS_MAX {
        if ctx.completed_uploads.pop_first()?.is_none() {
            break;
        }
    }
    Ok(())
}

fn release_part(ctx: &mut ApplyContext<'_>, id: &UploadId, part: &PartRecord) -> Result<()> {
    let origin = GcOrigin::Part {
        upload_id: id.0,
        part_number: part.part_number,
    };
    chunks::release(ctx, origin, part.chunks.iter().map(|c| c.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(part_number: u32, etag: &str, checksum: Option<&str>) -> CompletedPart {
        CompletedPart {
            part_number,
            etag: etag.to_owned(),
            checksum: checksum.map(str::to_owned),
        }
    }

    #[test]
    fn the_parts_digest_names_numbers_and_etags_in_order() {
        let list = [part(1, "aa", None), part(2, "bb", None)];
        assert_eq!(
            parts_digest(&list),
            parts_digest(&[part(1, "aa", Some("x")), part(2, "bb", None)]),
            "checksums are left out"
        );
        for other in [
            vec![part(1, "aa", None)],
            vec![part(2, "bb", None), part(1, "aa", None)],
            vec![part(1, "aa", None), part(3, "bb", None)],
            vec![part(1, "aab", None), part(2, "b", None)],
        ] {
            assert_ne!(parts_digest(&list), parts_digest(&other), "{other:?}");
        }
    }
}
