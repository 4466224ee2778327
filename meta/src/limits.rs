//! Named limits of the namespace, each with the reason it exists.
//! Configuration may tighten these, never loosen them.

/// S3's maximum key length in bytes (UTF-8).
pub const KEY_LEN_MAX: usize = 1024;
/// S3 bucket names are 3..=63 characters.
pub const BUCKET_NAME_LEN_MIN: usize = 3;
pub const BUCKET_NAME_LEN_MAX: usize = 63;
/// S3 returns at most 1000 keys per listing page.
pub const LIST_PAGE_MAX: usize = 1000;
/// Objects up to this size are stored inline in their metadata record and
/// touch no chunk server: a chunk's file, fsync, record and requests would
/// cost more than the bytes (docs/design.md, Data path).
pub const INLINE_OBJECT_SIZE_MAX: u64 = 64 * 1024;
/// S3's limit on user metadata (`x-amz-meta-*` names and values), in bytes.
pub const USER_METADATA_SIZE_MAX: usize = 2 * 1024;
/// Most commands carried in one Raft log entry by group commit: bounds the
/// entry size (inline objects are at most 64 KiB each, so ≤ 16 MiB).
pub const COMMANDS_PER_ENTRY_MAX: usize = 256;
/// The batcher closes a log entry once its commands reach about this many
/// bytes: a follower must receive and fsync an append within the 100 ms
/// heartbeat (openraft's timeout for an append; docs/design.md, openraft
/// on redb), and 256 inline objects of 64 KiB would make 16 MiB.
pub const ENTRY_SIZE_TARGET: usize = 4 * 1024 * 1024;
/// Proposals waiting for the group-commit batcher; callers wait beyond it.
pub const PROPOSALS_QUEUED_MAX: usize = 4096;
/// A key has at most this many `/`-separated segments (each a tree level);
/// bounded by the key length anyway, named so recursion depth is explicit.
pub const TREE_DEPTH_MAX: usize = KEY_LEN_MAX + 1;

const _: () = assert!(BUCKET_NAME_LEN_MIN <= BUCKET_NAME_LEN_MAX);
const _: () = assert!(INLINE_OBJECT_SIZE_MAX as usize * COMMANDS_PER_ENTRY_MAX <= 16 * 1024 * 1024);

/// S3's highest part number.
pub const PART_NUMBER_MAX: u32 = 10_000;
/// S3's minimum size of every part but the last of a multipart upload.
pub const PART_SIZE_MIN: u64 = 5 * 1024 * 1024;
/// S3's maximum part size.
pub const PART_SIZE_MAX: u64 = 5 * 1024 * 1024 * 1024;
/// ListParts and ListMultipartUploads return at most this many per page.
pub const LIST_PARTS_MAX: usize = 1000;
pub const LIST_UPLOADS_MAX: usize = 1000;
/// Abandoned multipart uploads expire after this long by default
/// (docs/design.md, Multipart uploads).
pub const UPLOAD_EXPIRY_DEFAULT_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Uploads one ExpireUploads command aborts at most: bounds the entry's work.
pub const UPLOADS_EXPIRED_PER_COMMAND_MAX: u32 = 256;

const _: () = assert!(PART_SIZE_MIN <= PART_SIZE_MAX);

/// S3 allows at most 10 tags per object, keys of 128 and values of 256
/// Unicode characters.
pub const OBJECT_TAGS_MAX: usize = 10;
pub const TAG_KEY_CHARS_MAX: usize = 128;
pub const TAG_VALUE_CHARS_MAX: usize = 256;
/// S3 allows at most 50 tags per bucket (same key and value lengths).
pub const BUCKET_TAGS_MAX: usize = 50;

