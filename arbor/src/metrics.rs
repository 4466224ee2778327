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
use arbor_meta::records::{ChunkServerRecord, ServerStatus};
use arbor_meta::{MetaClient, NodeStatus};
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
    /// The cluster's chunk servers and chunks, read through this client
    /// while the node of `meta` leads (`meta`): one node exports them.
    pub cluster: Option<MetaClient>,
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
                async move { Ok::<_, Infallible>(answer(&req, &sources).await) }
            });
            if let Err(e) = serve_http_connection(stream, &builder, service, draining).await {
                tracing::debug!(%peer, error = %e, "metrics connection ended with error");
            }
        }
    })
    .await;
}

async fn answer<B>(req: &http::Request<B>, sources: &Sources) -> http::Response<Full<Bytes>> {
    let status = if req.uri().path() != METRICS_PATH {
        http::StatusCode::NOT_FOUND
    } else if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        http::StatusCode::METHOD_NOT_ALLOWED
    } else {
        http::StatusCode::OK
    };
    let body = if status == http::StatusCode::OK {
        render(sources).await
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
pub async fn render(sources: &Sources) -> String {
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
    let mut leads = false;
    if let Some(meta) = &sources.meta {
        let status = meta();
        leads = status.state == LEADER;
        render_meta(&mut out, &status);
    }
    if leads && let Some(client) = &sources.cluster {
        render_cluster(&mut out, client).await;
    }
    out
}

/// Raft's name of a leading node's state.
const LEADER: &str = "Leader";

/// The chunk servers' registry and the chunk records' counts, as the
/// metadata group holds them (O(1) counts and one row per server). A
/// failed read (leadership just lost) leaves them out, and says so.
async fn render_cluster(out: &mut String, client: &MetaClient) {
    let servers = client.chunk_servers().await;
    let counts = client.chunk_counts().await;
    family(
        out,
        "arbor_cluster_read_ok",
        "gauge",
        "1 if the chunk servers and chunk counts below were read, else 0.",
    );
    let _ = writeln!(
        out,
        "arbor_cluster_read_ok {}",
        u8::from(servers.is_ok() && counts.is_ok())
    );
    if let Ok(servers) = servers {
        render_servers(out, &servers);
    }
    if let Ok((records, under_replicated)) = counts {
        for (name, help, value) in [
            (
                "arbor_chunks",
                "Chunks the cluster holds (one record each, whatever its replicas).",
                records,
            ),
            (
                "arbor_chunks_under_replicated",
                "Chunks with fewer replicas than their factor, which the healer restores.",
                under_replicated,
            ),
        ] {
            family(out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

fn render_servers(out: &mut String, servers: &[ChunkServerRecord]) {
    let label = |server: &ChunkServerRecord| {
        format!("server=\"{}\",zone=\"{}\"", server.id, escape(&server.zone))
    };
    type Gauge = (&'static str, &'static str, fn(&ChunkServerRecord) -> u64);
    let gauges: [Gauge; 3] = [
        (
            "arbor_chunk_server_capacity_bytes",
            "A chunk server's capacity as it declares it.",
            |s| s.capacity,
        ),
        (
            "arbor_chunk_server_used_bytes",
            "Bytes a chunk server holds, from its last heartbeat.",
            |s| s.used,
        ),
        (
            "arbor_chunk_server_chunks",
            "Chunks a chunk server holds, from its last heartbeat.",
            |s| s.chunks,
        ),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        for server in servers {
            let _ = writeln!(out, "{name}{{{}}} {}", label(server), value(server));
        }
    }
    family(
        out,
        "arbor_chunk_server_status",
        "gauge",
        "1 for a chunk server's status (ONLINE, OFFLINE or DRAINING), 0 for the others.",
    );
    for server in servers {
        for status in [
            ServerStatus::Online,
            ServerStatus::Offline,
            ServerStatus::Draining,
        ] {
            let _ = writeln!(
                out,
                "arbor_chunk_server_status{{{},status=\"{}\"}} {}",
                label(server),
                status.as_str(),
                u8::from(server.status == status)
            );
        }
    }
    family(
        out,
        "arbor_chunk_server_last_heartbeat_timestamp_seconds",
        "gauge",
        "When a chunk server last sent a heartbeat, in seconds since the Unix epoch.",
    );
    for server in servers {
        let _ = writeln!(
            out,
            "arbor_chunk_server_last_heartbeat_timestamp_seconds{{{}}} {}",
            label(server),
            server.last_heartbeat_ms as f64 / 1000.0
        );
    }
}

/// A label value as Prometheus's text format writes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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

    #[tokio::test]
    async fn a_node_renders_its_raft_state() {
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
            cluster: None,
        };
        let out = render(&sources).await;
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
    fn chunk_servers_render_one_series_each() {
        let server = |id: u64, zone: &str, status: ServerStatus| ChunkServerRecord {
            id,
            addr: format!("10.0.0.{id}:9100"),
            zone: zone.to_owned(),
            capacity: 1000,
            used: 10 * id,
            chunks: id,
            status,
            last_heartbeat_ms: 1_500,
        };
        let mut out = String::new();
        render_servers(
            &mut out,
            &[
                server(1, "rack-a", ServerStatus::Online),
                server(2, "rack \"b\"", ServerStatus::Draining),
            ],
        );
        for line in [
            "# TYPE arbor_chunk_server_used_bytes gauge",
            "arbor_chunk_server_capacity_bytes{server=\"1\",zone=\"rack-a\"} 1000",
            "arbor_chunk_server_used_bytes{server=\"2\",zone=\"rack \\\"b\\\"\"} 20",
            "arbor_chunk_server_chunks{server=\"1\",zone=\"rack-a\"} 1",
            "arbor_chunk_server_status{server=\"1\",zone=\"rack-a\",status=\"ONLINE\"} 1",
            "arbor_chunk_server_status{server=\"1\",zone=\"rack-a\",status=\"OFFLINE\"} 0",
            "arbor_chunk_server_status{server=\"2\",zone=\"rack \\\"b\\\"\",status=\"DRAINING\"} 1",
            "arbor_chunk_server_last_heartbeat_timestamp_seconds{server=\"1\",zone=\"rack-a\"} 1.5",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
    }

    #[tokio::test]
    async fn only_get_metrics_is_served() {
        let sources = Sources::default();
        let request = |method: http::Method, path: &str| {
            http::Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .expect("request")
        };
        for (method, path, expected) in [
            (http::Method::GET, "/metrics", 200),
            (http::Method::HEAD, "/metrics", 200),
            (http::Method::GET, "/", 404),
            (http::Method::POST, "/metrics", 405),
        ] {
            let req = request(method.clone(), path);
            assert_eq!(
                answer(&req, &sources).await.status(),
                expected,
                "{method} {path}"
            );
        }
    }
}
