//! Object operations: put, get, head, copy, delete, delete-many.

use std::collections::HashMap;

use arbor_chunkstore::Locations;
use arbor_meta::limits::{INLINE_OBJECT_SIZE_MAX, USER_METADATA_SIZE_MAX};
use arbor_meta::namespace::{
    DeleteKey, DeleteKeys, DeleteTarget, GetLocatedVersion, GetReadableVersion, ReadSpan,
};
use arbor_meta::records::{CannedAcl, ObjectHeaders};
use arbor_meta::records::{DeleteCondition, DeleteOutcome, VersionId, VersionLock, WriteCondition};
use arbor_meta::{ChunkPlacement, MetaError, ObjectVersion};
use base64::Engine;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::PrerenderedBody;
use super::conditions::{Conditions, Target};
use super::{
    Arbor, acl, append, checksum, encryption, lifecycle, lock, record_target, tagging, time,
};
use crate::data_path;
use crate::error;
use crate::limits::{DELETE_OBJECTS_KEYS_MAX, PUT_OBJECT_SIZE_MAX};
use crate::permission::ObjectAclGate;
use arbor_meta::limits::LIST_PARTS_MAX;

/// What a PutObject request asks for besides its body, checked before the
/// body streams: PutObject and append share it.
pub(super) struct PutRequest {
    pub bucket: String,
    pub key: String,
    pub user_metadata: Vec<(String, String)>,
    pub expected_md5: Option<[u8; 16]>,
    pub expected_checksum: Option<checksum::Expectation>,
    pub condition: WriteCondition,
    pub tags: Vec<(String, String)>,
    pub headers: ObjectHeaders,
    pub storage_class: Option<String>,
    pub write_offset: Option<i64>,
    /// The lock the `x-amz-object-lock-*` headers ask for.
    pub lock: Option<VersionLock>,
    /// The ACL `x-amz-acl` or the grant headers ask for.
    pub acl: CannedAcl,
    pub body: StreamingBlob,
}

impl PutRequest {
    pub(super) fn parse(
        input: PutObjectInput,
        headers: &http::HeaderMap,
        now_ms: i64,
    ) -> S3Result<PutRequest> {
        encryption::refuse_on_write(encryption::asked!(input))?;
        let acl = acl::object_acl(input.acl.as_ref(), headers)?;
        let lock = lock::asked_lock(
            input.object_lock_mode.as_ref(),
            input.object_lock_retain_until_date.as_ref(),
            input.object_lock_legal_hold_status.as_ref(),
            now_ms,
        )?;
        if lock.is_some() && input.write_offset_bytes.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "Object Lock headers are not supported on an append (x-amz-write-offset-bytes)"
            ));
        }
        // An appended version keeps its base's ACL.
        if acl != CannedAcl::Private && input.write_offset_bytes.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "ACLs are not supported on an append (x-amz-write-offset-bytes)"
            ));
        }
        if let Some(length) = input.content_length
            && u64::try_from(length).is_ok_and(|l| l > PUT_OBJECT_SIZE_MAX)
        {
            return Err(s3_error!(
                EntityTooLarge,
                "Your proposed upload exceeds the maximum allowed size."
            ));
        }
        let expected_md5 = expected_md5(input.content_md5.as_deref(), headers)?;
        let expected_checksum = checksum::expectation(headers)?;
        lock::require_digest(
            lock.is_some(),
            expected_md5.as_ref(),
            expected_checksum.as_ref(),
            "Put Object",
        )?;
        Ok(PutRequest {
            user_metadata: user_metadata(input.metadata, input.website_redirect_location)?,
            expected_md5,
            expected_checksum,
            condition: write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?,
            tags: tagging::from_header(input.tagging.as_deref())?,
            headers: ObjectHeaders {
                content_type: input.content_type.map(|m| m.to_string()),
                content_encoding: stored_content_encoding(input.content_encoding),
                content_disposition: input.content_disposition,
                content_language: input.content_language,
                cache_control: input.cache_control,
                expires: input.expires.as_ref().and_then(http_date),
            },
            storage_class: storage_class(input.storage_class)?,
            write_offset: input.write_offset_bytes,
            lock,
            acl,
            body: data_path::declared_length(input.body.unwrap_or_else(empty_body), headers),
            bucket: input.bucket,
            key: input.key,
        })
    }
}

pub async fn put(
    s3: &Arbor,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let verified_sha256 = data_path::verified_one_chunk_sha256(
        &req,
        req.input.content_length,
        s3.settings().chunk_size,
    );
    let S3Request {
        input,
        headers,
        trailing_headers,
        extensions,
        ..
    } = req;
    record_target("PutObject", &input.bucket, Some(&input.key));
    let request = PutRequest::parse(input, &headers, s3.now_ms())?;
    if let Some(offset) = request.write_offset {
        return append::put(s3, request, offset, trailing_headers).await;
    }
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
        lock,
        acl,
        body,
        ..
    } = request;
    // Fail fast, before the body streams; the apply step checks again.
    check_condition_early(s3, &bucket, &key, &condition).await?;
    lock::check_lockable(s3, &bucket, lock.as_ref()).await?;
    acl::check_public_allowed(s3, &bucket, acl).await?;
    // Without a checksum the body gets S3's default one.
    let algorithm = expected_checksum
        .as_ref()
        .map_or(checksum::DEFAULT_ALGORITHM, |e| e.algorithm);
    let hasher = Some(checksum::hasher(algorithm));
    let written = data_path::write_body(
        s3.chunks(),
        s3.settings().chunk_size,
        INLINE_OBJECT_SIZE_MAX,
        PUT_OBJECT_SIZE_MAX,
        body,
        hasher,
        verified_sha256,
    )
    .await?;
    let verified = verify_body(
        &written,
        expected_md5,
        expected_checksum.as_ref(),
        trailing_headers.as_ref(),
    );
    let stored_checksum = match verified {
        Ok(stored) => stored,
        Err(e) => {
            data_path::discard_body(s3.chunks(), &written.data, &written.placements).await;
            return Err(e);
        }
    };
    let placements = written.placements;
    let version = ObjectVersion {
        generation: 0,
        size: written.size,
        etag: hex::encode(written.md5),
        last_modified_ms: s3.now_ms(),
        headers,
        user_metadata,
        checksum: stored_checksum,
        storage_class,
        parts: Vec::new(),
        tags,
        acl,
        data: written.data,
        stamp: Default::default(),
    };
    let committed = commit(s3, &bucket, &key, version, condition, placements, lock).await?;
    let mut output = PutObjectOutput {
        e_tag: Some(ETag::Strong(committed.etag.clone())),
        version_id: version_header(&committed, false),
        expiration: lifecycle::expiration(&extensions, &bucket, &key, &committed).await,
        ..Default::default()
    };
    if let Some(stored) = &committed.checksum {
        checksum::set_checksum_fields!(output, stored);
        output.checksum_type = Some(checksum::checksum_type(stored));
    }
    Ok(S3Response::new(output))
}

/// Checks Content-MD5 and the additional checksum once the body is in,
/// and gives the checksum to store: the one asked for, else S3's default
/// (`checksum::DEFAULT_ALGORITHM`) if the body was hashed for it.
pub(super) fn verify_body(
    written: &data_path::WrittenBody,
    expected_md5: Option<[u8; 16]>,
    expected_checksum: Option<&checksum::Expectation>,
    trailers: Option<&s3s::TrailingHeaders>,
) -> S3Result<Option<arbor_meta::records::ObjectChecksum>> {
    if let Some(expected) = expected_md5
        && expected != written.md5
    {
        return Err(s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received."
        ));
    }
    let Some(expectation) = expected_checksum else {
        // S3's default checksum, if the body was hashed for it.
        return Ok(written.checksum.as_ref().and_then(checksum::default_stored));
    };
    let computed = written
        .checksum
        .as_ref()
        .ok_or_else(|| error::internal("checksum", "not computed"))?;
    let trailers = trailers.and_then(s3s::TrailingHeaders::take);
    checksum::verify(expectation, computed, trailers.as_ref()).map(Some)
}

