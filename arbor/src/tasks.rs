//! Background work the roles run beside their servers, each until the
//! shutdown token is cancelled.
//!
//! Any metadata node may run these: the decisions are Raft commands, and
//! on a follower a pass finds `NotLeader` and does nothing.

use std::time::Duration;

use arbor_meta::MetaClient;
use arbor_meta::clock::now_ms;
use arbor_meta::limits::UPLOADS_EXPIRED_PER_COMMAND_MAX;
use tokio_util::sync::CancellationToken;

/// Aborts multipart uploads older than `max_age`, checking a few times per
/// `max_age` (at most hourly). Any node may run this: the age is decided
/// here, the aborts are Raft commands, and a repeat finds nothing to do.
pub async fn expire_uploads(meta: MetaClient, max_age: Duration, shutdown: CancellationToken) {
    let interval = (max_age / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms().saturating_sub(max_age_ms);
        loop {
            match meta
                .expire_uploads(cutoff, UPLOADS_EXPIRED_PER_COMMAND_MAX)
                .await
            {
                Ok(count) if count < UPLOADS_EXPIRED_PER_COMMAND_MAX => break,
                Ok(count) => tracing::info!(count, "expired multipart uploads"),
                Err(arbor_meta::MetaError::NotLeader { .. }) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "expiring multipart uploads failed");
                    break;
                }
            }
        }
    }
}
