//! The settings of each role and how they are put together.
//!
//! Each role has one struct ([`ServeConfig`], [`MetaNodeConfig`],
//! [`ChunkConfig`], [`GatewayConfig`], [`AdminConfig`],
//! [`DevClusterConfig`]) that is at once its
//! flags (clap), the keys of its configuration file (serde, unknown keys
//! refused) and the settings it runs with. A setting `some_name` is the
//! flag `--some-name`, the environment variable `ARBOR_SOME_NAME` and the
//! file key `some_name` (a test holds every role to this).
//!
//! Layers, later wins: the defaults (the constants below, the one place
//! each lives), the TOML file named by `--config` or `ARBOR_CONFIG`, the
//! `ARBOR_*` environment, the flags. [`load`] merges them and validates the
//! result: a bad value is refused with the setting's name and what is
//! allowed, never clamped. The key pair (`access_key`, `secret_key`) comes
//! from the file or the environment only, since a flag would show it to
//! every user of `ps`; it is [`Secret`], so logs and `--check-config` show
//! it as `<redacted>`.

mod admin;
mod chunk;
mod dev_cluster;
mod gateway;
mod meta;
mod serve;

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use arbor_chunkstore::config::{ChunkServerConfig, HEARTBEAT_INTERVAL_DEFAULT};
use arbor_chunkstore::limits::{
    BLOCK_SIZE, CHUNK_SIZE_MAX, DRAIN_TIMEOUT_DEFAULT, HEAL_INTERVAL_DEFAULT,
    OFFLINE_GRACE_DEFAULT, ORPHAN_GRACE_DEFAULT, SCRUB_INTERVAL_DEFAULT,
};
use arbor_gateway::auth::Credentials;
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use admin::AdminConfig;
pub use chunk::ChunkConfig;
pub use dev_cluster::DevClusterConfig;
pub use gateway::GatewayConfig;
pub use meta::MetaNodeConfig;
pub use serve::ServeConfig;

/// The cluster's secret from `cluster_secret_file`, which every process of
/// a cluster needs (`arbor admin cluster-secret FILE` makes one).
pub fn cluster_secret(file: Option<&Path>) -> anyhow::Result<arbor_net::auth::ClusterSecret> {
    let file = file.ok_or_else(|| {
        anyhow!(
            "{} is required: every process of a cluster shares one secret \
             (create it once with `arbor admin cluster-secret FILE`)",
            describe("cluster_secret_file")
        )
    })?;
    arbor_net::auth::ClusterSecret::read(file)
        .with_context(|| format!("reading the cluster secret {}", file.display()))
}

/// [`cluster_secret`] when a file is named, else `None`.
pub fn optional_cluster_secret(
    file: Option<&Path>,
) -> anyhow::Result<Option<arbor_net::auth::ClusterSecret>> {
    file.map(|f| cluster_secret(Some(f))).transpose()
}

// --- Defaults ------------------------------------------------------------

/// Where S3 is served (`arbor serve`, `arbor gateway`) and where `arbor
/// admin` looks for it.
pub const S3_LISTEN_DEFAULT: &str = "127.0.0.1:9000";
/// Where a metadata node serves Raft and client RPCs.
pub const META_LISTEN_DEFAULT: &str = "127.0.0.1:9200";
/// Data directory of `arbor serve`, and where `arbor gateway` and `arbor
/// admin` look for `credentials.json`.
pub const DATA_DIR_DEFAULT: &str = "./arbor-data";
pub const META_DATA_DIR_DEFAULT: &str = "./arbor-data/meta";
pub const CHUNK_DATA_DIR_DEFAULT: &str = "./arbor-data/chunk";
/// Chunk size: the chunk store's default (64 MiB).
pub const CHUNK_SIZE_DEFAULT: u64 = arbor_chunkstore::limits::CHUNK_SIZE_DEFAULT;
/// Abandoned multipart uploads expire after the metadata service's default
/// (7 days): a client resuming an upload has a week, and abandoned parts
/// do not hold space for ever.
pub const UPLOAD_EXPIRY_SECS_DEFAULT: u64 =
    (arbor_meta::limits::UPLOAD_EXPIRY_DEFAULT_MS / 1000).unsigned_abs();
