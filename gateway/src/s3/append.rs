//! Append: PutObject with `x-amz-write-offset-bytes`, as S3 Express One
//! Zone defines it. The body becomes new chunks after the object's own, and
//! one `AppendObject` command commits the new version; no existing byte is
//! read or copied (an object still small enough to live inline in its
//! record is the exception: its bytes become the first chunk). The rules
//! for ETags and checksums of appended objects are in docs/design.md,
//! "Append".

use arbor_meta::append::AppendObject;
use arbor_meta::limits::{INLINE_OBJECT_SIZE_MAX, PART_NUMBER_MAX};
use arbor_meta::records::{CannedAcl, ChecksumAlgorithm, ObjectChecksum};
use arbor_meta::{ChunkRef, MetaError, ObjectData, ObjectVersion};
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{S3Response, S3Result, s3_error};

use super::object::{PutRequest, outcome_is_known, verify_body};
use super::{Arbor, checksum};
use crate::data_path;
use crate::error;
use crate::limits::PUT_OBJECT_SIZE_MAX;

pub(super) async fn put(
    s3: &Arbor,
    request: PutRequest,
    offset: i64,
    trailers: Option<s3s::TrailingHeaders>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let Ok(offset) = u64::try_from(offset) else {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-write-offset-bytes must be a non-negative integer."
        ));
    };
    let PutRequest {
        bucket,
        key,
        user_metadata,
        expected_md5,
        expected_checksum,
        condition,
        tags,
        headers,
        storage_class,
        body,
        ..
    } = request;
    let current = match s3.meta().get_object(&bucket, &key).await {
        Ok(version) => Some(version),
        Err(MetaError::NoSuchKey(_)) => None,
        Err(e) => return Err(error::from_meta(e)),
    };
    // Fail fast, before the body streams; the apply step checks again.
    let size = current.as_ref().map_or(0, |v| v.size);
    if size != offset {
        return Err(error::from_meta(MetaError::WriteOffsetMismatch { size }));
    }
    let base_parts = current.as_ref().map_or(0, |v| v.parts.len().max(1));
    if base_parts >= PART_NUMBER_MAX as usize {
        return Err(error::from_meta(MetaError::TooManyParts));
    }
    // A full-object CRC of the object carries over: the body is hashed with
    // the same algorithm and the two combine.
    let carried = current
        .as_ref()
        .and_then(|v| v.checksum.clone())
        .filter(|c| c.full_object && is_crc(c.algorithm));
    let algorithm = match (&expected_checksum, &carried) {
        (Some(expected), Some(carried)) if expected.algorithm != carried.algorithm => {
            return Err(s3_error!(
                InvalidRequest,
                "The checksum algorithm of appended data must be the object's ({}).",
                checksum::algorithm_name(carried.algorithm)
            ));
        }
        (Some(expected), _) => Some(expected.algorithm),
        (None, Some(carried)) => Some(carried.algorithm),
        // S3's default, which a first write stores and later appends
        // combine with; an object without a CRC keeps none.
        (None, None) => current.is_none().then_some(checksum::DEFAULT_ALGORITHM),
    };
    let inline_max = match current.as_ref().map(|v| &v.data) {
        None => INLINE_OBJECT_SIZE_MAX,
        Some(ObjectData::Inline(bytes)) => {
            INLINE_OBJECT_SIZE_MAX.saturating_sub(bytes.len() as u64)
        }
        Some(ObjectData::Chunks(_)) => 0,
    };
    let written = data_path::write_body(
        s3.chunks(),
        s3.settings().chunk_size,
        inline_max,
        PUT_OBJECT_SIZE_MAX,
        body,
        algorithm.map(checksum::hasher),
        None,
    )
    .await?;
    let verified = verify_body(
        &written,
        expected_md5,
        expected_checksum.as_ref(),
        trailers.as_ref(),
    );
    let body_checksum = match verified {
        Ok(stored) => stored,
        Err(e) => {
            data_path::discard_body(s3.chunks(), &written.data, &written.placements).await;
            return Err(e);
        }
    };

    let Some(base) = current else {
        // No object yet: an ordinary first write, at offset 0.
        let version = ObjectVersion {
            generation: 0,
            size: written.size,
            etag: hex::encode(written.md5),
            last_modified_ms: s3.now_ms(),
            headers,
            user_metadata,
            checksum: body_checksum,
            storage_class,
            parts: Vec::new(),
            tags,
            acl: CannedAcl::Private,
            data: written.data,
            stamp: Default::default(),
        };
        let fresh = version.chunks().to_vec();
        return commit(
            s3,
            &bucket,
            &key,
            None,
            version,
            condition,
            0,
            fresh,
            written.placements,
        )
        .await;
    };
    if written.size == 0 {
        // Nothing to add: the object stays as it is (no new part).
        return Ok(S3Response::new(output(&base)));
    }

    let body_crc = match (&carried, &written.checksum) {
        (Some(carried), Some(computed)) => checksum::value(computed, carried.algorithm)
            .map(str::to_owned)
            .ok_or_else(|| error::internal("append", "checksum not computed"))?,
        _ => String::new(),
    };
    let (data, shared, fresh, placements) = match (&base.data, written.data) {
        (ObjectData::Inline(old), ObjectData::Inline(new)) => {
            let mut bytes = old.clone();
            bytes.extend_from_slice(&new);
            (ObjectData::Inline(bytes), 0, Vec::new(), Vec::new())
        }
        (ObjectData::Inline(old), ObjectData::Chunks(new)) => {
            // The object outgrows its record: its bytes become the first
            // chunk (at most INLINE_OBJECT_SIZE_MAX bytes copied, once).
            let mut placements = written.placements;
            let mut chunks = Vec::new();
            if !old.is_empty() {
                let head = match rewrite_inline(s3, old).await {
                    Ok(head) => head,
                    Err(e) => {
                        data_path::discard_body(s3.chunks(), &ObjectData::Chunks(new), &placements)
                            .await;
                        return Err(e);
                    }
                };
                chunks.extend(head.0);
                placements.extend(head.1);
            }
            chunks.extend(shifted(new, old.len() as u64));
            (ObjectData::Chunks(chunks.clone()), 0, chunks, placements)
        }
        (ObjectData::Chunks(old), ObjectData::Chunks(new)) => {
            let fresh = shifted(new, base.size);
            let mut chunks = old.clone();
            chunks.extend(fresh.iter().cloned());
            (
                ObjectData::Chunks(chunks),
                old.len(),
                fresh,
                written.placements,
            )
        }
        (ObjectData::Chunks(_), ObjectData::Inline(_)) => {
            return Err(error::internal("append", "a non-empty body stayed inline"));
        }
    };
    let mut parts = if base.parts.is_empty() {
        vec![base.size]
    } else {
        base.parts.clone()
    };
    parts.push(written.size);
    let checksum = match carried {
        Some(carried) => {
            // The parts' own checksums carry over when every part had one:
            // an object written in one piece is its own first part.
            let mut part_sums = if base.parts.is_empty() {
                vec![carried.value.clone()]
            } else {
                carried.parts.clone()
            };
            if part_sums.len() == parts.len() - 1 {
                part_sums.push(body_crc.clone());
            } else {
                part_sums.clear();
            }
            checksum::combine_full_object(
                carried.algorithm,
                &[(carried.value.clone(), base.size), (body_crc, written.size)],
            )?
            .map(|value| ObjectChecksum {
                algorithm: carried.algorithm,
                value,
                full_object: true,
                parts: part_sums,
            })
        }
        None => None,
    };
    let version = ObjectVersion {
        generation: 0,
        size: base.size + written.size,
        etag: appended_etag(&base.etag, written.md5, parts.len())?,
        last_modified_ms: s3.now_ms(),
        checksum,
        parts,
        data,
        ..base.clone()
    };
    commit(
        s3,
        &bucket,
        &key,
        Some(&base),
        version,
        condition,
        shared,
        fresh,
        placements,
    )
    .await
}

