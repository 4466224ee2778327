//! The `scale` scenario: how a server holds up as one bucket fills with
//! millions of empty objects (docs/benchmarks.md, "At millions of
//! objects"). It runs
//! only when named (`--only scale`), in a bucket of its own that must be
//! empty, through these phases:
//!
//! 1. 4 KiB PUTs on 64 connections into the empty bucket;
//! 2. the fill: `--scale-keys` empty objects four levels deep on 64
//!    connections, its rate taken per tenth;
//! 3. the same 4 KiB PUTs into the full bucket;
//! 4. ListObjectsV2 pages (no delimiter) walked from ten places;
//! 5. delimiter listings at the top and one level down;
//! 6. with a spawned `arbor serve`: the growth of the metadata files over
//!    the fill, per object;
//! 7. with a spawned `arbor serve`: SIGTERM, start again, time to the
//!    first successful HEAD.
//!
//! Each load phase is an [`Outcome`] like any scenario's; the rest, and
//! every measure beside its target, is the [`ScaleReport`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use http::Method;
use serde::Serialize;

use super::{Call, Check, Driven, MakeCall, Outcome, Runner, Target, between, ok};
use crate::bench::procfs;

/// Connections of the PUT phases and of the fill.
const CONNECTIONS: usize = 64;
/// The fill's rate is taken over each tenth of it.
const FILL_PARTS: u64 = 10;
/// Places in the key space the flat listing starts from (`start-after`),
/// and pages walked from each.
const LIST_PLACES: u64 = 10;
const LIST_PAGES_PER_PLACE: u64 = 20;
/// Listings of each delimiter phase.
const DELIMITER_LISTINGS: u64 = 100;
/// Top-level directories of the fill (see [`fill_key`]).
const TOP_DIRECTORIES: u64 = 100;
/// Directories under each top-level one.
const SECOND_DIRECTORIES: u64 = 10;
/// How long a restarted server may take to answer its first HEAD, and
/// how often it is asked.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const READY_POLL: Duration = Duration::from_millis(5);
const MIB: f64 = 1024.0 * 1024.0;

/// The targets this scenario checks (docs/benchmarks.md, "At millions of
/// objects").
const PUT_FULL_VS_EMPTY_MIN: f64 = 0.8;
const LIST_P50_MS_MAX: f64 = 1.0;
const LIST_P99_MS_MAX: f64 = 5.0;
const DELIMITER_MS_MAX: f64 = 0.5;
const METADATA_BYTES_PER_OBJECT_MAX: f64 = 400.0;
const RESTART_SECONDS_MAX: f64 = 10.0;
const RSS_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// The server a scale run started itself (`--spawn serve`): it may look
/// at its data directory and restart it.
pub trait Respawn {
    /// The server's `--data-dir`.
    fn data_dir(&self) -> PathBuf;
    /// SIGTERM, and wait for it to exit.
    fn terminate(&mut self) -> anyhow::Result<()>;
    /// Starts it again on the same data directory; the target once it
    /// says it is up.
    fn start(&mut self) -> anyhow::Result<Target>;
}

/// What the scale run found beyond its phases' outcomes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScaleReport {
    /// Objects the fill wrote.
    pub keys: u64,
    /// Objects per second over each tenth of the fill, in order.
    pub fill_rates_per_sec: Vec<f64>,
    /// 4 KiB PUTs per second in the full bucket over the empty one's.
    pub put_full_vs_empty: f64,
    /// Sizes of the metadata files before and after the fill (spawned
    /// `arbor serve` only).
    pub metadata_before: Option<MetadataFiles>,
    pub metadata_after: Option<MetadataFiles>,
    /// Growth of the metadata files over the fill, per object written.
    pub metadata_bytes_per_object: Option<MetadataFiles>,
    pub restart: Option<Restart>,
    /// Every server process the run measured, the restarted one included.
    pub pids: Vec<u32>,
    /// Each measure beside its target.
    pub marks: Vec<Mark>,
}

