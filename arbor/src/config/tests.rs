//! Layering, naming and checks of the settings. (The environment layer
//! is tested by running the binary: tests/config.rs.)

use std::path::PathBuf;

use clap::FromArgMatches;

use super::*;

/// `T` from `args` (flags after the role's name) over `file` (TOML text).
fn load_from<T: Settings + FromArgMatches>(args: &[&str], file: Option<&str>) -> anyhow::Result<T> {
    let matches = T::augment_args(clap::Command::new("role"))
        .try_get_matches_from(std::iter::once("role").chain(args.iter().copied()))?;
    let parsed = T::from_arg_matches(&matches)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("arbor.toml");
    if let Some(text) = file {
        std::fs::write(&path, text)?;
    }
    load(&parsed, &matches, file.map(|_| path.as_path()))
}

/// Every setting follows the naming rule: key `a_b`, flag `--a-b`,
/// variable `ARBOR_A_B` (the documentation and `describe` rely on it).
#[test]
fn flags_and_variables_are_named_after_the_key() {
    fn check<T: clap::Args>() {
        let command = T::augment_args(clap::Command::new("role"));
        for arg in command.get_arguments() {
            let key = arg.get_id().as_str();
            assert_eq!(
                arg.get_long(),
                Some(key.replace('_', "-").as_str()),
                "{key}"
            );
            let env = arg.get_env().and_then(|e| e.to_str());
            assert_eq!(env, Some(env_name(key).as_str()), "{key}");
        }
    }
    check::<ServeConfig>();
    check::<MetaNodeConfig>();
    check::<ChunkConfig>();
    check::<GatewayConfig>();
    check::<AdminConfig>();
    check::<DevClusterConfig>();
}

#[test]
fn a_flag_wins_over_the_file_and_the_file_over_the_default() {
    let file = "chunk_size = 1048576\nregion = \"eu-1\"\n";
    let serve: ServeConfig = load_from(&[], Some(file)).expect("serve");
    assert_eq!(serve.chunk_size, 1_048_576);
    assert_eq!(serve.region.as_deref(), Some("eu-1"));
    assert_eq!(serve.gc_grace_secs, GC_GRACE_SECS_DEFAULT);
    let serve: ServeConfig = load_from(&["--chunk-size", "2097152"], Some(file)).expect("serve");
    assert_eq!(serve.chunk_size, 2_097_152);
    assert_eq!(serve.region.as_deref(), Some("eu-1"));

    let file = "node_id = 4\nheal_interval_secs = 30\n";
    let meta: MetaNodeConfig =
        load_from(&["--cluster-secret-file", "s"], Some(file)).expect("meta");
    assert_eq!((meta.node_id, meta.heal_interval_secs), (Some(4), 30));
    let meta: MetaNodeConfig = load_from(
        &["--cluster-secret-file", "s", "--heal-interval-secs", "5"],
        Some(file),
    )
    .expect("meta");
    assert_eq!((meta.node_id, meta.heal_interval_secs), (Some(4), 5));

    let file = "zone = \"rack-1\"\nmeta = [\"10.0.0.1:9200\"]\n";
    let chunk: ChunkConfig = load_from(&["--cluster-secret-file", "s"], Some(file)).expect("chunk");
    assert_eq!(chunk.zone, "rack-1");
    assert_eq!(chunk.meta, ["10.0.0.1:9200"]);
    let chunk: ChunkConfig = load_from(
        &["--cluster-secret-file", "s", "--zone", "rack-2"],
        Some(file),
    )
    .expect("chunk");
    assert_eq!(chunk.zone, "rack-2");

    let file = "meta = [\"m1:9200\", \"m2:9200\"]\nreplication_factor = 2\n";
    let gateway: GatewayConfig =
        load_from(&["--cluster-secret-file", "s"], Some(file)).expect("gateway");
    assert_eq!(gateway.meta, ["m1:9200", "m2:9200"]);
    assert_eq!(gateway.replication_factor, 2);
    let gateway: GatewayConfig = load_from(
        &[
            "--cluster-secret-file",
            "s",
            "--meta",
            "m3:9200",
            "--replication-factor",
            "1",
        ],
        Some(file),
    )
    .expect("gateway");
    assert_eq!(gateway.meta, ["m3:9200"]);
    assert_eq!(gateway.replication_factor, 1);

    let file = "endpoint = \"http://10.0.0.1:9000\"\n";
    let admin: AdminConfig = load_from(&[], Some(file)).expect("admin");
    assert_eq!(admin.endpoint, "http://10.0.0.1:9000");
    let admin: AdminConfig =
        load_from(&["--endpoint", "http://10.0.0.2:9000"], Some(file)).expect("admin");
    assert_eq!(admin.endpoint, "http://10.0.0.2:9000");
}

