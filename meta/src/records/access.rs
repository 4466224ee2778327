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
    #[serde(with = "super::byte_vec")]
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

/// An access control list, as S3's canned ACLs name them. The owner (the
/// deployment's) always has FULL_CONTROL; a canned ACL says what the two
/// groups S3 predefines get beside it (docs/design.md, "Access control
/// lists"). Grants to single keys are the keys' permissions, not ACLs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CannedAcl {
    /// The owner only.
    #[default]
    Private,
    /// Everyone (AllUsers), signed or not, gets READ.
    PublicRead,
    /// Everyone gets READ and WRITE (WRITE means something on a bucket
    /// only: creating, replacing and deleting its objects).
    PublicReadWrite,
    /// Every signed request of a key of this deployment
    /// (AuthenticatedUsers) gets READ.
    AuthenticatedRead,
}

impl CannedAcl {
    /// Whether S3 calls the ACL public: it grants anything to AllUsers or
    /// AuthenticatedUsers. PublicAccessBlock's BlockPublicAcls refuses
    /// such ACLs, IgnorePublicAcls disregards them.
    pub fn is_public(self) -> bool {
        self != CannedAcl::Private
    }

    /// Whether the ACL grants READ to a request that is anonymous or not.
    pub fn grants_read(self, anonymous: bool) -> bool {
        match self {
            CannedAcl::Private => false,
            CannedAcl::PublicRead | CannedAcl::PublicReadWrite => true,
            CannedAcl::AuthenticatedRead => !anonymous,
        }
    }

    /// Whether the ACL grants WRITE (on a bucket) to anyone.
    pub fn grants_write(self) -> bool {
        self == CannedAcl::PublicReadWrite
    }
}

/// A bucket's Object Ownership (S3's PutBucketOwnershipControls). Every
/// object of an Arbor deployment belongs to its owner whatever the
/// setting; what it decides is whether ACLs exist: `BucketOwnerEnforced`
/// disables them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectOwnership {
    #[default]
    BucketOwnerPreferred,
    ObjectWriter,
    BucketOwnerEnforced,
    /// No ownership controls: what DeleteBucketOwnershipControls leaves.
    /// ACLs are enabled (S3's behaviour for such a bucket, ObjectWriter's),
    /// and GetBucketOwnershipControls finds none. Last, so that records
    /// written before it decode as they were.
    Unset,
}

impl ObjectOwnership {
    /// Whether ACLs other than the owner's are refused.
    pub fn acls_disabled(self) -> bool {
        self == ObjectOwnership::BucketOwnerEnforced
    }
}

/// A bucket's ACL and Object Ownership; a bucket without a row has the
/// default: private, ACLs enabled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketAcl {
    pub acl: CannedAcl,
    pub ownership: ObjectOwnership,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownerships_keep_the_encoding_records_were_written_in() {
        // postcard writes a variant's index: those before `Unset` stay.
        for (ownership, encoded) in [
            (ObjectOwnership::BucketOwnerPreferred, 0u8),
            (ObjectOwnership::ObjectWriter, 1),
            (ObjectOwnership::BucketOwnerEnforced, 2),
            (ObjectOwnership::Unset, 3),
        ] {
            let bytes = postcard::to_allocvec(&ownership).expect("encode");
            assert_eq!(bytes, [encoded], "{ownership:?}");
            let back: ObjectOwnership = postcard::from_bytes(&bytes).expect("decode");
            assert_eq!(back, ownership);
        }
        assert!(!ObjectOwnership::Unset.acls_disabled());
    }
}