/// Commits a version whose bytes are already durable. If the commit is
/// refused, its chunks are deleted; if its outcome is unknown, they are left
/// for GC, which knows whether anything references them.
async fn commit(
    s3: &Arbor,
    bucket: &str,
    key: &str,
    version: ObjectVersion,
    condition: WriteCondition,
    placements: Vec<ChunkPlacement>,
    lock: Option<VersionLock>,
) -> S3Result<ObjectVersion> {
    let data = version.data.clone();
    match s3
        .meta()
        .put_object_locked(
            bucket,
            key,
            version,
            condition.clone(),
            placements.clone(),
            lock,
        )
        .await
    {
        Ok(committed) => Ok(committed),
        Err(e) => {
            if outcome_is_known(&e) {
                data_path::discard_body(s3.chunks(), &data, &placements).await;
            }
            Err(lock::write_error(changed_meanwhile(e, &condition)))
        }
    }
}

/// Checks a write's If-Match / If-None-Match against the current version
/// before any work is done, so a write that is bound to fail does not
/// stream its body first. The state machine checks again at commit.
pub(super) async fn check_condition_early(
    s3: &Arbor,
    bucket: &str,
    key: &str,
    condition: &WriteCondition,
) -> S3Result<()> {
    if *condition == WriteCondition::None {
        return Ok(());
    }
    let current = match s3.meta().get_object(bucket, key).await {
        Ok(version) => Some(version),
        Err(MetaError::NoSuchKey(_)) => None,
        Err(e) => return Err(error::from_meta(e)),
    };
    match (condition, &current) {
        (WriteCondition::None, _) | (WriteCondition::IfNoneMatchAny, None) => Ok(()),
        (WriteCondition::IfNoneMatchAny, Some(_)) => {
            Err(error::precondition_failed("If-None-Match"))
        }
        (WriteCondition::IfMatch(_), None) => {
            Err(error::from_meta(MetaError::NoSuchKey(key.to_owned())))
        }
        (WriteCondition::IfMatch(etag), Some(v)) if v.etag == *etag => Ok(()),
        (WriteCondition::IfMatch(_), Some(_)) => Err(error::precondition_failed("If-Match")),
    }
}

/// A condition that held when checked early but fails at commit means the
/// object changed while the request was being served: S3 answers 409
/// ConditionalRequestConflict, and the client should retry.
pub(super) fn changed_meanwhile(e: MetaError, condition: &WriteCondition) -> MetaError {
    match (&e, condition) {
        (_, WriteCondition::None) => e,
        (MetaError::PreconditionFailed | MetaError::NoSuchKey(_), _) => {
            MetaError::Conflict("the object changed while the request was served".to_owned())
        }
        _ => e,
    }
}

/// Whether a failed commit certainly did not apply.
pub(super) fn outcome_is_known(e: &MetaError) -> bool {
    match e {
        MetaError::NoSuchBucket(_)
        | MetaError::BucketAlreadyExists(_)
        | MetaError::BucketNotEmpty(_)
        | MetaError::InvalidBucketName(_)
        | MetaError::NoSuchKey(_)
        | MetaError::DirectoryNotEmpty(_)
        | MetaError::IdempotencyMismatch(_)
        | MetaError::InvalidKey(_)
        | MetaError::KeyTooLong
        | MetaError::PreconditionFailed
        | MetaError::OverwriteRefused
        | MetaError::WriteOffsetMismatch { .. }
        | MetaError::TooManyParts
        | MetaError::VersionedBucket(_)
        | MetaError::NoSuchVersion { .. }
        | MetaError::ObjectLocked(_)
        | MetaError::InvalidBucketState(_)
        | MetaError::NoObjectLockConfig(_)
        | MetaError::NoSuchAccessKey(_)
        | MetaError::AccessKeyExists(_)
        | MetaError::AccessDenied(_)
        | MetaError::NoSuchUpload(_)
        | MetaError::PartMismatch(_)
        | MetaError::PartsOutOfOrder
        | MetaError::PartTooSmall { .. }
        | MetaError::Conflict(_)
        | MetaError::InvalidRequest(_)
        | MetaError::StaleChunk(_)
        | MetaError::NoSuchChunkServer(_)
        | MetaError::AclNotSupported(_)
        | MetaError::AclWithOwnership(_)
        | MetaError::DeleteMarker(_)
        // Refused before it was proposed.
        | MetaError::InsufficientStorage(_) => true,
        MetaError::NotLeader { .. }
        | MetaError::Unavailable(_)
        | MetaError::Timeout
        | MetaError::Storage(_)
        | MetaError::Raft(_)
        | MetaError::Corrupt(_)
        | MetaError::ShuttingDown => false,
    }
}

/// The Content-Type S3 answers for an object stored without one.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// Fills the fields GetObject and HeadObject share from a stored version.
macro_rules! describe_version {
    ($output:expr, $version:expr, $checksum_mode:expr, $whole:expr) => {{
        let version: &ObjectVersion = $version;
        $output.accept_ranges = Some("bytes".to_owned());
        $output.e_tag = Some(ETag::Strong(version.etag.clone()));
        $output.last_modified = Some(time::timestamp(version.last_modified_ms));
        $output.content_type = version
            .headers
            .content_type
            .as_deref()
            .filter(|c| !c.is_empty())
            .unwrap_or(DEFAULT_CONTENT_TYPE)
            .parse()
            .ok();
        $output.content_encoding = version.headers.content_encoding.clone();
        $output.content_disposition = version.headers.content_disposition.clone();
        $output.content_language = version.headers.content_language.clone();
        $output.cache_control = version.headers.cache_control.clone();
        $output.expires = version.headers.expires.as_deref().and_then(parse_http_date);
        $output.metadata = metadata_map(version);
        $output.website_redirect_location = website_redirect(version);
        $output.storage_class = version.storage_class.clone().map(StorageClass::from);
        if $checksum_mode && $whole {
            if let Some(stored) = &version.checksum {
                checksum::set_checksum_fields!($output, stored);
                $output.checksum_type = Some(checksum::checksum_type(stored));
            }
        }
    }};
}

