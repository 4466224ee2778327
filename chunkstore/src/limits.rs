//! Named limits of the chunk store.

/// Each block of this many bytes carries its own CRC32C.
pub const BLOCK_SIZE: u64 = 64 * 1024;
/// Default chunk size (brief.md §4, design document: 64 MiB).
pub const CHUNK_SIZE_DEFAULT: u64 = 64 * 1024 * 1024;
/// Largest chunk a store accepts.
pub const CHUNK_SIZE_MAX: u64 = 256 * 1024 * 1024;
/// A read streams at most this many bytes per piece, so a reader's memory is
/// bounded by one piece however large the range.
pub const READ_PIECE_SIZE_MAX: u64 = 1024 * 1024;

const _: () = assert!(CHUNK_SIZE_DEFAULT <= CHUNK_SIZE_MAX);
const _: () = assert!(CHUNK_SIZE_DEFAULT % BLOCK_SIZE == 0);
const _: () = assert!(READ_PIECE_SIZE_MAX % BLOCK_SIZE == 0);
const _: () = assert!(READ_PIECE_SIZE_MAX >= BLOCK_SIZE);
