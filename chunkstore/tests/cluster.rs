//! Chunk servers on loopback in one process: the HTTP API, replicated
//! writes, failover reads, repair, scrubbing, and re-replication against an
//! in-process metadata node. Every wait is bounded.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use arbor_chunkstore::{
    ChunkClient, ChunkClients, ChunkError, ChunkStore, ClientOptions, ExpectedSha256, Fingerprint,
    Repairer, Replicator, Scrubber, ServerOptions, limits,
};
use arbor_meta::ChunkId;
use arbor_meta::clock::{OsEntropy, SystemClock, now_ms};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
/// Bound on any single wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// Deterministic bytes that differ from block to block and chunk to chunk.
fn source(len: u64, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let x = (i ^ seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (x >> 56) as u8
        })
        .collect()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// `data` cut into uneven pieces that straddle block boundaries.
fn pieces(data: &[u8]) -> Vec<arbor_chunkstore::Result<Bytes>> {
    let sizes = [1, 1000, 70_000, 3, 65_536, 300_000, 65_535];
    let (mut out, mut at, mut i) = (Vec::new(), 0, 0);
    while at < data.len() {
        let n = sizes[i % sizes.len()].min(data.len() - at);
        out.push(Ok(Bytes::copy_from_slice(&data[at..at + n])));
        at += n;
        i += 1;
    }
    out
}

/// One chunk server on 127.0.0.1 with its own temporary directory.
struct Node {
    addr: String,
    dir: tempfile::TempDir,
    store: ChunkStore,
    shutdown: CancellationToken,
    task: Option<JoinHandle<arbor_chunkstore::Result<()>>>,
}

impl Node {
    async fn start() -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ChunkStore::open(dir.path(), SystemClock::shared(), OsEntropy::shared())
            .await
            .expect("open store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let shutdown = CancellationToken::new();
        let options = ServerOptions {
            zone: "z1".to_owned(),
            capacity: 1 << 30,
            // Stopping a node in a test cuts its connections off at once.
            drain_timeout: Duration::ZERO,
            ..ServerOptions::default()
        };
        let task = tokio::spawn(arbor_chunkstore::serve(
            listener,
            store.clone(),
            options,
            shutdown.clone(),
        ));
        Node {
            addr,
            dir,
            store,
            shutdown,
            task: Some(task),
        }
    }

    /// Stops the server and waits until it is gone.
    async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("server stops in time")
                .expect("server task")
                .expect("server result");
        }
    }

    fn chunk_path(&self, id: ChunkId) -> PathBuf {
        let hex = id.to_hex();
        self.dir.path().join(&hex[30..]).join(hex)
    }

    /// Flips one byte of the stored chunk file.
    fn corrupt(&self, id: ChunkId, offset: u64) {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.chunk_path(id))
            .expect("open chunk file");
        let mut byte = [0u8];
        file.seek(SeekFrom::Start(offset)).expect("seek");
        std::io::Read::read_exact(&mut file, &mut byte).expect("read");
        byte[0] ^= 0x5a;
        file.seek(SeekFrom::Start(offset)).expect("seek");
        file.write_all(&byte).expect("write");
        file.sync_all().expect("sync");
    }
}

fn clients() -> ChunkClients {
    ChunkClients::new(ClientOptions {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        stall_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    })
}

async fn put_direct(
    client: &ChunkClient,
    id: ChunkId,
    data: &[u8],
) -> arbor_chunkstore::Result<arbor_chunkstore::ChunkInfo> {
    client
        .put(
            id,
            ExpectedSha256::Known(sha256(data)),
            stream::iter(pieces(data)),
        )
        .await
}

