//! The metrics endpoint (`--metrics-listen ADDR` of `serve`, `gateway` and
//! `meta`): `GET /metrics` answers what this process's roles have counted,
//! in Prometheus's text exposition format (docs/OPERATING.md, "Metrics").
//! It is plain HTTP without authentication, on an address of its own, so
//! that a scraper needs no S3 signature: bind it where only the
//! monitoring system reaches it.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arbor_gateway::metrics::{RequestMetrics, family};
use arbor_meta::NodeStatus;
use arbor_net::{ServerLimits, serve_http_connection};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::bench::procfs;

/// The endpoint's one path.
pub const METRICS_PATH: &str = "/metrics";
/// Scrapers at once; a scrape is one small answer.
const CONNECTIONS_MAX: usize = 16;
/// How long a connection may take to send a request's head: an idle
/// one gives its slot back.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long scrapes in flight may finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Prometheus's text format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Reads a metadata node's status (a closure, so the endpoint does not
/// hold the node itself).
pub type StatusSource = Arc<dyn Fn() -> NodeStatus + Send + Sync>;

/// What this process exports besides its own CPU, memory and files.
#[derive(Clone, Default)]
pub struct Sources {
    /// The S3 front end's requests (`serve`, `gateway`).
    pub requests: Option<Arc<RequestMetrics>>,
    /// The metadata node's Raft state (`serve`, `meta`).
    pub meta: Option<StatusSource>,
}

/// Binds `addr` if given: a busy port fails the start, as the S3
/// listener's does.
pub async fn bind(addr: Option<SocketAddr>) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        None => Ok(None),
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the metrics endpoint {addr}"))?;
            Ok(Some(listener))
        }
    }
}

/// The endpoint's URL, for a role's start-up lines on stdout.
pub fn url(listener: &TcpListener) -> String {
    match listener.local_addr() {
        Ok(addr) => format!("http://{addr}{METRICS_PATH}"),
        Err(e) => format!("(unknown address: {e})"),
    }
}

/// Serves `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, sources: Sources, shutdown: CancellationToken) {
    let builder = Arc::new({
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        builder
    });
    let limits = ServerLimits {
        name: "metrics",
        connections_max: CONNECTIONS_MAX,
        drain_timeout: DRAIN_TIMEOUT,
    };
    arbor_net::serve(listener, limits, shutdown, move |stream, peer, draining| {
        let (sources, builder) = (sources.clone(), builder.clone());
        async move {
            let service = hyper::service::service_fn(move |req: http::Request<_>| {
                let sources = sources.clone();
                async move { Ok::<_, Infallible>(answer(&req, &sources)) }
            });
            if let Err(e) = serve_http_connection(stream, &builder, service, draining).await {
                tracing::debug!(%peer, error = %e, "metrics connection ended with error");
            }
        }
    })
    .await;
}

fn answer<B>(req: &http::Request<B>, sources: &Sources) -> http::Response<Full<Bytes>> {
    let status = if req.uri().path() != METRICS_PATH {
        http::StatusCode::NOT_FOUND
    } else if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        http::StatusCode::METHOD_NOT_ALLOWED
    } else {
        http::StatusCode::OK
    };
    let body = if status == http::StatusCode::OK {
        render(sources)
    } else {
        format!("{status}: GET {METRICS_PATH}\n")
    };
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

/// Every metric of `sources` and of this process, as one exposition.
pub fn render(sources: &Sources) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "arbor_build_info",
        "gauge",
        "Always 1; its label is the release of the arbor binary.",
    );
    let _ = writeln!(
        out,
        "arbor_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    render_process(&mut out);
    if let Some(requests) = &sources.requests {
        requests.render(&mut out);
    }
    if let Some(meta) = &sources.meta {
        render_meta(&mut out, &meta());
    }
    out
}

