//! The chunk server: one [`ChunkStore`] over HTTP/1.1.
//!
//! Chunk ids travel as 32 lowercase hex digits. Every error response has a
//! small JSON body `{"code", "message", "size"?}` and the same code in the
//! `x-arbor-error` header (codes in [`crate::api::code`]).
//!
//! | request | answer |
//! |---|---|
//! | `PUT /chunks/{id}` | streams the body into a [`crate::ChunkWriter`]; the expected SHA-256 is **required**, as the `x-arbor-sha256` header or, when the writer learns it only at the end, as an `x-arbor-sha256` trailer announced by `Trailer: x-arbor-sha256` (chunked body); the server hashes the bytes and compares. With `Trailer: x-arbor-sha256, x-arbor-crc32c` the writer vouches for the SHA-256: the server checks the bytes against the CRC32C trailer only and records the SHA-256 given. `201` + `{"id","size","sha256"}`; `400 checksum-mismatch` (nothing stored), `400 bad-request` (no hash), `400 body` (stalled or broken body), `409 exists` (id stored with other content), `413 too-large`. A re-put of the same content is idempotent (`201`). |
//! | `GET /chunks/{id}` | the verified bytes; `Range: bytes=a-b`, `a-` or `-n` gives `206` + `Content-Range`, an unsatisfiable range `416 invalid-range` (body has `size`). Always `Content-Length`, `x-arbor-sha256`, `x-arbor-chunk-size`. Corruption found before the first byte: `500 corrupt`; found later: the body is cut off, which the client sees as an error (never a clean short body). `404 not-found`. |
//! | `HEAD /chunks/{id}` | the GET headers (size, SHA-256), no body. |
//! | `DELETE /chunks/{id}` | `204`, also if absent. |
//! | `GET /chunks?after={id}&limit={n}` | inventory page `{"ids":[..],"truncated":bool}`, ids increasing, `n` ≤ 1000. |
//! | `GET /status` | [`ServerStatus`] as JSON. |
//!
//! Bounds: connections ([`ServerOptions::connections_max`]), request head
//! size and header count, time to send a head, a stall timeout on every
//! body piece in and every socket write out, a drain deadline at shutdown.
//! The accept task owns every connection task, so when [`serve`] returns
//! nothing of the server is left running.
//!
//! A GET reads and verifies its first piece before answering, so corruption
//! there is a clean error status; every later piece is verified before it
//! is sent, and a bad one cuts the body short (never a short clean body).

use std::convert::Infallible;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::stream;
use futures::{StreamExt, TryStreamExt};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioTimer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use arbor_meta::ChunkId;
use arbor_net::auth::{self, ClusterSecret};
use arbor_net::{ServerLimits, serve_http1_connection};

use crate::api::{self, ErrorBody, InventoryWire, PutReply, ServerStatus, code};
use crate::error::{ChunkError, Result};
use crate::limits;
use crate::store::ChunkStore;

pub(crate) type ResponseBody = UnsyncBoxBody<Bytes, ChunkError>;

/// How a chunk server runs; [`Default`] holds the defaults.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Failure-domain label, reported by `/status`.
    pub zone: String,
    /// Bytes this server may use, reported by `/status`.
    pub capacity: u64,
    /// Time in-flight requests get at shutdown before they are cut off.
    pub drain_timeout: Duration,
    /// Connections served at once (at most [`limits::SERVER_CONNECTIONS_MAX`]).
    pub connections_max: usize,
    /// When set, every request must carry a valid MAC under it (see
    /// [`arbor_net::auth`]).
    pub cluster_secret: Option<ClusterSecret>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            zone: String::new(),
            capacity: u64::MAX,
            drain_timeout: limits::DRAIN_TIMEOUT_DEFAULT,
            connections_max: limits::SERVER_CONNECTIONS_MAX,
            cluster_secret: None,
        }
    }
}

struct State {
    store: ChunkStore,
    options: ServerOptions,
}