#[test]
fn an_unknown_key_is_refused() {
    let e = load_from::<ServeConfig>(&[], Some("chunk_sise = 1048576\n")).expect_err("typo");
    let message = format!("{e:#}");
    assert!(message.contains("chunk_sise"), "{message}");
    assert!(message.contains("arbor.toml"), "{message}");
    // Not a setting of this role, nor the file's own name.
    assert!(
        load_from::<ChunkConfig>(
            &["--cluster-secret-file", "s"],
            Some("replication_factor = 3\n")
        )
        .is_err()
    );
    assert!(load_from::<ServeConfig>(&[], Some("config = \"x.toml\"\n")).is_err());
    // A value of the wrong type names its key.
    let e = load_from::<ServeConfig>(&[], Some("chunk_size = \"big\"\n")).expect_err("type");
    assert!(format!("{e:#}").contains("chunk_size"), "{e:#}");
}

/// A bad value is refused with its name and what is allowed, whichever
/// layer gave it; nothing is clamped.
#[test]
fn out_of_range_values_are_refused_by_name() {
    let cases: [(anyhow::Result<()>, &str, &str); 9] = [
        (
            load_from::<ServeConfig>(&["--chunk-size", "536870912"], None).map(drop),
            "--chunk-size",
            "65536..=268435456",
        ),
        (
            load_from::<ServeConfig>(&[], Some("chunk_size = 1000\n")).map(drop),
            "chunk_size",
            "multiple of 65536",
        ),
        (
            load_from::<ServeConfig>(&["--upload-expiry-secs", "0"], None).map(drop),
            "upload_expiry_secs",
            "1..=",
        ),
        (
            load_from::<MetaNodeConfig>(
                &[
                    "--cluster-secret-file",
                    "s",
                    "--node-id",
                    "1",
                    "--heal-interval-secs",
                    "0",
                ],
                None,
            )
            .map(drop),
            "heal_interval_secs",
            "1..=",
        ),
        (
            load_from::<MetaNodeConfig>(
                &["--node-id", "1"],
                Some("gc_grace_secs = 999999999999\n"),
            )
            .map(drop),
            "gc_grace_secs",
            "0..=315360000",
        ),
        (
            load_from::<MetaNodeConfig>(&["--cluster-secret-file", "s"], None).map(drop),
            "node_id",
            "required",
        ),
        (
            load_from::<ChunkConfig>(
                &["--cluster-secret-file", "s", "--scrub-interval-secs", "0"],
                None,
            )
            .map(drop),
            "scrub_interval_secs",
            "1..=",
        ),
        (
            load_from::<ChunkConfig>(
                &["--cluster-secret-file", "s", "--connections-max", "100000"],
                None,
            )
            .map(drop),
            "connections_max",
            "1..=128",
        ),
        (
            load_from::<GatewayConfig>(
                &[
                    "--cluster-secret-file",
                    "s",
                    "--meta",
                    "m:1",
                    "--replication-factor",
                    "17",
                ],
                None,
            )
            .map(drop),
            "replication_factor",
            "1..=16",
        ),
    ];
    for (result, name, allowed) in cases {
        let message = format!("{:#}", result.expect_err(name));
        assert!(message.contains(name), "{message}");
        assert!(message.contains(allowed), "{message}");
    }
}

