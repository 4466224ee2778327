//! Harness for end-to-end tests: runs the real `arbor` binary on loopback
//! with a temporary data directory and talks to it only over the network.
//! `linearizability` (the `arbor-linearizability` crate) checks histories
//! of operations the tests recorded.

pub use arbor_linearizability as linearizability;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long `arbor serve` may take to print its endpoint.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful shutdown may take before the test fails.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The `arbor` binary: `$ARBOR_BIN`, else beside the test executable's
/// `deps/` directory (where `cargo test --workspace` puts it).
pub fn arbor_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("ARBOR_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no profile directory")?;
    let candidate = profile_dir.join("arbor");
    if !candidate.exists() {
        bail!(
            "{} not found: run the suite with `cargo test --workspace` (which builds it) or set ARBOR_BIN",
            candidate.display()
        );
    }
    Ok(candidate)
}

/// A running `arbor` process of any subcommand, stopped (SIGKILL) on drop.
pub struct ArborProcess {
    child: Option<Child>,
    /// What it printed on stdout up to the line it was waited for.
    pub lines: Vec<String>,
}

/// The cluster secret every process a test starts is given (through
/// `ARBOR_CLUSTER_SECRET_FILE`): one file in the temporary directory,
/// shared by every test binary and run (a test secret guards nothing), so
/// runs leave no file behind each. Made once, atomically: a fresh secret
/// is written under a name of this process and hard-linked into place,
/// which fails if another process got there first.
pub fn cluster_secret_file() -> &'static Path {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::temp_dir().join("arbor-compat-tests.cluster-secret");
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 64) {
            return path;
        }
        let mut random = [0u8; 32];
        let read = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random));
        read.expect("random bytes for the cluster secret");
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let mine = std::env::temp_dir().join(format!(
            "arbor-compat-tests.cluster-secret.{}",
            std::process::id()
        ));
        std::fs::write(&mine, hex).expect("writing the cluster secret");
        let linked = std::fs::hard_link(&mine, &path);
        let _ = std::fs::remove_file(&mine);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("placing the cluster secret at {}: {e}", path.display()),
        }
        path
    })
}

/// The cluster authentication headers for `method target` with a body
/// hashing to `content` (hex; see `arbor_net::auth`), under `secret`.
pub fn cluster_auth(
    secret: &arbor_net::auth::ClusterSecret,
    method: &str,
    target: &str,
    content: &str,
) -> Vec<(String, String)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    vec![
        (
            arbor_net::auth::AUTH_HEADER.to_owned(),
            secret.sign(method, target, content, now),
        ),
        (
            arbor_net::auth::CONTENT_SHA256_HEADER.to_owned(),
            content.to_owned(),
        ),
    ]
}

/// [`cluster_auth`] under the tests' own secret ([`cluster_secret_file`]).
pub fn test_cluster_auth(method: &str, target: &str, content: &str) -> Vec<(String, String)> {
    let secret = arbor_net::auth::ClusterSecret::read(cluster_secret_file())
        .expect("the tests' cluster secret");
    cluster_auth(&secret, method, target, content)
}

/// `arbor` with the tests' cluster secret in its environment.
pub fn arbor_command() -> anyhow::Result<Command> {
    let mut command = Command::new(arbor_binary()?);
    command.env("ARBOR_CLUSTER_SECRET_FILE", cluster_secret_file());
    Ok(command)
}

impl ArborProcess {
    /// Starts `arbor ARGS` and waits until it prints a line starting with
    /// `ready` on stdout.
    pub fn start(args: &[&str], ready: &str) -> anyhow::Result<ArborProcess> {
        let mut command = arbor_command()?;
        command
            .args(args)
            .env_remove("ARBOR_ACCESS_KEY")
            .env_remove("ARBOR_SECRET_KEY")
            .env(
                "ARBOR_LOG",
                std::env::var("ARBOR_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().context("spawning arbor")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = ArborProcess {
            child: Some(child),
            lines: Vec::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines_rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => bail!(
                    "arbor {args:?} did not print {ready:?} within {START_TIMEOUT:?}: {:?}",
                    process.lines
                ),
            };
            let done = line.starts_with(ready);
            process.lines.push(line);
            if done {
                return Ok(process);
            }
        }
    }

