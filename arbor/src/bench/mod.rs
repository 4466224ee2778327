//! `arbor bench`: a load generator speaking S3 (SigV4 over hyper's HTTP/1.1
//! client, one keep-alive connection per worker), and a measure of this
//! machine's limits to hold its results against.
//!
//! It runs against endpoints given on the command line (`--endpoint`,
//! credentials, `--pid` of the server processes to read CPU and memory
//! of), a cluster described by `arbor dev-cluster`'s JSON (`--cluster`),
//! or servers it starts itself (`--spawn serve`, `--spawn dev-cluster`,
//! on temporary directories). Modules: `signer` (SigV4), `client` (a
//! connection), `scenario` (what each scenario sends and checks;
//! `scenario::scale`, run only when named, fills a bucket with millions
//! of objects and, on a spawned `arbor serve`, measures its metadata
//! files and restarts it),
//! `stats` (latencies), `procfs` (server CPU and memory), `limits` (the
//! machine), `report` (JSON, table, Markdown).

pub mod client;
pub mod limits;
pub mod procfs;
pub mod report;
pub mod scenario;
pub mod signer;
pub mod stats;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use client::Endpoint;
use report::{Report, TargetReport};
use scenario::{Plan, Respawn, Runner, Scenario, Target};
use signer::Signer;

/// How long a spawned `arbor serve` or `arbor dev-cluster` may take to
/// say it is up.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a spawned server may take to stop once its stdin closes.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const MIB: u64 = 1024 * 1024;
/// A spawned `arbor serve`'s data directory, in the run's directory.
const SERVE_DATA_DIR: &str = "data";

/// What `--spawn` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Spawn {
    /// `arbor serve` on a temporary data directory.
    Serve,
    /// `arbor dev-cluster` (defaults: its meta nodes, chunk servers and
    /// gateways) on a temporary directory.
    DevCluster,
}

/// `arbor bench`'s flags (a client tool: plain flags, no settings file).
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// S3 endpoints (http://HOST:PORT, comma-separated or repeated);
    /// connections are spread over them.
    #[arg(long, value_delimiter = ',')]
    pub endpoint: Vec<String>,
    /// Access key for --endpoint.
    #[arg(long, env = "ARBOR_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// Secret key for --endpoint.
    #[arg(long, env = "ARBOR_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Region requests are signed for.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Server process ids whose CPU time and memory are read (from /proc)
    /// and summed; comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    pub pid: Vec<u32>,
    /// A cluster as `arbor dev-cluster` prints it (JSON file; `-` reads
    /// standard input): its gateways, credentials and every process id.
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
    /// Start the servers to measure (and stop them after): serve,
    /// dev-cluster, or both (repeated), one after the other.
    #[arg(long, value_enum)]
    pub spawn: Vec<Spawn>,
    /// Also measure this machine's limits (hashing, loopback TCP, fsync in
    /// --data-dir) and compare each scenario with the one bounding it.
    #[arg(long)]
    pub limits: bool,
    /// Where --limits writes its files (default: the spawned server's
    /// directory, else the temporary directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run only these scenarios (names as in the report, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Bucket the scenarios write to (created if missing).
    #[arg(long, default_value = "arbor-bench")]
    pub bucket: String,
    /// Size of the large PUT and GET bodies, in MiB.
    #[arg(long, default_value_t = 64)]
    pub large_mib: u64,
    /// Large PUTs or GETs per large scenario (over all its streams).
    #[arg(long, default_value_t = 8)]
    pub large_count: u64,
    /// Size of the small bodies, in bytes.
    #[arg(long, default_value_t = 4096)]
    pub small_bytes: u64,
    /// Operations per small PUT, GET and HEAD scenario.
    #[arg(long, default_value_t = 2000)]
    pub small_count: u64,
    /// Keys in each listing tree (flat, and four levels deep).
    #[arg(long, default_value_t = 10_000)]
    pub list_keys: u64,
    /// Keys per listing page (max-keys).
    #[arg(long, default_value_t = 1000)]
    pub list_page: u64,
    /// Times each listing scenario walks its tree.
    #[arg(long, default_value_t = 3)]
    pub list_rounds: u64,
    /// Size of the multipart upload, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub multipart_mib: u64,
    /// Size of each part, in MiB (S3's minimum is 5).
    #[arg(long, default_value_t = 8)]
    pub part_mib: u64,
    /// Parts uploaded at once.
    #[arg(long, default_value_t = 8)]
    pub parts_in_flight: usize,
    /// Operations of the mixed run.
    #[arg(long, default_value_t = 4000)]
    pub mixed_count: u64,
    /// Connections of the mixed run.
    #[arg(long, default_value_t = 16)]
    pub mixed_connections: usize,
    /// Objects the `scale` scenario (run only with `--only ...,scale`)
    /// fills its bucket with.
    #[arg(long, default_value_t = 1_000_000)]
    pub scale_keys: u64,
    /// The bucket already holds the objects the GET, HEAD, listing and
    /// mixed scenarios read, written by an earlier run with the same
    /// sizes and counts: do not write them again (to profile or repeat
    /// the reads alone).
    #[arg(long)]
    pub prewritten: bool,
    /// Write the JSON report to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the Markdown section (scenarios beside their limits) into
    /// FILE, between its markers (appended if they are missing).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
}