/// The process's CPU time, resident memory and open files, under the
/// names Prometheus's client libraries give them.
fn render_process(out: &mut String) {
    let pid = [std::process::id()];
    if let Ok(cpu) = procfs::cpu_time(&pid) {
        family(
            out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
        );
        let _ = writeln!(out, "process_cpu_seconds_total {}", cpu.as_secs_f64());
    }
    if let Ok(rss) = procfs::status_bytes(&pid, "VmRSS") {
        family(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    }
    if let Ok(files) = std::fs::read_dir("/proc/self/fd") {
        family(
            out,
            "process_open_fds",
            "gauge",
            "Open file descriptors, sockets included.",
        );
        let _ = writeln!(out, "process_open_fds {}", files.count());
    }
}

/// A metadata node's Raft state, and the reads it has served for remote
/// callers.
fn render_meta(out: &mut String, status: &NodeStatus) {
    let gauges = [
        (
            "arbor_meta_is_leader",
            "1 if this node leads its metadata group, else 0.",
            u64::from(status.state == "Leader"),
        ),
        (
            "arbor_meta_term",
            "The node's current Raft term.",
            status.term,
        ),
        (
            "arbor_meta_last_log_index",
            "The index of the last entry in the node's Raft log.",
            status.last_log_index.unwrap_or(0),
        ),
        (
            "arbor_meta_last_applied_index",
            "The index of the last entry the node's state machine applied.",
            status.last_applied_index.unwrap_or(0),
        ),
        (
            "arbor_meta_snapshot_index",
            "The last index the node's latest snapshot covers.",
            status.snapshot_index.unwrap_or(0),
        ),
        (
            "arbor_meta_voters",
            "Voters in the group's membership as this node knows it.",
            status.voters.len() as u64,
        ),
        (
            "arbor_meta_learners",
            "Learners in the group's membership as this node knows it.",
            status.learners.len() as u64,
        ),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "{name}{{node=\"{}\"}} {value}", status.id);
    }
    family(
        out,
        "arbor_meta_remote_reads_total",
        "counter",
        "Reads this node served for gateways and chunk servers, by operation.",
    );
    for (operation, count) in &status.reads {
        let _ = writeln!(
            out,
            "arbor_meta_remote_reads_total{{node=\"{}\",operation=\"{operation}\"}} {count}",
            status.id
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_renders_its_raft_state() {
        let status = NodeStatus {
            id: 3,
            addr: String::new(),
            state: "Leader".to_owned(),
            term: 7,
            leader: Some(3),
            last_log_index: Some(120),
            last_applied_index: Some(119),
            snapshot_index: None,
            voters: vec![(1, "a".to_owned()), (3, "c".to_owned())],
            learners: Vec::new(),
            reads: [("GetObject".to_owned(), 5)].into_iter().collect(),
        };
        let sources = Sources {
            requests: None,
            meta: Some(Arc::new(move || status.clone())),
        };
        let out = render(&sources);
        for line in [
            "arbor_meta_is_leader{node=\"3\"} 1",
            "arbor_meta_term{node=\"3\"} 7",
            "arbor_meta_last_log_index{node=\"3\"} 120",
            "arbor_meta_last_applied_index{node=\"3\"} 119",
            "arbor_meta_snapshot_index{node=\"3\"} 0",
            "arbor_meta_voters{node=\"3\"} 2",
            "arbor_meta_remote_reads_total{node=\"3\",operation=\"GetObject\"} 5",
            "# TYPE process_cpu_seconds_total counter",
            "# TYPE process_resident_memory_bytes gauge",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
        // Every sample line belongs to a family declared before it.
        let mut declared = Vec::new();
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().expect("name").to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().expect("name");
                assert!(
                    declared.iter().any(|d| name.starts_with(d.as_str())),
                    "{line} has no # TYPE"
                );
            }
        }
    }

    #[test]
    fn only_get_metrics_is_served() {
        let sources = Sources::default();
        let request = |method: http::Method, path: &str| {
            http::Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .expect("request")
        };
        let status = |req| answer(&req, &sources).status();
        assert_eq!(status(request(http::Method::GET, "/metrics")), 200);
        assert_eq!(status(request(http::Method::HEAD, "/metrics")), 200);
        assert_eq!(status(request(http::Method::GET, "/")), 404);
        assert_eq!(status(request(http::Method::POST, "/metrics")), 405);
    }
}