/// Serves `store` on `listener` until `shutdown` is cancelled, then stops
/// accepting, lets in-flight requests finish for `drain_timeout`, cuts off
/// the rest, and returns once every connection task has ended.
pub async fn serve(
    listener: TcpListener,
    store: ChunkStore,
    options: ServerOptions,
    shutdown: CancellationToken,
) -> Result<()> {
    if options.connections_max == 0 || options.connections_max > limits::SERVER_CONNECTIONS_MAX {
        return Err(ChunkError::InvalidConfig(format!(
            "connections_max must be in 1..={}",
            limits::SERVER_CONNECTIONS_MAX
        )));
    }
    let limits = ServerLimits {
        name: "chunk",
        connections_max: options.connections_max,
        drain_timeout: options.drain_timeout,
    };
    let state = Arc::new(State { store, options });
    let builder = Arc::new({
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits::HEADER_READ_TIMEOUT)
            .max_header_size(limits::REQUEST_HEAD_SIZE_MAX)
            .max_headers(limits::REQUEST_HEADERS_MAX)
            .keep_alive(true);
        builder
    });
    arbor_net::serve(listener, limits, shutdown, move |stream, peer, draining| {
        let (state, builder) = (state.clone(), builder.clone());
        async move {
            let io = StallGuard::new(stream, limits::BODY_STALL_TIMEOUT);
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, request).await) }
            });
            if let Err(error) = serve_http1_connection(io, &builder, service, draining).await {
                tracing::debug!(%error, %peer, "chunk server connection ended with an error");
            }
        }
    })
    .await;
    Ok(())
}

/// An error response: status, code, message.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    size: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            size: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code::BAD_REQUEST, message)
    }

    fn into_response(self) -> Response<ResponseBody> {
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, message = %self.message, "chunk request failed");
        } else {
            tracing::debug!(code = self.code, message = %self.message, "chunk request refused");
        }
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message,
            size: self.size,
        };
        let mut response = json_response(self.status, &body);
        response
            .headers_mut()
            .insert(api::HEADER_ERROR, HeaderValue::from_static(self.code));
        if let Some(size) = self.size
            && let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
        response
    }
}

impl From<ChunkError> for ApiError {
    fn from(error: ChunkError) -> ApiError {
        let message = error.to_string();
        let (status, code) = match &error {
            ChunkError::NotFound(_) => (StatusCode::NOT_FOUND, code::NOT_FOUND),
            ChunkError::Corrupt { .. } => (StatusCode::INTERNAL_SERVER_ERROR, code::CORRUPT),
            ChunkError::ChecksumMismatch { .. } => {
                (StatusCode::BAD_REQUEST, code::CHECKSUM_MISMATCH)
            }
            ChunkError::InvalidRange { size, .. } => {
                return ApiError {
                    status: StatusCode::RANGE_NOT_SATISFIABLE,
                    code: code::INVALID_RANGE,
                    message,
                    size: Some(*size),
                };
            }
            ChunkError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, code::TOO_LARGE),
            ChunkError::Io(io) if io.kind() == io::ErrorKind::AlreadyExists => {
                (StatusCode::CONFLICT, code::EXISTS)
            }
            ChunkError::Io(io) if io.kind() == io::ErrorKind::StorageFull => {
                (StatusCode::INSUFFICIENT_STORAGE, code::STORAGE_FULL)
            }
            ChunkError::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, code::IO),
            ChunkError::Network { .. }
            | ChunkError::Remote { .. }
            | ChunkError::ReplicasUnavailable { .. }
            | ChunkError::Meta(_)
            | ChunkError::FingerprintMismatch { .. }
            | ChunkError::InvalidConfig(_) => (StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL),
        };
        ApiError::new(status, code, message)
    }
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<ResponseBody> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if let Some(secret) = &state.options.cluster_secret
        && let Err(refusal) = authenticate(secret, state, &request)
    {
        tracing::warn!(%method, %path, refusal = %refusal, "unauthenticated request refused");
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            format!("cluster authentication: {refusal}"),
        )
        .into_response();
    }
    let span = tracing::debug_span!("chunk_request", %method, %path);
    match route(state, request).instrument(span).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Checks the request's MAC, and that what it signed is its body: a PUT
