//! The replicated data path with real processes: one `arbor meta`, four
//! `arbor chunk` servers in four zones and an `arbor gateway` writing three
//! replicas of every chunk, driven with aws-sdk-s3 and checked on disk.
//!
//! One scenario, in order (each step relies on the state the last left):
//! round trip (single PUT and multipart, every chunk on exactly three
//! servers); a corrupted replica read around and repaired; another found
//! by the scrubber and repaired without any read; an orphan chunk
//! collected after its grace; deleted objects collected everywhere; a
//! server killed with SIGKILL (reads and writes go on), marked OFFLINE, and after the
//! grace its chunks re-replicated until every chunk is back at three; the
//! server restarted and its now surplus copies removed; a server drained
//! until it holds nothing. Timeouts are shortened by flags; every wait is
//! bounded.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use arbor_compat_tests::{
    ArborCluster, CLUSTER_ACCESS_KEY, CLUSTER_SECRET_KEY, ClusterOptions, arbor_command,
    chunk_files, raw_request,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use sha2::Digest;

use common::{bytes, client};

const BUCKET: &str = "replicated";
/// Small chunks, so objects span several.
const CHUNK_SIZE: &str = "262144";
const FACTOR: usize = 3;
/// Every wait for a background service ends within this.
const WAIT: Duration = Duration::from_secs(60);

