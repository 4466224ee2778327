//! Faults on a real cluster: `arbor dev-cluster` (3 meta nodes, 3 chunk
//! servers, 2 gateways) with clients writing, reading, deleting and
//! conditionally writing a few keys through both gateways while a process
//! is killed (SIGKILL) or paused (SIGSTOP). Every history must be
//! linearizable (`arbor_compat_tests::linearizability`), every request
//! answered (no connection closed on a request), no 4xx but the ones the
//! register explains (404, 412, 409), every 5xx carry Retry-After, and
//! writes resume after a meta leader fault within `RESUME_MAX`.
//!
//! Scenarios that kill a process run the cluster with fsync on: with
//! `--no-fsync` a killed meta node loses what it had not written out, and
//! a cluster killed whole comes back with no metadata group.
//!
//! The scenarios share a lock: each runs alone, so a run on two cores
//! keeps its timing (about a minute for all five). `FAILOVER_RUNS=20 cargo
//! test -p arbor-compat-tests --test faults -- --ignored --nocapture
//! failover_time` measures failover (docs/benchmarks.md, "Failover").

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arbor_compat_tests::linearizability::{self, Call, Operation, Outcome, Value};
use arbor_compat_tests::{ArborProcess, arbor_command};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value as Json;

/// One scenario at a time (see the module doc).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const BUCKET: &str = "faults";
const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];
/// Clients per gateway.
const CLIENTS_PER_GATEWAY: usize = 3;
/// A client gives up on a request after this (the gateway must answer
/// before: it waits at most 10 s for a leader per metadata call, and a
/// conditional PUT makes two).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Every `LARGE_EVERY`th value is written as a chunked object.
const LARGE_EVERY: u64 = 5;
/// Above the inline limit (64 KiB): stored in a chunk.
const LARGE_SIZE: usize = 96 * 1024;
const SMALL_SIZE: usize = 64;
/// How soon after a leader is killed or paused a write must succeed
/// again. The group elects in under a second (docs/benchmarks.md); the
/// bound leaves room for a loaded two-core machine.
const RESUME_MAX: Duration = Duration::from_secs(3);
/// How long a meta node status query may take before the node counts as
/// not answering (it is paused, or dead).
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

// ------------------------------------------------------------------ cluster

/// A running dev cluster, plus the processes this test started again
/// itself after killing them (stopped on drop).
struct Cluster {
    dir: PathBuf,
    process: Option<ArborProcess>,
    info: Json,
    durable: bool,
    /// Processes started again by the test: (role, id, process).
    restarted: Vec<(String, u64, Child)>,
    paused: Vec<u32>,
}

#[derive(Clone, Debug)]
struct Member {
    role: String,
    id: u64,
    address: String,
    pid: u32,
    data_dir: String,
}

impl Cluster {
    /// A dev cluster on `dir`; with `durable`, the meta nodes fsync (a
    /// process killed without it loses what it had not written out).
    fn start(dir: &Path, durable: bool) -> Cluster {
        let arg = dir.to_str().expect("utf-8 path");
        let mut args = vec!["dev-cluster", "--dir", arg];
        if !durable {
            args.push("--no-fsync");
        }
        let process = ArborProcess::start(&args, "{").expect("start arbor dev-cluster");
        let line = process.lines.last().expect("a line");
        let info: Json = serde_json::from_str(line).expect("one JSON object");
        Cluster {
            dir: dir.to_owned(),
            process: Some(process),
            info,
            durable,
            restarted: Vec::new(),
            paused: Vec::new(),
        }
    }

