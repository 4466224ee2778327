//! The HTTP wire between metadata nodes and their remote clients: routes,
//! request and reply types, and the shared hyper client.
//!
//! Every route is a `POST` whose body and answer are postcard (JSON would be
//! 4x bigger for snapshot chunks: it encodes bytes as number arrays). A decoded answer always comes
//! with `200 OK`: Raft routes answer `Result<_, RaftError>`, client routes
//! `Result<_, MetaError>`. Any other status means the request was not
//! handled (`503` busy or isolated, `400` undecodable, `413` too large) and
//! the caller treats it as a transport failure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arbor_net::auth::{self, ClusterSecret};
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SystemClock};
use crate::limits::RPC_BODY_SIZE_MAX;

/// Raft: `AppendEntriesRequest` → `Result<AppendEntriesResponse, RaftError>`.
pub const PATH_RAFT_APPEND: &str = "/raft/append";
/// Raft: `VoteRequest` → `Result<VoteResponse, RaftError>`.
pub const PATH_RAFT_VOTE: &str = "/raft/vote";
/// Raft: one `InstallSnapshotRequest` chunk →
/// `Result<InstallSnapshotResponse, RaftError<InstallSnapshotError>>`.
pub const PATH_RAFT_SNAPSHOT: &str = "/raft/snapshot";
/// Client: a [`crate::raft::Proposal`] → `CommandResult`.
pub const PATH_PROPOSE: &str = "/meta/propose";
/// Client: a [`crate::command::ReadRequest`] → `Result<ReadReply, MetaError>`
/// (linearizable).
pub const PATH_READ: &str = "/meta/read";
/// Admin: an [`AdminRequest`] → `Result<NodeStatus, MetaError>` for
/// `Status`, `Result<(), MetaError>` for a membership change.
pub const PATH_ADMIN: &str = "/meta/admin";

/// Connecting to a peer longer than this counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Idle keep-alive connections are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle keep-alive connections kept per peer.
const POOL_IDLE_PER_HOST_MAX: usize = 32;

/// Membership changes and status, answered by the leader (status by any node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Adds node `id` at `addr` as a learner and waits until it has caught up.
    AddLearner { id: u64, addr: String },
    /// Makes `voters` the voter set (each must be a member already); nodes
    /// left out are removed from the group.
    ChangeMembership { voters: BTreeSet<u64> },
    /// Removes node `id` (voter or learner) from the group.
    RemoveNode { id: u64 },
    /// The answering node's view of the group.
    Status,
}

/// One node's view of the group (a summary of openraft's metrics).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: u64,
    /// The address peers and clients reach this node at ("" in-process).
    pub addr: String,
    /// `Leader`, `Follower`, `Candidate`, `Learner` or `Shutdown`.
    pub state: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    /// Voters with their addresses.
    pub voters: Vec<(u64, String)>,
    /// Learners with their addresses.
    pub learners: Vec<(u64, String)>,
    /// Remote reads this node has served since it started, by operation
    /// (`GetLocatedVersion`, `ChunkRecords`, ...): how many metadata round
    /// trips the gateways and chunk servers make, read by read.
    pub reads: BTreeMap<String, u64>,
}

/// Why an HTTP call did not produce an answer. The request may or may not
/// have been handled.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("bad address {addr:?}: {reason}")]
    Address { addr: String, reason: String },
    #[error("request to {addr} failed: {reason}")]
    Connection { addr: String, reason: String },
    #[error("request to {addr} timed out after {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr} answered {status}")]
    Status { addr: String, status: StatusCode },
    #[error("answer from {addr}: {reason}")]
    Body { addr: String, reason: String },
    #[error("cannot encode the request to {addr}: {reason}")]
    Encode { addr: String, reason: String },
    #[error("cannot decode the answer from {addr}: {reason}")]
    Decode { addr: String, reason: String },
}

/// A fault-injection switch for tests: while `isolated`, a node neither
/// sends nor accepts Raft RPCs (client routes stay served, so a test can
/// watch how an isolated node answers). Off in production.
#[derive(Debug, Default)]
pub struct Faults {
    isolated: AtomicBool,
}

impl Faults {
    pub fn set_isolated(&self, isolated: bool) {
        self.isolated.store(isolated, Ordering::SeqCst);
    }
    pub fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::SeqCst)
    }
}

/// hyper's pooled HTTP/1.1 client with TCP_NODELAY and a connect timeout.
/// Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    /// Signs every request when the cluster has a secret.
    secret: Option<ClusterSecret>,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new(CONNECT_TIMEOUT)
    }
}

impl HttpClient {
    pub fn new(connect_timeout: Duration) -> HttpClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST_MAX)
            .build(connector);
        HttpClient {
            client,
            secret: None,
        }
    }

    /// Signs every request with the cluster's secret (see
    /// [`arbor_net::auth`]); `None` sends requests unsigned.
    pub fn with_secret(mut self, secret: Option<ClusterSecret>) -> HttpClient {
        self.secret = secret;
        self
    }

    /// POSTs `body` to `http://{addr}{path}` and returns the answer's body,
    /// all within `timeout`.
    pub async fn post(
        &self,
        addr: &str,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, TransportError> {
        let uri: Uri =
            format!("http://{addr}{path}")
                .parse()
                .map_err(|e: http::uri::InvalidUri| TransportError::Address {
                    addr: addr.to_owned(),
                    reason: e.to_string(),
                })?;
        let content = self.secret.as_ref().map(|_| auth::body_sha256(&body));
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(http::header::CONTENT_TYPE, "application/postcard")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| TransportError::Address {
                addr: addr.to_owned(),
                reason: e.to_string(),
            })?;
        if let (Some(secret), Some(content)) = (&self.secret, &content) {
            let (method, uri) = (request.method().clone(), request.uri().clone());
            auth::sign_headers(
                secret,
                request.headers_mut(),
                &method,
                &uri,
                content,
                SystemClock.now_ms(),
            );
        }
        let exchange = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|e| TransportError::Connection {
                        addr: addr.to_owned(),
                        reason: error_chain(&e),
                    })?;
            if response.status() != StatusCode::OK {
                return Err(TransportError::Status {
                    addr: addr.to_owned(),
                    status: response.status(),
                });
            }
            let collected = Limited::new(response.into_body(), RPC_BODY_SIZE_MAX)
                .collect()
                .await
                .map_err(|e| TransportError::Body {
                    addr: addr.to_owned(),
                    reason: e.to_string(),
                })?;
            Ok(collected.to_bytes())
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout {
                addr: addr.to_owned(),
                timeout,
            }),
        }
    }

    /// [`HttpClient::post`] of a postcard-encoded `request`, decoding the
    /// answer as `T`.
    pub async fn call<Q: Serialize, T: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        request: &Q,
        timeout: Duration,
    ) -> Result<T, TransportError> {
        let body = postcard::to_allocvec(request).map_err(|e| TransportError::Encode {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?;
        let answer = self.post(addr, path, body, timeout).await?;
        decode_answer(addr, &answer)
    }
}

pub(crate) fn decode_answer<T: DeserializeOwned>(
    addr: &str,
    answer: &[u8],
) -> Result<T, TransportError> {
    postcard::from_bytes(answer).map_err(|e| TransportError::Decode {
        addr: addr.to_owned(),
        reason: e.to_string(),
    })
}

/// `e` and its sources, so "connection refused" is not hidden behind
/// "client error (Connect)".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Shared ownership of the switch between the transport and the server.
pub type SharedFaults = Arc<Faults>;
