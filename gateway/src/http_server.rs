//! The HTTP/1.1 and HTTP/2 server in front of s3s: accepts connections,
//! gives every request an id and a tracing span, enforces a pinned region,
//! gives a body sent without a length its length, answers the client
//! mistakes s3s takes for internal errors, answers CORS preflights and
//! adds CORS headers to answers (`crate::cors`), serves browser uploads
//! itself (`crate::post_object`), and drains in-flight requests on
//! shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor_net::{ServerLimits, serve_http_connection};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use s3s::service::S3Service;
use s3s::{S3Error, s3_error};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::limits::{
    BODY_IDLE_TIMEOUT_SECS, CONNECTIONS_MAX, HEADER_READ_TIMEOUT_SECS, HEADER_SECTION_SIZE_MAX,
    RETRY_AFTER_SECS, SHUTDOWN_DRAIN_SECS, UNREAD_BODY_DRAIN_MAX, UNSIZED_BODIES_MAX,
    UNSIZED_BODY_SIZE_MAX,
};
use crate::metrics::{Answered, OperationSlot, RequestMetrics, UNKNOWN_OPERATION};
use crate::s3::RequestId;
use crate::xml_body::{BodyWatch, WatchedBody};
use crate::{error, signature_form};

/// Per-server request handling, shared by every connection.
pub struct Frontend {
    pub s3: S3Service,
    /// When set, requests signed for another region are refused.
    pub region: Option<String>,
    /// Draws request ids.
    pub entropy: arbor_meta::clock::SharedEntropy,
    /// Judges the age of Signature Version 2 dates.
    pub clock: arbor_meta::clock::SharedClock,
    /// Buckets' CORS rules, for preflights and cross-origin answers.
    pub cors: crate::cors::Cors,
    /// Browser uploads, which s3s would read whole into memory.
    pub post_uploads: crate::post_object::PostUploads,
    /// What has been answered, for the metrics endpoint.
    pub metrics: Arc<RequestMetrics>,
}

/// Serves `listener` (on the server skeleton of `arbor-net`) until
/// `shutdown` is cancelled, then stops accepting, lets in-flight requests
/// finish for up to `SHUTDOWN_DRAIN_SECS`, and cuts what remains. Returns
/// when every connection is gone.
pub async fn run(listener: TcpListener, frontend: Arc<Frontend>, shutdown: CancellationToken) {
    let builder = Arc::new({
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(HEADER_READ_TIMEOUT_SECS));
        builder
    });
    let limits = ServerLimits {
        name: "s3",
        connections_max: CONNECTIONS_MAX,
        drain_timeout: Duration::from_secs(SHUTDOWN_DRAIN_SECS),
    };
    let unsized_bodies = Arc::new(Semaphore::new(UNSIZED_BODIES_MAX));
    arbor_net::serve(listener, limits, shutdown, move |stream, peer, draining| {
        let (frontend, builder) = (frontend.clone(), builder.clone());
        let unsized_bodies = unsized_bodies.clone();
        async move {
            let client = ClientAddress(peer.ip());
            let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(client);
                handle(frontend.clone(), unsized_bodies.clone(), req)
            });
            if let Err(e) = serve_http_connection(stream, &builder, service, draining).await {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
        }
    })
    .await;
}

/// The address a request came from, in its extensions (for bucket
/// policies' `aws:SourceIp`).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddress(pub std::net::IpAddr);

