//! Arbor's data plane: immutable chunks, each checked by SHA-256 and by a
//! CRC32C per 64 KiB block, so a ranged read verifies only what it touches.
//!
//! A chunk store never interprets keys: it knows chunk ids and bytes.

pub mod error;
mod format;
pub mod limits;
pub mod store;

pub use error::{ChunkError, Result};
pub use store::{ChunkInfo, ChunkStore, ChunkWriter};
