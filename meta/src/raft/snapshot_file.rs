//! The snapshot file format: the replicated tables streamed as frames, so
//! a snapshot is written, sent, checked and installed without ever being
//! whole in memory (docs/design.md, "Snapshots").
//!
//! Layout (integers little-endian):
//! - header: [`MAGIC`] (8 bytes), format version (u32, [`SNAPSHOT_FORMAT`]);
//! - then, in format 4 compressed as one zstd frame (format 3: as they
//!   are), the frames:
//!   - per table: tag [`TAG_TABLE`], name length (u32), name; then per row:
//!     tag [`TAG_ROW`], key length (u32), key, value length (u32), value;
//!   - tag [`TAG_END`], the number of rows in the file (u64);
//!   - CRC32C (u32) of every uncompressed byte before it, header included.
//!
//! A reader checks the structure as it goes (known tag, bounded lengths,
//! rows in strictly increasing key order within a table, no table twice)
//! and, at the end marker, the row count, the checksum and that nothing
//! follows, in the frame or in the file. Anything else, a zstd frame that
//! does not decode included, is [`MetaError::Corrupt`]; a failed read of
//! the file itself is [`MetaError::Storage`].

use std::io::{BufRead, Read, Write};

use crate::error::{MetaError, Result};

/// The first bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"ARBORSNP";
/// Version of the file layout and of the rows it carries.
/// 2: (an in-redb postcard blob) version keys gained the position in the
///    entry (inode ‖ generation ‖ position).
/// 3: this streamed file format, rows as in 2.
/// 4: format 3 with everything after the header compressed (zstd).
pub const SNAPSHOT_FORMAT: u32 = 4;
/// The uncompressed format 3, still read (a data directory or a leader
/// from before format 4).
const SNAPSHOT_FORMAT_PLAIN: u32 = 3;

/// zstd level for snapshots: the fastest. Sorted rows of one table share
/// most of their bytes, so even level 1 shrinks a state of empty objects
/// about tenfold (docs/benchmarks.md, "At millions of objects"), at
/// several hundred MB/s.
const ZSTD_LEVEL: i32 = 1;
/// zstd window, as a power of two: the writer's and the most a reader
/// accepts, so a corrupt frame header cannot make the reader allocate
/// more than this (zstd's own limit is 128 MiB).
const ZSTD_WINDOW_LOG: u32 = 20;

const TAG_TABLE: u8 = 1;
const TAG_ROW: u8 = 2;
const TAG_END: u8 = 3;

/// Longest table name a reader accepts (redb names are short).
const TABLE_NAME_BYTES_MAX: u32 = 1024;
/// Longest key or value a reader accepts before allocating for it: no
/// stored record is near this (an inline object is at most a few MiB), so
/// a larger length is a corrupt file, not a big row.
pub const ROW_PART_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// Where the frames go: the zstd encoder, or (tests of format 3) the
/// file as it is.
enum Output<W: Write> {
    Zstd(zstd::stream::write::Encoder<'static, W>),
    #[cfg(test)]
    Plain(W),
}

/// Writes a snapshot file frame by frame; every byte goes through the
/// checksum.
pub struct SnapshotWriter<W: Write> {
    out: Output<W>,
    crc: u32,
    rows: u64,
}

impl<W: Write> SnapshotWriter<W> {
    /// Writes the header and starts the compressed frame.
    pub fn new(mut out: W) -> Result<SnapshotWriter<W>> {
        let crc = write_header(&mut out, SNAPSHOT_FORMAT)?;
        let mut encoder =
            zstd::stream::write::Encoder::new(out, ZSTD_LEVEL).map_err(write_error)?;
        encoder.window_log(ZSTD_WINDOW_LOG).map_err(write_error)?;
        Ok(SnapshotWriter {
            out: Output::Zstd(encoder),
            crc,
            rows: 0,
        })
    }