/// The byte range a GET or HEAD asks for (`Range` or `partNumber`), whether
/// the answer is partial, and the part count to report for `partNumber`.
fn requested_range(
    version: &ObjectVersion,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> S3Result<(std::ops::Range<u64>, bool, Option<i32>)> {
    match (range, part_number) {
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter"
        )),
        (Some(r), None) => {
            let Ok(checked) = r.check(version.size) else {
                // S3 names the range and the size; RFC 9110's
                // Content-Range `bytes */size` says the latter too.
                let size = version.size.to_string();
                let mut headers = http::HeaderMap::new();
                if let Ok(value) = http::HeaderValue::try_from(format!("bytes */{size}")) {
                    headers.insert(http::header::CONTENT_RANGE, value);
                }
                let e = s3_error!(InvalidRange, "The requested range is not satisfiable");
                let e = error::with_elements(
                    e,
                    &[
                        ("RangeRequested", &r.to_header_string()),
                        ("ActualObjectSize", &size),
                    ],
                );
                return Err(error::with_headers(e, headers));
            };
            // A suffix of an empty object selects no byte, and there is no
            // Content-Range to name none: the whole (empty) object, 200.
            if checked.is_empty() {
                return Ok((0..0, false, None));
            }
            Ok((checked, true, None))
        }
        (None, None) => Ok((0..version.size, false, None)),
        (None, Some(n)) => {
            let index = usize::try_from(n)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .filter(|_| n <= 10_000)
                .ok_or_else(|| {
                    s3_error!(
                        InvalidArgument,
                        "Part number must be an integer between 1 and 10000, inclusive"
                    )
                })?;
            // An object uploaded in one piece has exactly one part.
            let sizes: &[u64] = if version.parts.is_empty() {
                std::slice::from_ref(&version.size)
            } else {
                &version.parts
            };
            // Beyond the object's parts: S3 answers 416 with its own code
            // InvalidPartNumber (not 400: the part, like a range, is not
            // satisfiable), as its observed answers and the clients and
            // servers that mirror them agree.
            let Some(size) = sizes.get(index) else {
                let mut e = S3Error::with_message(
                    S3ErrorCode::Custom("InvalidPartNumber".into()),
                    "The requested partnumber is not satisfiable",
                );
                e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
                return Err(e);
            };
            let start: u64 = sizes.iter().take(index).sum();
            let count = i32::try_from(sizes.len()).map_err(|e| error::internal("part count", e))?;
            // A part is a ranged read, 206 with Content-Range, even when
            // it is the whole object; the part count is told only of an
            // object uploaded in parts (S3's observed answers). An empty
            // part has no byte range to name: the answer is whole.
            let count = (!version.parts.is_empty()).then_some(count);
            Ok((start..start + size, *size > 0, count))
        }
    }
}

/// A 304 Not Modified carries what a 200 would have of ETag, Last-Modified,
/// Cache-Control and Expires (RFC 9110 §15.4.5), so a cache can refresh
/// its copy; other errors pass as they are.
fn with_validators(mut e: S3Error, version: &ObjectVersion) -> S3Error {
    if e.code() != &S3ErrorCode::NotModified {
        return e;
    }
    let mut headers = http::HeaderMap::new();
    let last_modified = http_date(&time::timestamp(version.last_modified_ms));
    let fields = [
        (http::header::ETAG, Some(format!("\"{}\"", version.etag))),
        (http::header::LAST_MODIFIED, last_modified),
        (
            http::header::CACHE_CONTROL,
            version.headers.cache_control.clone(),
        ),
        (http::header::EXPIRES, version.headers.expires.clone()),
    ];
    for (name, value) in fields {
        // Stored values were header values once; one that is not is left out.
        if let Some(value) = value.and_then(|v| http::HeaderValue::try_from(v).ok()) {
            headers.insert(name, value);
        }
    }
    e.set_headers(headers);
    e
}

/// GetObject and HeadObject read the same fields of their (distinct, alike)
/// s3s input types: plans the read, then fills the output fields they share.
macro_rules! read_object {
    ($s3:expr, $op:expr, $gate:expr, $input:expr, $output:ident, $span:expr) => {{
        let plan = plan_read(
            $s3,
            $op,
            $gate,
            &$input.bucket,
            &$input.key,
            $input.version_id.as_deref(),
            $span,
            Conditions {
                if_match: $input.if_match.as_ref(),
                if_none_match: $input.if_none_match.as_ref(),
                if_modified_since: $input.if_modified_since.as_ref(),
                if_unmodified_since: $input.if_unmodified_since.as_ref(),
            },
            $input.range.as_ref(),
            $input.part_number,
        )
        .await?;
        encryption::refuse_customer_key(encryption::customer_key!($input))?;
        let mut output = $output {
            content_length: Some(content_length(&plan.range)?),
            content_range: content_range(&plan.range, plan.partial, plan.version.size),
            parts_count: plan.parts_count,
            version_id: version_header(&plan.version, $input.version_id.is_some()),
            ..Default::default()
        };
        // Part 1 of an object uploaded whole is the whole object, with
        // its checksum.
        let whole =
            !plan.partial || ($input.part_number.is_some() && plan.version.parts.is_empty());
        describe_version!(
            output,
            &plan.version,
            checksum_mode_enabled($input.checksum_mode.as_ref()),
            whole
        );
        lock::describe_lock!(output, &plan.lock);
        (plan, output)
    }};
}

/// What a GET or HEAD reads: the version asked for (or the current one),
/// once its conditions hold, and the byte range asked for.
struct ReadPlan {
    version: ObjectVersion,
    lock: VersionLock,
    /// Where the chunks of `range` are, when the read asked.
    locations: Locations,
    range: std::ops::Range<u64>,
    partial: bool,
    parts_count: Option<i32>,
}

/// Plans a GET or HEAD. `gate`: the access check left the decision to
/// the version's ACL, which is checked before anything of the version is
/// told (conditions included).
#[allow(clippy::too_many_arguments)]
async fn plan_read(
    s3: &Arbor,
    op: &str,
    gate: Option<ObjectAclGate>,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    span: Option<ReadSpan>,
    conditions: Conditions<'_>,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> S3Result<ReadPlan> {
    let read = readable_version_locked(s3, bucket, key, version_id, span).await;
    let (version, lock, locations) = match (read, gate) {
        (Ok(found), None) => found,
        (Ok(found), Some(gate)) if gate.admits(found.0.acl) => found,
        (Ok(_), Some(gate)) => return Err(gate.refusal(op, bucket)),
        (Err(e), Some(gate)) => return Err(gate.hide(e, op, bucket)),
        (Err(e), None) => return Err(e),
    };
    conditions
        .at(s3.now_ms())
        .check(Target::Read, &version.etag, version.last_modified_ms)
        .map_err(|e| with_validators(e, &version))?;
    let (range, partial, parts_count) = requested_range(&version, range, part_number)?;
    Ok(ReadPlan {
        version,
        lock,
        locations,
        range,
        partial,
        parts_count,
    })
}

/// The bytes a GET's Range header or `partNumber` names, for the metadata
/// read to locate their chunks before the version is known. Both or a
/// part number out of range: the whole version's (the read then fails on
/// them, as [`requested_range`] decides).
fn read_span(range: Option<&Range>, part_number: Option<i32>) -> ReadSpan {
    match (range, part_number.map(u32::try_from)) {
        (Some(Range::Int { first, last }), None) => ReadSpan::Bytes {
            first: *first,
            last: *last,
        },
        (Some(Range::Suffix { length }), None) => ReadSpan::Suffix { length: *length },
        (None, Some(Ok(number))) => ReadSpan::Part { number },
        _ => ReadSpan::WHOLE,
    }
}

fn content_length(range: &std::ops::Range<u64>) -> S3Result<i64> {
    i64::try_from(range.end - range.start).map_err(|e| error::internal("length", e))
}

fn content_range(range: &std::ops::Range<u64>, partial: bool, size: u64) -> Option<String> {
    partial.then(|| {
        format!(
            "bytes {}-{}/{size}",
            range.start,
            range.end.saturating_sub(1)
        )
    })
}

fn checksum_mode_enabled(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED))
}

/// The `response-*` query parameters of a GET or HEAD override the headers
/// they name (a signed request's only: `check_overrides`).
macro_rules! override_headers {
    ($output:ident, $input:ident) => {{
        if let Some(v) = $input.response_content_type {
            $output.content_type = Some(
                v.parse()
                    .map_err(|_| s3_error!(InvalidArgument, "Invalid response-content-type"))?,
            );
        }
        $output.content_encoding = $input
            .response_content_encoding
            .or($output.content_encoding);
        $output.content_disposition = $input
            .response_content_disposition
            .or($output.content_disposition);
        $output.content_language = $input
            .response_content_language
            .or($output.content_language);
        $output.cache_control = $input.response_cache_control.or($output.cache_control);
        $output.expires = $input.response_expires.or($output.expires);
    }};
}