/// Collects a read from one server; errors if the body breaks off.
async fn get_direct(
    client: &ChunkClient,
    id: ChunkId,
    range: Range<u64>,
) -> arbor_chunkstore::Result<Vec<u8>> {
    let read = tokio::time::timeout(WAIT, client.get(id, range))
        .await
        .expect("get in time")?;
    let mut out = Vec::new();
    let mut body = read.body;
    while let Some(piece) = tokio::time::timeout(WAIT, body.next())
        .await
        .expect("piece in time")
    {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

#[tokio::test]
async fn server_put_get_ranges_and_errors() {
    let mut node = Node::start().await;
    let clients = clients();
    let client = clients.server(&node.addr).expect("client");
    let data = source(3 * MIB + 7, 1);
    let id = ChunkId::generate();

    let info = put_direct(&client, id, &data).await.expect("put");
    assert_eq!((info.size, info.sha256), (data.len() as u64, sha256(&data)));
    // A re-put of the same content is idempotent.
    put_direct(&client, id, &data).await.expect("re-put");

    let size = data.len() as u64;
    for range in [
        0..size,
        0..1,
        5..70_000,
        size - 1..size,
        64 * KIB..2 * MIB + 3,
        7..7,
    ] {
        let got = get_direct(&client, id, range.clone()).await.expect("get");
        assert!(
            got == data[range.start as usize..range.end as usize],
            "range {range:?}"
        );
    }
    let stat = client.stat(id).await.expect("stat");
    assert_eq!(stat, info);
    assert!(matches!(
        client.get(id, size..size + 1).await,
        Err(ChunkError::InvalidRange { size: s, .. }) if s == size
    ));
    let missing = ChunkId::generate();
    assert!(
        matches!(client.get(missing, 0..1).await, Err(ChunkError::NotFound(m)) if m == missing)
    );
    assert!(matches!(
        client.stat(missing).await,
        Err(ChunkError::NotFound(_))
    ));

    // Wrong expected hash: refused, nothing stored.
    let other = ChunkId::generate();
    let refused = client
        .put(
            other,
            ExpectedSha256::Known([7; 32]),
            stream::iter(pieces(&data)),
        )
        .await;
    assert!(
        matches!(refused, Err(ChunkError::ChecksumMismatch { id }) if id == other),
        "{refused:?}"
    );
    assert!(matches!(
        client.stat(other).await,
        Err(ChunkError::NotFound(_))
    ));

    // Hash as a trailer.
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let small = source(100, 2);
    let hash = sha256(&small);
    let body = stream::iter(pieces(&small)).chain(stream::once(async move {
        let _ = sender.send(hash);
        Ok(Bytes::new())
    }));
    let trailed = ChunkId::generate();
    client
        .put(trailed, ExpectedSha256::Trailer(receiver), body)
        .await
        .expect("put with trailer");
    assert_eq!(
        get_direct(&client, trailed, 0..100).await.expect("get"),
        small
    );

    // Trailer never sent: the put aborts, nothing stored.
    let (sender, receiver) = tokio::sync::oneshot::channel::<[u8; 32]>();
    drop(sender);
    let aborted = ChunkId::generate();
    let result = client
        .put(
            aborted,
            ExpectedSha256::Trailer(receiver),
            stream::iter(pieces(&small)),
        )
        .await;
    assert!(result.is_err());
    assert!(matches!(
        client.stat(aborted).await,
        Err(ChunkError::NotFound(_))
    ));

    // Vouched for: the CRC32C is checked, the SHA-256 recorded as sent. A
    // wrong CRC32C is refused and nothing is stored.
    let vouched_data = source(200_000, 3);
    for (crc, expect_stored) in [
        (crc32c::crc32c(&vouched_data) ^ 1, false),
        (crc32c::crc32c(&vouched_data), true),
    ] {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let hash = sha256(&vouched_data);
        let body = stream::iter(pieces(&vouched_data)).chain(stream::once(async move {
            let _ = sender.send((hash, crc));
            Ok(Bytes::new())
        }));
        let vouched = ChunkId::generate();
        let result = client
            .put(vouched, ExpectedSha256::Vouched(receiver), body)
            .await;
        if expect_stored {
            let info = result.expect("vouched put");
            assert_eq!((info.size, info.sha256), (200_000, hash));
            assert_eq!(client.stat(vouched).await.expect("stat").sha256, hash);
            assert!(get_direct(&client, vouched, 0..200_000).await.expect("get") == vouched_data);
            client.delete(vouched).await.expect("delete");
        } else {
            assert!(
                matches!(result, Err(ChunkError::ChecksumMismatch { id }) if id == vouched),
                "{result:?}"
            );
            assert!(matches!(
                client.stat(vouched).await,
                Err(ChunkError::NotFound(_))
            ));
        }
    }

    // Inventory pages and status.
    let mut all = [id, trailed];
    all.sort();
    let page = client.inventory(None, 1).await.expect("inventory");
    assert_eq!((page.ids.clone(), page.truncated), (vec![all[0]], true));
    let page = client.inventory(Some(all[0]), 10).await.expect("inventory");
    assert_eq!((page.ids, page.truncated), (vec![all[1]], false));
    let status = client.status().await.expect("status");
    assert_eq!(
        (status.chunks, status.zone.as_str(), status.quarantined),
        (2, "z1", 0)
    );
    assert!(
        status.used_bytes > size && status.free_bytes == status.capacity_bytes - status.used_bytes
    );

    client.delete(id).await.expect("delete");
    client.delete(id).await.expect("delete again");
    assert!(matches!(
        client.stat(id).await,
        Err(ChunkError::NotFound(_))
    ));

    node.stop().await;
    assert!(matches!(
        client.stat(trailed).await,
        Err(ChunkError::Network { .. })
    ));
}

#[tokio::test]
async fn corruption_is_an_error_status_or_a_cut_off_body() {
    let mut node = Node::start().await;
    let clients = clients();
    let client = clients.server(&node.addr).expect("client");
    let data = source(3 * MIB, 3);
    let id = ChunkId::generate();
    put_direct(&client, id, &data).await.expect("put");

    // In the first block: detected before the answer, a clean 500.
    node.corrupt(id, 10);
    let error = get_direct(&client, id, 0..data.len() as u64)
        .await
        .expect_err("corrupt");
    assert!(matches!(error, ChunkError::Corrupt { .. }), "{error:?}");
    // A range not touching the bad block still reads.
    let tail = get_direct(&client, id, 2 * MIB..3 * MIB)
        .await
        .expect("clean range");
    assert!(tail == data[2 * MIB as usize..]);

    // Deep inside: the body starts and is cut off, never short and clean.
    let id2 = ChunkId::generate();
    put_direct(&client, id2, &data).await.expect("put");
    node.corrupt(id2, 2 * MIB + 5);
    let error = get_direct(&client, id2, 0..data.len() as u64)
        .await
        .expect_err("cut off");
    assert!(matches!(error, ChunkError::Network { .. }), "{error:?}");
    assert_eq!(node.store.list().await.expect("list").len(), 2);
    node.stop().await;
}

/// Three (or more) nodes, a replicator with a background repairer.
struct Cluster {
    nodes: Vec<Node>,
    clients: ChunkClients,
    replicator: Replicator,
    repairer: Repairer,
    stop_repairs: CancellationToken,
}

impl Cluster {
    async fn start(count: usize) -> Cluster {
        let mut nodes = Vec::new();
        for _ in 0..count {
            nodes.push(Node::start().await);
        }
        let clients = clients();
        let stop_repairs = CancellationToken::new();
        let (repairer, _worker) = Repairer::start(clients.clone(), stop_repairs.clone());
        let replicator = Replicator::new(clients.clone(), Some(repairer.clone()));
        Cluster {
            nodes,
            clients,
            replicator,
            repairer,
            stop_repairs,
        }
    }

    fn addrs(&self, which: &[usize]) -> Vec<String> {
        which.iter().map(|i| self.nodes[*i].addr.clone()).collect()
    }

    fn client(&self, i: usize) -> ChunkClient {
        self.clients.server(&self.nodes[i].addr).expect("client")
    }

    async fn write_with<S>(
        &self,
        id: ChunkId,
        targets: &[usize],
        candidates: &[usize],
        fingerprint: Fingerprint,
        body: S,
    ) -> arbor_chunkstore::Result<arbor_chunkstore::ReplicatedWrite>
    where
        S: futures::Stream<Item = arbor_chunkstore::Result<Bytes>> + Send,
    {
        let quorum = targets.len();
        self.write_quorum(id, targets, candidates, quorum, fingerprint, body)
            .await
    }

    async fn write_quorum<S>(
        &self,
        id: ChunkId,
        targets: &[usize],
        candidates: &[usize],
        quorum: usize,
        fingerprint: Fingerprint,
        body: S,
    ) -> arbor_chunkstore::Result<arbor_chunkstore::ReplicatedWrite>
    where
        S: futures::Stream<Item = arbor_chunkstore::Result<Bytes>> + Send,
    {
        let (targets, candidates) = (self.addrs(targets), self.addrs(candidates));
        let write = self
            .replicator
            .write(id, &targets, &candidates, quorum, fingerprint, body);
        tokio::time::timeout(WAIT, write)
            .await
            .expect("write in time")
    }

    async fn write(&self, id: ChunkId, data: &[u8]) -> arbor_chunkstore::ReplicatedWrite {
        self.write_fingerprinted(id, Fingerprint::Unknown, data)
            .await
            .expect("write")
    }

    /// Writes `data` as chunk `id` to nodes 0, 1 and 2.
    async fn write_fingerprinted(
        &self,
        id: ChunkId,
        fingerprint: Fingerprint,
        data: &[u8],
    ) -> arbor_chunkstore::Result<arbor_chunkstore::ReplicatedWrite> {
        self.write_with(id, &[0, 1, 2], &[], fingerprint, stream::iter(pieces(data)))
            .await
    }

    /// Asserts that every node holds chunk `id` with the fingerprint
    /// `sha256`.
    async fn assert_held_everywhere(&self, id: ChunkId, sha256: [u8; 32]) {
        for node in &self.nodes {
            assert_eq!(node.store.stat(id).await.expect("stat").sha256, sha256);
        }
    }

    async fn read(
        &self,
        id: ChunkId,
        range: Range<u64>,
        order: &[usize],
    ) -> arbor_chunkstore::Result<Vec<u8>> {
        let order = self.addrs(order);
        let read = self.replicator.read(id, range, &order, None);
        let read = tokio::time::timeout(WAIT, read)
            .await
            .expect("read in time")?;
        let mut out = Vec::new();
        let mut body = read.body;
        while let Some(piece) = tokio::time::timeout(WAIT, body.next())
            .await
            .expect("piece in time")
        {
            out.extend_from_slice(&piece?);
        }
        Ok(out)
    }

    /// Waits (bounded) until the repairer has repaired `count` replicas.
    async fn repaired(&self, count: u64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.repairer.counts().repaired < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "repairs: {:?}",
                self.repairer.counts()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        self.stop_repairs.cancel();
        for node in &mut self.nodes {
            node.stop().await;
        }
    }
}

#[tokio::test]
async fn replicated_round_trip_and_ranges() {
    let cluster = Cluster::start(3).await;
    for (seed, size) in [0, 1, 64 * KIB + 1, 3 * MIB + 7].into_iter().enumerate() {
        let data = source(size, seed as u64 + 10);
        let id = ChunkId::generate();
        let written = cluster.write(id, &data).await;
        assert_eq!(
            (written.info.size, written.info.sha256),
            (size, sha256(&data))
        );
        assert_eq!(written.replicas, cluster.addrs(&[0, 1, 2]));
        assert!(written.replaced.is_empty());
        for i in 0..3 {
            let got = get_direct(&cluster.client(i), id, 0..size)
                .await
                .expect("direct get");
            assert!(got == data, "replica {i}, size {size}");
        }
        let got = cluster.read(id, 0..size, &[2, 0, 1]).await.expect("read");
        assert!(got == data);
        if size > 2 {
            let range = size / 3..size - 1;
            let got = cluster
                .read(id, range.clone(), &[1, 2, 0])
                .await
                .expect("ranged read");
            assert!(got == data[range.start as usize..range.end as usize]);
        }
    }
    let missing = ChunkId::generate();
    assert!(matches!(
        cluster.read(missing, 0..1, &[0, 1, 2]).await,
        Err(ChunkError::NotFound(_))
    ));
    cluster.stop().await;
}

#[tokio::test]
async fn reads_continue_with_a_server_stopped() {
    let mut cluster = Cluster::start(3).await;
    let data = source(MIB + 3, 20);
    let id = ChunkId::generate();
    cluster.write(id, &data).await;
    cluster.nodes[0].stop().await;
    let got = cluster
        .read(id, 0..data.len() as u64, &[0, 1, 2])
        .await
        .expect("read");
    assert!(got == data);
    let got = cluster
        .read(id, 5..70_000, &[0, 2])
        .await
        .expect("ranged read");
    assert!(got == data[5..70_000]);
    // A stopped server is not a bad copy: nothing to repair.
    assert_eq!(cluster.repairer.counts().submitted, 0);
    cluster.nodes[1].stop().await;
    cluster.nodes[2].stop().await;
    assert!(matches!(
        cluster.read(id, 0..1, &[0, 1, 2]).await,
        Err(ChunkError::ReplicasUnavailable { .. })
    ));
    cluster.stop().await;
}

#[tokio::test]
async fn corrupt_replicas_are_read_around_and_repaired() {
    let cluster = Cluster::start(3).await;
    let data = source(3 * MIB + 7, 30);
    let size = data.len() as u64;

    // Bad first block: the server refuses with `corrupt` before any byte.
    let early = ChunkId::generate();
    cluster.write(early, &data).await;
    cluster.nodes[0].corrupt(early, 10);
    let got = cluster
        .read(early, 0..size, &[0, 1, 2])
        .await
        .expect("read");
    assert!(got == data);
    cluster.repaired(1).await;
    let fixed = get_direct(&cluster.client(0), early, 0..size)
        .await
        .expect("repaired copy");
    assert!(fixed == data);

    // Bad block deep inside: the read breaks off mid-stream, resumes on the
    // next replica, and a probe confirms the bad copy.
    let late = ChunkId::generate();
    cluster.write(late, &data).await;
    cluster.nodes[1].corrupt(late, 2 * MIB + 5);
    let got = cluster.read(late, 0..size, &[1, 2, 0]).await.expect("read");
    assert!(got == data);
    cluster.repaired(2).await;
    let fixed = get_direct(&cluster.client(1), late, 0..size)
        .await
        .expect("repaired copy");
    assert!(fixed == data);

    // A missing copy is repaired too.
    cluster.client(2).delete(late).await.expect("delete");
    let got = cluster.read(late, 100..200, &[2, 0]).await.expect("read");
    assert!(got == data[100..200]);
    cluster.repaired(3).await;
    assert_eq!(cluster.client(2).stat(late).await.expect("stat").size, size);
    cluster.stop().await;
}

#[tokio::test]
async fn a_replica_failing_mid_write_is_replaced() {
    let cluster = Cluster::start(4).await;
    let data = source(3 * MIB + 7, 40);
    let id = ChunkId::generate();
    let all = pieces(&data);
    let half = all.len() / 2;
    let victim = cluster.nodes[1].shutdown.clone();
    // The body stops node 1 half-way, then gives it time to go.
    let body = stream::iter(all.into_iter().enumerate()).then(move |(i, piece)| {
        let victim = victim.clone();
        async move {
            if i == half {
                victim.cancel();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            piece
        }
    });
    let written = cluster
        .write_with(id, &[0, 1, 2], &[3], Fingerprint::Unknown, body)
        .await
        .expect("write");
    assert_eq!(written.replicas, cluster.addrs(&[0, 3, 2]));
    assert_eq!(written.replaced.len(), 1);
    assert_eq!(written.replaced[0].failed, cluster.nodes[1].addr);
    assert_eq!(written.replaced[0].replacement, cluster.nodes[3].addr);
    for i in [0, 2, 3] {
        let got = get_direct(&cluster.client(i), id, 0..data.len() as u64)
            .await
            .expect("get");
        assert!(got == data, "replica {i}");
    }
    assert!(
        cluster.nodes[1]
            .store
            .list()
            .await
            .expect("list")
            .is_empty()
    );

    // Without a candidate left, the write fails.
    let id2 = ChunkId::generate();
    let victim = cluster.nodes[2].shutdown.clone();
    let body = stream::iter(pieces(&data).into_iter().enumerate()).then(move |(i, piece)| {
        let victim = victim.clone();
        async move {
            if i == half {
                victim.cancel();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            piece
        }
    });
    let failed = cluster
        .write_with(id2, &[0, 2], &[], Fingerprint::Unknown, body)
        .await;
    assert!(
        matches!(failed, Err(ChunkError::ReplicasUnavailable { .. })),
        "{failed:?}"
    );

    // Unless the servers still holding it make the quorum: then the chunk
    // is written, one replica short (nodes 1 and 2 are down).
    let id4 = ChunkId::generate();
    let written = cluster
        .write_quorum(
            id4,
            &[0, 3, 2],
            &[],
            2,
            Fingerprint::Unknown,
            stream::iter(pieces(&data)),
        )
        .await
        .expect("write with a quorum");
    assert_eq!(written.replicas, cluster.addrs(&[0, 3]));
    assert!(written.replaced.is_empty());
    let short = cluster
        .write_quorum(
            ChunkId::generate(),
            &[0, 1, 2],
            &[],
            2,
            Fingerprint::Unknown,
            stream::iter(pieces(&data)),
        )
        .await;
    assert!(
        matches!(short, Err(ChunkError::ReplicasUnavailable { .. })),
        "one of three is no quorum of two: {short:?}"
    );

    // A target already down is replaced the same way.
    let id3 = ChunkId::generate();
    let written = cluster
        .write_with(
            id3,
            &[0, 1],
            &[2, 3],
            Fingerprint::Unknown,
            stream::iter(pieces(&data)),
        )
        .await
        .expect("write");
    // Node 2 is down too: the replacement is node 3.
    assert_eq!(written.replicas, cluster.addrs(&[0, 3]));
    assert_eq!(written.replaced.len(), 1);
    assert_eq!(written.replaced[0].failed, cluster.nodes[1].addr);
    let got = get_direct(&cluster.client(3), id3, 0..data.len() as u64)
        .await
        .expect("get");
    assert!(got == data);
    cluster.stop().await;
}

/// A replica that stops taking bytes (a frozen process: its socket still
/// accepts, nothing reads) is dropped once the others have taken a piece
/// and it lags them by the lag timeout, and the write completes on the
/// rest. Waiting out its stall timeout instead would starve the others
/// for as long, and they would give the body up (their stall timeout is
/// shorter than the writer's here, as long as it is in production).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_replica_is_dropped_and_the_write_completes_on_the_rest() {
    let cluster = Cluster::start(3).await;
    // A black hole: connections are accepted and never read.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hole_addr = hole.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hole.incoming().take(8) {
            held.push(stream);
        }
    });
    let replicator = Replicator::new(
        ChunkClients::new(ClientOptions {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(60),
            lag_timeout: Duration::from_secs(1),
            ..ClientOptions::default()
        }),
        None,
    );
    // Larger than the socket buffers and queues the hole can absorb.
    let data = source(24 * MIB, 77);
    let id = ChunkId::generate();
    let targets = [
        cluster.nodes[0].addr.clone(),
        hole_addr.clone(),
        cluster.nodes[2].addr.clone(),
    ];
    let write = replicator.write(
        id,
        &targets,
        &[],
        2,
        Fingerprint::Unknown,
        stream::iter(pieces(&data)),
    );
    let written = tokio::time::timeout(WAIT, write)
        .await
        .expect("the write does not wait for the frozen replica")
        .expect("write on the two that kept up");
    assert_eq!(written.replicas, cluster.addrs(&[0, 2]));
    for i in [0, 2] {
        let got = get_direct(&cluster.client(i), id, 0..data.len() as u64)
            .await
            .expect("get");
        assert!(got == data, "replica {i}");
    }
    // A read tries the frozen replica first, and the next one after the
    // lag timeout, not the request timeout.
    let replicas = [hole_addr, cluster.nodes[2].addr.clone()];
    let read = replicator.read(id, 0..data.len() as u64, &replicas, Some(sha256(&data)));
    let read = tokio::time::timeout(WAIT, read)
        .await
        .expect("the read does not wait for the frozen replica")
        .expect("read");
    let mut got = Vec::new();
    let mut body = read.body;
    while let Some(piece) = tokio::time::timeout(WAIT, body.next())
        .await
        .expect("piece in time")
    {
        got.extend_from_slice(&piece.expect("piece"));
    }
    assert!(got == data, "read past the frozen replica");
    cluster.stop().await;
}