    fn members(&self, role: &str) -> Vec<Member> {
        self.info["processes"]
            .as_array()
            .expect("processes")
            .iter()
            .filter(|p| p["role"] == role)
            .map(|p| {
                let id = p["id"].as_u64().expect("id");
                // A process the test started again has another pid.
                let pid = self
                    .restarted
                    .iter()
                    .find(|(r, i, _)| (r.as_str(), *i) == (role, id))
                    .map_or_else(
                        || u32::try_from(p["pid"].as_u64().expect("pid")).expect("pid"),
                        |(_, _, child)| child.id(),
                    );
                Member {
                    role: role.to_owned(),
                    id,
                    address: p["address"].as_str().expect("address").to_owned(),
                    pid,
                    data_dir: p["data_dir"].as_str().expect("data dir").to_owned(),
                }
            })
            .collect()
    }

    fn clients(&self) -> Vec<aws_sdk_s3::Client> {
        let access_key = self.info["access_key"].as_str().expect("access key");
        let secret_key = self.info["secret_key"].as_str().expect("secret key");
        self.info["s3_endpoints"]
            .as_array()
            .expect("endpoints")
            .iter()
            .map(|e| client(e.as_str().expect("endpoint"), access_key, secret_key))
            .collect()
    }

    /// The meta node that says it leads in the highest term, asking each
    /// (a paused or dead one does not answer).
    fn leader(&self) -> Option<Member> {
        let mut best: Option<(u64, Member)> = None;
        for member in self.members("meta") {
            let Some(status) = meta_status(&member.address) else {
                continue;
            };
            let term = status["term"].as_u64().unwrap_or(0);
            if status["state"] == "Leader" && best.as_ref().is_none_or(|(t, _)| term > *t) {
                best = Some((term, member));
            }
        }
        best.map(|(_, m)| m)
    }

