//! PostObject (browser uploads: `multipart/form-data` to `POST /bucket`
//! with a signed policy), streamed. s3s 0.14.1 reads a form's file whole
//! into memory before it checks anything, so the gateway serves these
//! forms itself, for every size: the fields are read up to the file
//! (`post_form`), the signature and the policy checked as AWS documents
//! them ("Browser-Based Uploads Using POST"), the access hooks of
//! `permission` called, and the file streamed into chunks through our
//! `S3` implementation like any PutObject, with the policy's
//! content-length-range enforced as it streams. A file over it fails the
//! PUT before anything is committed; its chunks are deleted, as for any
//! failed PUT.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use arbor_meta::clock::SharedClock;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use s3s::S3;
use s3s::access::S3Access;
use s3s::auth::Credentials;
use s3s::crypto::Checksum;
use s3s::dto::{ETag, PostObjectInput, StreamingBlob, Timestamp, TimestampFormat};
use s3s::host::S3Host;
use s3s::path::S3Path;
use s3s::post_policy::{PostPolicy, PostPolicyCondition};
use s3s::stream::ByteStream;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result, StdError, s3_error};
use tracing::Instrument;

use crate::admin::NamesWithAdmin;
use crate::http_server::VirtualHosts;
use crate::keyring::Keyring;
use crate::limits::{
    BODY_IDLE_TIMEOUT_SECS, FORM_FIELDS_SIZE_MAX, PUT_OBJECT_SIZE_MAX, UNREAD_BODY_DRAIN_MAX,
};
use crate::object_url::Endpoint;
use crate::permission::AccessControl;
use crate::post_form::{self, FileStep, Form, FormParser};
use crate::s3::Arbor;
use crate::signature_form::{CLOCK_SKEW_MAX_SECS, parse_amz_date, split_credential};

/// Fields no policy condition needs to name: the signature's own, the
/// file, and what AWS exempts (`x-ignore-*`).
fn exempt_from_policy(name: &str) -> bool {
    matches!(
        name,
        "x-amz-signature" | "signature" | "awsaccesskeyid" | "file" | "submit" | "policy"
    ) || name.starts_with("x-amz-server-side-encryption")
        || name.starts_with("x-ignore-")
}

/// What serves browser uploads.
pub struct PostUploads {
    pub s3: Arbor,
    pub keyring: Keyring,
    pub access: AccessControl,
    pub clock: SharedClock,
    pub hosts: Option<VirtualHosts>,
}

/// The request body, as s3s wraps it (a stream that is `Sync`).
type BodyStream = Pin<Box<s3s::Body>>;

impl PostUploads {
    /// The bucket a `POST` addresses; `None` if it addresses none (the
    /// root, or an object: s3s answers those).
    pub fn bucket_of<B>(&self, req: &http::Request<B>) -> Option<String> {
        let path = req.uri().path();
        let vh_bucket = match &self.hosts {
            Some(hosts) => {
                let host = req
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .or_else(|| req.uri().authority().map(http::uri::Authority::as_str))?;
                hosts
                    .parse_host_header(host)
                    .ok()?
                    .bucket()
                    .map(str::to_owned)
            }
            None => None,
        };
        let parsed = match &vh_bucket {
            Some(bucket) => s3s::path::parse_virtual_hosted_style_with_validation(
                Some(bucket),
                path,
                &NamesWithAdmin,
            ),
            None => s3s::path::parse_path_style_with_validation(path, &NamesWithAdmin),
        };
        match parsed.ok()? {
            S3Path::Bucket { bucket } => Some(bucket.into()),
            S3Path::Root | S3Path::Object { .. } => None,
        }
    }

    /// Serves a browser upload to `bucket`.
    pub async fn serve(
        &self,
        bucket: String,
        req: http::Request<hyper::body::Incoming>,
    ) -> S3Result<http::Response<s3s::Body>> {
        let span = tracing::Span::current();
        span.record("op", "PostObject");
        span.record("bucket", bucket.as_str());
        let (parts, body) = req.into_parts();
        let boundary = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(post_form::boundary);
        let mut reader = Some(FormReader {
            parser: FormParser::new(boundary.as_deref().unwrap_or_default()),
            body: Box::pin(s3s::Body::from(body)),
        });
        let answer = match boundary {
            Some(_) => self.upload(bucket, parts, &mut reader).await,
            None => Err(post_form::malformed()),
        };
        // Refused before the file streamed: the rest of the form is read
        // (within bounds) so the client hears the answer.
        if answer.is_err()
            && let Some(reader) = reader
        {
            tokio::spawn(drain(reader.body).in_current_span());
        }
        answer
    }

