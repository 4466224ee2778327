//! The offline detector: a task beside every metadata node that proposes
//! [`MarkOfflineServers`](crate::registry::MarkOfflineServers) when chunk
//! servers stop sending heartbeats. Runtime code, apart from the apply
//! logic in `registry`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::client::MetaClient;
use crate::clock::SharedClock;
use crate::error::MetaError;

/// Marks servers OFFLINE whose heartbeats stopped for `timeout`, checking a
/// few times per timeout. Run it beside every node: on a follower the
/// proposal is refused (NotLeader) and nothing happens.
pub async fn offline_detector(
    client: MetaClient,
    clock: SharedClock,
    timeout: Duration,
    shutdown: CancellationToken,
) {
    let interval = (timeout / 3).max(Duration::from_millis(100));
    let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now_ms = clock.now_ms();
        match client.mark_offline_servers(now_ms, timeout_ms).await {
            Ok(ids) if !ids.is_empty() => tracing::warn!(?ids, "chunk servers marked OFFLINE"),
            Ok(_) | Err(MetaError::NotLeader { .. }) => {}
            Err(e) => tracing::debug!(error = %e, "offline detection skipped"),
        }
    }
}