#[tokio::test]
async fn a_verified_hash_is_recorded_by_every_replica_as_given() {
    let cluster = Cluster::start(3).await;
    let data = source(MIB + 1, 51);
    let id = ChunkId::generate();
    let written = cluster
        .write_fingerprinted(id, Fingerprint::Verified(sha256(&data)), &data)
        .await
        .expect("write");
    assert_eq!(written.info.sha256, sha256(&data));
    cluster.assert_held_everywhere(id, sha256(&data)).await;
    // Nobody hashes a verified fingerprint again: the caller's check (a
    // signed payload's) is the one that counts, and a wrong one would be
    // recorded as it came. Every replica still checks the bytes it
    // received against the writer's CRC32C.
    let other = ChunkId::generate();
    let written = cluster
        .write_fingerprinted(other, Fingerprint::Verified([9; 32]), &data)
        .await
        .expect("write");
    assert_eq!(written.info.sha256, [9; 32]);
    cluster.assert_held_everywhere(other, [9; 32]).await;
    cluster.stop().await;
}

#[tokio::test]
async fn expected_hash_mismatch_stores_nothing_anywhere() {
    let cluster = Cluster::start(3).await;
    let data = source(MIB + 1, 50);
    let id = ChunkId::generate();
    let result = cluster
        .write_fingerprinted(id, Fingerprint::Claimed([9; 32]), &data)
        .await;
    assert!(
        matches!(result, Err(ChunkError::ChecksumMismatch { .. })),
        "{result:?}"
    );
    // The puts were cut off before their trailers: each server drops its
    // temporary file when it sees the body break off.
    for node in &cluster.nodes {
        assert!(node.store.list().await.expect("list").is_empty());
        let tmp_files = || {
            std::fs::read_dir(node.dir.path().join("tmp"))
                .expect("tmp dir")
                .count()
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        while tmp_files() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(tmp_files(), 0, "temporary files left");
    }
    // With the right hash it is stored everywhere.
    cluster
        .write_fingerprinted(id, Fingerprint::Claimed(sha256(&data)), &data)
        .await
        .expect("write");
    cluster.assert_held_everywhere(id, sha256(&data)).await;
    cluster.stop().await;
}

#[tokio::test]
async fn scrubber_quarantines_corrupt_chunks_and_reads_repair_them() {
    let cluster = Cluster::start(3).await;
    let data = source(2 * MIB + 9, 60);
    let size = data.len() as u64;
    let ids: Vec<ChunkId> = (0..3).map(|_| ChunkId::generate()).collect();
    for id in &ids {
        cluster.write(*id, &data).await;
    }
    let node = &cluster.nodes[0];
    node.corrupt(ids[1], MIB + 77);

    let (reports, mut corrupt_ids) = tokio::sync::mpsc::channel(8);
    // 8 MiB/s: the two good chunks alone, 4 MiB (the corrupt one may
    // fail in its first piece), take at least 0.5 s.
    let scrubber = Scrubber::new(node.store.clone(), 8 * MIB)
        .expect("scrubber")
        .with_reports(reports);
    let started = std::time::Instant::now();
    let report = tokio::time::timeout(WAIT, scrubber.scrub_once(&CancellationToken::new()))
        .await
        .expect("scrub in time")
        .expect("scrub");
    let elapsed = started.elapsed();
    assert_eq!(report.corrupt, vec![ids[1]]);
    assert_eq!(
        (report.good, report.corrupt_count, report.errors),
        (2, 1, 0)
    );
    assert!(
        elapsed >= Duration::from_millis(490),
        "rate not applied: {elapsed:?}"
    );
    assert_eq!(corrupt_ids.try_recv().expect("reported"), ids[1]);
    assert_eq!(
        scrubber.quarantined().await.expect("quarantined"),
        vec![ids[1]]
    );

    // Never served again; status counts it.
    let client = cluster.client(0);
    assert!(matches!(
        client.stat(ids[1]).await,
        Err(ChunkError::NotFound(_))
    ));
    assert_eq!(client.status().await.expect("status").quarantined, 1);
    assert!(Scrubber::new(node.store.clone(), 1).is_err());

    // A read finds it missing there and repairs it from another replica.
    let got = cluster
        .read(ids[1], 0..size, &[0, 1, 2])
        .await
        .expect("read");
    assert!(got == data);
    cluster.repaired(1).await;
    let fixed = get_direct(&client, ids[1], 0..size)
        .await
        .expect("repaired");
    assert!(fixed == data);
    // A second pass finds everything good.
    let fast = Scrubber::new(node.store.clone(), 1 << 40).expect("scrubber");
    let report = fast
        .scrub_once(&CancellationToken::new())
        .await
        .expect("scrub");
    assert_eq!((report.good, report.corrupt_count), (3, 0));
    cluster.stop().await;
}

#[tokio::test]
async fn chunk_server_process_runs_and_stops() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = arbor_chunkstore::ChunkServerConfig {
        data_dir: dir.path().to_path_buf(),
        meta: vec!["127.0.0.1:1".to_owned()],
        zone: "zone-a".to_owned(),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(arbor_chunkstore::run_on(
        config,
        listener,
        SystemClock::shared(),
        OsEntropy::shared(),
        shutdown.clone(),
    ));

    let client = clients().server(&addr).expect("client");
    let data = source(100 * KIB, 70);
    let id = ChunkId::generate();
    put_direct(&client, id, &data).await.expect("put");
    assert_eq!(
        get_direct(&client, id, 0..data.len() as u64)
            .await
            .expect("get"),
        data
    );
    let status = client.status().await.expect("status");
    assert_eq!((status.zone.as_str(), status.chunks), ("zone-a", 1));
    assert!(
        dir.path()
            .join("chunks")
            .join(&id.to_hex()[30..])
            .join(id.to_hex())
            .is_file()
    );

    shutdown.cancel();
    tokio::time::timeout(WAIT, task)
        .await
        .expect("stops in time")
        .expect("task")
        .expect("run");
    assert!(matches!(
        client.status().await,
        Err(ChunkError::Network { .. })
    ));

    let bad = arbor_chunkstore::ChunkServerConfig {
        scrub_rate: 0,
        ..Default::default()
    };
    assert!(matches!(
        arbor_chunkstore::run(
            bad,
            SystemClock::shared(),
            OsEntropy::shared(),
            CancellationToken::new()
        )
        .await,
        Err(ChunkError::InvalidConfig(_))
    ));
}

/// Not a benchmark, a smoke check that a default-size chunk moves at a
/// sane speed (debug build): 64 MiB to three replicas and back.
#[tokio::test]
async fn default_size_chunk_round_trip() {
    let cluster = Cluster::start(3).await;
    let data = source(limits::CHUNK_SIZE_DEFAULT, 80);
    let id = ChunkId::generate();
    let body: Vec<_> = data
        .chunks(256 * 1024)
        .map(|piece| Ok(Bytes::copy_from_slice(piece)))
        .collect();
    let started = std::time::Instant::now();
    cluster
        .write_with(
            id,
            &[0, 1, 2],
            &[],
            Fingerprint::Unknown,
            stream::iter(body),
        )
        .await
        .expect("write");
    let written = started.elapsed();
    let got = cluster
        .read(id, 0..data.len() as u64, &[1, 0, 2])
        .await
        .expect("read");
    assert!(got == data);
    eprintln!(
        "64 MiB: write x3 {written:?}, read {:?}",
        started.elapsed() - written
    );
    cluster.stop().await;
}

#[tokio::test]
async fn invalid_range_is_reported_even_past_a_down_replica() {
    let mut cluster = Cluster::start(3).await;
    let data = source(1000, 90);
    let id = ChunkId::generate();
    cluster.write(id, &data).await;
    cluster.nodes[0].stop().await;
    let result = cluster.read(id, 500..1001, &[0, 1, 2]).await;
    assert!(
        matches!(result, Err(ChunkError::InvalidRange { size: 1000, .. })),
        "{result:?}"
    );
    assert_eq!(cluster.repairer.counts().submitted, 0);
    cluster.stop().await;
}

// ------------------------------------ re-replication with a metadata node

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healer_restores_the_factor_and_empties_draining_servers() {
    use arbor_chunkstore::{Healer, HealerConfig};
    use arbor_meta::records::ServerStatus;
    use arbor_meta::records::WriteCondition;
    use arbor_meta::records::{ObjectData, ObjectHeaders, ObjectVersion};
    use arbor_meta::{ChunkPlacement, ChunkRef, MetaConfig, MetaNode};

    let meta_dir = tempfile::tempdir().expect("temp dir");
    let node = MetaNode::open_single(MetaConfig::new(meta_dir.path(), 1).with_durable(false))
        .await
        .expect("meta node");
    let meta = node.client();
    let mut nodes = vec![
        Node::start().await,
        Node::start().await,
        Node::start().await,
    ];
    for (i, n) in nodes.iter().enumerate() {
        meta.register_chunk_server(i as u64 + 1, &n.addr, &format!("z{i}"), 1 << 30, now_ms())
            .await
            .expect("register");
    }

    // A chunk on servers 1 and 2 only, committed with factor 3 (as a
    // gateway does when only two servers are ONLINE).
    let data = source(300 * KIB, 21);
    let id = ChunkId::generate();
    let replicator = Replicator::new(clients(), None);
    let targets = [nodes[0].addr.clone(), nodes[1].addr.clone()];
    let written = replicator
        .write(
            id,
            &targets,
            &[],
            2,
            Fingerprint::Unknown,
            stream::iter(pieces(&data)),
        )
        .await
        .expect("write");
    meta.create_bucket("healing", 1).await.expect("bucket");
    let version = ObjectVersion {
        generation: 0,
        size: written.info.size,
        etag: "e".to_owned(),
        last_modified_ms: 1,
        headers: ObjectHeaders::default(),
        user_metadata: Vec::new(),
        checksum: None,
        storage_class: None,
        parts: Vec::new(),
        tags: Vec::new(),
        acl: Default::default(),
        data: ObjectData::Chunks(vec![ChunkRef {
            id,
            offset: 0,
            size: written.info.size,
            sha256: written.info.sha256,
        }]),
        stamp: Default::default(),
    };
    let placement = ChunkPlacement {
        id,
        factor: 3,
        servers: vec![1, 2],
    };
    meta.put_object(
        "healing",
        "k",
        version,
        WriteCondition::None,
        vec![placement],
    )
    .await
    .expect("commit");
    assert_eq!(meta.chunk_counts().await.expect("counts"), (1, 1));
    let servers = |meta: arbor_meta::MetaClient| async move {
        let records = meta.chunk_records(vec![id]).await.expect("record");
        let mut servers = records[0].clone().expect("recorded").servers;
        servers.sort_unstable();
        servers
    };

    let healer = Healer::new(
        meta.clone(),
        replicator.clone(),
        HealerConfig {
            interval: Duration::from_secs(1),
            offline_grace: Duration::from_secs(300),
        },
        SystemClock::shared(),
    );
    let report = healer.pass().await.expect("pass");
    assert_eq!((report.copied, report.dropped, report.short), (1, 0, 0));
    assert_eq!(servers(meta.clone()).await, [1, 2, 3]);
    assert_eq!(
        nodes[2].store.stat(id).await.expect("copied").sha256,
        sha256(&data)
    );
    assert_eq!(meta.chunk_counts().await.expect("counts"), (1, 0));
    assert_eq!(healer.pass().await.expect("pass").copied, 0, "nothing left");

    // Draining server 1 with no other server to take its copy: the chunk
    // stays where it is (three replicas beat two).
    meta.set_chunk_server_status(1, ServerStatus::Draining)
        .await
        .expect("drain");
    let report = healer.pass().await.expect("pass");
    assert_eq!((report.copied, report.dropped, report.short), (0, 0, 1));
    assert_eq!(servers(meta.clone()).await, [1, 2, 3]);
    assert!(nodes[0].store.stat(id).await.is_ok());

    // A fourth server arrives: the chunk moves there and leaves server 1.
    nodes.push(Node::start().await);
    meta.register_chunk_server(4, &nodes[3].addr, "z3", 1 << 30, now_ms())
        .await
        .expect("register");
    let report = healer.pass().await.expect("pass");
    assert_eq!((report.copied, report.dropped, report.short), (1, 1, 0));
    assert_eq!(servers(meta.clone()).await, [2, 3, 4]);
    assert_eq!(
        nodes[3].store.stat(id).await.expect("moved").sha256,
        sha256(&data)
    );
    assert!(
        matches!(nodes[0].store.stat(id).await, Err(ChunkError::NotFound(_))),
        "the draining server's copy is deleted"
    );

    for n in &mut nodes {
        n.stop().await;
    }
    node.shutdown().await.expect("meta shutdown");
}

/// What a [`RefusingServer`] saw of each PUT: the announced `Trailer`
/// header and the names of the trailers that came.
type SeenPuts = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<String>)>>>;

