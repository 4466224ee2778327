//! Client of the chunk server API (see `server.rs`): one [`ChunkClient`]
//! per server, all sharing the connection pool of one [`ChunkClients`].
//!
//! Every call is bounded: connecting by `connect_timeout`; waiting for an
//! answer by `request_timeout` (for a PUT, counted from the end of the
//! body); each piece of a body in either direction by `stall_timeout`.
//! Transport failures are [`ChunkError::Network`]; server answers map back
//! to the store's own variants (`NotFound`, `Corrupt`, ...) or to
//! [`ChunkError::Remote`].

use std::error::Error as StdError;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::oneshot;
use tokio::time::Instant;

use arbor_meta::ChunkId;
use arbor_meta::clock::{Clock, SystemClock};
use arbor_net::auth::{self, ClusterSecret};

use crate::api::{self, ErrorBody, Inventory, InventoryWire, PutReply, ServerStatus, code};
use crate::error::{ChunkError, Result};
use crate::limits;
use crate::store::ChunkInfo;

type RequestBody = UnsyncBoxBody<Bytes, ChunkError>;
type HttpClient = Client<HttpConnector, RequestBody>;

/// Timeouts of chunk server calls; [`Default`] holds the defaults.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub stall_timeout: Duration,
    /// How long a replicated write waits for a replica that lags the
    /// others ([`limits::REPLICA_LAG_TIMEOUT`]).
    pub lag_timeout: Duration,
    /// The cluster's secret, signing every request (see
    /// [`arbor_net::auth`]); `None` for servers without one.
    pub cluster_secret: Option<ClusterSecret>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: limits::CONNECT_TIMEOUT_DEFAULT,
            request_timeout: limits::REQUEST_TIMEOUT_DEFAULT,
            stall_timeout: limits::BODY_STALL_TIMEOUT,
            lag_timeout: limits::REPLICA_LAG_TIMEOUT,
            cluster_secret: None,
        }
    }
}

/// One keep-alive connection pool for talking to any number of chunk
/// servers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ChunkClients {
    http: HttpClient,
    options: ClientOptions,
}

