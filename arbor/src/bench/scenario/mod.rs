//! The scenarios: what each one sends, on how many connections, and what
//! it checks of every answer. Each runs a counted number of operations
//! (flags set the counts, so a smoke run is tiny) through
//! [`Runner::drive`], which hands out operation numbers to one worker per
//! connection and records every latency. `scale` (the bucket growing to
//! millions of objects) has its phases in its own module.

mod scale;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Method;
use serde::Serialize;
use sha2::Digest;

use super::client::{Answer, Call, Connection, Endpoint, Payload, between};
use super::procfs;
use super::stats::{Latency, Samples};

pub use scale::{Respawn, ScaleReport};

/// A scenario stops after this many failed operations: the first error
/// is what the report shows, and a broken server should not take long.
const ERRORS_MAX: u64 = 100;
/// Connections used to write the objects a read scenario needs.
const POPULATE_CONNECTIONS: usize = 16;
/// How often the server's resident memory is sampled during a scenario.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// How often the progress line is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);
const MIB: f64 = 1024.0 * 1024.0;

/// The scenario list, in the order they run (reads after the
/// writes that give them objects): the default set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    PutLarge { streams: usize, signed: bool },
    GetLarge { streams: usize },
    PutSmall { connections: usize },
    GetSmall { connections: usize },
    HeadSmall { connections: usize },
    ListFlat,
    ListDeep,
    ListDelimiter,
    Multipart,
    Mixed,
    Scale,
}

pub const ALL: [Scenario; 20] = [
    Scenario::PutLarge {
        streams: 1,
        signed: true,
    },
    Scenario::PutLarge {
        streams: 1,
        signed: false,
    },
    Scenario::PutLarge {
        streams: 4,
        signed: true,
    },
    Scenario::PutLarge {
        streams: 4,
        signed: false,
    },
    Scenario::GetLarge { streams: 1 },
    Scenario::GetLarge { streams: 4 },
    Scenario::PutSmall { connections: 1 },
    Scenario::PutSmall { connections: 16 },
    Scenario::PutSmall { connections: 64 },
    Scenario::GetSmall { connections: 1 },
    Scenario::GetSmall { connections: 16 },
    Scenario::GetSmall { connections: 64 },
    Scenario::HeadSmall { connections: 1 },
    Scenario::HeadSmall { connections: 16 },
    Scenario::HeadSmall { connections: 64 },
    Scenario::ListFlat,
    Scenario::ListDeep,
    Scenario::ListDelimiter,
    Scenario::Multipart,
    Scenario::Mixed,
];

/// Scenarios that run only when named (`--only`), after the others:
/// they take minutes. `Scale` fills a bucket with `--scale-keys` objects
/// ([`scale`]).
pub const OPT_IN: [Scenario; 1] = [Scenario::Scale];

impl Scenario {
    pub fn name(self) -> String {
        match self {
            Scenario::PutLarge { streams, signed } => format!(
                "put-large-{streams}x-{}",
                if signed { "signed" } else { "unsigned" }
            ),
            Scenario::GetLarge { streams } => format!("get-large-{streams}x"),
            Scenario::PutSmall { connections } => format!("put-small-c{connections}"),
            Scenario::GetSmall { connections } => format!("get-small-c{connections}"),
            Scenario::HeadSmall { connections } => format!("head-small-c{connections}"),
            Scenario::ListFlat => "list-flat".to_owned(),
            Scenario::ListDeep => "list-deep".to_owned(),
            Scenario::ListDelimiter => "list-delimiter".to_owned(),
            Scenario::Multipart => "multipart".to_owned(),
            Scenario::Mixed => "mixed-70-30".to_owned(),
            Scenario::Scale => "scale".to_owned(),
        }
    }