/// S3 takes `response-*` overrides only from a signed request (in its
/// headers or a presigned URL): an anonymous GET or HEAD naming one is
/// 400 InvalidRequest. Judged by the principal the access check admitted
/// (a request served around s3s's routing has no credentials of its own)
/// and by the parameters s3s parsed (percent-encoded names included).
macro_rules! check_overrides {
    ($extensions:expr, $input:expr) => {{
        let names_override = $input.response_cache_control.is_some()
            || $input.response_content_disposition.is_some()
            || $input.response_content_encoding.is_some()
            || $input.response_content_language.is_some()
            || $input.response_content_type.is_some()
            || $input.response_expires.is_some();
        if names_override && crate::keyring::principal_of($extensions)?.is_anonymous() {
            return Err(s3_error!(
                InvalidRequest,
                "Request specific response headers cannot be used for anonymous GET requests."
            ));
        }
    }};
}

pub async fn get(
    s3: &Arbor,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let gate = req.extensions.get::<ObjectAclGate>().copied();
    encryption::refuse_on_read(&req.headers)?;
    check_overrides!(&req.extensions, req.input);
    let input = req.input;
    record_target("GetObject", &input.bucket, Some(&input.key));
    let span = s3
        .chunks()
        .needs_locations()
        .then(|| read_span(input.range.as_ref(), input.part_number));
    let (plan, mut output) = read_object!(s3, "GetObject", gate, input, GetObjectOutput, span);
    let ReadPlan {
        version,
        locations,
        range,
        partial,
        ..
    } = plan;
    if !version.tags.is_empty() {
        output.tag_count = i32::try_from(version.tags.len()).ok();
    }
    if input.version_id.is_none() {
        output.expiration =
            lifecycle::expiration(&req.extensions, &input.bucket, &input.key, &version).await;
    }
    override_headers!(output, input);
    output.body = Some(data_path::read_body(s3.chunks(), &version, range, locations).await?);
    // A partial answer (Content-Range) is 206: s3s sets it for GetObject.
    debug_assert_eq!(partial, output.content_range.is_some());
    Ok(S3Response::new(output))
}

pub async fn head(
    s3: &Arbor,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let gate = req.extensions.get::<ObjectAclGate>().copied();
    encryption::refuse_on_read(&req.headers)?;
    check_overrides!(&req.extensions, req.input);
    let input = req.input;
    record_target("HeadObject", &input.bucket, Some(&input.key));
    // HEAD reads no bytes: it asks for no chunk locations.
    let (plan, mut output) = read_object!(s3, "HeadObject", gate, input, HeadObjectOutput, None);
    if input.version_id.is_none() {
        output.expiration =
            lifecycle::expiration(&req.extensions, &input.bucket, &input.key, &plan.version).await;
    }
    override_headers!(output, input);
    // A partial answer is 206 as its GET's is; s3s sets that status for
    // GetObject only, so `http_server` sets it for a HEAD with a
    // Content-Range.
    let mut response = S3Response::new(output);
    // AWS's HeadObject sends x-amz-tagging-count for a tagged object, as
    // GetObject does, though its API model (and s3s's HeadObjectOutput)
    // leaves the header out: follow what S3 sends.
    if !plan.version.tags.is_empty() {
        response.headers.insert(
            "x-amz-tagging-count",
            http::HeaderValue::from(plan.version.tags.len()),
        );
    }
    Ok(response)
}

