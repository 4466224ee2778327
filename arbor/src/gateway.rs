//! `arbor gateway`: a stateless S3 front end of a cluster, writing each
//! chunk to several chunk servers.

use anyhow::Context;
use arbor_chunkstore::{
    ChunkBackend, ChunkClients, ClientOptions, ClusterChunks, Repairer, Replicator,
};
use arbor_gateway::sealing::NodeKey;
use arbor_gateway::{auth, http_server, service};
use arbor_meta::clock::Seams;
use arbor_meta::{MetaClient, RemoteConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::metrics;
use crate::tasks::{self, Tasks};

/// Runs until `shutdown` is cancelled, with settings `main` has validated
/// and logged.
pub async fn run(config: GatewayConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (credentials, _) = auth::load_existing(&config.data_dir, config.credentials())?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let metrics_listener = metrics::bind(config.metrics_listen).await?;
    let secret = crate::config::cluster_secret(config.cluster_secret_file.as_deref())?;
    let meta = MetaClient::remote_with(
        config.meta.clone(),
        RemoteConfig {
            cluster_secret: Some(secret.clone()),
            ..RemoteConfig::default()
        },
    );
    let clients = ChunkClients::new(ClientOptions {
        cluster_secret: Some(secret),
        ..ClientOptions::default()
    });
    let (repairer, repairs) = Repairer::start(clients.clone(), shutdown.clone());
    let seams = Seams::system();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let node_key = NodeKey::load_or_create(&config.data_dir, seams.entropy.as_ref())?;
    let chunks = ClusterChunks::new(
        meta.clone(),
        Replicator::new(clients, Some(repairer)),
        config.replication_factor,
        seams.clock.clone(),
        seams.entropy.clone(),
    )?;
    let settings = config.gateway_settings();
    let frontend = service::frontend(
        meta,
        ChunkBackend::Cluster(chunks),
        settings,
        &credentials,
        node_key,
        config.domain.clone(),
        seams,
    );
    // stdout, so scripts and tests can read it.
    println!("gateway listening: http://{}", listener.local_addr()?);
    if let Some(listener) = &metrics_listener {
        println!("metrics:           {}", metrics::url(listener));
    }
    let mut background = Tasks::default();
    if let Some(listener) = metrics_listener {
        let sources = metrics::Sources {
            requests: Some(frontend.metrics.clone()),
            meta: None,
            cluster: None,
        };
        background.spawn(
            "metrics",
            metrics::serve(listener, sources, shutdown.clone()),
        );
    }
    http_server::run(listener, frontend, shutdown).await;
    // The repairer stops on the same token (abandoning queued repairs,
    // which reads and the scrubber find again).
    background.adopt("repairs", repairs);
    background.drain(tasks::DRAIN_TIMEOUT).await;
    Ok(())
}
