//! The scrubber: reads every chunk of a local store in full, at a bounded
//! rate, so corruption is found before a reader needs the chunk. A whole
//! read checks every block CRC32C and the SHA-256; a chunk that fails is
//! quarantined ([`ChunkStore::quarantine`]: moved aside, never served) and
//! its id reported. A reader then sees `not-found` on this server and the
//! read path repairs the copy from another replica.
//!
//! [`Scrubber::scrub_once`] runs one pass and returns a report, so tests
//! (and an admin command) can drive it; [`Scrubber::run`] repeats passes.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use arbor_meta::ChunkId;

use crate::error::{ChunkError, Result};
use crate::limits;
use crate::store::ChunkStore;

/// What one pass found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Chunks read in full and found good.
    pub good: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Chunks found corrupt and quarantined (the first
    /// [`limits::SCRUB_REPORT_IDS_MAX`] ids; `corrupt_count` counts all).
    pub corrupt: Vec<ChunkId>,
    pub corrupt_count: u64,
    /// Chunks whose every block matches its CRC32C but whose data does not
    /// hash to the SHA-256 recorded for it: the bytes are intact and the
    /// fingerprint is wrong (`ChunkError::FingerprintMismatch`). Kept in
    /// place and logged: every replica of such a chunk was written with
    /// the same fingerprint, so quarantining would lose good data.
    pub fingerprint_mismatches: u64,
    /// Chunks that could not be checked (I/O errors); tried again next pass.
    pub errors: u64,
    /// The pass was stopped by shutdown before the end.
    pub interrupted: bool,
}

/// Scrubs one [`ChunkStore`].
#[derive(Debug)]
pub struct Scrubber {
    store: ChunkStore,
    rate: u64,
    reports: Option<mpsc::Sender<ChunkId>>,
}

impl Scrubber {
    /// A scrubber reading at most `rate` bytes per second (at least
    /// [`limits::SCRUB_RATE_MIN`]).
    pub fn new(store: ChunkStore, rate: u64) -> Result<Scrubber> {
        if rate < limits::SCRUB_RATE_MIN {
            return Err(ChunkError::InvalidConfig(format!(
                "scrub rate {rate} B/s is below the minimum {} B/s",
                limits::SCRUB_RATE_MIN
            )));
        }
        Ok(Scrubber {
            store,
            rate,
            reports: None,
        })
    }

    /// Also sends each corrupt id found to `reports` (without waiting: if
    /// the channel is full, the id is only logged and in the report).
    pub fn with_reports(mut self, reports: mpsc::Sender<ChunkId>) -> Scrubber {
        self.reports = Some(reports);
        self
    }

    /// Ids of the chunks quarantined so far (by any pass).
    pub async fn quarantined(&self) -> Result<Vec<ChunkId>> {
        self.store.quarantined().await
    }

    /// Runs passes `interval` apart until `shutdown` is cancelled.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        loop {
            match self.scrub_once(&shutdown).await {
                Ok(report) => tracing::info!(
                    good = report.good,
                    bytes = report.bytes,
                    corrupt = report.corrupt_count,
                    fingerprint_mismatches = report.fingerprint_mismatches,
                    errors = report.errors,
                    interrupted = report.interrupted,
                    "scrub pass done"
                ),
                Err(error) => tracing::warn!(%error, "scrub pass failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Reads every chunk once, at most `rate` bytes per second.
    pub async fn scrub_once(&self, shutdown: &CancellationToken) -> Result<ScrubReport> {
        let mut report = ScrubReport::default();
        let started = Instant::now();
        for id in self.store.list().await? {
            if shutdown.is_cancelled() {
                report.interrupted = true;
                break;
            }
            match self.check(id, started, &mut report, shutdown).await {
                Ok(true) => report.good += 1,
                // Gone meanwhile (deleted, or stopped half-way).
                Ok(false) | Err(ChunkError::NotFound(_)) => {}
                Err(ChunkError::Corrupt { detail, .. }) => {
                    tracing::warn!(%id, %detail, "scrub found a corrupt chunk; quarantining it");
                    if let Err(error) = self.store.quarantine(id).await {
                        tracing::warn!(%id, %error, "could not quarantine a corrupt chunk");
                        report.errors += 1;
                        continue;
                    }
                    report.corrupt_count += 1;
                    if report.corrupt.len() < limits::SCRUB_REPORT_IDS_MAX {
                        report.corrupt.push(id);
                    }
                    if let Some(reports) = &self.reports
                        && reports.try_send(id).is_err()
                    {
                        tracing::warn!(%id, "scrub report channel full or closed");
                    }
                }
                Err(error @ ChunkError::FingerprintMismatch { .. }) => {
                    tracing::error!(%id, %error, "scrub found a chunk whose recorded SHA-256 is wrong; keeping it");
                    report.fingerprint_mismatches += 1;
                }
                Err(error) => {
                    tracing::warn!(%id, %error, "scrub could not check a chunk");
                    report.errors += 1;
                }
            }
        }
        Ok(report)
    }

    /// Reads chunk `id` in full, pacing the pass; false if interrupted.
    async fn check(
        &self,
        id: ChunkId,
        started: Instant,
        report: &mut ScrubReport,
        shutdown: &CancellationToken,
    ) -> Result<bool> {
        let mut pieces = self.store.read_checked(id).await?;
        while let Some(piece) = pieces.next().await {
            let len = u64::try_from(piece?.len()).unwrap_or(u64::MAX);
            report.bytes = report.bytes.saturating_add(len);
            // Sleep until the pass is back under `rate` bytes per second.
            let due = Duration::from_secs_f64(report.bytes as f64 / self.rate as f64);
            let Some(until) = started.checked_add(due) else {
                continue;
            };
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(false),
                _ = tokio::time::sleep_until(until) => {}
            }
        }
        Ok(true)
    }
}
