//! The snapshot file format: the replicated tables streamed as frames, so
//! a snapshot is written, sent, checked and installed without ever being
//! whole in memory (docs/design.md, "Snapshots").
//!
//! Layout (integers little-endian):
//! - header: [`MAGIC`] (8 bytes), format version (u32, [`SNAPSHOT_FORMAT`]);
//! - per table: tag [`TAG_TABLE`], name length (u32), name; then per row:
//!   tag [`TAG_ROW`], key length (u32), key, value length (u32), value;
//! - tag [`TAG_END`], the number of rows in the file (u64);
//! - CRC32C (u32) of every byte before it.
//!
//! A reader checks the structure as it goes (known tag, bounded lengths,
//! rows in strictly increasing key order within a table, no table twice)
//! and, at the end marker, the row count, the checksum and that nothing
//! follows. Anything else is [`MetaError::Corrupt`].

use std::io::{Read, Write};

use crate::error::{MetaError, Result};

/// The first bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"ARBORSNP";
/// Version of the file layout and of the rows it carries.
/// 2: (an in-redb postcard blob) version keys gained the position in the
///    entry (inode ‖ generation ‖ position).
/// 3: this streamed file format, rows as in 2.
pub const SNAPSHOT_FORMAT: u32 = 3;

const TAG_TABLE: u8 = 1;
const TAG_ROW: u8 = 2;
const TAG_END: u8 = 3;

/// Longest table name a reader accepts (redb names are short).
const TABLE_NAME_BYTES_MAX: u32 = 1024;
/// Longest key or value a reader accepts before allocating for it: no
/// stored record is near this (an inline object is at most a few MiB), so
/// a larger length is a corrupt file, not a big row.
pub const ROW_PART_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// Writes a snapshot file frame by frame; every byte goes through the
/// checksum.
pub struct SnapshotWriter<W: Write> {
    out: W,
    crc: u32,
    rows: u64,
}

impl<W: Write> SnapshotWriter<W> {
    /// Writes the header.
    pub fn new(out: W) -> Result<SnapshotWriter<W>> {
        let mut writer = SnapshotWriter {
            out,
            crc: 0,
            rows: 0,
        };
        writer.put(&MAGIC)?;
        writer.put(&SNAPSHOT_FORMAT.to_le_bytes())?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.out.write_all(bytes).map_err(write_error)
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

    /// Writes the end marker and the checksum; returns the output (not
    /// flushed).
    pub fn finish(mut self) -> Result<W> {
        self.put(&[TAG_END])?;
        self.put(&self.rows.to_le_bytes())?;
        let crc = self.crc;
        self.out
            .write_all(&crc.to_le_bytes())
            .map_err(write_error)?;
        Ok(self.out)
    }
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

/// Reads a snapshot file frame by frame, checking it as it goes. Memory:
/// the reader's buffer plus one row.
pub struct SnapshotReader<R: Read> {
    input: R,
    crc: u32,
    rows: u64,
    tables: Vec<String>,
    last_key: Option<Vec<u8>>,
    done: bool,
}

impl<R: Read> SnapshotReader<R> {
    /// Reads and checks the header.
    pub fn new(input: R) -> Result<SnapshotReader<R>> {
        let mut reader = SnapshotReader {
            input,
            crc: 0,
            rows: 0,
            tables: Vec::new(),
            last_key: None,
            done: false,
        };
        let mut magic = [0u8; 8];
        reader.take(&mut magic)?;
        if magic != MAGIC {
            return Err(MetaError::Corrupt("not a snapshot file (bad magic)".into()));
        }
        let format = reader.take_u32()?;
        if format != SNAPSHOT_FORMAT {
            return Err(MetaError::Corrupt(format!(
                "snapshot format {format} (expected {SNAPSHOT_FORMAT})"
            )));
        }
        Ok(reader)
    }

    fn fill(&mut self, out: &mut [u8]) -> Result<()> {
        self.input.read_exact(out).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => MetaError::Corrupt("snapshot truncated".into()),
            _ => MetaError::Storage(format!("read snapshot: {e}")),
        })
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
        let read = (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut bytes)
            .map_err(|e| MetaError::Storage(format!("read snapshot: {e}")))?;
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
                let mut extra = [0u8; 1];
                match self.input.read(&mut extra) {
                    Ok(0) => {}
                    Ok(_) => {
                        return Err(MetaError::Corrupt(
                            "snapshot has bytes after its checksum".into(),
                        ));
                    }
                    Err(e) => return Err(MetaError::Storage(format!("read snapshot: {e}"))),
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
        let mut writer = SnapshotWriter::new(Vec::new()).expect("header");
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
        let bytes = sample();
        let mut reader = SnapshotReader::new(bytes.as_slice()).expect("header");
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
            SnapshotReader::new(bytes.as_slice())
                .expect("header")
                .verify()
                .expect("verify"),
            3
        );
    }

    fn check(bytes: &[u8]) -> Result<u64> {
        SnapshotReader::new(bytes)?.verify()
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let bytes = sample();
        for at in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
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
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(check(&longer), Err(MetaError::Corrupt(_))));
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
