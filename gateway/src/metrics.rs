//! What the S3 front end has answered, counted for Prometheus: requests
//! by operation and status, their latency by operation, the bytes their
//! bodies declared, and the requests in flight. `arbor`'s metrics
//! endpoint renders them (docs/OPERATING.md, "Metrics").
//!
//! A request's operation is the name s3s gives it (`GetObject`), set by
//! the access check ([`OperationSlot`]); a request refused before it
//! (a bad signature, an unknown key) counts as `Unknown`, a browser upload
//! as `PostObject`, a CORS preflight as `Preflight`, and Arbor's own
//! admin API as `Admin`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The upper bounds, in seconds, of the latency histogram's buckets.
pub const LATENCY_BUCKETS_SECS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The operation name of a request refused before its operation was known.
pub const UNKNOWN_OPERATION: &str = "Unknown";

/// Where the access check writes the operation's name, in the request's
/// extensions; the HTTP server reads it once the request is answered.
#[derive(Clone, Default, Debug)]
pub struct OperationSlot(Arc<OnceLock<Box<str>>>);

impl OperationSlot {
    /// Names the operation; the first name set stays.
    pub fn set(&self, operation: impl Into<Box<str>>) {
        let _ = self.0.set(operation.into());
    }

    pub fn get(&self) -> Option<&str> {
        self.0.get().map(|name| &**name)
    }
}

/// One answered request, as [`RequestMetrics::record`] counts it.
#[derive(Clone, Copy, Debug)]
pub struct Answered<'a> {
    pub operation: &'a str,
    pub status: u16,
    /// From the request's head to the response's head: the whole request
    /// for a write, the time to the first byte for a read.
    pub latency: Duration,
    /// The request body's declared length (`Content-Length`), if any,
    /// whether or not the body was read.
    pub received: Option<u64>,
    /// The response body's length (none for HEAD), if known.
    pub sent: Option<u64>,
}

#[derive(Default)]
struct OperationStats {
    by_status: BTreeMap<u16, u64>,
    /// Counts per bucket of [`LATENCY_BUCKETS_SECS`], not cumulative.
    latency_buckets: [u64; LATENCY_BUCKETS_SECS.len()],
    latency_sum_secs: f64,
    count: u64,
    received_bytes: u64,
    sent_bytes: u64,
}

/// The front end's counters, shared by every connection.
#[derive(Default)]
pub struct RequestMetrics {
    operations: Mutex<BTreeMap<Box<str>, OperationStats>>,
    in_flight: AtomicI64,
}