impl BenchArgs {
    fn plan(&self) -> anyhow::Result<Plan> {
        let positive = [
            ("--large-mib", self.large_mib),
            ("--large-count", self.large_count),
            ("--small-bytes", self.small_bytes),
            ("--small-count", self.small_count),
            ("--list-keys", self.list_keys),
            ("--list-page", self.list_page),
            ("--list-rounds", self.list_rounds),
            ("--multipart-mib", self.multipart_mib),
            ("--part-mib", self.part_mib),
            ("--mixed-count", self.mixed_count),
            ("--scale-keys", self.scale_keys),
        ];
        for (flag, value) in positive {
            if value == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        if self.parts_in_flight == 0 || self.mixed_connections == 0 {
            bail!("--parts-in-flight and --mixed-connections must be at least 1");
        }
        if self.list_page > 1000 {
            bail!("--list-page: S3 returns at most 1000 keys per page");
        }
        if self.part_mib < 5 && self.multipart_mib > self.part_mib {
            bail!("--part-mib: every part but the last must be at least 5 MiB");
        }
        if self.multipart_mib.div_ceil(self.part_mib) > 10_000 {
            bail!("--multipart-mib / --part-mib: at most 10,000 parts");
        }
        Ok(Plan {
            large_size: self.large_mib * MIB,
            large_count: self.large_count,
            small_size: self.small_bytes,
            small_count: self.small_count,
            list_keys: self.list_keys,
            list_page: self.list_page,
            list_rounds: self.list_rounds,
            multipart_size: self.multipart_mib * MIB,
            part_size: self.part_mib * MIB,
            parts_in_flight: self.parts_in_flight,
            mixed_count: self.mixed_count,
            mixed_connections: self.mixed_connections,
            scale_keys: self.scale_keys,
            prewritten: self.prewritten,
        })
    }

    /// The scenarios named by `--only` (by default all but the opt-in
    /// ones), in the order they run.
    fn scenarios(&self) -> anyhow::Result<Vec<Scenario>> {
        let names: Vec<String> = scenario::ALL
            .iter()
            .chain(&scenario::OPT_IN)
            .map(|s| s.name())
            .collect();
        for name in &self.only {
            if !names.contains(name) {
                bail!(
                    "--only: no scenario {name:?} (there are: {})",
                    names.join(", ")
                );
            }
        }
        let default = scenario::ALL
            .into_iter()
            .filter(|s| self.only.is_empty() || self.only.contains(&s.name()));
        let named = scenario::OPT_IN
            .into_iter()
            .filter(|s| self.only.contains(&s.name()));
        Ok(default.chain(named).collect())
    }

    fn signer(&self, access_key: Option<&str>, secret_key: Option<&str>) -> anyhow::Result<Signer> {
        Ok(Signer {
            access_key: access_key
                .context("no access key: --access-key or ARBOR_ACCESS_KEY")?
                .to_owned(),
            secret_key: secret_key
                .context("no secret key: --secret-key or ARBOR_SECRET_KEY")?
                .to_owned(),
            region: self.region.clone(),
        })
    }
}

/// Runs the benchmark; an error if any operation failed (after the
/// report is written, so it shows which).
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let plan = args.plan()?;
    let scenarios = args.scenarios()?;
    let given = usize::from(!args.endpoint.is_empty()) + usize::from(args.cluster.is_some());
    if given + usize::from(!args.spawn.is_empty()) != 1 {
        bail!("give one of --endpoint, --cluster or --spawn");
    }
    if args.prewritten && !args.spawn.is_empty() {
        bail!("--prewritten: a server --spawn starts holds nothing yet");
    }
    let mut report = Report {
        commit: commit(),
        started_at: utc_now(),
        load_average_before: procfs::load_average(),
        load_average_after: None,
        plan: plan.clone(),
        limits: None,
        targets: Vec::new(),
    };
    let scratch = Scratch::new()?;
    if args.limits {
        let dir = match &args.data_dir {
            Some(dir) => dir.clone(),
            None => scratch.path.clone(),
        };
        eprintln!(
            "bench: measuring this machine's limits in {}",
            dir.display()
        );
        let limits_plan = limits::LimitsPlan {
            tcp_bytes: 1024 * MIB,
            write_bytes: 256 * MIB,
            fsync_count: 500,
            round_trips: 10_000,
        };
        report.limits =
            Some(tokio::task::spawn_blocking(move || limits::measure(&limits_plan, &dir)).await??);
    }
    if !args.endpoint.is_empty() {
        let signer = args.signer(args.access_key.as_deref(), args.secret_key.as_deref())?;
        let target = Target {
            label: "endpoint".to_owned(),
            endpoints: endpoints(&args.endpoint, &signer)?,
            pids: args.pid.clone(),
        };
        report
            .targets
            .push(run_target(target, &plan, &args.bucket, &scenarios, None).await?);
    }
    if let Some(file) = &args.cluster {
        let text = if file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())?
        } else {
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
        };
        let target = cluster_target(&text, &args)?;
        report
            .targets
            .push(run_target(target, &plan, &args.bucket, &scenarios, None).await?);
    }
    for (n, spawn) in args.spawn.iter().enumerate() {
        let dir = scratch.path.join(format!("{n}"));
        std::fs::create_dir_all(&dir)?;
        let mut spawned = Spawned::start(*spawn, &dir)?;
        let target = match spawn {
            Spawn::Serve => serve_target(&spawned, &args)?,
            Spawn::DevCluster => {
                let json = spawned
                    .lines
                    .iter()
                    .find(|l| l.starts_with('{'))
                    .context("dev-cluster printed no JSON")?;
                let mut target = cluster_target(json, &args)?;
                target.label = "arbor dev-cluster".to_owned();
                target
            }
        };
        let result = match spawn {
            Spawn::Serve => {
                let mut respawn = Respawner {
                    spawned: &mut spawned,
                    dir: &dir,
                    args: &args,
                };
                run_target(target, &plan, &args.bucket, &scenarios, Some(&mut respawn)).await
            }
            Spawn::DevCluster => run_target(target, &plan, &args.bucket, &scenarios, None).await,
        };
        spawned.stop();
        report.targets.push(result?);
    }
    report.load_average_after = procfs::load_average();
    for target in &report.targets {
        eprint!("{}", report::table(target, report.limits.as_ref()));
    }
    let json = serde_json::to_string_pretty(&report)?;
    match &args.json {
        Some(path) => std::fs::write(path, json + "\n")
            .with_context(|| format!("writing {}", path.display()))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{json}")?;
            stdout.flush()?;
        }
    }
    if let Some(path) = &args.markdown {
        // The command as run, named `arbor` wherever the binary was.
        let command = std::iter::once("arbor".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ");
        // The other scenarios' section only if one ran: a scale run alone
        // leaves it as it was.
        if scenarios.iter().any(|s| *s != Scenario::Scale) {
            report::write_markdown(
                path,
                &report::markdown(&report, &command),
                (report::MARKDOWN_BEGIN, report::MARKDOWN_END),
            )?;
        }
        if let Some(section) = report::scale_markdown(&report, &command) {
            report::write_markdown(
                path,
                &section,
                (report::SCALE_MARKDOWN_BEGIN, report::SCALE_MARKDOWN_END),
            )?;
        }
    }
    let errors = report.errors();
    if errors > 0 {
        bail!("{errors} operations failed or did not run (see first_error in the report)");
    }
    Ok(())
}