struct Cluster {
    _dir: tempfile::TempDir,
    processes: ArborCluster,
    s3: aws_sdk_s3::Client,
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| (*a).to_owned()).collect()
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = ClusterOptions {
            zones: args(&["a", "b", "c", "d"]),
            meta_args: args(&[
                "--chunk-heartbeat-timeout-secs",
                "2",
                "--offline-grace-secs",
                "3",
                "--heal-interval-secs",
                "1",
                "--gc-grace-secs",
                "1",
            ]),
            chunk_args: args(&[
                "--heartbeat-secs",
                "1",
                "--orphan-grace-secs",
                "5",
                "--scrub-interval-secs",
                "2",
            ]),
            gateway_args: args(&["--replication-factor", "3", "--chunk-size", CHUNK_SIZE]),
        };
        Cluster::start_with(dir, &options)
    }

    /// A cluster of `options`, once all its chunk servers are ONLINE.
    fn start_with(dir: tempfile::TempDir, options: &ClusterOptions) -> Cluster {
        let processes = ArborCluster::start(dir.path(), options).expect("start cluster");
        let s3 = client(&processes.endpoint, CLUSTER_ACCESS_KEY, CLUSTER_SECRET_KEY);
        let cluster = Cluster {
            _dir: dir,
            processes,
            s3,
        };
        let servers = options.zones.len();
        cluster.wait_for("every server ONLINE", || {
            let list = cluster.registry();
            (list.len() == servers && list.values().all(|s| s["status"] == "ONLINE")).then_some(())
        });
        cluster
    }

    /// The remote reads the meta node has served, by operation, leaving
    /// out the gateway's registry refreshes (`ChunkServers`, on its own
    /// clock).
    fn meta_reads(&self) -> BTreeMap<String, u64> {
        let status: serde_json::Value =
            serde_json::from_str(self.admin(&["status"]).trim()).expect("status JSON");
        status["reads"]
            .as_object()
            .expect("reads in the status")
            .iter()
            .filter(|(name, _)| name.as_str() != "ChunkServers")
            .map(|(name, count)| (name.clone(), count.as_u64().expect("count")))
            .collect()
    }

    /// The reads the meta node served while `step` ran, by operation.
    async fn reads_during<T>(&self, step: impl Future<Output = T>) -> (T, BTreeMap<String, u64>) {
        let before = self.meta_reads();
        let out = step.await;
        let after = self.meta_reads();
        let served = after
            .into_iter()
            .filter_map(|(name, count)| {
                let delta = count - before.get(&name).copied().unwrap_or(0);
                (delta > 0).then_some((name, delta))
            })
            .collect();
        (out, served)
    }

    fn admin(&self, args: &[&str]) -> String {
        let out = arbor_command()
            .expect("binary")
            .args(["admin", "meta", "--meta", &self.processes.meta_addr])
            .args(args)
            .output()
            .expect("run arbor admin meta");
        assert!(
            out.status.success(),
            "arbor admin meta {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The registry, by zone.
    fn registry(&self) -> BTreeMap<String, serde_json::Value> {
        self.admin(&["chunk-servers"])
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|s| (s["zone"].as_str().unwrap_or("").to_owned(), s))
            .collect()
    }

    fn server_id(&self, zone: &str) -> u64 {
        self.registry()[zone]["id"].as_u64().expect("server id")
    }

    /// The servers (by zone) the metadata group says hold `chunk`.
    fn recorded(&self, chunk: &str) -> Vec<String> {
        let record: serde_json::Value =
            serde_json::from_str(self.admin(&["chunk", chunk]).trim()).expect("chunk JSON");
        let registry = self.registry();
        record["servers"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| {
                        registry
                            .iter()
                            .find(|(_, s)| s["id"] == *id)
                            .map(|(zone, _)| zone.clone())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Chunk ids on disk, per zone.
    fn on_disk(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.processes
            .chunks
            .iter()
            .map(|s| {
                let names = chunk_files(&s.data.join("chunks"))
                    .iter()
                    .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
                    .collect();
                (s.zone.clone(), names)
            })
            .collect()
    }

    fn holders(&self, chunk: &str) -> Vec<String> {
        self.on_disk()
            .into_iter()
            .filter(|(_, ids)| ids.contains(chunk))
            .map(|(zone, _)| zone)
            .collect()
    }

    fn all_chunks(&self) -> BTreeSet<String> {
        self.on_disk().into_values().flatten().collect()
    }

    fn chunk_path(&self, zone: &str, chunk: &str) -> PathBuf {
        let server = self
            .processes
            .chunks
            .iter()
            .find(|s| s.zone == zone)
            .expect("zone");
        server.data.join("chunks").join(&chunk[30..]).join(chunk)
    }

    fn wait_for<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    async fn put(&self, key: &str, body: &[u8]) {
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        let out = self
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
        out.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec()
    }

    async fn assert_objects(&self, objects: &BTreeMap<String, Vec<u8>>, when: &str) {
        for (key, body) in objects {
            let got = self.get(key).await;
            assert!(got == *body, "{when}: {key} differs ({} bytes)", got.len());
        }
    }

    /// SIGKILL: a crash, not a shutdown.
    fn kill_server(&mut self, zone: &str) {
        self.processes.kill_chunk(zone).expect("kill chunk server");
    }

    fn restart_server(&mut self, zone: &str) {
        self.processes
            .restart_chunk(zone)
            .expect("restart chunk server");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_chunks_survive_corruption_loss_and_draining() {
    let mut cluster = Cluster::start();
    cluster
        .s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");

    // --- Round trip: every chunk on exactly FACTOR servers, recorded.
    let mut objects = BTreeMap::new();
    let big = bytes(1024 * 1024 + 12_345, 1); // 5 chunks
    cluster.put("big", &big).await;
    objects.insert("big".to_owned(), big);
    let small = bytes(100_000, 2); // 1 chunk (not inline)
    cluster.put("dir/small", &small).await;
    objects.insert("dir/small".to_owned(), small);
    let part_size = 5 * 1024 * 1024;
    let multipart = bytes(part_size + 300_000, 3);
    let upload = cluster
        .s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("multi")
        .send()
        .await
        .expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let mut parts = Vec::new();
    for (i, piece) in multipart.chunks(part_size).enumerate() {
        let number = i32::try_from(i + 1).expect("part number");
        let part = cluster
            .s3
            .upload_part()
            .bucket(BUCKET)
            .key("multi")
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(piece.to_vec()))
            .send()
            .await
            .expect("upload part");
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().expect("etag"))
                .build(),
        );
    }
    cluster
        .s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("multi")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    objects.insert("multi".to_owned(), multipart);
    cluster.assert_objects(&objects, "round trip").await;
    let chunks = cluster.all_chunks();
    assert!(chunks.len() >= 5 + 1 + 21, "{} chunks", chunks.len());
    for chunk in &chunks {
        let mut held = cluster.holders(chunk);
        let mut recorded = cluster.recorded(chunk);
        held.sort();
        recorded.sort();
        assert_eq!(held.len(), FACTOR, "chunk {chunk} on {held:?}");
        assert_eq!(held, recorded, "chunk {chunk}: disk and record agree");
    }
    let status = cluster.admin(&["chunks"]);
    assert!(status.contains("\"under_replicated\":0"), "{status}");

    // --- Signed payload: a one-chunk body whose SHA-256 the signature
    // layer verifies is fingerprinted with it and not hashed again by the
    // gateway or a replica (docs/design.md, "Signed payloads"); a body
    // that does not match its signed SHA-256 leaves no chunk on any
    // server.
    let signer = common::sign::Signer::new(
        &cluster.processes.endpoint,
        CLUSTER_ACCESS_KEY,
        CLUSTER_SECRET_KEY,
    );
    let signed_body = bytes(200_000, 5);
    let put_signed = |payload: common::sign::Payload<'_>| {
        let target = format!("/{BUCKET}/signed");
        let headers = signer.sign_headers("PUT", &target, &[], payload, SystemTime::now());
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        raw_request(
            &cluster.processes.endpoint,
            "PUT",
            &target,
            &refs,
            &signed_body,
        )
        .expect("signed PUT")
    };
    let before = cluster.all_chunks();
    let claimed = "ab".repeat(32);
    let refused = put_signed(common::sign::Payload::Claimed(&claimed));
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(
        refused.error_code().as_deref(),
        Some("XAmzContentSHA256Mismatch")
    );
    assert_eq!(
        cluster.all_chunks(),
        before,
        "a refused body leaves no chunk"
    );
    let stored = put_signed(common::sign::Payload::Sha256Of(&signed_body));
    assert_eq!(stored.status, 200, "{stored:?}");
    let new: Vec<String> = cluster.all_chunks().difference(&before).cloned().collect();
    assert_eq!(new.len(), 1, "one new chunk: {new:?}");
    assert_eq!(cluster.holders(&new[0]).len(), FACTOR);
    objects.insert("signed".to_owned(), signed_body.clone());
    cluster.assert_objects(&objects, "signed payload").await;

    // --- Corruption: the first replica a read tries holds a bad copy; the
    // read succeeds from another, and the bad copy is repaired.
    let small_chunk = {
        let before: BTreeSet<String> = cluster.all_chunks();
        cluster.put("one-chunk", &bytes(200_000, 4)).await;
        objects.insert("one-chunk".to_owned(), bytes(200_000, 4));
        let after = cluster.all_chunks();
        let new: Vec<String> = after.difference(&before).cloned().collect();
        assert_eq!(new.len(), 1, "one new chunk: {new:?}");
        new[0].clone()
    };
    let first = cluster.recorded(&small_chunk)[0].clone();
    let bad_path = cluster.chunk_path(&first, &small_chunk);
    let good = std::fs::read(&bad_path).expect("read replica");
    let mut corrupt = good.clone();
    corrupt[1000] ^= 0xff;
    std::fs::write(&bad_path, &corrupt).expect("corrupt replica");
    assert!(
        cluster.get("one-chunk").await == objects["one-chunk"],
        "read around the corrupt replica"
    );
    cluster.wait_for("corrupt replica repaired", || {
        (std::fs::read(&bad_path).ok()? == good).then_some(())
    });

    // --- Scrubbing: a corrupt replica nobody reads is found by its
    // server's scrubber and copied back from a good replica.
    let scrubbed = chunks.iter().next().expect("a chunk").clone();
    let last = cluster.recorded(&scrubbed)[FACTOR - 1].clone();
    let scrubbed_path = cluster.chunk_path(&last, &scrubbed);
    let good = std::fs::read(&scrubbed_path).expect("read replica");
    let mut corrupt = good.clone();
    corrupt[good.len() / 2] ^= 0x01;
    std::fs::write(&scrubbed_path, &corrupt).expect("corrupt replica");
    cluster.wait_for("scrubbed replica repaired", || {
        (std::fs::read(&scrubbed_path).ok()? == good).then_some(())
    });

    // --- Orphans: a chunk written straight to a server and never committed
    // (its id's creation time is long past) is deleted after the grace.
    let orphan_id = format!("000000000001{}", "ab".repeat(10));
    let orphan_body = b"never committed".repeat(100);
    let orphan_sha = hex::encode(sha2::Sha256::digest(&orphan_body));
    let target = format!("/chunks/{orphan_id}");
    let mut headers = arbor_compat_tests::test_cluster_auth("PUT", &target, &orphan_sha);
    headers.push(("x-arbor-sha256".to_owned(), orphan_sha.clone()));
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let put = raw_request(
        &format!("http://{}", cluster.processes.chunks[0].addr),
        "PUT",
        &target,
        &headers,
        &orphan_body,
    )
    .expect("put orphan");
    assert_eq!(put.status, 201);
    assert!(cluster.holders(&orphan_id) == [cluster.processes.chunks[0].zone.clone()]);
    cluster.wait_for("orphan collected", || {
        cluster.holders(&orphan_id).is_empty().then_some(())
    });

    // --- Deleted objects: their chunks leave every server after the grace.
    let dir_small = cluster.holders(&{
        let before = cluster.all_chunks();
        cluster.put("doomed", &bytes(300_000, 5)).await;
        let after = cluster.all_chunks();
        after
            .difference(&before)
            .next()
            .cloned()
            .expect("doomed chunk")
    });
    assert_eq!(dir_small.len(), FACTOR);
    let before_delete = cluster.all_chunks();
    cluster
        .s3
        .delete_object()
        .bucket(BUCKET)
        .key("doomed")
        .send()
        .await
        .expect("delete");
    cluster.wait_for("deleted object's chunks collected", || {
        (cluster.all_chunks().len() + 2 == before_delete.len()).then_some(())
    });

    // --- A server dies: reads and writes go on at once.
    let victim = cluster.recorded(&small_chunk)[0].clone();
    cluster.kill_server(&victim);
    cluster.assert_objects(&objects, "one server down").await;
    let during = bytes(400_000, 6);
    cluster.put("written-while-down", &during).await;
    objects.insert("written-while-down".to_owned(), during);
    cluster.assert_objects(&objects, "write while down").await;

    // OFFLINE after the heartbeat timeout; after the grace, every chunk is
    // back at FACTOR replicas on the three live servers.
    cluster.wait_for("victim OFFLINE", || {
        (cluster.registry()[&victim]["status"] == "OFFLINE").then_some(())
    });
    cluster.wait_for("replication restored to 3", || {
        let disk = cluster.on_disk();
        let all: BTreeSet<String> = disk.values().flatten().cloned().collect();
        all.iter()
            .all(|chunk| {
                disk.iter()
                    .filter(|(zone, ids)| **zone != victim && ids.contains(chunk))
                    .count()
                    == FACTOR
            })
            .then_some(())
    });
    for chunk in cluster.all_chunks() {
        if cluster.holders(&chunk).iter().any(|z| *z != victim) {
            assert!(
                !cluster.recorded(&chunk).contains(&victim),
                "chunk {chunk}: the lost server is dropped from the record"
            );
        }
    }
    cluster
        .assert_objects(&objects, "after re-replication")
        .await;

    // --- The server comes back: its copies are surplus and go.
    cluster.restart_server(&victim);
    cluster.wait_for("surplus replicas removed", || {
        let disk = cluster.on_disk();
        disk[&victim].is_empty().then_some(())
    });
    for chunk in cluster.all_chunks() {
        assert_eq!(cluster.holders(&chunk).len(), FACTOR, "chunk {chunk}");
    }

    // --- Drain a server: its chunks move to the others, it ends empty.
    let drained = cluster
        .processes
        .chunks
        .iter()
        .map(|s| s.zone.clone())
        .find(|z| *z != victim)
        .expect("another zone");
    let id = cluster.server_id(&drained).to_string();
    cluster.admin(&["drain", &id]);
    cluster.wait_for("drained server emptied", || {
        let disk = cluster.on_disk();
        let all = cluster.all_chunks();
        (disk[&drained].is_empty() && all.iter().all(|c| cluster.holders(c).len() == FACTOR))
            .then_some(())
    });
    cluster.assert_objects(&objects, "after draining").await;

    cluster.processes.stop().expect("stop cluster");
}

/// A GET finds its chunks' replicas in the answer to the metadata read of
/// its version: one metadata round trip per GET, whole, ranged or by part
/// (docs/design.md, "Read path"); HEAD reads no locations. Default
/// intervals, so no background service reads chunk records meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_reads_its_version_and_chunk_locations_in_one_metadata_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = ClusterOptions {
        zones: args(&["a", "b", "c"]),
        gateway_args: args(&["--replication-factor", "3", "--chunk-size", CHUNK_SIZE]),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start_with(dir, &options);
    cluster
        .s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    // Five chunks, and an object small enough to be inline.
    let large = bytes(4 * 262_144 + 1000, 21);
    let small = bytes(100, 22);
    cluster.put("large", &large).await;
    cluster.put("small", &small).await;
    let one = |name: &str| BTreeMap::from([(name.to_owned(), 1)]);

    let (got, reads) = cluster.reads_during(cluster.get("large")).await;
    assert!(got == large, "whole GET differs");
    assert_eq!(reads, one("GetLocatedVersion"), "whole GET");

    let ranged = |range: &'static str| {
        let s3 = cluster.s3.clone();
        async move {
            let out = s3
                .get_object()
                .bucket(BUCKET)
                .key("large")
                .range(range)
                .send()
                .await
                .expect("ranged get");
            out.body
                .collect()
                .await
                .expect("body")
                .into_bytes()
                .to_vec()
        }
    };
    // Across the second and third chunks, then the last bytes only.
    let (got, reads) = cluster.reads_during(ranged("bytes=300000-600000")).await;
    assert!(got == large[300_000..=600_000], "ranged GET differs");
    assert_eq!(reads, one("GetLocatedVersion"), "ranged GET");
    let (got, reads) = cluster.reads_during(ranged("bytes=-500")).await;
    assert!(got == large[large.len() - 500..], "suffix GET differs");
    assert_eq!(reads, one("GetLocatedVersion"), "suffix GET");

    let by_part = async {
        let out = cluster
            .s3
            .get_object()
            .bucket(BUCKET)
            .key("large")
            .part_number(1)
            .send()
            .await
            .expect("get part 1");
        out.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec()
    };
    let (got, reads) = cluster.reads_during(by_part).await;
    assert!(got == large, "part 1 of a single-part object is all of it");
    assert_eq!(reads, one("GetLocatedVersion"), "GET by part");

    let (got, reads) = cluster.reads_during(cluster.get("small")).await;
    assert!(got == small, "inline GET differs");
    assert_eq!(reads, one("GetLocatedVersion"), "inline GET");

    let head = cluster.s3.head_object().bucket(BUCKET).key("large").send();
    let (head, reads) = cluster.reads_during(head).await;
    assert_eq!(
        head.expect("head").content_length(),
        i64::try_from(large.len()).ok()
    );
    assert_eq!(
        reads,
        one("GetReadableVersion"),
        "HEAD asks for no locations"
    );

    // Every listed replica of a chunk gone (as if moved since the read):
    // the GET fails as it did when locations were read separately, with
    // the body cut, never with wrong bytes.
    let chunk = cluster.all_chunks().into_iter().next().expect("a chunk");
    for zone in cluster.holders(&chunk) {
        std::fs::remove_file(cluster.chunk_path(&zone, &chunk)).expect("remove replica");
    }
    let read = cluster
        .s3
        .get_object()
        .bucket(BUCKET)
        .key("large")
        .send()
        .await;
    let body = match read {
        Ok(out) => out
            .body
            .collect()
            .await
            .ok()
            .map(|b| b.into_bytes().to_vec()),
        Err(_) => None,
    };
    assert!(body.is_none(), "a chunk with no replica left fails its GET");
}