/// Sizes of `arbor serve`'s metadata files (bytes, or bytes per object).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct MetadataFiles {
    /// The state machine (`meta/state.redb`).
    pub state: f64,
    /// The Raft log (`meta/raft-log.redb`).
    pub raft_log: f64,
    /// Everything in `meta/snapshots/`.
    pub snapshots: f64,
    pub total: f64,
}

/// The restart of the spawned server.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Restart {
    /// From SIGTERM to its exit.
    pub stop_seconds: f64,
    /// From starting it again to its first successful HEAD.
    pub ready_seconds: f64,
    /// `VmRSS` right after that HEAD.
    pub rss_after_bytes: u64,
}

/// One measure beside its target; `pass` is `None` when it has no target.
#[derive(Clone, Debug, Serialize)]
pub struct Mark {
    pub measure: String,
    pub value: String,
    pub target: String,
    pub pass: Option<bool>,
}

impl Mark {
    fn new(measure: &str, value: String, target: &str, pass: Option<bool>) -> Mark {
        Mark {
            measure: measure.to_owned(),
            value,
            target: target.to_owned(),
            pass,
        }
    }
}

impl Runner {
    /// Runs every phase of the scale scenario; `server` is the spawned
    /// `arbor serve`, if any (phases 6 and 7 need it).
    pub async fn scale(
        &mut self,
        server: Option<&mut dyn Respawn>,
    ) -> anyhow::Result<(Vec<Outcome>, ScaleReport)> {
        let keys = self.plan.scale_keys;
        let small_count = self.plan.small_count;
        let bucket = format!("{}-scale", self.bucket);
        self.create_bucket_named(&bucket).await?;
        if !self.bucket_is_empty(&bucket).await? {
            bail!("scale: bucket {bucket} is not empty (the baseline needs an empty one)");
        }
        let mut report = ScaleReport {
            keys,
            pids: self.target.pids.clone(),
            ..ScaleReport::default()
        };
        let mut outcomes = Vec::new();

        // 1. The baseline, after as many PUTs untimed into the run's
        // other bucket: the connections are open and the server warm, as
        // they will be for the same PUTs into the full bucket.
        let warm_up = self.bucket.clone();
        let warmed = self
            .scale_puts(&warm_up, "warm-up", small_count, "(not reported)")
            .await;
        if let Some(error) = warmed.first_error {
            bail!("scale: warming up: {error}");
        }
        let put_empty = self
            .scale_puts(&bucket, "empty", small_count, "into the empty bucket")
            .await;
        outcomes.push(put_empty.clone());

        // 2. The fill, its metadata files measured around it.
        let metadata_before = server
            .as_deref()
            .map(|s| MetadataFiles::measure(&s.data_dir()));
        let (fill, rates) = self.fill(&bucket, keys).await;
        let metadata_after = server
            .as_deref()
            .map(|s| MetadataFiles::measure(&s.data_dir()));
        report.fill_rates_per_sec = rates;
        let fill_rss_peak = fill.server.rss_peak_bytes;
        outcomes.push(fill);

        // 3. The same PUTs into the full bucket.
        let put_full = self
            .scale_puts(&bucket, "full", small_count, "into the full bucket")
            .await;
        report.put_full_vs_empty = put_full.ops_per_sec / put_empty.ops_per_sec.max(1e-9);
        outcomes.push(put_full.clone());

        // 4 and 5. Listings.
        let list = self.scale_list(&bucket).await;
        outcomes.push(list.clone());
        let (top, down) = self.scale_delimiter(&bucket, keys).await;
        outcomes.push(top.clone());
        outcomes.push(down.clone());

        // 6. Metadata on disk per object.
        if let (Some(before), Some(after)) = (metadata_before, metadata_after) {
            let per = |b: f64, a: f64| (a - b) / keys.max(1) as f64;
            report.metadata_bytes_per_object = Some(MetadataFiles {
                state: per(before.state, after.state),
                raft_log: per(before.raft_log, after.raft_log),
                snapshots: per(before.snapshots, after.snapshots),
                total: per(before.total, after.total),
            });
            report.metadata_before = Some(before);
            report.metadata_after = Some(after);
        }

        // 7. Restart to ready.
        if let Some(server) = server {
            report.restart = Some(self.restart(server, &bucket).await?);
            report.pids.extend(&self.target.pids);
        }

        report.marks = marks(
            &report,
            &put_empty,
            &put_full,
            &list,
            &top,
            &down,
            fill_rss_peak,
        );
        Ok((outcomes, report))
    }

