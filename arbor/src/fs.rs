//! `arbor fs`: tree operations against any Arbor S3 endpoint, with the
//! usual credentials (`ARBOR_ACCESS_KEY`/`ARBOR_SECRET_KEY`, a config
//! file, or the data directory's `credentials.json`):
//!
//! - `arbor fs mv s3://bucket/src s3://bucket/dst`: RenameObject; a source
//!   and destination ending in `/` move a whole directory, atomically.
//! - `arbor fs rm -r s3://bucket/prefix/`: a recursive delete; with
//!   `--wait`, it then follows the reclaimer until the deleted directories'
//!   metadata is released, printing the progress.
//! - `arbor fs append FILE s3://bucket/key`: appends FILE (or `-`, stdin)
//!   to the object, in pieces of `--piece-size` bytes, each one PutObject
//!   with `x-amz-write-offset-bytes` (a new part of the object); a missing
//!   object is created. `--offset N` refuses to append unless the object
//!   is exactly N bytes long, so a script that retries cannot append
//!   twice.
//!
//! Exit status: 0 when done, 1 when the server refused (its S3 error code
//! and message are printed on stderr) or could not be reached, 2 for a
//! malformed command line (clap's).

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Method;

use tokio::io::AsyncReadExt;

use crate::admin::{signed_exchange, signed_request};
use crate::config::AdminConfig;

/// How often `rm -r --wait` asks how far the reclaimer is.
const WAIT_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long `rm -r --wait` follows the reclaimer at most.
const WAIT_TIMEOUT: Duration = Duration::from_secs(3600);
/// `append`'s default piece: each piece is one part of the object (at most
/// 10,000), held in memory while it is sent.
const APPEND_PIECE_SIZE_DEFAULT: u64 = 16 * 1024 * 1024;
/// The largest piece `append` sends (held in memory, sent in one request).
const APPEND_PIECE_SIZE_MAX: u64 = 256 * 1024 * 1024;

#[derive(Clone, Debug, clap::Subcommand)]
pub enum FsCommand {
    /// Rename an object, or a directory with everything below it (both
    /// names ending in '/'), in one atomic step; no byte is copied.
    Mv {
        /// A directory rename replaces a destination that holds keys (it
        /// is deleted recursively).
        #[arg(long)]
        replace: bool,
        /// s3://bucket/key (or bucket/key)
        source: String,
        /// s3://bucket/key in the same bucket
        destination: String,
    },
    /// Delete a directory with everything below it (the key must end in
    /// '/'); it disappears at once, its space is released in the
    /// background.
    Rm {
        /// Required: deletes the whole directory.
        #[arg(short = 'r', long)]
        recursive: bool,
        /// Follow the background release until it is done.
        #[arg(long)]
        wait: bool,
        /// s3://bucket/prefix/
        target: String,
    },
    /// Append a file (or '-' for stdin) to an object, creating it if it
    /// does not exist; no existing byte is rewritten.
    Append {
        /// Append only if the object is exactly this many bytes long
        /// (default: its current size, read first).
        #[arg(long)]
        offset: Option<u64>,
        /// Bytes per request; each request adds one part to the object.
        #[arg(long, default_value_t = APPEND_PIECE_SIZE_DEFAULT,
              value_parser = clap::value_parser!(u64).range(1..=APPEND_PIECE_SIZE_MAX))]
        piece_size: u64,
        /// The local file, or '-' for stdin
        file: String,
        /// s3://bucket/key
        target: String,
    },
}

/// `arbor fs`'s arguments: the admin client's settings and one command.
#[derive(Clone, Debug, clap::Args)]
pub struct FsArgs {
    #[command(flatten)]
    pub config: AdminConfig,
    #[command(subcommand)]
    pub command: FsCommand,
}

/// A refusal by the server, as the exit status tells it apart.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {code}: {message}")]
pub struct Refused {
    pub status: http::StatusCode,
    pub code: String,
    pub message: String,
}

/// Runs one `arbor fs` command.
pub async fn run(config: AdminConfig, command: FsCommand) -> anyhow::Result<()> {
    match command {
        FsCommand::Mv {
            replace,
            source,
            destination,
        } => {
            let (bucket, from) = parse_target(&source)?;
            let (dest_bucket, to) = parse_target(&destination)?;
            if bucket != dest_bucket {
                bail!("a rename stays in its bucket: {bucket:?} is not {dest_bucket:?}");
            }
            let rename_source = format!("{bucket}/{}", encode_key(&from));
            let mut target = format!("/{bucket}/{}?renameObject", encode_key(&to));
            if replace {
                target.push_str("&arbor-replace");
            }
            let answer = signed_request(
                &config,
                Method::PUT,
                &target,
                &[("x-amz-rename-source", &rename_source)],
                Bytes::new(),
            )
            .await?;
            check(answer)?;
            println!("renamed s3://{bucket}/{from} -> s3://{bucket}/{to}");
            Ok(())
        }
        FsCommand::Rm {
            recursive,
            wait,
            target,
        } => {
            if !recursive {
                bail!("arbor fs rm deletes directories only: give -r");
            }
            let (bucket, prefix) = parse_target(&target)?;
            if !prefix.ends_with('/') {
                bail!("a recursive delete names a directory ending in '/', not {prefix:?}");
            }
            let path = format!("/{bucket}/{}?arbor-recursive", encode_key(&prefix));
            check(signed_request(&config, Method::DELETE, &path, &[], Bytes::new()).await?)?;
            println!("deleted s3://{bucket}/{prefix}");
            if wait {
                follow_reclaimer(&config).await?;
            }
            Ok(())
        }
        FsCommand::Append {
            offset,
            piece_size,
            file,
            target,
        } => {
            let (bucket, key) = parse_target(&target)?;
            let input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if file == "-" {
                Box::new(tokio::io::stdin())
            } else {
                Box::new(
                    tokio::fs::File::open(&file)
                        .await
                        .with_context(|| format!("opening {file}"))?,
                )
            };
            append(&config, &bucket, &key, offset, piece_size, input).await
        }
    }
}

