//! `arbor admin`: the command-line client of Arbor's admin API (served
//! under `/_arbor/` on the S3 endpoint, see `arbor_gateway::admin`, and
//! SigV4-signed like any S3 request) and of the metadata group's own RPC
//! endpoint (`arbor admin meta ...`: membership, chunk servers, chunks).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use arbor_gateway::admin::PREFIX;
use arbor_gateway::auth;
use arbor_meta::records::{ChunkServerRecord, ServerStatus};
use arbor_meta::{ChunkId, MetaClient, OverwritePolicy};
use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;

use crate::config::AdminConfig;

/// `arbor admin`'s arguments: its settings and one command.
#[derive(Clone, Debug, clap::Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub config: AdminConfig,
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
    /// Access keys: create, list, show, delete, and their permissions.
    Key {
        #[command(subcommand)]
        command: KeyAdmin,
    },
    /// Write a new cluster secret to FILE (mode 0600; an existing file is
    /// never replaced). Every process of the cluster is then given it with
    /// --cluster-secret-file or ARBOR_CLUSTER_SECRET_FILE.
    ClusterSecret { file: std::path::PathBuf },
    /// Membership and status of the metadata group (spoken to its nodes).
    /// Needs the metadata nodes: --meta, ARBOR_META or `meta` in the file.
    Meta {
        #[command(subcommand)]
        command: MetaAdmin,
    },
}

/// `arbor admin key ...`.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum KeyAdmin {
    /// Create an access key; its secret is printed this once.
    Create {
        /// A name for people (`backup`, `dashboard`).
        name: String,
        /// Allow it to create buckets (it owns those it creates).
        #[arg(long)]
        create_bucket: bool,
    },
    /// List the keys (the administrator's first), without secrets.
    List,
    /// Show one key and its permissions.
    Info { access_key: String },
    /// Delete a key: requests it signs are refused from then on.
    Delete { access_key: String },
    /// Give a key permissions on a bucket, or the right to create buckets.
    Allow {
        access_key: String,
        #[command(flatten)]
        grant: GrantArgs,
    },
    /// Take permissions from a key.
    Deny {
        access_key: String,
        #[command(flatten)]
        grant: GrantArgs,
    },
}

/// What `allow` and `deny` change.
#[derive(Clone, Debug, clap::Args)]
pub struct GrantArgs {
    /// The bucket the permissions are on.
    #[arg(long)]
    bucket: Option<String>,
    /// Get, head and list objects; read the bucket's settings.
    #[arg(long)]
    read: bool,
    /// Put, copy, delete and upload objects.
    #[arg(long)]
    write: bool,
    /// Change the bucket's settings; delete it.
    #[arg(long)]
    owner: bool,
    /// Create buckets.
    #[arg(long)]
    create_bucket: bool,
}

impl GrantArgs {
    fn body(&self) -> anyhow::Result<Bytes> {
        let any = self.read || self.write || self.owner;
        if self.bucket.is_some() != any {
            bail!("name --bucket with at least one of --read, --write, --owner");
        }
        if !any && !self.create_bucket {
            bail!("name --bucket and permissions, or --create-bucket");
        }
        Ok(Bytes::from(
            serde_json::json!({
                "bucket": self.bucket,
                "read": self.read,
                "write": self.write,
                "owner": self.owner,
                "create_bucket": self.create_bucket,
            })
            .to_string(),
        ))
    }
}

/// An access key id as a path segment: letters and digits only.
fn key_segment(access_key: &str) -> anyhow::Result<&str> {
    if access_key.is_empty() || !access_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!("an access key id is letters and digits, not {access_key:?}");
    }
    Ok(access_key)
}

