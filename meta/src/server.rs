//! The meta node's HTTP server: Raft RPCs from peers and the client API
//! (proposals, linearizable reads, admin) from remote [`crate::MetaClient`]s.
//! Routes and encodings are in [`crate::rpc`].
//!
//! It runs on the server skeleton (`arbor-net`), which owns every
//! connection task: when the server stops, open keep-alive connections get
//! a short graceful drain and are then cut, so a stopped node stops
//! answering (a "killed" node whose keep-alive connections kept serving
//! would still vote and append). Connections are capped by the skeleton,
//! requests in flight by semaphores, bodies by [`RPC_BODY_SIZE_MAX`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use arbor_net::auth::{self, ClusterSecret};
use arbor_net::{ServerLimits, serve_http1_connection};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::command::ReadRequest;
use crate::error::MetaError;
use crate::limits::{
    RPC_BODY_SIZE_MAX, SERVER_CONNECTIONS_MAX, SERVER_RAFT_REQUESTS_IN_FLIGHT_MAX,
    SERVER_REQUESTS_IN_FLIGHT_MAX,
};
use crate::raft::types::Proposal;
use crate::replica::Replica;
use crate::rpc::{
    AdminRequest, PATH_ADMIN, PATH_PROPOSE, PATH_RAFT_APPEND, PATH_RAFT_SNAPSHOT, PATH_RAFT_VOTE,
    PATH_READ,
};

/// How long open connections may finish their requests once the server
/// stops, before they are cut.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on reading a request body (a slow or stuck sender).
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What request handlers share.
struct ServerState {
    node: Arc<Replica>,
    /// When set, every request must carry a valid MAC under it.
    secret: Option<ClusterSecret>,
    /// Client and admin requests in flight.
    requests: Semaphore,
    /// Raft RPCs in flight: their own slots, so clients stuck on an
    /// isolated leader can never keep peers from healing it.
    raft_requests: Semaphore,
}

/// A server running on its own task.
pub(crate) struct ServerHandle {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl ServerHandle {
    pub(crate) fn spawn(
        listener: TcpListener,
        node: Arc<Replica>,
        secret: Option<ClusterSecret>,
    ) -> ServerHandle {
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, node, secret, stop.clone()));
        ServerHandle { stop, task }
    }

    /// Stops accepting, drains connections (bounded by [`DRAIN_TIMEOUT`])
    /// and waits for the accept task to end.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "meta server task failed");
        }
    }
}

/// Serves `node` on `listener` (on the server skeleton of `arbor-net`)
/// until `shutdown` is cancelled, then drains.
pub(crate) async fn serve(
    listener: TcpListener,
    node: Arc<Replica>,
    secret: Option<ClusterSecret>,
    shutdown: CancellationToken,
) {
    let state = Arc::new(ServerState {
        node,
        secret,
        requests: Semaphore::new(SERVER_REQUESTS_IN_FLIGHT_MAX),
        raft_requests: Semaphore::new(SERVER_RAFT_REQUESTS_IN_FLIGHT_MAX),
    });
    let builder = Arc::new({
        let mut builder = http1::Builder::new();
        builder.keep_alive(true);
        builder
    });
    let limits = ServerLimits {
        name: "meta",
        connections_max: SERVER_CONNECTIONS_MAX,
        drain_timeout: DRAIN_TIMEOUT,
    };
    arbor_net::serve(listener, limits, shutdown, move |stream, peer, draining| {
        let (state, builder) = (state.clone(), builder.clone());
        async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, request).await) }
            });
            if let Err(e) = serve_http1_connection(stream, &builder, service, draining).await {
                tracing::debug!(error = %e, %peer, "meta connection ended");
            }
        }
    })
    .await;
}