/// signs the chunk's SHA-256 (which the store checks the bytes against)
/// or nothing (a trailer brings it), any other request an empty body.
fn authenticate(
    secret: &ClusterSecret,
    state: &State,
    request: &Request<Incoming>,
) -> std::result::Result<(), auth::Refusal> {
    let content = auth::verify_headers(
        secret,
        request.method(),
        request.uri(),
        request.headers(),
        state.store.clock().now_ms(),
    )?;
    let matches = if request.method() == Method::PUT {
        content == auth::UNSIGNED_PAYLOAD
            || request
                .headers()
                .get(api::HEADER_SHA256)
                .and_then(|v| v.to_str().ok())
                == Some(content)
    } else {
        content == auth::body_sha256(b"")
    };
    if matches {
        Ok(())
    } else {
        Err(auth::Refusal::BodyMismatch)
    }
}

async fn route(
    state: &State,
    request: Request<Incoming>,
) -> std::result::Result<Response<ResponseBody>, ApiError> {
    let path = request.uri().path();
    if path == "/status" {
        return match *request.method() {
            Method::GET => status(state).await,
            _ => Err(method_not_allowed()),
        };
    }
    if path == "/chunks" {
        return match *request.method() {
            Method::GET => inventory(state, request.uri().query().unwrap_or("")).await,
            _ => Err(method_not_allowed()),
        };
    }
    let Some(id_text) = path.strip_prefix("/chunks/") else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            code::NO_ROUTE,
            format!("no route for {path}"),
        ));
    };
    let id = api::parse_id(id_text)
        .ok_or_else(|| ApiError::bad_request(format!("{id_text:?} is not a chunk id")))?;
    match *request.method() {
        Method::PUT => put(state, id, request).await,
        Method::GET => get(state, id, &request, true).await,
        Method::HEAD => get(state, id, &request, false).await,
        Method::DELETE => {
            state.store.delete(id).await?;
            Ok(empty_response(StatusCode::NO_CONTENT))
        }
        _ => Err(method_not_allowed()),
    }
}

fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        code::METHOD,
        "method not allowed",
    )
}

async fn put(
    state: &State,
    id: ChunkId,
    request: Request<Incoming>,
) -> std::result::Result<Response<ResponseBody>, ApiError> {
    let headers = request.headers();
    let header_sha256 = match headers.get(api::HEADER_SHA256) {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(api::parse_sha256)
                .ok_or_else(|| ApiError::bad_request("x-arbor-sha256 is not 64 hex digits"))?,
        ),
        None => None,
    };
    let announced = |wanted: &str| {
        headers
            .get_all(header::TRAILER)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|name| name.trim().eq_ignore_ascii_case(wanted))
    };
    let trailer_announced = announced(api::HEADER_SHA256);
    // The writer vouches for the SHA-256 and sends the CRC32C to check the
    // bytes by (`ExpectedSha256::Vouched`): no second SHA-256 pass here.
    let vouched = header_sha256.is_none() && trailer_announced && announced(api::HEADER_CRC32C);
    if header_sha256.is_none() && !trailer_announced {
        return Err(ApiError::bad_request(
            "the expected SHA-256 is required (x-arbor-sha256 header or trailer)",
        ));
    }
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_len.is_some_and(|len| len > limits::CHUNK_SIZE_MAX) {
        return Err(ChunkError::TooLarge {
            id,
            max: limits::CHUNK_SIZE_MAX,
        }
        .into());
    }

    let mut writer = if vouched {
        state.store.writer_vouched(id).await?
    } else {
        state.store.writer(id).await?
    };
    let mut body = request.into_body();
    let mut trailer_sha256 = None;
    let mut trailer_crc32c = None;
    loop {
        let frame = tokio::time::timeout(limits::BODY_STALL_TIMEOUT, body.frame())
            .await
            .map_err(|_| {
                ApiError::new(StatusCode::BAD_REQUEST, code::BODY, "request body stalled")
            })?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|error| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                code::BODY,
                format!("request body broke off: {error}"),
            )
        })?;
        match frame.into_data() {
            // The writer gathers frames into batches itself.
            Ok(data) => writer.write(data).await?,
            Err(frame) => {
                let Some(trailers) = frame.trailers_ref() else {
                    continue;
                };
                if let Some(value) = trailers.get(api::HEADER_SHA256) {
                    trailer_sha256 = Some(
                        value
                            .to_str()
                            .ok()
                            .and_then(api::parse_sha256)
                            .ok_or_else(|| {
                                ApiError::bad_request("x-arbor-sha256 trailer is not 64 hex digits")
                            })?,
                    );
                }
                if let Some(value) = trailers.get(api::HEADER_CRC32C) {
                    trailer_crc32c = Some(
                        value
                            .to_str()
                            .ok()
                            .filter(|text| text.len() == 8)
                            .and_then(api::parse_crc32c)
                            .ok_or_else(|| {
                                ApiError::bad_request("x-arbor-crc32c trailer is not 8 hex digits")
                            })?,
                    );
                }
            }
        }
    }
    let expected = header_sha256.or(trailer_sha256).ok_or_else(|| {
        ApiError::bad_request("the announced x-arbor-sha256 trailer did not come")
    })?;
    // On an error above, dropping the writer removes its temporary file.
    let info = if vouched {
        let crc32c = trailer_crc32c.ok_or_else(|| {
            ApiError::bad_request("the announced x-arbor-crc32c trailer did not come")
        })?;
        writer.finish_vouched(expected, crc32c).await?
    } else {
        writer.finish(Some(expected)).await?
    };
    tracing::debug!(%id, size = info.size, "chunk stored");
    let reply = PutReply {
        id: id.to_hex(),
        size: info.size,
        sha256: hex::encode(info.sha256),
    };
    Ok(json_response(StatusCode::CREATED, &reply))
}

