//! The `arbor` binary's command line: help, and settings refused at startup.
//! (Also makes `cargo test` build the binary that compat-tests drive.)

use std::process::Command;

fn arbor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_arbor"))
}

#[test]
fn help_lists_serve() {
    let out = arbor().arg("--help").output().expect("run arbor");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve"), "{text}");
}

#[test]
fn serve_refuses_a_chunk_size_that_is_not_whole_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = arbor()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--chunk-size",
            "1000",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run arbor");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("--chunk-size"), "{text}");
    // Nothing was started, so nothing was written.
    assert!(
        std::fs::read_dir(dir.path())
            .expect("read dir")
            .next()
            .is_none()
    );
}

#[test]
fn serve_reports_an_address_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = arbor()
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(dir.path())
        .env("ARBOR_NO_FSYNC", "true")
        .output()
        .expect("run arbor");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("binding"), "{text}");
}

#[test]
fn help_lists_dev_cluster() {
    let out = arbor().arg("--help").output().expect("run arbor");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dev-cluster"), "{text}");
}

#[test]
fn dev_cluster_refuses_to_start_without_a_directory() {
    let out = arbor()
        .arg("dev-cluster")
        .env_remove("ARBOR_DIR")
        .output()
        .expect("run arbor");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("--dir"), "{text}");
}

/// `--stop-on-stdin-close`: closing the pipe stops a role as SIGTERM
/// does (how `arbor dev-cluster` makes sure no child outlives it).
#[test]
fn a_role_stops_when_its_standard_input_closes() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = arbor()
        .args(["serve", "--listen", "127.0.0.1:0", "--stop-on-stdin-close"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("ARBOR_NO_FSYNC", "true")
        .env("ARBOR_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run arbor");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    // Kept open to the end: a closed stdout would fail the server's
    // later prints.
    let mut lines = BufReader::new(stdout).lines();
    let banner = lines
        .by_ref()
        .map_while(Result::ok)
        .take(20)
        .find(|line| line.starts_with("endpoint:"));
    assert!(banner.is_some(), "no banner");
    assert!(child.try_wait().expect("wait").is_none(), "stopped early");
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running 30 s after its standard input closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    drop(lines);
}
