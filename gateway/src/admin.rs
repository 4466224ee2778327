//! The server side of Arbor's own administration API (its client is
//! `arbor admin`, in the `arbor` crate).
//!
//! The API lives under `/_arbor/` on the S3 endpoint (no bucket name starts
//! with `_`), routed by s3s's `S3Route` hook after SigV4 authentication, so
//! `arbor admin` signs its requests like any S3 client:
//! - `GET /_arbor/status`: JSON with the chunk store's usage and the
//!   reclaimer's progress (deleted directories still to release).
//! - `GET /_arbor/buckets/{bucket}/overwrite-policy`: `{"bucket", "overwrite"}`.
//! - `PUT /_arbor/buckets/{bucket}/overwrite-policy` with body `allow`,
//!   `conditional` or `deny`.
//! - `POST /_arbor/keys` with `{"name", "create_bucket"}`: a new access
//!   key; the answer holds its secret, shown this once.
//! - `GET /_arbor/keys`: every key (the administrator's first), without
//!   secrets; `GET /_arbor/keys/{id}`: one; `DELETE /_arbor/keys/{id}`.
//! - `POST /_arbor/keys/{id}/allow` and `.../deny` with `{"bucket",
//!   "read", "write", "owner", "create_bucket"}` (each optional): add or
//!   take permissions.
//!
//! Only the administrator's key may call it (`routes::Routes`).

