//! `arbor chunk`: configuration and entry point of a chunk server process.
//! The gateway crate owns the command line (clap, `ARBOR_*` environment)
//! and fills in a [`ChunkServerConfig`]; [`run`] does the rest.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use arbor_meta::clock::{SharedClock, SharedEntropy};
use arbor_net::auth::ClusterSecret;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::client::{ChunkClients, ClientOptions};
use crate::error::{ChunkError, Result};
use crate::gc::OrphanSweeper;
use crate::heartbeat;
use crate::limits;
use crate::repair;
use crate::scrub::Scrubber;
use crate::server::{self, ServerOptions};
use crate::store::ChunkStore;

/// Chunk files live under `<data_dir>/chunks`, as in `arbor serve`.
pub const CHUNKS_DIR: &str = "chunks";
/// Longest zone label.
pub const ZONE_LEN_MAX: usize = 64;
/// Most metadata nodes a chunk server is told about.
pub const META_ADDRS_MAX: usize = 16;

/// Everything a chunk server process needs; defaults in [`Default`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChunkServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Metadata nodes (`host:port`) to register with and heartbeat to
    /// (none: a stand-alone server).
    pub meta: Vec<String>,
    /// host:port to announce (default: the bound listen address).
    pub advertise: Option<String>,
    /// Pause between heartbeats; keep it well under the group's OFFLINE
    /// timeout.
    pub heartbeat_interval: Duration,
    /// Failure-domain label (zone, rack) used by placement.
    pub zone: String,
    /// Bytes this server offers; reported as capacity and free space.
    pub capacity: u64,
    /// Scrub rate in bytes per second.
    pub scrub_rate: u64,
    /// Pause between two scrub passes.
    pub scrub_interval: Duration,
    /// Time in-flight requests get at shutdown.
    pub drain_timeout: Duration,
    /// Connections served at once.
    pub connections_max: usize,
    /// How old a chunk file nothing references must be before it is
    /// deleted (with `meta` only: the metadata group decides). Chunks the
    /// scrubber finds corrupt are repaired from other replicas (with
    /// `meta` only: the metadata group knows where they are).
    pub orphan_grace: Duration,
    /// The cluster's secret: requests to this server must carry a MAC
    /// under it, and its own requests (to the metadata group, to other
    /// chunk servers) carry one. Never in a file of settings: it is read
    /// from its own file by the process.
    #[serde(skip)]
    pub cluster_secret: Option<ClusterSecret>,
}

/// A heartbeat every 3 s: the group's OFFLINE timeout (10 s by default)
/// then tolerates two lost beats.
pub const HEARTBEAT_INTERVAL_DEFAULT: Duration = Duration::from_secs(3);

impl Default for ChunkServerConfig {
    fn default() -> Self {
        ChunkServerConfig {
            data_dir: PathBuf::from("arbor-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            meta: Vec::new(),
            advertise: None,
            heartbeat_interval: HEARTBEAT_INTERVAL_DEFAULT,
            zone: "default".to_owned(),
            capacity: 1 << 40,
            scrub_rate: limits::SCRUB_RATE_DEFAULT,
            scrub_interval: limits::SCRUB_INTERVAL_DEFAULT,
            drain_timeout: limits::DRAIN_TIMEOUT_DEFAULT,
            connections_max: limits::SERVER_CONNECTIONS_MAX,
            orphan_grace: limits::ORPHAN_GRACE_DEFAULT,
            cluster_secret: None,
        }
    }
}

/// A zone label: 1 to [`ZONE_LEN_MAX`] bytes of `[A-Za-z0-9-_./]`.
pub fn zone_is_valid(zone: &str) -> bool {
    !zone.is_empty()
        && zone.len() <= ZONE_LEN_MAX
        && zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

impl ChunkServerConfig {
    /// Checks the configuration; config may tighten limits, never loosen.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(ChunkError::InvalidConfig(message));
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir is empty".to_owned());
        }
        if !zone_is_valid(&self.zone) {
            return invalid(format!(
                "zone {:?} must be 1..={ZONE_LEN_MAX} of [A-Za-z0-9-_./]",
                self.zone
            ));
        }
        if self.meta.len() > META_ADDRS_MAX {
            return invalid(format!("at most {META_ADDRS_MAX} meta addresses"));
        }
        for addr in &self.meta {
            if addr.parse::<http::uri::Authority>().is_err() || !addr.contains(':') {
                return invalid(format!("meta address {addr:?} is not host:port"));
            }
        }
        if self.capacity == 0 {
            return invalid("capacity is 0".to_owned());
        }
        if self.scrub_rate < limits::SCRUB_RATE_MIN {
            return invalid(format!(
                "scrub_rate must be at least {} B/s",
                limits::SCRUB_RATE_MIN
            ));
        }
        if self.scrub_interval.is_zero() {
            return invalid("scrub_interval is 0".to_owned());
        }
        if self.connections_max == 0 || self.connections_max > limits::SERVER_CONNECTIONS_MAX {
            return invalid(format!(
                "connections_max must be in 1..={}",
                limits::SERVER_CONNECTIONS_MAX
            ));
        }
        Ok(())
    }
}