    /// One line for the report, with the sizes of this run.
    pub fn describe(self, plan: &Plan) -> String {
        let size = |bytes: u64| format_size(bytes);
        match self {
            Scenario::PutLarge { streams, signed } => format!(
                "PUT {} on {}, {}",
                size(plan.large_size),
                count(streams, "stream"),
                if signed {
                    "signed payload"
                } else {
                    "UNSIGNED-PAYLOAD"
                }
            ),
            Scenario::GetLarge { streams } => {
                format!(
                    "GET {} on {}",
                    size(plan.large_size),
                    count(streams, "stream")
                )
            }
            Scenario::PutSmall { connections } => {
                format!(
                    "PUT {} on {}",
                    size(plan.small_size),
                    count(connections, "connection")
                )
            }
            Scenario::GetSmall { connections } => {
                format!(
                    "GET {} on {}",
                    size(plan.small_size),
                    count(connections, "connection")
                )
            }
            Scenario::HeadSmall { connections } => {
                format!(
                    "HEAD {} on {}",
                    size(plan.small_size),
                    count(connections, "connection")
                )
            }
            Scenario::ListFlat => format!(
                "ListObjectsV2 page of {}, {} keys flat",
                plan.list_page, plan.list_keys
            ),
            Scenario::ListDeep => format!(
                "ListObjectsV2 page of {}, {} keys 4 levels deep",
                plan.list_page, plan.list_keys
            ),
            Scenario::ListDelimiter => {
                "ListObjectsV2 delimiter / at the top of the deep tree".to_owned()
            }
            Scenario::Multipart => format!(
                "multipart {}, {} parts, {} in flight",
                size(plan.multipart_size),
                size(plan.part_size),
                plan.parts_in_flight
            ),
            Scenario::Mixed => format!(
                "70% GET / 30% PUT {} on {}",
                size(plan.small_size),
                count(plan.mixed_connections, "connection")
            ),
            Scenario::Scale => format!(
                "{} empty objects 4 levels deep; PUT, list and restart around them",
                plan.scale_keys
            ),
        }
    }

    /// Whether its throughput is in bytes (else in operations).
    pub fn moves_bytes(self) -> bool {
        matches!(
            self,
            Scenario::PutLarge { .. } | Scenario::GetLarge { .. } | Scenario::Multipart
        )
    }
}

/// `1 stream`, `4 streams`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `64 MiB`, `4 KiB`, `1 GiB`, or bytes.
pub fn format_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    for (unit, name) in [(KIB * KIB * KIB, "GiB"), (KIB * KIB, "MiB"), (KIB, "KiB")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} B")
}

/// Sizes and counts of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub large_size: u64,
    /// Large PUTs (and GETs) per large scenario, over all streams.
    pub large_count: u64,
    pub small_size: u64,
    /// Operations per small scenario, over all connections.
    pub small_count: u64,
    /// Keys of each listing tree (flat, deep).
    pub list_keys: u64,
    pub list_page: u64,
    /// Times each listing walks its whole tree.
    pub list_rounds: u64,
    pub multipart_size: u64,
    pub part_size: u64,
    pub parts_in_flight: usize,
    pub mixed_count: u64,
    pub mixed_connections: usize,
    /// Objects the `scale` scenario fills its bucket with.
    pub scale_keys: u64,
    /// The objects the read scenarios need exist already.
    pub prewritten: bool,
}

/// What the server processes spent during a scenario.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerCost {
    /// False when no PID was given (or one could not be read).
    pub cpu_read: bool,
    pub cpu_seconds: f64,
    pub cpu_ms_per_op: f64,
    pub cpu_ms_per_mib: f64,
    /// Highest `VmRSS` sum sampled during the scenario.
    pub rss_peak_bytes: u64,
    /// `VmHWM` sum at the end: the processes' peaks since they started.
    pub vm_hwm_bytes: u64,
}

/// One scenario's result.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub name: String,
    pub description: String,
    pub connections: usize,
    /// Operations that succeeded (pages, for listings; parts, for
    /// multipart).
    pub ops: u64,
    pub ops_expected: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Body bytes sent and received by successful operations.
    pub bytes: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub mib_per_sec: f64,
    pub latency: Latency,
    pub server: ServerCost,
}

