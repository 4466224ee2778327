//! Background work the roles run beside their servers: upload expiry and
//! garbage collection (`serve`, `meta`), re-replication and offline
//! marking (`meta`), chunk repairs (`gateway`).
//!
//! Each task takes the shutdown token, checks it only between batches and
//! so finishes the batch in hand when it is cancelled; [`Tasks::drain`]
//! waits for that, up to a deadline. Any metadata node may run these: the
//! decisions are Raft commands, and on a follower a pass finds `NotLeader`
//! and does nothing, so exactly one node's tasks act at a time.

use std::future::Future;
use std::time::Duration;

use arbor_chunkstore::{Collector, GcReport, Healer};
use arbor_meta::clock::SharedClock;
use arbor_meta::lifecycle::{LifecycleBatch, LifecycleBuckets, LifecycleUploads};
use arbor_meta::limits::UPLOADS_EXPIRED_PER_COMMAND_MAX;
use arbor_meta::records::lifecycle::LifecycleProgress;
use arbor_meta::{MetaClient, MetaError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long background tasks get to finish their batch once shutdown
/// starts: as long as in-flight requests get.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(arbor_gateway::limits::SHUTDOWN_DRAIN_SECS);

/// Upload expiry checks a few times per expiry period, within these bounds.
const EXPIRY_CHECK_INTERVAL_MIN: Duration = Duration::from_secs(1);
const EXPIRY_CHECK_INTERVAL_MAX: Duration = Duration::from_secs(3600);
/// The collector sweeps a few times per grace period, within these bounds
/// (the pace `arbor_chunkstore::Collector::run` keeps).
const COLLECT_INTERVAL_MIN: Duration = Duration::from_millis(250);
const COLLECT_INTERVAL_MAX: Duration = Duration::from_secs(60);
/// How often the reclaimer looks for deleted directories when none wait.
pub const RECLAIM_INTERVAL: Duration = Duration::from_millis(500);
/// Rows per reclaim command: a tenth of the maximum, so a batch stays a
/// small log entry and a short apply beside client writes.
const RECLAIM_BATCH: u32 = arbor_meta::limits::RECLAIM_BATCH_MAX / 10;

/// Keys per lifecycle batch: a tenth of the maximum, as for reclaiming.
const LIFECYCLE_BATCH: u32 = arbor_meta::limits::LIFECYCLE_BATCH_MAX / 10;
/// Batches per bucket and pass, at most: a pass over a bucket of up to
/// ten million keys; a bigger one resumes where the pass stopped next time.
const LIFECYCLE_BATCHES_PER_PASS_MAX: u32 = 100_000;

/// The background tasks of one role, stopped together.
#[derive(Default)]
pub struct Tasks {
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Tasks {
    /// Runs `task` (which must stop once its shutdown token is cancelled).
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.running.push((name, tokio::spawn(task)));
    }

    /// Takes a task something else spawned.
    pub fn adopt(&mut self, name: &'static str, handle: JoinHandle<()>) {
        self.running.push((name, handle));
    }

    /// Once the tasks' shutdown token is cancelled: waits until every task
    /// has finished its current batch, at most `timeout` in all, and aborts
    /// those still running then (everything they do is safe to cut off:
    /// a Raft command either commits or not, a copy not yet recorded is an
    /// orphan the sweeps remove).
    pub async fn drain(self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        for (name, mut handle) in self.running {
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(task = name, %error, "background task failed"),
                Err(_) => {
                    tracing::warn!(task = name, ?timeout, "background task cut off at shutdown");
                    handle.abort();
                }
            }
        }
    }
}

/// Sleeps `interval`; false if `shutdown` came first.
async fn pause(interval: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(interval) => true,
    }
}

/// Aborts multipart uploads older than `max_age`, checking a few times per
/// `max_age` (at most hourly), one bounded command at a time. The age is
/// decided here, the aborts are Raft commands, and a repeat finds nothing
/// to do.
pub async fn expire_uploads(
    meta: MetaClient,
    clock: SharedClock,
    max_age: Duration,
    shutdown: CancellationToken,
) {
    let interval = (max_age / 4).clamp(EXPIRY_CHECK_INTERVAL_MIN, EXPIRY_CHECK_INTERVAL_MAX);
    let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    while pause(interval, &shutdown).await {
        let cutoff = clock.now_ms().saturating_sub(max_age_ms);
        while !shutdown.is_cancelled() {
            match meta
                .expire_uploads(cutoff, UPLOADS_EXPIRED_PER_COMMAND_MAX)
                .await
            {
                Ok(count) if count < UPLOADS_EXPIRED_PER_COMMAND_MAX => break,
                Ok(count) => tracing::info!(count, "expired multipart uploads"),
                Err(MetaError::NotLeader { .. }) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "expiring multipart uploads failed");
                    break;
                }
            }
        }
    }
}

