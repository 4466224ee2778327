//! Named limits of the chunk store, server and client.

use std::time::Duration;

/// Each block of this many bytes carries its own CRC32C.
pub const BLOCK_SIZE: u64 = 64 * 1024;
/// Default chunk size: large enough that a chunk's fixed costs (a file and
/// its fsync, a chunk record, a placement, a request per replica) are small
/// next to its bytes, small enough that a repair or re-replication copies
/// little at a time. Gateways may choose another (`--chunk-size`).
pub const CHUNK_SIZE_DEFAULT: u64 = 64 * 1024 * 1024;
/// Largest chunk a store accepts.
pub const CHUNK_SIZE_MAX: u64 = 256 * 1024 * 1024;
/// A read streams at most this many bytes per piece, so a reader's memory is
/// bounded by one piece however large the range. Each piece costs a
/// blocking-pool hop and the wakes around it: 2 MiB pieces take 15–20 %
/// less CPU per MiB of a large GET than 1 MiB ones (docs/benchmarks.md,
/// "Profiles").
pub const READ_PIECE_SIZE_MAX: u64 = 2 * 1024 * 1024;

/// Chunk data goes to disk with direct I/O in runs of this many bytes,
/// staged in one buffer per chunk being written (`direct.rs`).
pub const DIRECT_WRITE_SIZE: usize = 1024 * 1024;
/// A chunk writer hands its bytes to the file in batches of at least this
/// many (one blocking-pool hop each, overlapped with gathering the next),
/// whatever the sizes of the pieces it is given.
pub const WRITE_BATCH_SIZE: usize = DIRECT_WRITE_SIZE;
/// Memory address, file offset and length alignment of direct I/O:
/// 4 KiB, a multiple of every common logical block size (512 B and
/// 4 KiB), so it suits any disk without asking it.
pub const DIRECT_IO_ALIGN: usize = 4096;

/// Aligned read buffers a store keeps for reuse once their pieces are
/// sent (`direct::ReadBuffers`): enough for a few GETs reading at once,
/// each holding a piece and the one read ahead; at most 16 MiB idle.
pub const READ_BUFFERS_KEPT: usize = 8;

const _: () = assert!(CHUNK_SIZE_DEFAULT <= CHUNK_SIZE_MAX);
const _: () = assert!(CHUNK_SIZE_DEFAULT.is_multiple_of(BLOCK_SIZE));
const _: () = assert!(READ_PIECE_SIZE_MAX.is_multiple_of(BLOCK_SIZE));
const _: () = assert!(READ_PIECE_SIZE_MAX >= BLOCK_SIZE);

// --- Chunk server (server.rs) -------------------------------------------

/// Connections a chunk server serves at once; more wait in the listen
/// backlog. A GET holds at most two read pieces in memory, so this also
/// bounds read buffers (128 × 4 MiB).
pub const SERVER_CONNECTIONS_MAX: usize = 128;
/// Request line plus headers of one request; ours are a few hundred bytes.
pub const REQUEST_HEAD_SIZE_MAX: usize = 16 * 1024;
/// Header fields in one request.
pub const REQUEST_HEADERS_MAX: usize = 32;
/// A client must send its request head within this time. hyper also
/// applies it to an idle keep-alive connection waiting for its next
/// request, so it is the server's keep-alive idle limit too.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the next piece of a body (request or response) or for
/// a socket to take more bytes; a stalled peer is cut off after this.
pub const BODY_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time in-flight requests get to finish when a server stops.
pub const DRAIN_TIMEOUT_DEFAULT: Duration = Duration::from_secs(20);
/// Chunk ids in one inventory page (`GET /chunks`).
pub const INVENTORY_PAGE_MAX: usize = 1000;
/// Largest JSON body a client accepts (an inventory page is ~35 KB).
pub const JSON_BODY_SIZE_MAX: usize = 256 * 1024;