/// A chunk server stand-in that reads each PUT to the end, remembers the
/// `Trailer` header it announced and the trailers that came, and answers
/// as a server whose own SHA-256 of the bytes differs from the writer's.
struct RefusingServer {
    addr: String,
    seen: SeenPuts,
    task: JoinHandle<()>,
}

impl RefusingServer {
    async fn start() -> RefusingServer {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let seen = SeenPuts::default();
        let recorded = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let recorded = recorded.clone();
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let recorded = recorded.clone();
                        async move {
                            let announced = request
                                .headers()
                                .get(http::header::TRAILER)
                                .and_then(|value| value.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let body = request.into_body().collect().await;
                            let trailers = body
                                .ok()
                                .and_then(|body| body.trailers().cloned())
                                .map(|trailers| {
                                    trailers.keys().map(|name| name.to_string()).collect()
                                })
                                .unwrap_or_default();
                            recorded
                                .lock()
                                .expect("recorded")
                                .push((announced, trailers));
                            hyper::Response::builder()
                                .status(http::StatusCode::BAD_REQUEST)
                                .header(arbor_chunkstore::api::HEADER_ERROR, "checksum-mismatch")
                                .body(http_body_util::Full::new(Bytes::from_static(
                                    br#"{"code":"checksum-mismatch","message":"SHA-256 differs"}"#,
                                )))
                        }
                    },
                );
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        RefusingServer { addr, seen, task }
    }

    fn seen(&self) -> Vec<(String, Vec<String>)> {
        self.seen.lock().expect("seen").clone()
    }
}

