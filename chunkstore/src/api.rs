//! What the chunk server and its client agree on: header names, error codes
//! and JSON bodies. The HTTP API itself is described in `server.rs`.

use arbor_meta::ChunkId;
use serde::{Deserialize, Serialize};

/// Expected (request) or stored (response) SHA-256 of a chunk, 64 hex.
pub const HEADER_SHA256: &str = "x-arbor-sha256";
/// CRC32C of all the chunk's data, 8 hex digits (big-endian), as a
/// trailer beside an `x-arbor-sha256` trailer: the writer vouches for the
/// SHA-256, and the server checks the bytes against the CRC32C only.
pub const HEADER_CRC32C: &str = "x-arbor-crc32c";
/// Size of the whole chunk on GET and HEAD, whatever the range.
pub const HEADER_CHUNK_SIZE: &str = "x-arbor-chunk-size";
/// Machine-readable error code on every error response.
pub const HEADER_ERROR: &str = "x-arbor-error";

/// Error codes (`x-arbor-error` and the `code` of an error body).
pub mod code {
    pub const NOT_FOUND: &str = "not-found";
    pub const CORRUPT: &str = "corrupt";
    pub const CHECKSUM_MISMATCH: &str = "checksum-mismatch";
    pub const INVALID_RANGE: &str = "invalid-range";
    pub const TOO_LARGE: &str = "too-large";
    /// A PUT of an id already stored with different content.
    pub const EXISTS: &str = "exists";
    pub const BAD_REQUEST: &str = "bad-request";
    /// A PUT body that stalled or broke off.
    pub const BODY: &str = "body";
    pub const NO_ROUTE: &str = "no-route";
    pub const METHOD: &str = "method-not-allowed";
    pub const IO: &str = "io";
    pub const INTERNAL: &str = "internal";
    /// The server's disk is (nearly) full: it takes no new chunk.
    pub const STORAGE_FULL: &str = "storage-full";
    /// A request without a valid MAC under the cluster's secret.
    pub const UNAUTHENTICATED: &str = "unauthenticated";
}

/// Body of every error response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) code: String,
    pub(crate) message: String,
    /// The chunk's size, on `invalid-range`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) size: Option<u64>,
}

/// Body of a successful PUT.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PutReply {
    pub(crate) id: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

/// Body of `GET /chunks`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct InventoryWire {
    pub(crate) ids: Vec<String>,
    pub(crate) truncated: bool,
}

/// One page of a chunk server's inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventory {
    /// Increasing ids, all greater than the page's `after`.
    pub ids: Vec<ChunkId>,
    /// More ids follow the last one.
    pub truncated: bool,
}

/// Body of `GET /status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub zone: String,
    pub chunks: u64,
    /// Bytes of chunk files (footers included).
    pub used_bytes: u64,
    /// The configured capacity (no portable safe free-space call exists
    /// without `unsafe`; the operator states what the server may use).
    pub capacity_bytes: u64,
    pub free_bytes: u64,
    /// Chunk files moved aside by the scrubber.
    pub quarantined: u64,
}

pub(crate) fn parse_sha256(hex_text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    Some(out)
}

pub(crate) fn parse_crc32c(hex_text: &str) -> Option<u32> {
    let mut out = [0u8; 4];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    Some(u32::from_be_bytes(out))
}

/// Only the canonical (lowercase) form names a chunk on the wire.
pub(crate) fn parse_id(hex_text: &str) -> Option<ChunkId> {
    ChunkId::from_hex(hex_text).filter(|id| id.to_hex() == hex_text)
}
