//! Multipart uploads: parts stream into chunks like any body; Complete is
//! one metadata command that stitches the parts' chunk lists together, so
//! no byte is copied.

use std::collections::BTreeMap;

use arbor_meta::ObjectData;
use arbor_meta::limits::{LIST_PARTS_MAX, LIST_UPLOADS_MAX, PART_NUMBER_MAX, PART_SIZE_MAX};
use arbor_meta::multipart::parts_digest;
use arbor_meta::records::{ChecksumAlgorithm, ObjectChecksum, ObjectHeaders};
use arbor_meta::records::{
    CompletedPart as MetaCompletedPart, ListUploadsRequest, PartRecord, UploadEntry, UploadId,
    UploadRecord,
};
use base64::Engine;
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::conditions::Conditions;
use super::{
    Arbor, acl, bucket, checksum, encryption, lifecycle, object, record_target, tagging, time,
};
use crate::data_path;
use crate::error;

fn parse_upload_id(id: &str) -> S3Result<UploadId> {
    UploadId::parse(id).ok_or_else(|| {
        s3_error!(
            NoSuchUpload,
            "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed."
        )
    })
}

/// The upload, which must belong to `bucket/key`.
async fn upload_of(s3: &Arbor, bucket: &str, key: &str, upload_id: &str) -> S3Result<UploadRecord> {
    let id = parse_upload_id(upload_id)?;
    let upload = s3.meta().get_upload(id).await.map_err(error::from_meta)?;
    if upload.bucket != bucket || upload.key != key {
        return Err(s3_error!(
            NoSuchUpload,
            "The specified multipart upload does not exist."
        ));
    }
    Ok(upload)
}

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=PART_NUMBER_MAX).contains(n))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            )
        })
}

fn dto_algorithm(algorithm: ChecksumAlgorithm) -> s3s::dto::ChecksumAlgorithm {
    s3s::dto::ChecksumAlgorithm::from(checksum::algorithm_name(algorithm).to_owned())
}

fn dto_checksum_type(full_object: bool) -> ChecksumType {
    ChecksumType::from_static(if full_object {
        ChecksumType::FULL_OBJECT
    } else {
        ChecksumType::COMPOSITE
    })
}

pub async fn create(
    s3: &Arbor,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let S3Request { input, headers, .. } = req;
    record_target("CreateMultipartUpload", &input.bucket, Some(&input.key));
    encryption::refuse_on_write(encryption::asked!(input))?;
    let acl = acl::object_acl(input.acl.as_ref(), &headers)?;
    acl::check_public_allowed(s3, &input.bucket, acl).await?;
    let now = s3.now_ms();
    let asked_lock = super::lock::asked_lock(
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
        now,
    )?;
    let algorithm = match &input.checksum_algorithm {
        None => None,
        Some(a) => Some(checksum::parse_algorithm(a.as_str()).ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "Checksum algorithm provided is unsupported."
            )
        })?),
    };
    let full_object = checksum_mode(algorithm, input.checksum_type.as_ref())?;
    let upload = UploadRecord {
        upload_id: UploadId::with_entropy(now, s3.entropy()),
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        initiated_ms: now,
        headers: ObjectHeaders {
            content_type: input.content_type.map(|m| m.to_string()),
            content_encoding: object::stored_content_encoding(input.content_encoding),
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires.as_ref().and_then(object::http_date),
        },
        user_metadata: object::user_metadata(input.metadata, input.website_redirect_location)?,
        storage_class: object::storage_class(input.storage_class)?,
        checksum: algorithm.map(|a| (a, full_object)),
        tags: tagging::from_header(input.tagging.as_deref())?,
        lock: asked_lock,
        acl,
    };
    let upload_id = upload.upload_id.to_hex();
    s3.meta()
        .create_multipart_upload(upload)
        .await
        .map_err(super::lock::write_error)?;
    let output = CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload_id),
        checksum_algorithm: algorithm.map(dto_algorithm),
        checksum_type: algorithm.map(|_| dto_checksum_type(full_object)),
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

