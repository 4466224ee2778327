//! Who signed a request: the administrator's key (the deployment's
//! configured or generated credentials, allowed everything), or one of the
//! access keys kept in the metadata service (`arbor_meta::access`), each
//! with its permissions per bucket.
//!
//! [`Keyring`] is s3s's key store: it finds a key's secret (opening it with
//! the [`NodeKey`]) and remembers what it found, the key or its absence,
//! for [`CACHE_TTL_MS`]. A change made through this gateway is seen at once
//! (the entry is dropped); one made through another gateway within
//! [`CACHE_TTL_MS`]. Bucket policies, public access blocks, CORS rules
//! and lifecycle rules are cached the same way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arbor_meta::MetaClient;
use arbor_meta::MetaError;
use arbor_meta::access::{GetAccessKey, GetBucketCors, GetBucketRules, StoredBucketRules};
use arbor_meta::clock::{SharedClock, SharedEntropy};
use arbor_meta::lifecycle::GetBucketLifecycleRules;
use arbor_meta::namespace::GetReadableVersion;
use arbor_meta::records::VersionId;
use arbor_meta::records::lifecycle::LifecycleRules;
use arbor_meta::records::{
    AccessKeyRecord, BucketAcl, CannedAcl, CorsRule, Permissions, PublicAccessBlock,
};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

use crate::auth::Credentials;
use crate::error;
use crate::limits::{KEY_CACHE_ENTRIES_MAX, KEY_CACHE_TTL_MS};
use crate::policy::Policy;
use crate::sealing::NodeKey;

pub const CACHE_TTL_MS: i64 = KEY_CACHE_TTL_MS;

/// What a request needs on a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    Read,
    Write,
    Owner,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Owner => "owner",
        }
    }

    fn granted_by(self, permissions: Permissions) -> bool {
        match self {
            Permission::Read => permissions.read,
            Permission::Write => permissions.write,
            Permission::Owner => permissions.owner,
        }
    }
}

/// The signer of a request, as the access check found it; handlers find it
/// in the request's extensions.
#[derive(Clone, Debug)]
pub enum Principal {
    Administrator {
        access_key: String,
    },
    Key(Arc<AccessKeyRecord>),
    /// An unsigned request: only a bucket policy allowing `*` lets it in.
    Anonymous,
}

impl Principal {
    /// The access key, or `anonymous` (for logs).
    pub fn access_key(&self) -> &str {
        self.key_id().unwrap_or("anonymous")
    }

    /// The access key id, if the request was signed.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Principal::Administrator { access_key } => Some(access_key),
            Principal::Key(record) => Some(&record.access_key),
            Principal::Anonymous => None,
        }
    }

    pub fn is_administrator(&self) -> bool {
        matches!(self, Principal::Administrator { .. })
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self, Principal::Anonymous)
    }

    /// Whether the signer may do what `permission` names in `bucket`.
    pub fn may(&self, bucket: &str, permission: Permission) -> bool {
        match self {
            Principal::Administrator { .. } => true,
            Principal::Key(record) => permission.granted_by(record.permissions(bucket)),
            Principal::Anonymous => false,
        }
    }

    /// Whether the signer holds any permission in `bucket` (ListBuckets
    /// shows it then).
    pub fn sees(&self, bucket: &str) -> bool {
        match self {
            Principal::Administrator { .. } => true,
            Principal::Key(record) => !record.permissions(bucket).is_empty(),
            Principal::Anonymous => false,
        }
    }

    pub fn may_create_bucket(&self) -> bool {
        match self {
            Principal::Administrator { .. } => true,
            Principal::Key(record) => record.create_bucket,
            Principal::Anonymous => false,
        }
    }
}

/// The principal a handler runs for: the one the access check put in the
/// request's extensions; `AccessDenied` if there is none (no handler runs
/// without the check).
pub fn principal_of(extensions: &http::Extensions) -> S3Result<Principal> {
    extensions
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| s3_error!(AccessDenied, "Access Denied"))
}

#[derive(Clone)]
struct Found {
    secret: SecretKey,
    record: Arc<AccessKeyRecord>,
}

/// A bucket's rules and when they were read.
type CachedPolicy = (i64, BucketRules);