/// Counts a request in flight until dropped.
pub struct InFlight(Arc<RequestMetrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RequestMetrics {
    /// A request has arrived; it is in flight until the guard is dropped.
    pub fn started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub fn record(&self, answered: Answered<'_>) {
        let secs = answered.latency.as_secs_f64();
        let bucket = LATENCY_BUCKETS_SECS.iter().position(|le| secs <= *le);
        let mut operations = self
            .operations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !operations.contains_key(answered.operation) {
            operations.insert(answered.operation.into(), OperationStats::default());
        }
        let Some(stats) = operations.get_mut(answered.operation) else {
            return;
        };
        *stats.by_status.entry(answered.status).or_default() += 1;
        if let Some(bucket) = bucket {
            stats.latency_buckets[bucket] += 1;
        }
        stats.latency_sum_secs += secs;
        stats.count += 1;
        stats.received_bytes = stats
            .received_bytes
            .saturating_add(answered.received.unwrap_or(0));
        stats.sent_bytes = stats.sent_bytes.saturating_add(answered.sent.unwrap_or(0));
    }

    /// Appends the metrics in Prometheus's text exposition format.
    pub fn render(&self, out: &mut String) {
        let operations = self
            .operations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        family(
            out,
            "arbor_s3_requests_total",
            "counter",
            "S3 requests answered, by operation and HTTP status.",
        );
        for (operation, stats) in operations.iter() {
            for (status, count) in &stats.by_status {
                let _ = writeln!(
                    out,
                    "arbor_s3_requests_total{{operation=\"{operation}\",status=\"{status}\"}} {count}"
                );
            }
        }
        family(
            out,
            "arbor_s3_request_duration_seconds",
            "histogram",
            "From a request's head to its response's head (for a read, the time to the first byte), by operation.",
        );
        for (operation, stats) in operations.iter() {
            let mut cumulative = 0;
            for (le, count) in LATENCY_BUCKETS_SECS.iter().zip(stats.latency_buckets) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "arbor_s3_request_duration_seconds_bucket{{operation=\"{operation}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "arbor_s3_request_duration_seconds_bucket{{operation=\"{operation}\",le=\"+Inf\"}} {}\n\
                 arbor_s3_request_duration_seconds_sum{{operation=\"{operation}\"}} {}\n\
                 arbor_s3_request_duration_seconds_count{{operation=\"{operation}\"}} {}",
                stats.count, stats.latency_sum_secs, stats.count
            );
        }
        for (name, help, value) in [
            (
                "arbor_s3_received_bytes_total",
                "Request body bytes, as their Content-Length declared them (read or not), by operation.",
                (|stats: &OperationStats| stats.received_bytes) as fn(&OperationStats) -> u64,
            ),
            (
                "arbor_s3_sent_bytes_total",
                "Response body bytes sent (none for HEAD), by operation.",
                |stats: &OperationStats| stats.sent_bytes,
            ),
        ] {
            family(out, name, "counter", help);
            for (operation, stats) in operations.iter() {
                let _ = writeln!(out, "{name}{{operation=\"{operation}\"}} {}", value(stats));
            }
        }
        drop(operations);
        family(
            out,
            "arbor_s3_requests_in_flight",
            "gauge",
            "S3 requests received and not yet answered.",
        );
        let _ = writeln!(
            out,
            "arbor_s3_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
    }
}

/// Writes a metric family's `# HELP` and `# TYPE` lines.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(operation: &'static str, status: u16, millis: u64) -> Answered<'static> {
        Answered {
            operation,
            status,
            latency: Duration::from_millis(millis),
            received: Some(10),
            sent: None,
        }
    }

    #[test]
    fn requests_render_as_counters_and_cumulative_histograms() {
        let metrics = Arc::new(RequestMetrics::default());
        let in_flight = metrics.started();
        metrics.record(answered("GetObject", 200, 2));
        metrics.record(answered("GetObject", 404, 20));
        metrics.record(answered("GetObject", 200, 20_000));
        metrics.record(answered("PutObject", 200, 1));
        let mut out = String::new();
        metrics.render(&mut out);
        for line in [
            "# TYPE arbor_s3_requests_total counter",
            "arbor_s3_requests_total{operation=\"GetObject\",status=\"200\"} 2",
            "arbor_s3_requests_total{operation=\"GetObject\",status=\"404\"} 1",
            "arbor_s3_requests_total{operation=\"PutObject\",status=\"200\"} 1",
            "# TYPE arbor_s3_request_duration_seconds histogram",
            "arbor_s3_request_duration_seconds_bucket{operation=\"GetObject\",le=\"0.001\"} 0",
            "arbor_s3_request_duration_seconds_bucket{operation=\"GetObject\",le=\"0.0025\"} 1",
            "arbor_s3_request_duration_seconds_bucket{operation=\"GetObject\",le=\"0.025\"} 2",
            "arbor_s3_request_duration_seconds_bucket{operation=\"GetObject\",le=\"10\"} 2",
            "arbor_s3_request_duration_seconds_bucket{operation=\"GetObject\",le=\"+Inf\"} 3",
            "arbor_s3_request_duration_seconds_count{operation=\"GetObject\"} 3",
            "arbor_s3_request_duration_seconds_bucket{operation=\"PutObject\",le=\"0.001\"} 1",
            "arbor_s3_received_bytes_total{operation=\"GetObject\"} 30",
            "arbor_s3_sent_bytes_total{operation=\"PutObject\"} 0",
            "arbor_s3_requests_in_flight 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
        let sum = out
            .lines()
            .find_map(|l| {
                l.strip_prefix("arbor_s3_request_duration_seconds_sum{operation=\"GetObject\"} ")
            })
            .expect("sum");
        assert!((sum.parse::<f64>().expect("a number") - 20.022).abs() < 1e-9);
        drop(in_flight);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.lines().any(|l| l == "arbor_s3_requests_in_flight 0"));
    }

    #[test]
    fn an_operation_is_named_once() {
        let slot = OperationSlot::default();
        assert_eq!(slot.get(), None);
        slot.clone().set("GetObject");
        slot.set("PutObject");
        assert_eq!(slot.get(), Some("GetObject"));
    }
}