    /// A writer of the uncompressed format 3, to test that it is still
    /// read.
    #[cfg(test)]
    fn plain(mut out: W) -> Result<SnapshotWriter<W>> {
        let crc = write_header(&mut out, SNAPSHOT_FORMAT_PLAIN)?;
        Ok(SnapshotWriter {
            out: Output::Plain(out),
            crc,
            rows: 0,
        })
    }

    fn sink(&mut self) -> &mut dyn Write {
        match &mut self.out {
            Output::Zstd(encoder) => encoder,
            #[cfg(test)]
            Output::Plain(out) => out,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.sink().write_all(bytes).map_err(write_error)
    }

    fn put_len(&mut self, len: usize, max: u32, what: &str) -> Result<()> {
        let len = u32::try_from(len)
            .ok()
            .filter(|len| *len <= max)
            .ok_or_else(|| MetaError::Corrupt(format!("snapshot {what} of {len} bytes")))?;
        self.put(&len.to_le_bytes())
    }

    /// Starts the rows of table `name`.
    pub fn table(&mut self, name: &str) -> Result<()> {
        self.put(&[TAG_TABLE])?;
        self.put_len(name.len(), TABLE_NAME_BYTES_MAX, "table name")?;
        self.put(name.as_bytes())
    }

    /// One row of the current table (in increasing key order).
    pub fn row(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.put(&[TAG_ROW])?;
        self.put_len(key.len(), ROW_PART_BYTES_MAX, "key")?;
        self.put(key)?;
        self.put_len(value.len(), ROW_PART_BYTES_MAX, "value")?;
        self.put(value)?;
        self.rows += 1;
        Ok(())
    }

    /// Writes the end marker and the checksum and ends the compressed
    /// frame; returns the output (not flushed).
    pub fn finish(mut self) -> Result<W> {
        self.put(&[TAG_END])?;
        self.put(&self.rows.to_le_bytes())?;
        let crc = self.crc;
        self.sink()
            .write_all(&crc.to_le_bytes())
            .map_err(write_error)?;
        match self.out {
            Output::Zstd(encoder) => encoder.finish().map_err(write_error),
            #[cfg(test)]
            Output::Plain(out) => Ok(out),
        }
    }
}

/// Writes magic and format, uncompressed; returns their checksum.
fn write_header(out: &mut impl Write, format: u32) -> Result<u32> {
    let mut header = [0u8; 12];
    header[..8].copy_from_slice(&MAGIC);
    header[8..].copy_from_slice(&format.to_le_bytes());
    out.write_all(&header).map_err(write_error)?;
    Ok(crc32c::crc32c(&header))
}

fn write_error(e: std::io::Error) -> MetaError {
    MetaError::Storage(format!("write snapshot: {e}"))
}

/// One frame of a snapshot file.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Table(String),
    Row(Vec<u8>, Vec<u8>),
}

/// The file under a zstd decoder, remembering whether reading it failed:
/// the decoder reports a failed read and a corrupt frame alike, as an
/// `io::Error`, and only the second is a corrupt snapshot.
struct Watched<R> {
    inner: R,
    failed: bool,
}

impl<R: BufRead> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf);
        self.failed |= read.is_err();
        read
    }
}

impl<R: BufRead> BufRead for Watched<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        match self.inner.fill_buf() {
            Ok(bytes) => Ok(bytes),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
    }
}

/// Where the frames come from.
enum Input<R: BufRead> {
    Zstd(zstd::stream::read::Decoder<'static, Watched<R>>),
    Plain(R),
}

impl<R: BufRead> Input<R> {
    fn reader(&mut self) -> &mut dyn Read {
        match self {
            Input::Zstd(decoder) => decoder,
            Input::Plain(input) => input,
        }
    }