/// Runs `scenarios` against `target`; `server` is the `arbor serve` this
/// run spawned, if it did (the `scale` scenario restarts it).
async fn run_target(
    target: Target,
    plan: &Plan,
    bucket: &str,
    scenarios: &[Scenario],
    mut server: Option<&mut dyn Respawn>,
) -> anyhow::Result<TargetReport> {
    let mut target_report = TargetReport {
        label: target.label.clone(),
        endpoints: target
            .endpoints
            .iter()
            .map(|e| format!("http://{}", e.host))
            .collect(),
        pids: target.pids.clone(),
        scenarios: Vec::new(),
        scale: None,
    };
    let mut runner = Runner::new(target, plan.clone(), bucket.to_owned())?;
    runner.create_bucket().await?;
    for scenario in scenarios {
        if *scenario == Scenario::Scale {
            let (outcomes, scale) = runner.scale(server.take()).await?;
            target_report.scenarios.extend(outcomes);
            target_report.scale = Some(scale);
        } else {
            target_report.scenarios.push(runner.run(*scenario).await?);
        }
    }
    Ok(target_report)
}

/// A spawned `arbor serve` as a target: the endpoint and credentials it
/// printed, and its process.
fn serve_target(spawned: &Spawned, args: &BenchArgs) -> anyhow::Result<Target> {
    Ok(Target {
        label: "arbor serve".to_owned(),
        endpoints: endpoints(
            std::slice::from_ref(&spawned.field("endpoint:")?),
            &args.signer(
                Some(&spawned.field("access key:")?),
                Some(&spawned.field("secret key:")?),
            )?,
        )?,
        pids: vec![spawned.child.id()],
    })
}