async fn handle(
    frontend: Arc<Frontend>,
    unsized_bodies: Arc<Semaphore>,
    mut req: http::Request<Incoming>,
) -> Result<http::Response<s3s::Body>, Infallible> {
    let received_at = Instant::now();
    let in_flight = frontend.metrics.started();
    let request_id = new_request_id(frontend.entropy.as_ref());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let operation = OperationSlot::default();
    req.extensions_mut().insert(operation.clone());
    let received = content_length(req.headers());
    let expects_continue = expects_continue(req.headers());
    let head = req.method() == http::Method::HEAD;
    let span = tracing::info_span!(
        "request",
        id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
        op = tracing::field::Empty,
        bucket = tracing::field::Empty,
        key = tracing::field::Empty,
    );
    async move {
        let now_ms = frontend.clock.now_ms();
        let checked = check_method(req.method())
            .and_then(|()| check_header_section(req.headers()))
            .and_then(|()| signature_form::check_signature_v2_date(&req, now_ms))
            // The region first: its 400 tells a client where to sign.
            .and_then(|()| signature_form::check_region(frontend.region.as_deref(), &req))
            .and_then(|()| signature_form::check_sigv4_header(req.headers(), now_ms))
            .and_then(|()| signature_form::check_presigned_url(req.uri(), req.headers(), now_ms));
        // Whether a HEAD addressed a bucket is asked only of a refusal
        // (rare): a HEAD keeps what tells it, not its parsed path.
        let head_target = head.then(|| {
            (
                req.uri().clone(),
                req.headers().get(http::header::HOST).cloned(),
            )
        });
        let post_upload = is_post_upload(&req);
        let cross_origin = frontend.cors.of(req.method(), req.uri(), req.headers());
        let preflight = req.method() == http::Method::OPTIONS;
        let mut response = match checked {
            Err(e) => error_response(e, &request_id),
            // Unauthenticated, as in S3: the rules alone decide.
            Ok(()) if preflight => {
                operation.set(PREFLIGHT_OPERATION);
                frontend
                    .cors
                    .preflight(req.uri(), req.headers())
                    .await
                    .unwrap_or_else(|e| error_response(e, &request_id))
            }
            Ok(()) => match post_upload
                .then(|| frontend.post_uploads.bucket_of(&req))
                .flatten()
            {
                Some(bucket) => {
                    operation.set(POST_UPLOAD_OPERATION);
                    frontend
                        .post_uploads
                        .serve(bucket, req)
                        .await
                        .unwrap_or_else(|e| error_response(e, &request_id))
                }
                None => call_s3s(&frontend.s3, req, &unsized_bodies, &request_id).await,
            },
        };
        if !preflight && let Some(cross_origin) = &cross_origin {
            frontend.cors.decorate(cross_origin, &mut response).await;
        }
        complete_error_body(&mut response, &request_id);
        partial_head_status(head, &mut response);
        if let Some((uri, host)) = &head_target {
            bucket_region_on_refusal(&frontend, uri, host.as_ref(), &mut response);
        }
        add_retry_after(&mut response);
        close_after_unasked_continue(expects_continue, received, &mut response);
        if let Ok(value) = http::HeaderValue::from_str(&request_id) {
            response
                .headers_mut()
                .insert("x-amz-request-id", value.clone());
            response.headers_mut().insert("x-amz-id-2", value);
        }
        let status = response.status();
        frontend.metrics.record(Answered {
            operation: operation.get().unwrap_or(UNKNOWN_OPERATION),
            status: status.as_u16(),
            latency: received_at.elapsed(),
            received,
            sent: sent_length(head, &response),
        });
        drop(in_flight);
        // 501 answers a request for an operation Arbor does not offer.
        if status.is_server_error() && status != http::StatusCode::NOT_IMPLEMENTED {
            tracing::warn!(%status, "request failed");
        } else {
            tracing::debug!(%status, "request done");
        }
        Ok(response)
    }
    .instrument(span)
    .await
}

