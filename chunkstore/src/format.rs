//! The on-disk format of one chunk file.
//!
//! A chunk is one file, so renaming it into place publishes data and footer
//! atomically. All integers are little-endian.
//!
//! ```text
//! field         size              meaning
//! data          data_len          the chunk's bytes
//! block CRCs    4 × block_count   CRC32C (u32) of each 64 KiB block of data;
//!                                 the last block may be short
//! sha256        32                SHA-256 of data
//! data_len      8                 u64
//! block_count   4                 u32, = ceil(data_len / 64 KiB)
//! version       4                 u32, FORMAT_VERSION
//! footer_crc    4                 u32, CRC32C of block CRCs ‖ sha256 ‖
//!                                 data_len ‖ block_count ‖ version
//! magic         8                 b"ARBORCHK"
//! ```
//!
//! The last 60 bytes (sha256 to magic) are the fixed *tail*; block CRCs and
//! tail together are the *footer*. A reader reads the tail, checks the magic
//! and that `data_len`, `block_count` and the file length agree, then reads
//! the block CRCs and checks `footer_crc` over both, then the version. Any
//! failure (a truncated file included) is `Corrupt`. Each data block is
//! checked against its CRC before any of its bytes are served; a read of the
//! whole chunk also checks the SHA-256.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use arbor_meta::ChunkId;
use sha2::{Digest, Sha256};

use crate::error::{ChunkError, Result};
use crate::limits;

/// The last 8 bytes of every chunk file.
pub(crate) const MAGIC: [u8; 8] = *b"ARBORCHK";
/// Bumped on any incompatible change to this layout.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// `limits::BLOCK_SIZE` as a buffer length.
pub(crate) const BLOCK_LEN: usize = 64 * 1024;
/// sha256 + data_len + block_count + version + footer_crc + magic.
const TAIL_LEN: usize = 32 + 8 + 4 + 4 + 4 + 8;
/// The part of the tail covered by `footer_crc` (sha256 to version).
const TAIL_CHECKED_LEN: usize = 32 + 8 + 4 + 4;
const TAIL_LEN_U64: u64 = TAIL_LEN as u64;
const CRC_LEN: u64 = 4;

const _: () = assert!(BLOCK_LEN as u64 == limits::BLOCK_SIZE);
// The block count of any chunk we accept fits the u32 field.
const _: () = assert!(limits::CHUNK_SIZE_MAX / limits::BLOCK_SIZE < u32::MAX as u64);

/// Number of blocks (and block CRCs) of a chunk of `data_len` bytes.
pub(crate) fn block_count(data_len: u64) -> u64 {
    data_len.div_ceil(limits::BLOCK_SIZE)
}

/// A chunk's footer, decoded and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Footer {
    pub(crate) sha256: [u8; 32],
    pub(crate) data_len: u64,
    pub(crate) block_crcs: Vec<u32>,
}

