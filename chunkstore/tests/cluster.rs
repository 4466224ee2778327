//! Chunk servers on loopback in one process: the HTTP API, replicated
//! writes, failover reads, repair and scrubbing. Every wait is bounded.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use arbor_chunkstore::{
    ChunkClient, ChunkClients, ChunkError, ChunkStore, ClientOptions, ExpectedSha256, ServerOptions,
};
use arbor_meta::ChunkId;
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
        let store = ChunkStore::open(dir.path()).await.expect("open store");
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
        self.dir.path().join(&hex[..2]).join(hex)
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
    let id = ChunkId::random();

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
    let missing = ChunkId::random();
    assert!(
        matches!(client.get(missing, 0..1).await, Err(ChunkError::NotFound(m)) if m == missing)
    );
    assert!(matches!(
        client.stat(missing).await,
        Err(ChunkError::NotFound(_))
    ));

    // Wrong expected hash: refused, nothing stored.
    let other = ChunkId::random();
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
    let trailed = ChunkId::random();
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
    let aborted = ChunkId::random();
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

    // Inventory pages and status.
    let mut all = vec![id, trailed];
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
    let id = ChunkId::random();
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
    let id2 = ChunkId::random();
    put_direct(&client, id2, &data).await.expect("put");
    node.corrupt(id2, 2 * MIB + 5);
    let error = get_direct(&client, id2, 0..data.len() as u64)
        .await
        .expect_err("cut off");
    assert!(matches!(error, ChunkError::Network { .. }), "{error:?}");
    assert_eq!(node.store.list().await.expect("list").len(), 2);
    node.stop().await;
}