pub async fn upload_part(
    s3: &Arbor,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let verified_sha256 = data_path::verified_one_chunk_sha256(
        &req,
        req.input.content_length,
        s3.settings().chunk_size,
    );
    let S3Request {
        input,
        headers,
        trailing_headers,
        ..
    } = req;
    record_target("UploadPart", &input.bucket, Some(&input.key));
    let number = part_number(input.part_number)?;
    let upload = upload_of(s3, &input.bucket, &input.key, &input.upload_id).await?;
    encryption::refuse_customer_key(encryption::customer_key!(input))?;
    if input
        .content_length
        .and_then(|l| u64::try_from(l).ok())
        .is_some_and(|l| l > PART_SIZE_MAX)
    {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size."
        ));
    }
    let expected_md5 = object::expected_md5(input.content_md5.as_deref(), &headers)?;
    let mut expectation = checksum::expectation(&headers)?;
    super::lock::require_digest(
        upload.lock.is_some(),
        expected_md5.as_ref(),
        expectation.as_ref(),
        "Put Part",
    )?;
    // A part of an upload that declared no algorithm, sent without a
    // checksum, gets S3's default, which Complete combines.
    let declared = upload.checksum.map(|(algorithm, _)| algorithm);
    let default =
        (declared.is_none() && expectation.is_none()).then_some(checksum::DEFAULT_ALGORITHM);
    if let Some(algorithm) = declared.or(default) {
        match &expectation {
            Some(e) if e.algorithm != algorithm => {
                return Err(s3_error!(
                    InvalidRequest,
                    "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                    checksum::algorithm_name(algorithm),
                    checksum::algorithm_name(e.algorithm)
                ));
            }
            Some(_) => {}
            // The upload declared an algorithm (or none, and the part came
            // without one): the part gets its checksum.
            None => {
                expectation = Some(checksum::Expectation {
                    algorithm,
                    header_value: None,
                    in_trailer: false,
                })
            }
        }
    }
    let body = data_path::declared_length(input.body.unwrap_or_else(object::empty_body), &headers);
    let hasher = expectation.as_ref().map(|e| checksum::hasher(e.algorithm));
    // Parts are never inlined: Complete stitches chunk lists together.
    let written = data_path::write_body(
        s3.chunks(),
        s3.settings().chunk_size,
        0,
        PART_SIZE_MAX,
        body,
        hasher,
        verified_sha256,
    )
    .await?;
    let stored_checksum = match object::verify_body(
        &written,
        expected_md5,
        expectation.as_ref(),
        trailing_headers.as_ref(),
    ) {
        Ok(stored) => stored.map(|c| ObjectChecksum {
            full_object: false,
            ..c
        }),
        Err(e) => {
            data_path::discard_body(s3.chunks(), &written.data, &written.placements).await;
            return Err(e);
        }
    };
    let chunks = match &written.data {
        ObjectData::Chunks(chunks) => chunks.clone(),
        ObjectData::Inline(bytes) if bytes.is_empty() => Vec::new(),
        ObjectData::Inline(_) => {
            return Err(error::internal("upload part", "part body was inlined"));
        }
    };
    let part = PartRecord {
        part_number: number,
        size: written.size,
        etag: hex::encode(written.md5),
        last_modified_ms: s3.now_ms(),
        checksum: stored_checksum.clone(),
        chunks,
    };
    let etag = part.etag.clone();
    if let Err(e) = s3
        .meta()
        .upload_part(upload.upload_id, part, written.placements.clone())
        .await
    {
        if object::outcome_is_known(&e) {
            data_path::discard_body(s3.chunks(), &written.data, &written.placements).await;
        }
        return Err(error::from_meta(e));
    }
    let mut output = UploadPartOutput {
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    };
    if let Some(stored) = &stored_checksum {
        checksum::set_checksum_fields!(output, stored);
    }
    Ok(S3Response::new(output))
}