    async fn upload(
        &self,
        bucket: String,
        parts: http::request::Parts,
        reader: &mut Option<FormReader>,
    ) -> S3Result<http::Response<s3s::Body>> {
        let form = match reader.as_mut() {
            Some(reader) => reader.read_fields().await?,
            None => return Err(post_form::malformed()),
        };
        let now = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(self.clock.now_ms()) * 1_000_000,
        )
        .map_err(|e| crate::error::internal("reading the clock", e))?;
        let signed = self.authenticate(&form, now).await?;
        let (min, max) = match form.field("policy") {
            Some(encoded) => {
                let policy = PostPolicy::from_base64(encoded).map_err(|e| {
                    s3_error!(e, InvalidPolicyDocument, "Invalid Policy: Invalid JSON.")
                })?;
                check_expiration_form(encoded)?;
                if now >= time::OffsetDateTime::from(policy.expiration.clone()) {
                    return Err(S3Error::with_message(
                        S3ErrorCode::AccessDenied,
                        "Invalid according to Policy: Policy expired.",
                    ));
                }
                check_conditions(&policy, &form, &bucket)?
            }
            None => (0, PUT_OBJECT_SIZE_MAX),
        };
        let endpoint = Endpoint::of_bucket_request(&parts.uri, &parts.headers);
        let mut extensions = parts.extensions;
        self.access.admit(signed.as_ref(), &mut extensions).await?;
        extensions.insert(form.found.clone());
        let input = post_object_input(&form, bucket)?;
        let mut req = S3Request {
            input,
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            extensions,
            credentials: signed,
            region: None,
            service: Some("s3".to_owned()),
            trailing_headers: None,
        };
        self.access.post_object(&mut req).await?;
        // Admitted: the file streams into the PUT.
        let file = reader
            .take()
            .ok_or_else(post_form::malformed)?
            .into_file(min, max);
        req.input.body = Some(StreamingBlob::new(file));
        let bucket = req.input.bucket.clone();
        let key = req.input.key.clone();
        let redirect = req.input.success_action_redirect.clone();
        let status = req.input.success_action_status;
        checksum_fields_as_headers(&mut req);
        let output = self.s3.post_object(req).await?.output;
        let location = endpoint.url(&bucket, &key);
        answer(
            &bucket,
            &key,
            &location,
            redirect.as_deref(),
            status,
            &output,
        )
    }

    /// Checks the form's signature: SigV4 (`x-amz-signature`), SigV2
    /// (`signature`), or none (anonymous, for what the bucket allows
    /// anyone). The signer's credentials, if any.
    async fn authenticate(
        &self,
        form: &Form,
        now: time::OffsetDateTime,
    ) -> S3Result<Option<Credentials>> {
        if let Some(signature) = form.field("x-amz-signature") {
            let missing = || s3_error!(InvalidRequest, "missing required multipart fields");
            let policy = form.field("policy").ok_or_else(missing)?;
            let algorithm = form.field("x-amz-algorithm").ok_or_else(missing)?;
            let credential = form.field("x-amz-credential").ok_or_else(missing)?;
            let amz_date = form.field("x-amz-date").ok_or_else(missing)?;
            if algorithm != "AWS4-HMAC-SHA256" {
                return Err(s3_error!(
                    NotImplemented,
                    "x-amz-algorithm other than AWS4-HMAC-SHA256 is not implemented"
                ));
            }
            let [access_key, day, region, service, terminator] = split_credential(credential)
                .ok_or_else(|| s3_error!(InvalidRequest, "invalid field: x-amz-credential"))?;
            if terminator != "aws4_request" {
                return Err(s3_error!(InvalidRequest, "invalid field: x-amz-credential"));
            }
            let signed_at = parse_amz_date(amz_date)
                .ok_or_else(|| s3_error!(InvalidRequest, "invalid field: x-amz-date"))?;
            // The signed policy names the date, credential and algorithm
            // of the form.
            let parsed = PostPolicy::from_base64(policy).map_err(|e| {
                s3_error!(e, InvalidPolicyDocument, "Invalid Policy: Invalid JSON.")
            })?;
            for (field, value) in [
                ("x-amz-date", amz_date),
                ("x-amz-credential", credential),
                ("x-amz-algorithm", algorithm),
            ] {
                if eq_condition(&parsed, field) != Some(value) {
                    return Err(S3Error::with_message(
                        S3ErrorCode::InvalidPolicyDocument,
                        format!("{field} does not match policy"),
                    ));
                }
            }
            if !amz_date.starts_with(day) {
                return Err(s3_error!(
                    SignatureDoesNotMatch,
                    "credential scope date does not match x-amz-date"
                ));
            }
            if (now - signed_at).abs() > time::Duration::seconds(CLOCK_SKEW_MAX_SECS) {
                return Err(S3Error::with_message(
                    S3ErrorCode::RequestTimeTooSkewed,
                    "The difference between the request time and the current time is too large.",
                ));
            }
            if service != "s3" {
                return Err(s3_error!(
                    NotImplemented,
                    "unknown service '{service}' in credential scope; expected 's3'"
                ));
            }
            let (secret, _) = self.keyring.find(access_key).await?;
            let mut key = hmac::<s3s::crypto::Sha256>(
                format!("AWS4{}", secret.expose()).as_bytes(),
                day.as_bytes(),
            );
            for part in [region, service, "aws4_request"] {
                key = hmac::<s3s::crypto::Sha256>(&key, part.as_bytes());
            }
            let expected = hex::encode(hmac::<s3s::crypto::Sha256>(&key, policy.as_bytes()));
            if !same(expected.as_bytes(), signature.as_bytes()) {
                return Err(signature_mismatch());
            }
            return Ok(Some(Credentials {
                access_key: access_key.to_owned(),
                secret_key: secret,
            }));
        }
        if let Some(signature) = form.field("signature") {
            let missing = || s3_error!(InvalidRequest, "missing required multipart fields");
            let policy = form.field("policy").ok_or_else(missing)?;
            let access_key = form.field("awsaccesskeyid").ok_or_else(missing)?;
            let (secret, _) = self.keyring.find(access_key).await?;
            use base64::Engine as _;
            let expected =
                base64::engine::general_purpose::STANDARD.encode(hmac::<s3s::crypto::Sha1>(
                    secret.expose().as_bytes(),
                    policy.as_bytes(),
                ));
            if !same(expected.as_bytes(), signature.as_bytes()) {
                return Err(signature_mismatch());
            }
            return Ok(Some(Credentials {
                access_key: access_key.to_owned(),
                secret_key: secret,
            }));
        }
        // A form that names a signer but carries no signature is not an
        // anonymous upload.
        for (signer, signature) in [
            ("awsaccesskeyid", "Signature"),
            ("x-amz-credential", "X-Amz-Signature"),
        ] {
            if form.field(signer).is_some() {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    format!(
                        "Bucket POST must contain a field named '{signature}'.  If it is specified, please check the order of the fields."
                    ),
                ));
            }
        }
        Ok(None)
    }
}