impl ChunkClients {
    pub fn new(options: ClientOptions) -> ChunkClients {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(options.connect_timeout));
        connector.enforce_http(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(limits::POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(limits::POOL_IDLE_PER_SERVER_MAX)
            .build(connector);
        ChunkClients { http, options }
    }

    /// A client for the server at `addr` (`host:port`).
    pub fn server(&self, addr: &str) -> Result<ChunkClient> {
        let authority = addr.parse::<http::uri::Authority>().map_err(|error| {
            ChunkError::InvalidConfig(format!("chunk server address {addr:?}: {error}"))
        })?;
        Ok(ChunkClient {
            http: self.http.clone(),
            options: self.options.clone(),
            addr: authority.to_string(),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }
}

/// Where a put gets the expected SHA-256 of the chunk from.
#[derive(Debug)]
pub enum ExpectedSha256 {
    /// Known before the first byte: sent as the `x-arbor-sha256` header.
    Known([u8; 32]),
    /// Known once the body has been produced: sent as a trailer. If the
    /// sender is dropped instead, the put is aborted and nothing stored.
    Trailer(oneshot::Receiver<[u8; 32]>),
    /// Known once the body has been produced, with the CRC32C of the
    /// data: both sent as trailers. The server checks the bytes against
    /// the CRC32C and records this SHA-256 without hashing them again, so
    /// the sender must have hashed exactly the bytes it sent.
    Vouched(oneshot::Receiver<([u8; 32], u32)>),
}

/// What a put's trailers carry, once the body is done: the SHA-256, and the
/// CRC32C when the writer vouches for the SHA-256; `None` if the writer
/// gave up (the put is then aborted).
type TrailerDigests = BoxFuture<'static, Option<([u8; 32], Option<u32>)>>;

/// A ranged read from one chunk server.
pub struct ChunkRead {
    /// Size and SHA-256 of the whole chunk, as the server stored them.
    pub info: ChunkInfo,
    /// The bytes of the requested range, each piece verified by the server;
    /// ends with an error (never early) if the transfer breaks off.
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl std::fmt::Debug for ChunkRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkRead")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Client of one chunk server. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ChunkClient {
    http: HttpClient,
    options: ClientOptions,
    addr: String,
}

impl ChunkClient {
    /// The server's `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Stores chunk `id` from `body`. Nothing is stored unless the bytes
    /// hash to `expected` (or, `Vouched`, match its CRC32C); an error from
    /// `body` aborts the put.
    pub async fn put<S>(&self, id: ChunkId, expected: ExpectedSha256, body: S) -> Result<ChunkInfo>
    where
        S: Stream<Item = Result<Bytes>> + Send + 'static,
    {
        let progress = Arc::new(Mutex::new(Progress::new()));
        let mut builder = Request::builder()
            .method(Method::PUT)
            .uri(self.uri(&format!("/chunks/{}", id.to_hex()))?);
        let trailer: Option<TrailerDigests> = match expected {
            ExpectedSha256::Known(sha256) => {
                builder = builder.header(api::HEADER_SHA256, hex::encode(sha256));
                None
            }
            ExpectedSha256::Trailer(receiver) => {
                builder = builder.header(header::TRAILER, api::HEADER_SHA256);
                Some(async move { receiver.await.ok().map(|sha| (sha, None)) }.boxed())
            }
            ExpectedSha256::Vouched(receiver) => {
                builder = builder.header(
                    header::TRAILER,
                    format!("{}, {}", api::HEADER_SHA256, api::HEADER_CRC32C),
                );
                Some(async move { receiver.await.ok().map(|(sha, crc)| (sha, Some(crc))) }.boxed())
            }
        };
        // A body that streams is signed as the chunk's SHA-256 when it is
        // known up front (the server stores nothing else), else unsigned.
        let content = match &trailer {
            None => builder
                .headers_ref()
                .and_then(|h| h.get(api::HEADER_SHA256))
                .and_then(|v| v.to_str().ok())
                .unwrap_or(auth::UNSIGNED_PAYLOAD)
                .to_owned(),
            Some(_) => auth::UNSIGNED_PAYLOAD.to_owned(),
        };
        let frames = put_frames(body, trailer, progress.clone());
        let mut request = builder
            .body(StreamBody::new(frames).boxed_unsync())
            .map_err(|error| self.network(format!("building the request: {error}")))?;
        self.sign(&mut request, &content);

        let watchdog = self.put_watchdog(progress);
        let response = tokio::select! {
            response = self.http.request(request) => response.map_err(|error| self.network(chain(&error)))?,
            reason = watchdog => return Err(self.network(reason)),
        };
        if response.status() != StatusCode::CREATED && response.status() != StatusCode::OK {
            return Err(self.error_from(response, Some(id)).await);
        }
        let reply: PutReply = self.read_json(response).await?;
        let sha256 = api::parse_sha256(&reply.sha256)
            .ok_or_else(|| self.network("put reply has a malformed sha256".to_owned()))?;
        if api::parse_id(&reply.id) != Some(id) {
            return Err(self.network(format!("put reply names chunk {:?}", reply.id)));
        }
        Ok(ChunkInfo {
            id,
            size: reply.size,
            sha256,
        })
    }

    /// Streams bytes `range` of chunk `id`.
    pub async fn get(&self, id: ChunkId, range: Range<u64>) -> Result<ChunkRead> {
        if range.start > range.end {
            return Err(ChunkError::InvalidRange {
                id,
                start: range.start,
                end: range.end,
                size: 0,
            });
        }
        if range.start == range.end {
            // HTTP cannot ask for an empty range: check it against the size.
            let info = self.stat(id).await?;
            if range.end > info.size {
                return Err(ChunkError::InvalidRange {
                    id,
                    start: range.start,
                    end: range.end,
                    size: info.size,
                });
            }
            return Ok(ChunkRead {
                info,
                body: stream::empty().boxed(),
            });
        }
        let request = Request::builder()
            .method(Method::GET)
            .uri(self.uri(&format!("/chunks/{}", id.to_hex()))?)
            .header(
                header::RANGE,
                format!("bytes={}-{}", range.start, range.end - 1),
            )
            .body(empty_body())
            .map_err(|error| self.network(format!("building the request: {error}")))?;
        let response = self.send(request).await?;
        if response.status() != StatusCode::PARTIAL_CONTENT {
            let mut error = self.error_from(response, Some(id)).await;
            if let ChunkError::InvalidRange { start, end, .. } = &mut error {
                (*start, *end) = (range.start, range.end);
            }
            return Err(error);
        }
        let info = self.chunk_info(id, response.headers())?;
        let wanted = range.end - range.start;
        let content_range = format!("bytes {}-{}/{}", range.start, range.end - 1, info.size);
        let header_is = |name, value: &str| {
            response.headers().get(name).and_then(|v| v.to_str().ok()) == Some(value)
        };
        if range.end > info.size {
            // HTTP clamps a range running past the end; we ask exact ranges.
            return Err(ChunkError::InvalidRange {
                id,
                start: range.start,
                end: range.end,
                size: info.size,
            });
        }
        if !header_is(header::CONTENT_RANGE, &content_range)
            || !header_is(header::CONTENT_LENGTH, &wanted.to_string())
        {
            return Err(self.network(format!(
                "answer to a read of {}..{} of a {}-byte chunk has the wrong range or length",
                range.start, range.end, info.size
            )));
        }
        let body = self.body_stream(response.into_body(), wanted);
        Ok(ChunkRead { info, body })
    }

    /// Size and SHA-256 of chunk `id`.
    pub async fn stat(&self, id: ChunkId) -> Result<ChunkInfo> {
        let request = Request::builder()
            .method(Method::HEAD)
            .uri(self.uri(&format!("/chunks/{}", id.to_hex()))?)
            .body(empty_body())
            .map_err(|error| self.network(format!("building the request: {error}")))?;
        let response = self.send(request).await?;
        if response.status() != StatusCode::OK {
            return Err(self.error_from(response, Some(id)).await);
        }
        self.chunk_info(id, response.headers())
    }

    /// Removes chunk `id`; Ok if it was not there.
    pub async fn delete(&self, id: ChunkId) -> Result<()> {
        let request = Request::builder()
            .method(Method::DELETE)
            .uri(self.uri(&format!("/chunks/{}", id.to_hex()))?)
            .body(empty_body())
            .map_err(|error| self.network(format!("building the request: {error}")))?;
        let response = self.send(request).await?;
        if response.status() != StatusCode::NO_CONTENT {
            return Err(self.error_from(response, Some(id)).await);
        }
        Ok(())
    }

    /// One page of the server's chunk ids greater than `after`; `limit` is
    /// capped at [`limits::INVENTORY_PAGE_MAX`].
    pub async fn inventory(&self, after: Option<ChunkId>, limit: usize) -> Result<Inventory> {
        let limit = limit.clamp(1, limits::INVENTORY_PAGE_MAX);
        let query = match after {
            Some(after) => format!("/chunks?after={}&limit={limit}", after.to_hex()),
            None => format!("/chunks?limit={limit}"),
        };
        let request = Request::builder()
            .method(Method::GET)
            .uri(self.uri(&query)?)
            .body(empty_body())
            .map_err(|error| self.network(format!("building the request: {error}")))?;
        let response = self.send(request).await?;
        if response.status() != StatusCode::OK {
            return Err(self.error_from(response, None).await);
        }
        let page: InventoryWire = self.read_json(response).await?;
        let ids = page
            .ids
            .iter()
            .map(|hex| api::parse_id(hex))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| self.network("inventory holds a malformed id".to_owned()))?;
        Ok(Inventory {
            ids,
            truncated: page.truncated,
        })
    }

    pub async fn status(&self) -> Result<ServerStatus> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(self.uri("/status")?)
            .body(empty_body())
            .map_err(|error| self.network(format!("building the request: {error}")))?;
        let response = self.send(request).await?;
        if response.status() != StatusCode::OK {
            return Err(self.error_from(response, None).await);
        }
        self.read_json(response).await
    }

    fn uri(&self, path_and_query: &str) -> Result<Uri> {
        format!("http://{}{path_and_query}", self.addr)
            .parse::<Uri>()
            .map_err(|error| self.network(format!("bad URI: {error}")))
    }

    /// Adds the cluster authentication headers, when there is a secret.
    fn sign(&self, request: &mut Request<RequestBody>, content_sha256: &str) {
        if let Some(secret) = &self.options.cluster_secret {
            let (method, uri) = (request.method().clone(), request.uri().clone());
            auth::sign_headers(
                secret,
                request.headers_mut(),
                &method,
                &uri,
                content_sha256,
                SystemClock.now_ms(),
            );
        }
    }

    /// Sends a request without a body and waits for the answer's head.
    async fn send(&self, mut request: Request<RequestBody>) -> Result<Response<Incoming>> {
        self.sign(&mut request, &auth::body_sha256(b""));
        match tokio::time::timeout(self.options.request_timeout, self.http.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(self.network(chain(&error))),
            Err(_) => Err(self.network(format!(
                "no answer within {:?}",
                self.options.request_timeout
            ))),
        }
    }

    /// Resolves when a put should be given up: the server stopped taking
    /// the body, or did not answer in time once it had all of it.
    async fn put_watchdog(&self, progress: Arc<Mutex<Progress>>) -> String {
        let (stall, answer) = (self.options.stall_timeout, self.options.request_timeout);
        let tick = (stall.min(answer) / 4).max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(tick).await;
            let Ok(progress) = progress.lock() else {
                return "put progress lock poisoned".to_owned();
            };
            let idle = progress.last.elapsed();
            if progress.ended && idle > answer {
                return format!("no answer within {answer:?} of sending the body");
            }
            if !progress.ended && !progress.waiting_for_source && idle > stall {
                return format!("server took no body bytes for {stall:?}");
            }
        }
    }

