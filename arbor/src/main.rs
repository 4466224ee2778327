//! The `arbor` binary: parses the command line, puts each role's settings
//! together (`arbor::config`), then runs the role until a signal.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use arbor::admin::{AdminArgs, AdminCommand};
use arbor::bench::BenchArgs;
use arbor::config::{
    self, AdminConfig, ChunkConfig, DevClusterConfig, GatewayConfig, MetaNodeConfig, ServeConfig,
};
use arbor::fs::{FsArgs, FsCommand};

#[derive(Parser)]
#[command(
    name = "arbor",
    version,
    about = "Arbor: an S3-compatible object store on a Raft-replicated directory tree"
)]
struct Cli {
    /// TOML file with the role's settings; ARBOR_* variables and flags
    /// override it.
    #[arg(long, global = true, env = "ARBOR_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the settings, print them as the role would run with them
    /// (secrets redacted, as a configuration file) and exit.
    #[arg(long, global = true)]
    check_config: bool,
    /// Shut down, as on SIGTERM, when standard input closes (`arbor
    /// dev-cluster` starts its processes so, that none outlives it).
    #[arg(long, global = true)]
    stop_on_stdin_close: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: S3 gateway, one-node metadata group,
    /// local chunk store.
    Serve(ServeConfig),
    /// Run one node of the metadata group (Raft over HTTP).
    Meta(MetaNodeConfig),
    /// Run a chunk server.
    Chunk(ChunkConfig),
    /// Run an S3 gateway of a cluster (stateless: run as many as needed).
    Gateway(GatewayConfig),
    /// Administer a running Arbor (status, bucket overwrite policy,
    /// metadata group membership).
    Admin(AdminArgs),
    /// Tree operations on any Arbor endpoint: mv (rename an object or a
    /// whole directory), rm -r (delete a directory).
    Fs(FsArgs),
    /// Run a whole cluster on loopback, one process per node (meta nodes,
    /// chunk servers, gateways), for development and tests; print it as
    /// JSON once it is up.
    DevCluster(DevClusterConfig),
    /// Load-test an S3 endpoint, a dev cluster or servers it starts, and
    /// measure this machine's limits; report as JSON and a table.
    Bench(Box<BenchArgs>),
}

/// A role with the settings it runs with.
enum Role {
    Serve(ServeConfig),
    Meta(MetaNodeConfig),
    Chunk(ChunkConfig),
    Gateway(GatewayConfig),
    Admin(AdminConfig, AdminCommand),
    Fs(AdminConfig, FsCommand),
    DevCluster(DevClusterConfig),
    Bench(Box<BenchArgs>),
}