use arbor_chunkstore::ChunkBackend;
use arbor_meta::access::{
    AllowAccessKey, CreateAccessKey, DeleteAccessKey, DenyAccessKey, GetAccessKey, Grant,
    ListAccessKeys,
};
use arbor_meta::clock::Entropy;
use arbor_meta::records::{AccessKeyRecord, Permissions};
use arbor_meta::{BucketInfo, MetaClient, MetaError, OverwritePolicy};
use http::{HeaderMap, Method, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use serde::Deserialize;

use crate::error;
use crate::keyring::Keyring;

pub const PREFIX: &str = "/_arbor/";
/// The first path segment of the admin API, which s3s parses as a bucket.
const ADMIN_SEGMENT: &str = "_arbor";

/// The bucket names a request may name: those of S3's legacy rules
/// (3 to 255 letters of either case, digits, `.`, `-` and `_`, which
/// us-east-1 still serves), so a request for one no bucket can have
/// answers NoSuchBucket as S3 does, not InvalidBucketName; plus the admin
/// API's reserved first segment, so s3s lets `/_arbor/...` through to
/// `AdminRoute`. Creating a bucket checks today's rules
/// (`meta::keys::validate_bucket_name`), so no bucket has such a name.
pub struct NamesWithAdmin;

impl s3s::validation::NameValidation for NamesWithAdmin {
    fn validate_bucket_name(&self, name: &str) -> bool {
        name == ADMIN_SEGMENT
            || ((3..=255).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')))
    }
}
/// Admin request bodies are a word or two.
const BODY_MAX: usize = 1024;

pub struct AdminRoute {
    pub meta: MetaClient,
    pub chunks: ChunkBackend,
    pub keyring: Keyring,
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
        rest == "status"
            || rest == "keys"
            || rest.starts_with("keys/")
            || (rest.starts_with("buckets/") && rest.ends_with("/overwrite-policy"))
    }

    // `routes::Routes` checks access: the administrator's key only.

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let path = req
            .uri
            .path()
            .strip_prefix(PREFIX)
            .unwrap_or_default()
            .to_owned();
        let segments: Vec<&str> = path.split('/').collect();
        match (req.method.clone(), segments.as_slice()) {
            (Method::GET, ["status"]) => {
                let mut status = match &self.chunks {
                    ChunkBackend::Local(store) => {
                        let (chunks, bytes) = store.usage().await.map_err(error::from_chunk)?;
                        serde_json::json!({
                            "version": env!("CARGO_PKG_VERSION"),
                            "chunks": chunks,
                            "chunk_bytes": bytes,
                        })
                    }
                    ChunkBackend::Cluster(cluster) => {
                        let (records, under) =
                            self.meta.chunk_counts().await.map_err(error::from_meta)?;
                        let registry = cluster.registry().await.map_err(error::from_chunk)?;
                        serde_json::json!({
                            "version": env!("CARGO_PKG_VERSION"),
                            "chunks": records,
                            "under_replicated": under,
                            "chunk_servers": registry.servers.len(),
                        })
                    }
                };
                let reclaim = self.meta.reclaim_status().await.map_err(error::from_meta)?;
                status["reclaim"] = serde_json::json!({
                    "pending_directories": reclaim.pending_count,
                    "reclaimed_objects": reclaim.reclaimed_objects,
                    "pending": reclaim.pending.iter().map(|t| serde_json::json!({
                        "bucket": t.bucket,
                        "prefix": t.prefix,
                        "deleted_ms": t.deleted_ms,
                    })).collect::<Vec<_>>(),
                });
                Ok(json(status))
            }
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
            (Method::POST, ["keys"]) => {
                let body: NewKey = read_json(&mut req).await?;
                self.create_key(body).await
            }
            (Method::GET, ["keys"]) => {
                let keys = self
                    .meta
                    .read(ListAccessKeys)
                    .await
                    .map_err(error::from_meta)?;
                let mut listed = vec![serde_json::json!({
                    "access_key": self.keyring.administrator_key(),
                    "name": "administrator",
                    "administrator": true,
                })];
                listed.extend(keys.iter().map(key_json));
                Ok(json(serde_json::Value::Array(listed)))
            }
            (Method::GET, ["keys", id]) => {
                let record = self
                    .meta
                    .read(GetAccessKey {
                        access_key: (*id).to_owned(),
                    })
                    .await
                    .map_err(error::from_meta)?
                    .ok_or_else(|| no_such_key(id))?;
                Ok(json(key_json(&record)))
            }
            (Method::DELETE, ["keys", id]) => {
                let access_key = (*id).to_owned();
                let outcome = self.meta.write(DeleteAccessKey { access_key }).await;
                self.keyring.forget(id);
                outcome.map_err(|e| key_error(e, id))?;
                tracing::info!(access_key = id, "access key deleted");
                Ok(json(
                    serde_json::json!({ "access_key": id, "deleted": true }),
                ))
            }
            (Method::POST, ["keys", id, change @ ("allow" | "deny")]) => {
                let change = *change;
                let body: GrantBody = read_json(&mut req).await?;
                let grant = body.grant()?;
                let access_key = (*id).to_owned();
                let outcome = if change == "allow" {
                    self.meta.write(AllowAccessKey { access_key, grant }).await
                } else {
                    self.meta.write(DenyAccessKey { access_key, grant }).await
                };
                self.keyring.forget(id);
                let record = outcome.map_err(|e| key_error(e, id))?;
                tracing::info!(access_key = id, change, ?body, "access key changed");
                Ok(json(key_json(&record)))
            }
            _ => Err(s3_error!(
                NotImplemented,
                "Unknown Arbor administration request"
            )),
        }
    }
}

/// `POST /_arbor/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    #[serde(default)]
    create_bucket: bool,
}

/// `POST /_arbor/keys/{id}/allow` and `deny`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    #[serde(default)]
    bucket: Option<String>,
    #[serde(default)]
    read: bool,
    #[serde(default)]
    write: bool,
    #[serde(default)]
    owner: bool,
    #[serde(default)]
    create_bucket: bool,
}