/// Whether a request asks to hear "100 Continue" before it sends its body.
fn expects_continue(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Closes the connection after answering a request that expected "100
/// Continue" and got none: hyper sends it only once a body is read, so
/// never for an empty body (RFC 9110 section 10.1.1 allows that) nor
/// before an answer given without reading the body (an error). The copy
/// of botocore inside awscli v1 keeps what it learned from such an
/// answer into the next request on the same connection, and misreads
/// that request's answer (it waits for the idle timeout, then reports a
/// 200 without headers: a multipart upload fails for want of an ETag).
/// Closing resets it, at the price of one new connection after an empty
/// PUT or an error.
fn close_after_unasked_continue(
    expects_continue: bool,
    received: Option<u64>,
    response: &mut http::Response<s3s::Body>,
) {
    let body_unread = received == Some(0) || !response.status().is_success();
    if expects_continue && body_unread {
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
}

/// A HEAD of part of an object (a Range, or a `partNumber`) answers 206
/// as the same GET does: s3s sets that status for GetObject alone, from
/// its Content-Range, and the HEAD's answer has the same header.
fn partial_head_status(head: bool, response: &mut http::Response<s3s::Body>) {
    if head
        && response.status() == http::StatusCode::OK
        && response.headers().contains_key(http::header::CONTENT_RANGE)
    {
        *response.status_mut() = http::StatusCode::PARTIAL_CONTENT;
    }
}

/// A HeadBucket refused for its signature or its access (400, 403) or
/// sent to another endpoint (301) still tells the bucket's region, as S3's
/// does "whether access to the bucket is authorized or not": a client
/// (botocore) signs again for that region. Every bucket is in the
/// deployment's region.
fn bucket_region_on_refusal(
    frontend: &Frontend,
    uri: &http::Uri,
    host: Option<&http::HeaderValue>,
    response: &mut http::Response<s3s::Body>,
) {
    let refused = matches!(response.status().as_u16(), 301 | 400 | 403);
    if !refused || response.headers().contains_key(BUCKET_REGION_HEADER) {
        return;
    }
    let mut headers = http::HeaderMap::new();
    if let Some(host) = host {
        headers.insert(http::header::HOST, host.clone());
    }
    let on_bucket = matches!(
        crate::routes::s3_path(frontend.cors.hosts.as_ref(), uri, &headers),
        Ok(s3s::path::S3Path::Bucket { .. })
    );
    if on_bucket {
        let region = frontend
            .region
            .as_deref()
            .unwrap_or(crate::s3::bucket::US_EAST_1);
        if let Ok(value) = http::HeaderValue::from_str(region) {
            response.headers_mut().insert(BUCKET_REGION_HEADER, value);
        }
    }
}

/// The header in which S3 tells a bucket's region.
const BUCKET_REGION_HEADER: &str = "x-amz-bucket-region";

/// The operation names of what s3s does not serve ([`crate::metrics`]).
const PREFLIGHT_OPERATION: &str = "Preflight";
const POST_UPLOAD_OPERATION: &str = "PostObject";

/// A body's declared length.
fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The length of the body a response sends: none for HEAD, else the
/// body's own when it knows it (every XML document), else its declared
/// Content-Length (a streamed object).
fn sent_length(head: bool, response: &http::Response<s3s::Body>) -> Option<u64> {
    if head {
        return Some(0);
    }
    hyper::body::Body::size_hint(response.body())
        .exact()
        .or_else(|| content_length(response.headers()))
}

/// A browser upload: `POST /bucket` with a multipart form
/// (`crate::post_object` serves it).
fn is_post_upload<B>(req: &http::Request<B>) -> bool {
    req.method() == http::Method::POST
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"))
}

/// A 500 or 503 is worth retrying: says when, unless it already does.
fn add_retry_after<B>(response: &mut http::Response<B>) {
    let status = response.status();
    if status != http::StatusCode::INTERNAL_SERVER_ERROR
        && status != http::StatusCode::SERVICE_UNAVAILABLE
    {
        return;
    }
    response
        .headers_mut()
        .entry(http::header::RETRY_AFTER)
        .or_insert_with(|| http::HeaderValue::from(RETRY_AFTER_SECS));
}

/// Hands the request to s3s, its body watched: s3s answers some client
/// mistakes in a body it reads whole with 500, and the watch knows which.
/// A body s3s needs the length of and that came without one is read first
/// ([`needs_length`]).
async fn call_s3s(
    s3: &S3Service,
    mut req: http::Request<Incoming>,
    unsized_bodies: &Semaphore,
    request_id: &str,
) -> http::Response<s3s::Body> {
    let watch = Arc::new(BodyWatch::default());
    req.extensions_mut().insert(watch.clone());
    let body_watch = watch.clone();
    let (mut parts, body) = req.into_parts();
    if let Err(e) = check_content_sha256(&parts.headers) {
        return error_response(e, request_id);
    }
    let body = if needs_length(&parts.method, &parts.headers, &body) {
        match read_unsized(body, unsized_bodies).await {
            Ok(bytes) => {
                parts
                    .headers
                    .insert(http::header::CONTENT_LENGTH, bytes.len().into());
                // Watched as a body from the wire is: checked against its
                // digests if s3s reads it whole.
                s3s::Body::http_body(WatchedBody::read(bytes, body_watch))
            }
            Err(e) => return error_response(e, request_id),
        }
    } else {
        s3s::Body::http_body(WatchedBody::new(body, body_watch))
    };
    // A client that asked to hear "100 Continue" first sends no body
    // until then: closing on it loses nothing, and waiting for it would
    // only hold the connection.
    let waits_to_send = expects_continue(&parts.headers);
    let req = http::Request::from_parts(parts, body);
    let response = answer_s3s(s3, req, &watch, request_id).await;
    if let Some(unread) = watch.take_unread()
        && !waits_to_send
    {
        tokio::spawn(drain(unread).in_current_span());
    }
    response
}

/// Reads the rest of a body the operation did not read (it answered
/// first), up to `UNREAD_BODY_DRAIN_MAX` bytes and with the idle bound of
/// any body, so the connection is not closed while the client still
/// sends: its answer would be lost to the reset. A larger body, or one
/// that stalls, is dropped, and the connection with it.
async fn drain(mut body: Incoming) {
    let idle = Duration::from_secs(BODY_IDLE_TIMEOUT_SECS);
    let mut drained = 0usize;
    while drained <= UNREAD_BODY_DRAIN_MAX {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                drained = drained.saturating_add(frame.data_ref().map_or(0, Bytes::len));
            }
            Ok(None) => return,
            Ok(Some(Err(_))) | Err(_) => break,
        }
    }
    tracing::debug!(
        drained,
        "unread request body dropped; the connection closes"
    );
}