/// Bytes of snapshot per install-snapshot request (openraft's
/// `snapshot_max_chunk_size`): the leader reads this much of the snapshot
/// file per request and the follower writes it to its file, so neither
/// holds more of a snapshot in memory. Each chunk must arrive within the
/// install-snapshot timeout (5 s), even over a slow link.
pub const SNAPSHOT_CHUNK_BYTES_MAX: u64 = 3 * 1024 * 1024;
/// redb's page cache for the state machine's database (redb's default is
/// 1 GiB). Pages beyond it are read back through the operating system's
/// page cache, which is not the process's memory, so a node's resident
/// size stays bounded however large its state grows. redb counts page
/// bytes; the allocations holding them cost about 1.4 times that
/// (measured: two 64 MiB caches held about 180 MiB once full).
pub const REDB_STATE_CACHE_BYTES: usize = 48 * 1024 * 1024;
/// redb's page cache for the Raft log's database. The log is written at
/// its tail and read back there within milliseconds (apply, replication),
/// so a small cache serves it; a lagging follower's older entries come
/// from the operating system's page cache.
pub const REDB_LOG_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// Largest body of one RPC or answer between meta nodes and clients: one
/// log entry (≤ 16 MiB of inline data at worst, about `ENTRY_SIZE_TARGET`
/// usually), a snapshot chunk ([`SNAPSHOT_CHUNK_BYTES_MAX`]) or a listing
/// page, with room for encoding overhead.
pub const RPC_BODY_SIZE_MAX: usize = 64 * 1024 * 1024;
const _: () = assert!(SNAPSHOT_CHUNK_BYTES_MAX * 4 <= RPC_BODY_SIZE_MAX as u64);
/// An append-entries request whose encoding exceeds this is split (openraft
/// retries with fewer entries on `PayloadTooLarge`); a single entry may
/// exceed it, up to `RPC_BODY_SIZE_MAX`.
pub const APPEND_BODY_SIZE_TARGET: usize = 8 * 1024 * 1024;
/// Open connections a meta server accepts; more are refused at once. Peers
/// keep a few keep-alive connections each; gateways pool theirs.
pub const SERVER_CONNECTIONS_MAX: usize = 1024;
/// Requests a meta server handles at once; more wait for a slot. Above the
/// batcher's queue would only move the wait elsewhere.
pub const SERVER_REQUESTS_IN_FLIGHT_MAX: usize = PROPOSALS_QUEUED_MAX;
/// Raft RPCs a meta server handles at once (separate slots): openraft
/// keeps about one in flight per peer and kind, so this only caps abuse.
pub const SERVER_RAFT_REQUESTS_IN_FLIGHT_MAX: usize = 256;
/// Attempts of one remote client call (redirects and retries together);
/// the call's deadline usually ends it first (10 s of retries paced at
/// most 100 ms apart, plus the redirects between them).
pub const REMOTE_ATTEMPTS_MAX: usize = 256;

const _: () = assert!(APPEND_BODY_SIZE_TARGET < RPC_BODY_SIZE_MAX);
const _: () = assert!(ENTRY_SIZE_TARGET <= APPEND_BODY_SIZE_TARGET);
const _: () =
    assert!(INLINE_OBJECT_SIZE_MAX as usize * COMMANDS_PER_ENTRY_MAX < RPC_BODY_SIZE_MAX / 2);

/// Chunk ids one orphan sweep command may ask about.
pub const ORPHAN_CANDIDATES_MAX: usize = 4096;
/// Chunk ids one chunk-record read may ask about.
pub const CHUNK_RECORDS_READ_MAX: usize = 4096;

/// Rows (objects and emptied directories) one reclaim command releases:
/// bounds the command's size in the log and its apply time, like a
/// DeleteObjects of 1000 keys.
pub const RECLAIM_BATCH_MAX: u32 = 1000;

/// Client tokens remembered for idempotent renames; the oldest is
/// forgotten first. AWS keeps a token for a limited time too; a retry
/// comes within seconds.
pub const CLIENT_TOKENS_MAX: u64 = 100_000;
/// Completed multipart uploads remembered so a retried
/// CompleteMultipartUpload (its first answer lost) answers as the first
/// did; beyond this, the upload initiated first is forgotten first. A retry
/// comes within seconds of the completion; AWS too answers NoSuchUpload
/// once it has forgotten a completed upload.
pub const COMPLETED_UPLOADS_MAX: u64 = 100_000;
/// A client token's length (AWS: at most 64 ASCII characters, 33..=126).
pub const CLIENT_TOKEN_LEN_MAX: usize = 64;

/// Access keys a deployment may have: bounds the rows a bucket deletion
/// visits to drop their grants, and the admin API's listing.
pub const ACCESS_KEYS_MAX: u64 = 1000;
/// An access key id's length: AWS's are 16 to 128 characters.
pub const ACCESS_KEY_LEN_MIN: usize = 16;
pub const ACCESS_KEY_LEN_MAX: usize = 128;
/// A key's name, for people: a word or a short phrase.
pub const ACCESS_KEY_NAME_LEN_MAX: usize = 128;
/// A bucket policy's size: AWS's limit (20 KB).
pub const BUCKET_POLICY_SIZE_MAX: usize = 20 * 1024;

/// Free bytes a metadata node keeps on its data directory's file system:
/// below it, commands that add data are refused (`InsufficientStorage`,
/// retryable) while deletes and maintenance go on, so that redb never
/// meets a full disk mid-commit, which would stop Raft.
pub const DISK_RESERVE_BYTES: u64 = 64 * 1024 * 1024;
/// A bucket's CORS rules: AWS's limit.
pub const BUCKET_CORS_RULES_MAX: usize = 100;
/// A bucket's CORS configuration's size: AWS's limit (64 KB).
pub const BUCKET_CORS_SIZE_MAX: usize = 64 * 1024;
/// Rules in one bucket lifecycle configuration (AWS's limit).
pub const LIFECYCLE_RULES_MAX: usize = 1000;
/// Bytes of a lifecycle rule's ID (AWS's limit).
pub const LIFECYCLE_RULE_ID_LEN_MAX: usize = 255;
/// Keys (or uploads) one lifecycle batch looks at, at most.
pub const LIFECYCLE_BATCH_MAX: u32 = 1000;
/// Tags one lifecycle filter may ask for (a bucket's tag set's bound; a
/// version carries at most 10, so more never match, but are stored).
pub const LIFECYCLE_FILTER_TAGS_MAX: usize = 50;