impl GrantBody {
    fn grant(&self) -> S3Result<Grant> {
        let permissions = Permissions {
            read: self.read,
            write: self.write,
            owner: self.owner,
        };
        let bucket = match (&self.bucket, permissions.is_empty()) {
            (Some(bucket), false) => Some((bucket.clone(), permissions)),
            (None, true) => None,
            (Some(_), true) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Name at least one of read, write and owner for the bucket"
                ));
            }
            (None, false) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Read, write and owner need a bucket"
                ));
            }
        };
        if bucket.is_none() && !self.create_bucket {
            return Err(s3_error!(
                InvalidArgument,
                "Name a bucket and permissions, or create_bucket"
            ));
        }
        Ok(Grant {
            create_bucket: self.create_bucket,
            bucket,
        })
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(req: &mut S3Request<Body>) -> S3Result<T> {
    let body = req
        .input
        .store_all_limited(BODY_MAX)
        .await
        .map_err(|_| s3_error!(InvalidArgument, "The body must be JSON of at most 1 KiB"))?;
    serde_json::from_slice(&body)
        .map_err(|e| S3Error::with_message(S3ErrorCode::InvalidArgument, format!("Bad JSON: {e}")))
}

/// A key as the admin API shows it: never its secret.
fn key_json(record: &AccessKeyRecord) -> serde_json::Value {
    let buckets: serde_json::Map<String, serde_json::Value> = record
        .buckets
        .iter()
        .map(|(bucket, p)| {
            (
                bucket.clone(),
                serde_json::json!({ "read": p.read, "write": p.write, "owner": p.owner }),
            )
        })
        .collect();
    serde_json::json!({
        "access_key": record.access_key,
        "name": record.name,
        "created_ms": record.created_ms,
        "create_bucket": record.create_bucket,
        "buckets": buckets,
    })
}

fn no_such_key(id: &str) -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("NoSuchAccessKey".into()),
        format!("There is no access key {id}"),
    );
    e.set_status_code(http::StatusCode::NOT_FOUND);
    e
}

/// A missing key is 404 here (where S3 requests see InvalidAccessKeyId).
fn key_error(e: MetaError, id: &str) -> S3Error {
    match e {
        MetaError::NoSuchAccessKey(_) => no_such_key(id),
        e => error::from_meta(e),
    }
}

/// Letters and digits drawn from `entropy`, each equally likely.
fn random_string(entropy: &dyn Entropy, len: usize, alphabet: &[u8]) -> String {
    // The largest multiple of the alphabet's size that fits a byte.
    let accepted = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    let mut bytes = [0u8; 64];
    while out.len() < len {
        entropy.fill(&mut bytes);
        for &b in &bytes {
            if usize::from(b) < accepted
                && out.len() < len
                && let Some(&c) = alphabet.get(usize::from(b) % alphabet.len())
            {
                out.push(char::from(c));
            }
        }
    }
    out
}

const ACCESS_KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_KEY_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

impl AdminRoute {
    async fn create_key(&self, body: NewKey) -> S3Result<S3Response<Body>> {
        let entropy = self.keyring.entropy().clone();
        let access_key = format!(
            "AK{}",
            random_string(entropy.as_ref(), 18, ACCESS_KEY_ALPHABET)
        );
        if access_key == self.keyring.administrator_key() {
            return Err(error::internal(
                "creating a key",
                "drew the administrator's id",
            ));
        }
        let secret_key = random_string(entropy.as_ref(), 40, SECRET_KEY_ALPHABET);
        let record = AccessKeyRecord {
            sealed_secret: self
                .keyring
                .node_key()
                .seal(&access_key, &secret_key, entropy.as_ref()),
            access_key,
            name: body.name,
            created_ms: self.keyring.now_ms(),
            create_bucket: body.create_bucket,
            buckets: Default::default(),
        };
        let record = self
            .meta
            .write(CreateAccessKey { record })
            .await
            .map_err(error::from_meta)?;
        self.keyring.forget(&record.access_key);
        tracing::info!(access_key = %record.access_key, name = %record.name, "access key created");
        let mut shown = key_json(&record);
        shown["secret_key"] = serde_json::Value::String(secret_key);
        Ok(json(shown))
    }
}
