//! `arbor dev-cluster`: a whole cluster on loopback, one process per node,
//! for development and fault-injection tests.
//!
//! It runs its own executable with the `meta`, `chunk` and `gateway`
//! roles, each with its data directory under `--dir`, forms the metadata
//! group (the first node bootstraps, the others join as learners and are
//! made voters), waits until every chunk server is ONLINE and every
//! gateway listens, prints one JSON object describing the cluster on
//! stdout, and keeps running until SIGINT or SIGTERM; then it stops the
//! gateways, the chunk servers and the meta nodes, in that order.
//!
//! `--dir` keeps everything a restart needs: `cluster.json` (the ports,
//! and whether the group was formed), `credentials.json` (mode 0600), one
//! data directory per node and one log per process under `logs/`. Started
//! again on the same directory, the same nodes come back on the same ports
//! with their data; the group is already formed, so nothing bootstraps.
//!
//! Children must not outlive it, and `unsafe` (`prctl(PR_SET_PDEATHSIG)`)
//! is not allowed here: each child gets `--stop-on-stdin-close` and a pipe
//! as its standard input, of which only this process holds the write end.
//! Closing it, deliberately at shutdown or by the kernel when this process
//! dies (even by SIGKILL), starts the child's graceful shutdown exactly as
//! SIGTERM would. A child still running [`STOP_TIMEOUT`] later is killed.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arbor_gateway::auth::{self, Credentials};
use arbor_gateway::sealing::NodeKey;
use arbor_meta::MetaClient;
use arbor_meta::records::ServerStatus;
use arbor_net::auth::ClusterSecret;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::DevClusterConfig;

/// The ports and state of the cluster, in `--dir`.
pub const LAYOUT_FILE: &str = "cluster.json";
/// One log per process (its stdout and stderr), in `--dir`.
pub const LOG_DIR: &str = "logs";
/// The flag that makes a role stop when its standard input closes.
pub const STOP_ON_STDIN_CLOSE: &str = "--stop-on-stdin-close";
/// How long the whole cluster may take to come up: a meta node leads in
/// about 1.5 s and a chunk server registers at once, so a minute means
/// something is wrong (a port taken, a data directory from elsewhere).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a child gets to stop gracefully before it is killed: longer
/// than the gateway's 20 s drain.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(25);
/// Most replicas a gateway of the dev cluster writes per chunk.
const REPLICATION_FACTOR_MAX: u64 = 3;
/// The cluster's secret, in `--dir`.
const CLUSTER_SECRET_FILE: &str = "cluster.secret";
/// Pause between two looks at a log, a child or the group.
const POLL: Duration = Duration::from_millis(50);
/// One status or membership call; the loop around it retries.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Meta,
    Chunk,
    Gateway,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Meta => "meta",
            Role::Chunk => "chunk",
            Role::Gateway => "gateway",
        }
    }

    /// The stdout line (prefix) a role prints with its address once it
    /// serves.
    fn banner(self) -> &'static str {
        match self {
            Role::Meta => "advertised:",
            Role::Chunk => "chunk server listening:",
            Role::Gateway => "gateway listening: http://",
        }
    }
}

/// What `cluster.json` holds: each process's port (0 until first bound),
/// and whether the metadata group was formed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    pub meta: Vec<u16>,
    pub chunk: Vec<u16>,
    pub gateway: Vec<u16>,
    pub formed: bool,
}