impl Drop for RefusingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn the_first_target_checks_the_writers_sha256_and_a_disagreement_fails_the_write() {
    let cluster = Cluster::start(3).await;
    let refusing = RefusingServer::start().await;
    let data = source(MIB + 3, 70);

    // First among the targets, the stand-in is asked to hash the bytes
    // itself (the SHA-256 trailer only) and its disagreement fails the
    // write, although the two others would hold the chunk.
    let id = ChunkId::generate();
    let targets = vec![
        refusing.addr.clone(),
        cluster.nodes[1].addr.clone(),
        cluster.nodes[2].addr.clone(),
    ];
    let write = cluster.replicator.write(
        id,
        &targets,
        &[],
        2,
        Fingerprint::Unknown,
        stream::iter(pieces(&data)),
    );
    let result = tokio::time::timeout(WAIT, write)
        .await
        .expect("write in time");
    assert!(
        matches!(&result, Err(ChunkError::Corrupt { detail, .. }) if detail.contains(&refusing.addr)),
        "{result:?}"
    );
    assert_eq!(
        refusing.seen(),
        vec![(
            "x-arbor-sha256".to_owned(),
            vec!["x-arbor-sha256".to_owned()]
        )]
    );
    // The others were never handed the fingerprint: none sealed the chunk.
    for node in &cluster.nodes[1..] {
        assert!(node.store.list().await.expect("list").is_empty());
    }