/// What a bucket says of who may reach it, beside the keys' grants.
#[derive(Clone, Debug, Default)]
pub struct BucketRules {
    pub policy: Option<Arc<Policy>>,
    pub block: PublicAccessBlock,
    /// The bucket's ACL and Object Ownership.
    pub acl: BucketAcl,
    /// Whether the bucket existed when these were read (the rules of one
    /// that does not are the defaults).
    pub exists: bool,
}

impl BucketRules {
    /// The bucket's ACL as access checks honour it: private while ACLs are
    /// disabled (Object Ownership) or public ones ignored (the public
    /// access block's IgnorePublicAcls).
    pub fn effective_acl(&self) -> CannedAcl {
        if self.acl.ownership.acls_disabled() || self.block.ignore_public_acls {
            CannedAcl::Private
        } else {
            self.acl.acl
        }
    }

    /// Whether versions' ACLs count at all (see [`Self::effective_acl`]).
    pub fn object_acls_count(&self) -> bool {
        !self.acl.ownership.acls_disabled() && !self.block.ignore_public_acls
    }
}

struct Cached {
    fetched_ms: i64,
    found: Option<Found>,
}

/// The keys a gateway accepts; cheap to clone.
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

struct Inner {
    administrator: Credentials,
    meta: MetaClient,
    node_key: NodeKey,
    clock: SharedClock,
    entropy: SharedEntropy,
    cache: Mutex<HashMap<String, Cached>>,
    /// Bucket policies, parsed, by bucket, with when they were read.
    policies: Mutex<HashMap<String, CachedPolicy>>,
    /// CORS rules by bucket (`None`: no such bucket), with when they were
    /// read.
    cors: Mutex<HashMap<String, CachedCors>>,
    /// Lifecycle rules by bucket (`None`: none, or no such bucket), with
    /// when they were read.
    lifecycle: Mutex<HashMap<String, CachedLifecycle>>,
}

/// A bucket's CORS rules (`None`: no such bucket) and when they were read.
type CachedCors = (i64, Option<Arc<Vec<CorsRule>>>);

/// A bucket's lifecycle rules (`None`: none) and when they were read.
type CachedLifecycle = (i64, Option<Arc<LifecycleRules>>);