/// Reclamation of recursively deleted subtrees: batches back to back
/// while tombstones wait, a check every `interval` while none do. One
/// bounded command at a time; on a follower the proposal is refused
/// (NotLeader) and the leader's task does the work.
pub async fn reclaim(meta: MetaClient, interval: Duration, shutdown: CancellationToken) {
    while pause(interval, &shutdown).await {
        // A read first: no log entry while nothing waits.
        match meta.reclaim_status().await {
            Ok(report) if report.pending_count == 0 => continue,
            Ok(_) => {}
            Err(MetaError::NotLeader { .. }) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reading the reclaimer's status failed");
                continue;
            }
        }
        while !shutdown.is_cancelled() {
            match meta.reclaim_batch(RECLAIM_BATCH).await {
                Ok(progress) if progress.pending == 0 => {
                    if progress.objects > 0 {
                        tracing::info!(objects = progress.objects, "reclaimed deleted directories");
                    }
                    break;
                }
                Ok(progress) => {
                    tracing::debug!(?progress, "reclaiming deleted directories");
                }
                Err(MetaError::NotLeader { .. }) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "reclaiming deleted directories failed");
                    break;
                }
            }
        }
    }
}

/// The "now" lifecycle rules are judged at: `now_ms` rounded down to a
/// whole number of days since the epoch (the last midnight UTC, for real
/// days). S3 adds a rule's days to a version's time and rounds up to the
/// next midnight UTC; a version is due once that midnight has come,
/// which is exactly when its time plus the days is at most the last
/// midnight, so the apply's plain comparison with this "now" counts days
/// as S3 does (docs/design.md, "Lifecycle").
fn lifecycle_now(now_ms: i64, day_ms: i64) -> i64 {
    if day_ms <= 0 {
        return now_ms;
    }
    now_ms - now_ms.rem_euclid(day_ms)
}

/// Lifecycle rules (docs/design.md, "Lifecycle"): every `interval`, for
/// each bucket with an enabled rule, batches of keys back to back from the
/// first key to the last, then the old uploads; each batch a Raft command
/// carrying this node's clock (rounded down to the day, `lifecycle_now`)
/// and `day`. On a follower the first proposal
/// is refused (NotLeader) and the pass ends; the leader's task does the
/// work, and a pass cut short starts over next time (done work is not
/// done twice: what expired is gone).
pub async fn lifecycle(
    meta: MetaClient,
    clock: SharedClock,
    day: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let day_ms = i64::try_from(day.as_millis()).unwrap_or(i64::MAX);
    // Where an unfinished pass over a bucket stopped.
    let mut resume: std::collections::BTreeMap<String, String> = Default::default();
    while pause(interval, &shutdown).await {
        let buckets = match meta.read(LifecycleBuckets).await {
            Ok(buckets) => buckets,
            Err(MetaError::NotLeader { .. }) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reading the lifecycle buckets failed");
                continue;
            }
        };
        resume.retain(|bucket, _| buckets.contains(bucket));
        'pass: for bucket in buckets {
            if shutdown.is_cancelled() {
                return;
            }
            let mut after = resume.remove(&bucket);
            let mut total = LifecycleProgress::default();
            let mut batches = 0u32;
            let finished = loop {
                if shutdown.is_cancelled() {
                    return;
                }
                if batches >= LIFECYCLE_BATCHES_PER_PASS_MAX {
                    break false;
                }
                batches += 1;
                let batch = LifecycleBatch {
                    bucket: bucket.clone(),
                    after: after.clone(),
                    limit: LIFECYCLE_BATCH,
                    now_ms: lifecycle_now(clock.now_ms(), day_ms),
                    day_ms,
                };
                match meta.write(batch).await {
                    Ok(progress) => {
                        total.expired = total.expired.saturating_add(progress.expired);
                        total.versions_deleted = total
                            .versions_deleted
                            .saturating_add(progress.versions_deleted);
                        total.locked = total.locked.saturating_add(progress.locked);
                        total.refused = total.refused.saturating_add(progress.refused);
                        match progress.next {
                            Some(next) => after = Some(next),
                            None => break true,
                        }
                    }
                    Err(MetaError::NotLeader { .. }) => break 'pass,
                    Err(e) => {
                        tracing::warn!(bucket, error = %e, "applying lifecycle rules failed");
                        break false;
                    }
                }
            };
            if !finished && let Some(after) = after {
                resume.insert(bucket.clone(), after);
            }
            for _ in 0..LIFECYCLE_BATCHES_PER_PASS_MAX {
                if shutdown.is_cancelled() {
                    return;
                }
                let batch = LifecycleUploads {
                    bucket: bucket.clone(),
                    limit: LIFECYCLE_BATCH,
                    now_ms: lifecycle_now(clock.now_ms(), day_ms),
                    day_ms,
                };
                match meta.write(batch).await {
                    Ok(count) => {
                        total.uploads_aborted = total.uploads_aborted.saturating_add(count);
                        if count < LIFECYCLE_BATCH {
                            break;
                        }
                    }
                    Err(MetaError::NotLeader { .. }) => break 'pass,
                    Err(e) => {
                        tracing::warn!(bucket, error = %e, "aborting old uploads failed");
                        break;
                    }
                }
            }
            if total != LifecycleProgress::default() {
                tracing::info!(bucket, ?total, "applied lifecycle rules");
            }
        }
    }
}

