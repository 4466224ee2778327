//! This machine's limits, the ceilings the scenarios are compared with:
//! hashing throughput on one core with the crates the server uses (MD5
//! for ETags in the gateway, SHA-256 for chunks and signed payloads,
//! CRC32C for the chunk store's blocks, CRC64NVME for the default checksum
//! of a body sent without one), loopback TCP throughput and
//! round trips, and the data directory's fsync'd sequential write and
//! 4 KiB write+fsync rates.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// How long each hashing measurement runs.
const HASH_TIME: Duration = Duration::from_millis(700);
/// The buffer hashed (in cache-unfriendly size, like a chunk piece).
const HASH_BUFFER: usize = 8 * 1024 * 1024;
/// A round-trip message: a small request's size.
const ROUND_TRIP_BYTES: usize = 4096;

/// What to measure, and how much.
#[derive(Clone, Debug)]
pub struct LimitsPlan {
    /// Bytes sent over loopback TCP.
    pub tcp_bytes: u64,
    /// Bytes written (then fsync'd) sequentially.
    pub write_bytes: u64,
    /// 4 KiB write+fsync operations.
    pub fsync_count: u64,
    /// Round trips of 4 KiB over one loopback connection.
    pub round_trips: u64,
}

/// The measured limits.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Limits {
    pub md5_mib_per_sec: f64,
    pub sha256_mib_per_sec: f64,
    pub crc32c_mib_per_sec: f64,
    /// 0 in reports made before bodies got S3's default checksum.
    #[serde(default)]
    pub crc64nvme_mib_per_sec: f64,
    pub loopback_tcp_mib_per_sec: f64,
    pub loopback_round_trips_per_sec: f64,
    pub fsync_write_mib_per_sec: f64,
    /// The same with `O_DIRECT`, as chunk data is written; 0 where the
    /// file system refuses it.
    #[serde(default)]
    pub direct_write_mib_per_sec: f64,
    pub fsync_4k_per_sec: f64,
}

impl Limits {
    /// Bytes per second one core hashes through MD5, then SHA-256
    /// `sha256_passes` times, then CRC32C and CRC64NVME (the work the
    /// server does on every byte it stores; the bench sends no checksum,
    /// so each body gets the default one), in MiB/s.
    pub fn hash_chain_mib_per_sec(&self, sha256_passes: u32) -> f64 {
        let crc64nvme = if self.crc64nvme_mib_per_sec > 0.0 {
            1.0 / self.crc64nvme_mib_per_sec
        } else {
            0.0
        };
        let secs_per_mib = 1.0 / self.md5_mib_per_sec
            + f64::from(sha256_passes) / self.sha256_mib_per_sec
            + 1.0 / self.crc32c_mib_per_sec
            + crc64nvme;
        1.0 / secs_per_mib
    }

    /// How fast chunk data can go to disk: direct where the data
    /// directory takes it, else through the page cache.
    pub fn chunk_write_mib_per_sec(&self) -> (&'static str, f64) {
        if self.direct_write_mib_per_sec > 0.0 {
            (
                "fsync'd sequential write, O_DIRECT",
                self.direct_write_mib_per_sec,
            )
        } else {
            ("fsync'd sequential write", self.fsync_write_mib_per_sec)
        }
    }
}

/// Measures everything; files go in `dir` (and are removed).
pub fn measure(plan: &LimitsPlan, dir: &Path) -> anyhow::Result<Limits> {
    Ok(Limits {
        md5_mib_per_sec: hash_rate(|data| {
            use md5::Digest;
            std::hint::black_box(md5::Md5::digest(data));
        }),
        sha256_mib_per_sec: hash_rate(|data| {
            use sha2::Digest;
            std::hint::black_box(sha2::Sha256::digest(data));
        }),
        crc32c_mib_per_sec: hash_rate(|data| {
            std::hint::black_box(crc32c::crc32c(data));
        }),
        crc64nvme_mib_per_sec: hash_rate(|data| {
            std::hint::black_box(crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, data));
        }),
        loopback_tcp_mib_per_sec: loopback_throughput(plan.tcp_bytes)?,
        loopback_round_trips_per_sec: loopback_round_trips(plan.round_trips)?,
        fsync_write_mib_per_sec: fsync_write(dir, plan.write_bytes)?,
        direct_write_mib_per_sec: direct_write(dir, plan.write_bytes)?,
        fsync_4k_per_sec: fsync_small(dir, plan.fsync_count)?,
    })
}

fn mib_per_sec(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64().max(1e-9)
}

/// MiB/s of `hash` over [`HASH_BUFFER`]-sized inputs, on this thread.
fn hash_rate(hash: impl Fn(&[u8])) -> f64 {
    let data: Vec<u8> = (0..HASH_BUFFER).map(|i| (i * 31 % 251) as u8).collect();
    let started = Instant::now();
    let mut bytes = 0u64;
    while started.elapsed() < HASH_TIME {
        hash(&data);
        bytes += HASH_BUFFER as u64;
    }
    mib_per_sec(bytes, started.elapsed())
}