/// `x-amz-copy-source-range: bytes=first-last`, the only form S3 accepts.
fn copy_source_range(header: &str, size: u64) -> S3Result<std::ops::Range<u64>> {
    let malformed = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let (first, last) = header
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(malformed)?;
    let first: u64 = first.trim().parse().map_err(|_| malformed())?;
    let last: u64 = last.trim().parse().map_err(|_| malformed())?;
    // Reversed, or well formed but beyond the source: S3 answers both
    // so (400, not GetObject's 416), naming the source's size.
    if first > last || last >= size {
        return Err(s3_error!(
            InvalidArgument,
            "Range specified is not valid for source object of size: {size}"
        ));
    }
    Ok(first..last + 1)
}

pub async fn upload_part_copy(
    s3: &Arbor,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = req.input;
    record_target("UploadPartCopy", &input.bucket, Some(&input.key));
    let number = part_number(input.part_number)?;
    let upload = upload_of(s3, &input.bucket, &input.key, &input.upload_id).await?;
    encryption::refuse_customer_key(encryption::customer_key!(input))?;
    let (_, _, source, source_version_id) = object::copy_source_version(
        s3,
        &input.copy_source,
        Conditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        },
    )
    .await?;
    encryption::refuse_customer_key(encryption::copy_source_key!(input))?;
    let range = match input.copy_source_range.as_deref() {
        None => 0..source.size,
        Some(header) => copy_source_range(header, source.size)?,
    };
    if range.end - range.start > PART_SIZE_MAX {
        return Err(s3_error!(
            InvalidRequest,
            "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120"
        ));
    }
    let hasher = upload
        .checksum
        .map(|(algorithm, _)| checksum::hasher(algorithm));
    let copied = data_path::copy_range(
        s3.chunks(),
        s3.settings().chunk_size,
        &source,
        range,
        hasher,
    )
    .await?;
    let stored_checksum = match (upload.checksum, &copied.checksum) {
        (Some((algorithm, _)), Some(computed)) => {
            checksum::value(computed, algorithm).map(|value| ObjectChecksum {
                algorithm,
                value: value.to_owned(),
                full_object: false,
                parts: Vec::new(),
            })
        }
        _ => None,
    };
    let part = PartRecord {
        part_number: number,
        size: copied.size,
        etag: hex::encode(copied.md5),
        last_modified_ms: s3.now_ms(),
        checksum: stored_checksum.clone(),
        chunks: copied.chunks.clone(),
    };
    let result = CopyPartResult {
        e_tag: Some(ETag::Strong(part.etag.clone())),
        last_modified: Some(time::timestamp(part.last_modified_ms)),
        ..Default::default()
    };
    if let Err(e) = s3
        .meta()
        .upload_part_sharing(
            upload.upload_id,
            part,
            copied.shared.clone(),
            copied.placements.clone(),
        )
        .await
    {
        if object::outcome_is_known(&e) {
            data_path::discard_body(s3.chunks(), &copied.fresh(), &copied.placements).await;
        }
        return Err(error::from_meta(e));
    }
    let mut result = result;
    if let Some(stored) = &stored_checksum {
        checksum::set_checksum_fields!(result, stored);
    }
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(result),
        copy_source_version_id: source_version_id,
        ..Default::default()
    }))
}

/// Whether an upload's checksum is FULL_OBJECT (else COMPOSITE), from
/// CreateMultipartUpload's `x-amz-checksum-algorithm` and
/// `x-amz-checksum-type`. Without a type, CRC64NVME is FULL_OBJECT (its
/// only type) and the others COMPOSITE: AWS's documentation reads as if
/// CRC32 and CRC32C defaulted to FULL_OBJECT, but S3 answers COMPOSITE for
/// them, keeping what uploads got before full-object checksums existed,
/// and this follows what S3 does. SHA-1 and SHA-256 are COMPOSITE only,
/// CRC64NVME FULL_OBJECT only. Messages are S3's.
fn checksum_mode(
    algorithm: Option<ChecksumAlgorithm>,
    requested: Option<&ChecksumType>,
) -> S3Result<bool> {
    let Some(requested) = requested else {
        return Ok(matches!(algorithm, Some(ChecksumAlgorithm::Crc64Nvme)));
    };
    let Some(algorithm) = algorithm else {
        return Err(s3_error!(
            InvalidRequest,
            "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
        ));
    };
    let full_object = match requested.as_str() {
        ChecksumType::FULL_OBJECT => true,
        ChecksumType::COMPOSITE => false,
        _ => {
            return Err(s3_error!(
                InvalidRequest,
                "Value for x-amz-checksum-type header is invalid."
            ));
        }
    };
    let allowed = match algorithm {
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => true,
        ChecksumAlgorithm::Crc64Nvme => full_object,
        ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => !full_object,
    };
    if !allowed {
        return Err(s3_error!(
            InvalidRequest,
            "The {} checksum type cannot be used with the {} checksum algorithm.",
            requested.as_str(),
            checksum::algorithm_name(algorithm)
        ));
    }
    Ok(full_object)
}

