//! The data of a chunk being written, sent to disk with direct I/O where
//! the file system takes it.
//!
//! Writing through the page cache costs the kernel a page allocation and a
//! copy per 4 KiB, and then write-back; on the machines measured in
//! docs/benchmarks.md that was 6–7 ms of system CPU per MiB written, more
//! than all of a PUT's hashing. A chunk's bytes are written once, fsync'd,
//! and read back rarely soon after, so they gain nothing from the cache:
//! whole aligned runs go to the device with `O_DIRECT` from an aligned
//! staging buffer, and only the unaligned tail and the footer go through
//! the cache before the file's fsync. Reads of chunk data are direct too
//! ([`read_at`]): a cold read through the cache paid the same page
//! allocations, and chunk data is rarely hot (small objects live inline in
//! the metadata, which the cache does hold).
//!
//! Where `O_DIRECT` is refused (tmpfs before Linux 6.6 and some FUSE and
//! network file systems refuse it when it is set, others on the first
//! unaligned or oddly sized write), the
//! file falls back to buffered writes for good, losing nothing: the same
//! bytes land at the same offsets, and the fsync before sealing covers
//! both kinds.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use crate::limits::{DIRECT_IO_ALIGN, DIRECT_WRITE_SIZE, READ_BUFFERS_KEPT, READ_PIECE_SIZE_MAX};

const _: () = assert!(DIRECT_WRITE_SIZE.is_multiple_of(DIRECT_IO_ALIGN));
const _: () = assert!(DIRECT_IO_ALIGN.is_power_of_two());

/// A chunk's data file, appended to in order. Public so the benchmark's
/// write limit measures this very path (`arbor bench --limits`).
pub struct DataFile {
    file: File,
    /// Direct I/O is on: bytes are staged in `buf` and written in aligned
    /// runs. Once off, it stays off.
    direct: bool,
    /// Staging buffer, over-allocated by one alignment so that
    /// `buf[start..start + DIRECT_WRITE_SIZE]` starts on an aligned address.
    buf: Vec<u8>,
    start: usize,
    /// Bytes staged in `buf[start..]`, not yet in the file.
    staged: usize,
    /// Bytes in the file: a multiple of `DIRECT_IO_ALIGN` while direct.
    written: u64,
}

impl DataFile {
    /// Takes over `file`, just created and empty, turning direct I/O on if
    /// the file system allows it.
    pub fn new(file: File) -> DataFile {
        let direct = set_direct(&file, true).is_ok();
        let (buf, start) = if direct {
            aligned_buffer(DIRECT_WRITE_SIZE)
        } else {
            (Vec::new(), 0)
        };
        DataFile {
            file,
            direct,
            buf,
            start,
            staged: 0,
            written: 0,
        }
    }

    /// Whether writes still go around the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Appends `data`.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        if !self.direct {
            return self.append_buffered(data);
        }
        while !data.is_empty() {
            if !self.direct {
                // A refused direct write turned it off mid-way.
                return self.append_buffered(data);
            }
            let room = DIRECT_WRITE_SIZE - self.staged;
            let (head, rest) = data.split_at(room.min(data.len()));
            let at = self.start + self.staged;
            self.buf[at..at + head.len()].copy_from_slice(head);
            self.staged += head.len();
            data = rest;
            if self.staged == DIRECT_WRITE_SIZE {
                self.flush_aligned()?;
            }
        }
        Ok(())
    }

    /// Writes what is staged (direct I/O off from here), then `tail` (the
    /// footer), and fsyncs data and metadata. The file is then complete.
    pub fn finish(mut self, tail: &[u8]) -> io::Result<File> {
        if self.direct {
            self.flush_aligned()?;
            self.stop_direct()?;
        }
        self.append_buffered(tail)?;
        self.file.sync_all()?;
        Ok(self.file)
    }

    /// Writes the staged bytes' aligned prefix with direct I/O and keeps
    /// the rest staged; on a refusal, falls back to buffered writes.
    fn flush_aligned(&mut self) -> io::Result<()> {
        let aligned = self.staged - self.staged % DIRECT_IO_ALIGN;
        if aligned == 0 {
            return Ok(());
        }
        let run = &self.buf[self.start..self.start + aligned];
        match self.file.write_all_at(run, self.written) {
            Ok(()) => {}
            Err(error) if error.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                // Offsets are explicit: the buffered writes that follow
                // cover whatever part of the run did land.
                tracing::debug!(%error, "direct I/O refused; writing chunk data buffered");
                return self.stop_direct();
            }
            Err(error) => return Err(error),
        }
        self.written += aligned as u64;
        self.buf
            .copy_within(self.start + aligned..self.start + self.staged, self.start);
        self.staged -= aligned;
        Ok(())
    }

    /// Turns direct I/O off and writes what was staged, buffered.
    fn stop_direct(&mut self) -> io::Result<()> {
        if !self.direct {
            return Ok(());
        }
        set_direct(&self.file, false)?;
        self.direct = false;
        let staged = std::mem::take(&mut self.buf);
        let (start, len) = (self.start, self.staged);
        self.staged = 0;
        self.start = 0;
        self.append_buffered(&staged[start..start + len])
    }

    fn append_buffered(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, self.written)?;
        self.written += data.len() as u64;
        Ok(())
    }
}