    /// Waits (bounded) until a leader other than `not` is known.
    fn wait_leader(&self, not: Option<u64>) -> Member {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(leader) = self.leader().filter(|l| Some(l.id) != not) {
                return leader;
            }
            assert!(Instant::now() < deadline, "no new meta leader in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pause(&mut self, pid: u32) {
        signal("STOP", pid);
        self.paused.push(pid);
    }

    fn resume(&mut self, pid: u32) {
        signal("CONT", pid);
        self.paused.retain(|p| *p != pid);
    }

    /// Starts a killed meta node or chunk server again, as the dev cluster
    /// started it.
    fn restart(&mut self, member: &Member) {
        let meta_list: Vec<String> = self
            .members("meta")
            .into_iter()
            .map(|m| m.address)
            .collect();
        let mut args: Vec<String> = vec![
            member.role.clone(),
            "--listen".into(),
            member.address.clone(),
        ];
        match member.role.as_str() {
            "meta" => args.extend(["--node-id".into(), member.id.to_string()]),
            "chunk" => {
                let number = Path::new(&member.data_dir)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix("chunk-"))
                    .expect("chunk-N data dir")
                    .to_owned();
                args.extend([
                    "--meta".into(),
                    meta_list.join(","),
                    "--zone".into(),
                    format!("zone-{number}"),
                ]);
            }
            role => panic!("no restart for {role}"),
        }
        args.extend([
            "--data-dir".into(),
            member.data_dir.clone(),
            "--stop-on-stdin-close".into(),
        ]);
        if member.role == "meta" && !self.durable {
            args.push("--no-fsync".into());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(
                self.dir
                    .join(format!("restarted-{}-{}.log", member.role, member.id)),
            )
            .expect("log file");
        let child = arbor_command()
            .expect("arbor binary")
            .args(&args)
            .env("ARBOR_LOG", "info,openraft=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("restart");
        self.restarted
            .retain(|(role, id, _)| (role.as_str(), *id) != (member.role.as_str(), member.id));
        self.restarted.push((member.role.clone(), member.id, child));
    }

    /// SIGKILL to every process of the cluster at once, the dev cluster
    /// itself last (so it stops none of them gracefully).
    fn kill_everything(&mut self) {
        let mut pids: Vec<u32> = ["gateway", "chunk", "meta"]
            .iter()
            .flat_map(|role| self.members(role))
            .map(|m| m.pid)
            .collect();
        pids.extend(self.restarted.iter().map(|(_, _, child)| child.id()));
        let mut command = Command::new("kill");
        command.arg("-KILL");
        for pid in &pids {
            command.arg(pid.to_string());
        }
        let _ = command.status();
        if let Some(process) = self.process.take() {
            drop(process); // SIGKILL
        }
        for (_, _, mut child) in self.restarted.drain(..) {
            let _ = child.wait();
        }
    }

    fn stop(mut self) {
        for pid in std::mem::take(&mut self.paused) {
            signal("CONT", pid);
        }
        for (_, _, mut child) in self.restarted.drain(..) {
            drop(child.stdin.take());
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(process) = self.process.take() {
            let status = process.stop().expect("stop the dev cluster");
            assert!(status.success(), "{status}");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for pid in std::mem::take(&mut self.paused) {
            signal("CONT", pid);
        }
        for (_, _, child) in &mut self.restarted {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// `arbor admin meta --meta ADDR status`, or `None` if the node does not
/// answer within `STATUS_TIMEOUT`.
fn meta_status(addr: &str) -> Option<Json> {
    let mut child = arbor_command()
        .ok()?
        .args(["admin", "--meta", addr, "meta", "status"])
        .env("ARBOR_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + STATUS_TIMEOUT;
    loop {
        if child.try_wait().ok()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().ok()?;
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

/// A client that sends each request once (no retries: the history records
/// what the cluster answered) and waits at most `CLIENT_TIMEOUT`.
fn client(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            access_key, secret_key, None, None, "faults",
        ))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(CLIENT_TIMEOUT)
                .connect_timeout(Duration::from_secs(2))
                .build(),
        )
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

// ----------------------------------------------------------------- workload

/// The body of `value`: its 8 bytes repeated, long enough to be chunked
/// for every `LARGE_EVERY`th value.
fn body(value: Value) -> Vec<u8> {
    let len = if value.is_multiple_of(LARGE_EVERY) {
        LARGE_SIZE
    } else {
        SMALL_SIZE
    };
    value
        .to_le_bytes()
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// The value a body holds, if it is whole (every word the same).
fn value_of(bytes: &[u8]) -> Option<Value> {
    let first: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    let value = Value::from_le_bytes(first);
    (bytes == body(value).as_slice()).then_some(value)
}

/// What the client saw besides the register's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Ok,
    /// An HTTP error answer.
    Status {
        status: u16,
        code: String,
        retry_after: bool,
    },
    /// No answer: connection refused, closed or timed out.
    None(String),
}

#[derive(Default)]
struct Record {
    operations: Vec<Operation>,
    answers: Vec<(usize, Answer, Duration)>,
}

struct Workload {
    started: Instant,
    next_value: AtomicU64,
    record: Mutex<Record>,
    stop: AtomicBool,
}

impl Workload {
    fn new() -> Arc<Workload> {
        Arc::new(Workload {
            started: Instant::now(),
            next_value: AtomicU64::new(1),
            record: Mutex::new(Record::default()),
            stop: AtomicBool::new(false),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).expect("time fits")
    }

    fn log(&self, key: &str, call: Call, start: u64, outcome: Outcome, answer: Answer) {
        let end = (outcome != Outcome::Unknown).then(|| self.now());
        let took = Duration::from_nanos(self.now() - start);
        let mut record = self.record.lock().expect("record");
        let index = record.operations.len();
        record.operations.push(Operation {
            key: key.to_owned(),
            call,
            outcome,
            start,
            end,
        });
        if answer != Answer::Ok {
            record.answers.push((index, answer, took));
        }
    }
}

/// The HTTP error, or the reason there was no answer.
fn answer_of<E: ProvideErrorMetadata + std::fmt::Debug>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Answer {
    match e {
        SdkError::ServiceError(service) => {
            let raw = service.raw();
            Answer::Status {
                status: raw.status().as_u16(),
                code: service.err().code().unwrap_or("").to_owned(),
                retry_after: raw.headers().get("retry-after").is_some(),
            }
        }
        other => Answer::None(format!("{other:?}")),
    }
}

/// The register outcome of a failed write.
fn write_outcome(answer: &Answer) -> Outcome {
    match answer {
        Answer::Status { status: 412, .. } | Answer::Status { status: 409, .. } => {
            Outcome::PreconditionFailed
        }
        Answer::Status { status: 404, .. } => Outcome::NotFound,
        _ => Outcome::Unknown,
    }
}

async fn put(
    s3: &aws_sdk_s3::Client,
    key: &str,
    value: Value,
    condition: Option<Result<Value, ()>>,
) -> Result<(), Answer> {
    let mut request = s3
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body(value)));
    match condition {
        Some(Ok(expected)) => {
            request = request.if_match(format!("\"{}\"", common::md5_hex(&body(expected))));
        }
        Some(Err(())) => request = request.if_none_match("*"),
        None => {}
    }
    request.send().await.map(|_| ()).map_err(|e| answer_of(&e))
}

async fn get(s3: &aws_sdk_s3::Client, key: &str) -> Result<Option<Value>, Answer> {
    match s3.get_object().bucket(BUCKET).key(key).send().await {
        Ok(object) => {
            let bytes = object
                .body
                .collect()
                .await
                .map_err(|e| Answer::None(format!("body: {e}")))?
                .to_vec();
            match value_of(&bytes) {
                Some(v) => Ok(Some(v)),
                None => panic!("GET {key}: a body no write wrote ({} bytes)", bytes.len()),
            }
        }
        Err(e) => match answer_of(&e) {
            Answer::Status { status: 404, .. } => Ok(None),
            other => Err(other),
        },
    }
}

/// One client: random operations on random keys until told to stop.
async fn run_client(workload: Arc<Workload>, s3: aws_sdk_s3::Client, seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut draw = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut seen: HashMap<&str, Value> = HashMap::new();
    while !workload.stop.load(Ordering::Relaxed) {
        let key = KEYS[usize::try_from(draw(KEYS.len() as u64)).expect("index")];
        let start = workload.now();
        let kind = draw(10);
        if kind < 4 {
            match get(&s3, key).await {
                Ok(found) => {
                    if let Some(v) = found {
                        seen.insert(key, v);
                    }
                    workload.log(key, Call::Get, start, Outcome::Read(found), Answer::Ok);
                }
                Err(answer) => workload.log(key, Call::Get, start, Outcome::Unknown, answer),
            }
            continue;
        }
        if kind == 4 {
            let answer = match s3.delete_object().bucket(BUCKET).key(key).send().await {
                Ok(_) => Answer::Ok,
                Err(e) => answer_of(&e),
            };
            let outcome = if answer == Answer::Ok {
                Outcome::Done
            } else {
                write_outcome(&answer)
            };
            workload.log(key, Call::Delete, start, outcome, answer);
            continue;
        }
        let value = workload.next_value.fetch_add(1, Ordering::Relaxed);
        let (call, condition) = match (kind, seen.get(key)) {
            (5..=6, Some(&expected)) => (Call::PutIfMatch { expected, value }, Some(Ok(expected))),
            (7, _) => (Call::PutIfNoneMatch(value), Some(Err(()))),
            _ => (Call::Put(value), None),
        };
        let answer = match put(&s3, key, value, condition).await {
            Ok(()) => {
                seen.insert(key, value);
                Answer::Ok
            }
            Err(answer) => answer,
        };
        let outcome = if answer == Answer::Ok {
            Outcome::Done
        } else {
            write_outcome(&answer)
        };
        workload.log(key, call, start, outcome, answer);
    }
}

/// A running workload: clients through every gateway.
struct Clients {
    workload: Arc<Workload>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Clients {
    async fn start(cluster: &Cluster, seed: u64) -> Clients {
        let s3 = cluster.clients();
        if let Err(e) = s3[0].create_bucket().bucket(BUCKET).send().await {
            // Already there after a restart.
            assert!(
                matches!(answer_of(&e), Answer::Status { status: 409, .. }),
                "create bucket: {e:?}"
            );
        }
        let workload = Workload::new();
        let mut tasks = Vec::new();
        for (g, client) in s3.iter().enumerate() {
            for c in 0..CLIENTS_PER_GATEWAY {
                let n = u64::try_from(g * CLIENTS_PER_GATEWAY + c).expect("n");
                tasks.push(tokio::spawn(run_client(
                    workload.clone(),
                    client.clone(),
                    seed * 100 + n + 1,
                )));
            }
        }
        Clients { workload, tasks }
    }

    fn now(&self) -> u64 {
        self.workload.now()
    }

    /// Stops the clients (each finishes its request in flight) and returns
    /// the history.
    async fn finish(self) -> Record {
        self.workload.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            tokio::time::timeout(CLIENT_TIMEOUT + Duration::from_secs(5), task)
                .await
                .expect("a client finishes its last request")
                .expect("client task");
        }
        Arc::try_unwrap(self.workload)
            .ok()
            .expect("clients gone")
            .record
            .into_inner()
            .expect("record")
    }
}

/// The checks every scenario makes of its history; returns the time from
/// `fault` (ns into the run) to the first acknowledged write sent after it.
fn judge(name: &str, record: &Record, fault: Option<u64>) -> Option<Duration> {
    let ops = &record.operations;
    let writes = ops
        .iter()
        .filter(|o| o.call != Call::Get && o.outcome == Outcome::Done)
        .count();
    eprintln!(
        "{name}: {} operations, {writes} acknowledged writes, {} errors",
        ops.len(),
        record.answers.len()
    );
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for (i, answer, _) in &record.answers {
        let call = match ops[*i].call {
            Call::Get => "GET",
            Call::Put(_) => "PUT",
            Call::PutIfMatch { .. } => "PUT If-Match",
            Call::PutIfNoneMatch(_) => "PUT If-None-Match",
            Call::Delete => "DELETE",
        };
        let kind = match answer {
            Answer::Ok => continue,
            Answer::Status { status, code, .. } => format!("{call}: {status} {code}"),
            Answer::None(_) => format!("{call}: no answer"),
        };
        *by_kind.entry(kind).or_default() += 1;
    }
    eprintln!("{name}: answers other than success: {by_kind:?}");
    assert!(writes > 20, "{name}: too few writes succeeded: {writes}");
    let unanswered: Vec<_> = record
        .answers
        .iter()
        .filter(|(_, a, _)| matches!(a, Answer::None(_)))
        .collect();
    assert!(
        unanswered.is_empty(),
        "{name}: requests without an answer: {unanswered:#?}"
    );
    let wrong: Vec<_> = record
        .answers
        .iter()
        .filter(|(i, a, _)| match a {
            Answer::Status {
                status,
                retry_after,
                ..
            } => {
                let conditional = matches!(
                    ops[*i].call,
                    Call::PutIfMatch { .. } | Call::PutIfNoneMatch(_)
                );
                match status {
                    404 => !(conditional || ops[*i].call == Call::Get),
                    409 | 412 => !conditional,
                    500 | 503 => !retry_after,
                    _ => true,
                }
            }
            _ => false,
        })
        .map(|(i, a, took)| (&ops[*i], a, took))
        .collect();
    assert!(
        wrong.is_empty(),
        "{name}: answers a client cannot act on: {wrong:#?}"
    );
    if let Err(violation) = linearizability::check(ops) {
        panic!("{name}: {violation}");
    }
    let fault = fault?;
    let resumed = ops
        .iter()
        .filter(|o| o.call != Call::Get && o.outcome == Outcome::Done && o.start >= fault)
        .filter_map(|o| o.end)
        .min()
        .expect("a write succeeded after the fault");
    let resume = Duration::from_nanos(resumed - fault);
    eprintln!("{name}: writes resumed {resume:?} after the fault");
    Some(resume)
}

async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

// ---------------------------------------------------------------- scenarios

/// Meta leader killed, the group goes on with two, the node comes back
/// and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_meta_leader_then_restart() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster::start(dir.path(), true);
    let clients = Clients::start(&cluster, 1).await;
    sleep(Duration::from_secs(2)).await;
    let leader = cluster.wait_leader(None);
    let fault = clients.now();
    signal("KILL", leader.pid);
    sleep(Duration::from_secs(5)).await;
    cluster.restart(&leader);
    sleep(Duration::from_secs(3)).await;
    let record = clients.finish().await;
    let resume = judge("SIGKILL of the meta leader", &record, Some(fault));
    assert!(resume.is_some_and(|r| r <= RESUME_MAX), "{resume:?}");
    cluster.stop();
}

/// Meta leader paused: its connections stay open and nothing answers; the
/// others elect, it wakes up later, serves nothing stale and follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_of_the_meta_leader_then_sigcont() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster::start(dir.path(), false);
    let clients = Clients::start(&cluster, 2).await;
    sleep(Duration::from_secs(2)).await;
    let leader = cluster.wait_leader(None);
    let fault = clients.now();
    cluster.pause(leader.pid);
    sleep(Duration::from_secs(5)).await;
    cluster.resume(leader.pid);
    sleep(Duration::from_secs(3)).await;
    let record = clients.finish().await;
    let resume = judge("SIGSTOP of the meta leader", &record, Some(fault));
    assert!(resume.is_some_and(|r| r <= RESUME_MAX), "{resume:?}");
    let now = cluster.wait_leader(None);
    assert_ne!(now.id, leader.id, "the woken leader stepped down");
    cluster.stop();
}

/// A follower paused: the two others go on; once woken it catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_of_a_meta_follower_then_sigcont() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster::start(dir.path(), false);
    let clients = Clients::start(&cluster, 3).await;
    sleep(Duration::from_secs(1)).await;
    let leader = cluster.wait_leader(None);
    let follower = cluster
        .members("meta")
        .into_iter()
        .find(|m| m.id != leader.id)
        .expect("a follower");
    cluster.pause(follower.pid);
    sleep(Duration::from_secs(4)).await;
    cluster.resume(follower.pid);
    sleep(Duration::from_secs(2)).await;
    let record = clients.finish().await;
    judge("SIGSTOP of a meta follower", &record, None);
    // It caught up: its applied index reaches the leader's.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (Some(f), Some(l)) = (
            meta_status(&follower.address),
            cluster.leader().and_then(|l| meta_status(&l.address)),
        ) else {
            panic!("a meta node stopped answering");
        };
        if f["last_applied_index"].as_u64() >= l["last_applied_index"].as_u64() {
            break;
        }
        assert!(Instant::now() < deadline, "follower behind: {f} vs {l}");
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.stop();
}

/// A chunk server killed: reads and writes go on over the two others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_chunk_server() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster::start(dir.path(), true);
    let clients = Clients::start(&cluster, 4).await;
    sleep(Duration::from_secs(2)).await;
    let chunk = cluster.members("chunk").remove(0);
    let fault = clients.now();
    signal("KILL", chunk.pid);
    sleep(Duration::from_secs(5)).await;
    cluster.restart(&chunk);
    sleep(Duration::from_secs(2)).await;
    let record = clients.finish().await;
    let resume = judge("SIGKILL of a chunk server", &record, Some(fault));
    assert!(resume.is_some_and(|r| r <= RESUME_MAX), "{resume:?}");
    cluster.stop();
}

/// Everything killed at once mid-workload, then the dev cluster started
/// again on the same directory: every acknowledged write is there (the
/// history, with one read of every key after the restart, is still
/// linearizable, and every body read is whole).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_every_process_then_restart() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster::start(dir.path(), true);
    let clients = Clients::start(&cluster, 5).await;
    sleep(Duration::from_secs(3)).await;
    clients.workload.stop.store(true, Ordering::Relaxed);
    cluster.kill_everything();
    let mut record = clients.finish().await;
    // Requests cut by the kill have no answer: unknown outcomes.
    record
        .answers
        .retain(|(_, answer, _)| !matches!(answer, Answer::None(_)));
    drop(cluster);
    let cluster = Cluster::start(dir.path(), true);
    assert_eq!(cluster.info["restarted"], Json::Bool(true));
    let s3 = cluster.clients();
    let workload = Workload::new();
    let offset = record
        .operations
        .iter()
        .map(|o| o.end.unwrap_or(o.start))
        .max()
        .unwrap_or(0)
        + 1;
    for key in KEYS {
        for client in &s3 {
            let found = get(client, key).await.expect("GET after restart");
            let start = offset + workload.now();
            record.operations.push(Operation {
                key: key.to_owned(),
                call: Call::Get,
                outcome: Outcome::Read(found),
                start,
                end: Some(start + 1),
            });
        }
    }
    judge("SIGKILL of every process", &record, None);
    cluster.stop();
}

// -------------------------------------------------------------- measurement

/// How long after a fault of the meta leader a PUT through a gateway
/// succeeds again: one writer sends PUTs back to back from the moment of
/// the fault; the time is that of the first success. `kill`: SIGKILL,
/// then the node is started again; otherwise SIGSTOP, then SIGCONT.
async fn failover_once(cluster: &mut Cluster, s3: &aws_sdk_s3::Client, kill: bool) -> Duration {
    // Every node follows the leader and holds its whole log before the
    // fault (a node just restarted has not caught up yet: killing the
    // leader then leaves one node that can win the election, and that
    // is another measurement).
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        assert!(Instant::now() < deadline, "the group did not settle");
        sleep(Duration::from_millis(100)).await;
        let leader = cluster.wait_leader(None);
        let Some(last) = meta_status(&leader.address).and_then(|s| s["last_log_index"].as_u64())
        else {
            continue;
        };
        let settled = cluster.members("meta").iter().all(|m| {
            meta_status(&m.address).is_some_and(|s| {
                s["leader"].as_u64() == Some(leader.id)
                    && s["last_log_index"].as_u64() >= Some(last)
            })
        });
        if settled {
            break leader;
        }
    };
    let fault = Instant::now();
    if kill {
        signal("KILL", leader.pid);
    } else {
        cluster.pause(leader.pid);
    }
    let mut n = 0u64;
    let resumed = loop {
        n += 1;
        if put(s3, "failover", n, None).await.is_ok() {
            break fault.elapsed();
        }
        assert!(
            fault.elapsed() < Duration::from_secs(30),
            "no write in 30 s"
        );
    };
    if kill {
        cluster.restart(&leader);
    } else {
        cluster.resume(leader.pid);
    }
    resumed
}

fn median_and_worst(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

/// `FAILOVER_RUNS=20 cargo test -p arbor-compat-tests --test faults --
/// --ignored --nocapture failover_time` (docs/benchmarks.md, "Failover").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand, see docs/benchmarks.md"]
async fn failover_time() {
    let _serial = SERIAL.lock().await;
    let runs: usize = std::env::var("FAILOVER_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("tempdir");
    eprintln!("cluster in {}", dir.path().display());
    let mut cluster = Cluster::start(dir.path(), true);
    let s3 = cluster.clients().remove(0);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    for (name, kill) in [("SIGKILL", true), ("SIGSTOP", false)] {
        let mut times = Vec::new();
        for run in 0..runs {
            let time = failover_once(&mut cluster, &s3, kill).await;
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            eprintln!("{name} run {run}: writes resumed after {time:?} (done at {at:?})");
            times.push(time);
        }
        let (median, worst) = median_and_worst(times);
        eprintln!("{name} of the meta leader, {runs} runs: median {median:?}, worst {worst:?}");
    }
    cluster.stop();
    if std::env::var_os("FAILOVER_KEEP").is_some() {
        let _ = dir.keep();
    }
}