/// Where a run goes.
#[derive(Clone, Debug)]
pub struct Target {
    pub label: String,
    pub endpoints: Vec<Endpoint>,
    pub pids: Vec<u32>,
}

/// The progress line's figures, shared with the workers.
#[derive(Default)]
pub struct Progress {
    done: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
}

impl Progress {
    /// One more operation done, with `bytes` of bodies.
    fn count(&self, bytes: u64) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// What the workers of one scenario did.
#[derive(Default)]
struct Driven {
    samples: Samples,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    etags: Vec<(u64, String)>,
    expected: u64,
    connections: usize,
}

impl Driven {
    fn fail(&mut self, error: &anyhow::Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{error:#}"));
        }
    }

    /// Adds what another set of workers did.
    fn absorb(&mut self, other: Driven) {
        self.samples.merge(other.samples);
        self.bytes += other.bytes;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.etags.extend(other.etags);
    }
}

type MakeCall = Arc<dyn Fn(u64) -> Call + Send + Sync>;
type Check = Arc<dyn Fn(u64, &Answer) -> anyhow::Result<()> + Send + Sync>;

/// Runs scenarios against one target; remembers which objects exist.
pub struct Runner {
    target: Target,
    plan: Plan,
    bucket: String,
    large_body: Bytes,
    large_sha256: String,
    small_body: Bytes,
    small_sha256: String,
    large_written: u64,
    small_written: u64,
    listing_written: bool,
    next_endpoint: usize,
}

impl Runner {
    pub fn new(target: Target, plan: Plan, bucket: String) -> anyhow::Result<Runner> {
        if target.endpoints.is_empty() {
            bail!("no endpoint");
        }
        let large_body = pattern(usize::try_from(plan.large_size)?, 1);
        let small_body = pattern(usize::try_from(plan.small_size)?, 2);
        let listing_written = plan.prewritten;
        let (large_written, small_written) = if plan.prewritten {
            (plan.large_count, plan.small_count)
        } else {
            (0, 0)
        };
        Ok(Runner {
            large_sha256: hex::encode(sha2::Sha256::digest(&large_body)),
            small_sha256: hex::encode(sha2::Sha256::digest(&small_body)),
            large_body,
            small_body,
            target,
            plan,
            bucket,
            large_written,
            small_written,
            listing_written,
            next_endpoint: 0,
        })
    }

    fn connection(&mut self) -> Connection {
        let endpoints = &self.target.endpoints;
        let endpoint = endpoints[self.next_endpoint % endpoints.len()].clone();
        self.next_endpoint += 1;
        Connection::new(endpoint)
    }

    /// Creates the bucket unless it exists (HeadBucket first: a key that
    /// may use a bucket need not be allowed to create buckets).
    pub async fn create_bucket(&mut self) -> anyhow::Result<()> {
        let mut connection = self.connection();
        let path = format!("/{}", self.bucket);
        if connection
            .send(&Call::empty(Method::HEAD, path.clone(), Vec::new()))
            .await
            .is_ok()
        {
            return Ok(());
        }
        let call = Call::empty(Method::PUT, path, Vec::new());
        match connection.send(&call).await {
            Ok(_) => Ok(()),
            Err(e) if format!("{e:#}").contains("BucketAlreadyOwnedByYou") => Ok(()),
            Err(e) => Err(e.context(format!("creating bucket {}", self.bucket))),
        }
    }

    /// Runs `scenario`, with its untimed preparation first.
    pub async fn run(&mut self, scenario: Scenario) -> anyhow::Result<Outcome> {
        self.prepare(scenario).await?;
        let meter = self.start_meter(scenario.name());
        let driven = self.drive_scenario(scenario, &meter.progress).await?;
        Ok(self
            .stop_meter(meter, scenario.describe(&self.plan), driven)
            .await)
    }

    /// Starts the clock, the server's CPU count, the memory sampler and
    /// the progress line of the scenario `name`.
    fn start_meter(&self, name: String) -> Meter {
        let progress = Arc::new(Progress::default());
        Meter {
            cpu_before: procfs::cpu_time(&self.target.pids).ok(),
            sampler: self.sample_rss(),
            ticker: show_progress(name.clone(), progress.clone()),
            progress,
            started: Instant::now(),
            name,
        }
    }