impl Layout {
    /// The layout for `settings`: the recorded one if there is one (which
    /// the settings must agree with), else a new one.
    pub fn plan(settings: &DevClusterConfig, recorded: Option<Layout>) -> anyhow::Result<Layout> {
        let counts = [settings.meta, settings.chunk, settings.gateways];
        let mut planned = Layout {
            meta: vec![0; usize::try_from(counts[0])?],
            chunk: vec![0; usize::try_from(counts[1])?],
            gateway: vec![0; usize::try_from(counts[2])?],
            formed: false,
        };
        if settings.base_port != 0 {
            let mut port = settings.base_port;
            for slot in planned.ports_mut() {
                *slot = port;
                port = port.checked_add(1).context("ports past 65535")?;
            }
        }
        let Some(recorded) = recorded else {
            return Ok(planned);
        };
        let recorded_counts = [
            recorded.meta.len(),
            recorded.chunk.len(),
            recorded.gateway.len(),
        ];
        let planned_counts = [
            planned.meta.len(),
            planned.chunk.len(),
            planned.gateway.len(),
        ];
        if recorded_counts != planned_counts {
            bail!(
                "this directory holds a cluster of {} meta nodes, {} chunk servers and {} \
                 gateways: start it with --meta {} --chunk {} --gateways {}, or use another --dir",
                recorded_counts[0],
                recorded_counts[1],
                recorded_counts[2],
                recorded_counts[0],
                recorded_counts[1],
                recorded_counts[2],
            );
        }
        if settings.base_port == 0 {
            return Ok(recorded);
        }
        let differs = recorded
            .ports()
            .zip(planned.ports())
            .any(|(old, new)| old != 0 && old != new);
        if differs {
            bail!(
                "this directory's cluster runs on ports {:?}, not from --base-port {}: \
                 start it without --base-port (or with its own), or use another --dir",
                recorded.ports().collect::<Vec<_>>(),
                settings.base_port
            );
        }
        planned.formed = recorded.formed;
        Ok(planned)
    }

    fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.meta
            .iter()
            .chain(&self.chunk)
            .chain(&self.gateway)
            .copied()
    }

    fn ports_mut(&mut self) -> impl Iterator<Item = &mut u16> + '_ {
        self.meta
            .iter_mut()
            .chain(&mut self.chunk)
            .chain(&mut self.gateway)
    }

    fn slot(&mut self, role: Role, index: usize) -> Option<&mut u16> {
        match role {
            Role::Meta => self.meta.get_mut(index),
            Role::Chunk => self.chunk.get_mut(index),
            Role::Gateway => self.gateway.get_mut(index),
        }
    }

    fn load(dir: &Path) -> anyhow::Result<Option<Layout>> {
        let path = dir.join(LAYOUT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("{}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("{}", path.display())),
        }
    }

    /// Written whole (temporary file, fsync, rename), so a crash leaves
    /// the old layout or the new one.
    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(LAYOUT_FILE);
        let tmp = dir.join(format!("{LAYOUT_FILE}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(self)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("{}", path.display()))?;
        Ok(())
    }
}

/// One child process.
struct Process {
    role: Role,
    /// Meta: node id; chunk: server id (once registered); gateway: 1, 2...
    id: u64,
    index: usize,
    name: String,
    data_dir: PathBuf,
    log: PathBuf,
    /// Where the log stood when the child started: its banner is after.
    log_start: u64,
    addr: String,
    child: Child,
    /// The write end of the child's standard input; dropping it stops the
    /// child.
    control: Option<ChildStdin>,
    exited: bool,
}

impl Process {
    /// Whether it has exited (reaped); logs an unexpected exit once.
    fn check_exit(&mut self) -> bool {
        if self.exited {
            return true;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exited = true;
                if self.control.is_some() {
                    tracing::warn!(
                        process = %self.name,
                        pid = self.child.id(),
                        %status,
                        log = %self.log.display(),
                        "process exited"
                    );
                }
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(process = %self.name, error = %e, "cannot wait for the process");
                false
            }
        }
    }

    /// The value after the role's banner in the child's log, once it is
    /// there.
    fn banner(&self) -> anyhow::Result<Option<String>> {
        let mut file = std::fs::File::open(&self.log)?;
        let mut text = Vec::new();
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(self.log_start))?;
        file.read_to_end(&mut text)?;
        let text = String::from_utf8_lossy(&text);
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix(self.role.banner()))
            .map(|value| value.trim().to_owned()))
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "role": self.role.name(),
            "id": self.id,
            "address": self.addr,
            "pid": self.child.id(),
            "data_dir": self.data_dir,
            "log": self.log,
        })
    }
}

/// The processes started, stopped (killed, at worst) when dropped.
struct Cluster {
    dir: PathBuf,
    exe: PathBuf,
    processes: Vec<Process>,
    /// The cluster's secret and its file in `dir`, which every process
    /// is given.
    secret: ClusterSecret,
    secret_file: PathBuf,
}