/// GetObjectAttributes: the attributes `x-amz-object-attributes` names,
/// with Last-Modified. ObjectParts only for a multipart object, paged by
/// `max-parts` (default and at most 1000) after `part-number-marker`.
pub async fn attributes(
    s3: &Arbor,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let input = req.input;
    record_target("GetObjectAttributes", &input.bucket, Some(&input.key));
    // One header line per attribute (the Rust SDK) or one line of them,
    // comma-separated (botocore and the AWS CLI); s3s splits neither.
    let asked: Vec<&str> = input
        .object_attributes
        .iter()
        .flat_map(|a| a.as_str().split(','))
        .map(str::trim)
        .collect();
    // An empty header names nothing, as a missing one (which s3s refuses).
    if asked.iter().all(|a| a.is_empty()) {
        return Err(s3_error!(
            InvalidRequest,
            "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty"
        ));
    }
    let known = [
        ObjectAttributes::ETAG,
        ObjectAttributes::CHECKSUM,
        ObjectAttributes::OBJECT_PARTS,
        ObjectAttributes::OBJECT_SIZE,
        ObjectAttributes::STORAGE_CLASS,
    ];
    if asked
        .iter()
        .any(|a| !known.iter().any(|k| k.eq_ignore_ascii_case(a)))
    {
        return Err(s3_error!(
            InvalidArgument,
            "Invalid attribute name specified."
        ));
    }
    let version =
        readable_version(s3, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    encryption::refuse_customer_key(encryption::customer_key!(input))?;
    let wants = |name: &str| asked.iter().any(|a| a.eq_ignore_ascii_case(name));
    let mut output = GetObjectAttributesOutput {
        last_modified: Some(time::timestamp(version.last_modified_ms)),
        version_id: version_header(&version, input.version_id.is_some()),
        ..Default::default()
    };
    if wants(ObjectAttributes::ETAG) {
        output.e_tag = Some(ETag::Strong(version.etag.clone()));
    }
    if wants(ObjectAttributes::CHECKSUM)
        && let Some(stored) = &version.checksum
    {
        let mut sum = checksum::to_dto(stored);
        sum.checksum_type = Some(checksum::checksum_type(stored));
        output.checksum = Some(sum);
    }
    if wants(ObjectAttributes::OBJECT_SIZE) {
        output.object_size = Some(
            i64::try_from(version.size)
                .map_err(|_| s3_error!(InternalError, "object size out of range"))?,
        );
    }
    if wants(ObjectAttributes::STORAGE_CLASS) {
        output.storage_class = Some(StorageClass::from(
            version
                .storage_class
                .clone()
                .unwrap_or_else(|| StorageClass::STANDARD.to_owned()),
        ));
    }
    if wants(ObjectAttributes::OBJECT_PARTS) && !version.parts.is_empty() {
        let part_sums = version
            .checksum
            .as_ref()
            .filter(|c| c.parts.len() == version.parts.len());
        output.object_parts = Some(match part_sums {
            Some(sums) => object_parts(
                &version.parts,
                sums,
                input.max_parts,
                input.part_number_marker,
            )?,
            // S3 lists the parts only of an object uploaded with an
            // additional checksum; of others it gives the count alone.
            None => GetObjectAttributesParts {
                total_parts_count: i32::try_from(version.parts.len()).ok(),
                ..Default::default()
            },
        });
    }
    let body = attributes_document(&output)?;
    // The document is written: s3s takes only the header fields, so it
    // does not write the body a second time for nothing.
    let mut response = S3Response::new(GetObjectAttributesOutput {
        delete_marker: output.delete_marker,
        last_modified: output.last_modified,
        request_charged: output.request_charged,
        version_id: output.version_id,
        ..Default::default()
    });
    response.extensions.insert(PrerenderedBody(body));
    Ok(response)
}

/// GetObjectAttributes' document as s3s writes it, but for the ETag:
/// S3 writes this one bare (`<ETag>5d41...</ETag>`), where its other
/// documents and headers quote it, as s3s always does.
fn attributes_document(output: &GetObjectAttributesOutput) -> S3Result<bytes::Bytes> {
    use s3s::xml::Serialize as _;
    let mut document = Vec::with_capacity(ATTRIBUTES_DOCUMENT_BYTES);
    {
        let mut serializer = s3s::xml::Serializer::new(&mut document);
        serializer
            .decl()
            .and_then(|()| output.serialize(&mut serializer))
            .map_err(|e| error::internal("writing GetObjectAttributes", e))?;
    }
    let Some(etag) = &output.e_tag else {
        return Ok(document.into());
    };
    let document = String::from_utf8(document)
        .map_err(|e| error::internal("writing GetObjectAttributes", e))?;
    let quoted = format!("<ETag>\"{}\"</ETag>", etag.value());
    let bare = format!("<ETag>{}</ETag>", etag.value());
    Ok(document.replacen(&quoted, &bare, 1).into())
}

/// A GetObjectAttributes document without parts is a few hundred bytes.
const ATTRIBUTES_DOCUMENT_BYTES: usize = 512;

/// One page of a multipart object's parts for GetObjectAttributes, each
/// with its checksum (the object keeps the parts' checksums).
fn object_parts(
    sizes: &[u64],
    sums: &arbor_meta::records::ObjectChecksum,
    max_parts: Option<i32>,
    marker: Option<i32>,
) -> S3Result<GetObjectAttributesParts> {
    let max = match max_parts {
        None => LIST_PARTS_MAX,
        Some(n) => usize::try_from(n)
            .map_err(|_| s3_error!(InvalidArgument, "max-parts must be a non-negative integer"))?
            .min(LIST_PARTS_MAX),
    };
    let after = match marker {
        None => 0,
        Some(n) => usize::try_from(n).map_err(|_| {
            s3_error!(
                InvalidArgument,
                "part-number-marker must be a non-negative integer"
            )
        })?,
    };
    let total = sizes.len();
    let mut parts = Vec::new();
    for (index, size) in sizes.iter().enumerate().skip(after).take(max) {
        let mut part = ObjectPart {
            part_number: i32::try_from(index + 1).ok(),
            size: i64::try_from(*size).ok(),
            ..Default::default()
        };
        if let Some(value) = sums.parts.get(index) {
            let one = arbor_meta::records::ObjectChecksum {
                value: value.clone(),
                parts: Vec::new(),
                ..sums.clone()
            };
            checksum::set_checksum_fields!(part, &one);
        }
        parts.push(part);
    }
    let last = after.saturating_add(parts.len());
    let truncated = last < total;
    Ok(GetObjectAttributesParts {
        is_truncated: Some(truncated),
        max_parts: i32::try_from(max).ok(),
        next_part_number_marker: if truncated {
            i32::try_from(last).ok()
        } else {
            None
        },
        part_number_marker: Some(i32::try_from(after).unwrap_or(i32::MAX)),
        parts: Some(parts),
        total_parts_count: i32::try_from(total).ok(),
    })
}

pub async fn copy(
    s3: &Arbor,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let S3Request {
        input,
        headers,
        extensions,
        ..
    } = req;
    record_target("CopyObject", &input.bucket, Some(&input.key));
    encryption::refuse_on_write(encryption::asked!(input))?;
    let acl = acl::object_acl(input.acl.as_ref(), &headers)?;
    let asked_lock = lock::asked_lock(
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
        s3.now_ms(),
    )?;
    lock::check_lockable(s3, &input.bucket, asked_lock.as_ref()).await?;
    acl::check_public_allowed(s3, &input.bucket, acl).await?;
    let (source_bucket, source_key, source, source_version_id) = copy_source_version(
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
    if source.size > PUT_OBJECT_SIZE_MAX {
        return Err(s3_error!(
            InvalidRequest,
            "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120"
        ));
    }
    let replace = match input
        .metadata_directive
        .as_ref()
        .map(MetadataDirective::as_str)
    {
        None | Some(MetadataDirective::COPY) => false,
        Some(MetadataDirective::REPLACE) => true,
        Some(_) => return Err(s3_error!(InvalidArgument, "Unknown metadata directive.")),
    };
    let storage_class = storage_class(input.storage_class)?;
    // A copy of a version named by its id onto its own key is how S3
    // restores an earlier version (and AWS's guides say so): allowed as it
    // is. Only a copy of the current version onto itself must change
    // something.
    let names_version = matches!(
        &input.copy_source,
        CopySource::Bucket {
            version_id: Some(_),
            ..
        }
    );
    let onto_itself = source_bucket == input.bucket && source_key == input.key;
    if onto_itself
        && !names_version
        && !replace
        && storage_class.is_none()
        && input.website_redirect_location.is_none()
    {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let (object_headers, user_metadata) = if replace {
        let object_headers = ObjectHeaders {
            content_type: input.content_type.map(|m| m.to_string()),
            content_encoding: stored_content_encoding(input.content_encoding),
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires.as_ref().and_then(http_date),
        };
        let metadata = user_metadata(input.metadata, input.website_redirect_location)?;
        (object_headers, metadata)
    } else {
        let mut metadata = without_website_redirect(&source.user_metadata);
        if let Some(location) = input.website_redirect_location {
            metadata.push((
                WEBSITE_REDIRECT_ENTRY.to_owned(),
                checked_redirect(location)?,
            ));
            metadata.sort();
        }
        (source.headers.clone(), metadata)
    };
    let condition = write_condition_from_headers(&headers)?;
    check_condition_early(s3, &input.bucket, &input.key, &condition).await?;
    let tags = match input
        .tagging_directive
        .as_ref()
        .map(TaggingDirective::as_str)
    {
        None | Some(TaggingDirective::COPY) => source.tags.clone(),
        Some(TaggingDirective::REPLACE) => tagging::from_header(input.tagging.as_deref())?,
        Some(_) => return Err(s3_error!(InvalidArgument, "Unknown tagging directive.")),
    };
    // A checksum asked for that the source does not have is computed
    // over its bytes; otherwise the copy shares the source's chunks and
    // no byte is read or written.
    let copied_checksum = match input.checksum_algorithm.as_ref() {
        None => source.checksum.clone(),
        Some(asked) => Some(copy_checksum(s3, &source, asked).await?),
    };
    let version = ObjectVersion {
        generation: 0,
        size: source.size,
        etag: source.etag.clone(),
        last_modified_ms: s3.now_ms(),
        headers: object_headers,
        user_metadata,
        checksum: copied_checksum,
        storage_class: storage_class.or_else(|| source.storage_class.clone()),
        parts: source.parts.clone(),
        tags,
        // A copy's ACL is the request's, never the source's.
        acl,
        data: source.data.clone(),
        stamp: Default::default(),
    };
    let committed = match s3
        .meta()
        .copy_object(
            &input.bucket,
            &input.key,
            version,
            condition.clone(),
            asked_lock,
        )
        .await
    {
        Ok(committed) => committed,
        Err(e) => return Err(lock::write_error(changed_meanwhile(e, &condition))),
    };
    let mut result = CopyObjectResult {
        e_tag: Some(ETag::Strong(committed.etag.clone())),
        last_modified: Some(time::timestamp(committed.last_modified_ms)),
        ..Default::default()
    };
    if let Some(stored) = &committed.checksum {
        checksum::set_checksum_fields!(result, stored);
        result.checksum_type = Some(checksum::checksum_type(stored));
    }
    let expiration =
        lifecycle::expiration(&extensions, &input.bucket, &input.key, &committed).await;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(result),
        copy_source_version_id: source_version_id,
        version_id: version_header(&committed, false),
        expiration,
        ..Default::default()
    }))
}

