//! Chunk transfer between chunk servers, streamed through this process
//! (server → here → server) without holding the chunk in memory. Below
//! both `replication` (replacing a failed write target) and `repair`
//! (restoring a bad replica), which use it and not each other's internals.

use crate::client::{ChunkClients, ExpectedSha256};
use crate::error::{ChunkError, Result};
use crate::store::ChunkInfo;

/// Streams chunk `info.id` from server `from` to server `to`, which checks
/// it against `info.sha256` before storing it.
pub(crate) async fn copy_chunk(
    clients: &ChunkClients,
    info: &ChunkInfo,
    from: &str,
    to: &str,
) -> Result<()> {
    let source = clients.server(from)?;
    let target = clients.server(to)?;
    let read = source.get(info.id, 0..info.size).await?;
    if read.info.sha256 != info.sha256 || read.info.size != info.size {
        return Err(ChunkError::Corrupt {
            id: info.id,
            detail: format!("{from} holds other content than expected"),
        });
    }
    let stored = target
        .put(info.id, ExpectedSha256::Known(info.sha256), read.body)
        .await?;
    if stored != *info {
        return Err(target.network(format!("stored {stored:?} instead of {info:?}")));
    }
    Ok(())
}