    /// Stops `meter` and makes the outcome of what was `driven` under it.
    async fn stop_meter(&self, meter: Meter, description: String, driven: Driven) -> Outcome {
        let elapsed = meter.started.elapsed();
        meter.ticker.abort();
        let rss_peak = meter.sampler.stop().await;
        let cpu_after = procfs::cpu_time(&self.target.pids).ok();
        let ops = driven.samples.len() as u64;
        let mut samples = driven.samples;
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let mib = driven.bytes as f64 / MIB;
        let mut server = ServerCost {
            rss_peak_bytes: rss_peak,
            vm_hwm_bytes: procfs::status_bytes(&self.target.pids, "VmHWM").unwrap_or(0),
            ..ServerCost::default()
        };
        if let (Some(before), Some(after)) = (meter.cpu_before, cpu_after)
            && !self.target.pids.is_empty()
        {
            let cpu = after.saturating_sub(before).as_secs_f64();
            server.cpu_read = true;
            server.cpu_seconds = cpu;
            server.cpu_ms_per_op = if ops > 0 {
                cpu * 1000.0 / ops as f64
            } else {
                0.0
            };
            server.cpu_ms_per_mib = if mib > 0.0 { cpu * 1000.0 / mib } else { 0.0 };
        }
        let outcome = Outcome {
            name: meter.name,
            description,
            connections: driven.connections,
            ops,
            ops_expected: driven.expected,
            errors: driven.errors,
            first_error: driven.first_error,
            bytes: driven.bytes,
            seconds,
            ops_per_sec: ops as f64 / seconds,
            mib_per_sec: mib / seconds,
            latency: samples.latency(),
            server,
        };
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprint!("\r\x1b[K");
        }
        eprintln!(
            "bench: {} [{}]: {} ops, {} errors, {:.1} ops/s, {:.1} MiB/s, p50 {:.2} ms, p99 {:.2} ms",
            outcome.name,
            self.target.label,
            outcome.ops,
            outcome.errors,
            outcome.ops_per_sec,
            outcome.mib_per_sec,
            outcome.latency.p50_ms,
            outcome.latency.p99_ms
        );
        outcome
    }

    /// Writes the objects a read scenario needs, if an earlier scenario
    /// of this run did not.
    async fn prepare(&mut self, scenario: Scenario) -> anyhow::Result<()> {
        let progress = Arc::new(Progress::default());
        let driven = match scenario {
            Scenario::GetLarge { .. } if self.large_written == 0 => {
                let count = self.plan.large_count;
                self.large_written = count;
                self.drive(1, count, self.put_large(false), ok(), &progress)
                    .await
            }
            Scenario::GetSmall { .. } | Scenario::HeadSmall { .. } | Scenario::Mixed
                if self.small_written < self.plan.small_count =>
            {
                let count = self.plan.small_count;
                self.small_written = count;
                self.drive(
                    POPULATE_CONNECTIONS,
                    count,
                    self.put_small(),
                    ok(),
                    &progress,
                )
                .await
            }
            Scenario::ListFlat | Scenario::ListDeep | Scenario::ListDelimiter
                if !self.listing_written =>
            {
                self.listing_written = true;
                let bucket = self.bucket.clone();
                let keys = self.plan.list_keys;
                let make: MakeCall = Arc::new(move |i| {
                    let key = if i < keys {
                        flat_key(i)
                    } else {
                        deep_key(i - keys)
                    };
                    Call::empty(Method::PUT, format!("/{bucket}/{key}"), Vec::new())
                });
                self.drive(POPULATE_CONNECTIONS, 2 * keys, make, ok(), &progress)
                    .await
            }
            _ => return Ok(()),
        };
        if let Some(error) = driven.first_error {
            bail!("preparing {}: {error}", scenario.name());
        }
        Ok(())
    }