/// The full-object checksum `asked` (CopyObject's
/// `x-amz-checksum-algorithm`) of `source`: the stored one if it is
/// that, else computed by reading the source through once.
async fn copy_checksum(
    s3: &Arbor,
    source: &ObjectVersion,
    asked: &ChecksumAlgorithm,
) -> S3Result<arbor_meta::records::ObjectChecksum> {
    let algorithm = checksum::parse_algorithm(asked.as_str()).ok_or_else(|| {
        s3_error!(
            InvalidRequest,
            "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]"
        )
    })?;
    if let Some(stored) = &source.checksum
        && stored.full_object
        && stored.algorithm == algorithm
    {
        return Ok(arbor_meta::records::ObjectChecksum {
            parts: Vec::new(),
            ..stored.clone()
        });
    }
    use futures::StreamExt as _;
    let mut hasher = checksum::hasher(algorithm);
    let mut body =
        data_path::read_body(s3.chunks(), source, 0..source.size, Locations::default()).await?;
    while let Some(piece) = body.next().await {
        // A chunk that cannot be read is the chunk store's error (503
        // when no replica answers), as on a GET.
        let piece = piece.map_err(|e| match e.downcast::<arbor_chunkstore::ChunkError>() {
            Ok(chunk) => error::from_chunk(*chunk),
            Err(other) => error::internal("reading the copy source", other),
        })?;
        hasher.update(&piece);
    }
    let computed = hasher.finalize();
    let value = checksum::value(&computed, algorithm)
        .ok_or_else(|| error::internal("checksumming the copy source", "no value"))?;
    Ok(arbor_meta::records::ObjectChecksum {
        algorithm,
        value: value.to_owned(),
        full_object: true,
        parts: Vec::new(),
    })
}

pub async fn delete(
    s3: &Arbor,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let input = req.input;
    if super::has_query_flag(&req.uri, RECURSIVE_DELETE_PARAM) {
        return delete_directory(s3, &input).await;
    }
    record_target("DeleteObject", &input.bucket, Some(&input.key));
    // A condition is checked and applied in one metadata command
    // (compare-and-swap). A key with no current version answers 404
    // NoSuchKey: that is what AWS general purpose buckets observably do;
    // the API reference (written for directory buckets) says 204.
    let target = DeleteTarget {
        key: input.key.clone(),
        version_id: parse_version_id(input.version_id.as_deref())?,
        condition: input.if_match.as_ref().map(delete_condition),
        bypass_governance: input.bypass_governance_retention.unwrap_or(false),
    };
    let outcome = s3
        .meta()
        .write(DeleteKey {
            bucket: input.bucket.clone(),
            target,
            now_ms: s3.now_ms(),
        })
        .await
        .map_err(|e| match e {
            MetaError::PreconditionFailed => error::precondition_failed("If-Match"),
            e => error::from_meta(e),
        })?;
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: outcome.delete_marker.then_some(true),
        version_id: outcome.version_id.map(|id| id.to_string()),
        ..Default::default()
    }))
}

/// `If-Match` on a delete (`*`: the key must exist), or an `<ETag>` of a
/// DeleteObjects entry (where `*` means the same).
fn delete_condition(condition: &ETagCondition) -> DeleteCondition {
    match condition.as_etag() {
        Some(etag) if etag.value() != "*" => DeleteCondition::ETag(etag.value().to_owned()),
        _ => DeleteCondition::Exists,
    }
}

/// The query parameter that makes a DELETE of a key ending in `/` delete
/// the directory with every key below it (Arbor's extension; query
/// parameters are always covered by the SigV4 signature).
pub const RECURSIVE_DELETE_PARAM: &str = "arbor-recursive";

/// `DELETE /bucket/prefix/?arbor-recursive`: the directory `prefix/` and
/// everything below it leave the namespace in one metadata command; their
/// metadata and chunks are released in the background. 204 whether or not
/// the directory existed, as DeleteObject answers.
async fn delete_directory(
    s3: &Arbor,
    input: &DeleteObjectInput,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    record_target("DeleteDirectory", &input.bucket, Some(&input.key));
    reject_version_id(input.version_id.as_deref())?;
    if !input.key.ends_with('/') {
        return Err(s3_error!(
            InvalidArgument,
            "A recursive delete names a key ending in '/'"
        ));
    }
    s3.meta()
        .delete_directory(&input.bucket, &input.key, s3.now_ms())
        .await
        .map_err(error::from_meta)?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

/// DeleteObjects: up to 1000 keys deleted by one metadata command; per-key
/// failures are reported in the response, and Quiet mode reports only those.
/// An entry's `<ETag>` makes its delete conditional, as `If-Match` does
/// DeleteObject's: a mismatch fails that key alone with PreconditionFailed.
pub async fn delete_many(
    s3: &Arbor,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let input = req.input;
    record_target("DeleteObjects", &input.bucket, None);
    let objects = input.delete.objects;
    if objects.len() > DELETE_OBJECTS_KEYS_MAX {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let bypass_governance = input.bypass_governance_retention.unwrap_or(false);
    // A malformed version id fails on its own; the rest are deleted by one
    // metadata command, each key reported on its own.
    let mut outcomes: Vec<(ObjectIdentifier, Result<DeleteOutcome, S3Error>)> =
        Vec::with_capacity(objects.len());
    let mut pending = Vec::with_capacity(objects.len());
    let mut targets = Vec::with_capacity(objects.len());
    for object in objects {
        match parse_version_id(object.version_id.as_deref()) {
            Ok(version_id) => {
                targets.push(DeleteTarget {
                    key: object.key.clone(),
                    version_id,
                    condition: object
                        .e_tag
                        .clone()
                        .map(|etag| delete_condition(&ETagCondition::ETag(etag))),
                    bypass_governance,
                });
                pending.push(object);
            }
            Err(e) => outcomes.push((object, Err(e))),
        }
    }
    if pending.is_empty() {
        s3.meta()
            .head_bucket(&input.bucket)
            .await
            .map_err(error::from_meta)?;
    } else {
        let count = targets.len();
        let results = s3
            .meta()
            .write(DeleteKeys {
                bucket: input.bucket.clone(),
                targets,
                now_ms: s3.now_ms(),
            })
            .await
            .map_err(error::from_meta)?;
        if results.len() != count {
            return Err(error::internal(
                "DeleteKeys",
                format!("{} outcomes for {count} keys", results.len()),
            ));
        }
        for (object, result) in pending.into_iter().zip(results) {
            outcomes.push((object, result.map_err(error::from_meta)));
        }
    }
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (object, result) in outcomes {
        match result {
            Ok(_) if quiet => {}
            Ok(outcome) => {
                let id = outcome.version_id.map(|id| id.to_string());
                // Without a version id, a delete marker was added: S3 names
                // it as DeleteMarkerVersionId; with one, the version named
                // goes, and a marker among them says so.
                let (version_id, marker_id) = match (&object.version_id, outcome.delete_marker) {
                    (None, _) => (None, id.filter(|_| outcome.delete_marker)),
                    (Some(_), true) => (id.clone(), id),
                    (Some(_), false) => (id, None),
                };
                deleted.push(DeletedObject {
                    key: Some(object.key),
                    version_id,
                    delete_marker: outcome.delete_marker.then_some(true),
                    delete_marker_version_id: marker_id,
                });
            }
            Err(e) => errors.push(Error {
                code: Some(e.code().as_str().to_owned()),
                message: e.message().map(str::to_owned),
                key: Some(object.key),
                version_id: object.version_id,
            }),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: Some(errors),
        ..Default::default()
    }))
}

/// The version `x-amz-copy-source` names, with its bucket and key, once the
/// copy-source conditions hold (CopyObject, UploadPartCopy), and the source
/// version id to answer with (`x-amz-copy-source-version-id`).
pub(super) async fn copy_source_version(
    s3: &Arbor,
    source: &CopySource,
    conditions: Conditions<'_>,
) -> S3Result<(String, String, ObjectVersion, Option<String>)> {
    let (bucket, key, version_id) = copy_source(source)?;
    let version = match readable_version(s3, &bucket, &key, version_id.as_deref()).await {
        Ok(version) => version,
        // S3 refuses a copy of a delete marker named by its id with 400.
        Err(e) if *e.code() == S3ErrorCode::MethodNotAllowed => {
            return Err(s3_error!(
                InvalidRequest,
                "The source of a copy request may not specifically refer to a delete marker by version id."
            ));
        }
        Err(e) => return Err(e),
    };
    conditions.at(s3.now_ms()).check(
        Target::CopySource,
        &version.etag,
        version.last_modified_ms,
    )?;
    let answered = version_header(&version, version_id.is_some());
    Ok((bucket, key, version, answered))
}

/// The bucket, key and version id of `x-amz-copy-source`.
fn copy_source(source: &CopySource) -> S3Result<(String, String, Option<String>)> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => Ok((
            bucket.to_string(),
            key.to_string(),
            version_id.as_deref().map(str::to_owned),
        )),
        CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => Err(s3_error!(
            NotImplemented,
            "Copying from access points and outposts is not supported"
        )),
    }
}