/// CompleteMultipartUpload's `x-amz-checksum-type` must name the upload's
/// own type, and may only be sent for an upload created with a checksum.
/// (AWS's reference names BadDigest for a mismatch; S3 answers
/// InvalidRequest with these messages, which this follows.)
fn check_complete_mode(upload: &UploadRecord, sent: Option<&ChecksumType>) -> S3Result<()> {
    let Some(sent) = sent else {
        return Ok(());
    };
    let Some((_, full_object)) = upload.checksum else {
        return Err(s3_error!(
            InvalidRequest,
            "The upload was not created with a checksum mode. The complete request must not include a x-amz-checksum-type header."
        ));
    };
    let mode = if full_object {
        ChecksumType::FULL_OBJECT
    } else {
        ChecksumType::COMPOSITE
    };
    if !sent.as_str().eq_ignore_ascii_case(mode) {
        return Err(s3_error!(
            InvalidRequest,
            "The upload was created using the {mode} checksum mode. The complete request must use the same checksum mode."
        ));
    }
    Ok(())
}

/// The checksum value a completed part carries for `algorithm`.
fn completed_part_checksum(part: &CompletedPart, algorithm: ChecksumAlgorithm) -> Option<&str> {
    match algorithm {
        ChecksumAlgorithm::Crc32 => part.checksum_crc32.as_deref(),
        ChecksumAlgorithm::Crc32c => part.checksum_crc32c.as_deref(),
        ChecksumAlgorithm::Crc64Nvme => part.checksum_crc64nvme.as_deref(),
        ChecksumAlgorithm::Sha1 => part.checksum_sha1.as_deref(),
        ChecksumAlgorithm::Sha256 => part.checksum_sha256.as_deref(),
    }
}

/// Every stored part's checksum, by part number.
async fn stored_part_checksums(
    s3: &Arbor,
    upload_id: UploadId,
) -> S3Result<BTreeMap<u32, (Option<(ChecksumAlgorithm, String)>, u64)>> {
    let mut sums = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = s3
            .meta()
            .list_parts(upload_id, after, LIST_PARTS_MAX)
            .await
            .map_err(error::from_meta)?;
        for part in &page.parts {
            sums.insert(
                part.part_number,
                (
                    part.checksum
                        .as_ref()
                        .map(|c| (c.algorithm, c.value.clone())),
                    part.size,
                ),
            );
            after = part.part_number;
        }
        if !page.is_truncated {
            return Ok(sums);
        }
    }
}

