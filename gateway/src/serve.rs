//! `arbor serve`: gateway, one-node metadata group and local chunk store in
//! one process, with the one shutdown sequence they all follow.

use std::sync::Arc;

use anyhow::Context;
use arbor_chunkstore::{ChunkBackend, ChunkStore, Collector, GcConfig};
use std::time::Duration;

use arbor_meta::clock::{OsEntropy, SystemClock};
use arbor_meta::limits::UPLOADS_EXPIRED_PER_COMMAND_MAX;
use arbor_meta::{MetaClient, MetaConfig, MetaNode};
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{AdminRoute, NamesWithAdmin};
use crate::auth::{self, CredentialsSource};
use crate::config::ServeConfig;
use crate::http_server::{self, Frontend, VirtualHosts};
use crate::limits::XML_BODY_SIZE_MAX;
use crate::routes::{IgnoredRange, Routes};
use crate::s3::{Arbor, GatewaySettings};
use crate::xml_body::XmlBodies;

/// Subdirectories of the data directory.
pub const META_DIR: &str = "meta";
pub const CHUNKS_DIR: &str = "chunks";
/// The node id of the single metadata replica of `arbor serve`.
const SERVE_NODE_ID: u64 = 1;

/// Runs until `shutdown` is cancelled (SIGINT/SIGTERM in `main`).
pub async fn run(config: ServeConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    tracing::info!(?config, "starting arbor serve");
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let (credentials, source) = auth::load_or_create(&config.data_dir)?;
    // Bind first: a busy port fails before anything else starts.
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let endpoint = listener.local_addr()?;

    let meta = MetaNode::open_single(MetaConfig {
        durable: !config.no_fsync,
        ..MetaConfig::new(config.data_dir.join(META_DIR), SERVE_NODE_ID)
    })
    .await
    .context("starting the metadata service")?;
    let chunks = ChunkStore::open(
        &config.data_dir.join(CHUNKS_DIR),
        SystemClock::shared(),
        OsEntropy::shared(),
    )
    .await
    .context("opening the chunk store")?;

    let settings = GatewaySettings {
        chunk_size: config.chunk_size,
        region: config.region.clone(),
    };
    let backend = ChunkBackend::Local(chunks);
    let frontend = frontend(
        meta.client(),
        backend.clone(),
        settings,
        &credentials,
        config.domain.clone(),
    );

    print_banner(&config, endpoint, &credentials, source);

    let expiry = tokio::spawn(expire_uploads(
        meta.client(),
        Duration::from_secs(config.upload_expiry_secs),
        shutdown.clone(),
    ));
    let collector = Collector::new(
        meta.client(),
        backend,
        GcConfig {
            grace: Duration::from_secs(config.gc_grace_secs),
            orphan_grace: Duration::from_secs(config.orphan_grace_secs),
        },
    );
    let gc = tokio::spawn(collector.run(shutdown.clone()));
    http_server::run(listener, frontend, shutdown).await;
    expiry.abort();
    gc.abort();
    // Requests are drained: stop Raft and close redb.
    meta.shutdown()
        .await
        .context("stopping the metadata service")?;
    tracing::info!("arbor serve stopped");
    Ok(())
}

/// The S3 service over `meta` and `backend`, as every gateway serves it.
pub(crate) fn frontend(
    meta: MetaClient,
    backend: ChunkBackend,
    settings: GatewaySettings,
    credentials: &auth::Credentials,
    domain: Option<String>,
) -> Arc<Frontend> {
    let region = settings.region.clone();
    let arbor = Arbor::new(meta.clone(), backend.clone(), settings);
    let mut builder = s3_service(arbor.clone(), domain.as_deref());
    builder.set_route(Routes {
        admin: AdminRoute {
            meta,
            chunks: backend,
        },
        ignored_range: IgnoredRange {
            // Checks no signature: only `Routes` reaches it, after s3s has.
            unauthenticated: s3_service(arbor, domain.as_deref()).build(),
        },
    });
    builder.set_auth(auth::KeyPair::new(credentials));
    builder.set_access(XmlBodies);
    Arc::new(Frontend {
        s3: builder.build(),
        region,
    })
}

/// An S3 service over `arbor` with Arbor's names, addressing and limits,
/// and as yet no authentication.
fn s3_service(arbor: Arbor, domain: Option<&str>) -> S3ServiceBuilder {
    let mut builder = S3ServiceBuilder::new(arbor);
    builder.set_validation(NamesWithAdmin);
    if let Some(domain) = domain {
        builder.set_host(VirtualHosts {
            domain: domain.to_owned(),
        });
    }
    let mut s3s_config = S3Config::default();
    s3s_config.xml_max_body_size = XML_BODY_SIZE_MAX;
    builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(s3s_config))));
    builder
}

/// Aborts multipart uploads older than `max_age`, checking a few times per
/// `max_age` (at most hourly). Any node may run this: the age is decided
/// here, the aborts are Raft commands, and a repeat finds nothing to do.
pub(crate) async fn expire_uploads(
    meta: MetaClient,
    max_age: Duration,
    shutdown: CancellationToken,
) {
    let interval = (max_age / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = crate::s3::now_ms().saturating_sub(max_age_ms);
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

fn print_banner(
    config: &ServeConfig,
    endpoint: std::net::SocketAddr,
    credentials: &auth::Credentials,
    source: CredentialsSource,
) {
    let origin = match source {
        CredentialsSource::Environment => "from ARBOR_ACCESS_KEY / ARBOR_SECRET_KEY".to_owned(),
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