/// An operation on the current version only (a recursive delete) accepts
/// no version id but `null`.
pub(super) fn reject_version_id(version_id: Option<&str>) -> S3Result<()> {
    match version_id {
        None | Some("null") => Ok(()),
        Some(_) => Err(s3_error!(
            NotImplemented,
            "This operation acts on the current version only."
        )),
    }
}

/// A `versionId` a client sent; one Arbor never issues is 400
/// InvalidArgument, as S3 answers a malformed id.
pub(super) fn parse_version_id(id: Option<&str>) -> S3Result<Option<VersionId>> {
    id.map(|id| {
        VersionId::parse(id)
            .ok_or_else(|| s3_error!(InvalidArgument, "Invalid version id specified"))
    })
    .transpose()
}

/// `x-amz-version-id` for a version: its id when it has one of its own,
/// and `null` too when the request named a version.
pub(super) fn version_header(version: &ObjectVersion, asked: bool) -> Option<String> {
    version_id_header(version.version_id(), asked)
}

/// [`version_header`] for a version known by its id.
pub(super) fn version_id_header(id: VersionId, asked: bool) -> Option<String> {
    (id != VersionId::Null || asked).then(|| id.to_string())
}

/// The version a read names, or the current one, as S3 serves it: a
/// delete marker is 404 NoSuchKey when current, 405 MethodNotAllowed when
/// named by its id, each with `x-amz-delete-marker: true` and its id.
pub(super) async fn readable_version(
    s3: &Arbor,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<ObjectVersion> {
    readable_version_locked(s3, bucket, key, version_id, None)
        .await
        .map(|(version, _, _)| version)
}

/// As [`readable_version`], with the version's retention and legal hold,
/// and, given `span`, where the chunks holding those bytes are: the same
/// metadata read answers both (docs/design.md, "Read path").
async fn readable_version_locked(
    s3: &Arbor,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    span: Option<ReadSpan>,
) -> S3Result<(ObjectVersion, VersionLock, Locations)> {
    let id = parse_version_id(version_id)?;
    let read = match span {
        None => s3
            .meta()
            .read(GetReadableVersion {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: id,
            })
            .await
            .map(|(version, lock)| (version, lock, Locations::default())),
        Some(span) => s3
            .meta()
            .read(GetLocatedVersion {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: id,
                span,
            })
            .await
            .map(|read| {
                let locations = Locations::from_records(read.chunks);
                (read.version, read.lock, locations)
            }),
    };
    let (version, lock, locations) = read.map_err(error::from_meta)?;
    if !version.stamp.delete_marker {
        return Ok((version, lock, locations));
    }
    Err(delete_marker_error(&version, id.is_some()))
}

/// The answer to a read of a delete marker, as S3 gives it: 404 NoSuchKey
/// when it is the current version, 405 MethodNotAllowed when the request
/// named it (and for operations S3 never allows on one, such as tagging),
/// each with `x-amz-delete-marker: true`, its id and its time.
pub(super) fn delete_marker_error(marker: &ObjectVersion, not_allowed: bool) -> S3Error {
    let e = if not_allowed {
        s3_error!(
            MethodNotAllowed,
            "The specified method is not allowed against this resource."
        )
    } else {
        s3_error!(NoSuchKey, "The specified key does not exist.")
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-amz-delete-marker",
        http::HeaderValue::from_static("true"),
    );
    let fields = [
        ("x-amz-version-id", Some(marker.version_id().to_string())),
        (
            "last-modified",
            http_date(&time::timestamp(marker.last_modified_ms)),
        ),
    ];
    for (name, value) in fields {
        if let Some(value) = value.and_then(|v| http::HeaderValue::try_from(v).ok()) {
            headers.insert(name, value);
        }
    }
    error::with_headers(e, headers)
}

/// S3's storage classes are accepted and recorded; Arbor stores every class
/// alike. `STANDARD` is the default and not recorded.
pub(super) fn storage_class(class: Option<StorageClass>) -> S3Result<Option<String>> {
    let Some(class) = class else { return Ok(None) };
    match class.as_str() {
        StorageClass::STANDARD => Ok(None),
        StorageClass::REDUCED_REDUNDANCY
        | StorageClass::STANDARD_IA
        | StorageClass::ONEZONE_IA
        | StorageClass::INTELLIGENT_TIERING
        | StorageClass::GLACIER
        | StorageClass::DEEP_ARCHIVE
        | StorageClass::GLACIER_IR
        | StorageClass::OUTPOSTS
        | StorageClass::SNOW
        | StorageClass::EXPRESS_ONEZONE => Ok(Some(class.as_str().to_owned())),
        _ => Err(s3_error!(
            InvalidStorageClass,
            "The storage class you specified is not valid"
        )),
    }
}

pub(super) fn empty_body() -> StreamingBlob {
    StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
}

/// `x-amz-meta-*` as stored: names lowercased, sorted, within S3's 2 KiB;
/// and `x-amz-website-redirect-location`, kept among them under a name of
/// its own ([`WEBSITE_REDIRECT_ENTRY`]) so version records keep their
/// format.
pub(super) fn user_metadata(
    metadata: Option<Metadata>,
    website_redirect: Option<String>,
) -> S3Result<Vec<(String, String)>> {
    let mut pairs: Vec<(String, String)> = metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    if pairs.iter().any(|(k, _)| k == WEBSITE_REDIRECT_ENTRY) {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-meta-{WEBSITE_REDIRECT_ENTRY} is reserved: Arbor keeps x-amz-website-redirect-location under it."
        ));
    }
    let size: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > USER_METADATA_SIZE_MAX {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size."
        ));
    }
    if let Some(location) = website_redirect {
        pairs.push((
            WEBSITE_REDIRECT_ENTRY.to_owned(),
            checked_redirect(location)?,
        ));
    }
    pairs.sort();
    Ok(pairs)
}