    async fn create_bucket_named(&mut self, bucket: &str) -> anyhow::Result<()> {
        let own = std::mem::replace(&mut self.bucket, bucket.to_owned());
        let result = self.create_bucket().await;
        self.bucket = own;
        result
    }

    async fn bucket_is_empty(&mut self, bucket: &str) -> anyhow::Result<bool> {
        let mut call = Call::empty(
            Method::GET,
            format!("/{bucket}"),
            vec![
                ("list-type".to_owned(), "2".to_owned()),
                ("max-keys".to_owned(), "1".to_owned()),
            ],
        );
        call.keep_body = true;
        let answer = self.connection().send(&call).await?;
        Ok(!String::from_utf8_lossy(&answer.body).contains("<Key>"))
    }

    /// `count` 4 KiB PUTs on [`CONNECTIONS`] to `p/{label}/N`.
    async fn scale_puts(&mut self, bucket: &str, label: &str, count: u64, into: &str) -> Outcome {
        let (bucket, prefix) = (bucket.to_owned(), format!("p/{label}"));
        let (body, sha256) = (self.small_body.clone(), self.small_sha256.clone());
        let make: MakeCall = Arc::new(move |i| Call {
            method: Method::PUT,
            path: format!("/{bucket}/{prefix}/{i}"),
            query: Vec::new(),
            body: body.clone(),
            payload: super::Payload::Signed(sha256.clone()),
            keep_body: false,
        });
        let name = format!("scale-put-{label}-c{CONNECTIONS}");
        let meter = self.start_meter(name);
        let driven = self
            .drive(CONNECTIONS, count, make, ok(), &meter.progress)
            .await;
        let description = format!(
            "PUT {} on {CONNECTIONS} connections {into}",
            super::format_size(self.plan.small_size)
        );
        self.stop_meter(meter, description, driven).await
    }

    /// Writes `keys` empty objects ([`fill_key`]) in tenths; the outcome
    /// and each tenth's rate.
    async fn fill(&mut self, bucket: &str, keys: u64) -> (Outcome, Vec<f64>) {
        let meter = self.start_meter("scale-fill".to_owned());
        let mut all = Driven {
            expected: keys,
            connections: CONNECTIONS,
            ..Driven::default()
        };
        let mut rates = Vec::new();
        for part in 0..FILL_PARTS {
            let (from, to) = (keys * part / FILL_PARTS, keys * (part + 1) / FILL_PARTS);
            let bucket = bucket.to_owned();
            let make: MakeCall = Arc::new(move |i| {
                Call::empty(
                    Method::PUT,
                    format!("/{bucket}/{}", fill_key(from + i)),
                    Vec::new(),
                )
            });
            let started = Instant::now();
            let driven = self
                .drive(CONNECTIONS, to - from, make, ok(), &meter.progress)
                .await;
            let rate = driven.samples.len() as f64 / started.elapsed().as_secs_f64().max(1e-9);
            rates.push(rate);
            eprintln!(
                "bench: scale-fill: {}/{FILL_PARTS}, {to} of {keys} objects, {rate:.0} objects/s over this tenth, {:.0} MiB RSS",
                part + 1,
                procfs::status_bytes(&self.target.pids, "VmRSS").unwrap_or(0) as f64 / MIB
            );
            let failed = driven.errors > 0;
            all.absorb(driven);
            if failed {
                break;
            }
        }
        let description =
            format!("{keys} empty objects, 4 levels deep, on {CONNECTIONS} connections");
        (self.stop_meter(meter, description, all).await, rates)
    }

