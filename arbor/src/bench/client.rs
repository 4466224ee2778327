//! One keep-alive HTTP/1.1 connection to an S3 endpoint (hyper's client
//! connection, no pool), sending SigV4-signed requests and reading
//! answers without keeping large bodies.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::signer::{self, Signable, Signer};

/// Bodies of error answers and of listings are kept up to this size;
/// larger bodies are counted and dropped.
const KEPT_BODY_MAX: usize = 4 * 1024 * 1024;

/// Where requests go and who signs them.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `host:port`, as sent in `Host`.
    pub host: String,
    pub signer: Signer,
}

impl Endpoint {
    /// An `http://host:port` endpoint (no path, no TLS).
    pub fn parse(url: &str, signer: Signer) -> anyhow::Result<Endpoint> {
        let host = url
            .strip_prefix("http://")
            .with_context(|| format!("endpoint {url:?}: only http:// is supported"))?
            .trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            bail!("endpoint {url:?}: expected http://HOST:PORT");
        }
        Ok(Endpoint {
            host: host.to_owned(),
            signer,
        })
    }
}

/// What `x-amz-content-sha256` says of a request's body.
#[derive(Clone, Debug)]
pub enum Payload {
    /// The body's SHA-256 (hex), computed once by the caller.
    Signed(String),
    /// `UNSIGNED-PAYLOAD`.
    Unsigned,
}

/// A request: `path` is `/bucket/key` with a key of unreserved characters
/// and `/` only; `query` is raw.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Bytes,
    pub payload: Payload,
    /// Keep the answer's body (listings, upload ids); otherwise it is
    /// counted and dropped.
    pub keep_body: bool,
}

impl Call {
    /// A request without a body.
    pub fn empty(method: Method, path: String, query: Vec<(String, String)>) -> Call {
        Call {
            method,
            path,
            query,
            body: Bytes::new(),
            payload: Payload::Signed(signer::EMPTY_SHA256.to_owned()),
            keep_body: false,
        }
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub content_length: Option<u64>,
    /// Body bytes received.
    pub received: u64,
    /// The body, if the call asked for it.
    pub body: Bytes,
}

/// One connection; reconnects when the server closed it.
pub struct Connection {
    endpoint: Endpoint,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    pub fn new(endpoint: Endpoint) -> Connection {
        Connection {
            endpoint,
            sender: None,
        }
    }

    async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(&self.endpoint.host)
            .await
            .with_context(|| format!("connecting to {}", self.endpoint.host))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Sends `call`; an answer other than 2xx is an error naming the
    /// status and the S3 error code.
    pub async fn send(&mut self, call: &Call) -> anyhow::Result<Answer> {
        let mut sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connect().await?,
        };
        sender.ready().await.context("connection not ready")?;
        let request = self.request(call)?;
        let response = sender
            .send_request(request)
            .await
            .with_context(|| format!("{} {}", call.method, call.path))?;
        let (parts, mut body) = response.into_parts();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let keep = call.keep_body || !parts.status.is_success();
        let mut kept = Vec::new();
        let mut received = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.with_context(|| format!("reading {} {}", call.method, call.path))?;
            if let Ok(data) = frame.into_data() {
                received += data.len() as u64;
                if keep && kept.len() + data.len() <= KEPT_BODY_MAX {
                    kept.extend_from_slice(&data);
                }
            }
        }
        self.sender = Some(sender);
        if !parts.status.is_success() {
            let text = String::from_utf8_lossy(&kept);
            let code = between(&text, "<Code>", "</Code>").unwrap_or("");
            let message = between(&text, "<Message>", "</Message>").unwrap_or("");
            bail!(
                "{} {}: {} {code} {message}",
                call.method,
                call.path,
                parts.status
            );
        }
        Ok(Answer {
            status: parts.status,
            etag: header("etag"),
            content_length: header("content-length").and_then(|v| v.parse().ok()),
            received,
            body: Bytes::from(kept),
        })
    }

    fn request(&self, call: &Call) -> anyhow::Result<Request<Full<Bytes>>> {
        let payload = match &call.payload {
            Payload::Signed(hash) => hash.as_str(),
            Payload::Unsigned => signer::UNSIGNED_PAYLOAD,
        };
        let path = signer::uri_encode(&call.path, false);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signed = self.endpoint.signer.sign(
            &Signable {
                method: call.method.as_str(),
                host: &self.endpoint.host,
                path: &path,
                query: &call.query,
                headers: &[],
                payload_sha256: payload,
            },
            now,
        );
        let query = signer::canonical_query(&call.query);
        let target = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        let mut builder = Request::builder()
            .method(call.method.clone())
            .uri(target)
            .header("host", &self.endpoint.host)
            .header("content-length", call.body.len());
        for (name, value) in signed {
            builder = builder.header(name, value);
        }
        Ok(builder.body(Full::new(call.body.clone()))?)
    }
}

/// The text between the first `start` and the next `end`.
pub fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    text.get(from..from + len)
}