    /// The value after `prefix` on the first printed line starting with it.
    pub fn value(&self, prefix: &str) -> Option<String> {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_owned())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The process's exit status if it exits within `timeout` (it was not
    /// asked to); `None` while it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let child = self.child.as_mut().context("already stopped")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("already stopped")?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("arbor did not stop within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ArborProcess {
    /// A test that fails midway must not leave a process behind.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running `arbor serve` with what its banner said.
pub struct ArborServer {
    process: ArborProcess,
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// Everything the server printed on stdout up to its secret key.
    pub banner: Vec<String>,
}

impl ArborServer {
    /// Starts `arbor serve` on an ephemeral loopback port with `data_dir`,
    /// plus `extra_args`, and waits for its banner.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> anyhow::Result<ArborServer> {
        let data_dir = data_dir.to_str().context("data dir is not UTF-8")?;
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir];
        args.extend_from_slice(extra_args);
        let process = ArborProcess::start(&args, "secret key:")?;
        let field = |prefix: &str| {
            process
                .value(prefix)
                .with_context(|| format!("banner has no {prefix:?}"))
        };
        let server = ArborServer {
            endpoint: field("endpoint:")?,
            access_key: field("access key:")?,
            secret_key: field("secret key:")?,
            banner: process.lines.clone(),
            process,
        };
        anyhow::ensure!(
            server.endpoint.starts_with("http://127.0.0.1:"),
            "bad endpoint {:?}",
            server.endpoint
        );
        Ok(server)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// See [`ArborProcess::wait_exit`].
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
        self.process.wait_exit(timeout)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(self) -> anyhow::Result<ExitStatus> {
        self.process.stop()
    }
}

/// The chunk files under a chunk store's root (`<root>/xx/<32 hex digits>`),
/// sorted; temporaries and quarantined chunks are not counted.
pub fn chunk_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(dirs) = std::fs::read_dir(root) else {
        return files;
    };
    for dir in dirs.flatten() {
        if dir.file_name().len() != 2 {
            continue;
        }
        for file in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = file.file_name();
            let name = name.to_string_lossy();
            if name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                files.push(file.path());
            }
        }
    }
    files.sort();
    files
}

/// Credentials every gateway of an [`ArborCluster`] uses.
pub const CLUSTER_ACCESS_KEY: &str = "CLUSTERTESTKEY000001";
pub const CLUSTER_SECRET_KEY: &str = "cluster-test-secret-key-0000000000000001";

/// What an [`ArborCluster`] runs: one chunk server per zone, and extra
/// flags for each role (timeouts shortened for tests, for instance).
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    pub zones: Vec<String>,
    pub meta_args: Vec<String>,
    pub chunk_args: Vec<String>,
    pub gateway_args: Vec<String>,
}

/// One chunk server of an [`ArborCluster`].
pub struct ChunkProcess {
    pub zone: String,
    pub data: PathBuf,
    pub addr: String,
    pub process: Option<ArborProcess>,
}

/// A cluster of real processes on loopback: one `arbor meta` (bootstrapped,
/// no fsync), a chunk server per zone registered with it, one
/// `arbor gateway`; all stopped (SIGKILL) on drop.
pub struct ArborCluster {
    pub meta: ArborProcess,
    pub meta_addr: String,
    pub chunks: Vec<ChunkProcess>,
    pub gateway: ArborProcess,
    pub endpoint: String,
    chunk_args: Vec<String>,
    gateway_args: Vec<String>,
}