/// s3s's answer, with the client mistakes it took for internal errors named.
async fn answer_s3s(
    s3: &S3Service,
    req: http::Request<s3s::Body>,
    watch: &BodyWatch,
    request_id: &str,
) -> http::Response<s3s::Body> {
    match s3.call(req).await {
        Ok(response) if response.status() == http::StatusCode::INTERNAL_SERVER_ERROR => {
            match watch.verdict() {
                Some(e) => {
                    tracing::debug!(code = %e.code().as_str(), "s3s failed reading the body");
                    error_response(e, request_id)
                }
                None => response,
            }
        }
        Ok(mut response) => {
            crate::s3::PrerenderedBody::swap_into(&mut response);
            response
        }
        Err(e) => {
            tracing::error!(error = ?e, "s3 service failed");
            error_response(
                s3_error!(
                    InternalError,
                    "We encountered an internal error. Please try again."
                ),
                request_id,
            )
        }
    }
}

/// The payload hashes SigV4 names in `x-amz-content-sha256` beside a
/// SHA-256 in hex.
const PAYLOAD_HASH_NAMES: [&str; 6] = [
    "UNSIGNED-PAYLOAD",
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER",
];

/// An `x-amz-content-sha256` that is neither a SHA-256 nor a name SigV4
/// gives is S3's 400 InvalidArgument naming the header and its value
/// (s3s would answer 403 SignatureDoesNotMatch).
fn check_content_sha256(headers: &http::HeaderMap) -> Result<(), S3Error> {
    let Some(value) = headers.get("x-amz-content-sha256") else {
        return Ok(());
    };
    let bytes = value.as_bytes();
    let is_sha256 = bytes.len() == 64 && bytes.iter().all(u8::is_ascii_hexdigit);
    if is_sha256 || PAYLOAD_HASH_NAMES.iter().any(|n| n.as_bytes() == bytes) {
        return Ok(());
    }
    let message = format!(
        "x-amz-content-sha256 must be {} or a valid sha256 value.",
        PAYLOAD_HASH_NAMES.join(", ")
    );
    Err(error::with_elements(
        S3Error::with_message(s3s::S3ErrorCode::InvalidArgument, message),
        &[
            ("ArgumentName", "x-amz-content-sha256"),
            ("ArgumentValue", &String::from_utf8_lossy(bytes)),
        ],
    ))
}

