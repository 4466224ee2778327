//! The layout chunk ids and upload ids share: 48 bits of milliseconds
//! since the Unix epoch (big-endian, so ids sort by time), then 80 random
//! bits.

use crate::clock::Entropy;

/// A new id made at `ms` (clamped to 48 bits), its tail from `entropy`.
pub(crate) fn make(ms: i64, entropy: &dyn Entropy) -> [u8; 16] {
    let ms = u64::try_from(ms).unwrap_or(0).min((1 << 48) - 1);
    let mut id = [0u8; 16];
    entropy.fill(&mut id);
    id[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    id
}

/// The milliseconds an id was made at.
pub(crate) fn millis(id: &[u8; 16]) -> i64 {
    let mut ms = [0u8; 8];
    ms[2..].copy_from_slice(&id[..6]);
    i64::try_from(u64::from_be_bytes(ms)).unwrap_or(i64::MAX)
}

/// An id from its 32 hex digits.
pub(crate) fn from_hex(s: &str) -> Option<[u8; 16]> {
    let mut id = [0u8; 16];
    hex::decode_to_slice(s, &mut id).ok()?;
    Some(id)
}
