//! The `arbor` binary.

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use arbor::admin::AdminArgs;
use arbor::chunk::ChunkArgs;
use arbor::config::ServeConfig;
use arbor::gateway::GatewayArgs;
use arbor::meta::MetaArgs;

#[derive(Parser)]
#[command(
    name = "arbor",
    version,
    about = "Arbor: an S3-compatible object store on a Raft-replicated directory tree"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: S3 gateway, one-node metadata group,
    /// local chunk store.
    Serve(ServeConfig),
    /// Run one node of the metadata group (Raft over HTTP).
    Meta(MetaArgs),
    /// Run a chunk server.
    Chunk(ChunkArgs),
    /// Run an S3 gateway of a cluster (stateless: run as many as needed).
    Gateway(GatewayArgs),
    /// Administer a running Arbor (status, bucket overwrite policy,
    /// metadata group membership).
    Admin(AdminArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ARBOR_LOG")
                .unwrap_or_else(|_| "info,openraft=warn,s3s=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("arbor: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        match cli.command {
            Command::Serve(config) => arbor::serve::run(config, shutdown).await,
            Command::Meta(args) => arbor::meta::run(args, shutdown).await,
            Command::Chunk(args) => arbor::chunk::run(args, shutdown).await,
            Command::Gateway(args) => arbor::gateway::run(args, shutdown).await,
            Command::Admin(args) => arbor::admin::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arbor: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM starts the graceful shutdown.
async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}