/// Turns direct I/O on for reading `file`, if the file system allows it.
pub(crate) fn try_direct(file: &File) -> bool {
    set_direct(file, true).is_ok()
}

/// Reads exactly `len` bytes at `offset`: with `direct` (the file's
/// direct I/O is on) around the page cache into an aligned buffer from
/// `buffers`, else buffered. A refused direct read turns direct I/O off
/// for the file (and `direct` to false) and reads buffered. Fewer bytes in
/// the file than asked for is `UnexpectedEof`.
pub(crate) fn read_at(
    file: &File,
    direct: &mut bool,
    offset: u64,
    len: usize,
    buffers: &Arc<ReadBuffers>,
) -> io::Result<Bytes> {
    if *direct {
        match read_direct(file, offset, len, buffers) {
            Err(error) if error.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                tracing::debug!(%error, "direct I/O refused; reading chunk data buffered");
                set_direct(file, false)?;
                *direct = false;
            }
            read => return read,
        }
    }
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(Bytes::from(buf))
}

/// Reads the aligned span around `offset..offset + len` (past the data
/// into the footer, or up to the end of the file) and keeps the part
/// asked for, without copying it.
fn read_direct(
    file: &File,
    offset: u64,
    len: usize,
    buffers: &Arc<ReadBuffers>,
) -> io::Result<Bytes> {
    let align = DIRECT_IO_ALIGN as u64;
    let skip = usize::try_from(offset % align).map_err(io::Error::other)?;
    let from = offset - offset % align;
    let want = skip
        .checked_add(len)
        .ok_or_else(|| io::Error::other("read too large"))?;
    let span = want
        .checked_next_multiple_of(DIRECT_IO_ALIGN)
        .ok_or_else(|| io::Error::other("read too large"))?;
    let mut buffer = buffers.take(span);
    let start = buffer.aligned_start();
    let buf = &mut buffer.buf;
    let mut done = 0;
    while done < want {
        match file.read_at(&mut buf[start + done..start + span], from + done as u64) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => done += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
        if done < want && !done.is_multiple_of(DIRECT_IO_ALIGN) {
            // Only the end of the file stops a direct read short of a
            // multiple of the alignment: nothing more is there.
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
    }
    // Only bytes this read wrote are handed out: a reused buffer's older
    // contents beyond `want` stay behind the slice.
    Ok(Bytes::from_owner(buffer).slice(start + skip..start + want))
}

/// Bytes of a read buffer kept for reuse: a piece of the largest size at
/// any offset, with room to align its start.
const POOLED_BUFFER_SIZE: usize = READ_PIECE_SIZE_MAX as usize + 2 * DIRECT_IO_ALIGN;

/// Aligned buffers for direct reads, kept for reuse (at most
/// [`READ_BUFFERS_KEPT`]). A fresh buffer comes zeroed from the
/// allocator, which cost a tenth of a large GET's CPU (docs/benchmarks.md,
/// "Profiles"); a kept one goes back to the next read as it is, and that
/// read hands out only the bytes it read into it.
#[derive(Debug, Default)]
pub(crate) struct ReadBuffers {
    free: Mutex<Vec<Vec<u8>>>,
}

impl ReadBuffers {
    /// A buffer with `span` bytes from an aligned address on: a kept one
    /// if `span` fits the kept size and one is there; else a fresh one of
    /// the kept size for a read of at least half of it (to be kept after),
    /// or of its own size (a short range does not take a megabyte).
    fn take(self: &Arc<Self>, span: usize) -> ReadBuffer {
        let needed = span + DIRECT_IO_ALIGN;
        let kept = if needed <= POOLED_BUFFER_SIZE {
            self.lock().pop()
        } else {
            None
        };
        match kept {
            Some(buf) => ReadBuffer {
                buf,
                home: Some(Arc::clone(self)),
            },
            None if needed <= POOLED_BUFFER_SIZE && needed * 2 >= POOLED_BUFFER_SIZE => {
                ReadBuffer {
                    buf: vec![0u8; POOLED_BUFFER_SIZE],
                    home: Some(Arc::clone(self)),
                }
            }
            None => ReadBuffer {
                buf: vec![0u8; needed],
                home: None,
            },
        }
    }

    fn give_back(&self, buf: Vec<u8>) {
        let mut free = self.lock();
        if free.len() < READ_BUFFERS_KEPT {
            free.push(buf);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.lock().len()
    }
}

/// A read buffer, back to its pool when the last piece of it is dropped.
struct ReadBuffer {
    buf: Vec<u8>,
    /// The pool it goes back to; none for an odd size.
    home: Option<Arc<ReadBuffers>>,
}

impl ReadBuffer {
    /// Where an aligned address starts in the buffer (it is over-allocated
    /// by one alignment).
    fn aligned_start(&self) -> usize {
        aligned_start(&self.buf)
    }
}

impl AsRef<[u8]> for ReadBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            home.give_back(std::mem::take(&mut self.buf));
        }
    }
}

