//! Raft commands and their replies. A command is everything `apply` needs:
//! timestamps and ids are chosen by the proposer, so apply is deterministic.

use serde::{Deserialize, Serialize};

use crate::error::MetaError;
use crate::object::{BucketInfo, ObjectVersion};

/// An expectation on the current version of a key, checked inside apply
/// (compare-and-swap; brief.md §3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteCondition {
    #[default]
    None,
    /// `If-None-Match: *`: the key must not exist.
    IfNoneMatchAny,
    /// `If-Match: <etag>` (hex, no quotes): the key must exist with this ETag.
    IfMatch(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    CreateBucket {
        name: String,
        created_ms: i64,
    },
    DeleteBucket {
        name: String,
    },
    /// Make `version` the current version of `bucket/key`, creating the
    /// directories on its path in the same transaction.
    PutObject {
        bucket: String,
        key: String,
        version: ObjectVersion,
        condition: WriteCondition,
    },
    /// Remove the current version of `bucket/key` and every directory left
    /// empty by it. Deleting a missing key succeeds (S3 semantics).
    DeleteObject {
        bucket: String,
        key: String,
    },
}

/// The deterministic outcome of applying one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Done,
    Bucket(BucketInfo),
    /// The committed version, with its generation filled in.
    Object(ObjectVersion),
    /// DeleteObject: whether a version existed and was removed.
    Deleted {
        existed: bool,
    },
}

pub type CommandResult = Result<Reply, MetaError>;