    /// Pages of `list_page` keys, no delimiter, walked from
    /// [`LIST_PLACES`] places of the fill's key space, one connection.
    async fn scale_list(&mut self, bucket: &str) -> Outcome {
        let page = self.plan.list_page;
        let meter = self.start_meter("scale-list".to_owned());
        let mut driven = Driven {
            expected: LIST_PLACES * LIST_PAGES_PER_PLACE,
            connections: 1,
            ..Driven::default()
        };
        let mut connection = self.connection();
        for place in 0..LIST_PLACES {
            // `d00/`, `d10/`, ... `d90/`: before the top-level directory.
            let start = format!("d{:02}/", place * TOP_DIRECTORIES / LIST_PLACES);
            let mut token: Option<String> = None;
            for _ in 0..LIST_PAGES_PER_PLACE {
                let mut query = vec![
                    ("list-type".to_owned(), "2".to_owned()),
                    ("max-keys".to_owned(), page.to_string()),
                ];
                match &token {
                    Some(token) => {
                        query.push(("continuation-token".to_owned(), token.clone()));
                    }
                    None => query.push(("start-after".to_owned(), start.clone())),
                }
                let mut call = Call::empty(Method::GET, format!("/{bucket}"), query);
                call.keep_body = true;
                let started = Instant::now();
                let result = connection.send(&call).await.and_then(|answer| {
                    let text = String::from_utf8_lossy(&answer.body);
                    let found = text.matches("<Key>").count() as u64;
                    let truncated = text.contains("<IsTruncated>true</IsTruncated>");
                    let next =
                        between(&text, "<NextContinuationToken>", "</NextContinuationToken>")
                            .map(str::to_owned);
                    if truncated && (found != page || next.is_none()) {
                        bail!(
                            "a truncated page after {start}: {found} keys of {page}, token {next:?}"
                        );
                    }
                    if found == 0 || found > page {
                        bail!("a page after {start}: {found} keys of {page}");
                    }
                    Ok((answer.received, next))
                });
                match result {
                    Ok((bytes, next)) => {
                        driven.samples.record(started.elapsed());
                        driven.bytes += bytes;
                        meter.progress.count(bytes);
                        // At the end of the bucket, start over from the place.
                        token = next;
                    }
                    Err(e) => {
                        driven.fail(&e);
                        break;
                    }
                }
            }
        }
        let description = format!(
            "ListObjectsV2 page of {page}, no delimiter, {LIST_PAGES_PER_PLACE} pages from each of {LIST_PLACES} places"
        );
        self.stop_meter(meter, description, driven).await
    }

    /// Delimiter `/` listings at the top of the bucket and in `d00/`.
    async fn scale_delimiter(&mut self, bucket: &str, keys: u64) -> (Outcome, Outcome) {
        // The fill's top-level directories and `p/` (the PUT phases'),
        // and the directories `d00/` holds.
        let top = TOP_DIRECTORIES.min(keys) + 1;
        let down = SECOND_DIRECTORIES.min(keys.saturating_sub(1) / TOP_DIRECTORIES + 1);
        (
            self.delimiter_listings(bucket, "scale-delimiter-top", "", top)
                .await,
            self.delimiter_listings(bucket, "scale-delimiter-down", "d00/", down)
                .await,
        )
    }

    /// [`DELIMITER_LISTINGS`] listings of `prefix` with delimiter `/`,
    /// each checked to hold `want` common prefixes.
    async fn delimiter_listings(
        &mut self,
        bucket: &str,
        name: &str,
        prefix: &'static str,
        want: u64,
    ) -> Outcome {
        let (bucket, page) = (bucket.to_owned(), self.plan.list_page.max(want));
        let make: MakeCall = Arc::new(move |_| {
            let mut call = Call::empty(
                Method::GET,
                format!("/{bucket}"),
                vec![
                    ("list-type".to_owned(), "2".to_owned()),
                    ("prefix".to_owned(), prefix.to_owned()),
                    ("delimiter".to_owned(), "/".to_owned()),
                    ("max-keys".to_owned(), page.to_string()),
                ],
            );
            call.keep_body = true;
            call
        });
        let check: Check = Arc::new(move |_, answer| {
            let text = String::from_utf8_lossy(&answer.body);
            let found = text.matches("<CommonPrefixes>").count() as u64;
            if found != want {
                bail!("delimiter listing of {prefix:?}: {found} prefixes, expected {want}");
            }
            Ok(())
        });
        let meter = self.start_meter(name.to_owned());
        let driven = self
            .drive(1, DELIMITER_LISTINGS, make, check, &meter.progress)
            .await;
        let place = if prefix.is_empty() {
            "at the top".to_owned()
        } else {
            format!("in {prefix}")
        };
        let description = format!("ListObjectsV2 delimiter / {place}, {want} common prefixes");
        self.stop_meter(meter, description, driven).await
    }