fn respond(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

fn refuse(status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    respond(status, reason.as_bytes().to_vec())
}

/// 401 for a request without a valid MAC under the cluster's secret.
fn unauthenticated(path: &str, refusal: &auth::Refusal) -> Response<Full<Bytes>> {
    tracing::warn!(path, refusal = %refusal, "unauthenticated request refused");
    refuse(
        StatusCode::UNAUTHORIZED,
        &format!("cluster authentication: {refusal}"),
    )
}

/// A decoded answer: always `200 OK` (see [`crate::rpc`]).
fn answer<T: Serialize>(value: &T) -> Response<Full<Bytes>> {
    match postcard::to_allocvec(value) {
        Ok(body) => respond(StatusCode::OK, body),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a meta answer");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the answer",
            )
        }
    }
}

async fn handle(state: &ServerState, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::POST {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "POST only");
    }
    let path = request.uri().path().to_owned();
    // Who lacks the cluster's secret gets nothing, not even a route.
    let signed_content = match &state.secret {
        None => None,
        Some(secret) => match auth::verify_headers(
            secret,
            request.method(),
            request.uri(),
            request.headers(),
            SystemClock.now_ms(),
        ) {
            Ok(content) => Some(content.to_owned()),
            Err(refusal) => return unauthenticated(&path, &refusal),
        },
    };
    let is_raft = matches!(
        path.as_str(),
        PATH_RAFT_APPEND | PATH_RAFT_VOTE | PATH_RAFT_SNAPSHOT
    );
    let known = is_raft || matches!(path.as_str(), PATH_PROPOSE | PATH_READ | PATH_ADMIN);
    if !known {
        return refuse(StatusCode::NOT_FOUND, "no such route");
    }
    if is_raft && state.node.faults.is_isolated() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "isolated");
    }
    let slots = if is_raft {
        &state.raft_requests
    } else {
        &state.requests
    };
    let Ok(_permit) = slots.acquire().await else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let body = match tokio::time::timeout(
        BODY_READ_TIMEOUT,
        Limited::new(request.into_body(), RPC_BODY_SIZE_MAX).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
        }
        Ok(Err(_)) => return refuse(StatusCode::BAD_REQUEST, "body read failed"),
        Err(_) => return refuse(StatusCode::REQUEST_TIMEOUT, "body read timed out"),
    };
    if let Some(signed) = signed_content
        && auth::body_sha256(&body) != signed
    {
        return unauthenticated(&path, &auth::Refusal::BodyMismatch);
    }
    let node = &state.node;
    match path.as_str() {
        PATH_RAFT_APPEND => match decode(&body) {
            Ok(rpc) => answer(&node.raft.append_entries(rpc).await),
            Err(response) => response,
        },
        PATH_RAFT_VOTE => match decode(&body) {
            Ok(rpc) => answer(&node.raft.vote(rpc).await),
            Err(response) => response,
        },
        PATH_RAFT_SNAPSHOT => match decode(&body) {
            Ok(rpc) => answer(&node.raft.install_snapshot(rpc).await),
            Err(response) => response,
        },
        PATH_PROPOSE => match decode::<Proposal>(&body) {
            Ok(proposal) => answer(&node.proposer.propose(proposal).await),
            Err(response) => response,
        },
        PATH_READ => match decode::<ReadRequest>(&body) {
            Ok(request) => answer(&node.read_request(request).await),
            Err(response) => response,
        },
        PATH_ADMIN => match decode::<AdminRequest>(&body) {
            Ok(AdminRequest::Status) => answer(&Ok::<_, MetaError>(node.status())),
            Ok(request) => answer(&node.change(request).await),
            Err(response) => response,
        },
        _ => refuse(StatusCode::NOT_FOUND, "no such route"),
    }
}

// `allow`, not `expect`: whether the lint fires depends on the http
// crates' features, which differ between a workspace build and this
// crate's alone.
#[allow(
    clippy::result_large_err,
    reason = "the error is the response to send, built once per bad request"
)]
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response<Full<Bytes>>> {
    postcard::from_bytes(body).map_err(|e| {
        tracing::debug!(error = %e, "undecodable meta request");
        refuse(StatusCode::BAD_REQUEST, "undecodable body")
    })
}