/// The policy's `expiration` must be ISO 8601 in UTC as AWS writes it
/// (`2030-01-01T00:00:00Z`, fractions of a second allowed); s3s reads
/// looser forms. S3's 400 InvalidPolicyDocument otherwise.
fn check_expiration_form(encoded: &str) -> S3Result<()> {
    use base64::Engine as _;
    let invalid = |value: &str| {
        S3Error::with_message(
            S3ErrorCode::InvalidPolicyDocument,
            format!("Invalid Policy: Invalid 'expiration' value: '{value}'"),
        )
    };
    let json = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    let Some(expiration) = json
        .as_ref()
        .and_then(|json| json.get("expiration"))
        .and_then(serde_json::Value::as_str)
    else {
        return Err(invalid(""));
    };
    let bytes = expiration.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    let fraction = match bytes.get(19) {
        Some(b'.') => bytes
            .get(20..bytes.len().saturating_sub(1))
            .is_some_and(|part| !part.is_empty() && part.iter().all(u8::is_ascii_digit)),
        Some(b'Z') => bytes.len() == 20,
        _ => false,
    };
    let in_form = digits(0..4)
        && bytes.get(4) == Some(&b'-')
        && digits(5..7)
        && bytes.get(7) == Some(&b'-')
        && digits(8..10)
        && bytes.get(10) == Some(&b'T')
        && digits(11..13)
        && bytes.get(13) == Some(&b':')
        && digits(14..16)
        && bytes.get(16) == Some(&b':')
        && digits(17..19)
        && fraction
        && bytes.last() == Some(&b'Z');
    if in_form {
        Ok(())
    } else {
        Err(invalid(expiration))
    }
}

/// The form's `tagging` field, an XML Tagging document as the tagging
/// subresource takes, in the `x-amz-tagging` header's form
/// (`k1=v1&k2=v2`, URL-encoded) that PutObject reads.
fn tagging_field(form: &Form) -> S3Result<Option<String>> {
    let Some(xml) = form.field("tagging") else {
        return Ok(None);
    };
    let mut reader = s3s::xml::Deserializer::new(xml.as_bytes());
    let tagging = <s3s::dto::Tagging as s3s::xml::Deserialize>::deserialize(&mut reader)
        .map_err(|_| {
            s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            )
        })?;
    let pairs: Vec<String> = tagging
        .tag_set
        .iter()
        .map(|tag| {
            format!(
                "{}={}",
                urlencoding::encode(tag.key.as_deref().unwrap_or_default()),
                urlencoding::encode(tag.value.as_deref().unwrap_or_default())
            )
        })
        .collect();
    Ok(Some(pairs.join("&")))
}

fn signature_mismatch() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::SignatureDoesNotMatch,
        "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
    )
}

fn eq_condition<'a>(policy: &'a PostPolicy, name: &str) -> Option<&'a str> {
    policy.conditions.iter().find_map(|c| match c {
        PostPolicyCondition::Eq { field, value } if field == name => Some(value.as_str()),
        _ => None,
    })
}

