//! `arbor serve`: gateway, one-node metadata group and local chunk store in
//! one process, with the one shutdown sequence they all follow.

use std::sync::Arc;

use anyhow::Context;
use arbor_chunkstore::{ChunkBackend, ChunkStore, Collector, GcConfig};
use arbor_gateway::auth::{self, CredentialsSource};
use arbor_gateway::sealing::NodeKey;
use arbor_gateway::{http_server, service};
use arbor_meta::clock::Seams;
use arbor_meta::{MetaConfig, MetaNode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ServeConfig;
use crate::metrics;
use crate::tasks::{self, Tasks};

/// Subdirectories of the data directory.
pub const META_DIR: &str = "meta";
pub const CHUNKS_DIR: &str = "chunks";
/// The node id of the single metadata replica of `arbor serve`.
const SERVE_NODE_ID: u64 = 1;

/// Runs until `shutdown` is cancelled (SIGINT/SIGTERM in `main`), with
/// settings `main` has validated and logged.
pub async fn run(config: ServeConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let (credentials, source) = auth::load_or_create(&config.data_dir, config.credentials())?;
    // Bind first: a busy port fails before anything else starts.
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let endpoint = listener.local_addr()?;
    let metrics_listener = metrics::bind(config.metrics_listen).await?;

    let meta = MetaNode::open_single(MetaConfig {
        durable: !config.no_fsync,
        ..MetaConfig::new(config.data_dir.join(META_DIR), SERVE_NODE_ID)
    })
    .await
    .context("starting the metadata service")?;
    let seams = Seams::system();
    let chunks = ChunkStore::open(
        &config.data_dir.join(CHUNKS_DIR),
        seams.clock.clone(),
        seams.entropy.clone(),
    )
    .await
    .context("opening the chunk store")?;

    let node_key = NodeKey::load_or_create(&config.data_dir, seams.entropy.as_ref())?;
    let settings = config.gateway_settings();
    let backend = ChunkBackend::Local(chunks);
    let frontend = service::frontend(
        meta.client(),
        backend.clone(),
        settings,
        &credentials,
        node_key,
        config.domain.clone(),
        seams.clone(),
    );

    print_banner(
        &config,
        endpoint,
        metrics_listener.as_ref().map(metrics::url),
        &credentials,
        source,
    );

    let gc_config = GcConfig {
        grace: config.gc_grace(),
        orphan_grace: config.orphan_grace(),
    };
    let gc_interval = tasks::collect_interval(gc_config.grace.min(gc_config.orphan_grace));
    let mut background = Tasks::default();
    if let Some(listener) = metrics_listener {
        // A background task: it stops before the metadata node does.
        let sources = metrics::Sources {
            requests: Some(frontend.metrics.clone()),
            meta: Some(Arc::new(meta.status_reader())),
            // A one-node group with a local chunk store: no registry.
            cluster: None,
        };
        background.spawn(
            "metrics",
            metrics::serve(listener, sources, shutdown.clone()),
        );
    }
    background.spawn(
        "reclamation",
        tasks::reclaim(meta.client(), tasks::RECLAIM_INTERVAL, shutdown.clone()),
    );
    background.spawn(
        "lifecycle",
        tasks::lifecycle(
            meta.client(),
            seams.clock.clone(),
            config.lifecycle_day(),
            config.lifecycle_interval(),
            shutdown.clone(),
        ),
    );
    background.spawn(
        "upload expiry",
        tasks::expire_uploads(
            meta.client(),
            seams.clock.clone(),
            config.upload_expiry(),
            shutdown.clone(),
        ),
    );
    background.spawn(
        "garbage collection",
        tasks::collect(
            Collector::new(meta.client(), backend, gc_config),
            gc_interval,
            shutdown.clone(),
        ),
    );
    // A Raft stopped on a fatal error (a storage write that failed) serves
    // nothing more: stop, so that a supervisor restarts the process once
    // the cause (a full disk, say) is fixed.
    let watch_raft = async {
        tokio::select! {
            () = shutdown.cancelled() => None,
            reason = meta.raft_failure() => {
                tracing::error!(%reason, "Raft stopped on a fatal error; arbor serve stops");
                shutdown.cancel();
                Some(reason)
            }
        }
    };
    // Requests and background batches drain side by side.
    let drain_background = async {
        shutdown.cancelled().await;
        background.drain(tasks::DRAIN_TIMEOUT).await;
    };
    let (_, (), failure) = tokio::join!(
        http_server::run(listener, frontend, shutdown.clone()),
        drain_background,
        watch_raft
    );
    // Requests are drained: stop Raft and close redb.
    let stopped = meta.shutdown().await;
    if let Some(reason) = failure {
        anyhow::bail!("Raft stopped on a fatal error: {reason}");
    }
    stopped.context("stopping the metadata service")?;
    tracing::info!("arbor serve stopped");
    Ok(())
}

fn print_banner(
    config: &ServeConfig,
    endpoint: std::net::SocketAddr,
    metrics: Option<String>,
    credentials: &auth::Credentials,
    source: CredentialsSource,
) {
    let origin = match source {
        CredentialsSource::Configured => {
            "configured (ARBOR_ACCESS_KEY / ARBOR_SECRET_KEY or the configuration file)".to_owned()
        }
        CredentialsSource::Stored | CredentialsSource::Generated => {
            format!(
                "stored in {}",
                config.data_dir.join(auth::CREDENTIALS_FILE).display()
            )
        }
    };
    // stdout, so scripts can read it; logs go to stderr.
    println!("Arbor is serving S3");
    println!("endpoint:    http://{endpoint}");
    if let Some(metrics) = metrics {
        println!("metrics:     {metrics}");
    }
    println!(
        "region:      {}",
        config
            .region
            .as_deref()
            .unwrap_or("any (clients may use us-east-1)")
    );
    println!("data dir:    {}", config.data_dir.display());
    println!("access key:  {}", credentials.access_key);
    println!("secret key:  {}", credentials.secret_key);
    println!("credentials: {origin}");
}