    async fn drive_scenario(
        &mut self,
        scenario: Scenario,
        progress: &Arc<Progress>,
    ) -> anyhow::Result<Driven> {
        let plan = self.plan.clone();
        Ok(match scenario {
            Scenario::PutLarge { streams, signed } => {
                self.large_written = self.large_written.max(plan.large_count);
                self.drive(
                    streams,
                    plan.large_count,
                    self.put_large(signed),
                    ok(),
                    progress,
                )
                .await
            }
            Scenario::GetLarge { streams } => {
                let make = self.read_written(Method::GET, "large", self.large_written);
                let check = received(plan.large_size);
                self.drive(streams, plan.large_count, make, check, progress)
                    .await
            }
            Scenario::PutSmall { connections } => {
                self.small_written = self.small_written.max(plan.small_count);
                self.drive(
                    connections,
                    plan.small_count,
                    self.put_small(),
                    ok(),
                    progress,
                )
                .await
            }
            Scenario::GetSmall { connections } => {
                let make = self.read_written(Method::GET, "small", self.small_written);
                let check = received(plan.small_size);
                self.drive(connections, plan.small_count, make, check, progress)
                    .await
            }
            Scenario::HeadSmall { connections } => {
                let make = self.read_written(Method::HEAD, "small", self.small_written);
                let size = plan.small_size;
                let check: Check = Arc::new(move |_, answer| {
                    if answer.content_length != Some(size) {
                        bail!(
                            "HEAD: Content-Length {:?}, expected {size}",
                            answer.content_length
                        );
                    }
                    Ok(())
                });
                self.drive(connections, plan.small_count, make, check, progress)
                    .await
            }
            Scenario::ListFlat => self.list_walk("flat/", None, progress).await,
            Scenario::ListDeep => self.list_walk("deep/", None, progress).await,
            Scenario::ListDelimiter => self.list_walk("deep/", Some("/"), progress).await,
            Scenario::Multipart => self.multipart(progress).await?,
            Scenario::Mixed => {
                let (bucket, written, size) =
                    (self.bucket.clone(), self.small_written, plan.small_size);
                let (body, sha256) = (self.small_body.clone(), self.small_sha256.clone());
                let make: MakeCall = Arc::new(move |i| {
                    let draw = mix(i);
                    if draw % 10 < 7 {
                        Call::empty(
                            Method::GET,
                            format!("/{bucket}/small/{}", (draw >> 8) % written),
                            Vec::new(),
                        )
                    } else {
                        Call {
                            method: Method::PUT,
                            path: format!("/{bucket}/mixed/{i}"),
                            query: Vec::new(),
                            body: body.clone(),
                            payload: Payload::Signed(sha256.clone()),
                            keep_body: false,
                        }
                    }
                });
                let check: Check = Arc::new(move |i, answer| {
                    if mix(i) % 10 < 7 && answer.received != size {
                        bail!("GET: {} bytes, expected {size}", answer.received);
                    }
                    Ok(())
                });
                self.drive(
                    plan.mixed_connections,
                    plan.mixed_count,
                    make,
                    check,
                    progress,
                )
                .await
            }
            Scenario::Scale => bail!("scale runs through Runner::scale"),
        })
    }

    fn put_large(&self, signed: bool) -> MakeCall {
        let bucket = self.bucket.clone();
        let body = self.large_body.clone();
        let payload = if signed {
            Payload::Signed(self.large_sha256.clone())
        } else {
            Payload::Unsigned
        };
        Arc::new(move |i| Call {
            method: Method::PUT,
            path: format!("/{bucket}/large/{i}"),
            query: Vec::new(),
            body: body.clone(),
            payload: payload.clone(),
            keep_body: false,
        })
    }

    fn put_small(&self) -> MakeCall {
        let bucket = self.bucket.clone();
        let body = self.small_body.clone();
        let sha256 = self.small_sha256.clone();
        Arc::new(move |i| Call {
            method: Method::PUT,
            path: format!("/{bucket}/small/{i}"),
            query: Vec::new(),
            body: body.clone(),
            payload: Payload::Signed(sha256.clone()),
            keep_body: false,
        })
    }