// --- Chunk client (client.rs) -------------------------------------------

/// Default time to open a TCP connection to a chunk server.
pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(2);
/// Default time for a chunk server to answer a request once it has the
/// whole request (for a PUT: once the body has been sent, fsync included).
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Idle pooled connections are closed after this: well before the server
/// closes them ([`HEADER_READ_TIMEOUT`]), so a request is never sent on a
/// connection the server is closing at that moment.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Idle pooled connections kept per chunk server.
pub const POOL_IDLE_PER_SERVER_MAX: usize = 32;

// --- Replication (replication.rs) ---------------------------------------

/// How long the replicas of a streaming write wait for one that lags:
/// once a quorum has taken a piece, a replica that has not taken it
/// within this time is dropped from the write (and replaced, or the chunk
/// recorded under-replicated). Well under [`BODY_STALL_TIMEOUT`], after
/// which the replicas that kept up would give the body up themselves.
pub const REPLICA_LAG_TIMEOUT: Duration = Duration::from_secs(5);
/// Pieces queued for one replica of a streaming write; with 1 MiB pieces,
/// a write holds at most this many MiB per replica.
pub const REPLICA_QUEUE_PIECES: usize = 4;
/// Replicas of one chunk (a write's targets plus its replacements).
pub const REPLICAS_MAX: usize = 16;
/// Background repairs running at once in one `Repairer`.
pub const REPAIRS_CONCURRENT_MAX: usize = 4;
/// Repairs waiting to run; more are dropped (and logged): the scrubber and
/// re-replication find those chunks again.
pub const REPAIR_QUEUE_MAX: usize = 1024;

// --- Scrubber (scrub.rs) -------------------------------------------------

/// Default scrub rate: reads every byte of a 4 TB disk in about 11 hours
/// without taking more than a fraction of its bandwidth.
pub const SCRUB_RATE_DEFAULT: u64 = 100 * 1024 * 1024;
/// Slowest scrub rate a configuration may set (a pass must end).
pub const SCRUB_RATE_MIN: u64 = 1024 * 1024;
/// Default pause between two scrub passes.
pub const SCRUB_INTERVAL_DEFAULT: Duration = Duration::from_secs(24 * 3600);
/// Corrupt ids a scrub report holds; beyond this only the count grows.
pub const SCRUB_REPORT_IDS_MAX: usize = 10_000;

const _: () = assert!(INVENTORY_PAGE_MAX * 40 < JSON_BODY_SIZE_MAX);
const _: () = assert!(POOL_IDLE_TIMEOUT.as_millis() * 2 <= HEADER_READ_TIMEOUT.as_millis());

/// How long a gateway uses its copy of the chunk-server registry.
pub const REGISTRY_REFRESH: Duration = Duration::from_secs(1);
/// How often the healer looks for chunks to re-replicate.
pub const HEAL_INTERVAL_DEFAULT: Duration = Duration::from_secs(10);
/// How long an OFFLINE server's replicas still count (it may be restarting)
/// before its chunks are re-replicated elsewhere.
pub const OFFLINE_GRACE_DEFAULT: Duration = Duration::from_secs(5 * 60);
/// Chunks one healer pass looks at (copying is bounded by the network; a
/// pass that stops here resumes at the next).
pub const HEAL_CHUNKS_PER_PASS: usize = 10_000;
/// How old an unreferenced chunk file must be before it is collected.
pub const ORPHAN_GRACE_DEFAULT: Duration = Duration::from_secs(24 * 3600);

/// Free bytes the chunk store keeps on its file system: below it, new
/// chunks are refused (an I/O error of kind `StorageFull`, retryable). Twice
/// the metadata store's reserve, so that on a disk both share (`arbor
/// serve`) chunks stop first and metadata commits, deletes included,
/// still find room.
pub const DISK_RESERVE_BYTES: u64 = 2 * arbor_meta::limits::DISK_RESERVE_BYTES;
