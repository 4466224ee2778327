//! ChunkStore through its public API, plus on-disk damage.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use arbor_chunkstore::{ChunkError, ChunkInfo, ChunkStore, limits};
use arbor_meta::ChunkId;
use arbor_meta::clock::{OsEntropy, SystemClock};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

const BLOCK: u64 = limits::BLOCK_SIZE;
const MIB: u64 = 1024 * 1024;

/// Deterministic bytes that differ from block to block and chunk to chunk.
fn source(len: u64, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let x = (i ^ seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (x >> 56) as u8
        })
        .collect()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

async fn open() -> (tempfile::TempDir, ChunkStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = ChunkStore::open(dir.path(), SystemClock::shared(), OsEntropy::shared())
        .await
        .expect("open");
    (dir, store)
}

/// Writes `data` in uneven pieces that straddle block boundaries.
async fn put(store: &ChunkStore, id: ChunkId, data: &[u8]) -> arbor_chunkstore::Result<ChunkInfo> {
    let sizes = [1, 1000, 70_000, 3, 65_536, 300_000, 65_535];
    let mut writer = store.writer(id).await?;
    let (mut at, mut i) = (0, 0);
    while at < data.len() {
        let n = sizes[i % sizes.len()].min(data.len() - at);
        writer
            .write(Bytes::copy_from_slice(&data[at..at + n]))
            .await?;
        at += n;
        i += 1;
        assert_eq!(writer.len(), at as u64);
    }
    writer.finish(Some(sha256(data))).await
}

/// Collects a read; on error, also returns the bytes yielded before it.
async fn read(
    store: &ChunkStore,
    id: ChunkId,
    range: Range<u64>,
) -> Result<Vec<u8>, (Vec<u8>, ChunkError)> {
    let mut stream = store.read(id, range).await.map_err(|e| (Vec::new(), e))?;
    let mut out = Vec::new();
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(bytes) => {
                assert!(bytes.len() as u64 <= limits::READ_PIECE_SIZE_MAX);
                out.extend_from_slice(&bytes);
            }
            Err(error) => {
                assert!(
                    stream.next().await.is_none(),
                    "stream must stop after an error"
                );
                return Err((out, error));
            }
        }
    }
    Ok(out)
}

fn chunk_path(store: &ChunkStore, id: ChunkId) -> PathBuf {
    let hex = id.to_hex();
    store.root().join(&hex[30..]).join(hex)
}

fn tmp_files(store: &ChunkStore) -> Vec<PathBuf> {
    std::fs::read_dir(store.root().join("tmp"))
        .expect("tmp dir")
        .map(|e| e.expect("entry").path())
        .collect()
}

fn flip_byte(store: &ChunkStore, id: ChunkId, offset: u64) {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(chunk_path(store, id))
        .expect("open chunk file");
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(offset)).expect("seek");
    file.read_exact(&mut byte).expect("read");
    byte[0] ^= 0x01;
    file.seek(SeekFrom::Start(offset)).expect("seek");
    file.write_all(&byte).expect("write");
}

fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, ChunkError>) {
    match result {
        Err(ChunkError::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn round_trip_sizes_and_ranges() {
    let (_dir, store) = open().await;
    for (seed, len) in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * MIB + 7]
        .into_iter()
        .enumerate()
    {
        let data = source(len, seed as u64);
        let id = ChunkId::generate();
        let info = put(&store, id, &data).await.expect("put");
        let want = ChunkInfo {
            id,
            size: len,
            sha256: sha256(&data),
        };
        assert_eq!(info, want);
        assert_eq!(store.stat(id).await.expect("stat"), want);
        assert_eq!(
            read(&store, id, 0..len).await.expect("whole"),
            data,
            "len {len}"
        );

        let mut ranges = vec![0..0, len..len, 0..len / 2, len / 3..len];
        for b in [BLOCK, 2 * BLOCK, MIB, MIB + BLOCK, 3 * MIB] {
            ranges.extend([
                b - 1..b + 1,
                b..b + BLOCK,
                b - BLOCK..b,
                b + 5..b + 9,
                b..len,
            ]);
        }
        ranges.extend([
            7..BLOCK - 7,
            100..MIB + 2 * BLOCK + 3,
            1..len.saturating_sub(1),
        ]);
        for r in ranges
            .into_iter()
            .filter(|r| r.start <= r.end && r.end <= len)
        {
            let got = read(&store, id, r.clone()).await.expect("ranged read");
            assert!(
                got == data[r.start as usize..r.end as usize],
                "len {len} range {r:?}"
            );
        }

        for (start, end) in [(0, len + 1), (len + 1, len + 2), (1, 0)] {
            match store.read(id, start..end).await {
                Err(ChunkError::InvalidRange { size, .. }) => assert_eq!(size, len),
                Err(e) => panic!("{start}..{end}: {e}"),
                Ok(_) => panic!("{start}..{end}: accepted"),
            }
        }
    }
    assert!(tmp_files(&store).is_empty());
}

#[tokio::test]
async fn sha_mismatch_stores_nothing() {
    let (_dir, store) = open().await;
    let id = ChunkId::generate();
    let mut writer = store.writer(id).await.expect("writer");
    writer
        .write(Bytes::from(source(BLOCK + 5, 1)))
        .await
        .expect("write");
    match writer.finish(Some([0; 32])).await {
        Err(ChunkError::ChecksumMismatch { id: got }) => assert_eq!(got, id),
        other => panic!("expected ChecksumMismatch, got {other:?}"),
    }
    assert!(matches!(store.stat(id).await, Err(ChunkError::NotFound(_))));
    assert!(store.list().await.expect("list").is_empty());
    assert!(tmp_files(&store).is_empty());
}

#[tokio::test]
async fn re_put_is_idempotent_and_other_content_is_refused() {
    let (_dir, store) = open().await;
    let id = ChunkId::generate();
    let data = source(2 * BLOCK + 9, 2);
    let first = put(&store, id, &data).await.expect("first put");
    let second = put(&store, id, &data).await.expect("second put");
    assert_eq!(first, second);
    // No expected hash: the store still refuses to change a chunk's content.
    let mut writer = store.writer(id).await.expect("writer");
    writer
        .write(Bytes::from(source(10, 3)))
        .await
        .expect("write");
    assert!(matches!(writer.finish(None).await, Err(ChunkError::Io(_))));
    assert_eq!(
        read(&store, id, 0..data.len() as u64).await.expect("read"),
        data
    );
    assert_eq!(store.list().await.expect("list"), vec![id]);
    assert!(tmp_files(&store).is_empty());
}

#[tokio::test]
async fn re_put_replaces_a_corrupt_copy() {
    let (_dir, store) = open().await;
    let id = ChunkId::generate();
    let data = source(BLOCK + 9, 4);
    put(&store, id, &data).await.expect("put");
    let path = chunk_path(&store, id);
    let len = std::fs::metadata(&path).expect("metadata").len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(len - 1)
        .expect("truncate");
    assert_corrupt(store.stat(id).await);
    put(&store, id, &data).await.expect("repair");
    assert_eq!(
        read(&store, id, 0..data.len() as u64).await.expect("read"),
        data
    );
}

#[tokio::test]
async fn abort_and_drop_leave_nothing() {
    let (_dir, store) = open().await;
    let id = ChunkId::generate();
    let mut writer = store.writer(id).await.expect("writer");
    writer
        .write(Bytes::from(source(1000, 5)))
        .await
        .expect("write");
    assert_eq!(tmp_files(&store).len(), 1);
    writer.abort().await.expect("abort");
    assert!(tmp_files(&store).is_empty());

    let mut writer = store.writer(id).await.expect("writer");
    writer
        .write(Bytes::from(source(1000, 5)))
        .await
        .expect("write");
    drop(writer);
    for _ in 0..100 {
        if tmp_files(&store).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        tmp_files(&store).is_empty(),
        "drop removes the temporary file"
    );
    assert!(matches!(store.stat(id).await, Err(ChunkError::NotFound(_))));
    assert!(store.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn too_large_is_refused_before_writing() {
    let (_dir, store) = open().await;
    let id = ChunkId::generate();
    let mut writer = store.writer(id).await.expect("writer");
    writer
        .write(Bytes::from(source(10, 6)))
        .await
        .expect("write");
    // Zeroed allocation: the pages are never touched, as nothing is written.
    let huge = Bytes::from(vec![0u8; (limits::CHUNK_SIZE_MAX - 9) as usize]);
    assert!(matches!(
        writer.write(huge).await,
        Err(ChunkError::TooLarge { .. })
    ));
    assert_eq!(writer.len(), 10);
    writer
        .write(Bytes::from(source(5, 7)))
        .await
        .expect("still usable");
    writer.abort().await.expect("abort");
}

#[tokio::test]
async fn open_removes_leftover_tmp_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = ChunkStore::open(dir.path(), SystemClock::shared(), OsEntropy::shared())
        .await
        .expect("open");
    let id = ChunkId::generate();
    let mut writer = store.writer(id).await.expect("writer");
    writer
        .write(Bytes::from(source(BLOCK * 2, 8)))
        .await
        .expect("write");
    // A crash: no finish, no abort, no Drop.
    std::mem::forget(writer);
    assert_eq!(tmp_files(&store).len(), 1);

    let store = ChunkStore::open(dir.path(), SystemClock::shared(), OsEntropy::shared())
        .await
        .expect("reopen");
    assert!(tmp_files(&store).is_empty());
    assert!(store.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn flipped_data_byte_fails_only_reads_touching_its_block() {
    let (_dir, store) = open().await;
    let id = ChunkId::generate();
    let piece = limits::READ_PIECE_SIZE_MAX;
    let len = 2 * piece + 7;
    let data = source(len, 9);
    put(&store, id, &data).await.expect("put");
    // Block `b` lies in the second piece.
    let b = piece / BLOCK + 4;
    let bad = b * BLOCK + 1234;
    flip_byte(&store, id, bad);

    for r in [
        bad..bad + 1,
        b * BLOCK..(b + 1) * BLOCK,
        (b + 1) * BLOCK - 1..(b + 1) * BLOCK + 1,
        5..len,
    ] {
        let (before, error) = read(&store, id, r.clone())
            .await
            .expect_err("touches block b");
        assert!(
            matches!(error, ChunkError::Corrupt { .. }),
            "{r:?}: {error}"
        );
        // Nothing of the bad block was served; what was served is right.
        assert!(
            r.start + (before.len() as u64) <= r.start.max(b * BLOCK),
            "{r:?}"
        );
        if r.start == 5 {
            // The first piece was streamed before the error.
            assert_eq!(before.len() as u64, piece - 5);
        }
        assert!(before == data[r.start as usize..r.start as usize + before.len()]);
    }
    for r in [
        0..b * BLOCK,
        (b + 1) * BLOCK..len,
        (b - 1) * BLOCK + 5..b * BLOCK,
    ] {
        let got = read(&store, id, r.clone())
            .await
            .expect("does not touch block b");
        assert!(got == data[r.start as usize..r.end as usize], "{r:?}");
    }
    // stat reads only the footer.
    assert_eq!(store.stat(id).await.expect("stat").size, len);
}

/// Rewrites one data byte *and* its block CRC and the footer CRC, so only
/// the SHA-256 can tell: plain reads (which check block CRCs) pass, the
/// scrubber's checked read ends with FingerprintMismatch after the data
/// (bytes consistent with their CRCs, not with the recorded SHA-256).
#[tokio::test]
async fn checked_read_checks_sha256() {
    let (_dir, store) = open().await;
    let id = ChunkId::generate();
    let len = 2 * BLOCK + 100;
    let mut data = source(len, 10);
    put(&store, id, &data).await.expect("put");

    data[(BLOCK + 3) as usize] ^= 0xFF;
    let path = chunk_path(&store, id);
    let mut file_bytes = std::fs::read(&path).expect("read file");
    let blocks = 3usize;
    let table_at = len as usize;
    file_bytes[..len as usize].copy_from_slice(&data);
    let crc = crc32c::crc32c(&data[BLOCK as usize..2 * BLOCK as usize]);
    file_bytes[table_at + 4..table_at + 8].copy_from_slice(&crc.to_le_bytes());
    let checked_end = table_at + 4 * blocks + 48;
    let footer_crc = crc32c::crc32c(&file_bytes[table_at..checked_end]);
    file_bytes[checked_end..checked_end + 4].copy_from_slice(&footer_crc.to_le_bytes());
    std::fs::write(&path, &file_bytes).expect("write file");

    assert_eq!(
        read(&store, id, 0..len - 1).await.expect("ranged"),
        data[..len as usize - 1]
    );
    assert_eq!(read(&store, id, 0..len).await.expect("whole"), data);
    let mut stream = store.read_checked(id).await.expect("checked read");
    let mut before = Vec::new();
    let error = loop {
        match stream.next().await {
            Some(Ok(piece)) => before.extend_from_slice(&piece),
            Some(Err(error)) => break error,
            None => panic!("the checked read ended without an error"),
        }
    };
    assert!(
        matches!(error, ChunkError::FingerprintMismatch { id: bad } if bad == id),
        "{error}"
    );
    assert_eq!(before, data, "the error comes after the data");
}

#[tokio::test]
async fn truncated_or_damaged_footer_is_corrupt() {
    let (_dir, store) = open().await;
    let len = BLOCK + 10;
    let data = source(len, 11);

    let truncated = ChunkId::generate();
    put(&store, truncated, &data).await.expect("put");
    let path = chunk_path(&store, truncated);
    OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(len + 3)
        .expect("truncate");
    assert_corrupt(store.stat(truncated).await);
    assert_corrupt(store.read(truncated, 0..1).await.map(|_| ()));

    let tiny = ChunkId::generate();
    put(&store, tiny, &data).await.expect("put");
    OpenOptions::new()
        .write(true)
        .open(chunk_path(&store, tiny))
        .expect("open")
        .set_len(5)
        .expect("truncate");
    assert_corrupt(store.stat(tiny).await);

    // The SHA-256 in the footer, then a block CRC: both caught by the footer CRC.
    for offset in [len + 8 + 3, len + 1] {
        let id = ChunkId::generate();
        put(&store, id, &data).await.expect("put");
        flip_byte(&store, id, offset);
        assert_corrupt(store.stat(id).await);
        assert_corrupt(store.read(id, 0..len).await.map(|_| ()));
    }
}

#[tokio::test]
async fn list_delete_and_usage() {
    let (_dir, store) = open().await;
    let mut ids: Vec<ChunkId> = (0..5).map(|_| ChunkId::generate()).collect();
    for (i, id) in ids.iter().enumerate() {
        put(&store, *id, &source(100 * i as u64, i as u64))
            .await
            .expect("put");
    }
    // Things that are not chunks.
    let root = store.root();
    std::fs::create_dir_all(root.join("zz")).expect("mkdir");
    std::fs::write(root.join("zz").join("0".repeat(32)), b"x").expect("write");
    std::fs::write(root.join("stray"), b"x").expect("write");
    let prefix = root.join(&ids[0].to_hex()[30..]);
    std::fs::write(prefix.join("not-a-chunk"), b"x").expect("write");
    std::fs::write(prefix.join(ids[0].to_hex().to_uppercase()), b"x").expect("write");
    let misplaced = if ids[0].to_hex().ends_with("ff") {
        "00"
    } else {
        "ff"
    };
    std::fs::write(prefix.join(misplaced.repeat(16)), b"x").expect("write");

    ids.sort();
    assert_eq!(store.list().await.expect("list"), ids);
    let (chunks, bytes) = store.usage().await.expect("usage");
    assert_eq!(chunks, 5);
    assert!(bytes >= (0..5).map(|i| 100 * i).sum::<u64>());

    let gone = ids.remove(2);
    store.delete(gone).await.expect("delete");
    store.delete(gone).await.expect("delete again");
    store
        .delete(ChunkId::generate())
        .await
        .expect("delete unknown");
    assert_eq!(store.list().await.expect("list"), ids);
    assert!(matches!(store.stat(gone).await, Err(ChunkError::NotFound(id)) if id == gone));
    assert!(matches!(
        store.read(gone, 0..0).await.map(|_| ()),
        Err(ChunkError::NotFound(_))
    ));
    assert_eq!(store.usage().await.expect("usage").0, 4);
}

#[tokio::test]
async fn an_orphan_deletion_spares_a_chunk_put_again_since() {
    let (_dir, store) = open().await;
    let id = ChunkId::generate();
    let data = source(200_000, 5);
    put(&store, id, &data).await.expect("put");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let age = std::time::Duration::from_millis(200);
    assert_eq!(store.list_older_than(age).await.expect("list"), [id]);
    // The same chunk put again (a copy onto a server holding an old stray)
    // is a fresh file: a sweep that decided on the old one leaves it alone.
    put(&store, id, &data).await.expect("put again");
    assert!(!store.delete_if_older_than(id, age).await.expect("delete"));
    assert_eq!(store.stat(id).await.expect("still there").size, 200_000);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(store.delete_if_older_than(id, age).await.expect("delete"));
    assert!(
        !store
            .delete_if_older_than(id, age)
            .await
            .expect("gone already")
    );
    assert!(store.stat(id).await.is_err());
}