/// A lifecycle rule's day is a day; tests shorten it.
pub const LIFECYCLE_DAY_SECS_DEFAULT: u64 = 86_400;
/// Lifecycle rules are applied hourly: AWS applies them once a day, so an
/// hour is well within what clients expect.
pub const LIFECYCLE_INTERVAL_SECS_DEFAULT: u64 = 3_600;
/// Readers of a replaced version get 15 minutes to finish.
pub const GC_GRACE_SECS_DEFAULT: u64 = 15 * 60;
/// An uncommitted chunk older than this (a day) is garbage: no single body
/// upload (at most 5 GiB) takes that long.
pub const ORPHAN_GRACE_SECS_DEFAULT: u64 = ORPHAN_GRACE_DEFAULT.as_secs();
/// How long an OFFLINE chunk server's replicas still count (5 minutes).
pub const OFFLINE_GRACE_SECS_DEFAULT: u64 = OFFLINE_GRACE_DEFAULT.as_secs();
/// Pause between two re-replication passes (10 s).
pub const HEAL_INTERVAL_SECS_DEFAULT: u64 = HEAL_INTERVAL_DEFAULT.as_secs();
/// A chunk server silent this long is marked OFFLINE: with a heartbeat
/// every [`HEARTBEAT_SECS_DEFAULT`], two lost beats are tolerated.
pub const CHUNK_HEARTBEAT_TIMEOUT_SECS_DEFAULT: u64 = 10;
/// Pause between a chunk server's heartbeats (the chunk store's default).
pub const HEARTBEAT_SECS_DEFAULT: u64 = HEARTBEAT_INTERVAL_DEFAULT.as_secs();
/// Pause between two scrub passes (the chunk store's default, a day).
pub const SCRUB_INTERVAL_SECS_DEFAULT: u64 = SCRUB_INTERVAL_DEFAULT.as_secs();
/// Time a chunk server's in-flight requests get at shutdown.
pub const DRAIN_TIMEOUT_SECS_DEFAULT: u64 = DRAIN_TIMEOUT_DEFAULT.as_secs();
/// Replicas `arbor gateway` writes per chunk: a chunk survives the loss of
/// two servers.
pub const REPLICATION_FACTOR_DEFAULT: u8 = 3;

/// `arbor dev-cluster`: free ports, picked on the first start and kept.
pub const DEV_CLUSTER_BASE_PORT_DEFAULT: u16 = 0;
/// `arbor dev-cluster`: three meta nodes, a group that survives one loss.
pub const DEV_CLUSTER_META_DEFAULT: u64 = 3;
/// `arbor dev-cluster`: three chunk servers, one per replica of a chunk.
pub const DEV_CLUSTER_CHUNK_DEFAULT: u64 = 3;
/// `arbor dev-cluster`: two gateways, to show any gateway serves any
/// request.
pub const DEV_CLUSTER_GATEWAYS_DEFAULT: u64 = 2;

/// The chunk store's defaults for what it names no constant for (zone,
/// capacity, listen address); `arbor chunk` keeps them.
pub fn chunk_server_default() -> ChunkServerConfig {
    ChunkServerConfig::default()
}

/// Where `arbor admin` sends its requests by default: `arbor serve`'s S3
/// endpoint.
pub fn admin_endpoint_default() -> String {
    format!("http://{S3_LISTEN_DEFAULT}")
}

const _: () = assert!(CHUNK_HEARTBEAT_TIMEOUT_SECS_DEFAULT >= 3 * HEARTBEAT_SECS_DEFAULT);
const _: () = assert!(arbor_meta::limits::UPLOAD_EXPIRY_DEFAULT_MS >= 1000);

// --- Limits on settings --------------------------------------------------

/// Longest duration any `*_secs` setting may name: ten years is "never"
/// in practice, and keeps millisecond arithmetic far from overflow.
pub const DURATION_SECS_MAX: u64 = 10 * 365 * 24 * 60 * 60;
/// Largest integer a setting may hold: TOML integers are signed 64-bit.
pub const INTEGER_MAX: u64 = i64::MAX.unsigned_abs();

/// Most meta nodes `arbor dev-cluster` runs: Raft groups beyond seven
/// only slow commits down.
pub const DEV_CLUSTER_META_MAX: u64 = 7;
/// Most chunk servers `arbor dev-cluster` runs: processes on one machine.
pub const DEV_CLUSTER_CHUNK_MAX: u64 = 16;
/// Most gateways `arbor dev-cluster` runs.
pub const DEV_CLUSTER_GATEWAYS_MAX: u64 = 8;

// --- Secrets -------------------------------------------------------------

/// What logs and `--check-config` show instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// A credential: read from a file or the environment, never shown.
/// `Debug` and `Serialize` (the log line, `--check-config`) print
/// [`REDACTED`]; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// Settings read from the file and the environment only.
const CREDENTIAL_KEYS: [&str; 2] = ["access_key", "secret_key"];