/// The spawned `arbor serve` handed to the `scale` scenario.
struct Respawner<'a> {
    spawned: &'a mut Spawned,
    /// What [`Spawned::start`] was given.
    dir: &'a Path,
    args: &'a BenchArgs,
}

impl Respawn for Respawner<'_> {
    fn data_dir(&self) -> PathBuf {
        self.dir.join(SERVE_DATA_DIR)
    }

    fn terminate(&mut self) -> anyhow::Result<()> {
        self.spawned.terminate()
    }

    fn start(&mut self) -> anyhow::Result<Target> {
        *self.spawned = Spawned::start(Spawn::Serve, self.dir)?;
        serve_target(self.spawned, self.args)
    }
}

fn endpoints(urls: &[String], signer: &Signer) -> anyhow::Result<Vec<Endpoint>> {
    urls.iter()
        .map(|u| Endpoint::parse(u, signer.clone()))
        .collect()
}

/// The target `arbor dev-cluster`'s JSON describes: its S3 endpoints, its
/// credentials (unless given as flags) and all its processes.
fn cluster_target(json: &str, args: &BenchArgs) -> anyhow::Result<Target> {
    let value: serde_json::Value = serde_json::from_str(json).context("cluster JSON")?;
    let strings = |key: &str| -> Vec<String> {
        value[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let urls = strings("s3_endpoints");
    if urls.is_empty() {
        bail!("cluster JSON has no s3_endpoints");
    }
    let signer = args.signer(
        args.access_key.as_deref().or(value["access_key"].as_str()),
        args.secret_key.as_deref().or(value["secret_key"].as_str()),
    )?;
    let mut pids: Vec<u32> = value["processes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["pid"].as_u64().and_then(|pid| u32::try_from(pid).ok()))
                .collect()
        })
        .unwrap_or_default();
    pids.extend(&args.pid);
    Ok(Target {
        label: "cluster".to_owned(),
        endpoints: endpoints(&urls, &signer)?,
        pids,
    })
}

/// A temporary directory, removed on drop.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("arbor-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A server this run started: its own executable, stopped by closing its
/// standard input (`--stop-on-stdin-close`), killed if it lingers.
struct Spawned {
    child: Child,
    lines: Vec<String>,
}

impl Spawned {
    fn start(spawn: Spawn, dir: &Path) -> anyhow::Result<Spawned> {
        let exe = std::env::current_exe().context("finding the arbor executable")?;
        let mut command = Command::new(exe);
        let ready = match spawn {
            Spawn::Serve => {
                command
                    .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
                    .arg(dir.join(SERVE_DATA_DIR));
                "secret key:"
            }
            Spawn::DevCluster => {
                command
                    .args(["dev-cluster", "--dir"])
                    .arg(dir.join("cluster"));
                "{"
            }
        };
        command
            .arg("--stop-on-stdin-close")
            .env_remove("ARBOR_ACCESS_KEY")
            .env_remove("ARBOR_SECRET_KEY")
            .env_remove("ARBOR_CONFIG")
            .env(
                "ARBOR_LOG",
                std::env::var("ARBOR_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().context("starting the server")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut spawned = Spawned {
            child,
            lines: Vec::new(),
        };
        let deadline = Instant::now() + SPAWN_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with(ready);
                    spawned.lines.push(line);
                    if done {
                        eprintln!("bench: started {spawn:?} (pid {})", spawned.child.id());
                        return Ok(spawned);
                    }
                }
                Err(_) => {
                    spawned.stop();
                    bail!(
                        "{spawn:?} did not start within {SPAWN_TIMEOUT:?}: {:?}",
                        spawned.lines
                    );
                }
            }
        }
    }

    fn field(&self, prefix: &str) -> anyhow::Result<String> {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_owned())
            .with_context(|| format!("the server printed no {prefix:?}"))
    }

    /// Sends SIGTERM (through kill(1): this crate has no `unsafe`) and
    /// waits up to [`STOP_TIMEOUT`] for it to exit; an error if it had to
    /// be killed.
    fn terminate(&mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {pid}: {status}");
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        bail!("pid {pid} did not exit within {STOP_TIMEOUT:?} of SIGTERM")
    }

    /// Closes its stdin (a graceful shutdown) and waits; kills it after
    /// [`STOP_TIMEOUT`].
    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// The short commit of the git checkout of the current directory, else of
/// the one the binary sits in (`target/release/arbor` run from elsewhere),
/// if any.
fn commit() -> Option<String> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(std::path::Path::to_path_buf));
    [Some(std::path::PathBuf::from(".")), exe_dir]
        .into_iter()
        .flatten()
        .find_map(|dir| {
            let out = Command::new("git")
                .arg("-C")
                .arg(&dir)
                .args(["rev-parse", "--short", "HEAD"])
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let text = String::from_utf8(out.stdout).ok()?;
            (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
        })
}

/// `2026-12-05 13:00 UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let d = signer::amz_date(secs);
    format!(
        "{}-{}-{} {}:{} UTC",
        &d[..4],
        &d[4..6],
        &d[6..8],
        &d[9..11],
        &d[11..13]
    )
}
