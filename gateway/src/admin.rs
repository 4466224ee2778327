//! Arbor's own administration API and the `arbor admin` command.
//!
//! The API lives under `/_arbor/` on the S3 endpoint (no bucket name starts
//! with `_`), routed by s3s's `S3Route` hook after SigV4 authentication, so
//! `arbor admin` signs its requests like any S3 client:
//! - `GET /_arbor/status`: JSON with the chunk store's usage.
//! - `GET /_arbor/buckets/{bucket}/overwrite-policy`: `{"bucket", "overwrite"}`.
//! - `PUT /_arbor/buckets/{bucket}/overwrite-policy` with body `allow`,
//!   `conditional` or `deny`.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, bail};
use arbor_chunkstore::ChunkBackend;
use arbor_meta::{BucketInfo, MetaClient, OverwritePolicy};
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use http_body_util::BodyExt;
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};

use crate::error;

pub const PREFIX: &str = "/_arbor/";
/// The first path segment of the admin API, which s3s parses as a bucket.
const ADMIN_SEGMENT: &str = "_arbor";

/// S3's bucket-name rules, plus the admin API's reserved first segment
/// (which no bucket can take: names start with a letter or digit), so s3s
/// lets `/_arbor/...` through to `AdminRoute`.
pub struct NamesWithAdmin;

impl s3s::validation::NameValidation for NamesWithAdmin {
    fn validate_bucket_name(&self, name: &str) -> bool {
        name == ADMIN_SEGMENT
            || s3s::validation::AwsNameValidation::new().validate_bucket_name(name)
    }
}
/// Admin request bodies are a word or two.
const BODY_MAX: usize = 1024;

pub struct AdminRoute {
    pub meta: MetaClient,
    pub chunks: ChunkBackend,
}

fn json(value: serde_json::Value) -> S3Response<Body> {
    let mut response = S3Response::new(Body::from(value.to_string()));
    response.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn policy_json(info: &BucketInfo) -> serde_json::Value {
    serde_json::json!({ "bucket": info.name, "overwrite": info.overwrite.as_str() })
}

#[async_trait::async_trait]
impl S3Route for AdminRoute {
    fn is_match(
        &self,
        _method: &Method,
        uri: &Uri,
        _headers: &HeaderMap,
        _extensions: &mut http::Extensions,
    ) -> bool {
        // Only the API's own endpoints: anything else under `_arbor` goes on
        // to S3 handling, which refuses the name.
        let Some(rest) = uri.path().strip_prefix(PREFIX) else {
            return false;
        };
        rest == "status" || (rest.starts_with("buckets/") && rest.ends_with("/overwrite-policy"))
    }

    // check_access keeps s3s's default: a valid signature is required.

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let path = req
            .uri
            .path()
            .strip_prefix(PREFIX)
            .unwrap_or_default()
            .to_owned();
        let segments: Vec<&str> = path.split('/').collect();
        match (req.method.clone(), segments.as_slice()) {
            (Method::GET, ["status"]) => match &self.chunks {
                ChunkBackend::Local(store) => {
                    let (chunks, bytes) = store.usage().await.map_err(error::from_chunk)?;
                    Ok(json(serde_json::json!({
                        "version": env!("CARGO_PKG_VERSION"),
                        "chunks": chunks,
                        "chunk_bytes": bytes,
                    })))
                }
                ChunkBackend::Cluster(cluster) => {
                    let (records, under) =
                        self.meta.chunk_counts().await.map_err(error::from_meta)?;
                    let registry = cluster.registry().await.map_err(error::from_chunk)?;
                    Ok(json(serde_json::json!({
                        "version": env!("CARGO_PKG_VERSION"),
                        "chunks": records,
                        "under_replicated": under,
                        "chunk_servers": registry.servers.len(),
                    })))
                }
            },
            (Method::GET, ["buckets", bucket, "overwrite-policy"]) => {
                let info = self
                    .meta
                    .head_bucket(bucket)
                    .await
                    .map_err(error::from_meta)?;
                Ok(json(policy_json(&info)))
            }
            (Method::PUT, ["buckets", bucket, "overwrite-policy"]) => {
                let body = req.input.store_all_limited(BODY_MAX).await.map_err(|_| {
                    s3_error!(
                        InvalidArgument,
                        "The policy must be allow, conditional or deny"
                    )
                })?;
                let word = std::str::from_utf8(&body).unwrap_or_default().trim();
                let policy = OverwritePolicy::parse(word).ok_or_else(|| {
                    s3_error!(
                        InvalidArgument,
                        "The policy must be allow, conditional or deny"
                    )
                })?;
                let info = self
                    .meta
                    .set_overwrite_policy(bucket, policy)
                    .await
                    .map_err(error::from_meta)?;
                tracing::info!(bucket = %info.name, policy = policy.as_str(), "overwrite policy set");
                Ok(json(policy_json(&info)))
            }
            _ => Err(s3_error!(
                NotImplemented,
                "Unknown Arbor administration request"
            )),
        }
    }
}