/// One connection, a writer thread and this thread reading.
fn loopback_throughput(total: u64) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut stream = TcpStream::connect(addr)?;
        let buffer = vec![7u8; 1024 * 1024];
        let mut left = total;
        while left > 0 {
            let n = usize::try_from(left.min(buffer.len() as u64)).unwrap_or(buffer.len());
            stream.write_all(&buffer[..n])?;
            left -= n as u64;
        }
        Ok(())
    });
    let (mut stream, _) = listener.accept()?;
    let mut buffer = vec![0u8; 1024 * 1024];
    let started = Instant::now();
    let mut received = 0u64;
    while received < total {
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        received += n as u64;
    }
    let elapsed = started.elapsed();
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("loopback writer panicked"))??;
    anyhow::ensure!(received == total, "loopback: {received} of {total} bytes");
    Ok(mib_per_sec(total, elapsed))
}

/// 4 KiB there and 4 KiB back, `count` times, on one connection.
fn loopback_round_trips(count: u64) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut buffer = [0u8; ROUND_TRIP_BYTES];
        for _ in 0..count {
            stream.read_exact(&mut buffer)?;
            stream.write_all(&buffer)?;
        }
        Ok(())
    });
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut buffer = [5u8; ROUND_TRIP_BYTES];
    let started = Instant::now();
    for _ in 0..count {
        stream.write_all(&buffer)?;
        stream.read_exact(&mut buffer)?;
    }
    let elapsed = started.elapsed();
    echo.join()
        .map_err(|_| anyhow::anyhow!("loopback echo panicked"))??;
    Ok(count as f64 / elapsed.as_secs_f64().max(1e-9))
}

/// 1 MiB writes to a new file in `dir`, then one fsync, timed together.
fn fsync_write(dir: &Path, total: u64) -> anyhow::Result<f64> {
    let path = dir.join(format!("arbor-bench-write-{}", std::process::id()));
    let result = (|| -> anyhow::Result<f64> {
        let mut file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let buffer: Vec<u8> = (0..1024 * 1024).map(|i| (i % 253) as u8).collect();
        let started = Instant::now();
        let mut left = total;
        while left > 0 {
            let n = usize::try_from(left.min(buffer.len() as u64)).unwrap_or(buffer.len());
            file.write_all(&buffer[..n])?;
            left -= n as u64;
        }
        file.sync_all()?;
        Ok(mib_per_sec(total, started.elapsed()))
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// As [`fsync_write`] through the chunk store's own data-file writer
/// (`O_DIRECT` in 1 MiB aligned runs from its staging buffer, then one
/// fsync); 0 if the file system refuses direct I/O.
fn direct_write(dir: &Path, total: u64) -> anyhow::Result<f64> {
    use arbor_chunkstore::direct::DataFile;
    const PIECE: usize = 1024 * 1024;
    let path = dir.join(format!("arbor-bench-direct-{}", std::process::id()));
    let result = (|| -> anyhow::Result<f64> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let mut data = DataFile::new(file);
        if !data.is_direct() {
            return Ok(0.0);
        }
        let piece: Vec<u8> = (0..PIECE).map(|i| (i % 253) as u8).collect();
        let pieces = total.div_ceil(PIECE as u64).max(1);
        let started = Instant::now();
        for _ in 0..pieces {
            data.write(&piece)?;
        }
        let direct = data.is_direct();
        data.finish(&[])?;
        let elapsed = started.elapsed();
        Ok(if direct {
            mib_per_sec(pieces * PIECE as u64, elapsed)
        } else {
            0.0
        })
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// `count` appends of 4 KiB, each followed by fsync.
fn fsync_small(dir: &Path, count: u64) -> anyhow::Result<f64> {
    let path = dir.join(format!("arbor-bench-fsync-{}", std::process::id()));
    let result = (|| -> anyhow::Result<f64> {
        let mut file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let buffer = [9u8; 4096];
        let started = Instant::now();
        for _ in 0..count {
            file.write_all(&buffer)?;
            file.sync_all()?;
        }
        Ok(count as f64 / started.elapsed().as_secs_f64().max(1e-9))
    })();
    let _ = std::fs::remove_file(&path);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_small_amounts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = LimitsPlan {
            tcp_bytes: 4 * 1024 * 1024,
            write_bytes: 1024 * 1024,
            fsync_count: 3,
            round_trips: 10,
        };
        let limits = measure(&plan, dir.path()).expect("limits");
        assert!(limits.md5_mib_per_sec > 0.0);
        assert!(limits.sha256_mib_per_sec > 0.0);
        assert!(limits.crc32c_mib_per_sec > 0.0);
        assert!(limits.crc64nvme_mib_per_sec > 0.0);
        assert!(limits.loopback_tcp_mib_per_sec > 0.0);
        assert!(limits.loopback_round_trips_per_sec > 0.0);
        assert!(limits.fsync_write_mib_per_sec > 0.0);
        assert!(limits.direct_write_mib_per_sec >= 0.0);
        assert!(limits.fsync_4k_per_sec > 0.0);
        assert!(limits.hash_chain_mib_per_sec(2) < limits.sha256_mib_per_sec / 2.0);
        // Nothing left behind.
        assert!(std::fs::read_dir(dir.path()).expect("dir").next().is_none());
    }
}