    // Second among the targets, it is sent both digests to check the CRC32C
    // by, and its refusal is a failed replica like any other.
    let id = ChunkId::generate();
    let targets = vec![
        cluster.nodes[0].addr.clone(),
        refusing.addr.clone(),
        cluster.nodes[2].addr.clone(),
    ];
    let write = cluster.replicator.write(
        id,
        &targets,
        &[],
        2,
        Fingerprint::Unknown,
        stream::iter(pieces(&data)),
    );
    let written = tokio::time::timeout(WAIT, write)
        .await
        .expect("write in time")
        .expect("a quorum holds it");
    assert_eq!(written.replicas, cluster.addrs(&[0, 2]));
    assert_eq!(written.info.sha256, sha256(&data));
    let (announced, trailers) = refusing.seen().pop().expect("second put");
    assert_eq!(announced, "x-arbor-sha256, x-arbor-crc32c");
    assert_eq!(trailers, vec!["x-arbor-sha256", "x-arbor-crc32c"]);
    cluster.stop().await;
}

#[tokio::test]
async fn a_scrub_keeps_a_chunk_whose_bytes_are_intact_but_whose_sha256_is_wrong() {
    let mut node = Node::start().await;
    let client = clients().server(&node.addr).expect("client");
    let data = source(MIB + 11, 80);
    let id = ChunkId::generate();
    // A writer vouching for a wrong SHA-256 with the right CRC32C: the
    // server checks only the CRC32C, so it stores the chunk.
    let (digests, trailer) = tokio::sync::oneshot::channel();
    digests
        .send(([7; 32], crc32c::crc32c(&data)))
        .expect("send digests");
    let info = client
        .put(
            id,
            ExpectedSha256::Vouched(trailer),
            stream::iter(pieces(&data)),
        )
        .await
        .expect("vouched put");
    assert_eq!(info.sha256, [7; 32]);

    let scrubber = Scrubber::new(node.store.clone(), 1 << 40).expect("scrubber");
    let report = tokio::time::timeout(WAIT, scrubber.scrub_once(&CancellationToken::new()))
        .await
        .expect("scrub in time")
        .expect("scrub");
    assert_eq!(
        (
            report.good,
            report.corrupt_count,
            report.fingerprint_mismatches,
            report.errors
        ),
        (0, 0, 1, 0)
    );
    assert!(
        scrubber
            .quarantined()
            .await
            .expect("quarantined")
            .is_empty()
    );
    // Still served, byte for byte.
    let got = get_direct(&client, id, 0..data.len() as u64)
        .await
        .expect("still served");
    assert!(got == data);
    node.stop().await;
}
