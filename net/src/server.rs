//! The server skeleton: one accept loop, a cap on open connections, a
//! shutdown signal, and a drain with a deadline.
//!
//! [`serve`] accepts until `shutdown` is cancelled. Each connection runs
//! on a task the skeleton owns, holding one of `connections_max` slots; a
//! listener at its cap stops accepting (new connections wait in the
//! kernel's backlog) until a slot frees. On shutdown the listener closes,
//! every connection is told to finish (HTTP: answer the request in flight,
//! then close; idle keep-alive connections close at once), and whatever is
//! still open after `drain_timeout` is cut. A stopped server answers
//! nothing: no connection outlives [`serve`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Pause after a failed accept (out of file descriptors and the like)
/// before trying again.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// What a server may hold open, and how long it drains.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Names the server in logs ("s3", "meta", "chunk").
    pub name: &'static str,
    /// Connections open at once; at the cap the server stops accepting.
    pub connections_max: usize,
    /// How long open connections may finish their requests after
    /// shutdown before they are cut.
    pub drain_timeout: Duration,
}

/// Serves `listener` until `shutdown` is cancelled, handing every accepted
/// connection (with TCP_NODELAY set) to `connection`, then drains (see the
/// module docs). `connection` gets a token that is cancelled when the
/// server starts draining: it should finish what is in flight and return.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    limits: ServerLimits,
    shutdown: CancellationToken,
    connection: F,
) where
    F: Fn(TcpStream, SocketAddr, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    assert!(
        limits.connections_max > 0,
        "a server needs a connection slot"
    );
    let name = limits.name;
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    // Cancelled when draining starts; a child of `shutdown`.
    let draining = shutdown.child_token();
    let mut connections = JoinSet::new();
    tracing::info!(server = name, addr = ?listener.local_addr().ok(), "listening");
    loop {
        // Reap finished connections, so the set holds the live ones.
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(server = name, %error, "accept failed");
                    tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
                    continue;
                }
            },
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(server = name, %error, %peer, "could not set TCP_NODELAY");
        }
        let served = connection(stream, peer, draining.clone());
        connections.spawn(async move {
            served.await;
            drop(slot);
        });
    }
    drop(listener);
    draining.cancel();
    if !connections.is_empty() {
        tracing::info!(server = name, connections = connections.len(), "draining");
    }
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            server = name,
            left = connections.len(),
            "drain deadline passed; cutting connections"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    tracing::info!(server = name, "stopped");
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A hyper service the skeleton serves: any `service_fn` over requests.
pub trait Handler<B>:
    Service<
        Request<Incoming>,
        Response = Response<B>,
        Future: Send + 'static,
        Error: Into<BoxError>,
    > + Send
{
}

impl<S, B> Handler<B> for S where
    S: Service<
            Request<Incoming>,
            Response = Response<B>,
            Future: Send + 'static,
            Error: Into<BoxError>,
        > + Send
{
}

/// A response body the skeleton can send.
pub trait ResponseBody: Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

impl<B> ResponseBody for B where B: Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

/// Serves HTTP on one connection with `builder`'s settings until the
/// client closes it or `draining` is cancelled; then the request in
/// flight is answered and the connection closed.
pub async fn serve_http_connection<I, S, B>(
    io: I,
    builder: &auto::Builder<TokioExecutor>,
    service: S,
    draining: CancellationToken,
) -> Result<(), BoxError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Handler<B>,
    B: ResponseBody,
{
    until_drained(
        builder.serve_connection(TokioIo::new(io), service),
        draining,
    )
    .await
}

/// [`serve_http_connection`] for servers that speak HTTP/1.1 only (the
/// internal RPC servers), with hyper's own HTTP/1 settings (header size
/// caps that the auto builder lacks).
pub async fn serve_http1_connection<I, S, B>(
    io: I,
    builder: &http1::Builder,
    service: S,
    draining: CancellationToken,
) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Handler<B>,
    B: ResponseBody,
{
    until_drained(
        builder.serve_connection(TokioIo::new(io), service),
        draining,
    )
    .await
}

/// Drives `connection` to its end, shutting it down gracefully (the
/// request in flight is answered) once `draining` is cancelled.
async fn until_drained<C: GracefulConnection>(
    connection: C,
    draining: CancellationToken,
) -> Result<(), C::Error> {
    let mut connection = pin!(connection);
    tokio::select! {
        served = connection.as_mut() => served,
        () = draining.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn limits(connections_max: usize, drain_timeout: Duration) -> ServerLimits {
        ServerLimits {
            name: "test",
            connections_max,
            drain_timeout,
        }
    }

    /// A server answering every request after `delay`.
    async fn start(
        limits: ServerLimits,
        delay: Duration,
    ) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let builder = Arc::new({
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().keep_alive(true);
            builder
        });
        let task = tokio::spawn(serve(
            listener,
            limits,
            shutdown.clone(),
            move |stream, _, draining| {
                let builder = builder.clone();
                async move {
                    let service = service_fn(move |_request| async move {
                        tokio::time::sleep(delay).await;
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                            b"ok",
                        ))))
                    });
                    let _ = serve_http_connection(stream, &builder, service, draining).await;
                }
            },
        ));
        (addr, shutdown, task)
    }

    async fn get(addr: SocketAddr) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
            .await?;
        let mut answer = vec![0u8; 1024];
        let n = stream.read(&mut answer).await?;
        Ok(String::from_utf8_lossy(&answer[..n]).into_owned())
    }

    #[tokio::test]
    async fn a_request_in_flight_is_answered_during_the_drain() {
        let (addr, shutdown, task) = start(
            limits(4, Duration::from_secs(5)),
            Duration::from_millis(300),
        )
        .await;
        let request = tokio::spawn(get(addr));
        tokio::time::sleep(Duration::from_millis(100)).await;
        shutdown.cancel();
        let answer = request.await.expect("join").expect("answered");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        task.await.expect("server stops");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "no longer listening"
        );
    }

    #[tokio::test]
    async fn connections_past_the_deadline_are_cut() {
        let (addr, shutdown, task) = start(
            limits(4, Duration::from_millis(100)),
            Duration::from_secs(30),
        )
        .await;
        let request = tokio::spawn(get(addr));
        tokio::time::sleep(Duration::from_millis(100)).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops within the deadline")
            .expect("join");
        let answer = request.await.expect("join");
        assert!(
            answer.as_ref().map_or(true, |a| a.is_empty()),
            "cut, not answered: {answer:?}"
        );
    }

    #[tokio::test]
    async fn at_the_cap_a_new_connection_waits_for_a_slot() {
        let (addr, shutdown, task) = start(
            limits(1, Duration::from_secs(5)),
            Duration::from_millis(200),
        )
        .await;
        let first = tokio::spawn(get(addr));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = tokio::time::Instant::now();
        // Served only once the first connection is closed by its client.
        let second = tokio::spawn(get(addr));
        let first = first.await.expect("join").expect("first answered");
        assert!(first.starts_with("HTTP/1.1 200"));
        let second = second.await.expect("join").expect("second answered");
        assert!(second.starts_with("HTTP/1.1 200"));
        assert!(started.elapsed() >= Duration::from_millis(150));
        shutdown.cancel();
        task.await.expect("join");
    }
}