impl Drop for Cluster {
    /// An error or a panic on the way must not leave a child behind.
    fn drop(&mut self) {
        for process in &mut self.processes {
            if !process.check_exit() {
                let _ = process.child.kill();
                let _ = process.child.wait();
            }
        }
    }
}

/// Runs until `shutdown` is cancelled, with settings `main` has validated
/// and logged.
pub async fn run(settings: DevClusterConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let dir = settings.dir.clone().context("--dir is required")?;
    std::fs::create_dir_all(dir.join(LOG_DIR))
        .with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::fs::canonicalize(&dir)?;
    let (credentials, _) = auth::load_or_create(&dir, None)?;
    // The gateways share --dir: made once here, before any of them starts.
    NodeKey::load_or_create(&dir, &arbor_meta::clock::OsEntropy)?;
    let recorded = Layout::load(&dir)?;
    let restarted = recorded.as_ref().is_some_and(|l| l.formed);
    let mut layout = Layout::plan(&settings, recorded)?;
    layout.save(&dir)?;
    // Made once, kept with the cluster: a restart uses the same one.
    let secret_file = settings
        .cluster_secret_file
        .clone()
        .unwrap_or_else(|| dir.join(CLUSTER_SECRET_FILE));
    let secret = if secret_file.exists() {
        ClusterSecret::read(&secret_file)
    } else {
        ClusterSecret::create(&secret_file)
    }
    .with_context(|| format!("the cluster secret {}", secret_file.display()))?;
    let mut cluster = Cluster {
        exe: std::env::current_exe().context("finding the arbor executable")?,
        dir: dir.clone(),
        processes: Vec::new(),
        secret,
        secret_file,
    };
    let deadline = Instant::now() + START_TIMEOUT;
    let started = tokio::select! {
        started = cluster.start(&settings, &mut layout, &credentials, deadline) => started,
        () = shutdown.cancelled() => Err(anyhow::anyhow!("stopped while starting")),
    };
    if let Err(e) = started {
        cluster.stop().await;
        if shutdown.is_cancelled() {
            return Ok(());
        }
        return Err(e);
    }
    let report = cluster.report(&credentials, restarted);
    // One line on stdout, for scripts and tests.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{report}")?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(dir = %dir.display(), "dev cluster up");
    cluster.supervise(&shutdown).await;
    cluster.stop().await;
    Ok(())
}

impl Cluster {
    async fn start(
        &mut self,
        settings: &DevClusterConfig,
        layout: &mut Layout,
        credentials: &Credentials,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        // The metadata group.
        let bootstrap = !layout.formed;
        for index in 0..layout.meta.len() {
            let id = u64::try_from(index)? + 1;
            let data_dir = self.dir.join(format!("meta-{id}"));
            let mut args = vec![
                "--node-id".into(),
                id.to_string().into(),
                "--data-dir".into(),
                data_dir.clone().into_os_string(),
            ];
            if bootstrap && id == 1 {
                args.push("--bootstrap".into());
            }
            if settings.no_fsync {
                args.push("--no-fsync".into());
            }
            self.spawn(Role::Meta, index, id, layout, data_dir, args, None)?;
        }
        self.wait_banners(Role::Meta, layout, deadline).await?;
        let members: Vec<(u64, String)> = self
            .of(Role::Meta)
            .map(|p| (p.id, p.addr.clone()))
            .collect();
        form_group(&members, &self.secret, deadline).await?;
        if !layout.formed {
            layout.formed = true;
            layout.save(&self.dir)?;
        }
        let meta_addrs: Vec<String> = members.into_iter().map(|(_, addr)| addr).collect();
        let meta_list = meta_addrs.join(",");

        // Chunk servers, one zone each, so that replicas spread.
        for index in 0..layout.chunk.len() {
            let number = u64::try_from(index)? + 1;
            let data_dir = self.dir.join(format!("chunk-{number}"));
            let args = vec![
                "--meta".into(),
                meta_list.clone().into(),
                "--zone".into(),
                format!("zone-{number}").into(),
                "--data-dir".into(),
                data_dir.clone().into_os_string(),
            ];
            self.spawn(Role::Chunk, index, number, layout, data_dir, args, None)?;
        }
        self.wait_banners(Role::Chunk, layout, deadline).await?;
        self.wait_chunks_online(&meta_addrs, deadline).await?;

        // Gateways: no state; credentials.json in --dir is theirs too.
        let factor = settings.chunk.min(REPLICATION_FACTOR_MAX);
        for index in 0..layout.gateway.len() {
            let number = u64::try_from(index)? + 1;
            let args = vec![
                "--meta".into(),
                meta_list.clone().into(),
                "--replication-factor".into(),
                factor.to_string().into(),
                "--data-dir".into(),
                self.dir.clone().into_os_string(),
            ];
            let dir = self.dir.clone();
            self.spawn(
                Role::Gateway,
                index,
                number,
                layout,
                dir,
                args,
                Some(credentials),
            )?;
        }
        self.wait_banners(Role::Gateway, layout, deadline).await
    }