    /// `method` on the objects `dir/0` .. `dir/{written - 1}` written by
    /// an earlier scenario, round and round.
    fn read_written(&self, method: Method, dir: &'static str, written: u64) -> MakeCall {
        let bucket = self.bucket.clone();
        Arc::new(move |i| {
            Call::empty(
                method.clone(),
                format!("/{bucket}/{dir}/{}", i % written),
                Vec::new(),
            )
        })
    }

    /// `count` operations numbered 0.., handed out to one worker per
    /// connection; each is timed from sending to the last body byte.
    async fn drive(
        &mut self,
        connections: usize,
        count: u64,
        make: MakeCall,
        check: Check,
        progress: &Arc<Progress>,
    ) -> Driven {
        let connections = connections.max(1);
        let next = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::with_capacity(connections);
        for _ in 0..connections {
            let mut connection = self.connection();
            let (next, make, check, progress) =
                (next.clone(), make.clone(), check.clone(), progress.clone());
            workers.push(tokio::spawn(async move {
                let mut driven = Driven::default();
                loop {
                    if progress.errors.load(Ordering::Relaxed) >= ERRORS_MAX {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let call = make(i);
                    let started = Instant::now();
                    let result = connection
                        .send(&call)
                        .await
                        .and_then(|answer| check(i, &answer).map(|()| answer));
                    match result {
                        Ok(answer) => {
                            driven.samples.record(started.elapsed());
                            let bytes = call.body.len() as u64 + answer.received;
                            driven.bytes += bytes;
                            progress.count(bytes);
                            if let Some(etag) = answer.etag {
                                driven.etags.push((i, etag));
                            }
                        }
                        Err(e) => {
                            progress.errors.fetch_add(1, Ordering::Relaxed);
                            driven.fail(&e);
                        }
                    }
                }
                driven
            }));
        }
        let mut all = Driven {
            samples: Samples::with_capacity(usize::try_from(count).unwrap_or(0)),
            expected: count,
            connections,
            ..Driven::default()
        };
        for worker in workers {
            match worker.await {
                Ok(driven) => all.absorb(driven),
                Err(e) => all.fail(&anyhow::anyhow!("worker failed: {e}")),
            }
        }
        all
    }

    /// Walks the listing of `prefix` page by page, `list_rounds` times,
    /// on one connection; each page is an operation, checked for the
    /// number of keys (or common prefixes) it must hold.
    async fn list_walk(
        &mut self,
        prefix: &str,
        delimiter: Option<&str>,
        progress: &Arc<Progress>,
    ) -> Driven {
        let (keys, page) = (self.plan.list_keys, self.plan.list_page.max(1));
        // Without a delimiter the tree's keys; with one, the top-level
        // directories of the deep tree (a thousand keys each).
        let entries = if delimiter.is_some() {
            keys.div_ceil(1000)
        } else {
            keys
        };
        let pages = entries.div_ceil(page).max(1);
        let mut driven = Driven {
            expected: pages * self.plan.list_rounds,
            connections: 1,
            ..Driven::default()
        };
        let mut connection = self.connection();
        for _ in 0..self.plan.list_rounds {
            let mut token: Option<String> = None;
            let mut seen = 0u64;
            for number in 0..pages {
                let mut query = vec![
                    ("list-type".to_owned(), "2".to_owned()),
                    ("prefix".to_owned(), prefix.to_owned()),
                    ("max-keys".to_owned(), page.to_string()),
                ];
                if let Some(delimiter) = delimiter {
                    query.push(("delimiter".to_owned(), delimiter.to_owned()));
                }
                if let Some(token) = &token {
                    query.push(("continuation-token".to_owned(), token.clone()));
                }
                let mut call = Call::empty(Method::GET, format!("/{}", self.bucket), query);
                call.keep_body = true;
                let started = Instant::now();
                let result = connection.send(&call).await.and_then(|answer| {
                    let text = String::from_utf8_lossy(&answer.body).into_owned();
                    let found = if delimiter.is_some() {
                        text.matches("<CommonPrefixes>").count() as u64
                    } else {
                        text.matches("<Key>").count() as u64
                    };
                    let want = page.min(entries - seen);
                    if found != want {
                        bail!("page {number} of {prefix}: {found} entries, expected {want}");
                    }
                    let last = number + 1 == pages;
                    let next =
                        between(&text, "<NextContinuationToken>", "</NextContinuationToken>");
                    match (last, next) {
                        (false, None) => bail!("page {number} of {prefix}: no continuation token"),
                        (true, Some(_)) => {
                            bail!("page {number} of {prefix}: truncated past the end")
                        }
                        _ => {}
                    }
                    Ok((answer.received, found, next.map(str::to_owned)))
                });
                match result {
                    Ok((bytes, found, next)) => {
                        driven.samples.record(started.elapsed());
                        driven.bytes += bytes;
                        progress.count(bytes);
                        seen += found;
                        token = next;
                    }
                    Err(e) => {
                        driven.fail(&e);
                        break;
                    }
                }
            }
        }
        driven
    }

    /// One multipart upload: create, the parts on `parts_in_flight`
    /// connections (each part an operation), complete; the scenario's
    /// time covers all three.
    async fn multipart(&mut self, progress: &Arc<Progress>) -> anyhow::Result<Driven> {
        let plan = self.plan.clone();
        let part_size = usize::try_from(plan.part_size)?;
        let total = usize::try_from(plan.multipart_size)?;
        let parts = plan.multipart_size.div_ceil(plan.part_size.max(1));
        let body = pattern(part_size, 3);
        let last_len = total - part_size * (usize::try_from(parts)? - 1);
        let last = body.slice(..last_len);
        let (body_sha256, last_sha256) = (
            hex::encode(sha2::Sha256::digest(&body)),
            hex::encode(sha2::Sha256::digest(&last)),
        );
        let path = format!("/{}/multipart/object", self.bucket);
        let mut connection = self.connection();
        let mut create = Call::empty(
            Method::POST,
            path.clone(),
            vec![("uploads".to_owned(), String::new())],
        );
        create.keep_body = true;
        let answer = connection
            .send(&create)
            .await
            .context("CreateMultipartUpload")?;
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        let upload_id = between(&text, "<UploadId>", "</UploadId>")
            .context("CreateMultipartUpload: no UploadId")?
            .to_owned();
        let (make_path, id) = (path.clone(), upload_id.clone());
        let make: MakeCall = Arc::new(move |i| {
            let is_last = i + 1 == parts;
            Call {
                method: Method::PUT,
                path: make_path.clone(),
                query: vec![
                    ("partNumber".to_owned(), (i + 1).to_string()),
                    ("uploadId".to_owned(), id.clone()),
                ],
                body: if is_last { last.clone() } else { body.clone() },
                payload: Payload::Signed(if is_last {
                    last_sha256.clone()
                } else {
                    body_sha256.clone()
                }),
                keep_body: false,
            }
        });
        let mut driven = self
            .drive(plan.parts_in_flight, parts, make, ok(), progress)
            .await;
        if driven.errors > 0 {
            return Ok(driven);
        }
        driven.etags.sort();
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, etag) in &driven.etags {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>",
                i + 1
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let xml = Bytes::from(xml);
        let complete = Call {
            method: Method::POST,
            path,
            query: vec![("uploadId".to_owned(), upload_id)],
            payload: Payload::Signed(hex::encode(sha2::Sha256::digest(&xml))),
            body: xml,
            keep_body: true,
        };
        match connection.send(&complete).await {
            // CompleteMultipartUpload may fail in a 200's body.
            Ok(answer) if String::from_utf8_lossy(&answer.body).contains("<Error>") => {
                driven.fail(&anyhow::anyhow!(
                    "CompleteMultipartUpload: {}",
                    String::from_utf8_lossy(&answer.body)
                ))
            }
            Ok(_) => {}
            Err(e) => driven.fail(&e.context("CompleteMultipartUpload")),
        }
        Ok(driven)
    }

    /// Samples the summed `VmRSS` of the target's processes until stopped.
    fn sample_rss(&self) -> RssSampler {
        let pids = self.target.pids.clone();
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = 0u64;
            loop {
                if let Ok(rss) = procfs::status_bytes(&pids, "VmRSS") {
                    peak = peak.max(rss);
                }
                tokio::select! {
                    () = token.cancelled() => return peak,
                    () = tokio::time::sleep(RSS_SAMPLE_INTERVAL) => {}
                }
            }
        });
        RssSampler { stop, task }
    }
}