/// HMAC (RFC 2104) over a 64-byte-block hash.
fn hmac<H: Checksum>(key: &[u8], message: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        let digest = H::checksum(key);
        let digest = digest.as_ref();
        block[..digest.len()].copy_from_slice(digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = H::new();
    inner.update(&block.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = H::new();
    outer.update(&block.map(|b| b ^ 0x5c));
    outer.update(inner.as_ref());
    outer.finalize().as_ref().to_vec()
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// S3's refusal of a form that fails one of its policy's conditions.
fn condition_failed(condition: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::AccessDenied,
        format!("Invalid according to Policy: Policy Condition failed: {condition}"),
    )
}

/// Checks every condition of `policy` but the file's length, and that
/// every field is named by one; the length range the file must fall in.
fn check_conditions(policy: &PostPolicy, form: &Form, bucket: &str) -> S3Result<(u64, u64)> {
    let value = |field: &str| -> S3Result<Option<String>> {
        if field == "bucket" {
            if let Some(named) = form.field("bucket")
                && named != bucket
            {
                return Err(condition_failed(&format!(
                    "[\"eq\", \"$bucket\", \"{bucket}\"]"
                )));
            }
            return Ok(Some(bucket.to_owned()));
        }
        // The key is checked as it will be stored: `${filename}` filled
        // in, as AWS checks it.
        if field == "key"
            && let Some(key) = form.field("key")
        {
            return Ok(Some(
                post_form::fill_filename(key, &form.found).unwrap_or_else(|| key.to_owned()),
            ));
        }
        Ok(form.field(field).map(str::to_owned))
    };
    let mut range = (0, PUT_OBJECT_SIZE_MAX);
    for condition in &policy.conditions {
        match condition {
            PostPolicyCondition::Eq { field, value: want } => {
                if value(field)?.as_deref() != Some(want.as_str()) {
                    return Err(condition_failed(&format!(
                        "[\"eq\", \"${field}\", \"{want}\"]"
                    )));
                }
            }
            PostPolicyCondition::StartsWith { field, prefix } => {
                if !value(field)?
                    .unwrap_or_default()
                    .starts_with(prefix.as_str())
                {
                    return Err(condition_failed(&format!(
                        "[\"starts-with\", \"${field}\", \"{prefix}\"]"
                    )));
                }
            }
            PostPolicyCondition::ContentLengthRange { min, max } => {
                range = (range.0.max(*min), range.1.min(*max));
            }
        }
    }
    for (name, _) in &form.fields {
        if exempt_from_policy(name) {
            continue;
        }
        let named = policy.conditions.iter().any(|c| match c {
            PostPolicyCondition::Eq { field, .. }
            | PostPolicyCondition::StartsWith { field, .. } => field == name,
            PostPolicyCondition::ContentLengthRange { .. } => false,
        });
        if !named {
            return Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                format!("Invalid according to Policy: Extra input fields: {name}"),
            ));
        }
    }
    Ok(range)
}

/// A field parsed as `T`; S3's InvalidArgument if it does not parse.
/// Form fields kept with the object and answered as headers of every
/// later GET and HEAD (user metadata too; the website redirect location
/// is checked with the rest of its rules, `s3::object::checked_redirect`).
const FIELDS_STORED_AS_HEADERS: &[&str] = &[
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-type",
];

/// Refuses a form whose stored fields hold a character no header value
/// may (a control character other than tab). A header cannot carry one,
/// but a form field can; stored, it would make every later read of the
/// object fail.
fn check_stored_fields(form: &Form) -> S3Result<()> {
    let stored =
        |name: &str| FIELDS_STORED_AS_HEADERS.contains(&name) || name.starts_with("x-amz-meta-");
    for (name, value) in &form.fields {
        if stored(name) && value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                format!("Invalid value for the form field {name}: {value:?}"),
            ));
        }
    }
    Ok(())
}

fn field<T: std::str::FromStr>(form: &Form, name: &str) -> S3Result<Option<T>> {
    form.field(name)
        .map(|value| {
            value.parse().map_err(|_| {
                S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    format!("Invalid value for the form field {name}: {value:?}"),
                )
            })
        })
        .transpose()
}

fn timestamp_field(
    form: &Form,
    name: &str,
    format: TimestampFormat,
) -> S3Result<Option<Timestamp>> {
    form.field(name)
        .map(|value| {
            Timestamp::parse(format, value).map_err(|_| {
                S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    format!("Invalid value for the form field {name}: {value:?}"),
                )
            })
        })
        .transpose()
}

/// The form's checksum fields (`x-amz-checksum-*`,
/// `x-amz-sdk-checksum-algorithm`) put where PutObject reads them, the
/// request's headers, in place of any the POST itself carries (they would
/// be of the whole form): the file is checked against them, and an Object
/// Lock field finds its digest.
fn checksum_fields_as_headers(req: &mut s3s::S3Request<PostObjectInput>) {
    let input = &req.input;
    let fields: [(&str, Option<&str>); 6] = [
        ("x-amz-checksum-crc32", input.checksum_crc32.as_deref()),
        ("x-amz-checksum-crc32c", input.checksum_crc32c.as_deref()),
        (
            "x-amz-checksum-crc64nvme",
            input.checksum_crc64nvme.as_deref(),
        ),
        ("x-amz-checksum-sha1", input.checksum_sha1.as_deref()),
        ("x-amz-checksum-sha256", input.checksum_sha256.as_deref()),
        (
            "x-amz-sdk-checksum-algorithm",
            input.checksum_algorithm.as_ref().map(|a| a.as_str()),
        ),
    ];
    let mut headers = std::mem::take(&mut req.headers);
    headers.remove("x-amz-trailer");
    for (name, value) in fields {
        headers.remove(name);
        // A value no header can carry: refused as a malformed checksum.
        if let Some(value) = value {
            let value = http::HeaderValue::from_str(value)
                .unwrap_or_else(|_| http::HeaderValue::from_static("-"));
            headers.insert(name, value);
        }
    }
    req.headers = headers;
}