/// The name `x-amz-website-redirect-location` is stored under among a
/// version's user metadata; `x-amz-meta-` with it is refused on writes.
/// Versions written before it was kept have no such entry.
const WEBSITE_REDIRECT_ENTRY: &str = "arbor-website-redirect-location";

/// S3's bound on a website redirect location.
const WEBSITE_REDIRECT_MAX: usize = 2048;

/// A website redirect location as S3 takes it: a path in the bucket (`/`
/// first) or an `http://` or `https://` URL, at most 2 KiB.
fn checked_redirect(location: String) -> S3Result<String> {
    let well_formed = ["/", "http://", "https://"]
        .iter()
        .any(|prefix| location.starts_with(prefix));
    // A control character (possible in a browser upload's form field)
    // could not be answered as a header.
    let answerable = !location.chars().any(char::is_control);
    if !well_formed || !answerable || location.len() > WEBSITE_REDIRECT_MAX {
        return Err(error::invalid_redirect_location());
    }
    Ok(location)
}

/// A version's user metadata without its website redirect location, as a
/// copy with the COPY directive keeps it: S3 copies no redirect.
fn without_website_redirect(pairs: &[(String, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .filter(|(k, _)| k != WEBSITE_REDIRECT_ENTRY)
        .cloned()
        .collect()
}

/// The version's `x-amz-website-redirect-location`, if it has one.
fn website_redirect(version: &ObjectVersion) -> Option<String> {
    version
        .user_metadata
        .iter()
        .find(|(k, _)| k == WEBSITE_REDIRECT_ENTRY)
        .map(|(_, v)| v.clone())
}

fn metadata_map(version: &ObjectVersion) -> Option<Metadata> {
    let metadata: Metadata = version
        .user_metadata
        .iter()
        .filter(|(k, _)| k != WEBSITE_REDIRECT_ENTRY)
        .cloned()
        .collect::<HashMap<_, _>>();
    (!metadata.is_empty()).then_some(metadata)
}

/// The body's MD5 a write's `Content-MD5` names, if it has one. s3s
/// drops an empty header; S3 refuses it as any value that is not 16
/// bytes of base64: 400 InvalidDigest.
pub(super) fn expected_md5(
    parsed: Option<&str>,
    headers: &http::HeaderMap,
) -> S3Result<Option<[u8; 16]>> {
    let value = parsed.or_else(|| {
        headers
            .get("content-md5")
            .map(|v| v.to_str().unwrap_or_default())
    });
    value.map(decode_content_md5).transpose()
}

fn decode_content_md5(value: &str) -> S3Result<[u8; 16]> {
    let invalid = || s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid.");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| invalid())?;
    <[u8; 16]>::try_from(bytes.as_slice()).map_err(|_| invalid())
}

/// `If-None-Match: *` and `If-Match: "etag"` on a write.
pub(super) fn write_condition(
    if_match: Option<&IfMatch>,
    if_none_match: Option<&IfNoneMatch>,
) -> S3Result<WriteCondition> {
    match (if_match, if_none_match) {
        (None, None) => Ok(WriteCondition::None),
        (None, Some(c)) if c.is_any() => Ok(WriteCondition::IfNoneMatchAny),
        (None, Some(_)) => Err(s3_error!(
            NotImplemented,
            "If-None-Match on writes supports only '*'."
        )),
        (Some(c), None) => match c.as_etag() {
            Some(etag) => Ok(WriteCondition::IfMatch(etag.value().to_owned())),
            // `If-Match: *`: the key must exist, whatever its ETag.
            None => Err(s3_error!(
                NotImplemented,
                "If-Match on writes needs an ETag."
            )),
        },
        (Some(_), Some(_)) => Err(s3_error!(
            NotImplemented,
            "If-Match and If-None-Match together are not supported on writes."
        )),
    }
}

/// Destination conditions of CopyObject, which s3s 0.14 does not parse.
fn write_condition_from_headers(headers: &http::HeaderMap) -> S3Result<WriteCondition> {
    let parse = |name: &str| -> S3Result<Option<ETagCondition>> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => ETagCondition::parse_http_header(v.as_bytes())
                .map(Some)
                .map_err(|_| s3_error!(InvalidArgument, "Invalid conditional header")),
        }
    };
    let if_match = parse("if-match")?;
    let if_none_match = parse("if-none-match")?;
    write_condition(if_match.as_ref(), if_none_match.as_ref())
}

/// The Content-Encoding to store from a request's: `aws-chunked` is the
/// framing of a streaming upload (SigV4 streaming, `aws-chunked,gzip` or
/// `gzip, aws-chunked`), a transfer detail and never the object's, so it
/// is dropped, and an encoding of nothing else is no encoding.
pub(super) fn stored_content_encoding(value: Option<String>) -> Option<String> {
    let value = value?;
    let is_aws_chunked = |token: &str| token.trim().eq_ignore_ascii_case("aws-chunked");
    if !value.split(',').any(is_aws_chunked) {
        return Some(value);
    }
    let kept: Vec<&str> = value
        .split(',')
        .filter(|token| !is_aws_chunked(token))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .collect();
    if kept.is_empty() {
        None
    } else {
        Some(kept.join(", "))
    }
}

pub(super) fn http_date(ts: &Timestamp) -> Option<String> {
    let mut out = Vec::new();
    ts.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_location_must_be_answerable_as_a_header() {
        let code = |location: &str| {
            checked_redirect(location.to_owned())
                .expect_err(location)
                .code()
                .as_str()
                .to_owned()
        };
        assert!(checked_redirect("/other/page.html".to_owned()).is_ok());
        assert!(checked_redirect("https://example.com/a b".to_owned()).is_ok());
        for bad in [
            "/a\r\nx-evil: 1",
            "/a\u{1}",
            "http://x/\u{7f}",
            "ftp://x/",
            "page.html",
        ] {
            assert_eq!(code(bad), "InvalidRedirectLocation", "{bad:?}");
        }
    }

    #[test]
    fn aws_chunked_is_never_stored_as_a_content_encoding() {
        let stored = |value: &str| stored_content_encoding(Some(value.to_owned()));
        assert_eq!(stored("gzip, aws-chunked").as_deref(), Some("gzip"));
        assert_eq!(stored("aws-chunked,gzip").as_deref(), Some("gzip"));
        assert_eq!(stored("AWS-Chunked , gzip,br").as_deref(), Some("gzip, br"));
        assert_eq!(stored("aws-chunked"), None);
        assert_eq!(stored(" aws-chunked ,"), None);
        assert_eq!(stored("gzip").as_deref(), Some("gzip"));
        // Without aws-chunked the value is kept as sent.
        assert_eq!(stored("gzip,br").as_deref(), Some("gzip,br"));
        assert_eq!(stored_content_encoding(None), None);
    }

    #[test]
    fn a_content_md5_is_sixteen_bytes_of_base64_even_when_empty() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(expected_md5(None, &headers).expect("none"), None);
        let md5 = "rL0Y20zC+Fzt72VPzMSk2A==";
        assert!(expected_md5(Some(md5), &headers).expect("ok").is_some());
        headers.insert("content-md5", http::HeaderValue::from_static(""));
        let code = |parsed: Option<&str>, headers: &http::HeaderMap| {
            expected_md5(parsed, headers)
                .expect_err("invalid")
                .code()
                .clone()
        };
        assert_eq!(code(None, &headers), S3ErrorCode::InvalidDigest, "empty");
        assert_eq!(
            code(Some("YWJyYWNhZGFicmE="), &http::HeaderMap::new()),
            S3ErrorCode::InvalidDigest,
            "not 16 bytes"
        );
    }
}