/// Whether the request is a PUT or POST whose body came without a length
/// (HTTP/1.1 chunked transfer coding, or an HTTP/2 stream without
/// Content-Length) and is signed in a way s3s checks against the length:
/// a SHA-256 or `UNSIGNED-PAYLOAD` in `x-amz-content-sha256`, which s3s
/// refuses with 411 MissingContentLength when it cannot know the length.
/// aws-chunked bodies (`STREAMING-*`) carry their decoded length in
/// `x-amz-decoded-content-length`, and presigned URLs without the header
/// s3s does not check: both stream as they are.
///
/// AWS itself refuses a PutObject in chunked transfer coding without a
/// Content-Length; Arbor accepts it, up to `UNSIZED_BODY_SIZE_MAX`, for
/// clients that stream bodies of unknown length (`curl -T -`). The body
/// is read before s3s checks the signature, so an unsigned one over the
/// limit is EntityTooLarge rather than AccessDenied.
fn needs_length(method: &http::Method, headers: &http::HeaderMap, body: &Incoming) -> bool {
    use hyper::body::Body as _;
    if method != http::Method::PUT && method != http::Method::POST {
        return false;
    }
    if headers.contains_key(http::header::CONTENT_LENGTH)
        || body.is_end_stream()
        || body.size_hint().exact().is_some()
    {
        return false;
    }
    headers
        .get("x-amz-content-sha256")
        .is_some_and(|v| !v.as_bytes().starts_with(b"STREAMING-"))
}

/// Reads a body that came without a length, up to `UNSIZED_BODY_SIZE_MAX`
/// bytes, holding one of `unsized_bodies`' permits while it does.
async fn read_unsized(mut body: Incoming, unsized_bodies: &Semaphore) -> Result<Bytes, S3Error> {
    let _permit = unsized_bodies
        .acquire()
        .await
        .map_err(|e| error::internal("waiting to read a body without a length", e))?;
    let idle = Duration::from_secs(BODY_IDLE_TIMEOUT_SECS);
    let mut read = BytesMut::new();
    loop {
        let frame = tokio::time::timeout(idle, body.frame())
            .await
            .map_err(|_| {
                S3Error::with_message(
                    s3s::S3ErrorCode::RequestTimeout,
                    "Your socket connection to the server was not read from or written to within the timeout period.",
                )
            })?;
        let Some(frame) = frame else {
            return Ok(read.freeze());
        };
        let frame = frame.map_err(|e| error::from_body(&e))?;
        // Trailers of the chunked coding are not part of the body.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if read.len().saturating_add(data.len()) > UNSIZED_BODY_SIZE_MAX {
            return Err(S3Error::with_message(
                s3s::S3ErrorCode::EntityTooLarge,
                format!(
                    "Your proposed upload exceeds the maximum allowed size: a body sent without a Content-Length may be at most {UNSIZED_BODY_SIZE_MAX} bytes."
                ),
            ));
        }
        read.extend_from_slice(&data);
    }
}

/// S3 answers a method it has no operation for with 405 MethodNotAllowed
/// (s3s would say 501 NotImplemented, which clients may take for a
/// missing feature). OPTIONS is the CORS preflight (`crate::cors`).
fn check_method(method: &http::Method) -> Result<(), S3Error> {
    use http::Method;
    const WITH_OPERATIONS: [Method; 6] = [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::POST,
        Method::DELETE,
        Method::OPTIONS,
    ];
    if WITH_OPERATIONS.contains(method) {
        return Ok(());
    }
    Err(S3Error::with_message(
        s3s::S3ErrorCode::MethodNotAllowed,
        "The specified method is not allowed against this resource.",
    ))
}

/// S3 refuses a request whose headers exceed `HEADER_SECTION_SIZE_MAX`.
fn check_header_section(headers: &http::HeaderMap) -> Result<(), S3Error> {
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size <= HEADER_SECTION_SIZE_MAX {
        return Ok(());
    }
    Err(S3Error::with_message(
        s3s::S3ErrorCode::RequestHeaderSectionTooLarge,
        format!(
            "Your request header section exceeds the maximum allowed size of {HEADER_SECTION_SIZE_MAX} bytes."
        ),
    ))
}

