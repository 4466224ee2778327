//! The chunkstore crate's one error type.

use arbor_meta::ChunkId;

pub type Result<T, E = ChunkError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk {0} not found")]
    NotFound(ChunkId),
    /// Stored bytes do not match their CRC32C or SHA-256: the copy is bad
    /// and must not be served.
    #[error("chunk {id} is corrupt: {detail}")]
    Corrupt { id: ChunkId, detail: String },
    /// The bytes written do not hash to what the writer expected.
    #[error("chunk {id}: checksum mismatch on write")]
    ChecksumMismatch { id: ChunkId },
    /// A whole read found every block matching its CRC32C but the data
    /// not hashing to the SHA-256 recorded for it: the bytes are those the
    /// server received, and the recorded fingerprint is what is wrong (a
    /// writer that vouched for a wrong SHA-256, docs/design.md "Checks").
    /// Not a reason to quarantine the copy.
    #[error("chunk {id}: the data matches its block CRCs but not its recorded SHA-256")]
    FingerprintMismatch { id: ChunkId },
    #[error("range {start}..{end} is outside chunk {id} of {size} bytes")]
    InvalidRange {
        id: ChunkId,
        start: u64,
        end: u64,
        size: u64,
    },
    #[error("chunk {id} would exceed {max} bytes")]
    TooLarge { id: ChunkId, max: u64 },
    #[error("chunk store I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A chunk server could not be reached, or the exchange broke off:
    /// connect failure, timeout, reset, or a body cut short. The server may
    /// be fine a moment later; another replica may serve meanwhile.
    #[error("chunk server {server}: {detail}")]
    Network { server: String, detail: String },
    /// A chunk server answered with an error that has no variant of its own
    /// (a malformed request, overload, an internal failure). `code` is the
    /// server's `x-arbor-error` code.
    #[error("chunk server {server} answered {status} {code}: {message}")]
    Remote {
        server: String,
        status: u16,
        code: String,
        message: String,
    },
    /// Not enough replicas could store (or serve) chunk `id`; `detail`
    /// lists what each replica said.
    #[error("chunk {id}: not enough replicas: {detail}")]
    ReplicasUnavailable { id: ChunkId, detail: String },
    /// The metadata group could not answer (the registry, chunk records).
    #[error("metadata service: {0}")]
    Meta(#[from] arbor_meta::MetaError),
    /// The chunk server configuration is invalid (checked at startup).
    #[error("invalid chunk server configuration: {0}")]
    InvalidConfig(String),
}