/// The PostObject the form asks for (its body, the file, is added once
/// the form is admitted): the fields s3s's PutObject reads from a form,
/// by the same names.
fn post_object_input(form: &Form, bucket: String) -> S3Result<PostObjectInput> {
    check_stored_fields(form)?;
    let key = form.field("key").ok_or_else(|| {
        S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
        )
    })?;
    let metadata: s3s::dto::Metadata = form
        .fields
        .iter()
        .filter_map(|(name, value)| {
            let name = name.strip_prefix("x-amz-meta-")?;
            (!name.is_empty()).then(|| (name.to_owned(), value.clone()))
        })
        .collect();
    let success_action_redirect = form
        .field("success_action_redirect")
        .or_else(|| form.field("redirect"))
        .map(str::to_owned);
    Ok(PostObjectInput {
        bucket,
        key: key.to_owned(),
        acl: field(form, "x-amz-acl")?,
        bucket_key_enabled: field(form, "x-amz-server-side-encryption-bucket-key-enabled")?,
        cache_control: field(form, "cache-control")?,
        checksum_algorithm: field(form, "x-amz-sdk-checksum-algorithm")?,
        checksum_crc32: field(form, "x-amz-checksum-crc32")?,
        checksum_crc32c: field(form, "x-amz-checksum-crc32c")?,
        checksum_crc64nvme: field(form, "x-amz-checksum-crc64nvme")?,
        checksum_sha1: field(form, "x-amz-checksum-sha1")?,
        checksum_sha256: field(form, "x-amz-checksum-sha256")?,
        content_disposition: field(form, "content-disposition")?,
        content_encoding: field(form, "content-encoding")?,
        content_language: field(form, "content-language")?,
        content_md5: field(form, "content-md5")?,
        content_type: field(form, "content-type")?,
        expected_bucket_owner: field(form, "x-amz-expected-bucket-owner")?,
        expires: timestamp_field(form, "expires", TimestampFormat::HttpDate)?,
        grant_full_control: field(form, "x-amz-grant-full-control")?,
        grant_read: field(form, "x-amz-grant-read")?,
        grant_read_acp: field(form, "x-amz-grant-read-acp")?,
        grant_write_acp: field(form, "x-amz-grant-write-acp")?,
        if_match: field(form, "if-match")?,
        if_none_match: field(form, "if-none-match")?,
        metadata: (!metadata.is_empty()).then_some(metadata),
        object_lock_legal_hold_status: field(form, "x-amz-object-lock-legal-hold")?,
        object_lock_mode: field(form, "x-amz-object-lock-mode")?,
        object_lock_retain_until_date: timestamp_field(
            form,
            "x-amz-object-lock-retain-until-date",
            TimestampFormat::DateTime,
        )?,
        request_payer: field(form, "x-amz-request-payer")?,
        sse_customer_algorithm: field(form, "x-amz-server-side-encryption-customer-algorithm")?,
        sse_customer_key: field(form, "x-amz-server-side-encryption-customer-key")?,
        sse_customer_key_md5: field(form, "x-amz-server-side-encryption-customer-key-md5")?,
        ssekms_encryption_context: field(form, "x-amz-server-side-encryption-context")?,
        ssekms_key_id: field(form, "x-amz-server-side-encryption-aws-kms-key-id")?,
        server_side_encryption: field(form, "x-amz-server-side-encryption")?,
        storage_class: field(form, "x-amz-storage-class")?,
        tagging: match field(form, "x-amz-tagging")? {
            Some(header) => Some(header),
            None => tagging_field(form)?,
        },
        website_redirect_location: field(form, "x-amz-website-redirect-location")?,
        write_offset_bytes: field(form, "x-amz-write-offset-bytes")?,
        success_action_redirect,
        success_action_status: field(form, "success_action_status")?,
        ..Default::default()
    })
}