impl ArborCluster {
    /// Starts everything under `dir` and waits until each process is ready
    /// (the chunk servers may take a heartbeat longer to be ONLINE).
    pub fn start(dir: &Path, options: &ClusterOptions) -> anyhow::Result<ArborCluster> {
        let meta_dir = path_str(&dir.join("meta"))?;
        let mut args = vec![
            "meta",
            "--node-id",
            "1",
            "--bootstrap",
            "--listen",
            "127.0.0.1:0",
            "--no-fsync",
            "--data-dir",
            &meta_dir,
        ];
        args.extend(options.meta_args.iter().map(String::as_str));
        let meta = ArborProcess::start(&args, "advertised:")?;
        let meta_addr = meta.value("advertised:").context("meta address")?;
        let mut chunks = Vec::new();
        for zone in &options.zones {
            let data = dir.join(format!("chunk-{zone}"));
            let process = start_chunk(&data, zone, &meta_addr, &options.chunk_args)?;
            chunks.push(ChunkProcess {
                zone: zone.clone(),
                addr: process
                    .value("chunk server listening:")
                    .context("chunk address")?,
                data,
                process: Some(process),
            });
        }
        let gateway_dir = dir.join("gateway");
        std::fs::create_dir_all(&gateway_dir)?;
        std::fs::write(
            gateway_dir.join("credentials.json"),
            format!(
                "{{\"access_key\":\"{CLUSTER_ACCESS_KEY}\",\"secret_key\":\"{CLUSTER_SECRET_KEY}\"}}"
            ),
        )?;
        let mut gateway_args = vec![
            "gateway".to_owned(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--meta".to_owned(),
            meta_addr.clone(),
            "--data-dir".to_owned(),
            path_str(&gateway_dir)?,
        ];
        gateway_args.extend(options.gateway_args.iter().cloned());
        let (gateway, endpoint) = start_gateway(&gateway_args)?;
        Ok(ArborCluster {
            meta,
            meta_addr,
            chunks,
            gateway,
            endpoint,
            chunk_args: options.chunk_args.clone(),
            gateway_args,
        })
    }

    /// Kills the gateway with SIGKILL, as a crash would.
    pub fn kill_gateway(&mut self) -> anyhow::Result<()> {
        let pid = self.gateway.pid().context("gateway not running")?;
        let status = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -KILL {pid}");
        Ok(())
    }

    /// Starts a new gateway in place of the old one (on a new port).
    pub fn restart_gateway(&mut self) -> anyhow::Result<()> {
        let (gateway, endpoint) = start_gateway(&self.gateway_args)?;
        // The old process, killed or not, is reaped here.
        drop(std::mem::replace(&mut self.gateway, gateway));
        self.endpoint = endpoint;
        Ok(())
    }

    /// The flags chunk servers get from their next (re)start on.
    pub fn set_chunk_args(&mut self, args: Vec<String>) {
        self.chunk_args = args;
    }

    /// Stops the chunk server of `zone` (SIGTERM), keeping its data.
    pub fn stop_chunk(&mut self, zone: &str) -> anyhow::Result<()> {
        let chunk = self.chunk_mut(zone)?;
        let process = chunk.process.take().context("not running")?;
        anyhow::ensure!(process.stop()?.success(), "chunk server {zone} failed");
        Ok(())
    }

    /// Kills the chunk server of `zone` with SIGKILL, as a crash would,
    /// keeping its data.
    pub fn kill_chunk(&mut self, zone: &str) -> anyhow::Result<()> {
        let chunk = self.chunk_mut(zone)?;
        let process = chunk.process.take().context("not running")?;
        // Dropping an ArborProcess sends SIGKILL and reaps it.
        drop(process);
        Ok(())
    }

    /// Starts the chunk server of `zone` again on its data directory.
    pub fn restart_chunk(&mut self, zone: &str) -> anyhow::Result<()> {
        let (meta, args) = (self.meta_addr.clone(), self.chunk_args.clone());
        let chunk = self.chunk_mut(zone)?;
        anyhow::ensure!(chunk.process.is_none(), "already running");
        chunk.process = Some(start_chunk(&chunk.data, zone, &meta, &args)?);
        Ok(())
    }

    /// Stops every process gracefully, gateway first.
    pub fn stop(self) -> anyhow::Result<()> {
        anyhow::ensure!(self.gateway.stop()?.success(), "gateway failed");
        for chunk in self.chunks {
            if let Some(process) = chunk.process {
                anyhow::ensure!(process.stop()?.success(), "chunk server failed");
            }
        }
        anyhow::ensure!(self.meta.stop()?.success(), "meta failed");
        Ok(())
    }

    fn chunk_mut(&mut self, zone: &str) -> anyhow::Result<&mut ChunkProcess> {
        self.chunks
            .iter_mut()
            .find(|c| c.zone == zone)
            .with_context(|| format!("no chunk server in zone {zone}"))
    }
}

fn start_gateway(args: &[String]) -> anyhow::Result<(ArborProcess, String)> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let gateway = ArborProcess::start(&args, "gateway listening:")?;
    let endpoint = gateway
        .value("gateway listening:")
        .context("gateway endpoint")?;
    Ok((gateway, endpoint))
}

fn path_str(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

fn start_chunk(
    data: &Path,
    zone: &str,
    meta: &str,
    extra: &[String],
) -> anyhow::Result<ArborProcess> {
    let data = path_str(data)?;
    let mut args = vec![
        "chunk",
        "--listen",
        "127.0.0.1:0",
        "--meta",
        meta,
        "--zone",
        zone,
        "--data-dir",
        &data,
    ];
    args.extend(extra.iter().map(String::as_str));
    ArborProcess::start(&args, "chunk server listening:")
}

/// A response read by [`raw_request`].
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The `<Code>` of an S3 error body.
    pub fn error_code(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.body);
        let start = text.find("<Code>")? + "<Code>".len();
        let end = text[start..].find("</Code>")? + start;
        Some(text[start..end].to_owned())
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`), for
/// presigned URLs and for input no SDK would send. `target` is the path and
/// query; `endpoint` is `http://host:port`.
pub fn raw_request(
    endpoint: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<RawResponse> {
    use std::io::{Read, Write};
    let authority = endpoint
        .strip_prefix("http://")
        .context("endpoint must be http://")?;
    let mut stream = std::net::TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {authority}\r\n"));
    }
    request.push_str("Connection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// Parses a raw HTTP/1.1 response (status line, headers, body; a chunked
/// body is decoded).
pub fn parse_response(raw: &[u8]) -> anyhow::Result<RawResponse> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no header terminator")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().context("no status line")?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .context("no status")?
        .parse()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        anyhow::ensure!(data.len() >= size + 2, "truncated chunk");
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
