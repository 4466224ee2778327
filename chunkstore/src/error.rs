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
}