/// The answer AWS gives a stored upload: 303 to the form's redirect with
/// bucket, key and ETag; 200 or 201 (the PostResponse document) if the
/// form asks for it; 204 otherwise. The ETag header on each, and the
/// object's URL (`location`) in the Location header but on a redirect.
fn answer(
    bucket: &str,
    key: &str,
    location: &str,
    redirect: Option<&str>,
    status: Option<i32>,
    output: &s3s::dto::PostObjectOutput,
) -> S3Result<http::Response<s3s::Body>> {
    let etag = output.e_tag.as_ref().map(ETag::value).unwrap_or_default();
    let mut response = if let Some(redirect) = redirect {
        let invalid = || s3_error!(InvalidArgument, "Invalid redirect URL");
        if redirect.chars().any(char::is_control) {
            return Err(invalid());
        }
        let uri: http::Uri = redirect.parse().map_err(|_| invalid())?;
        if uri.scheme().is_none() || uri.authority().is_none() {
            return Err(invalid());
        }
        let separator = if uri.query().is_some() { '&' } else { '?' };
        let location = format!(
            "{redirect}{separator}bucket={}&key={}&etag={}",
            urlencoding::encode(bucket),
            urlencoding::encode(key),
            urlencoding::encode(&format!("\"{etag}\""))
        );
        let mut response = http::Response::new(s3s::Body::empty());
        *response.status_mut() = http::StatusCode::SEE_OTHER;
        response.headers_mut().insert(
            http::header::LOCATION,
            http::HeaderValue::from_str(&location).map_err(|_| invalid())?,
        );
        response
    } else {
        match status {
            Some(200) => http::Response::new(s3s::Body::empty()),
            Some(201) => {
                let document = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>\"{}\"</ETag></PostResponse>",
                    crate::xml_text::escaped(location),
                    crate::xml_text::escaped(bucket),
                    crate::xml_text::escaped(key),
                    crate::xml_text::escaped(etag),
                );
                let mut response = http::Response::new(s3s::Body::from(document.clone()));
                *response.status_mut() = http::StatusCode::CREATED;
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/xml"),
                );
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_LENGTH, document.len().into());
                response
            }
            _ => {
                let mut response = http::Response::new(s3s::Body::empty());
                *response.status_mut() = http::StatusCode::NO_CONTENT;
                response
            }
        }
    };
    if let Ok(value) = http::HeaderValue::from_str(&format!("\"{etag}\"")) {
        response.headers_mut().insert(http::header::ETAG, value);
    }
    if redirect.is_none()
        && let Ok(value) = http::HeaderValue::from_str(location)
    {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    if let Some(version) = &output.version_id
        && let Ok(value) = http::HeaderValue::from_str(version)
    {
        response.headers_mut().insert("x-amz-version-id", value);
    }
    Ok(response)
}

/// A form's body, read up to the file.
struct FormReader {
    parser: FormParser,
    body: BodyStream,
}

impl FormReader {
    /// The fields before the file; the body is left at the file's start.
    async fn read_fields(&mut self) -> S3Result<Form> {
        let idle = Duration::from_secs(BODY_IDLE_TIMEOUT_SECS);
        let mut at_end = false;
        loop {
            if let Some(form) = self.parser.fields(at_end)? {
                return Ok(form);
            }
            match tokio::time::timeout(idle, self.body.next()).await {
                Err(_) => return Err(request_timeout()),
                Ok(None) => at_end = true,
                Ok(Some(Ok(data))) => self.parser.push(&data),
                Ok(Some(Err(e))) => return Err(crate::error::from_body(e.as_ref())),
            }
        }
    }

    fn into_file(self, min: u64, max: u64) -> FileStream {
        FileStream {
            reader: self,
            size: 0,
            min,
            max: max.min(PUT_OBJECT_SIZE_MAX),
            state: FileState::Streaming,
            drained: 0,
        }
    }
}

/// Reads and drops the rest of a form that was refused, up to
/// `UNREAD_BODY_DRAIN_MAX` bytes and with the idle bound of any body, so
/// the connection is not reset under the answer; past that the
/// connection closes.
async fn drain(mut body: BodyStream) {
    let idle = Duration::from_secs(BODY_IDLE_TIMEOUT_SECS);
    let mut drained = 0usize;
    while drained <= UNREAD_BODY_DRAIN_MAX {
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(Ok(data))) => drained = drained.saturating_add(data.len()),
            Ok(None) => return,
            Ok(Some(Err(_))) | Err(_) => break,
        }
    }
    tracing::debug!(drained, "unread form dropped; the connection closes");
}

fn request_timeout() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::RequestTimeout,
        "Your socket connection to the server was not read from or written to within the timeout period.",
    )
}

#[derive(Debug, PartialEq, Eq)]
enum FileState {
    Streaming,
    /// The file has ended; what follows it is read and dropped, up to
    /// `FORM_FIELDS_SIZE_MAX` bytes, so the connection can carry the answer.
    Draining,
    /// The file was refused (its length); the rest of the form is unread.
    Refused,
    Done,
}

/// The file's bytes as they arrive, within the policy's length range: a
/// file over its maximum fails with EntityTooLarge as soon as it goes
/// over, one under its minimum with EntityTooSmall at its end. The PUT
/// that reads it then fails, and deletes what it wrote.
struct FileStream {
    reader: FormReader,
    size: u64,
    min: u64,
    max: u64,
    state: FileState,
    drained: usize,
}

impl FileStream {
    fn fail(&mut self, e: S3Error) -> Poll<Option<Result<Bytes, StdError>>> {
        self.state = FileState::Refused;
        Poll::Ready(Some(Err(Box::new(e))))
    }
}