impl Footer {
    /// The footer's bytes, to append after the data.
    pub(crate) fn encode(&self) -> io::Result<Vec<u8>> {
        let count = u32::try_from(self.block_crcs.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many blocks"))?;
        let mut out = Vec::with_capacity(self.block_crcs.len() * 4 + TAIL_LEN);
        for crc in &self.block_crcs {
            out.extend_from_slice(&crc.to_le_bytes());
        }
        out.extend_from_slice(&self.sha256);
        out.extend_from_slice(&self.data_len.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let footer_crc = crc32c::crc32c(&out);
        out.extend_from_slice(&footer_crc.to_le_bytes());
        out.extend_from_slice(&MAGIC);
        Ok(out)
    }

    /// Reads and checks the footer of chunk file `file` (of chunk `id`).
    /// Leaves the file position unspecified.
    pub(crate) fn read_from(file: &mut File, id: ChunkId) -> Result<Footer> {
        let corrupt = |detail: String| ChunkError::Corrupt { id, detail };
        let file_len = file.metadata()?.len();
        let tail_start = file_len
            .checked_sub(TAIL_LEN_U64)
            .ok_or_else(|| corrupt(format!("file of {file_len} bytes is shorter than a footer")))?;
        let mut tail = [0u8; TAIL_LEN];
        file.seek(SeekFrom::Start(tail_start))?;
        file.read_exact(&mut tail)?;

        let mut fields = Fields(&tail);
        let short = || corrupt("short footer".to_owned());
        let sha256 = fields.take::<32>().ok_or_else(short)?;
        let data_len = u64::from_le_bytes(fields.take().ok_or_else(short)?);
        let count = u32::from_le_bytes(fields.take().ok_or_else(short)?);
        let version = u32::from_le_bytes(fields.take().ok_or_else(short)?);
        let footer_crc = u32::from_le_bytes(fields.take().ok_or_else(short)?);
        let magic = fields.take::<8>().ok_or_else(short)?;

        if magic != MAGIC {
            return Err(corrupt(
                "bad magic: truncated or not a chunk file".to_owned(),
            ));
        }
        if data_len > limits::CHUNK_SIZE_MAX || u64::from(count) != block_count(data_len) {
            return Err(corrupt(format!(
                "footer says {data_len} bytes in {count} blocks"
            )));
        }
        let table_len = u64::from(count) * CRC_LEN;
        let expected_len = data_len + table_len + TAIL_LEN_U64;
        if file_len != expected_len {
            return Err(corrupt(format!(
                "file is {file_len} bytes, footer implies {expected_len}"
            )));
        }

        let mut table = vec![0u8; usize::try_from(table_len).map_err(|_| short())?];
        file.seek(SeekFrom::Start(data_len))?;
        file.read_exact(&mut table)?;
        let checked = tail.get(..TAIL_CHECKED_LEN).ok_or_else(short)?;
        if crc32c::crc32c_append(crc32c::crc32c(&table), checked) != footer_crc {
            return Err(corrupt("footer CRC32C mismatch".to_owned()));
        }
        if version != FORMAT_VERSION {
            return Err(corrupt(format!("unsupported format version {version}")));
        }
        let (crcs, rest) = table.as_chunks::<4>();
        if !rest.is_empty() {
            return Err(short());
        }
        let block_crcs = crcs.iter().map(|crc| u32::from_le_bytes(*crc)).collect();
        Ok(Footer {
            sha256,
            data_len,
            block_crcs,
        })
    }
}

/// Takes fixed-size fields off the front of a byte slice.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

/// Per-block CRC32C, the whole data's CRC32C and (unless the writer
/// vouches for it) the SHA-256 of a chunk's data, fed in pieces of any size.
pub(crate) struct ChunkHasher {
    sha: Option<Sha256>,
    /// CRC32C of the complete blocks so far.
    whole_crc: u32,
    block_crcs: Vec<u32>,
    /// CRC32C of the current, incomplete block.
    block_crc: u32,
    /// Bytes in the current block; always < BLOCK_LEN between calls.
    block_fill: usize,
}

impl ChunkHasher {
    /// Hashing SHA-256 too.
    pub(crate) fn new() -> ChunkHasher {
        ChunkHasher {
            sha: Some(Sha256::new()),
            ..ChunkHasher::without_sha256()
        }
    }

    /// CRCs only: the SHA-256 comes from the writer.
    pub(crate) fn without_sha256() -> ChunkHasher {
        ChunkHasher {
            sha: None,
            whole_crc: 0,
            block_crcs: Vec::new(),
            block_crc: 0,
            block_fill: 0,
        }
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        if let Some(sha) = &mut self.sha {
            sha.update(data);
        }
        while !data.is_empty() {
            debug_assert!(self.block_fill < BLOCK_LEN);
            let room = BLOCK_LEN - self.block_fill;
            let (head, rest) = data.split_at_checked(room).unwrap_or((data, &[]));
            self.block_crc = crc32c::crc32c_append(self.block_crc, head);
            self.block_fill += head.len();
            if self.block_fill == BLOCK_LEN {
                self.whole_crc = append_block_crc(self.whole_crc, self.block_crc);
                self.block_crcs.push(self.block_crc);
                self.block_crc = 0;
                self.block_fill = 0;
            }
            data = rest;
        }
    }

    /// The digests of everything fed.
    pub(crate) fn finish(mut self) -> ChunkDigests {
        if self.block_fill > 0 {
            self.whole_crc =
                crc32c::crc32c_combine(self.whole_crc, self.block_crc, self.block_fill);
            self.block_crcs.push(self.block_crc);
        }
        ChunkDigests {
            sha256: self.sha.map(|sha| sha.finalize().into()),
            crc32c: self.whole_crc,
            block_crcs: self.block_crcs,
        }
    }
}

/// The CRC32C of some data followed by a full block, from the data's CRC
/// and the block's: `crc32c_combine(whole, block, BLOCK_LEN)`, which
/// costs tens of microseconds a call (a chain of GF(2) matrix squarings),
/// as much per MiB as the rest of a chunk's write. Appending `BLOCK_LEN`
/// bytes multiplies the CRC by a fixed polynomial: a linear map on its 32
/// bits, computed once as the images of the 32 single bits.
fn append_block_crc(whole: u32, block: u32) -> u32 {
    static SHIFT_BY_BLOCK: std::sync::LazyLock<[u32; 32]> = std::sync::LazyLock::new(|| {
        std::array::from_fn(|bit| crc32c::crc32c_combine(1 << bit, 0, BLOCK_LEN))
    });
    let shifted = (0..32)
        .filter(|bit| whole & (1 << bit) != 0)
        .fold(0, |acc, bit| acc ^ SHIFT_BY_BLOCK[bit]);
    shifted ^ block
}

/// What [`ChunkHasher`] computed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ChunkDigests {
    /// None when hashed [`ChunkHasher::without_sha256`].
    pub(crate) sha256: Option<[u8; 32]>,
    /// CRC32C of all the data.
    pub(crate) crc32c: u32,
    /// CRC32C of every block, the last one possibly short.
    pub(crate) block_crcs: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn hasher_matches_one_shot_whatever_the_pieces() {
        let len = 3 * BLOCK_LEN + 17;
        let bytes = data(len);
        let want_crcs: Vec<u32> = bytes.chunks(BLOCK_LEN).map(crc32c::crc32c).collect();
        let want_sha: [u8; 32] = Sha256::digest(&bytes).into();
        for piece in [1, 7, 1000, BLOCK_LEN - 1, BLOCK_LEN, BLOCK_LEN + 1, len] {
            let mut hasher = ChunkHasher::new();
            let mut vouched = ChunkHasher::without_sha256();
            for part in bytes.chunks(piece) {
                hasher.update(part);
                vouched.update(part);
            }
            let want = ChunkDigests {
                sha256: Some(want_sha),
                crc32c: crc32c::crc32c(&bytes),
                block_crcs: want_crcs.clone(),
            };
            let vouched = vouched.finish();
            assert_eq!(hasher.finish(), want, "piece {piece}");
            assert_eq!(vouched.sha256, None);
            assert_eq!(
                (vouched.crc32c, vouched.block_crcs),
                (want.crc32c, want.block_crcs),
                "piece {piece}"
            );
        }
        let empty = ChunkHasher::new().finish();
        assert_eq!(empty.sha256, Some(Sha256::digest(b"").into()));
        assert_eq!(empty.crc32c, 0);
        assert!(empty.block_crcs.is_empty());
    }

    #[test]
    fn appending_a_block_crc_is_crc32c_combine() {
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..200 {
            // xorshift: varied bit patterns, 0 and all-ones included below.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let (whole, block) = (x, x.rotate_left(11) ^ 0x5bd1_e995);
            assert_eq!(
                append_block_crc(whole, block),
                crc32c::crc32c_combine(whole, block, BLOCK_LEN)
            );
        }
        for (whole, block) in [(0, 0), (u32::MAX, 0), (0, u32::MAX), (u32::MAX, u32::MAX)] {
            assert_eq!(
                append_block_crc(whole, block),
                crc32c::crc32c_combine(whole, block, BLOCK_LEN)
            );
        }
    }

    fn chunk_file(len: usize) -> (tempfile::NamedTempFile, Footer) {
        let bytes = data(len);
        let mut hasher = ChunkHasher::new();
        hasher.update(&bytes);
        let digests = hasher.finish();
        let footer = Footer {
            sha256: digests.sha256.expect("hashed"),
            data_len: len as u64,
            block_crcs: digests.block_crcs,
        };
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(&bytes).expect("write data");
        file.write_all(&footer.encode().expect("encode"))
            .expect("write footer");
        (file, footer)
    }

    #[test]
    fn footer_round_trips() {
        for len in [0, 1, BLOCK_LEN, 2 * BLOCK_LEN + 5] {
            let (file, footer) = chunk_file(len);
            let mut f = file.reopen().expect("reopen");
            assert_eq!(footer.block_crcs.len() as u64, block_count(len as u64));
            assert_eq!(
                Footer::read_from(&mut f, ChunkId([1; 16])).expect("read"),
                footer
            );
        }
    }

    #[test]
    fn any_flipped_footer_byte_is_corrupt() {
        let len = 2 * BLOCK_LEN + 5;
        let (file, footer) = chunk_file(len);
        let footer_len = footer.encode().expect("encode").len();
        for i in 0..footer_len {
            let mut bytes = std::fs::read(file.path()).expect("read");
            bytes[len + i] ^= 0x40;
            let mut f = tempfile::tempfile().expect("temp file");
            f.write_all(&bytes).expect("write");
            let err = Footer::read_from(&mut f, ChunkId([1; 16])).expect_err("flip must be caught");
            assert!(matches!(err, ChunkError::Corrupt { .. }), "byte {i}: {err}");
        }
    }

    #[test]
    fn short_or_truncated_files_are_corrupt() {
        let (file, _) = chunk_file(BLOCK_LEN + 3);
        let bytes = std::fs::read(file.path()).expect("read");
        for keep in [
            0,
            1,
            TAIL_LEN - 1,
            TAIL_LEN,
            bytes.len() - 1,
            bytes.len() - 9,
        ] {
            let mut f = tempfile::tempfile().expect("temp file");
            f.write_all(&bytes[..keep]).expect("write");
            let err = Footer::read_from(&mut f, ChunkId([1; 16])).expect_err("truncation");
            assert!(
                matches!(err, ChunkError::Corrupt { .. }),
                "keep {keep}: {err}"
            );
        }
    }
}
