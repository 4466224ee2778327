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
