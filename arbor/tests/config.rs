//! Settings as the binary puts them together: flags over `ARBOR_*`
//! variables over the configuration file, for a setting of each role
//! (shown by `--check-config`), refusals, and the logged settings.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

/// `arbor` with no `ARBOR_*` variable from the test's own environment.
fn arbor() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arbor"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ARBOR_") {
            command.env_remove(name);
        }
    }
    command
}

/// What `arbor ARGS --check-config` prints, with `env` set.
fn effective(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = arbor()
        .args(args)
        .arg("--check-config")
        .envs(env.iter().copied())
        .output()
        .expect("run arbor");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `arbor ARGS`'s message when it refuses to start.
fn refusal(args: &[&str]) -> String {
    let out = arbor().args(args).output().expect("run arbor");
    assert!(!out.status.success(), "{args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// For one setting of `role`: the file's value, then the variable's over
/// it, then the flag's over both. (`role` ends with the flags; `arbor
/// admin` gets its `status` command after them.)
fn check_precedence(role: &[&str], key: &str, values: [&str; 3], show: impl Fn(&str) -> String) {
    let command: &[&str] = if role[0] == "admin" { &["status"] } else { &[] };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(format!("{}.toml", role[0]));
    std::fs::write(&file, format!("{key} = {}\n", show(values[0]))).expect("write");
    let file = file.to_str().expect("utf-8 path");
    let env_name = format!("ARBOR_{}", key.to_ascii_uppercase());
    let flag = format!("--{}", key.replace('_', "-"));
    let with_file: Vec<&str> = role.iter().copied().chain(["--config", file]).collect();
    let with_flag: Vec<&str> = with_file
        .iter()
        .copied()
        .chain([flag.as_str(), values[2]])
        .chain(command.iter().copied())
        .collect();
    let with_file: Vec<&str> = with_file
        .into_iter()
        .chain(command.iter().copied())
        .collect();
    let line = |value: &str| format!("{key} = {}\n", show(value));

    let text = effective(&with_file, &[]);
    assert!(text.contains(&line(values[0])), "file: {text}");
    let text = effective(&with_file, &[(&env_name, values[1])]);
    assert!(text.contains(&line(values[1])), "env over file: {text}");
    let text = effective(&with_flag, &[(&env_name, values[1])]);
    assert!(text.contains(&line(values[2])), "flag over env: {text}");
    // ARBOR_CONFIG names the file as --config does.
    let plain: Vec<&str> = role.iter().chain(command).copied().collect();
    let text = effective(&plain, &[("ARBOR_CONFIG", file)]);
    assert!(text.contains(&line(values[0])), "ARBOR_CONFIG: {text}");
}

fn number(value: &str) -> String {
    value.to_owned()
}

fn string(value: &str) -> String {
    format!("{value:?}")
}

#[test]
fn serve_flag_over_environment_over_file() {
    check_precedence(
        &["serve"],
        "chunk_size",
        ["1048576", "2097152", "4194304"],
        number,
    );
}

#[test]
fn meta_flag_over_environment_over_file() {
    check_precedence(
        &["meta", "--node-id", "1", "--cluster-secret-file", "s"],
        "heal_interval_secs",
        ["30", "20", "5"],
        number,
    );
}

#[test]
fn chunk_flag_over_environment_over_file() {
    check_precedence(
        &["chunk", "--cluster-secret-file", "s"],
        "zone",
        ["file", "env", "flag"],
        string,
    );
}

#[test]
fn gateway_flag_over_environment_over_file() {
    check_precedence(
        &[
            "gateway",
            "--meta",
            "127.0.0.1:9200",
            "--cluster-secret-file",
            "s",
        ],
        "replication_factor",
        ["1", "2", "3"],
        number,
    );
}

#[test]
fn admin_flag_over_environment_over_file() {
    check_precedence(
        &["admin"],
        "endpoint",
        [
            "http://10.0.0.1:9000",
            "http://10.0.0.2:9000",
            "http://10.0.0.3:9000",
        ],
        string,
    );
}

#[test]
fn an_unknown_key_in_the_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("serve.toml");
    std::fs::write(&file, "chunk_sise = 1048576\n").expect("write");
    let text = refusal(&[
        "serve",
        "--check-config",
        "--config",
        file.to_str().expect("utf-8"),
    ]);
    assert!(text.contains("unknown field `chunk_sise`"), "{text}");
    assert!(text.contains("serve.toml"), "{text}");
}

#[test]
fn out_of_range_values_are_refused_by_name() {
    let text = refusal(&["serve", "--check-config", "--chunk-size", "536870912"]);
    assert!(
        text.contains("`chunk_size` (--chunk-size, ARBOR_CHUNK_SIZE) = 536870912 is refused"),
        "{text}"
    );
    assert!(text.contains("65536..=268435456"), "{text}");
    let text = refusal(&["meta", "--node-id", "1", "--heal-interval-secs", "0"]);
    assert!(text.contains("heal_interval_secs"), "{text}");
    assert!(text.contains("1..=315360000"), "{text}");
    let text = refusal(&["chunk", "--scrub-interval-secs", "0", "--check-config"]);
    assert!(text.contains("scrub_interval_secs"), "{text}");
}

/// The settings are logged once at start, the key pair redacted.
#[test]
fn the_logged_settings_redact_the_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY";
    let mut child = arbor()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-fsync",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("ARBOR_ACCESS_KEY", "AKIDEXAMPLE")
        .env("ARBOR_SECRET_KEY", secret)
        .env("ARBOR_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn arbor");
    let stdout = child.stdout.take().expect("stdout");
    // The banner prints the keys on stdout on purpose; wait for its end.
    let started = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("credentials:"));
    child.kill().expect("kill");
    child.wait().expect("wait");
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("read log");
    assert!(started, "{log}");
    let line = log
        .lines()
        .find(|line| line.contains(r#""chunk_size":"#))
        .unwrap_or_else(|| panic!("no settings logged: {log}"));
    assert!(line.contains(r#""secret_key":"<redacted>""#), "{line}");
    assert!(line.contains(r#""access_key":"<redacted>""#), "{line}");
    assert!(!log.contains(secret), "{log}");
    assert!(!log.contains("AKIDEXAMPLE"), "{log}");
}

/// The lifecycle knobs tests use (`compat-tests/tests/lifecycle.rs`)
/// layer like every setting, in both roles that run the lifecycle task.
#[test]
fn lifecycle_knobs_flag_over_environment_over_file() {
    check_precedence(&["serve"], "lifecycle_day_secs", ["7", "5", "3"], number);
    check_precedence(
        &["meta", "--node-id", "1", "--cluster-secret-file", "s"],
        "lifecycle_interval_secs",
        ["30", "20", "5"],
        number,
    );
}