fn key_request(command: KeyAdmin) -> anyhow::Result<(Method, String, Bytes)> {
    Ok(match command {
        KeyAdmin::Create {
            name,
            create_bucket,
        } => (
            Method::POST,
            "keys".to_owned(),
            Bytes::from(
                serde_json::json!({ "name": name, "create_bucket": create_bucket }).to_string(),
            ),
        ),
        KeyAdmin::List => (Method::GET, "keys".to_owned(), Bytes::new()),
        KeyAdmin::Info { access_key } => (
            Method::GET,
            format!("keys/{}", key_segment(&access_key)?),
            Bytes::new(),
        ),
        KeyAdmin::Delete { access_key } => (
            Method::DELETE,
            format!("keys/{}", key_segment(&access_key)?),
            Bytes::new(),
        ),
        KeyAdmin::Allow { access_key, grant } => (
            Method::POST,
            format!("keys/{}/allow", key_segment(&access_key)?),
            grant.body()?,
        ),
        KeyAdmin::Deny { access_key, grant } => (
            Method::POST,
            format!("keys/{}/deny", key_segment(&access_key)?),
            grant.body()?,
        ),
    })
}

/// Runs one `arbor admin` command with settings `main` has validated,
/// printing the server's JSON answer.
pub async fn run(config: AdminConfig, command: AdminCommand) -> anyhow::Result<()> {
    let (method, path, body) = match command {
        AdminCommand::Meta { command } => {
            let secret =
                crate::config::optional_cluster_secret(config.cluster_secret_file.as_deref())?;
            return run_meta_admin(config.meta, secret, command).await;
        }
        AdminCommand::ClusterSecret { file } => {
            arbor_net::auth::ClusterSecret::create(&file)
                .with_context(|| format!("creating {}", file.display()))?;
            println!("cluster secret written to {}", file.display());
            return Ok(());
        }
        AdminCommand::Status => (Method::GET, "status".to_owned(), Bytes::new()),
        AdminCommand::Key { command } => key_request(command)?,
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
    let (status, body) =
        signed_request(&config, method, &format!("{PREFIX}{path}"), &[], body).await?;
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    println!("{text}");
    Ok(())
}

/// Sends one request to `config`'s endpoint (`target`: path and query,
/// already percent-encoded), signed with SigV4 by its credentials, and
/// returns the answer, all within 30 s.
pub(crate) async fn signed_request(
    config: &AdminConfig,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> anyhow::Result<(http::StatusCode, Bytes)> {
    let (status, _, body) = signed_exchange(config, method, target, headers, body).await?;
    Ok((status, body))
}

/// [`signed_request`], answering the response headers too.
pub(crate) async fn signed_exchange(
    config: &AdminConfig,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> anyhow::Result<(http::StatusCode, http::HeaderMap, Bytes)> {
    let (credentials, _) = auth::load_existing(&config.data_dir, config.credentials())?;
    let url = format!("{}{target}", config.endpoint.trim_end_matches('/'));
    let mut builder = http::Request::builder().method(method).uri(&url).header(
        "x-amz-content-sha256",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body)),
    );
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder
        .body(http_body_util::Full::new(body.clone()))
        .context("building the request")?;
    sign(&mut request, &credentials, config.signing_region(), &body)?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .context("the server did not answer within 30 s")?
        .with_context(|| format!("requesting {url}"))?;
    let status = response.status();
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .context("reading the answer")?
        .to_bytes();
    Ok((status, parts.headers, body))
}

fn sign(
    request: &mut http::Request<http_body_util::Full<Bytes>>,
    credentials: &auth::Credentials,
    region: &str,
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
        .region(region)
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

/// `arbor admin meta ...`: membership of the metadata group, spoken to the
/// group's own RPC endpoint.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum MetaAdmin {
    /// The answering node's view of the group (JSON).
    Status,
    /// Add node ID at ADDR as a learner; returns once it has caught up.
    AddLearner { id: u64, addr: String },
    /// Make exactly these node ids the voters (learners are promoted,
    /// voters left out leave the group).
    ChangeMembership {
        #[arg(value_delimiter = ',', required = true)]
        voters: Vec<u64>,
    },
    /// Remove node ID from the group.
    RemoveNode { id: u64 },
    /// Registered chunk servers with status, zone and usage (JSON lines).
    ChunkServers,
    /// Stop placing new chunks on chunk server ID and move its chunks off.
    Drain { id: u64 },
    /// Put a drained chunk server back in service.
    Undrain { id: u64 },
    /// Where chunk ID (32 hex digits) is: references, factor, servers (JSON).
    Chunk { id: String },
    /// How many chunks the group knows, and how many lack replicas (JSON).
    Chunks,
}

fn server_json(server: &ChunkServerRecord) -> serde_json::Value {
    serde_json::json!({
        "id": server.id,
        "addr": server.addr,
        "zone": server.zone,
        "status": server.status.as_str(),
        "capacity": server.capacity,
        "used": server.used,
        "chunks": server.chunks,
        "last_heartbeat_ms": server.last_heartbeat_ms,
    })
}

pub async fn run_meta_admin(
    meta: Vec<String>,
    cluster_secret: Option<arbor_net::auth::ClusterSecret>,
    command: MetaAdmin,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !meta.is_empty(),
        "{} names no metadata node",
        crate::config::describe("meta")
    );
    let client = MetaClient::remote_with(
        meta,
        arbor_meta::RemoteConfig {
            cluster_secret,
            ..arbor_meta::RemoteConfig::default()
        },
    );
    let bound = Duration::from_secs(120);
    let result = tokio::time::timeout(bound, async {
        match command {
            MetaAdmin::Status => {
                let status = client.status().await?;
                println!("{}", serde_json::to_string(&status).unwrap_or_default());
            }
            MetaAdmin::AddLearner { id, addr } => {
                client.add_learner(id, &addr).await?;
                println!("{{\"added_learner\":{id}}}");
            }
            MetaAdmin::ChangeMembership { voters } => {
                let voters: BTreeSet<u64> = voters.into_iter().collect();
                client.change_membership(voters.clone()).await?;
                println!("{{\"voters\":{:?}}}", voters.iter().collect::<Vec<_>>());
            }
            MetaAdmin::RemoveNode { id } => {
                client.remove_node(id).await?;
                println!("{{\"removed\":{id}}}");
            }
            MetaAdmin::ChunkServers => {
                for server in client.chunk_servers().await? {
                    println!("{}", server_json(&server));
                }
            }
            MetaAdmin::Drain { id } => {
                let server = client
                    .set_chunk_server_status(id, ServerStatus::Draining)
                    .await?;
                println!("{}", server_json(&server));
            }
            MetaAdmin::Chunk { id } => {
                let Some(chunk) = ChunkId::from_hex(&id) else {
                    return Err(arbor_meta::MetaError::Conflict(format!(
                        "{id:?} is not a chunk id (32 hex digits)"
                    )));
                };
                let record = client.chunk_records(vec![chunk]).await?.pop().flatten();
                let json = match record {
                    Some(r) => serde_json::json!({
                        "id": id,
                        "refs": r.refs,
                        "size": r.size,
                        "factor": r.factor,
                        "servers": r.servers,
                    }),
                    None => serde_json::json!({ "id": id, "known": false }),
                };
                println!("{json}");
            }
            MetaAdmin::Chunks => {
                let (records, under) = client.chunk_counts().await?;
                println!(
                    "{}",
                    serde_json::json!({ "chunks": records, "under_replicated": under })
                );
            }
            MetaAdmin::Undrain { id } => {
                let server = client
                    .set_chunk_server_status(id, ServerStatus::Online)
                    .await?;
                println!("{}", server_json(&server));
            }
        }
        Ok::<(), arbor_meta::MetaError>(())
    })
    .await;
    match result {
        Ok(inner) => inner.map_err(|e| anyhow::anyhow!("{e}")),
        Err(_) => anyhow::bail!("no answer within {bound:?}"),
    }
}