/// A zeroed buffer and the offset in it where `len` bytes start on an
/// aligned address (it is over-allocated by one alignment).
fn aligned_buffer(len: usize) -> (Vec<u8>, usize) {
    let buf = vec![0u8; len + DIRECT_IO_ALIGN];
    let start = aligned_start(&buf);
    (buf, start)
}

/// The offset of the first aligned address in `buf`.
fn aligned_start(buf: &[u8]) -> usize {
    let start = buf.as_ptr().align_offset(DIRECT_IO_ALIGN);
    assert!(
        start < DIRECT_IO_ALIGN,
        "a byte pointer can always be aligned"
    );
    start
}

#[cfg(target_os = "linux")]
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    let flags = fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    fcntl_setfl(file, flags)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn set_direct(_file: &File, on: bool) -> io::Result<()> {
    if on {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data file for a new file at `path`.
    fn create(path: &std::path::Path) -> DataFile {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .expect("create");
        DataFile::new(file)
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Whatever the pieces' sizes, the file holds the bytes in order, then
    /// the tail; on this machine's disk the data goes direct.
    #[test]
    fn pieces_of_any_size_land_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (case, sizes) in [
            vec![0usize, 1, 4095, 4097, DIRECT_WRITE_SIZE, 3],
            vec![DIRECT_WRITE_SIZE * 2 + 17],
            vec![10; 1000],
            vec![],
        ]
        .into_iter()
        .enumerate()
        {
            let path = dir.path().join(format!("f{case}"));
            let mut data = create(&path);
            let mut expected = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                let piece = pattern(*size, i as u8);
                data.write(&piece).expect("write");
                expected.extend_from_slice(&piece);
            }
            data.finish(b"footer").expect("finish");
            expected.extend_from_slice(b"footer");
            let got = std::fs::read(&path).expect("read back");
            assert!(
                got == expected,
                "case {case}: {} vs {} bytes",
                got.len(),
                expected.len()
            );
        }
    }

    /// Direct and buffered reads return the same bytes, at any length,
    /// including a run ending at the end of the file.
    #[test]
    fn reads_return_exactly_the_bytes_asked_for() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        let content = pattern(3 * DIRECT_WRITE_SIZE + 1234, 7);
        std::fs::write(&path, &content).expect("write");
        let file = File::open(&path).expect("open");
        let mut direct = try_direct(&file);
        let buffers = Arc::new(ReadBuffers::default());
        for (offset, len) in [
            (0usize, 1usize),
            (0, 4096),
            (4096, 65536 + 17),
            (65536, content.len() - 65536),
            (0, content.len()),
            (8192, 0),
        ] {
            let got = read_at(&file, &mut direct, offset as u64, len, &buffers).expect("read");
            assert!(got[..] == content[offset..offset + len], "{offset}+{len}");
        }
        let past =
            read_at(&file, &mut direct, 4096, content.len(), &buffers).expect_err("past the end");
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
        let got = read_at(&file, &mut direct, 100, 5000, &buffers).expect("unaligned read");
        assert!(got[..] == content[100..5100]);
        let plain = File::open(&path).expect("open");
        let mut buffered = false;
        let got = read_at(&plain, &mut buffered, 100, 5000, &buffers).expect("buffered read");
        assert!(got[..] == content[100..5100]);
    }

    /// Kept read buffers go back to later reads, which hand out only
    /// the bytes they read: never what an earlier read left in the buffer
    /// past a shorter one, nor past the end of a shorter file.
    #[test]
    fn reused_read_buffers_hand_out_only_fresh_bytes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let long = pattern(2 * READ_PIECE_SIZE_MAX as usize, 7);
        let short = pattern(10_000, 99);
        std::fs::write(dir.path().join("long"), &long).expect("write");
        std::fs::write(dir.path().join("short"), &short).expect("write");
        let long_file = File::open(dir.path().join("long")).expect("open");
        let short_file = File::open(dir.path().join("short")).expect("open");
        let mut direct = try_direct(&long_file) && try_direct(&short_file);
        if !direct {
            return; // buffered reads take no buffer from the pool
        }
        let buffers = Arc::new(ReadBuffers::default());
        let piece = READ_PIECE_SIZE_MAX as usize;
        // With none kept, a short read takes a buffer of its own size.
        let got = read_at(&short_file, &mut direct, 100, 5000, &buffers).expect("read");
        assert!(got[..] == short[100..5100]);
        drop(got);
        assert_eq!(buffers.kept(), 0, "a short read's buffer is not kept");
        let got = read_at(&long_file, &mut direct, 0, piece, &buffers).expect("read");
        assert!(got[..] == long[..piece]);
        drop(got);
        assert_eq!(buffers.kept(), 1, "a piece's buffer is kept once dropped");

        for (offset, len) in [(100usize, 5000usize), (4096, 10_000 - 4096), (0, 10_000)] {
            let got =
                read_at(&short_file, &mut direct, offset as u64, len, &buffers).expect("read");
            assert!(got[..] == short[offset..offset + len], "{offset}+{len}");
        }
        let past =
            read_at(&short_file, &mut direct, 4096, 10_000, &buffers).expect_err("past the end");
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(buffers.kept(), 1, "the same buffer each time");

        // A slice outlives its read; the buffer goes back with the last.
        let whole = read_at(&long_file, &mut direct, 0, piece, &buffers).expect("read");
        let part = whole.slice(10..20);
        drop(whole);
        assert_eq!(buffers.kept(), 0);
        assert!(part[..] == long[10..20]);
        drop(part);
        assert_eq!(buffers.kept(), 1);

        // At most READ_BUFFERS_KEPT are kept; a larger read is not pooled.
        let held: Vec<Bytes> = (0..READ_BUFFERS_KEPT + 3)
            .map(|i| {
                read_at(
                    &long_file,
                    &mut direct,
                    (i * 65_536) as u64,
                    piece,
                    &buffers,
                )
                .expect("read")
            })
            .collect();
        drop(held);
        assert_eq!(buffers.kept(), READ_BUFFERS_KEPT);
        let large = read_at(&long_file, &mut direct, 0, 2 * piece, &buffers).expect("read");
        assert!(large[..] == long[..]);
        drop(large);
        assert_eq!(buffers.kept(), READ_BUFFERS_KEPT);
    }

    /// Turning direct I/O off half-way loses nothing.
    #[test]
    fn falling_back_keeps_every_byte() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        let mut data = create(&path);
        let first = pattern(DIRECT_WRITE_SIZE + 100, 1);
        data.write(&first).expect("write");
        data.stop_direct().expect("stop");
        assert!(!data.is_direct());
        let second = pattern(5000, 2);
        data.write(&second).expect("write");
        data.finish(b"end").expect("finish");
        let got = std::fs::read(&path).expect("read back");
        assert!(got == [first, second, b"end".to_vec()].concat());
    }
}