/// Commits the appended version; on a certain refusal the chunks written
/// for it (never the object's own) are deleted.
#[allow(clippy::too_many_arguments)]
async fn commit(
    s3: &Arbor,
    bucket: &str,
    key: &str,
    base: Option<&ObjectVersion>,
    version: ObjectVersion,
    condition: arbor_meta::records::WriteCondition,
    shared_chunks: usize,
    fresh: Vec<ChunkRef>,
    placements: Vec<arbor_meta::ChunkPlacement>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let command = AppendObject {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        offset: base.map_or(0, |b| b.size),
        base: base.map(|b| (b.generation, b.stamp.position)),
        version,
        condition,
        shared_chunks,
        placements: placements.clone(),
    };
    match s3.meta().write(command).await {
        Ok(committed) => Ok(S3Response::new(output(&committed))),
        Err(e) => {
            if outcome_is_known(&e) {
                data_path::discard_body(s3.chunks(), &ObjectData::Chunks(fresh), &placements).await;
            }
            Err(error::from_meta(e))
        }
    }
}

fn output(version: &ObjectVersion) -> PutObjectOutput {
    let mut output = PutObjectOutput {
        e_tag: Some(ETag::Strong(version.etag.clone())),
        size: i64::try_from(version.size).ok(),
        version_id: super::object::version_header(version, false),
        ..Default::default()
    };
    if let Some(stored) = &version.checksum {
        checksum::set_checksum_fields!(output, stored);
        let kind = if stored.full_object {
            ChecksumType::FULL_OBJECT
        } else {
            ChecksumType::COMPOSITE
        };
        output.checksum_type = Some(ChecksumType::from_static(kind));
    }
    output
}