    /// SIGTERM, wait, start again, HEAD a key of the fill until it
    /// answers; the runner then speaks to the new process.
    async fn restart(&mut self, server: &mut dyn Respawn, bucket: &str) -> anyhow::Result<Restart> {
        let stopping = Instant::now();
        server.terminate()?;
        let stop_seconds = stopping.elapsed().as_secs_f64();
        let starting = Instant::now();
        self.target = server.start()?;
        let call = Call::empty(
            Method::HEAD,
            format!("/{bucket}/{}", fill_key(0)),
            Vec::new(),
        );
        let mut connection = self.connection();
        let mut last_error = None;
        while starting.elapsed() < READY_TIMEOUT {
            match connection.send(&call).await {
                Ok(_) => {
                    let ready_seconds = starting.elapsed().as_secs_f64();
                    eprintln!(
                        "bench: scale-restart: stopped in {stop_seconds:.2} s, ready in {ready_seconds:.2} s"
                    );
                    return Ok(Restart {
                        stop_seconds,
                        ready_seconds,
                        rss_after_bytes: procfs::status_bytes(&self.target.pids, "VmRSS")
                            .unwrap_or(0),
                    });
                }
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(READY_POLL).await;
            connection = self.connection();
        }
        bail!(
            "scale: the restarted server did not answer HEAD within {READY_TIMEOUT:?}: {last_error:?}"
        )
    }
}

impl MetadataFiles {
    /// The sizes under `arbor serve`'s `data_dir` (zero for a file that
    /// is not there).
    fn measure(data_dir: &Path) -> MetadataFiles {
        let meta = data_dir.join(crate::serve::META_DIR);
        let size = |path: PathBuf| std::fs::metadata(path).map_or(0, |m| m.len());
        let state = size(meta.join(arbor_meta::node::STATE_FILE_NAME));
        let raft_log = size(meta.join(arbor_meta::node::LOG_FILE_NAME));
        let snapshots: u64 =
            std::fs::read_dir(meta.join(arbor_meta::raft::state_store::SNAPSHOT_DIR_NAME))
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok()?.metadata().ok())
                        .filter(|m| m.is_file())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
        let (state, raft_log, snapshots) = (state as f64, raft_log as f64, snapshots as f64);
        MetadataFiles {
            state,
            raft_log,
            snapshots,
            total: state + raft_log + snapshots,
        }
    }
}