/// What [`Runner::start_meter`] started.
struct Meter {
    name: String,
    progress: Arc<Progress>,
    cpu_before: Option<Duration>,
    sampler: RssSampler,
    ticker: tokio::task::JoinHandle<()>,
    started: Instant,
}

struct RssSampler {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    async fn stop(self) -> u64 {
        self.stop.cancel();
        self.task.await.unwrap_or(0)
    }
}

/// Redraws `bench: NAME: N ops, X MiB/s` on stderr until aborted.
fn show_progress(name: String, progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    use std::io::IsTerminal;
    // Redrawn in place on a terminal; a line every few seconds in a log.
    let terminal = std::io::stderr().is_terminal();
    let (interval, start, end) = if terminal {
        (PROGRESS_INTERVAL, "\r\x1b[K", "")
    } else {
        (PROGRESS_INTERVAL * 10, "", "\n")
    };
    tokio::spawn(async move {
        let started = Instant::now();
        loop {
            tokio::time::sleep(interval).await;
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            let done = progress.done.load(Ordering::Relaxed);
            let bytes = progress.bytes.load(Ordering::Relaxed);
            let errors = progress.errors.load(Ordering::Relaxed);
            eprint!(
                "{start}bench: {name}: {done} ops, {errors} errors, {:.1} ops/s, {:.1} MiB/s, {secs:.0} s{end}",
                done as f64 / secs,
                bytes as f64 / MIB / secs
            );
        }
    })
}