async fn get(
    state: &State,
    id: ChunkId,
    request: &Request<Incoming>,
    with_body: bool,
) -> std::result::Result<Response<ResponseBody>, ApiError> {
    let info = state.store.stat(id).await?;
    let size = info.size;
    let range_header = match request.headers().get(header::RANGE) {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::bad_request("Range is not text"))?,
        ),
        None => None,
    };
    let range = match range_header {
        Some(text) if with_body => {
            Some(parse_range(text, size).map_err(|detail| match detail {
                RangeError::Malformed => ApiError::bad_request(format!("bad Range {text:?}")),
                RangeError::Unsatisfiable => ApiError::from(ChunkError::InvalidRange {
                    id,
                    start: 0,
                    end: 0,
                    size,
                }),
            })?)
        }
        _ => None,
    };
    let (status, span) = match &range {
        Some(range) => (StatusCode::PARTIAL_CONTENT, range.clone()),
        None => (StatusCode::OK, 0..size),
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, span.end - span.start)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(api::HEADER_SHA256, hex::encode(info.sha256))
        .header(api::HEADER_CHUNK_SIZE, size);
    if range.is_some() && span.end > span.start {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", span.start, span.end - 1),
        );
    }
    let body = if with_body && span.end > span.start {
        verified_body(&state.store, id, span).await?
    } else {
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync()
    };
    builder.body(body).map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL,
            error.to_string(),
        )
    })
}

/// Reads the first piece before answering, so corruption there gives a
/// clean error status; then streams the rest (the store reads the next
/// piece while one is sent, each verified before it is yielded).
async fn verified_body(
    store: &ChunkStore,
    id: ChunkId,
    range: Range<u64>,
) -> std::result::Result<ResponseBody, ApiError> {
    let mut pieces = store.read(id, range).await?;
    let first = pieces.next().await.transpose()?;
    let body = stream::iter(first.map(Ok))
        .chain(pieces)
        .inspect_err(move |error| {
            tracing::warn!(%id, %error, "chunk read failed mid-stream; cutting the response off");
        });
    Ok(StreamBody::new(body.map_ok(Frame::data)).boxed_unsync())
}

#[derive(Debug, PartialEq, Eq)]
enum RangeError {
    Malformed,
    Unsatisfiable,
}

/// Parses one `bytes=a-b`, `bytes=a-` or `bytes=-n` range (inclusive `b`)
/// against a chunk of `size` bytes into a non-empty half-open range.
fn parse_range(text: &str, size: u64) -> std::result::Result<Range<u64>, RangeError> {
    let spec = text
        .trim()
        .strip_prefix("bytes=")
        .ok_or(RangeError::Malformed)?;
    let (first, last) = spec.split_once('-').ok_or(RangeError::Malformed)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| RangeError::Malformed);
    let range = match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => return Err(RangeError::Malformed),
        (true, false) => {
            let suffix = number(last)?;
            if suffix == 0 {
                return Err(RangeError::Unsatisfiable);
            }
            size.saturating_sub(suffix)..size
        }
        (false, true) => number(first)?..size,
        (false, false) => {
            let (first, last) = (number(first)?, number(last)?);
            if last < first {
                return Err(RangeError::Malformed);
            }
            first..last.saturating_add(1).min(size)
        }
    };
    if range.start >= size {
        return Err(RangeError::Unsatisfiable);
    }
    Ok(range)
}