fn error_response(mut e: S3Error, request_id: &str) -> http::Response<s3s::Body> {
    e.set_request_id(request_id);
    match e.to_http_response() {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = ?e, "could not encode error response");
            let mut response = http::Response::new(s3s::Body::empty());
            *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

/// Errors raised inside s3s (signature, names, malformed XML) leave the
/// request id out of the body, and some the message: S3 error bodies carry
/// both, so they are added to an error body that lacks them.
///
/// The elements an error names beyond its message (a 412's
/// `<Condition>`, a NoSuchKey's `<Key>`, ...) come in a private header
/// (`error::ERROR_ELEMENT_HEADER`), which goes, and into the body they go.
fn complete_error_body(response: &mut http::Response<s3s::Body>, request_id: &str) {
    let elements = error::take_elements(response.headers_mut());
    let status = response.status();
    if !status.is_client_error() && !status.is_server_error() {
        return;
    }
    // Error bodies are serialised whole; anything streamed is left alone.
    let Some(body) = response.body().bytes() else {
        return;
    };
    let Some(completed) = completed_error(&body, request_id, &elements) else {
        return;
    };
    response
        .headers_mut()
        .insert(http::header::CONTENT_LENGTH, completed.len().into());
    *response.body_mut() = s3s::Body::from(completed);
}

/// `xml`, an S3 error body, with a `<Message>` and a `<RequestId>` where it
/// has none, and `elements` (name, value) after the message; `None` if it
/// lacks nothing, or is no error body.
fn completed_error(xml: &[u8], request_id: &str, elements: &[(String, String)]) -> Option<String> {
    let text = std::str::from_utf8(xml).ok()?;
    let has_message = text.contains("<Message>");
    let has_request_id = text.contains("<RequestId>");
    // Names are the gateway's own (letters, and the hyphens of
    // `X-Amz-Date`, after a first letter), and each once.
    let elements: Vec<&(String, String)> = elements
        .iter()
        .filter(|(name, _)| {
            name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && name.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
                && !text.contains(&format!("<{name}>"))
        })
        .collect();
    if has_message && has_request_id && elements.is_empty() {
        return None;
    }
    let code_start = text.find("<Error><Code>")? + "<Error><Code>".len();
    let code_end = code_start + text.get(code_start..)?.find("</Code>")?;
    let after_code = code_end + "</Code>".len();
    let end = text.rfind("</Error>")?;
    if end < after_code {
        return None;
    }
    let code = text.get(code_start..code_end)?;
    let mut completed = String::with_capacity(text.len() + 160);
    completed.push_str(text.get(..after_code)?);
    let mut rest = text.get(after_code..end)?;
    if has_message {
        let message_end = rest
            .find("</Message>")
            .map_or(0, |at| at + "</Message>".len());
        completed.push_str(rest.get(..message_end)?);
        rest = rest.get(message_end..)?;
    } else {
        // The messages hold no markup characters.
        completed.push_str("<Message>");
        completed.push_str(error::default_message(code));
        completed.push_str("</Message>");
    }
    for (name, value) in elements {
        completed.push('<');
        completed.push_str(name);
        completed.push('>');
        completed.push_str(&crate::xml_text::escaped(value));
        completed.push_str("</");
        completed.push_str(name);
        completed.push('>');
    }
    completed.push_str(rest);
    if !has_request_id {
        // Request ids are hex.
        completed.push_str("<RequestId>");
        completed.push_str(request_id);
        completed.push_str("</RequestId>");
    }
    completed.push_str(text.get(end..)?);
    Some(completed)
}

fn new_request_id(entropy: &dyn arbor_meta::clock::Entropy) -> String {
    hex::encode_upper(entropy.next_u64().to_be_bytes())
}

/// Virtual-host-style addressing for `--domain`: `bucket.DOMAIN[:port]`
/// names a bucket, `DOMAIN[:port]` and any other host (an IP address,
/// `localhost`) are path-style. Unlike s3s's `SingleDomain`, the port is
/// ignored (clients send it whenever it is not 80) and unknown host names
/// are not taken for bucket names.
#[derive(Debug)]
pub struct VirtualHosts {
    pub domain: String,
}

impl s3s::host::S3Host for VirtualHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<s3s::host::VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                name
            }
            _ => host,
        };
        let domain = self.domain.as_str();
        let bucket = name
            .strip_suffix(domain)
            .and_then(|rest| rest.strip_suffix('.'))
            .filter(|bucket| !bucket.is_empty());
        Ok(match bucket {
            Some(bucket) => s3s::host::VirtualHost::new(domain).with_bucket(bucket),
            None => s3s::host::VirtualHost::new(name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::host::S3Host;

    #[test]
    fn header_section_is_limited() {
        let mut headers = http::HeaderMap::new();
        let value = "v".repeat(HEADER_SECTION_SIZE_MAX - "x-pad".len());
        headers.insert("x-pad", http::HeaderValue::from_str(&value).expect("value"));
        assert!(check_header_section(&headers).is_ok());
        headers.insert("x", http::HeaderValue::from_static(""));
        let e = check_header_section(&headers).expect_err("one byte over");
        assert_eq!(e.code(), &s3s::S3ErrorCode::RequestHeaderSectionTooLarge);
        assert_eq!(e.code().status_code().map(|s| s.as_u16()), Some(400));
    }

    #[test]
    fn server_errors_say_when_to_retry() {
        let with = |status: u16, retry_after: Option<&'static str>| {
            let mut response = http::Response::new(());
            *response.status_mut() = http::StatusCode::from_u16(status).expect("status");
            if let Some(value) = retry_after {
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, value.parse().expect("value"));
            }
            add_retry_after(&mut response);
            response
                .headers()
                .get(http::header::RETRY_AFTER)
                .map(|v| v.to_str().expect("ascii").to_owned())
        };
        assert_eq!(with(503, None).as_deref(), Some("1"));
        assert_eq!(with(500, None).as_deref(), Some("1"));
        assert_eq!(with(503, Some("7")).as_deref(), Some("7"));
        for status in [200, 400, 404, 409, 412, 501] {
            assert_eq!(with(status, None), None, "{status}");
        }
    }

    #[test]
    fn methods_without_operations_are_not_allowed() {
        for method in ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"] {
            let method = http::Method::from_bytes(method.as_bytes()).expect("method");
            assert!(check_method(&method).is_ok(), "{method}");
        }
        for method in ["PATCH", "PROPFIND", "TRACE", "CONNECT", "BREW"] {
            let method = http::Method::from_bytes(method.as_bytes()).expect("method");
            let e = check_method(&method).expect_err(method.as_str());
            assert_eq!(e.code(), &s3s::S3ErrorCode::MethodNotAllowed);
            assert_eq!(e.code().status_code().map(|s| s.as_u16()), Some(405));
        }
    }

    #[test]
    fn error_bodies_get_a_message_and_the_request_id() {
        let declaration = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
        let bare = format!("{declaration}<Error><Code>SignatureDoesNotMatch</Code></Error>");
        assert_eq!(
            completed_error(bare.as_bytes(), "ABC", &[]).as_deref(),
            Some(
                format!(
                    "{declaration}<Error><Code>SignatureDoesNotMatch</Code><Message>{}</Message><RequestId>ABC</RequestId></Error>",
                    error::default_message("SignatureDoesNotMatch")
                )
                .as_str()
            )
        );
        let with_message = format!(
            "{declaration}<Error><Code>NoSuchKey</Code><Message>m &amp; n</Message></Error>"
        );
        assert_eq!(
            completed_error(with_message.as_bytes(), "ABC", &[]).as_deref(),
            Some(
                format!(
                    "{declaration}<Error><Code>NoSuchKey</Code><Message>m &amp; n</Message><RequestId>ABC</RequestId></Error>"
                )
                .as_str()
            )
        );
        let complete = format!(
            "{declaration}<Error><Code>NoSuchKey</Code><Message>m</Message><RequestId>X</RequestId></Error>"
        );
        assert_eq!(completed_error(complete.as_bytes(), "ABC", &[]), None);
        assert_eq!(completed_error(b"not xml", "ABC", &[]), None);
        assert_eq!(completed_error(b"{\"json\": 1}", "ABC", &[]), None);
        assert_eq!(completed_error(&[0xff, 0xfe], "ABC", &[]), None);
        // Named elements follow the message, their values escaped.
        let failed = format!(
            "{declaration}<Error><Code>NoSuchKey</Code><Message>m</Message><RequestId>X</RequestId></Error>"
        );
        let elements = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            completed_error(failed.as_bytes(), "ABC", &elements(&[("Key", "a<&>b"), ("VersionId", "v")]))
                .as_deref(),
            Some(
                format!(
                    "{declaration}<Error><Code>NoSuchKey</Code><Message>m</Message><Key>a&lt;&amp;&gt;b</Key><VersionId>v</VersionId><RequestId>X</RequestId></Error>"
                )
                .as_str()
            )
        );
        assert_eq!(
            completed_error(
                failed.as_bytes(),
                "ABC",
                &elements(&[("<x>", "v"), ("-x", "v"), ("Message", "again")])
            ),
            None,
            "never markup for a name, nor an element twice"
        );
        assert!(
            completed_error(failed.as_bytes(), "ABC", &elements(&[("X-Amz-Date", "d")]))
                .is_some_and(|body| body.contains("<X-Amz-Date>d</X-Amz-Date>")),
            "a hyphenated name"
        );
        // From the error to the body, through the response's headers.
        let mut headers = error::with_elements(
            s3s::S3Error::new(s3s::S3ErrorCode::NoSuchKey),
            &[("Key", "dir/ä b%")],
        )
        .headers()
        .cloned()
        .expect("headers");
        assert_eq!(
            headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(&b"application/xml"[..])
        );
        assert_eq!(
            error::take_elements(&mut headers),
            elements(&[("Key", "dir/ä b%")])
        );
        assert!(headers.get(error::ERROR_ELEMENT_HEADER).is_none());
    }

    #[test]
    fn a_payload_hash_is_a_sha256_or_a_name_sigv4_gives() {
        let check = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "x-amz-content-sha256",
                http::HeaderValue::from_str(value).expect("value"),
            );
            check_content_sha256(&headers)
        };
        assert!(check(&"e3b0c442".repeat(8)).is_ok());
        for name in PAYLOAD_HASH_NAMES {
            assert!(check(name).is_ok(), "{name}");
        }
        assert!(check_content_sha256(&http::HeaderMap::new()).is_ok());
        for bad in [
            "GIBBERISH",
            "unsigned-payload",
            &"e3b0c442".repeat(7),
            &"zz".repeat(32),
        ] {
            let e = check(bad).expect_err(bad);
            assert_eq!(e.code(), &s3s::S3ErrorCode::InvalidArgument);
            let mut headers = e.headers().cloned().expect("headers");
            assert_eq!(
                error::take_elements(&mut headers),
                [
                    ("ArgumentName".to_owned(), "x-amz-content-sha256".to_owned()),
                    ("ArgumentValue".to_owned(), bad.to_owned())
                ]
            );
        }
    }

    #[test]
    fn virtual_hosts_ignore_ports_and_other_names() {
        let hosts = VirtualHosts {
            domain: "s3.example.com".into(),
        };
        let bucket = |host: &str| {
            hosts
                .parse_host_header(host)
                .expect("parses")
                .bucket()
                .map(str::to_owned)
        };
        assert_eq!(bucket("photos.s3.example.com"), Some("photos".into()));
        assert_eq!(bucket("photos.s3.example.com:9000"), Some("photos".into()));
        assert_eq!(
            bucket("my.dotted.bucket.s3.example.com:9000"),
            Some("my.dotted.bucket".into())
        );
        assert_eq!(bucket("s3.example.com:9000"), None);
        assert_eq!(bucket("localhost:9000"), None);
        assert_eq!(bucket("127.0.0.1:9000"), None);
        assert_eq!(bucket("evils3.example.com"), None);
    }
}