fn ok() -> Check {
    Arc::new(|_, _| Ok(()))
}

/// A GET must bring back exactly `size` bytes.
fn received(size: u64) -> Check {
    Arc::new(move |_, answer| {
        if answer.received != size {
            bail!("GET: {} bytes, expected {size}", answer.received);
        }
        Ok(())
    })
}

/// `flat/000042`: the flat tree's keys, in key order.
fn flat_key(i: u64) -> String {
    format!("flat/{i:07}")
}

/// `deep/04/2/7/004271`: four levels, ten directories under each of the
/// upper two, a thousand keys per top-level directory, in key order.
fn deep_key(i: u64) -> String {
    format!(
        "deep/{:02}/{}/{}/{i:07}",
        i / 1000,
        i / 100 % 10,
        i / 10 % 10
    )
}

/// A well-mixed number of `i` (splitmix64), to pick mixed operations.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `len` bytes of a cheap pattern that does not compress to nothing.
fn pattern(len: usize, seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<String> = ALL.iter().chain(&OPT_IN).map(|s| s.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len() + OPT_IN.len());
    }

    #[test]
    fn tree_keys_sort_like_their_numbers() {
        for i in 0..20_000 {
            assert!(flat_key(i) < flat_key(i + 1));
            assert!(deep_key(i) < deep_key(i + 1), "{i}");
        }
        assert_eq!(deep_key(4271), "deep/04/2/7/0004271");
        assert_eq!(deep_key(4271).matches('/').count(), 4);
    }

    #[test]
    fn mixed_is_seventy_thirty() {
        let reads = (0..10_000).filter(|&i| mix(i) % 10 < 7).count();
        assert!((6800..7200).contains(&reads), "{reads}");
    }

    #[test]
    fn sizes_print_in_their_unit() {
        assert_eq!(format_size(64 << 20), "64 MiB");
        assert_eq!(format_size(4096), "4 KiB");
        assert_eq!(format_size(1 << 30), "1 GiB");
        assert_eq!(format_size(1000), "1000 B");
    }
}