/// Writes an inline object's bytes as one chunk.
async fn rewrite_inline(
    s3: &Arbor,
    bytes: &[u8],
) -> S3Result<(Vec<ChunkRef>, Vec<arbor_meta::ChunkPlacement>)> {
    let bytes = bytes::Bytes::copy_from_slice(bytes);
    let body = StreamingBlob::wrap(futures::stream::once(async move {
        Ok::<_, std::io::Error>(bytes)
    }));
    let written = data_path::write_body(
        s3.chunks(),
        s3.settings().chunk_size,
        0,
        INLINE_OBJECT_SIZE_MAX,
        body,
        None,
        None,
    )
    .await?;
    match written.data {
        ObjectData::Chunks(chunks) => Ok((chunks, written.placements)),
        ObjectData::Inline(_) => Err(error::internal("append", "inline bytes stayed inline")),
    }
}

/// `chunks` moved `by` bytes further into the object.
fn shifted(chunks: Vec<ChunkRef>, by: u64) -> Vec<ChunkRef> {
    chunks
        .into_iter()
        .map(|c| ChunkRef {
            offset: c.offset + by,
            ..c
        })
        .collect()
}

fn is_crc(algorithm: ChecksumAlgorithm) -> bool {
    matches!(
        algorithm,
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c | ChecksumAlgorithm::Crc64Nvme
    )
}

/// The ETag of an object after an append: the multipart form, MD5 over the
/// previous ETag's digest and the appended bytes' MD5, then `-` and the
/// number of parts. For an object written in one piece this is exactly the
/// ETag a two-part multipart upload of the same parts would have.
fn appended_etag(previous: &str, appended_md5: [u8; 16], parts: usize) -> S3Result<String> {
    let digest = previous.split('-').next().unwrap_or_default();
    let digest =
        hex::decode(digest).map_err(|_| error::internal("append", "stored ETag is not hex"))?;
    let mut md5 = Md5::new();
    md5.update(&digest);
    md5.update(appended_md5);
    Ok(format!("{}-{parts}", hex::encode(md5.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_to_a_single_part_object_has_the_two_part_multipart_etag() {
        let first = b"hello ";
        let second = b"world";
        let md5 = |b: &[u8]| -> [u8; 16] { Md5::digest(b).into() };
        let etag = appended_etag(&hex::encode(md5(first)), md5(second), 2).expect("etag");
        let mut joined = Vec::new();
        joined.extend_from_slice(&md5(first));
        joined.extend_from_slice(&md5(second));
        assert_eq!(etag, format!("{}-2", hex::encode(md5(&joined))));
        // A later append chains on the multipart ETag's digest.
        let third = appended_etag(&etag, md5(b"!"), 3).expect("etag");
        assert!(third.ends_with("-3"));
        assert_ne!(third.split('-').next(), etag.split('-').next());
    }
}