#[test]
fn secrets_are_redacted_wherever_settings_are_shown() {
    let config = ServeConfig {
        access_key: Some(Secret::new("AKIDEXAMPLE")),
        secret_key: Some(Secret::new("wJalrXUtnFEMI")),
        ..load_from::<ServeConfig>(&[], None).expect("defaults")
    };
    config.validate().expect("valid");
    for shown in [
        to_line(&config),
        to_toml(&config).expect("toml"),
        format!("{config:?}"),
    ] {
        assert!(!shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(shown.contains(REDACTED), "{shown}");
    }
    let credentials = config.credentials().expect("a key pair");
    assert_eq!(credentials.secret_key, "wJalrXUtnFEMI");
}

#[test]
fn keys_come_in_pairs_and_are_read_from_the_file() {
    let file = "access_key = \"AKID\"\nsecret_key = \"secret\"\n";
    if std::env::var_os("ARBOR_ACCESS_KEY").is_none()
        && std::env::var_os("ARBOR_SECRET_KEY").is_none()
    {
        let gateway: GatewayConfig =
            load_from(&["--cluster-secret-file", "s", "--meta", "m:1"], Some(file))
                .expect("gateway");
        let credentials = gateway.credentials().expect("a key pair");
        assert_eq!(
            (
                credentials.access_key.as_str(),
                credentials.secret_key.as_str()
            ),
            ("AKID", "secret")
        );
        let e = load_from::<AdminConfig>(&[], Some("secret_key = \"secret\"\n")).expect_err("half");
        assert!(format!("{e:#}").contains("access_key"), "{e:#}");
    }
    // No flag takes a secret.
    assert!(load_from::<ServeConfig>(&["--secret-key", "x"], None).is_err());
}

/// `arbor chunk` keeps the chunk store's defaults: they live there only.
#[test]
fn chunk_defaults_are_the_chunk_stores() {
    let chunk: ChunkConfig = load_from(&["--cluster-secret-file", "s"], None).expect("defaults");
    assert_eq!(
        chunk.server_config(),
        ChunkServerConfig {
            data_dir: PathBuf::from(CHUNK_DATA_DIR_DEFAULT),
            ..ChunkServerConfig::default()
        }
    );
}

#[test]
fn defaults_pass_validation() {
    load_from::<ServeConfig>(&[], None).expect("serve");
    load_from::<MetaNodeConfig>(&["--cluster-secret-file", "s", "--node-id", "1"], None)
        .expect("meta");
    load_from::<ChunkConfig>(&["--cluster-secret-file", "s"], None).expect("chunk");
    load_from::<GatewayConfig>(
        &["--cluster-secret-file", "s", "--meta", "127.0.0.1:9200"],
        None,
    )
    .expect("gateway");
    load_from::<AdminConfig>(&[], None).expect("admin");
    load_from::<DevClusterConfig>(&["--dir", "d"], None).expect("dev-cluster");
}

#[test]
fn dev_cluster_sizes_and_ports_are_refused_not_clamped() {
    let cases: [(&[&str], &str, &str); 5] = [
        (&[], "dir", "required"),
        (&["--dir", "d", "--meta", "0"], "--meta", "1..=7"),
        (&["--dir", "d", "--chunk", "17"], "--chunk", "1..=16"),
        (&["--dir", "d", "--gateways", "0"], "--gateways", "1..=8"),
        (
            &["--dir", "d", "--base-port", "65530"],
            "--base-port",
            "65537",
        ),
    ];
    for (args, name, allowed) in cases {
        let e = load_from::<DevClusterConfig>(args, None).expect_err(name);
        let message = format!("{e:#}");
        assert!(message.contains(name), "{message}");
        assert!(message.contains(allowed), "{message}");
    }
    let edge: DevClusterConfig =
        load_from(&["--dir", "d", "--base-port", "65528"], None).expect("8 ports up to 65535");
    assert_eq!(edge.processes(), 8);
}

#[test]
fn cluster_roles_need_the_cluster_secret() {
    let cases = [
        load_from::<MetaNodeConfig>(&["--node-id", "1"], None).map(drop),
        load_from::<ChunkConfig>(&[], None).map(drop),
        load_from::<GatewayConfig>(&["--meta", "127.0.0.1:9200"], None).map(drop),
    ];
    for result in cases {
        let message = format!("{:#}", result.expect_err("no secret"));
        assert!(message.contains("cluster_secret_file"), "{message}");
    }
    // A file that is not a secret is refused when it is read.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.secret");
    std::fs::write(&path, "not hex").expect("write");
    let e = cluster_secret(Some(&path)).expect_err("bad secret");
    assert!(format!("{e:#}").contains("64 hex digits"), "{e:#}");
    assert!(cluster_secret(None).is_err());
    assert!(optional_cluster_secret(None).expect("none").is_none());
}

/// The lifecycle knobs (a shorter day for tests, the pass interval) come
/// from flags and the file like every setting, and zero is refused.
#[test]
fn lifecycle_day_and_interval_are_settable() {
    let config = load_from::<ServeConfig>(
        &["--lifecycle-day-secs", "2"],
        Some("lifecycle_interval_secs = 1\n"),
    )
    .expect("load");
    assert_eq!(config.lifecycle_day(), std::time::Duration::from_secs(2));
    assert_eq!(
        config.lifecycle_interval(),
        std::time::Duration::from_secs(1)
    );
    let defaults = load_from::<ServeConfig>(&[], None).expect("defaults");
    assert_eq!(defaults.lifecycle_day_secs, LIFECYCLE_DAY_SECS_DEFAULT);
    assert_eq!(
        defaults.lifecycle_interval_secs,
        LIFECYCLE_INTERVAL_SECS_DEFAULT
    );
    for flag in ["--lifecycle-day-secs", "--lifecycle-interval-secs"] {
        let e = load_from::<ServeConfig>(&[flag, "0"], None).expect_err(flag);
        assert!(format!("{e:#}").contains("1..="), "{e:#}");
    }
    let meta = load_from::<MetaNodeConfig>(
        &[
            "--cluster-secret-file",
            "s",
            "--node-id",
            "1",
            "--lifecycle-day-secs",
            "3",
        ],
        None,
    )
    .expect("meta");
    assert_eq!(meta.lifecycle_day(), std::time::Duration::from_secs(3));
}