pub async fn complete(
    s3: &Arbor,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let input = req.input;
    record_target("CompleteMultipartUpload", &input.bucket, Some(&input.key));
    // The completed object's URL, as S3 gives it in `Location`.
    let location = crate::object_url::Endpoint::of_object_request(
        &req.uri,
        &req.headers,
        &input.bucket,
        &input.key,
    )
    .url(&input.bucket, &input.key);
    let input_checksums = Checksum {
        checksum_crc32: input.checksum_crc32.clone(),
        checksum_crc32c: input.checksum_crc32c.clone(),
        checksum_crc64nvme: input.checksum_crc64nvme.clone(),
        checksum_sha1: input.checksum_sha1.clone(),
        checksum_sha256: input.checksum_sha256.clone(),
        ..Default::default()
    };
    let upload = match upload_of(s3, &input.bucket, &input.key, &input.upload_id).await {
        Ok(upload) => upload,
        Err(e) if *e.code() == S3ErrorCode::NoSuchUpload => {
            return match completed_before(s3, &input).await? {
                Some(mut output) => {
                    output.location = Some(location);
                    Ok(S3Response::new(output))
                }
                None => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    encryption::refuse_customer_key(encryption::customer_key!(input))?;
    check_complete_mode(&upload, input.checksum_type.as_ref())?;
    let listed = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default();
    if listed.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let condition = object::write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    object::check_condition_early(s3, &input.bucket, &input.key, &condition).await?;
    let stored_sums = stored_part_checksums(s3, upload.upload_id).await?;
    // An upload that declared no algorithm gets S3's default full-object
    // checksum when every part listed has it (parts sent without a
    // checksum get it; copied parts, and parts sent with another, do not).
    let mode = upload.checksum.or_else(|| {
        let defaulted = |part: &CompletedPart| {
            part.part_number
                .and_then(|n| u32::try_from(n).ok())
                .and_then(|n| stored_sums.get(&n))
                .is_some_and(|(sum, _)| {
                    sum.as_ref()
                        .is_some_and(|(algorithm, _)| *algorithm == checksum::DEFAULT_ALGORITHM)
                })
        };
        listed
            .iter()
            .all(defaulted)
            .then_some((checksum::DEFAULT_ALGORITHM, true))
    });
    let mut parts = Vec::with_capacity(listed.len());
    for part in &listed {
        let number = part_number(
            part.part_number
                .ok_or_else(|| s3_error!(MalformedXML, "A part has no PartNumber"))?,
        )?;
        let etag = part
            .e_tag
            .as_ref()
            .ok_or_else(|| s3_error!(MalformedXML, "A part has no ETag"))?;
        let checksum = match mode {
            None => None,
            Some((algorithm, full_object)) => {
                let stored = stored_sums
                    .get(&number)
                    .and_then(|(sum, _)| sum.as_ref())
                    .map(|(_, value)| value.clone());
                let sent = completed_part_checksum(part, algorithm);
                // A composite checksum is made of the parts' as the client
                // lists them: S3 wants each (a full-object one it combines
                // from the stored parts).
                if sent.is_none() && !full_object {
                    return Err(s3_error!(
                        InvalidRequest,
                        "The upload was created using a {} checksum. The complete request must include the checksum for each part. It was missing for part {number} in the request.",
                        checksum::algorithm_name(algorithm).to_ascii_lowercase()
                    ));
                }
                match (sent, &stored) {
                    (Some(sent), Some(stored)) if sent != stored => {
                        return Err(error::from_meta(arbor_meta::MetaError::PartMismatch(
                            format!("part {number} checksum"),
                        )));
                    }
                    _ => stored,
                }
            }
        };
        parts.push(MetaCompletedPart {
            part_number: number,
            etag: etag.value().to_owned(),
            checksum,
        });
    }
    let sizes: BTreeMap<u32, u64> = stored_sums
        .iter()
        .map(|(n, (_, size))| (*n, *size))
        .collect();
    let mut object_checksum = object_checksum(mode, &parts, &sizes)?;
    // The default keeps no per-part values: GetObjectAttributes gives the
    // parts' count alone for an upload without a checksum, as S3 answers.
    if upload.checksum.is_none()
        && let Some(defaulted) = &mut object_checksum
    {
        defaulted.parts.clear();
    }
    // An object checksum the client sends must match what the parts make:
    // the full-object value, or the composite one (its `-N` suffix is
    // optional, and must be the number of parts when given).
    if let Some((algorithm, _)) = mode
        && let Some(sent) = complete_input_checksum(&input_checksums, algorithm)
    {
        checksum::check_complete_value(algorithm, sent)?;
    }
    if let (Some(computed), Some((algorithm, _))) = (&object_checksum, mode)
        && let Some(sent) = complete_input_checksum(&input_checksums, algorithm)
        && !same_object_checksum(sent, computed)
    {
        return Err(s3s::S3Error::with_message(
            s3s::S3ErrorCode::BadDigest,
            format!(
                "The {} you specified did not match the calculated checksum.",
                checksum::algorithm_name(algorithm)
            ),
        ));
    }
    let version = s3
        .meta()
        .complete_multipart_upload(
            upload.upload_id,
            parts,
            object_checksum,
            s3.now_ms(),
            condition.clone(),
        )
        .await
        .map_err(|e| error::from_meta(object::changed_meanwhile(e, &condition)))?;
    let mut output = completed_output(
        &input.bucket,
        &input.key,
        &version.etag,
        version.checksum.as_ref(),
    );
    output.version_id = object::version_header(&version, false);
    output.expiration =
        lifecycle::expiration(&req.extensions, &input.bucket, &input.key, &version).await;
    output.location = Some(location);
    Ok(S3Response::new(output))
}

fn completed_output(
    bucket: &str,
    key: &str,
    etag: &str,
    checksum: Option<&ObjectChecksum>,
) -> CompleteMultipartUploadOutput {
    let mut output = CompleteMultipartUploadOutput {
        bucket: Some(bucket.to_owned()),
        key: Some(key.to_owned()),
        e_tag: Some(ETag::Strong(etag.to_owned())),
        ..Default::default()
    };
    if let Some(stored) = checksum {
        checksum::set_checksum_fields!(output, stored);
        output.checksum_type = Some(dto_checksum_type(stored.full_object));
    }
    output
}

/// A completion sent again for an upload that has completed (a client
/// whose first answer was lost retries): the same part list answers as the
/// first completion did, changing nothing. Another part list, another key,
/// or an upload completed too long ago to be remembered
/// (`arbor_meta::limits::COMPLETED_UPLOADS_MAX`) is `None`: NoSuchUpload,
/// which AWS documents for an upload "aborted or completed".
async fn completed_before(
    s3: &Arbor,
    input: &CompleteMultipartUploadInput,
) -> S3Result<Option<CompleteMultipartUploadOutput>> {
    let Ok(id) = parse_upload_id(&input.upload_id) else {
        return Ok(None);
    };
    let Some(done) = s3
        .meta()
        .get_completed_upload(id)
        .await
        .map_err(error::from_meta)?
    else {
        return Ok(None);
    };
    if done.bucket != input.bucket || done.key != input.key {
        return Ok(None);
    }
    let listed = input
        .multipart_upload
        .as_ref()
        .and_then(|m| m.parts.as_deref())
        .unwrap_or_default();
    let mut parts = Vec::with_capacity(listed.len());
    for part in listed {
        let (Some(number), Some(etag)) = (part.part_number, part.e_tag.as_ref()) else {
            return Ok(None);
        };
        let Ok(number) = part_number(number) else {
            return Ok(None);
        };
        parts.push(MetaCompletedPart {
            part_number: number,
            etag: etag.value().to_owned(),
            checksum: None,
        });
    }
    if parts_digest(&parts) != done.parts_digest {
        return Ok(None);
    }
    Ok(Some(completed_output(
        &done.bucket,
        &done.key,
        &done.etag,
        done.checksum.as_ref(),
    )))
}

/// The multipart object's checksum as S3 defines it: COMPOSITE, the
/// algorithm over the concatenated binary part checksums then `-N`; or
/// FULL_OBJECT (CRC algorithms), the parts' CRCs combined into the CRC of
/// the whole object. `None` if the upload declared no algorithm or a part
/// has no checksum.
fn object_checksum(
    mode: Option<(ChecksumAlgorithm, bool)>,
    parts: &[MetaCompletedPart],
    sizes: &BTreeMap<u32, u64>,
) -> S3Result<Option<ObjectChecksum>> {
    let Some((algorithm, full_object)) = mode else {
        return Ok(None);
    };
    let mut sums = Vec::with_capacity(parts.len());
    for part in parts {
        let Some(value) = &part.checksum else {
            return Ok(None);
        };
        let size = sizes.get(&part.part_number).copied().unwrap_or_default();
        sums.push((value.clone(), size));
    }
    let part_sums = sums.iter().map(|(value, _)| value.clone()).collect();
    if full_object {
        let value = checksum::combine_full_object(algorithm, &sums)?;
        return Ok(value.map(|value| ObjectChecksum {
            algorithm,
            value,
            full_object: true,
            parts: part_sums,
        }));
    }
    let mut concatenated = Vec::new();
    for (value, _) in &sums {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|e| error::internal("stored part checksum", e))?;
        concatenated.extend_from_slice(&bytes);
    }
    let mut hasher = checksum::hasher(algorithm);
    hasher.update(&concatenated);
    let computed = hasher.finalize();
    let value = checksum::value(&computed, algorithm)
        .ok_or_else(|| error::internal("checksum", "no value"))?;
    Ok(Some(ObjectChecksum {
        algorithm,
        value: format!("{value}-{}", parts.len()),
        full_object: false,
        parts: part_sums,
    }))
}

/// The full-object checksum a CompleteMultipartUpload request carries.
/// Whether the checksum a client sent for the object is `computed`.
fn same_object_checksum(sent: &str, computed: &ObjectChecksum) -> bool {
    if computed.full_object {
        return sent == computed.value;
    }
    match sent.rsplit_once('-') {
        Some(_) => sent == computed.value,
        None => computed.value.rsplit_once('-').map(|(digest, _)| digest) == Some(sent),
    }
}

fn complete_input_checksum(input: &Checksum, algorithm: ChecksumAlgorithm) -> Option<&str> {
    checksum::value(input, algorithm)
}

pub async fn abort(
    s3: &Arbor,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    record_target("AbortMultipartUpload", &input.bucket, Some(&input.key));
    let upload = upload_of(s3, &input.bucket, &input.key, &input.upload_id).await?;
    s3.meta()
        .abort_multipart_upload(upload.upload_id)
        .await
        .map_err(error::from_meta)?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub async fn list_parts(
    s3: &Arbor,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let input = req.input;
    record_target("ListParts", &input.bucket, Some(&input.key));
    let upload = upload_of(s3, &input.bucket, &input.key, &input.upload_id).await?;
    encryption::refuse_customer_key(encryption::customer_key!(input))?;
    let max = match input.max_parts {
        None => LIST_PARTS_MAX,
        Some(n) if n < 0 => {
            return Err(s3_error!(InvalidArgument, "max-parts must not be negative"));
        }
        Some(n) => usize::try_from(n).unwrap_or(0).min(LIST_PARTS_MAX),
    };
    let after = match input.part_number_marker {
        None => 0,
        Some(m) => u32::try_from(m)
            .map_err(|_| s3_error!(InvalidArgument, "Invalid part-number-marker"))?,
    };
    let page = s3
        .meta()
        .list_parts(upload.upload_id, after, max)
        .await
        .map_err(error::from_meta)?;
    let next = if page.is_truncated {
        page.parts
            .last()
            .and_then(|p| i32::try_from(p.part_number).ok())
    } else {
        None
    };
    let parts = page
        .parts
        .iter()
        .map(|p| {
            let mut part = Part {
                part_number: i32::try_from(p.part_number).ok(),
                size: i64::try_from(p.size).ok(),
                e_tag: Some(ETag::Strong(p.etag.clone())),
                last_modified: Some(time::timestamp(p.last_modified_ms)),
                ..Default::default()
            };
            if let Some(stored) = &p.checksum {
                checksum::set_checksum_fields!(part, stored);
            }
            part
        })
        .collect();
    let owner = bucket::owner();
    let output = ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        // S3 writes the marker it started after, 0 on a first page.
        part_number_marker: Some(input.part_number_marker.unwrap_or(0)),
        next_part_number_marker: next,
        max_parts: Some(i32::try_from(max).unwrap_or(1000)),
        is_truncated: Some(page.is_truncated),
        parts: Some(parts),
        owner: Some(owner.clone()),
        initiator: Some(Initiator {
            display_name: owner.display_name,
            id: owner.id,
        }),
        storage_class: Some(StorageClass::from(
            upload
                .storage_class
                .unwrap_or_else(|| StorageClass::STANDARD.to_owned()),
        )),
        checksum_algorithm: upload.checksum.map(|(a, _)| dto_algorithm(a)),
        checksum_type: upload.checksum.map(|(_, full)| dto_checksum_type(full)),
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

pub async fn list_uploads(
    s3: &Arbor,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    record_target("ListMultipartUploads", &input.bucket, None);
    let url = super::list::url_encoding(input.encoding_type.as_ref())?;
    let max = match input.max_uploads {
        None => LIST_UPLOADS_MAX,
        Some(n) if n < 0 => {
            return Err(s3_error!(
                InvalidArgument,
                "max-uploads must not be negative"
            ));
        }
        Some(n) => usize::try_from(n).unwrap_or(0).min(LIST_UPLOADS_MAX),
    };
    let key_marker = input.key_marker.clone().filter(|m| !m.is_empty());
    let upload_id_marker = match input.upload_id_marker.as_deref().filter(|m| !m.is_empty()) {
        // Without a key marker S3 ignores the upload id marker.
        Some(m) if key_marker.is_some() => Some(
            UploadId::parse(m)
                .ok_or_else(|| s3_error!(InvalidArgument, "Invalid uploadId marker"))?,
        ),
        _ => None,
    };
    let request = ListUploadsRequest {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
        key_marker,
        upload_id_marker,
        max_uploads: max,
    };
    let page = s3
        .meta()
        .list_uploads(&input.bucket, &request)
        .await
        .map_err(error::from_meta)?;
    let owner = bucket::owner();
    let mut uploads = Vec::new();
    let mut common_prefixes = Vec::new();
    let (mut next_key_marker, mut next_upload_id_marker) = (None, None);
    for entry in &page.entries {
        match entry {
            UploadEntry::Upload(u) => {
                next_key_marker = Some(u.key.clone());
                next_upload_id_marker = Some(u.upload_id.to_hex());
                uploads.push(MultipartUpload {
                    key: Some(super::list::encode_if(url, &u.key)),
                    upload_id: Some(u.upload_id.to_hex()),
                    initiated: Some(time::timestamp(u.initiated_ms)),
                    owner: Some(owner.clone()),
                    initiator: Some(Initiator {
                        display_name: owner.display_name.clone(),
                        id: owner.id.clone(),
                    }),
                    storage_class: Some(StorageClass::from(
                        u.storage_class
                            .clone()
                            .unwrap_or_else(|| StorageClass::STANDARD.to_owned()),
                    )),
                    checksum_algorithm: u.checksum.map(|(a, _)| dto_algorithm(a)),
                    checksum_type: u.checksum.map(|(_, full)| dto_checksum_type(full)),
                })
            }
            UploadEntry::CommonPrefix(p) => {
                next_key_marker = Some(p.clone());
                next_upload_id_marker = None;
                common_prefixes.push(CommonPrefix {
                    prefix: Some(super::list::encode_if(url, p)),
                });
            }
        }
    }
    let truncated = page.is_truncated;
    let output = ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: Some(super::list::encode_if(url, &request.prefix)),
        delimiter: input.delimiter.map(|d| super::list::encode_if(url, &d)),
        key_marker: Some(super::list::encode_if(
            url,
            input.key_marker.as_deref().unwrap_or_default(),
        )),
        upload_id_marker: Some(input.upload_id_marker.unwrap_or_default()),
        next_key_marker: if truncated {
            next_key_marker.map(|k| super::list::encode_if(url, &k))
        } else {
            None
        },
        next_upload_id_marker: if truncated {
            next_upload_id_marker
        } else {
            None
        },
        max_uploads: Some(i32::try_from(max).unwrap_or(1000)),
        is_truncated: Some(truncated),
        uploads: Some(uploads),
        common_prefixes: Some(common_prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    };
    Ok(S3Response::new(output))
}
