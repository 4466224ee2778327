//! `arbor chunk`: a chunk server. The chunk store runs it
//! (`arbor_chunkstore::run_on`: store, server, scrubber and, with
//! metadata nodes, heartbeats, orphan sweeps and scrub repairs); this role
//! hands it its settings as a `ChunkServerConfig`.

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use arbor_meta::clock::Seams;

use crate::config::ChunkConfig;

/// Runs until `shutdown` is cancelled, with settings `main` has validated
/// and logged.
pub async fn run(settings: ChunkConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = settings.server_config_with_secret()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    println!("chunk server listening: {}", listener.local_addr()?);
    let seams = Seams::system();
    arbor_chunkstore::config::run_on(config, listener, seams.clock, seams.entropy, shutdown)
        .await
        .context("chunk server")?;
    Ok(())
}
