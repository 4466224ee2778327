//! The meta node's HTTP server: Raft RPCs from peers and the client API
//! (proposals, linearizable reads, admin) from remote [`crate::MetaClient`]s.
//! Routes and encodings are in [`crate::rpc`].
//!
//! The accept task owns every connection task (a `JoinSet`): when the
//! server stops, open keep-alive connections get a short graceful drain and
//! are then cut, so a stopped node stops answering: a
//! "killed" node whose keep-alive connections kept serving would still
//! vote and append. Connections
//! and requests in flight are capped by semaphores; bodies by
//! [`RPC_BODY_SIZE_MAX`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

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
    /// Client and admin requests in flight.
    requests: Semaphore,
    /// Raft RPCs in flight: their own slots, so clients stuck on an
    /// isolated leader can never keep peers from healing it.
    raft_requests: Semaphore,
}

/// A server running on its own task.
pub(crate) struct ServerHandle {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    pub(crate) fn spawn(listener: TcpListener, node: Arc<Replica>) -> ServerHandle {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, node, async move {
            // A dropped sender stops the server too.
            let _ = stopped.await;
        }));
        ServerHandle {
            stop: Some(stop),
            task,
        }
    }

    /// Stops accepting, drains connections (bounded by [`DRAIN_TIMEOUT`])
    /// and waits for the accept task to end.
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(e) = (&mut self.task).await {
            tracing::error!(error = %e, "meta server task failed");
        }
    }
}

/// Serves `node` on `listener` until `shutdown` completes, then drains.
pub(crate) async fn serve(
    listener: TcpListener,
    node: Arc<Replica>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let state = Arc::new(ServerState {
        node,
        requests: Semaphore::new(SERVER_REQUESTS_IN_FLIGHT_MAX),
        raft_requests: Semaphore::new(SERVER_RAFT_REQUESTS_IN_FLIGHT_MAX),
    });
    let connection_slots = Arc::new(Semaphore::new(SERVER_CONNECTIONS_MAX));
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: pause, go on.
                        tracing::warn!(error = %e, "meta server accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = connection_slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "meta server at its connection limit: refused");
                    continue;
                };
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "set TCP_NODELAY");
                }
                let state = state.clone();
                let mut draining = draining.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, request).await) }
                    });
                    let connection = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service);
                    let mut connection = std::pin::pin!(connection);
                    tokio::select! {
                        result = connection.as_mut() => {
                            if let Err(e) = result {
                                tracing::debug!(error = %e, %peer, "meta connection ended");
                            }
                        }
                        _ = draining.changed() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = drain.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "meta connections cut after {DRAIN_TIMEOUT:?}"
        );
    }
    connections.shutdown().await;
}

fn respond(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

fn refuse(status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    respond(status, reason.as_bytes().to_vec())
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

#[expect(
    clippy::result_large_err,
    reason = "the error is the response to send, built once per bad request"
)]
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response<Full<Bytes>>> {
    postcard::from_bytes(body).map_err(|e| {
        tracing::debug!(error = %e, "undecodable meta request");
        refuse(StatusCode::BAD_REQUEST, "undecodable body")
    })
}