/// Runs a chunk server until `shutdown` is cancelled: binds `listen`, then
/// as [`run_on`].
pub async fn run(
    config: ChunkServerConfig,
    clock: SharedClock,
    entropy: SharedEntropy,
    shutdown: CancellationToken,
) -> Result<()> {
    config.validate()?;
    let listener = TcpListener::bind(config.listen).await?;
    run_on(config, listener, clock, entropy, shutdown).await
}

/// Runs a chunk server on `listener`: opens the store, starts the
/// scrubber, serves. On shutdown: stop accepting and drain (with the
/// deadline), stop the scrubber, return. `clock` and `entropy` are the
/// process's ([`arbor_meta::clock::SystemClock`] and
/// [`arbor_meta::clock::OsEntropy`] outside tests).
pub async fn run_on(
    config: ChunkServerConfig,
    listener: TcpListener,
    clock: SharedClock,
    entropy: SharedEntropy,
    shutdown: CancellationToken,
) -> Result<()> {
    config.validate()?;
    tracing::info!(?config, "starting chunk server");
    let store = ChunkStore::open(
        &config.data_dir.join(CHUNKS_DIR),
        clock.clone(),
        entropy.clone(),
    )
    .await?;
    let stop_cluster = shutdown.child_token();
    let scrubber = Scrubber::new(store.clone(), config.scrub_rate)?;
    let mut cluster_tasks = Vec::new();
    let scrubber = if config.meta.is_empty() {
        scrubber
    } else {
        let id = heartbeat::server_id(&config.data_dir, &*entropy)?;
        let meta = arbor_meta::MetaClient::remote_with(
            config.meta.clone(),
            arbor_meta::RemoteConfig {
                cluster_secret: config.cluster_secret.clone(),
                ..arbor_meta::RemoteConfig::default()
            },
        );
        let me = heartbeat::Announcement {
            id,
            addr: match &config.advertise {
                Some(addr) => addr.clone(),
                None => listener.local_addr()?.to_string(),
            },
            zone: config.zone.clone(),
            capacity: config.capacity,
        };
        let sweeper = OrphanSweeper {
            meta: meta.clone(),
            store: store.clone(),
            server: id,
            grace: config.orphan_grace,
        };
        cluster_tasks.push(tokio::spawn(sweeper.run(stop_cluster.clone())));
        let (reports, found) = tokio::sync::mpsc::channel(limits::REPAIR_QUEUE_MAX);
        let clients = ChunkClients::new(ClientOptions {
            cluster_secret: config.cluster_secret.clone(),
            ..ClientOptions::default()
        });
        cluster_tasks.push(tokio::spawn(repair::repair_scrubbed(
            meta.clone(),
            me.clone(),
            clients,
            found,
            stop_cluster.clone(),
        )));
        cluster_tasks.push(tokio::spawn(heartbeat::run(
            meta,
            store.clone(),
            me,
            config.heartbeat_interval,
            clock,
            stop_cluster.clone(),
        )));
        scrubber.with_reports(reports)
    };
    let stop_scrub = shutdown.child_token();
    let scrub = tokio::spawn(scrubber.run(config.scrub_interval, stop_scrub.clone()));
    let options = ServerOptions {
        zone: config.zone.clone(),
        capacity: config.capacity,
        drain_timeout: config.drain_timeout,
        connections_max: config.connections_max,
        cluster_secret: config.cluster_secret.clone(),
    };
    let served = server::serve(listener, store, options, shutdown).await;
    stop_scrub.cancel();
    stop_cluster.cancel();
    for task in cluster_tasks {
        if let Err(error) = task.await {
            tracing::warn!(%error, "chunk server task failed");
        }
    }
    if let Err(error) = scrub.await {
        tracing::warn!(%error, "scrubber task failed");
    }
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(ChunkServerConfig::default().validate().is_ok());
        let bad = [
            ChunkServerConfig {
                zone: String::new(),
                ..ChunkServerConfig::default()
            },
            ChunkServerConfig {
                zone: "a b".to_owned(),
                ..ChunkServerConfig::default()
            },
            ChunkServerConfig {
                meta: vec!["no-port".to_owned()],
                ..ChunkServerConfig::default()
            },
            ChunkServerConfig {
                scrub_rate: 1,
                ..ChunkServerConfig::default()
            },
            ChunkServerConfig {
                connections_max: limits::SERVER_CONNECTIONS_MAX + 1,
                ..ChunkServerConfig::default()
            },
            ChunkServerConfig {
                capacity: 0,
                ..ChunkServerConfig::default()
            },
        ];
        for config in bad {
            assert!(
                matches!(config.validate(), Err(ChunkError::InvalidConfig(_))),
                "{config:?}"
            );
        }
        let good = ChunkServerConfig {
            meta: vec!["10.0.0.1:9200".to_owned(), "meta-2:9200".to_owned()],
            zone: "eu-1/rack-3".to_owned(),
            ..ChunkServerConfig::default()
        };
        assert!(good.validate().is_ok());
    }
}
