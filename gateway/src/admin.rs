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

use arbor_chunkstore::ChunkBackend;
use arbor_meta::{BucketInfo, MetaClient, OverwritePolicy};
use http::{HeaderMap, Method, Uri};
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
            _ => Err(s3_error!(
                NotImplemented,
                "Unknown Arbor administration request"
            )),
        }
    }
}
