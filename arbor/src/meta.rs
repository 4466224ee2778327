//! `arbor meta`: one node of the metadata group, plus the background
//! tasks that act on the group's decisions (offline marking,
//! re-replication, garbage collection, upload expiry; see `tasks`).
//!
//! The background tasks run beside every metadata node; only the
//! leader's get answers (the others' calls find `NotLeader`), so exactly
//! one of each acts at a time, and a new leader's take over.

use std::sync::Arc;

use anyhow::Context;
use arbor_chunkstore::{
    ChunkBackend, ChunkClients, ClientOptions, ClusterChunks, Collector, GcConfig, Healer,
    HealerConfig, Replicator,
};
use arbor_meta::MetaNode;
use arbor_meta::clock::Seams;
use tokio_util::sync::CancellationToken;

use crate::config::MetaNodeConfig;
use crate::metrics;
use crate::tasks::{self, Tasks};

/// Runs until `shutdown` is cancelled, with settings `main` has validated
/// and logged.
pub async fn run(settings: MetaNodeConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = settings.node_config()?;
    let cluster_secret = config.cluster_secret.clone();
    // Bind first: a busy port fails before the node opens.
    let metrics_listener = metrics::bind(settings.metrics_listen).await?;
    let node = MetaNode::open(config)
        .await
        .context("starting the metadata node")?;
    let bound = node.local_addr().map(|a| a.to_string()).unwrap_or_default();
    // stdout, so scripts and tests can read it.
    println!("meta node:   {}", node.node_id());
    println!("listening:   {bound}");
    if let Some(listener) = &metrics_listener {
        println!("metrics:     {}", metrics::url(listener));
    }
    // The last start-up line, which scripts wait for.
    println!("advertised:  {}", node.advertise_addr());
    let seams = Seams::system();
    let mut background = Tasks::default();
    if let Some(listener) = metrics_listener {
        // A background task: it stops before the node does.
        let sources = metrics::Sources {
            requests: None,
            meta: Some(Arc::new(node.status_reader())),
            cluster: Some(node.client()),
        };
        background.spawn(
            "metrics",
            metrics::serve(listener, sources, shutdown.clone()),
        );
    }
    background.spawn(
        "offline marking",
        tasks::mark_offline(
            node.client(),
            seams.clock.clone(),
            settings.chunk_heartbeat_timeout(),
            shutdown.clone(),
        ),
    );
    let clients = ChunkClients::new(ClientOptions {
        cluster_secret,
        ..ClientOptions::default()
    });
    let heal_config = HealerConfig {
        interval: settings.heal_interval(),
        offline_grace: settings.offline_grace(),
    };
    let heal_interval = heal_config.interval;
    let healer = Healer::new(
        node.client(),
        Replicator::new(clients.clone(), None),
        heal_config,
        seams.clock.clone(),
    );
    background.spawn(
        "re-replication",
        tasks::heal(healer, heal_interval, shutdown.clone()),
    );
    // The collector only deletes: no replication factor applies.
    let chunks = ClusterChunks::new(
        node.client(),
        Replicator::new(clients, None),
        1,
        seams.clock.clone(),
        seams.entropy.clone(),
    )?;
    let gc_config = GcConfig {
        grace: settings.gc_grace(),
        // Orphans are swept by each chunk server.
        orphan_grace: settings.gc_grace(),
    };
    let gc_interval = tasks::collect_interval(gc_config.grace);
    background.spawn(
        "garbage collection",
        tasks::collect(
            Collector::new(node.client(), ChunkBackend::Cluster(chunks), gc_config),
            gc_interval,
            shutdown.clone(),
        ),
    );
    background.spawn(
        "reclamation",
        tasks::reclaim(node.client(), tasks::RECLAIM_INTERVAL, shutdown.clone()),
    );
    background.spawn(
        "lifecycle",
        tasks::lifecycle(
            node.client(),
            seams.clock.clone(),
            settings.lifecycle_day(),
            settings.lifecycle_interval(),
            shutdown.clone(),
        ),
    );
    background.spawn(
        "upload expiry",
        tasks::expire_uploads(
            node.client(),
            seams.clock.clone(),
            settings.upload_expiry(),
            shutdown.clone(),
        ),
    );
    let failure = tokio::select! {
        () = shutdown.cancelled() => None,
        reason = node.raft_failure() => Some(reason),
    };
    if let Some(reason) = &failure {
        // Nothing more can be served: exit, so that a supervisor restarts
        // the process once the cause (a full disk, say) is fixed.
        tracing::error!(%reason, "Raft stopped on a fatal error; the node stops");
        shutdown.cancel();
    }
    // Each task finishes the batch in hand (its Raft commands need the
    // node), then Raft stops.
    background.drain(tasks::DRAIN_TIMEOUT).await;
    let stopped = node.shutdown().await;
    if let Some(reason) = failure {
        anyhow::bail!("Raft stopped on a fatal error: {reason}");
    }
    stopped.context("stopping the metadata node")?;
    Ok(())
}
