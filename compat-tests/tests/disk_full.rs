//! A full disk under `arbor serve`: writes are refused with a retryable
//! 503 while reads, listings and deletes go on, nothing partial becomes
//! visible, and writes succeed again once space is freed. The data
//! directory lives on a small tmpfs the test mounts (root only; elsewhere
//! the test says it was skipped).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

use arbor_compat_tests::ArborServer;
use common::{bytes, client_once};

const BUCKET: &str = "full";
const MIB: u64 = 1024 * 1024;
/// The file system's size: room for the reserves (128 MiB for chunks, of
/// which 64 MiB for metadata) and some data.
const FS_SIZE_MIB: u64 = 256;
/// How many chunked PUTs may succeed after the ballast before one must be
/// refused.
const PUTS_BEFORE_FULL_MAX: usize = 20;

/// A tmpfs mounted for the test, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn new(at: &Path) -> Option<Mount> {
        std::fs::create_dir_all(at).ok()?;
        let size = format!("size={FS_SIZE_MIB}m");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Mount(at.to_owned()))
    }

    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df's answer")
    }

    /// Fills the file system until `leave` bytes are free (a file the
    /// test later removes, as an operator frees space).
    fn fill_to(&self, leave: u64, name: &str) -> PathBuf {
        let free = self.free();
        let path = self.0.join(name);
        let size = free.saturating_sub(leave);
        let file = std::fs::File::create(&path).expect("ballast");
        file.set_len(0).expect("len");
        // tmpfs allocates on write: write zeros, 1 MiB at a time.
        use std::io::Write;
        let mut file = std::io::BufWriter::new(file);
        let block = vec![0u8; MIB as usize];
        let mut written = 0;
        while written + MIB <= size {
            file.write_all(&block).expect("write ballast");
            written += MIB;
        }
        file.write_all(&block[..(size - written) as usize])
            .expect("write ballast");
        file.flush().expect("flush");
        path
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// PUT `body` at `key`: `None` on success, else (status, code).
async fn put(s3: &aws_sdk_s3::Client, key: &str, body: Vec<u8>) -> Option<(u16, String)> {
    match s3
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
    {
        Ok(_) => None,
        Err(e) => Some((
            e.raw_response().map_or(0, |r| r.status().as_u16()),
            e.code().unwrap_or_default().to_owned(),
        )),
    }
}

async fn get(s3: &aws_sdk_s3::Client, key: &str) -> Option<Vec<u8>> {
    let out = s3.get_object().bucket(BUCKET).key(key).send().await.ok()?;
    Some(
        out.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(mount) = Mount::new(&dir.path().join("fs")) else {
        eprintln!("SKIPPED: this test mounts a tmpfs, which needs root");
        return;
    };
    let data = mount.0.join("data");
    let server = ArborServer::start(&data, &["--chunk-size", "1048576", "--gc-grace-secs", "1"])
        .expect("start");
    let s3 = client_once(
        &server.endpoint,
        &server.access_key,
        &server.secret_key,
        Duration::from_secs(60),
    );
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let mut stored = Vec::new();
    for i in 0..4u64 {
        let key = format!("before/{i}");
        let body = bytes(2 * MIB as usize, i);
        assert_eq!(put(&s3, &key, body.clone()).await, None, "{key}");
        stored.push((key, body));
    }

    // Chunk writes stop below their reserve (128 MiB free), with a
    // retryable 503; the refused object is not there.
    let ballast = mount.fill_to(140 * MIB, "ballast");
    let mut refused = None;
    for i in 0..PUTS_BEFORE_FULL_MAX {
        let key = format!("filling/{i}");
        let body = bytes(3 * MIB as usize, 100 + i as u64);
        match put(&s3, &key, body.clone()).await {
            None => stored.push((key, body)),
            Some(answer) => {
                refused = Some((key, answer));
                break;
            }
        }
    }
    let (key, answer) = refused.expect("a chunked PUT refused on a full disk");
    assert_eq!(answer, (503, "ServiceUnavailable".to_owned()), "{key}");
    assert_eq!(get(&s3, &key).await, None, "nothing partial");

    // Below the metadata reserve (64 MiB) small objects are refused too;
    // reads, listings and deletes go on.
    let more = mount.fill_to(40 * MIB, "more-ballast");
    let answer = put(&s3, "small", b"tiny".to_vec()).await;
    assert_eq!(answer, Some((503, "ServiceUnavailable".to_owned())));
    for (key, body) in &stored {
        assert_eq!(get(&s3, key).await.as_ref(), Some(body), "{key}");
    }
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(stored.len() as i32));
    let (gone, _) = stored.remove(0);
    s3.delete_object()
        .bucket(BUCKET)
        .key(&gone)
        .send()
        .await
        .expect("a delete runs on a full disk");
    assert_eq!(get(&s3, &gone).await, None);

    // Space freed: writes succeed again, and everything is still there.
    std::fs::remove_file(more).expect("free");
    std::fs::remove_file(ballast).expect("free");
    assert_eq!(put(&s3, "small", b"tiny".to_vec()).await, None);
    let after = bytes(3 * MIB as usize, 999);
    assert_eq!(put(&s3, "after", after.clone()).await, None);
    stored.push(("after".to_owned(), after));
    for (key, body) in &stored {
        assert_eq!(get(&s3, key).await.as_ref(), Some(body), "{key}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(server.stop().expect("stop").success());
    drop(mount);
}

/// What the reserve cannot prevent: another program fills the disk to the
/// last byte, and a write the reserve lets through (deletes) fails in
/// redb, which stops Raft. `arbor serve` then exits with an error, so that
/// a supervisor restarts it; restarted once space is freed, it has every
/// acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_stopped_by_a_full_disk_stops_the_server_and_a_restart_recovers() {
    /// Deletes sent before the server must have stopped.
    const DELETES_MAX: usize = 5000;
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(mount) = Mount::new(&dir.path().join("fs")) else {
        eprintln!("SKIPPED: this test mounts a tmpfs, which needs root");
        return;
    };
    let data = mount.0.join("data");
    let args = ["--chunk-size", "1048576"];
    let mut server = ArborServer::start(&data, &args).expect("start");
    let s3 = client_once(
        &server.endpoint,
        &server.access_key,
        &server.secret_key,
        Duration::from_secs(60),
    );
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let mut stored = Vec::new();
    for i in 0..10u64 {
        let key = format!("kept/{i}");
        let body = bytes(if i == 0 { 3 * MIB as usize } else { 100 }, i);
        assert_eq!(put(&s3, &key, body.clone()).await, None, "{key}");
        stored.push((key, body));
    }
    let ballast = mount.fill_to(0, "ballast");
    let mut sent = 0;
    let mut status = None;
    while sent < DELETES_MAX {
        // Keys that do not exist: each delete is still a log entry.
        let key = format!("absent/a-rather-long-key-name-that-fills-the-log-{sent}");
        let _ = s3.delete_object().bucket(BUCKET).key(&key).send().await;
        sent += 1;
        status = server.wait_exit(Duration::ZERO).expect("wait");
        if status.is_some() {
            break;
        }
    }
    let status = status
        .or_else(|| server.wait_exit(Duration::from_secs(30)).expect("wait"))
        .unwrap_or_else(|| panic!("still serving after {sent} deletes on a full disk"));
    assert!(
        !status.success(),
        "a stopped Raft is an error exit: {status:?}"
    );
    eprintln!("Raft stopped after {sent} deletes; arbor serve exited with {status:?}");

    std::fs::remove_file(ballast).expect("free");
    let server = ArborServer::start(&data, &args).expect("restart");
    let s3 = client_once(
        &server.endpoint,
        &server.access_key,
        &server.secret_key,
        Duration::from_secs(60),
    );
    for (key, body) in &stored {
        assert_eq!(get(&s3, key).await.as_ref(), Some(body), "{key}");
    }
    assert_eq!(put(&s3, "after", b"again".to_vec()).await, None);
    assert!(server.stop().expect("stop").success());
    drop(mount);
}