/// Checks a key pair: both keys or neither, neither empty.
fn check_key_pair(access_key: Option<&Secret>, secret_key: Option<&Secret>) -> anyhow::Result<()> {
    match (access_key, secret_key) {
        (None, None) => Ok(()),
        (Some(access_key), Some(secret_key)) => {
            for (key, value) in [("access_key", access_key), ("secret_key", secret_key)] {
                if value.expose().is_empty() {
                    bail!("{} is empty", describe(key));
                }
            }
            Ok(())
        }
        (Some(_), None) | (None, Some(_)) => bail!(
            "{} and {} must be set together",
            describe("access_key"),
            describe("secret_key")
        ),
    }
}

/// The key pair the settings name, if they name one (checked by
/// [`check_key_pair`]).
fn key_pair(access_key: Option<&Secret>, secret_key: Option<&Secret>) -> Option<Credentials> {
    Some(Credentials {
        access_key: access_key?.expose().to_owned(),
        secret_key: secret_key?.expose().to_owned(),
    })
}

// --- Layering ------------------------------------------------------------

/// A role's settings.
pub trait Settings: clap::Args + Serialize + DeserializeOwned {
    /// Refuses values the role cannot run with, naming the setting and
    /// what is allowed.
    fn validate(&self) -> anyhow::Result<()>;
}

/// The settings a role runs with: `parsed` (flags and `ARBOR_*` variables
/// over the defaults, as clap parsed them into `matches`) over the keys of
/// `file`, and the credentials from the environment; then validated.
pub fn load<T: Settings>(
    parsed: &T,
    matches: &ArgMatches,
    file: Option<&Path>,
) -> anyhow::Result<T> {
    // Settings clap left at their defaults are the ones a file may set.
    let mut merged = match toml::Table::try_from(parsed) {
        Ok(table) => table,
        Err(e) => return Err(too_large(parsed).unwrap_or_else(|| anyhow!("settings: {e}"))),
    };
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading configuration file {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("configuration file {}", path.display()))?;
        let explicit = explicit_settings::<T>(matches);
        for (key, value) in table {
            if !explicit.contains(&key) {
                merged.insert(key, value);
            }
        }
    }
    for key in CREDENTIAL_KEYS {
        let name = env_name(key);
        match std::env::var(&name) {
            Ok(value) => {
                merged.insert(key.to_owned(), toml::Value::String(value));
            }
            Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(_)) => bail!("{name} is not UTF-8"),
        }
    }
    let config: T = toml::Value::Table(merged)
        .try_into()
        .map_err(|e| match file {
            Some(path) => anyhow!("configuration file {}: {e}", path.display()),
            None => anyhow!("settings: {e}"),
        })?;
    config.validate()?;
    Ok(config)
}

/// Why settings cannot be written as TOML: an integer over [`INTEGER_MAX`]
/// (flags and environment variables can give one).
fn too_large<T: Serialize>(parsed: &T) -> Option<anyhow::Error> {
    let serde_json::Value::Object(fields) = serde_json::to_value(parsed).ok()? else {
        return None;
    };
    fields.iter().find_map(|(key, value)| {
        let value = value.as_u64()?;
        (value > INTEGER_MAX).then(|| {
            refuse(
                key,
                value,
                format_args!("the largest value allowed is {INTEGER_MAX}"),
            )
        })
    })
}