async fn inventory(
    state: &State,
    query: &str,
) -> std::result::Result<Response<ResponseBody>, ApiError> {
    let mut after = None;
    let mut limit = limits::INVENTORY_PAGE_MAX;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "after" => {
                after = Some(api::parse_id(value).ok_or_else(|| {
                    ApiError::bad_request(format!("after={value:?} is not a chunk id"))
                })?);
            }
            "limit" => {
                let wanted = value
                    .parse::<usize>()
                    .map_err(|_| ApiError::bad_request(format!("limit={value:?}")))?;
                limit = wanted.clamp(1, limits::INVENTORY_PAGE_MAX);
            }
            _ => return Err(ApiError::bad_request(format!("unknown parameter {name:?}"))),
        }
    }
    // The store lists every id; fine for a page every few seconds from GC.
    let ids = state.store.list().await?;
    let start = match after {
        Some(after) => ids.partition_point(|id| *id <= after),
        None => 0,
    };
    let mut page: Vec<String> = ids
        .iter()
        .skip(start)
        .take(limit.saturating_add(1))
        .map(ChunkId::to_hex)
        .collect();
    let truncated = page.len() > limit;
    page.truncate(limit);
    Ok(json_response(
        StatusCode::OK,
        &InventoryWire {
            ids: page,
            truncated,
        },
    ))
}

async fn status(state: &State) -> std::result::Result<Response<ResponseBody>, ApiError> {
    let (chunks, used_bytes) = state.store.usage().await?;
    let quarantined = u64::try_from(state.store.quarantined().await?.len()).unwrap_or(u64::MAX);
    let capacity_bytes = state.options.capacity;
    let status = ServerStatus {
        zone: state.options.zone.clone(),
        chunks,
        used_bytes,
        capacity_bytes,
        free_bytes: capacity_bytes.saturating_sub(used_bytes),
        quarantined,
    };
    Ok(json_response(StatusCode::OK, &status))
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<ResponseBody> {
    // Our reply types always serialize; an empty object would be a bug.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(
        Full::new(Bytes::from(bytes))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn empty_response(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}

/// Fails writes (and flushes) that make no progress for `timeout`: a peer
/// that stops reading cannot hold a connection, a store read and its
/// buffers forever. Reads pass through (idle keep-alive is the client's
/// business; request heads and bodies have their own timeouts).
struct StallGuard<T> {
    inner: T,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> StallGuard<T> {
    fn new(inner: T, timeout: Duration) -> StallGuard<T> {
        StallGuard {
            inner,
            timeout,
            stalled: None,
        }
    }

    fn progress<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "peer stopped reading",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-0", 10), Ok(0..1));
        assert_eq!(parse_range("bytes=2-5", 10), Ok(2..6));
        assert_eq!(parse_range("bytes=2-100", 10), Ok(2..10));
        assert_eq!(parse_range("bytes=7-", 10), Ok(7..10));
        assert_eq!(parse_range("bytes=-3", 10), Ok(7..10));
        assert_eq!(parse_range("bytes=-30", 10), Ok(0..10));
        assert_eq!(parse_range("bytes=10-", 10), Err(RangeError::Unsatisfiable));
        assert_eq!(parse_range("bytes=-0", 10), Err(RangeError::Unsatisfiable));
        assert_eq!(parse_range("bytes=0-0", 0), Err(RangeError::Unsatisfiable));
        assert_eq!(parse_range("bytes=5-2", 10), Err(RangeError::Malformed));
        assert_eq!(parse_range("bytes=1-2,4-5", 10), Err(RangeError::Malformed));
        assert_eq!(parse_range("items=1-2", 10), Err(RangeError::Malformed));
        assert_eq!(parse_range("bytes=-", 10), Err(RangeError::Malformed));
    }
}