/// `arbor admin`'s arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct AdminArgs {
    /// The S3 endpoint of a running Arbor.
    #[arg(long, env = "ARBOR_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    pub endpoint: String,
    /// Where to read credentials.json when ARBOR_ACCESS_KEY/ARBOR_SECRET_KEY
    /// are not set.
    #[arg(long, env = "ARBOR_DATA_DIR", default_value = "./arbor-data")]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Clone, Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Show the server's status.
    Status,
    /// Show or set what writes to existing keys of a bucket need:
    /// allow (any write replaces), conditional (If-Match required),
    /// deny (write-once).
    OverwritePolicy {
        bucket: String,
        policy: Option<String>,
    },
    /// Membership and status of the metadata group (spoken to its nodes).
    Meta {
        /// Metadata nodes (host:port, comma-separated).
        #[arg(long, env = "ARBOR_META", value_delimiter = ',', required = true)]
        meta: Vec<String>,
        #[command(subcommand)]
        command: crate::cluster::MetaAdmin,
    },
}

/// Runs one `arbor admin` command, printing the server's JSON answer.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let (method, path, body) = match args.command {
        AdminCommand::Meta { meta, command } => {
            return crate::cluster::run_meta_admin(meta, command).await;
        }
        AdminCommand::Status => (Method::GET, "status".to_owned(), Bytes::new()),
        AdminCommand::OverwritePolicy {
            bucket,
            policy: None,
        } => (
            Method::GET,
            format!("buckets/{bucket}/overwrite-policy"),
            Bytes::new(),
        ),
        AdminCommand::OverwritePolicy {
            bucket,
            policy: Some(policy),
        } => {
            if OverwritePolicy::parse(&policy).is_none() {
                bail!("policy must be allow, conditional or deny, not {policy:?}");
            }
            (
                Method::PUT,
                format!("buckets/{bucket}/overwrite-policy"),
                Bytes::from(policy),
            )
        }
    };
    let (credentials, _) = crate::auth::load_existing(&args.data_dir)?;
    let url = format!("{}{PREFIX}{path}", args.endpoint.trim_end_matches('/'));
    let mut request = http::Request::builder()
        .method(method)
        .uri(&url)
        .header(
            "x-amz-content-sha256",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body)),
        )
        .body(http_body_util::Full::new(body.clone()))
        .context("building the request")?;
    sign(&mut request, &credentials, &body)?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let response =
        tokio::time::timeout(std::time::Duration::from_secs(30), client.request(request))
            .await
            .context("the server did not answer within 30 s")?
            .with_context(|| format!("requesting {url}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the answer")?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    println!("{text}");
    Ok(())
}

fn sign(
    request: &mut http::Request<http_body_util::Full<Bytes>>,
    credentials: &crate::auth::Credentials,
    body: &[u8],
) -> anyhow::Result<()> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(
        &credentials.access_key,
        &credentials.secret_key,
        None,
        None,
        "arbor-admin",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .context("signing parameters")?
        .into();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let signable = SignableRequest::new(
        request.method().as_str(),
        request.uri().to_string(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .context("signable request")?;
    let (instructions, _) = sign(signable, &params).context("signing")?.into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}