/// The settings of `T` that a flag or an `ARBOR_*` variable set.
fn explicit_settings<T: clap::Args>(matches: &ArgMatches) -> HashSet<String> {
    let command = T::augment_args(clap::Command::new("settings"));
    command
        .get_arguments()
        .map(|arg| arg.get_id().as_str())
        .filter(|id| {
            matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .map(str::to_owned)
        .collect()
}

/// The settings on one line (JSON), secrets redacted: for the log.
pub fn to_line<T: Serialize>(config: &T) -> String {
    serde_json::to_string(config).unwrap_or_else(|e| format!("(cannot show the settings: {e})"))
}

/// The settings as a configuration file, secrets redacted: for
/// `--check-config`.
pub fn to_toml<T: Serialize>(config: &T) -> anyhow::Result<String> {
    toml::to_string(config).context("cannot show the settings as TOML")
}

// --- Checks --------------------------------------------------------------

/// The environment variable of a setting.
pub fn env_name(key: &str) -> String {
    format!("ARBOR_{}", key.to_ascii_uppercase())
}

/// How messages name a setting: file key, flag, environment variable.
pub fn describe(key: &str) -> String {
    if CREDENTIAL_KEYS.contains(&key) {
        format!("`{key}` ({})", env_name(key))
    } else {
        format!("`{key}` (--{}, {})", key.replace('_', "-"), env_name(key))
    }
}

fn refuse(key: &str, value: impl fmt::Display, allowed: impl fmt::Display) -> anyhow::Error {
    anyhow!("{} = {value} is refused: {allowed}", describe(key))
}

/// `value` must lie in `min..=max`.
fn check_range(key: &str, value: u64, min: u64, max: u64) -> anyhow::Result<()> {
    if !(min..=max).contains(&value) {
        return Err(refuse(
            key,
            value,
            format_args!("the allowed range is {min}..={max}"),
        ));
    }
    Ok(())
}

/// A duration in seconds: `min..=DURATION_SECS_MAX`.
fn check_secs(key: &str, value: u64, min: u64) -> anyhow::Result<()> {
    check_range(key, value, min, DURATION_SECS_MAX)
}

/// A chunk size is a whole number of CRC blocks, at most the chunk store's
/// maximum.
fn check_chunk_size(value: u64) -> anyhow::Result<()> {
    if !(BLOCK_SIZE..=CHUNK_SIZE_MAX).contains(&value) || !value.is_multiple_of(BLOCK_SIZE) {
        return Err(refuse(
            "chunk_size",
            value,
            format_args!(
                "it must be a multiple of {BLOCK_SIZE} in the range {BLOCK_SIZE}..={CHUNK_SIZE_MAX}"
            ),
        ));
    }
    Ok(())
}

fn check_path(key: &str, value: &Path) -> anyhow::Result<()> {
    if value.as_os_str().is_empty() {
        bail!("{} is empty", describe(key));
    }
    Ok(())
}

/// `host:port`, as peers and clients dial it.
fn check_host_port(key: &str, value: &str) -> anyhow::Result<()> {
    let authority = value.parse::<http::uri::Authority>().ok();
    if authority.is_none_or(|a| a.port_u16().is_none() || a.host().is_empty()) {
        return Err(refuse(
            key,
            format_args!("{value:?}"),
            "it must be host:port",
        ));
    }
    Ok(())
}

/// Metadata node addresses: each `host:port`, at most as many as a chunk
/// server accepts.
fn check_meta_addrs(addrs: &[String]) -> anyhow::Result<()> {
    let max = arbor_chunkstore::config::META_ADDRS_MAX;
    if addrs.len() > max {
        return Err(refuse(
            "meta",
            format_args!("{} addresses", addrs.len()),
            format_args!("at most {max} are allowed"),
        ));
    }
    for addr in addrs {
        check_host_port("meta", addr)?;
    }
    Ok(())
}

/// A region, if pinned: one segment of a SigV4 credential scope.
fn check_region(region: Option<&str>) -> anyhow::Result<()> {
    if let Some(region) = region
        && (region.is_empty() || region.contains('/') || region.contains(char::is_whitespace))
    {
        return Err(refuse(
            "region",
            format_args!("{region:?}"),
            "it must be a region name such as us-east-1",
        ));
    }
    Ok(())
}

/// A domain for virtual-host-style addressing, if set: a host name.
fn check_domain(domain: Option<&str>) -> anyhow::Result<()> {
    if let Some(domain) = domain
        && (domain.is_empty() || domain.contains('/') || domain.contains(char::is_whitespace))
    {
        return Err(refuse(
            "domain",
            format_args!("{domain:?}"),
            "it must be a host name",
        ));
    }
    Ok(())
}

fn secs(value: u64) -> Duration {
    Duration::from_secs(value)
}

#[cfg(test)]
mod tests;

/// Checks the S3 front end's settings, which `serve` and `gateway` share.
pub(crate) fn check_front_end(
    chunk_size: u64,
    region: Option<&str>,
    domain: Option<&str>,
) -> anyhow::Result<()> {
    check_chunk_size(chunk_size)?;
    check_region(region)?;
    check_domain(domain)
}

/// What the S3 front end of `serve` and `gateway` runs with.
pub(crate) fn front_end_settings(
    chunk_size: u64,
    region: Option<&String>,
) -> arbor_gateway::s3::GatewaySettings {
    arbor_gateway::s3::GatewaySettings {
        chunk_size,
        region: region.cloned(),
    }
}
