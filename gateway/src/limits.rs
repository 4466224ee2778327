//! S3's limits as the gateway enforces them, so clients get S3's own error
//! codes when they exceed one.

/// Largest object a single PutObject may upload: S3's 5 GiB.
pub const PUT_OBJECT_SIZE_MAX: u64 = 5 * 1024 * 1024 * 1024;
/// Keys returned per listing page at most (S3: 1000).
pub const LIST_KEYS_MAX: i32 = 1000;
/// ListBuckets page size at most (S3 allows up to 10,000 with pagination).
pub const LIST_BUCKETS_MAX: usize = 10_000;
/// Keys one DeleteObjects request may name (S3: 1000).
pub const DELETE_OBJECTS_KEYS_MAX: usize = 1000;
/// Bytes of an XML request body (DeleteObjects, CompleteMultipartUpload,
/// tagging, ...) at most: s3s reads these whole into memory. A thousand
/// 1 KiB keys, or ten thousand parts, take about 1-2 MiB; larger bodies get
/// S3's 400 MaxMessageLengthExceeded. (s3s's default, set explicitly.)
pub const XML_BODY_SIZE_MAX: usize = 20 * 1024 * 1024;
/// Bytes of a browser upload's form before its file (the fields and
/// their part headers) at most: S3's 20 KiB. The fields are held in
/// memory while the policy and signature are checked; the file streams
/// (`post_form`). Over this is S3's 400 MaxPostPreDataLengthExceededError.
pub const FORM_FIELDS_SIZE_MAX: usize = 20 * 1024;
/// A request body that sends nothing for this long is abandoned with
/// S3's 400 RequestTimeout (S3 waits about 20 s), so a stalled client
/// cannot hold a connection and its upload slot forever.
pub const BODY_IDLE_TIMEOUT_SECS: u64 = 20;
/// A client has this long to send a request's header section.
pub const HEADER_READ_TIMEOUT_SECS: u64 = 30;
/// `Retry-After` (seconds) on every 500 and 503: the faults behind them
/// (no metadata leader, chunk servers unreachable) last about a second.
pub const RETRY_AFTER_SECS: u64 = 1;
/// Bytes of a request body the gateway reads and discards after answering
/// without it (a PUT refused before its body streamed), so that the
/// connection stays open and the answer reaches the client. Beyond this
/// the connection is closed instead (one chunk's worth).
pub const UNREAD_BODY_DRAIN_MAX: usize = 64 * 1024 * 1024;
/// How long in-flight requests may run after shutdown starts.
pub const SHUTDOWN_DRAIN_SECS: u64 = 20;
/// Bytes of request headers (names and values) at most: S3 refuses a
/// larger header section with RequestHeaderSectionTooLarge (its limit is
/// 8 KiB), so no client relies on more, and a request cannot make every
/// handler carry (and s3s log) tens of KiB of headers.
pub const HEADER_SECTION_SIZE_MAX: usize = 8 * 1024;
/// Bytes of a PUT or POST body sent without a Content-Length (HTTP/1.1
/// chunked transfer coding, or an HTTP/2 stream) at most. s3s checks a
/// body's signed SHA-256 against its declared length, so such a body is
/// read into memory and given its length before s3s sees the request.
/// Larger uploads declare their length, or go multipart; over this is
/// S3's EntityTooLarge.
pub const UNSIZED_BODY_SIZE_MAX: usize = 32 * 1024 * 1024;
/// Bodies without a Content-Length read into memory at once; more wait.
/// With `UNSIZED_BODY_SIZE_MAX` this bounds their memory to 256 MiB.
pub const UNSIZED_BODIES_MAX: usize = 8;
/// Concurrent connections the server accepts; more wait in the backlog.
pub const CONNECTIONS_MAX: usize = 4096;

const _: () = assert!(LIST_KEYS_MAX as usize == arbor_meta::limits::LIST_PAGE_MAX);
// The largest DeleteObjects body S3 accepts fits: 1000 keys of 1024 bytes,
// each byte escaped as an XML character reference (at most 6 bytes), plus
// markup.
const _: () = assert!(
    DELETE_OBJECTS_KEYS_MAX * (arbor_meta::limits::KEY_LEN_MAX * 6 + 100) < XML_BODY_SIZE_MAX
);
/// How long a gateway trusts what it read of an access key (its secret
/// and permissions, or its absence): a change made through another
/// gateway takes effect within this. One second keeps a key lookup off
/// nearly every request's path while a revoked key stops working at once
/// in practice.
pub const KEY_CACHE_TTL_MS: i64 = 1000;
/// Access keys (known or unknown) a gateway remembers at most; when full it
/// forgets them all, so a client trying random key ids costs memory
/// bounded by this.
pub const KEY_CACHE_ENTRIES_MAX: usize = 4096;