impl Stream for FileStream {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.state {
                FileState::Done | FileState::Refused => return Poll::Ready(None),
                FileState::Draining => {
                    match self.reader.body.as_mut().poll_next(cx) {
                        Poll::Ready(Some(Ok(data))) => {
                            self.drained = self.drained.saturating_add(data.len());
                            if self.drained > FORM_FIELDS_SIZE_MAX {
                                self.state = FileState::Done;
                            }
                        }
                        // Whatever follows the file does not matter.
                        Poll::Ready(_) => self.state = FileState::Done,
                        // The answer need not wait for it.
                        Poll::Pending => self.state = FileState::Done,
                    }
                    continue;
                }
                FileState::Streaming => {}
            }
            match self.reader.parser.file_step() {
                FileStep::Data(data) => {
                    self.size = self.size.saturating_add(data.len() as u64);
                    if self.size > self.max {
                        return self.fail(S3Error::with_message(
                            S3ErrorCode::EntityTooLarge,
                            "Your proposed upload exceeds the maximum allowed size.",
                        ));
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                FileStep::End => {
                    if self.size < self.min {
                        return self.fail(S3Error::with_message(
                            S3ErrorCode::EntityTooSmall,
                            "Your proposed upload is smaller than the minimum allowed size.",
                        ));
                    }
                    self.state = FileState::Draining;
                }
                FileStep::NeedMore => match self.reader.body.as_mut().poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(data))) => self.reader.parser.push(&data),
                    Poll::Ready(Some(Err(e))) => {
                        self.state = FileState::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                    // The form ended inside the file.
                    Poll::Ready(None) => {
                        return self.fail(S3Error::with_message(
                            S3ErrorCode::IncompleteBody,
                            "The form ended before its file did.",
                        ));
                    }
                },
            }
        }
    }
}

impl ByteStream for FileStream {}

