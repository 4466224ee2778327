//! Registration and heartbeats: a chunk server tells the metadata group
//! where it is, its failure domain and capacity, then reports its usage
//! every `interval`. Missing heartbeats for the group's timeout marks it
//! OFFLINE; the next heartbeat brings it back ONLINE.

use std::path::Path;
use std::time::Duration;

use arbor_meta::MetaClient;
use arbor_meta::clock::{Clock, Entropy, SharedClock};
use arbor_meta::records::ServerId;
use tokio_util::sync::CancellationToken;

use crate::error::{ChunkError, Result};
use crate::store::ChunkStore;

/// The file in the data directory holding the server's id.
pub const SERVER_ID_FILE: &str = "server-id";

/// The server's id: read from `data_dir`, or drawn from `entropy` and
/// stored (fsync'd) on first start, so a restarted server is the same
/// server.
pub fn server_id(data_dir: &Path, entropy: &dyn Entropy) -> Result<ServerId> {
    let path = data_dir.join(SERVER_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            ChunkError::InvalidConfig(format!("{} holds no server id", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)?;
            let id: ServerId = entropy.next_u64().max(1);
            let tmp = data_dir.join(format!("{SERVER_ID_FILE}.tmp"));
            std::fs::write(&tmp, id.to_string())?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(data_dir)?.sync_all()?;
            Ok(id)
        }
        Err(e) => Err(e.into()),
    }
}

/// What the server says about itself.
#[derive(Clone, Debug)]
pub struct Announcement {
    pub id: ServerId,
    /// host:port clients reach its chunk API at.
    pub addr: String,
    pub zone: String,
    pub capacity: u64,
}

/// Registers, then heartbeats every `interval` until `shutdown`; re-registers
/// if the group forgot the server. Failures are logged and retried at the
/// next beat: a chunk server keeps serving while the group is unavailable.
/// Each registration and heartbeat is stamped with `clock`'s now.
pub async fn run(
    meta: MetaClient,
    store: ChunkStore,
    me: Announcement,
    interval: Duration,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let mut registered = false;
    loop {
        // A call to an unreachable group retries for a while: shutdown wins.
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            result = beat(&meta, &store, &me, registered, &*clock) => result,
        };
        match result {
            Ok(()) => registered = true,
            Err(arbor_meta::MetaError::NoSuchChunkServer(_)) => registered = false,
            Err(e) => tracing::warn!(error = %e, "heartbeat to the metadata group failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// One registration (until the group knows the server) or heartbeat.
async fn beat(
    meta: &MetaClient,
    store: &ChunkStore,
    me: &Announcement,
    registered: bool,
    clock: &dyn Clock,
) -> arbor_meta::Result<()> {
    if !registered {
        let record = meta
            .register_chunk_server(me.id, &me.addr, &me.zone, me.capacity, clock.now_ms())
            .await?;
        tracing::info!(
            id = me.id,
            status = record.status.as_str(),
            "registered with the metadata group"
        );
        return Ok(());
    }
    match store.usage().await {
        Ok((chunks, used)) => meta
            .chunk_server_heartbeat(me.id, used, chunks, clock.now_ms())
            .await
            .map(|_| ()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot measure chunk store usage");
            Ok(())
        }
    }
}