    /// What a failed read of the frames means.
    fn error(&self, e: std::io::Error) -> MetaError {
        let storage = match self {
            Input::Zstd(decoder) => decoder.get_ref().failed,
            Input::Plain(_) => e.kind() != std::io::ErrorKind::UnexpectedEof,
        };
        if storage {
            MetaError::Storage(format!("read snapshot: {e}"))
        } else {
            MetaError::Corrupt(format!("snapshot truncated or corrupt: {e}"))
        }
    }

    /// Whether the file ends where the frames do.
    fn at_end(&mut self) -> Result<bool> {
        let mut extra = [0u8; 1];
        match self.reader().read(&mut extra) {
            Ok(0) => {}
            Ok(_) => return Ok(false),
            Err(e) => return Err(self.error(e)),
        }
        match self {
            Input::Zstd(decoder) => match decoder.get_mut().fill_buf() {
                Ok(rest) => Ok(rest.is_empty()),
                Err(e) => Err(MetaError::Storage(format!("read snapshot: {e}"))),
            },
            Input::Plain(_) => Ok(true),
        }
    }
}

/// Reads a snapshot file frame by frame, checking it as it goes. Memory:
/// the reader's buffer, the zstd window ([`ZSTD_WINDOW_LOG`]) plus one
/// row.
pub struct SnapshotReader<R: BufRead> {
    input: Input<R>,
    crc: u32,
    rows: u64,
    tables: Vec<String>,
    last_key: Option<Vec<u8>>,
    done: bool,
}

impl<R: BufRead> SnapshotReader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<SnapshotReader<R>> {
        let mut header = [0u8; 12];
        input.read_exact(&mut header).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => MetaError::Corrupt("snapshot truncated".into()),
            _ => MetaError::Storage(format!("read snapshot: {e}")),
        })?;
        if header[..8] != MAGIC {
            return Err(MetaError::Corrupt("not a snapshot file (bad magic)".into()));
        }
        let format = u32::from_le_bytes(header[8..].try_into().expect("4 bytes"));
        let input = match format {
            SNAPSHOT_FORMAT => {
                let watched = Watched {
                    inner: input,
                    failed: false,
                };
                let mut decoder = zstd::stream::read::Decoder::with_buffer(watched)
                    .map_err(|e| MetaError::Storage(format!("zstd decoder: {e}")))?
                    .single_frame();
                decoder
                    .window_log_max(ZSTD_WINDOW_LOG)
                    .map_err(|e| MetaError::Storage(format!("zstd decoder: {e}")))?;
                Input::Zstd(decoder)
            }
            SNAPSHOT_FORMAT_PLAIN => Input::Plain(input),
            _ => {
                return Err(MetaError::Corrupt(format!(
                    "snapshot format {format} (expected {SNAPSHOT_FORMAT} or \
                     {SNAPSHOT_FORMAT_PLAIN})"
                )));
            }
        };
        Ok(SnapshotReader {
            input,
            crc: crc32c::crc32c(&header),
            rows: 0,
            tables: Vec::new(),
            last_key: None,
            done: false,
        })
    }

    fn fill(&mut self, out: &mut [u8]) -> Result<()> {
        match self.input.reader().read_exact(out) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.input.error(e)),
        }
    }

    fn take(&mut self, out: &mut [u8]) -> Result<()> {
        self.fill(out)?;
        self.crc = crc32c::crc32c_append(self.crc, out);
        Ok(())
    }

    fn take_u32(&mut self) -> Result<u32> {
        let mut bytes = [0u8; 4];
        self.take(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn take_bytes(&mut self, max: u32, what: &str) -> Result<Vec<u8>> {
        let len = self.take_u32()?;
        if len > max {
            return Err(MetaError::Corrupt(format!(
                "snapshot {what} of {len} bytes (at most {max})"
            )));
        }
        // Grows as bytes arrive: a corrupt length costs no allocation
        // beyond what the file holds.
        let mut bytes = Vec::new();
        let read = match self
            .input
            .reader()
            .take(u64::from(len))
            .read_to_end(&mut bytes)
        {
            Ok(read) => read,
            Err(e) => return Err(self.input.error(e)),
        };
        if read as u64 != u64::from(len) {
            return Err(MetaError::Corrupt("snapshot truncated".into()));
        }
        self.crc = crc32c::crc32c_append(self.crc, &bytes);
        Ok(bytes)
    }

    /// The next frame, or `None` after the end marker once the row count,
    /// the checksum and the absence of trailing bytes are checked.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.done {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.take(&mut tag)?;
        match tag[0] {
            TAG_TABLE => {
                let name = self.take_bytes(TABLE_NAME_BYTES_MAX, "table name")?;
                let name = String::from_utf8(name)
                    .map_err(|_| MetaError::Corrupt("snapshot table name not UTF-8".into()))?;
                if self.tables.contains(&name) {
                    return Err(MetaError::Corrupt(format!(
                        "snapshot holds table {name:?} twice"
                    )));
                }
                self.tables.push(name.clone());
                self.last_key = None;
                Ok(Some(Frame::Table(name)))
            }
            TAG_ROW => {
                if self.tables.is_empty() {
                    return Err(MetaError::Corrupt("snapshot row before any table".into()));
                }
                let key = self.take_bytes(ROW_PART_BYTES_MAX, "key")?;
                let value = self.take_bytes(ROW_PART_BYTES_MAX, "value")?;
                if self.last_key.as_ref().is_some_and(|last| *last >= key) {
                    return Err(MetaError::Corrupt("snapshot rows out of key order".into()));
                }
                self.last_key = Some(key.clone());
                self.rows += 1;
                Ok(Some(Frame::Row(key, value)))
            }
            TAG_END => {
                let mut count = [0u8; 8];
                self.take(&mut count)?;
                let count = u64::from_le_bytes(count);
                if count != self.rows {
                    return Err(MetaError::Corrupt(format!(
                        "snapshot ends after {} rows but says {count}",
                        self.rows
                    )));
                }
                let mut stored = [0u8; 4];
                self.fill(&mut stored)?;
                if u32::from_le_bytes(stored) != self.crc {
                    return Err(MetaError::Corrupt("snapshot checksum mismatch".into()));
                }
                if !self.input.at_end()? {
                    return Err(MetaError::Corrupt(
                        "snapshot has bytes after its checksum".into(),
                    ));
                }
                self.done = true;
                Ok(None)
            }
            other => Err(MetaError::Corrupt(format!(
                "snapshot frame with unknown tag {other}"
            ))),
        }
    }

    /// Reads every frame to the end (checking it); returns the row count.
    pub fn verify(mut self) -> Result<u64> {
        while self.next_frame()?.is_some() {}
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        write_sample(SnapshotWriter::new(Vec::new()).expect("header"))
    }

    /// The same frames in the uncompressed format 3.
    fn plain_sample() -> Vec<u8> {
        write_sample(SnapshotWriter::plain(Vec::new()).expect("header"))
    }

    fn write_sample(mut writer: SnapshotWriter<Vec<u8>>) -> Vec<u8> {
        writer.table("a").expect("table");
        writer.row(b"k1", b"v1").expect("row");
        writer.row(b"k2", b"").expect("row");
        writer.table("b").expect("table");
        writer.table("c").expect("table");
        writer.row(b"", b"value").expect("row");
        writer.finish().expect("finish")
    }

    #[test]
    fn frames_read_back_in_order() {
        for bytes in [sample(), plain_sample()] {
            frames_read_back_in_order_from(&bytes);
        }
    }

    fn frames_read_back_in_order_from(bytes: &[u8]) {
        let mut reader = SnapshotReader::new(bytes).expect("header");
        let mut frames = Vec::new();
        while let Some(frame) = reader.next_frame().expect("frame") {
            frames.push(frame);
        }
        assert_eq!(
            frames,
            [
                Frame::Table("a".into()),
                Frame::Row(b"k1".to_vec(), b"v1".to_vec()),
                Frame::Row(b"k2".to_vec(), Vec::new()),
                Frame::Table("b".into()),
                Frame::Table("c".into()),
                Frame::Row(Vec::new(), b"value".to_vec()),
            ]
        );
        assert_eq!(
            SnapshotReader::new(bytes)
                .expect("header")
                .verify()
                .expect("verify"),
            3
        );
    }

    #[test]
    fn rows_sharing_their_bytes_are_compressed() {
        let mut writer = SnapshotWriter::new(Vec::new()).expect("header");
        let mut plain = SnapshotWriter::plain(Vec::new()).expect("header");
        for writer in [&mut writer, &mut plain] {
            writer.table("children").expect("table");
            for i in 0..10_000u64 {
                let key = format!("{:016x}k{i:010}", i / 100);
                writer
                    .row(key.as_bytes(), b"d41d8cd98f00b204e9800998ecf8427e")
                    .expect("row");
            }
        }
        let compressed = writer.finish().expect("finish");
        let plain = plain.finish().expect("finish");
        assert!(
            compressed.len() * 5 < plain.len(),
            "{} bytes compressed, {} plain",
            compressed.len(),
            plain.len()
        );
        assert_eq!(check(&compressed).expect("reads back"), 10_000);
        assert_eq!(check(&plain).expect("reads back"), 10_000);
    }

    #[test]
    fn an_unknown_format_is_refused() {
        let mut bytes = plain_sample();
        bytes[8] = 5;
        assert!(matches!(check(&bytes), Err(MetaError::Corrupt(_))));
    }

    fn check(bytes: &[u8]) -> Result<u64> {
        SnapshotReader::new(bytes)?.verify()
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        for bytes in [sample(), plain_sample()] {
            every_flipped_byte_and_every_truncation_of(&bytes);
        }
    }

    fn every_flipped_byte_and_every_truncation_of(bytes: &[u8]) {
        for at in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.to_vec();
                bad[at] ^= bit;
                assert!(
                    matches!(check(&bad), Err(MetaError::Corrupt(_))),
                    "flip {bit:#x} at {at} accepted"
                );
            }
            assert!(
                matches!(check(&bytes[..at]), Err(MetaError::Corrupt(_))),
                "truncation to {at} bytes accepted"
            );
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(matches!(check(&longer), Err(MetaError::Corrupt(_))));
    }

    /// Serves `bytes` up to `at`, then fails as a broken disk does.
    struct Failing<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.at == 0 {
                return Err(std::io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.at).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            self.at -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_failed_read_is_a_storage_error_not_a_corrupt_snapshot() {
        for bytes in [sample(), plain_sample()] {
            for at in 12..bytes.len() {
                let failing = std::io::BufReader::with_capacity(4, Failing { bytes: &bytes, at });
                let verdict = SnapshotReader::new(failing).and_then(SnapshotReader::verify);
                assert!(
                    matches!(verdict, Err(MetaError::Storage(_))),
                    "failure at {at}: {verdict:?}"
                );
            }
        }
    }

    #[test]
    fn structural_errors_are_refused_even_with_a_good_checksum() {
        // Rows out of order, written by a (buggy) writer: the checksum is
        // right, the order is not.
        let mut writer = SnapshotWriter::new(Vec::new()).expect("header");
        writer.table("a").expect("table");
        writer.row(b"k2", b"").expect("row");
        writer.row(b"k1", b"").expect("row");
        let bytes = writer.finish().expect("finish");
        assert!(matches!(check(&bytes), Err(MetaError::Corrupt(_))));

        let mut writer = SnapshotWriter::new(Vec::new()).expect("header");
        writer.table("a").expect("table");
        writer.table("a").expect("table");
        let bytes = writer.finish().expect("finish");
        assert!(matches!(check(&bytes), Err(MetaError::Corrupt(_))));
    }
}