impl Drop for FileStream {
    /// A form whose file was refused, or not read to its end (the PUT
    /// failed first): the rest is read (within bounds) so the client
    /// hears the answer rather than a reset.
    fn drop(&mut self) {
        if !matches!(self.state, FileState::Streaming | FileState::Refused) {
            return;
        }
        let body = std::mem::replace(&mut self.reader.body, Box::pin(s3s::Body::empty()));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body).in_current_span());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_and_2202() {
        // RFC 4231 test case 2, RFC 2202 test case 2.
        assert_eq!(
            hex::encode(hmac::<s3s::crypto::Sha256>(
                b"Jefe",
                b"what do ya want for nothing?"
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac::<s3s::crypto::Sha1>(
                b"Jefe",
                b"what do ya want for nothing?"
            )),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        // A key longer than a block is hashed first (RFC 4231 case 6).
        assert_eq!(
            hex::encode(hmac::<s3s::crypto::Sha256>(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    fn form(fields: &[(&str, &str)]) -> Form {
        Form {
            fields: fields
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            found: post_form::Found::default(),
        }
    }

    #[test]
    fn stored_fields_that_no_header_could_carry_are_refused() {
        let input = |fields: &[(&str, &str)]| post_object_input(&form(fields), "b".to_owned());
        let fine = input(&[
            ("key", "k"),
            ("content-type", "text/plain;\tcharset=utf-8"),
            ("x-amz-meta-note", "caf\u{e9} au lait"),
            // Not stored: a policy condition may hold anything.
            ("success_action_redirect", "http://example.com/\r\nx"),
        ])
        .expect("header-safe");
        assert_eq!(
            fine.content_type.as_deref(),
            Some("text/plain;\tcharset=utf-8")
        );
        for (name, value) in [
            ("x-amz-meta-note", "a\r\nx-evil: 1"),
            ("content-type", "text/plain\n"),
            ("cache-control", "no-cache\u{1}"),
            ("content-disposition", "attachment\u{7f}"),
        ] {
            let e = input(&[("key", "k"), (name, value)]).expect_err(name);
            assert_eq!(*e.code(), S3ErrorCode::InvalidArgument, "{name}");
        }
    }

    #[test]
    fn conditions_are_checked_and_every_field_named() {
        let policy = PostPolicy::from_json(
            r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[{"bucket":"b"},["starts-with","$key","user/"],["content-length-range",1,1000],{"acl":"public-read"}]}"#,
        )
        .expect("policy");
        let good = form(&[("key", "user/a"), ("acl", "public-read"), ("policy", "p")]);
        assert_eq!(
            check_conditions(&policy, &good, "b").expect("passes"),
            (1, 1000)
        );
        let code = |f: &Form, bucket: &str| {
            check_conditions(&policy, f, bucket)
                .expect_err("refused")
                .code()
                .clone()
        };
        assert_eq!(code(&good, "other"), S3ErrorCode::AccessDenied);
        let outside = form(&[("key", "other/a"), ("acl", "public-read")]);
        assert_eq!(code(&outside, "b"), S3ErrorCode::AccessDenied);
        let extra = form(&[
            ("key", "user/a"),
            ("acl", "public-read"),
            ("x-amz-meta-n", "1"),
        ]);
        assert_eq!(code(&extra, "b"), S3ErrorCode::AccessDenied);
        let ignored = form(&[
            ("key", "user/a"),
            ("acl", "public-read"),
            ("x-ignore-n", "1"),
        ]);
        assert!(check_conditions(&policy, &ignored, "b").is_ok());
    }

    #[test]
    fn the_key_is_checked_with_its_filename_filled_in() {
        let policy = PostPolicy::from_json(
            r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[["starts-with","$key","foo"]]}"#,
        )
        .expect("policy");
        let mut named = form(&[("key", "${filename}")]);
        named.found.filename = Some("foo.txt".to_owned());
        assert!(check_conditions(&policy, &named, "b").is_ok());
        named.found.filename = Some("bar.txt".to_owned());
        let e = check_conditions(&policy, &named, "b").expect_err("bar.txt");
        assert_eq!(e.code(), &S3ErrorCode::AccessDenied);
    }

    #[test]
    fn the_expiration_is_iso_8601_in_utc() {
        use base64::Engine as _;
        let encoded = |expiration: &str| {
            base64::engine::general_purpose::STANDARD.encode(format!(
                r#"{{"expiration":"{expiration}","conditions":[]}}"#
            ))
        };
        for good in ["2030-01-01T00:00:00Z", "2030-01-01T00:00:00.123Z"] {
            assert!(check_expiration_form(&encoded(good)).is_ok(), "{good}");
        }
        for bad in [
            "2030-01-01 00:00:00.123456+00:00",
            "2030-01-01T00:00:00",
            "2030-01-01T00:00:00+00:00",
            "2030-01-01T00:00:00.Z",
            "2030-1-01T00:00:00Z",
            "",
        ] {
            let e = check_expiration_form(&encoded(bad)).expect_err(bad);
            assert_eq!(e.code(), &S3ErrorCode::InvalidPolicyDocument, "{bad}");
        }
    }

    #[test]
    fn the_tagging_field_becomes_the_tagging_header() {
        let tagged = form(&[(
            "tagging",
            "<Tagging><TagSet><Tag><Key>a b</Key><Value>1&amp;2</Value></Tag><Tag><Key>k</Key><Value></Value></Tag></TagSet></Tagging>",
        )]);
        assert_eq!(
            tagging_field(&tagged).expect("parses").as_deref(),
            Some("a%20b=1%262&k=")
        );
        assert_eq!(tagging_field(&form(&[])).expect("none"), None);
        let broken = form(&[("tagging", "<Tagging><TagSet>")]);
        assert_eq!(
            tagging_field(&broken).expect_err("broken").code(),
            &S3ErrorCode::MalformedXML
        );
    }

    #[test]
    fn credentials_and_dates_parse() {
        assert_eq!(
            split_credential("AK/20260101/us-east-1/s3/aws4_request"),
            Some(["AK", "20260101", "us-east-1", "s3", "aws4_request"])
        );
        assert_eq!(split_credential("AK/20260101/us-east-1/s3"), None);
        assert_eq!(
            split_credential("AK/20260101/us-east-1/s3/aws4_request/x"),
            None
        );
        let at = parse_amz_date("20260102T030405Z").expect("date");
        assert_eq!(at.unix_timestamp(), 1_767_323_045);
        assert_eq!(parse_amz_date("2026-01-02T03:04:05Z"), None);
    }

    /// A body that arrives in the given pieces.
    struct Pieces(std::collections::VecDeque<Bytes>);

    impl Stream for Pieces {
        type Item = Result<Bytes, StdError>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    impl ByteStream for Pieces {}

    async fn stream_file(
        body: Vec<u8>,
        piece: usize,
        min: u64,
        max: u64,
    ) -> Result<Vec<u8>, S3Error> {
        let pieces = Pieces(body.chunks(piece).map(Bytes::copy_from_slice).collect());
        let body = s3s::Body::from(Box::pin(pieces) as s3s::stream::DynByteStream);
        let mut reader = FormReader {
            parser: FormParser::new("B"),
            body: Box::pin(body),
        };
        reader.read_fields().await?;
        let mut file = reader.into_file(min, max);
        let mut out = Vec::new();
        while let Some(data) = file.next().await {
            match data {
                Ok(data) => out.extend_from_slice(&data),
                Err(e) => return Err(*e.downcast::<S3Error>().expect("an S3 error")),
            }
        }
        Ok(out)
    }

    #[tokio::test]
    async fn the_file_streams_within_its_range() {
        let file = vec![7u8; 10_000];
        let mut body = b"--B\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n".to_vec();
        body.extend_from_slice(&file);
        body.extend_from_slice(b"\r\n--B--\r\n");
        for piece in [1000, 4096, body.len()] {
            assert_eq!(
                stream_file(body.clone(), piece, 1, 10_000)
                    .await
                    .expect("fits"),
                file
            );
        }
        let e = stream_file(body.clone(), 1000, 1, 9_999)
            .await
            .expect_err("over");
        assert_eq!(e.code(), &S3ErrorCode::EntityTooLarge);
        let e = stream_file(body.clone(), 1000, 10_001, 20_000)
            .await
            .expect_err("under");
        assert_eq!(e.code(), &S3ErrorCode::EntityTooSmall);
        let e = stream_file(body[..body.len() - 20].to_vec(), 1000, 0, 20_000)
            .await
            .expect_err("cut");
        assert_eq!(e.code(), &S3ErrorCode::IncompleteBody);
    }
}