impl Role {
    /// The role's settings: `parsed` over the configuration file.
    fn load(cli: Cli, matches: &ArgMatches) -> anyhow::Result<Role> {
        let role = matches
            .subcommand()
            .map(|(_, role)| role)
            .ok_or_else(|| anyhow::anyhow!("no role given"))?;
        let file = cli.config.as_deref();
        Ok(match cli.command {
            Command::Serve(parsed) => Role::Serve(config::load(&parsed, role, file)?),
            Command::Meta(parsed) => Role::Meta(config::load(&parsed, role, file)?),
            Command::Chunk(parsed) => Role::Chunk(config::load(&parsed, role, file)?),
            Command::Gateway(parsed) => Role::Gateway(config::load(&parsed, role, file)?),
            Command::Admin(args) => {
                Role::Admin(config::load(&args.config, role, file)?, args.command)
            }
            Command::Fs(args) => Role::Fs(config::load(&args.config, role, file)?, args.command),
            Command::DevCluster(parsed) => Role::DevCluster(config::load(&parsed, role, file)?),
            // A client tool with plain flags: no settings file.
            Command::Bench(args) => {
                if file.is_some() {
                    anyhow::bail!("bench takes no configuration file (--config, ARBOR_CONFIG)");
                }
                Role::Bench(args)
            }
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Role::Serve(_) => "serve",
            Role::Meta(_) => "meta",
            Role::Chunk(_) => "chunk",
            Role::Gateway(_) => "gateway",
            Role::Admin(..) => "admin",
            Role::Fs(..) => "fs",
            Role::DevCluster(_) => "dev-cluster",
            Role::Bench(_) => "bench",
        }
    }

    /// The settings as `--check-config` prints them.
    fn to_toml(&self) -> anyhow::Result<String> {
        match self {
            Role::Serve(c) => config::to_toml(c),
            Role::Meta(c) => config::to_toml(c),
            Role::Chunk(c) => config::to_toml(c),
            Role::Gateway(c) => config::to_toml(c),
            Role::DevCluster(c) => config::to_toml(c),
            Role::Admin(c, _) | Role::Fs(c, _) => config::to_toml(c),
            Role::Bench(_) => anyhow::bail!("bench has no settings to check"),
        }
    }

    /// Logs the settings once, secrets redacted (a client's at debug level
    /// only: it runs one command).
    fn log(&self) {
        use config::to_line as line;
        let role = self.name();
        match self {
            Role::Serve(c) => tracing::info!(role, settings = %line(c), "starting"),
            Role::Meta(c) => tracing::info!(role, settings = %line(c), "starting"),
            Role::Chunk(c) => tracing::info!(role, settings = %line(c), "starting"),
            Role::Gateway(c) => tracing::info!(role, settings = %line(c), "starting"),
            Role::DevCluster(c) => tracing::info!(role, settings = %line(c), "starting"),
            Role::Admin(c, _) | Role::Fs(c, _) => {
                tracing::debug!(role, settings = %line(c), "starting");
            }
            Role::Bench(_) => tracing::debug!(role, "starting"),
        }
    }

    async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        match self {
            Role::Serve(c) => arbor::serve::run(c, shutdown).await,
            Role::Meta(c) => arbor::meta::run(c, shutdown).await,
            Role::Chunk(c) => arbor::chunk::run(c, shutdown).await,
            Role::Gateway(c) => arbor::gateway::run(c, shutdown).await,
            Role::Admin(c, command) => arbor::admin::run(c, command).await,
            Role::Fs(c, command) => arbor::fs::run(c, command).await,
            Role::DevCluster(c) => arbor::dev_cluster::run(c, shutdown).await,
            Role::Bench(args) => arbor::bench::run(*args).await,
        }
    }
}

/// Threads tokio may start for blocking work (redb reads and commits, chunk
/// file I/O: each a short hop, none waiting on another), instead of its
/// default of 512. Every thread keeps a stack and an allocator heap: 64
/// concurrent small GETs grew `arbor serve` to 100 threads and about
/// 20 MiB more resident memory, for no more throughput on a few cores.
const BLOCKING_THREADS_MAX: usize = 32;

/// mimalloc instead of the system allocator: the request path allocates
/// many small, short-lived buffers (headers, records, XML), where glibc's
/// malloc and free were a tenth of a small request's CPU (docs/benchmarks.md).
/// Built with `no_thp` (workspace Cargo.toml): with transparent huge pages
/// mimalloc backed freed-and-reused spans with 2 MiB pages and `serve`
/// peaked at 330 MiB in the benchmark run that now peaks at 150 MiB
/// (docs/design.md §10).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    arbor::logging::init();
    let check_only = cli.check_config;
    let stop_on_stdin_close = cli.stop_on_stdin_close;
    let role = match Role::load(cli, &matches) {
        Ok(role) => role,
        Err(e) => {
            eprintln!("arbor: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if check_only {
        return match role.to_toml() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("arbor: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    role.log();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS_MAX)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("arbor: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    if stop_on_stdin_close {
        arbor::dev_cluster::stop_when_stdin_closes(shutdown.clone());
    }
    let result = runtime.block_on(async {
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        role.run(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arbor: {e:#}");
            ExitCode::FAILURE
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