    /// Starts `arbor ROLE ARGS` on the layout's port for it (0: a free
    /// one), its stdout and stderr appended to its log, with no `ARBOR_*`
    /// setting of ours but the log filter (and the credentials, if given).
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &mut self,
        role: Role,
        index: usize,
        id: u64,
        layout: &mut Layout,
        data_dir: PathBuf,
        args: Vec<OsString>,
        credentials: Option<&Credentials>,
    ) -> anyhow::Result<()> {
        let port = *layout.slot(role, index).context("no such process")?;
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let name = format!("{}-{}", role.name(), index + 1);
        let log = self.dir.join(LOG_DIR).join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let log_start = file.metadata()?.len();
        let mut command = Command::new(&self.exe);
        command
            .arg(role.name())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--cluster-secret-file")
            .arg(&self.secret_file)
            .args(args)
            .arg(STOP_ON_STDIN_CLOSE)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file));
        for (variable, _) in std::env::vars_os() {
            let variable = variable.to_string_lossy();
            if variable.starts_with("ARBOR_") && variable != "ARBOR_LOG" {
                command.env_remove(variable.as_ref());
            }
        }
        // Plain text in the log files.
        command.env("NO_COLOR", "1");
        if let Some(credentials) = credentials {
            command
                .env("ARBOR_ACCESS_KEY", &credentials.access_key)
                .env("ARBOR_SECRET_KEY", &credentials.secret_key);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        tracing::info!(process = %name, pid = child.id(), "started");
        let control = child.stdin.take();
        self.processes.push(Process {
            role,
            id,
            index,
            name,
            data_dir,
            log,
            log_start,
            addr: String::new(),
            child,
            control,
            exited: false,
        });
        Ok(())
    }

    fn of(&self, role: Role) -> impl Iterator<Item = &Process> {
        self.processes.iter().filter(move |p| p.role == role)
    }

    /// Waits until every process of `role` has printed its address, and
    /// records its port.
    async fn wait_banners(
        &mut self,
        role: Role,
        layout: &mut Layout,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        for process in self.processes.iter_mut().filter(|p| p.role == role) {
            let addr = loop {
                if let Some(addr) = process.banner()? {
                    break addr;
                }
                if process.check_exit() {
                    bail!(
                        "{} exited before it served; see {}",
                        process.name,
                        process.log.display()
                    );
                }
                if Instant::now() > deadline {
                    bail!(
                        "{} did not serve within {START_TIMEOUT:?}; see {}",
                        process.name,
                        process.log.display()
                    );
                }
                tokio::time::sleep(POLL).await;
            };
            let port: u16 = addr
                .rsplit_once(':')
                .and_then(|(_, port)| port.parse().ok())
                .with_context(|| format!("{}: no port in {addr:?}", process.name))?;
            let slot = layout
                .slot(role, process.index)
                .context("no such process")?;
            if *slot != port {
                *slot = port;
                layout.save(&self.dir)?;
            }
            process.addr = addr;
        }
        Ok(())
    }

    /// Waits until the group lists every chunk server ONLINE at its
    /// address, and takes their server ids.
    async fn wait_chunks_online(
        &mut self,
        meta: &[String],
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let client = meta_client(meta.to_vec(), &self.secret);
        loop {
            let listed = tokio::time::timeout(CALL_TIMEOUT, client.chunk_servers()).await;
            if let Ok(Ok(servers)) = &listed {
                let mut missing = 0;
                for process in self.processes.iter_mut().filter(|p| p.role == Role::Chunk) {
                    match servers
                        .iter()
                        .find(|s| s.addr == process.addr && s.status == ServerStatus::Online)
                    {
                        Some(server) => process.id = server.id,
                        None => missing += 1,
                    }
                }
                if missing == 0 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("chunk servers not all ONLINE within {START_TIMEOUT:?}: {listed:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The JSON object printed once the cluster is up.
    fn report(&self, credentials: &Credentials, restarted: bool) -> serde_json::Value {
        serde_json::json!({
            "dir": self.dir,
            "pid": std::process::id(),
            "restarted": restarted,
            "s3_endpoints": self
                .of(Role::Gateway)
                .map(|p| format!("http://{}", p.addr))
                .collect::<Vec<_>>(),
            "meta_addresses": self.of(Role::Meta).map(|p| p.addr.clone()).collect::<Vec<_>>(),
            "access_key": credentials.access_key,
            "secret_key": credentials.secret_key,
            "credentials_file": self.dir.join(auth::CREDENTIALS_FILE),
            "cluster_secret_file": self.secret_file,
            "processes": self.processes.iter().map(Process::json).collect::<Vec<_>>(),
        })
    }

    /// Until `shutdown`: notes (once) any process that exits.
    async fn supervise(&mut self, shutdown: &CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            for process in &mut self.processes {
                process.check_exit();
            }
        }
    }

    /// Stops the gateways, then the chunk servers, then the meta nodes:
    /// each group is told to stop (its pipe closed), and what still runs
    /// [`STOP_TIMEOUT`] later is killed.
    async fn stop(&mut self) {
        for role in [Role::Gateway, Role::Chunk, Role::Meta] {
            for process in self.processes.iter_mut().filter(|p| p.role == role) {
                if !process.check_exit() {
                    tracing::info!(process = %process.name, pid = process.child.id(), "stopping");
                }
                process.control = None;
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                let running = self
                    .processes
                    .iter_mut()
                    .filter(|p| p.role == role)
                    .fold(0, |running, p| running + usize::from(!p.check_exit()));
                if running == 0 {
                    break;
                }
                if Instant::now() > deadline {
                    for process in self.processes.iter_mut().filter(|p| p.role == role) {
                        if !process.check_exit() {
                            tracing::warn!(
                                process = %process.name,
                                pid = process.child.id(),
                                "still running {STOP_TIMEOUT:?} after stop: killed"
                            );
                            let _ = process.child.kill();
                            let _ = process.child.wait();
                            process.exited = true;
                        }
                    }
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

/// Forms the metadata group of `members` (id, address), or checks it is
/// formed: once a node leads, the members it does not know are added as
/// learners, then all are made voters. Done when the leader's voters are
/// exactly the members.
async fn form_group(
    members: &[(u64, String)],
    secret: &ClusterSecret,
    deadline: Instant,
) -> anyhow::Result<()> {
    let all: BTreeSet<u64> = members.iter().map(|(id, _)| *id).collect();
    let client = meta_client(
        members.iter().map(|(_, addr)| addr.clone()).collect(),
        secret,
    );
    let mut last_problem = String::from("no leader yet");
    loop {
        if Instant::now() > deadline {
            bail!("the metadata group did not form within {START_TIMEOUT:?}: {last_problem}");
        }
        let mut leader = None;
        for (_, addr) in members {
            let node = meta_client(vec![addr.clone()], secret);
            if let Ok(Ok(status)) = tokio::time::timeout(CALL_TIMEOUT, node.status()).await
                && status.state == "Leader"
            {
                leader = Some(status);
                break;
            }
        }
        let Some(leader) = leader else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        let voters: BTreeSet<u64> = leader.voters.iter().map(|(id, _)| *id).collect();
        if voters == all {
            return Ok(());
        }
        let known: BTreeSet<u64> = voters
            .iter()
            .copied()
            .chain(leader.learners.iter().map(|(id, _)| *id))
            .collect();
        let mut result = Ok(());
        for (id, addr) in members.iter().filter(|(id, _)| !known.contains(id)) {
            tracing::info!(node_id = id, addr, "adding a learner");
            result = call(client.add_learner(*id, addr)).await;
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            tracing::info!(voters = ?all, "changing membership");
            result = call(client.change_membership(all.clone())).await;
        }
        if let Err(e) = result {
            last_problem = format!("{e:#}");
            tracing::info!(problem = %last_problem, "forming the group: retrying");
            tokio::time::sleep(POLL).await;
        }
    }
}

/// One membership call, bounded.
async fn call(future: impl Future<Output = arbor_meta::Result<()>>) -> anyhow::Result<()> {
    const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(20);
    match tokio::time::timeout(MEMBERSHIP_TIMEOUT, future).await {
        Ok(result) => result.map_err(|e| anyhow::anyhow!("{e}")),
        Err(_) => bail!("no answer within {MEMBERSHIP_TIMEOUT:?}"),
    }
}

/// With `--stop-on-stdin-close`: cancels `shutdown` once standard input
/// reaches its end, as SIGTERM would. `arbor dev-cluster` gives each child
/// a pipe, so a child stops when the dev cluster closes it or dies.
pub fn stop_when_stdin_closes(shutdown: CancellationToken) {
    let spawned = std::thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buffer = [0_u8; 256];
            loop {
                match stdin.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            tracing::info!("standard input closed: shutting down");
            shutdown.cancel();
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot watch standard input");
    }
}

/// A client of the group at `addrs`, signing with the cluster's secret.
fn meta_client(addrs: Vec<String>, secret: &ClusterSecret) -> MetaClient {
    MetaClient::remote_with(
        addrs,
        arbor_meta::RemoteConfig {
            cluster_secret: Some(secret.clone()),
            ..arbor_meta::RemoteConfig::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(base_port: u16, meta: u64, chunk: u64, gateways: u64) -> DevClusterConfig {
        DevClusterConfig {
            dir: Some(PathBuf::from("d")),
            base_port,
            meta,
            chunk,
            gateways,
            no_fsync: false,
            cluster_secret_file: None,
        }
    }

    #[test]
    fn a_base_port_numbers_meta_then_chunk_then_gateways() {
        let layout = Layout::plan(&settings(9000, 3, 2, 2), None).expect("plan");
        assert_eq!(layout.meta, [9000, 9001, 9002]);
        assert_eq!(layout.chunk, [9003, 9004]);
        assert_eq!(layout.gateway, [9005, 9006]);
        assert!(!layout.formed);
        let free = Layout::plan(&settings(0, 1, 1, 1), None).expect("plan");
        assert_eq!(free.ports().collect::<Vec<_>>(), [0, 0, 0]);
    }

    #[test]
    fn a_restart_keeps_the_recorded_ports() {
        let recorded = Layout {
            meta: vec![4001],
            chunk: vec![4002],
            gateway: vec![0],
            formed: true,
        };
        let layout = Layout::plan(&settings(0, 1, 1, 1), Some(recorded.clone())).expect("plan");
        assert_eq!(layout, recorded);
        // The same base port agrees with them and fills the unknown one.
        let layout = Layout::plan(&settings(4001, 1, 1, 1), Some(recorded.clone())).expect("plan");
        assert_eq!(layout.gateway, [4003]);
        assert!(layout.formed);
    }

    #[test]
    fn a_restart_with_another_shape_or_ports_is_refused() {
        let recorded = Layout {
            meta: vec![4001, 4002, 4003],
            chunk: vec![4004],
            gateway: vec![4005],
            formed: true,
        };
        let e = Layout::plan(&settings(0, 1, 1, 1), Some(recorded.clone())).expect_err("shape");
        assert!(format!("{e}").contains("--meta 3"), "{e}");
        let e = Layout::plan(&settings(5000, 3, 1, 1), Some(recorded)).expect_err("ports");
        assert!(format!("{e}").contains("--base-port 5000"), "{e}");
    }
}