/// Each measure beside its target.
fn marks(
    report: &ScaleReport,
    put_empty: &Outcome,
    put_full: &Outcome,
    list: &Outcome,
    top: &Outcome,
    down: &Outcome,
    fill_rss_peak: u64,
) -> Vec<Mark> {
    let rates = &report.fill_rates_per_sec;
    let (first, last) = (
        rates.first().copied().unwrap_or(0.0),
        rates.last().copied().unwrap_or(0.0),
    );
    let mib = |bytes: u64| format!("{:.0} MiB", bytes as f64 / MIB);
    let mut marks = vec![
        Mark::new(
            "fill rate, first tenth / last tenth",
            format!(
                "{first:.0} / {last:.0} objects/s ({:.2})",
                last / first.max(1e-9)
            ),
            "-",
            None,
        ),
        Mark::new(
            "4 KiB PUT on 64 connections, full / empty bucket",
            format!(
                "{:.0} / {:.0} /s ({:.2})",
                put_full.ops_per_sec, put_empty.ops_per_sec, report.put_full_vs_empty
            ),
            "≥ 0.8",
            Some(report.put_full_vs_empty >= PUT_FULL_VS_EMPTY_MIN),
        ),
        Mark::new(
            "4 KiB PUT p99, full bucket",
            format!("{:.2} ms", put_full.latency.p99_ms),
            "-",
            None,
        ),
        Mark::new(
            "ListObjectsV2 page, p50",
            format!("{:.2} ms", list.latency.p50_ms),
            "< 1 ms",
            Some(list.latency.p50_ms < LIST_P50_MS_MAX),
        ),
        Mark::new(
            "ListObjectsV2 page, p99",
            format!("{:.2} ms", list.latency.p99_ms),
            "< 5 ms",
            Some(list.latency.p99_ms < LIST_P99_MS_MAX),
        ),
        Mark::new(
            "delimiter listing at the top, p50",
            format!("{:.2} ms", top.latency.p50_ms),
            "< 0.5 ms",
            Some(top.latency.p50_ms < DELIMITER_MS_MAX),
        ),
        Mark::new(
            "delimiter listing one level down, p50",
            format!("{:.2} ms", down.latency.p50_ms),
            "< 0.5 ms",
            Some(down.latency.p50_ms < DELIMITER_MS_MAX),
        ),
    ];
    if let Some(per) = &report.metadata_bytes_per_object {
        marks.push(Mark::new(
            "metadata on disk per object (state + Raft log + snapshots)",
            format!(
                "{:.0} B ({:.0} + {:.0} + {:.0})",
                per.total, per.state, per.raft_log, per.snapshots
            ),
            "≤ 400 B",
            Some(per.total <= METADATA_BYTES_PER_OBJECT_MAX),
        ));
    }
    if let Some(restart) = &report.restart {
        marks.push(Mark::new(
            "restart to ready (first HEAD)",
            format!("{:.2} s", restart.ready_seconds),
            "< 10 s",
            Some(restart.ready_seconds < RESTART_SECONDS_MAX),
        ));
    }
    marks.push(Mark::new(
        "server RSS, peak during the fill",
        mib(fill_rss_peak),
        "< 256 MiB",
        Some(fill_rss_peak < RSS_BYTES_MAX),
    ));
    if let Some(restart) = &report.restart {
        marks.push(Mark::new(
            "server RSS after the restart",
            mib(restart.rss_after_bytes),
            "< 256 MiB",
            Some(restart.rss_after_bytes < RSS_BYTES_MAX),
        ));
    }
    marks
}

/// `d42/d7/d3/k0000012342`: object `i` of the fill, four levels deep:
/// [`TOP_DIRECTORIES`] at the top, ten under each of the next two levels,
/// and the rest in the leaves (100 keys each at a million objects, 1,000
/// at ten million). Consecutive objects land in different directories,
/// as from many writers.
fn fill_key(i: u64) -> String {
    format!(
        "d{:02}/d{}/d{}/k{i:010}",
        i % TOP_DIRECTORIES,
        i / TOP_DIRECTORIES % SECOND_DIRECTORIES,
        i / (TOP_DIRECTORIES * SECOND_DIRECTORIES) % 10
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_keys_are_four_levels_deep_and_unique() {
        assert_eq!(fill_key(12342), "d42/d3/d2/k0000012342");
        let mut keys: Vec<String> = (0..20_000).map(fill_key).collect();
        assert!(keys.iter().all(|k| k.matches('/').count() == 3));
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 20_000);
    }

    #[test]
    fn listing_places_precede_their_directories() {
        for place in 0..LIST_PLACES {
            let start = format!("d{:02}/", place * TOP_DIRECTORIES / LIST_PLACES);
            let first = fill_key(place * TOP_DIRECTORIES / LIST_PLACES);
            assert!(
                start < first && first.starts_with(&start),
                "{start} {first}"
            );
        }
    }
}
