//! `arbor serve`: gateway, one-node metadata group and local chunk store in
//! one process, with the one shutdown sequence they all follow.

use std::sync::Arc;

use anyhow::Context;
use arbor_chunkstore::ChunkStore;
use arbor_meta::{MetaConfig, MetaNode};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, CredentialsSource};
use crate::config::ServeConfig;
use crate::http_server::{self, Frontend};
use crate::s3::{Arbor, GatewaySettings};

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
        data_dir: config.data_dir.join(META_DIR),
        node_id: SERVE_NODE_ID,
        durable: !config.no_fsync,
    })
    .await
    .context("starting the metadata service")?;
    let chunks = ChunkStore::open(&config.data_dir.join(CHUNKS_DIR))
        .await
        .context("opening the chunk store")?;

    let settings = GatewaySettings {
        chunk_size: config.chunk_size,
        region: config.region.clone(),
    };
    let mut builder = S3ServiceBuilder::new(Arbor::new(meta.client(), chunks, settings));
    builder.set_auth(SimpleAuth::from_single(
        credentials.access_key.clone(),
        credentials.secret_key.clone(),
    ));
    if let Some(domain) = &config.domain {
        builder.set_host(
            s3s::host::SingleDomain::new(domain).map_err(|e| anyhow::anyhow!("--domain: {e:?}"))?,
        );
    }
    let frontend = Arc::new(Frontend {
        s3: builder.build(),
        region: config.region.clone(),
    });

    print_banner(&config, endpoint, &credentials, source);

    http_server::run(listener, frontend, shutdown).await;
    // Requests are drained: stop Raft and close redb.
    meta.shutdown()
        .await
        .context("stopping the metadata service")?;
    tracing::info!("arbor serve stopped");
    Ok(())
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