    fn body_stream(&self, body: Incoming, wanted: u64) -> BoxStream<'static, Result<Bytes>> {
        let client = self.clone();
        let state = (body, 0u64, false);
        stream::unfold(state, move |(mut body, mut received, done)| {
            let client = client.clone();
            async move {
                if done {
                    return None;
                }
                loop {
                    let frame =
                        tokio::time::timeout(client.options.stall_timeout, body.frame()).await;
                    let failure = match frame {
                        Err(_) => format!(
                            "read stalled for {:?} after {received} of {wanted} bytes",
                            client.options.stall_timeout
                        ),
                        Ok(Some(Err(error))) => format!(
                            "read broke off after {received} of {wanted} bytes: {}",
                            chain(&error)
                        ),
                        Ok(None) if received == wanted => return None,
                        Ok(None) => format!("read ended after {received} of {wanted} bytes"),
                        Ok(Some(Ok(frame))) => match frame.into_data() {
                            Ok(data) => {
                                received = received
                                    .saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
                                if received > wanted {
                                    format!("read got more than the {wanted} bytes asked for")
                                } else if data.is_empty() {
                                    continue;
                                } else {
                                    return Some((Ok(data), (body, received, false)));
                                }
                            }
                            Err(_) => continue,
                        },
                    };
                    return Some((Err(client.network(failure)), (body, received, true)));
                }
            }
        })
        .boxed()
    }

    fn chunk_info(&self, id: ChunkId, headers: &HeaderMap) -> Result<ChunkInfo> {
        let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let sha256 = text(api::HEADER_SHA256).and_then(api::parse_sha256);
        let size = text(api::HEADER_CHUNK_SIZE).and_then(|size| size.parse::<u64>().ok());
        match (sha256, size) {
            (Some(sha256), Some(size)) => Ok(ChunkInfo { id, size, sha256 }),
            _ => Err(self.network("answer lacks the chunk's size or SHA-256".to_owned())),
        }
    }

    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        response: Response<Incoming>,
    ) -> Result<T> {
        let bytes = self.read_small_body(response.into_body()).await?;
        serde_json::from_slice(&bytes)
            .map_err(|error| self.network(format!("malformed JSON answer: {error}")))
    }

    async fn read_small_body(&self, body: Incoming) -> Result<Bytes> {
        let limited = Limited::new(body, limits::JSON_BODY_SIZE_MAX);
        match tokio::time::timeout(self.options.stall_timeout, limited.collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(error)) => Err(self.network(format!("reading the answer: {error}"))),
            Err(_) => Err(self.network("reading the answer stalled".to_owned())),
        }
    }

    /// The error an unexpected answer stands for.
    async fn error_from(&self, response: Response<Incoming>, id: Option<ChunkId>) -> ChunkError {
        let status = response.status();
        let header_code = response
            .headers()
            .get(api::HEADER_ERROR)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = self
            .read_small_body(response.into_body())
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice::<ErrorBody>(&bytes).ok());
        let code = header_code
            .or_else(|| body.as_ref().map(|body| body.code.clone()))
            .unwrap_or_default();
        let message = body
            .as_ref()
            .map(|body| body.message.clone())
            .unwrap_or_else(|| status.to_string());
        let size = body.as_ref().and_then(|body| body.size);
        match (id, code.as_str()) {
            (Some(id), code::NOT_FOUND) => ChunkError::NotFound(id),
            (Some(id), code::CORRUPT) => ChunkError::Corrupt {
                id,
                detail: format!("on {}: {message}", self.addr),
            },
            (Some(id), code::CHECKSUM_MISMATCH) => ChunkError::ChecksumMismatch { id },
            (Some(id), code::TOO_LARGE) => ChunkError::TooLarge {
                id,
                max: limits::CHUNK_SIZE_MAX,
            },
            (Some(id), code::INVALID_RANGE) => ChunkError::InvalidRange {
                id,
                start: 0,
                end: 0,
                size: size.unwrap_or(0),
            },
            _ => ChunkError::Remote {
                server: self.addr.clone(),
                status: status.as_u16(),
                code,
                message,
            },
        }
    }

    pub(crate) fn network(&self, detail: String) -> ChunkError {
        ChunkError::Network {
            server: self.addr.clone(),
            detail,
        }
    }
}