impl Keyring {
    pub fn new(
        administrator: Credentials,
        meta: MetaClient,
        node_key: NodeKey,
        clock: SharedClock,
        entropy: SharedEntropy,
    ) -> Keyring {
        Keyring {
            inner: Arc::new(Inner {
                administrator,
                meta,
                node_key,
                clock,
                entropy,
                cache: Mutex::new(HashMap::new()),
                policies: Mutex::new(HashMap::new()),
                cors: Mutex::new(HashMap::new()),
                lifecycle: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn administrator_key(&self) -> &str {
        &self.inner.administrator.access_key
    }

    pub fn node_key(&self) -> &NodeKey {
        &self.inner.node_key
    }

    pub fn entropy(&self) -> &SharedEntropy {
        &self.inner.entropy
    }

    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The secret and the principal of `access_key`; `InvalidAccessKeyId`
    /// if no such key exists.
    pub async fn find(&self, access_key: &str) -> S3Result<(SecretKey, Principal)> {
        let administrator = &self.inner.administrator;
        if access_key == administrator.access_key {
            return Ok((
                SecretKey::from(administrator.secret_key.clone()),
                Principal::Administrator {
                    access_key: access_key.to_owned(),
                },
            ));
        }
        let found = match self.cached(access_key) {
            Some(found) => found,
            None => self.fetch(access_key).await?,
        };
        match found {
            Some(Found { secret, record }) => Ok((secret, Principal::Key(record))),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS access key ID you provided does not exist in our records."
            )),
        }
    }

    /// Forgets what is cached of `access_key` (after a change to it).
    pub fn forget(&self, access_key: &str) {
        if let Ok(mut cache) = self.inner.cache.lock() {
            cache.remove(access_key);
        }
    }

    /// Forgets every cached key (after a change to a bucket's grants).
    pub fn forget_all(&self) {
        if let Ok(mut cache) = self.inner.cache.lock() {
            cache.clear();
        }
        if let Ok(mut policies) = self.inner.policies.lock() {
            policies.clear();
        }
        if let Ok(mut cors) = self.inner.cors.lock() {
            cors.clear();
        }
        if let Ok(mut lifecycle) = self.inner.lifecycle.lock() {
            lifecycle.clear();
        }
    }

    /// The CORS rules of `bucket`, in order (`None` if the bucket does not
    /// exist), as read at most [`CACHE_TTL_MS`] ago.
    pub async fn cors_rules(&self, bucket: &str) -> S3Result<Option<Arc<Vec<CorsRule>>>> {
        let now = self.now_ms();
        if let Ok(cors) = self.inner.cors.lock()
            && let Some((fetched_ms, rules)) = cors.get(bucket)
            && (0..CACHE_TTL_MS).contains(&now.saturating_sub(*fetched_ms))
        {
            return Ok(rules.clone());
        }
        let rules = match self
            .inner
            .meta
            .read(GetBucketCors {
                bucket: bucket.to_owned(),
            })
            .await
        {
            Ok(rules) => Some(Arc::new(rules)),
            Err(MetaError::NoSuchBucket(_)) => None,
            Err(e) => return Err(error::from_meta(e)),
        };
        if let Ok(mut cors) = self.inner.cors.lock() {
            if cors.len() >= KEY_CACHE_ENTRIES_MAX {
                cors.clear();
            }
            cors.insert(bucket.to_owned(), (now, rules.clone()));
        }
        Ok(rules)
    }

    /// The lifecycle rules of `bucket` (`None`: it has none, or does not
    /// exist), as read at most [`CACHE_TTL_MS`] ago.
    pub async fn lifecycle_rules(&self, bucket: &str) -> S3Result<Option<Arc<LifecycleRules>>> {
        let now = self.now_ms();
        if let Ok(lifecycle) = self.inner.lifecycle.lock()
            && let Some((fetched_ms, rules)) = lifecycle.get(bucket)
            && (0..CACHE_TTL_MS).contains(&now.saturating_sub(*fetched_ms))
        {
            return Ok(rules.clone());
        }
        let rules = match self
            .inner
            .meta
            .read(GetBucketLifecycleRules {
                bucket: bucket.to_owned(),
            })
            .await
        {
            Ok(rules) => rules.map(Arc::new),
            Err(MetaError::NoSuchBucket(_)) => None,
            Err(e) => return Err(error::from_meta(e)),
        };
        if let Ok(mut lifecycle) = self.inner.lifecycle.lock() {
            if lifecycle.len() >= KEY_CACHE_ENTRIES_MAX {
                lifecycle.clear();
            }
            lifecycle.insert(bucket.to_owned(), (now, rules.clone()));
        }
        Ok(rules)
    }

    /// Forgets the cached lifecycle rules of `bucket` (after a change).
    pub fn forget_lifecycle(&self, bucket: &str) {
        if let Ok(mut lifecycle) = self.inner.lifecycle.lock() {
            lifecycle.remove(bucket);
        }
    }

    /// Forgets the cached CORS rules of `bucket` (after a change to them).
    pub fn forget_cors(&self, bucket: &str) {
        if let Ok(mut cors) = self.inner.cors.lock() {
            cors.remove(bucket);
        }
    }

    /// The policy, public access block and ACL of `bucket` (none if the
    /// bucket does not exist), as read together, in one metadata query, at
    /// most [`CACHE_TTL_MS`] ago.
    /// The tags of version `version_id` of `bucket/key` (the current one
    /// without it), read now; `None` if there is no such object (a delete
    /// marker, or a version id that does not parse, included).
    pub async fn object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<Option<Vec<(String, String)>>> {
        let version_id = match version_id.map(VersionId::parse) {
            None => None,
            Some(Some(id)) => Some(id),
            Some(None) => return Ok(None),
        };
        match self
            .inner
            .meta
            .read(GetReadableVersion {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id,
            })
            .await
        {
            Ok((version, _)) if !version.stamp.delete_marker => Ok(Some(version.tags)),
            Ok(_)
            | Err(
                MetaError::NoSuchKey(_)
                | MetaError::NoSuchVersion { .. }
                | MetaError::NoSuchBucket(_)
                | MetaError::KeyTooLong,
            ) => Ok(None),
            Err(e) => Err(error::from_meta(e)),
        }
    }

    pub async fn bucket_rules(&self, bucket: &str) -> S3Result<BucketRules> {
        let now = self.now_ms();
        if let Ok(policies) = self.inner.policies.lock()
            && let Some((fetched_ms, rules)) = policies.get(bucket)
            && (0..CACHE_TTL_MS).contains(&now.saturating_sub(*fetched_ms))
        {
            return Ok(rules.clone());
        }
        let (stored, exists) = match self
            .inner
            .meta
            .read(GetBucketRules {
                bucket: bucket.to_owned(),
            })
            .await
        {
            Ok(stored) => (stored, true),
            Err(MetaError::NoSuchBucket(_)) => (StoredBucketRules::default(), false),
            Err(e) => return Err(error::from_meta(e)),
        };
        let StoredBucketRules {
            policy: text,
            block,
            acl,
        } = stored;
        let block = block.unwrap_or_default();
        let policy = match text {
            None => None,
            Some(text) => Some(Arc::new(Policy::parse(bucket, &text).map_err(|e| {
                error::internal("a stored bucket policy does not parse", e)
            })?)),
        };
        let rules = BucketRules {
            policy,
            block,
            acl,
            exists,
        };
        if let Ok(mut policies) = self.inner.policies.lock() {
            if policies.len() >= KEY_CACHE_ENTRIES_MAX {
                policies.clear();
            }
            policies.insert(bucket.to_owned(), (now, rules.clone()));
        }
        Ok(rules)
    }

    /// Forgets the cached rules of `bucket` (after a change to them).
    pub fn forget_policy(&self, bucket: &str) {
        if let Ok(mut policies) = self.inner.policies.lock() {
            policies.remove(bucket);
        }
    }

    fn cached(&self, access_key: &str) -> Option<Option<Found>> {
        let now = self.now_ms();
        let cache = self.inner.cache.lock().ok()?;
        let cached = cache.get(access_key)?;
        let age = now.saturating_sub(cached.fetched_ms);
        (0..CACHE_TTL_MS)
            .contains(&age)
            .then(|| cached.found.clone())
    }

    async fn fetch(&self, access_key: &str) -> S3Result<Option<Found>> {
        let fetched_ms = self.now_ms();
        let record = self
            .inner
            .meta
            .read(GetAccessKey {
                access_key: access_key.to_owned(),
            })
            .await
            .map_err(error::from_meta)?;
        let found = match record {
            None => None,
            Some(record) => match self.inner.node_key.open(access_key, &record.sealed_secret) {
                Some(secret) => Some(Found {
                    secret: SecretKey::from(secret),
                    record: Arc::new(record),
                }),
                None => {
                    // Logged without the sealed bytes.
                    tracing::error!(
                        access_key,
                        "the access key's secret does not open with this gateway's node key"
                    );
                    None
                }
            },
        };
        if let Ok(mut cache) = self.inner.cache.lock() {
            if cache.len() >= KEY_CACHE_ENTRIES_MAX {
                cache.clear();
            }
            cache.insert(
                access_key.to_owned(),
                Cached {
                    fetched_ms,
                    found: found.clone(),
                },
            );
        }
        Ok(found)
    }
}

#[async_trait::async_trait]
impl S3Auth for Keyring {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        Ok(self.find(access_key).await?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_meta::access::{CreateAccessKey, DeleteAccessKey};
    use arbor_meta::clock::{ManualClock, SeededEntropy};
    use arbor_meta::{MetaConfig, MetaNode};

    const ID: &str = "AKIAEXAMPLEKEY000001";

    async fn fixture() -> (tempfile::TempDir, Arc<MetaNode>, Keyring, Arc<ManualClock>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = MetaNode::open_single(MetaConfig {
            durable: false,
            ..MetaConfig::new(dir.path(), 1)
        })
        .await
        .expect("meta node");
        let clock = ManualClock::new(1_000_000);
        let keyring = Keyring::new(
            Credentials {
                access_key: "ADMINISTRATOR".into(),
                secret_key: "admin-secret".into(),
            },
            node.client(),
            NodeKey::from_bytes(&[9; 32]),
            clock.clone(),
            SeededEntropy::new(3),
        );
        (dir, node, keyring, clock)
    }

    async fn create(node: &MetaNode, keyring: &Keyring, secret: &str) {
        let sealed_secret = keyring
            .node_key()
            .seal(ID, secret, keyring.entropy().as_ref());
        let record = AccessKeyRecord {
            access_key: ID.into(),
            name: "k".into(),
            sealed_secret,
            created_ms: 0,
            create_bucket: false,
            buckets: Default::default(),
        };
        node.client()
            .write(CreateAccessKey { record })
            .await
            .expect("create key");
    }

    fn code(e: s3s::S3Error) -> s3s::S3ErrorCode {
        e.code().clone()
    }

    #[tokio::test]
    async fn a_change_elsewhere_is_seen_within_the_cache_ttl() {
        let (_dir, node, keyring, clock) = fixture().await;
        let (secret, principal) = keyring.find("ADMINISTRATOR").await.expect("administrator");
        assert_eq!(secret.expose(), "admin-secret");
        assert!(principal.is_administrator());

        // Unknown, and remembered as unknown for the TTL.
        let e = keyring.find(ID).await.expect_err("unknown");
        assert_eq!(code(e), s3s::S3ErrorCode::InvalidAccessKeyId);
        create(&node, &keyring, "the secret").await;
        assert!(keyring.find(ID).await.is_err(), "cached absence");
        clock.advance_ms(CACHE_TTL_MS);
        let (secret, principal) = keyring.find(ID).await.expect("seen after the TTL");
        assert_eq!(secret.expose(), "the secret");
        assert_eq!(principal.access_key(), ID);
        assert!(!principal.is_administrator());

        // Deleted through another gateway: still served until the TTL ends.
        node.client()
            .write(DeleteAccessKey {
                access_key: ID.into(),
            })
            .await
            .expect("delete");
        clock.advance_ms(CACHE_TTL_MS - 1);
        assert!(keyring.find(ID).await.is_ok(), "within the TTL");
        clock.advance_ms(1);
        assert!(keyring.find(ID).await.is_err(), "gone after the TTL");

        // A change through this gateway is seen at once.
        create(&node, &keyring, "again").await;
        keyring.forget(ID);
        assert_eq!(
            keyring.find(ID).await.expect("forgotten").0.expose(),
            "again"
        );
        node.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn a_buckets_rules_come_in_one_read_and_are_cached() {
        use arbor_meta::access::PutPublicAccessBlock;
        use arbor_meta::acl::SetBucketAcl;
        use arbor_meta::namespace::CreateBucket;

        let (_dir, node, keyring, clock) = fixture().await;
        let rules = keyring.bucket_rules("photos").await.expect("no bucket");
        assert!(rules.policy.is_none());
        assert_eq!(rules.acl, BucketAcl::default());
        assert_eq!(rules.block, PublicAccessBlock::default());

        let client = node.client();
        client
            .write(CreateBucket {
                name: "photos".into(),
                created_ms: 1,
            })
            .await
            .expect("create bucket");
        client
            .write(SetBucketAcl {
                bucket: "photos".into(),
                acl: CannedAcl::PublicRead,
            })
            .await
            .expect("set acl");
        let block = PublicAccessBlock {
            ignore_public_acls: true,
            ..PublicAccessBlock::default()
        };
        client
            .write(PutPublicAccessBlock {
                bucket: "photos".into(),
                block,
            })
            .await
            .expect("put block");
        keyring.forget_policy("photos");
        let rules = keyring.bucket_rules("photos").await.expect("rules");
        assert_eq!(rules.acl.acl, CannedAcl::PublicRead);
        assert_eq!(rules.block, block);
        assert_eq!(rules.effective_acl(), CannedAcl::Private);

        // Changed elsewhere: the cached rules serve until the TTL ends.
        client
            .write(SetBucketAcl {
                bucket: "photos".into(),
                acl: CannedAcl::Private,
            })
            .await
            .expect("set acl");
        clock.advance_ms(CACHE_TTL_MS - 1);
        let cached = keyring.bucket_rules("photos").await.expect("cached");
        assert_eq!(cached.acl.acl, CannedAcl::PublicRead);
        clock.advance_ms(1);
        let fresh = keyring.bucket_rules("photos").await.expect("fresh");
        assert_eq!(fresh.acl.acl, CannedAcl::Private);
        node.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn a_secret_sealed_under_another_node_key_is_refused() {
        let (_dir, node, keyring, _clock) = fixture().await;
        let other = NodeKey::from_bytes(&[1; 32]);
        let record = AccessKeyRecord {
            access_key: ID.into(),
            name: "k".into(),
            sealed_secret: other.seal(ID, "s", keyring.entropy().as_ref()),
            created_ms: 0,
            create_bucket: false,
            buckets: Default::default(),
        };
        node.client()
            .write(CreateAccessKey { record })
            .await
            .expect("create key");
        let e = keyring.find(ID).await.expect_err("cannot open");
        assert_eq!(code(e), s3s::S3ErrorCode::InvalidAccessKeyId);
        node.shutdown().await.expect("shutdown");
    }
}