/// Sends `input` to the end of `bucket/key`, piece by piece.
async fn append(
    config: &AdminConfig,
    bucket: &str,
    key: &str,
    offset: Option<u64>,
    piece_size: u64,
    mut input: Box<dyn tokio::io::AsyncRead + Unpin + Send>,
) -> anyhow::Result<()> {
    let path = format!("/{bucket}/{}", encode_key(key));
    let mut offset = match offset {
        Some(offset) => offset,
        None => current_size(config, &path).await?,
    };
    let capacity = usize::try_from(piece_size).context("piece size")?;
    let mut appended = 0u64;
    let mut pieces = 0u64;
    loop {
        let mut piece = Vec::with_capacity(capacity);
        (&mut input)
            .take(piece_size)
            .read_to_end(&mut piece)
            .await
            .context("reading the input")?;
        // An empty input still creates a missing object (at offset 0).
        if piece.is_empty() && (pieces > 0 || offset > 0) {
            break;
        }
        let length = piece.len() as u64;
        let offset_header = offset.to_string();
        let (status, _, body) = signed_exchange(
            config,
            Method::PUT,
            &path,
            &[("x-amz-write-offset-bytes", &offset_header)],
            Bytes::from(piece),
        )
        .await?;
        check((status, body))?;
        offset += length;
        appended += length;
        pieces += 1;
        println!(
            "appended {appended} bytes in {pieces} pieces; s3://{bucket}/{key} is {offset} bytes"
        );
        if length < piece_size {
            break;
        }
    }
    Ok(())
}

/// The object's size (0 if it does not exist).
async fn current_size(config: &AdminConfig, path: &str) -> anyhow::Result<u64> {
    let (status, headers, body) =
        signed_exchange(config, Method::HEAD, path, &[], Bytes::new()).await?;
    if status == http::StatusCode::NOT_FOUND {
        return Ok(0);
    }
    check((status, body))?;
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .context("HEAD answered no Content-Length")
}

/// Prints the reclaimer's progress until no deleted directory waits.
async fn follow_reclaimer(config: &AdminConfig) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
    loop {
        let (status, body) = signed_request(
            config,
            Method::GET,
            &format!("{}status", arbor_gateway::admin::PREFIX),
            &[],
            Bytes::new(),
        )
        .await?;
        if !status.is_success() {
            bail!("status: {status}: {}", String::from_utf8_lossy(&body));
        }
        let status: serde_json::Value =
            serde_json::from_slice(&body).context("the status is not JSON")?;
        let pending = status["reclaim"]["pending_directories"]
            .as_u64()
            .unwrap_or(0);
        let released = status["reclaim"]["reclaimed_objects"].as_u64().unwrap_or(0);
        println!("reclaiming: {pending} directories pending, {released} objects released so far");
        if pending == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("still {pending} directories to release after {WAIT_TIMEOUT:?}");
        }
        tokio::time::sleep(WAIT_POLL_INTERVAL).await;
    }
}

/// `s3://bucket/key` or `bucket/key` → (bucket, key).
fn parse_target(target: &str) -> anyhow::Result<(String, String)> {
    let rest = target.strip_prefix("s3://").unwrap_or(target);
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
            Ok((bucket.to_owned(), key.to_owned()))
        }
        _ => bail!("{target:?} is not s3://bucket/key"),
    }
}

/// A key percent-encoded for a request path (`/` kept).
fn encode_key(key: &str) -> String {
    key.split('/')
        .map(|segment| urlencoding::encode(segment).into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The server's answer, or its S3 error as [`Refused`].
fn check((status, body): (http::StatusCode, Bytes)) -> anyhow::Result<()> {
    if status.is_success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body);
    let field = |name: &str| {
        text.split(&format!("<{name}>"))
            .nth(1)
            .and_then(|rest| rest.split(&format!("</{name}>")).next())
            .unwrap_or_default()
            .to_owned()
    };
    Err(Refused {
        status,
        code: field("Code"),
        message: field("Message"),
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_a_bucket_and_a_key() {
        assert_eq!(
            parse_target("s3://b/a/b/").expect("target"),
            ("b".to_owned(), "a/b/".to_owned())
        );
        assert_eq!(
            parse_target("b/k").expect("target"),
            ("b".to_owned(), "k".to_owned())
        );
        assert!(parse_target("s3://b").is_err());
        assert!(parse_target("s3://b/").is_err());
        assert!(parse_target("/k").is_err());
    }

    #[test]
    fn keys_are_encoded_segment_by_segment() {
        assert_eq!(encode_key("a b/c+d/"), "a%20b/c%2Bd/");
    }

    #[test]
    fn a_refusal_carries_the_s3_code() {
        let body =
            Bytes::from_static(b"<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>");
        let error = check((http::StatusCode::NOT_FOUND, body)).expect_err("refused");
        let refused = error.downcast_ref::<Refused>().expect("a refusal");
        assert_eq!(refused.code, "NoSuchKey");
        assert_eq!(refused.message, "gone");
    }
}
