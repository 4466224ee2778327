//! Access keys: who may sign requests, and what each key may do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a key may do in one bucket. `read`: get, head and list objects,
/// read the bucket's settings; `write`: put, copy into, delete and upload
/// objects; `owner`: change the bucket's settings and delete it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    pub read: bool,
    pub write: bool,
    pub owner: bool,
}

impl Permissions {
    pub const ALL: Permissions = Permissions {
        read: true,
        write: true,
        owner: true,
    };
    pub const NONE: Permissions = Permissions {
        read: false,
        write: false,
        owner: false,
    };

    /// Every permission of `self` or `other`.
    pub fn union(self, other: Permissions) -> Permissions {
        Permissions {
            read: self.read || other.read,
            write: self.write || other.write,
            owner: self.owner || other.owner,
        }
    }

    /// The permissions of `self` that `other` does not name.
    pub fn without(self, other: Permissions) -> Permissions {
        Permissions {
            read: self.read && !other.read,
            write: self.write && !other.write,
            owner: self.owner && !other.owner,
        }
    }

    pub fn is_empty(self) -> bool {
        self == Permissions::NONE
    }
}

/// One access key as the metadata service keeps it. The secret is sealed
/// by the gateway that created the key (authenticated encryption under its
/// node key file) and is never stored or sent in the clear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    /// The access key id, as clients send it (`AKID...`).
    pub access_key: String,
    /// A name for people (`backup`, `dashboard`).
    pub name: String,
    /// The sealed secret key.
    pub sealed_secret: Vec<u8>,
    pub created_ms: i64,
    /// Whether the key may create buckets (and then owns those it creates).
    pub create_bucket: bool,
    /// Permissions per bucket; a bucket not named grants nothing.
    pub buckets: BTreeMap<String, Permissions>,
}

impl AccessKeyRecord {
    /// What the key may do in `bucket`.
    pub fn permissions(&self, bucket: &str) -> Permissions {
        self.buckets.get(bucket).copied().unwrap_or_default()
    }
}

/// A bucket's public access block (S3's PutPublicAccessBlock): what keeps
/// it from being made public.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    /// A public policy is refused.
    pub block_public_policy: bool,
    /// A public policy admits no anonymous request.
    pub restrict_public_buckets: bool,
}

/// One rule of a bucket's CORS configuration (S3's PutBucketCors), as the
/// gateway checked it: which origins may send which methods and headers,
/// what the answer lets them read, and how long a preflight holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<i32>,
}

impl CorsRule {
    /// About how many bytes the rule takes encoded.
    pub fn size_estimate(&self) -> usize {
        let strings = |v: &[String]| v.iter().map(|s| s.len().saturating_add(2)).sum::<usize>();
        self.id
            .as_ref()
            .map_or(0, String::len)
            .saturating_add(strings(&self.allowed_origins))
            .saturating_add(strings(&self.allowed_methods))
            .saturating_add(strings(&self.allowed_headers))
            .saturating_add(strings(&self.expose_headers))
            .saturating_add(16)
    }
}