/// How often the collector runs for a grace period: a few times per grace.
pub fn collect_interval(grace: Duration) -> Duration {
    (grace / 2).clamp(COLLECT_INTERVAL_MIN, COLLECT_INTERVAL_MAX)
}

/// Garbage collection: a collector pass every `interval`.
pub async fn collect(mut collector: Collector, interval: Duration, shutdown: CancellationToken) {
    while pause(interval, &shutdown).await {
        match collector.pass().await {
            Ok(report) if report != GcReport::default() => {
                tracing::info!(?report, "garbage collected");
            }
            Ok(_) | Err(MetaError::NotLeader { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "garbage collection pass failed"),
        }
    }
}

/// Re-replication: a healer pass every `interval`.
pub async fn heal(healer: Healer, interval: Duration, shutdown: CancellationToken) {
    while pause(interval, &shutdown).await {
        match healer.pass().await {
            Ok(report) if report.copied + report.dropped + report.short > 0 => {
                tracing::info!(?report, "re-replication pass");
            }
            Ok(_) | Err(MetaError::NotLeader { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "re-replication pass failed"),
        }
    }
}

/// Offline marking: chunk servers silent for `timeout` become OFFLINE.
/// (`offline_detector` makes one bounded call per round and checks the
/// token between rounds.)
pub async fn mark_offline(
    meta: MetaClient,
    clock: SharedClock,
    timeout: Duration,
    shutdown: CancellationToken,
) {
    arbor_meta::offline::offline_detector(meta, clock, timeout, shutdown).await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A task shaped like the ones above: batches of `batch` each, the
    /// token checked between them; counts the batches it finished.
    async fn batches(batch: Duration, done: Arc<AtomicU32>, shutdown: CancellationToken) {
        while pause(Duration::from_millis(1), &shutdown).await {
            tokio::time::sleep(batch).await;
            done.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn lifecycle_days_end_at_the_next_midnight() {
        const DAY: i64 = 86_400_000;
        const HOUR: i64 = 3_600_000;
        // S3: a version of day 10, 23:00, with Days = 1, is due at the
        // midnight that starts day 12 (23:00 of day 11, rounded up).
        let written = 10 * DAY + 23 * HOUR;
        let due = |now: i64| written + DAY <= lifecycle_now(now, DAY);
        assert!(!due(11 * DAY + 23 * HOUR));
        assert!(!due(12 * DAY - 1));
        assert!(due(12 * DAY));
        assert!(due(12 * DAY + 5 * HOUR));
        // One written exactly at midnight is due a whole number of days on.
        let midnight = 10 * DAY;
        assert!(midnight + DAY <= lifecycle_now(11 * DAY, DAY));
        assert!(midnight + DAY > lifecycle_now(11 * DAY - 1, DAY));
        // Shortened days (tests) round the same way; no day, no rounding.
        assert_eq!(lifecycle_now(2_500, 1_000), 2_000);
        assert_eq!(lifecycle_now(-1, 1_000), -1_000);
        assert_eq!(lifecycle_now(2_500, 0), 2_500);
    }

    #[tokio::test]
    async fn drain_lets_the_batch_in_hand_finish() {
        let shutdown = CancellationToken::new();
        let done = Arc::new(AtomicU32::new(0));
        let mut tasks = Tasks::default();
        tasks.spawn(
            "batches",
            batches(Duration::from_millis(200), done.clone(), shutdown.clone()),
        );
        // Cancelled in the middle of the first batch.
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.cancel();
        tasks.drain(Duration::from_secs(5)).await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn drain_cuts_off_a_batch_at_the_deadline() {
        let shutdown = CancellationToken::new();
        let done = Arc::new(AtomicU32::new(0));
        let mut tasks = Tasks::default();
        tasks.spawn(
            "batches",
            batches(Duration::from_secs(60), done.clone(), shutdown.clone()),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.cancel();
        let started = std::time::Instant::now();
        tasks.drain(Duration::from_millis(100)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(done.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn collect_interval_follows_the_grace_within_bounds() {
        assert_eq!(collect_interval(Duration::ZERO), COLLECT_INTERVAL_MIN);
        assert_eq!(
            collect_interval(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(
            collect_interval(Duration::from_secs(3600)),
            COLLECT_INTERVAL_MAX
        );
    }
}