/// How far a put's body has got, for [`ChunkClient::put_watchdog`].
struct Progress {
    /// Last time a frame was handed to hyper (or the body ended).
    last: Instant,
    /// hyper asked for a frame and we wait on the caller's stream: a slow
    /// source is not the server's fault.
    waiting_for_source: bool,
    ended: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            last: Instant::now(),
            waiting_for_source: false,
            ended: false,
        }
    }
}

/// The frames of a put body: the data, then (if asked) the SHA-256 trailer.
fn put_frames<S>(
    body: S,
    trailer: Option<TrailerDigests>,
    progress: Arc<Mutex<Progress>>,
) -> impl Stream<Item = Result<Frame<Bytes>>> + Send + 'static
where
    S: Stream<Item = Result<Bytes>> + Send + 'static,
{
    let trailers = stream::once(async move {
        let frame = match trailer?.await {
            Some((sha256, crc32c)) => {
                let mut trailers = HeaderMap::new();
                // Hex digits are always a valid header value.
                let hex_value = |text: String| HeaderValue::from_str(&text).ok();
                if let Some(value) = hex_value(hex::encode(sha256)) {
                    trailers.insert(api::HEADER_SHA256, value);
                }
                if let Some(value) =
                    crc32c.and_then(|crc| hex_value(hex::encode(crc.to_be_bytes())))
                {
                    trailers.insert(api::HEADER_CRC32C, value);
                }
                Ok(Frame::trailers(trailers))
            }
            None => Err(std::io::Error::other("chunk writer gave up before the end").into()),
        };
        Some(frame)
    })
    .filter_map(futures::future::ready);
    Tracked {
        inner: body
            .map(|piece| piece.map(Frame::data))
            .chain(trailers)
            .boxed(),
        progress,
    }
}

/// Records in [`Progress`] when hyper takes frames and when we wait on the
/// source.
struct Tracked {
    inner: BoxStream<'static, Result<Frame<Bytes>>>,
    progress: Arc<Mutex<Progress>>,
}

impl Stream for Tracked {
    type Item = Result<Frame<Bytes>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let poll = self.inner.poll_next_unpin(cx);
        if let Ok(mut progress) = self.progress.lock() {
            match &poll {
                Poll::Pending => progress.waiting_for_source = true,
                Poll::Ready(item) => {
                    progress.waiting_for_source = false;
                    progress.last = Instant::now();
                    progress.ended = item.is_none();
                }
            }
        }
        poll
    }
}

fn empty_body() -> RequestBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An error and its sources, `: `-separated (hyper's own messages are terse).
pub(crate) fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    let mut depth = 0;
    while let Some(cause) = source {
        if depth >= 8 {
            break;
        }
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
        depth += 1;
    }
    text
}
