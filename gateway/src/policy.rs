//! Bucket policies: the subset of AWS's policy language deployments use.
//! Statements `Allow` or `Deny`; `Principal` `"*"` or access key ids
//! (`{"AWS": [...]}`, also as `arn:aws:iam::ACCOUNT:user/ID`); `Action`
//! `s3:...` with `*` and `?` wildcards; `Resource` this bucket
//! (`arn:aws:s3:::BUCKET`) or keys in it (`arn:aws:s3:::BUCKET/prefix*`);
//! `Condition` with `StringEquals`, `StringNotEquals`, `StringLike`,
//! `StringNotLike`, `IpAddress`, `NotIpAddress`, `Bool` and `Null` on
//! `aws:SourceIp`, `aws:SecureTransport`, `aws:Referer`, `aws:UserAgent`,
//! `s3:prefix`, `s3:delimiter`, `s3:max-keys`, `s3:VersionId`,
//! `s3:ExistingObjectTag/<key>` and the keys
//! that name a request header (`s3:if-none-match`, `s3:if-match` and
//! [`HEADER_KEYS`]: `s3:x-amz-acl`, `s3:x-amz-copy-source`, ...). An
//! explicit Deny wins
//! over any Allow and any grant.
//! A policy outside the subset is refused with MalformedPolicy, saying
//! where.

use std::net::IpAddr;

use serde_json::{Map, Value};

/// What a policy says about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// No statement applies.
    Silent,
}

/// A request as a policy sees it.
#[derive(Clone, Debug, Default)]
pub struct Facts<'a> {
    /// The signer's access key id (`None`: anonymous).
    pub access_key: Option<&'a str>,
    /// `s3:GetObject`, ...
    pub action: &'a str,
    /// AWS's action for the same operation on a version named by
    /// `versionId` (`s3:GetObjectVersion`, `s3:DeleteObjectVersion`, ...),
    /// when the request names one: a statement naming either applies.
    pub version_action: Option<&'a str>,
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`.
    pub resource: String,
    pub source_ip: Option<IpAddr>,
    pub secure_transport: bool,
    pub prefix: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_match: Option<&'a str>,
    /// The request's headers and query, for the keys read from them.
    pub headers: Option<&'a http::HeaderMap>,
    pub query: Option<&'a str>,
    /// The tags of the object the request names (`None`: not read, or no
    /// such object), for `s3:ExistingObjectTag/...`.
    pub object_tags: Option<&'a [(String, String)]>,
}

/// The condition keys that are the value of a request header, and the
/// header. `s3:x-amz-copy-source` is compared decoded and without a
/// leading `/` (`bucket/key`, as AWS's examples write it).
const HEADER_KEYS: [(&str, &str); 18] = [
    ("aws:referer", "referer"),
    ("aws:useragent", "user-agent"),
    ("s3:x-amz-acl", "x-amz-acl"),
    ("s3:x-amz-copy-source", "x-amz-copy-source"),
    ("s3:x-amz-metadata-directive", "x-amz-metadata-directive"),
    ("s3:x-amz-grant-read", "x-amz-grant-read"),
    ("s3:x-amz-grant-write", "x-amz-grant-write"),
    ("s3:x-amz-grant-read-acp", "x-amz-grant-read-acp"),
    ("s3:x-amz-grant-write-acp", "x-amz-grant-write-acp"),
    ("s3:x-amz-grant-full-control", "x-amz-grant-full-control"),
    (
        "s3:x-amz-server-side-encryption",
        "x-amz-server-side-encryption",
    ),
    (
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-server-side-encryption-aws-kms-key-id",
    ),
    ("s3:x-amz-storage-class", "x-amz-storage-class"),
    ("s3:x-amz-content-sha256", "x-amz-content-sha256"),
    (
        "s3:x-amz-website-redirect-location",
        "x-amz-website-redirect-location",
    ),
    ("s3:object-lock-mode", "x-amz-object-lock-mode"),
    (
        "s3:object-lock-retain-until-date",
        "x-amz-object-lock-retain-until-date",
    ),
    ("s3:object-lock-legal-hold", "x-amz-object-lock-legal-hold"),
];

/// The condition keys that are the value of a query parameter, and the
/// parameter (`s3:prefix` has its own field).
const QUERY_KEYS: [(&str, &str); 3] = [
    ("s3:delimiter", "delimiter"),
    ("s3:max-keys", "max-keys"),
    ("s3:versionid", "versionId"),
];

#[derive(Clone, Debug)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Clone, Debug)]
struct Statement {
    allow: bool,
    /// `None`: anyone.
    principals: Option<Vec<String>>,
    actions: Vec<String>,
    resources: Vec<String>,
    conditions: Vec<Condition>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    StringEquals,
    StringNotEquals,
    StringLike,
    StringNotLike,
    IpAddress,
    NotIpAddress,
    Bool,
    Null,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ConditionKey {
    SourceIp,
    SecureTransport,
    Prefix,
    IfNoneMatch,
    IfMatch,
    /// The value of this request header.
    Header(&'static str),
    /// The value of this query parameter, decoded.
    Query(&'static str),
    /// `s3:ExistingObjectTag/<key>`: the value of this tag of the object
    /// the request names, as stored.
    ExistingObjectTag(String),
}

/// The prefix of the condition keys that name a tag of the object.
/// (`s3:RequestObjectTag/...` is refused: PutObjectTagging carries its tags
/// in a body the access check does not read, so it could not be kept.)
const EXISTING_OBJECT_TAG: &str = "s3:existingobjecttag/";

#[derive(Clone, Debug)]
struct Condition {
    operator: Operator,
    key: ConditionKey,
    values: Vec<String>,
}

const ARN_PREFIX: &str = "arn:aws:s3:::";

/// `*` any run of characters, `?` any one; `case` folds ASCII case.
fn glob(pattern: &str, text: &str, fold_case: bool) -> bool {
    let eq = |a: char, b: char| {
        if fold_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || t.get(ti).is_some_and(|&x| eq(c, x)) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

/// `address` within `cidr` (`1.2.3.0/24`, `::1/128`, or a bare address).
fn in_cidr(cidr: &str, address: IpAddr) -> bool {
    let (network, bits) = match cidr.split_once('/') {
        Some((network, bits)) => (network, bits.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let Ok(network) = network.parse::<IpAddr>() else {
        return false;
    };
    match (network, address) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

fn valid_cidr(cidr: &str) -> bool {
    let (network, bits) = match cidr.split_once('/') {
        Some((network, bits)) => (network, Some(bits)),
        None => (cidr, None),
    };
    let Ok(network) = network.parse::<IpAddr>() else {
        return false;
    };
    let max = if network.is_ipv4() { 32 } else { 128 };
    bits.is_none_or(|b| b.parse::<u32>().is_ok_and(|b| b <= max))
}

/// One string or an array of strings (booleans allowed where `bools`).
fn strings(value: &Value, at: &str, bools: bool) -> Result<Vec<String>, String> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) if bools => Ok(b.to_string()),
        _ => Err(format!("{at} must be a string or an array of strings")),
    };
    match value {
        Value::Array(items) if !items.is_empty() => items.iter().map(one).collect(),
        Value::Array(_) => Err(format!("{at} is empty")),
        other => Ok(vec![one(other)?]),
    }
}

fn principals(value: &Value, at: &str) -> Result<Option<Vec<String>>, String> {
    let ids = match value {
        Value::String(s) if s == "*" => return Ok(None),
        Value::Object(map) => {
            if let Some(other) = map.keys().find(|k| k.as_str() != "AWS") {
                return Err(format!(
                    "{at}: principal type {other:?} is not supported (only AWS)"
                ));
            }
            let aws = map
                .get("AWS")
                .ok_or_else(|| format!("{at} names no AWS principal"))?;
            strings(aws, at, false)?
        }
        _ => return Err(format!("{at} must be \"*\" or {{\"AWS\": ...}}")),
    };
    if ids.iter().any(|id| id == "*") {
        return Ok(None);
    }
    let keys = ids
        .into_iter()
        .map(|id| {
            let key = match id.strip_prefix("arn:aws:iam::") {
                Some(rest) => rest
                    .split_once(":user/")
                    .map(|(_, user)| user.to_owned())
                    .ok_or_else(|| format!("{at}: {id:?} is not a user ARN"))?,
                None => id,
            };
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("{at}: {key:?} is not an access key id"));
            }
            Ok(key)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(keys))
}

/// The tag a condition key names after `prefix` (matched in any case;
/// the tag's own key keeps its case).
fn tag_named<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    let tag = name.get(prefix.len()..)?;
    (head.eq_ignore_ascii_case(prefix) && !tag.is_empty()).then_some(tag)
}

fn condition_key(name: &str, at: &str) -> Result<ConditionKey, String> {
    if let Some(tag) = tag_named(name, EXISTING_OBJECT_TAG) {
        return Ok(ConditionKey::ExistingObjectTag(tag.to_owned()));
    }
    Ok(match name.to_ascii_lowercase().as_str() {
        "aws:sourceip" => ConditionKey::SourceIp,
        "aws:securetransport" => ConditionKey::SecureTransport,
        "s3:prefix" => ConditionKey::Prefix,
        "s3:if-none-match" => ConditionKey::IfNoneMatch,
        "s3:if-match" => ConditionKey::IfMatch,
        lower => {
            if let Some((_, header)) = HEADER_KEYS.iter().find(|(key, _)| *key == lower) {
                ConditionKey::Header(header)
            } else if let Some((_, param)) = QUERY_KEYS.iter().find(|(key, _)| *key == lower) {
                ConditionKey::Query(param)
            } else {
                return Err(format!("{at}: condition key {name:?} is not supported"));
            }
        }
    })
}

fn operator(name: &str, at: &str) -> Result<Operator, String> {
    Ok(match name {
        "StringEquals" => Operator::StringEquals,
        "StringNotEquals" => Operator::StringNotEquals,
        "StringLike" => Operator::StringLike,
        "StringNotLike" => Operator::StringNotLike,
        "IpAddress" => Operator::IpAddress,
        "NotIpAddress" => Operator::NotIpAddress,
        "Bool" => Operator::Bool,
        "Null" => Operator::Null,
        _ => {
            return Err(format!(
                "{at}: condition operator {name:?} is not supported"
            ));
        }
    })
}

fn conditions(value: &Value, at: &str) -> Result<Vec<Condition>, String> {
    let Value::Object(operators) = value else {
        return Err(format!("{at} must be an object"));
    };
    let mut out = Vec::new();
    for (name, keys) in operators {
        let op = operator(name, at)?;
        let Value::Object(keys) = keys else {
            return Err(format!("{at}.{name} must be an object"));
        };
        for (key_name, values) in keys {
            let key = condition_key(key_name, at)?;
            let here = format!("{at}.{name}.{key_name}");
            let values = strings(values, &here, true)?;
            let ip_op = matches!(op, Operator::IpAddress | Operator::NotIpAddress);
            if ip_op != (key == ConditionKey::SourceIp) {
                return Err(format!("{here}: {name} does not apply to {key_name}"));
            }
            if ip_op && let Some(bad) = values.iter().find(|v| !valid_cidr(v)) {
                return Err(format!(
                    "{here}: {bad:?} is not an IP address or CIDR block"
                ));
            }
            if matches!(op, Operator::Bool | Operator::Null)
                && let Some(bad) = values.iter().find(|v| *v != "true" && *v != "false")
            {
                return Err(format!("{here}: {bad:?} is not true or false"));
            }
            out.push(Condition {
                operator: op,
                key,
                values,
            });
        }
    }
    Ok(out)
}

fn field<'a>(map: &'a Map<String, Value>, name: &str, at: &str) -> Result<&'a Value, String> {
    map.get(name).ok_or_else(|| format!("{at} has no {name}"))
}

fn statement(value: &Value, at: &str, bucket: &str) -> Result<Statement, String> {
    let Value::Object(map) = value else {
        return Err(format!("{at} must be an object"));
    };
    for key in map.keys() {
        match key.as_str() {
            "Sid" | "Effect" | "Principal" | "Action" | "Resource" | "Condition" => {}
            "NotPrincipal" | "NotAction" | "NotResource" => {
                return Err(format!("{at}: {key} is not supported"));
            }
            _ => return Err(format!("{at}: unknown field {key:?}")),
        }
    }
    let allow = match field(map, "Effect", at)? {
        Value::String(s) if s == "Allow" => true,
        Value::String(s) if s == "Deny" => false,
        _ => return Err(format!("{at}: Effect must be Allow or Deny")),
    };
    let principals = principals(field(map, "Principal", at)?, &format!("{at}.Principal"))?;
    let actions = strings(field(map, "Action", at)?, &format!("{at}.Action"), false)?;
    for action in &actions {
        let lower = action.to_ascii_lowercase();
        if action != "*" && !lower.starts_with("s3:") {
            return Err(format!("{at}.Action: {action:?} is not an s3: action"));
        }
    }
    let resources = strings(
        field(map, "Resource", at)?,
        &format!("{at}.Resource"),
        false,
    )?;
    for resource in &resources {
        let inside = resource
            .strip_prefix(ARN_PREFIX)
            .is_some_and(|rest| rest == bucket || rest.starts_with(&format!("{bucket}/")));
        if !inside {
            return Err(format!(
                "{at}.Resource: {resource:?} is not this bucket ({ARN_PREFIX}{bucket}) or a key in it"
            ));
        }
    }
    let conditions = match map.get("Condition") {
        Some(value) => conditions(value, &format!("{at}.Condition"))?,
        None => Vec::new(),
    };
    Ok(Statement {
        allow,
        principals,
        actions,
        resources,
        conditions,
    })
}

impl Policy {
    /// Parses the policy of `bucket`; the error says where it is wrong.
    pub fn parse(bucket: &str, text: &str) -> Result<Policy, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("The policy is not JSON: {e}"))?;
        let Value::Object(map) = value else {
            return Err("The policy must be a JSON object".to_owned());
        };
        for key in map.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(format!("Unknown field {key:?} in the policy"));
            }
        }
        if let Some(version) = map.get("Version")
            && version != "2012-10-17"
            && version != "2008-10-17"
        {
            return Err(format!("Version {version} is not 2012-10-17"));
        }
        let statements = match field(&map, "Statement", "The policy")? {
            Value::Array(items) if !items.is_empty() => items.iter().collect::<Vec<_>>(),
            Value::Array(_) => return Err("The policy has no statement".to_owned()),
            one => vec![one],
        };
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(i, s)| statement(s, &format!("Statement {}", i + 1), bucket))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy { statements })
    }

    /// What the policy says of `facts`: a matching Deny wins.
    pub fn evaluate(&self, facts: &Facts<'_>) -> Decision {
        let mut allowed = false;
        for statement in &self.statements {
            if statement.applies(facts) {
                if !statement.allow {
                    return Decision::Deny;
                }
                allowed = true;
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::Silent
        }
    }

    /// Whether the policy lets anyone in: an Allow for `*` that no source
    /// address condition narrows.
    /// Whether a statement tests the tags of the object a request names
    /// (`s3:ExistingObjectTag/...`): the caller then reads them into
    /// [`Facts::object_tags`].
    pub fn needs_object_tags(&self) -> bool {
        self.statements.iter().any(|s| {
            s.conditions
                .iter()
                .any(|c| matches!(c.key, ConditionKey::ExistingObjectTag(_)))
        })
    }

    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            s.allow
                && s.principals.is_none()
                && !s.conditions.iter().any(|c| c.key == ConditionKey::SourceIp)
        })
    }
}

impl Statement {
    fn applies(&self, facts: &Facts<'_>) -> bool {
        let principal = match (&self.principals, facts.access_key) {
            (None, _) => true,
            (Some(keys), Some(key)) => keys.iter().any(|k| k == key),
            (Some(_), None) => false,
        };
        principal
            && self.actions.iter().any(|a| {
                glob(a, facts.action, true)
                    || facts.version_action.is_some_and(|v| glob(a, v, true))
            })
            && self
                .resources
                .iter()
                .any(|r| glob(r, &facts.resource, false))
            && self.conditions.iter().all(|c| c.holds(facts))
    }
}

impl Condition {
    fn holds(&self, facts: &Facts<'_>) -> bool {
        let value: Option<String> = match &self.key {
            ConditionKey::SourceIp => facts.source_ip.map(|ip| ip.to_string()),
            ConditionKey::SecureTransport => Some(facts.secure_transport.to_string()),
            ConditionKey::Prefix => facts.prefix.map(str::to_owned),
            ConditionKey::IfNoneMatch => facts.if_none_match.map(str::to_owned),
            ConditionKey::IfMatch => facts.if_match.map(str::to_owned),
            ConditionKey::Header(name) => facts
                .headers
                .and_then(|headers| headers.get(*name))
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    if *name == "x-amz-copy-source" {
                        let decoded = urlencoding::decode(v)
                            .map_or_else(|_| v.to_owned(), |d| d.into_owned());
                        decoded.trim_start_matches('/').to_owned()
                    } else {
                        v.to_owned()
                    }
                }),
            ConditionKey::Query(name) => facts.query.and_then(|query| query_param(query, name)),
            ConditionKey::ExistingObjectTag(tag) => facts
                .object_tags
                .and_then(|tags| tags.iter().find(|(k, _)| k == tag))
                .map(|(_, v)| v.clone()),
        };
        let values = &self.values;
        match self.operator {
            Operator::StringEquals => value.is_some_and(|v| values.contains(&v)),
            Operator::StringNotEquals => value.is_none_or(|v| !values.contains(&v)),
            Operator::StringLike => {
                value.is_some_and(|v| values.iter().any(|p| glob(p, &v, false)))
            }
            Operator::StringNotLike => {
                value.is_none_or(|v| !values.iter().any(|p| glob(p, &v, false)))
            }
            Operator::IpAddress => facts
                .source_ip
                .is_some_and(|ip| values.iter().any(|c| in_cidr(c, ip))),
            Operator::NotIpAddress => facts
                .source_ip
                .is_none_or(|ip| !values.iter().any(|c| in_cidr(c, ip))),
            Operator::Bool => value.is_some_and(|v| values.contains(&v)),
            Operator::Null => {
                let absent = value.is_none();
                values.iter().any(|v| (v == "true") == absent)
            }
        }
    }
}

/// The value of query parameter `name` in `query`, names and values
/// percent-decoded as s3s decodes them (`version%49d` is `versionId`).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    let decode = |s: &str| {
        urlencoding::decode(&s.replace('+', " "))
            .map(|v| v.into_owned())
            .unwrap_or_default()
    };
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

/// The policy action of the operation s3s calls `op`.
pub fn action(op: &str) -> String {
    let action = match op {
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "ListBucket",
        "ListObjectVersions" => "ListBucketVersions",
        "HeadObject" | "GetObjectAttributes" => "GetObject",
        "CreateMultipartUpload"
        | "UploadPart"
        | "CompleteMultipartUpload"
        | "CopyObject"
        | "UploadPartCopy"
        | "RenameObject"
        | "PostObject" => "PutObject",
        "DeleteObjects" => "DeleteObject",
        "ListParts" => "ListMultipartUploadParts",
        "ListMultipartUploads" => "ListBucketMultipartUploads",
        "DeleteBucketTagging" => "PutBucketTagging",
        "PutBucketCors" | "DeleteBucketCors" => "PutBucketCORS",
        "GetBucketCors" => "GetBucketCORS",
        "GetBucketEncryption" => "GetEncryptionConfiguration",
        "DeleteBucketEncryption" => "PutEncryptionConfiguration",
        "GetBucketReplication" => "GetReplicationConfiguration",
        "DeleteBucketReplication" => "PutReplicationConfiguration",
        "GetBucketAccelerateConfiguration" => "GetAccelerateConfiguration",
        "GetBucketNotificationConfiguration" => "GetBucketNotification",
        "GetPublicAccessBlock" => "GetBucketPublicAccessBlock",
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "PutBucketPublicAccessBlock",
        "GetBucketLifecycleConfiguration" => "GetLifecycleConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => "PutLifecycleConfiguration",
        "GetObjectLockConfiguration" => "GetBucketObjectLockConfiguration",
        "PutObjectLockConfiguration" => "PutBucketObjectLockConfiguration",
        "DeleteBucketOwnershipControls" => "PutBucketOwnershipControls",
        other => other,
    };
    format!("s3:{action}")
}

/// AWS's action for operation `op` on a version named by `versionId`, for
/// the operations that have one.
pub fn version_action(op: &str) -> Option<&'static str> {
    Some(match op {
        "GetObject" | "HeadObject" => "s3:GetObjectVersion",
        "GetObjectAttributes" => "s3:GetObjectVersionAttributes",
        "DeleteObject" => "s3:DeleteObjectVersion",
        "GetObjectTagging" => "s3:GetObjectVersionTagging",
        "PutObjectTagging" => "s3:PutObjectVersionTagging",
        "DeleteObjectTagging" => "s3:DeleteObjectVersionTagging",
        "GetObjectAcl" => "s3:GetObjectVersionAcl",
        "PutObjectAcl" => "s3:PutObjectVersionAcl",
        _ => return None,
    })
}

/// The resource a request on `bucket` (and `key`) names.
pub fn resource(bucket: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("{ARN_PREFIX}{bucket}/{key}"),
        None => format!("{ARN_PREFIX}{bucket}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(key: Option<&'a str>, action: &'a str, resource: &str) -> Facts<'a> {
        Facts {
            access_key: key,
            action,
            resource: resource.to_owned(),
            source_ip: Some("10.1.2.3".parse().expect("ip")),
            ..Facts::default()
        }
    }

    #[test]
    fn wildcards_match_as_aws_documents() {
        assert!(glob("s3:Get*", "s3:GetObject", true));
        assert!(glob("S3:GETOBJECT", "s3:GetObject", true));
        assert!(glob(
            "arn:aws:s3:::b/public/*",
            "arn:aws:s3:::b/public/a/b",
            false
        ));
        assert!(!glob(
            "arn:aws:s3:::b/public/*",
            "arn:aws:s3:::b/private/a",
            false
        ));
        assert!(glob("a?c", "abc", false) && !glob("a?c", "ac", false));
        assert!(glob("*", "", false) && glob("a*b*c", "aXbYc", false));
        assert!(!glob("abc", "abcd", false));
        assert!(in_cidr("10.0.0.0/8", "10.1.2.3".parse().expect("ip")));
        assert!(!in_cidr("10.0.0.0/16", "10.1.2.3".parse().expect("ip")));
        assert!(in_cidr("0.0.0.0/0", "1.2.3.4".parse().expect("ip")));
        assert!(in_cidr("::1", "::1".parse().expect("ip")));
    }

    #[test]
    fn an_explicit_deny_wins_and_conditions_narrow() {
        let policy = Policy::parse(
            "b",
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:ListBucket"],
               "Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]},
              {"Effect":"Deny","Principal":{"AWS":["AKIAEXAMPLEKEY000001"]},"Action":"s3:*",
               "Resource":"arn:aws:s3:::b/secret/*"},
              {"Effect":"Deny","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
               "Condition":{"StringLike":{"s3:prefix":"secret/*"}}},
              {"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*",
               "Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
              {"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/once/*",
               "Condition":{"StringEquals":{"s3:if-none-match":"*"}}}
            ]}"#,
        )
        .expect("parse");
        let key = Some("AKIAEXAMPLEKEY000001");
        let other = Some("AKIAOTHERKEY00000001");
        assert_eq!(
            policy.evaluate(&facts(other, "s3:GetObject", "arn:aws:s3:::b/secret/x")),
            Decision::Allow
        );
        assert_eq!(
            policy.evaluate(&facts(key, "s3:GetObject", "arn:aws:s3:::b/secret/x")),
            Decision::Deny
        );
        assert_eq!(
            policy.evaluate(&facts(key, "s3:GetObject", "arn:aws:s3:::b/open")),
            Decision::Allow
        );
        assert_eq!(
            policy.evaluate(&facts(key, "s3:DeleteObject", "arn:aws:s3:::b/open")),
            Decision::Silent
        );
        let mut list = facts(other, "s3:ListBucket", "arn:aws:s3:::b");
        assert_eq!(policy.evaluate(&list), Decision::Allow);
        list.prefix = Some("secret/a");
        assert_eq!(policy.evaluate(&list), Decision::Deny);
        let mut put = facts(other, "s3:PutObject", "arn:aws:s3:::b/once/k");
        assert_eq!(policy.evaluate(&put), Decision::Silent, "no If-None-Match");
        put.if_none_match = Some("*");
        assert_eq!(policy.evaluate(&put), Decision::Allow);
        put.source_ip = Some("192.168.0.1".parse().expect("ip"));
        assert_eq!(policy.evaluate(&put), Decision::Deny);
        assert!(policy.is_public());
    }

    #[test]
    fn secure_transport_and_null() {
        let policy = Policy::parse(
            "b",
            r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"*","Resource":"arn:aws:s3:::b/*",
                "Condition":{"Bool":{"aws:SecureTransport":false},"Null":{"s3:if-match":"true"}}}}"#,
        )
        .expect("parse");
        let mut f = facts(None, "s3:PutObject", "arn:aws:s3:::b/k");
        assert_eq!(policy.evaluate(&f), Decision::Deny);
        f.if_match = Some("\"abc\"");
        assert_eq!(policy.evaluate(&f), Decision::Silent);
        f.if_match = None;
        f.secure_transport = true;
        assert_eq!(policy.evaluate(&f), Decision::Silent);
        assert!(!policy.is_public());
    }

    #[test]
    fn header_and_query_keys_read_the_request() {
        let policy = Policy::parse(
            "b",
            r#"{"Statement":[
              {"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*",
               "Condition":{"StringEquals":{"s3:x-amz-acl":["public-read","public-read-write"]}}},
              {"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*",
               "Condition":{"StringLike":{"s3:x-amz-copy-source":"src/public/*"}}},
              {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*",
               "Condition":{"StringLike":{"aws:Referer":"https://example.com/*"}}},
              {"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
               "Condition":{"StringEquals":{"s3:delimiter":"/","s3:max-keys":"10"}}}
            ]}"#,
        )
        .expect("parse");
        let mut headers = http::HeaderMap::new();
        let mut put = facts(None, "s3:PutObject", "arn:aws:s3:::b/k");
        assert_eq!(policy.evaluate(&put), Decision::Silent, "no headers");
        headers.insert("x-amz-copy-source", "/src/public/a%20b".parse().expect("v"));
        put.headers = Some(&headers);
        assert_eq!(policy.evaluate(&put), Decision::Allow, "decoded, no slash");
        let mut acl = headers.clone();
        acl.insert("x-amz-acl", "public-read".parse().expect("v"));
        put.headers = Some(&acl);
        assert_eq!(policy.evaluate(&put), Decision::Deny);
        let mut private = headers.clone();
        private.insert("x-amz-copy-source", "src/private/a".parse().expect("v"));
        put.headers = Some(&private);
        assert_eq!(policy.evaluate(&put), Decision::Silent);

        let mut referred = http::HeaderMap::new();
        referred.insert("referer", "https://example.com/page".parse().expect("v"));
        let mut get = facts(None, "s3:GetObject", "arn:aws:s3:::b/k");
        assert_eq!(policy.evaluate(&get), Decision::Silent);
        get.headers = Some(&referred);
        assert_eq!(policy.evaluate(&get), Decision::Allow);

        let mut list = facts(None, "s3:ListBucket", "arn:aws:s3:::b");
        list.query = Some("list-type=2&delimiter=%2F&max-keys=10");
        assert_eq!(policy.evaluate(&list), Decision::Allow);
        list.query = Some("list-type=2&delimiter=%2F");
        assert_eq!(policy.evaluate(&list), Decision::Silent, "both keys hold");
        // Names are decoded as s3s decodes them.
        list.query = Some("list-type=2&%64elimiter=%2F&max-key%73=10");
        assert_eq!(policy.evaluate(&list), Decision::Allow);
    }

    #[test]
    fn existing_tag_keys_read_the_object() {
        let policy = Policy::parse(
            "b",
            r#"{"Statement":[
              {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*",
               "Condition":{"StringEquals":{"s3:ExistingObjectTag/Security":"public"}}},
              {"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
               "Condition":{"StringEquals":{"s3:ExistingObjectTag/x":"1"}}}
            ]}"#,
        )
        .expect("parse");
        assert!(policy.needs_object_tags());
        let mut get = facts(None, "s3:GetObject", "arn:aws:s3:::b/k");
        assert_eq!(policy.evaluate(&get), Decision::Silent, "tags not read");
        let public = vec![
            ("Security".to_owned(), "public".to_owned()),
            ("x".to_owned(), "1".to_owned()),
        ];
        get.object_tags = Some(&public);
        assert_eq!(policy.evaluate(&get), Decision::Allow);
        let lower = vec![("security".to_owned(), "public".to_owned())];
        get.object_tags = Some(&lower);
        assert_eq!(
            policy.evaluate(&get),
            Decision::Silent,
            "tag keys keep their case"
        );

        let requested = r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"s3:RequestObjectTag/team":"x"}}}}"#;
        assert!(Policy::parse("b", requested).is_err(), "not supported");

        let plain = Policy::parse(
            "b",
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
        )
        .expect("parse");
        assert!(!plain.needs_object_tags());
        let empty_tag = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"s3:ExistingObjectTag/":"x"}}}}"#;
        assert!(Policy::parse("b", empty_tag).is_err(), "a tag key is named");
    }

    #[test]
    fn a_malformed_policy_says_where() {
        for (text, says) in [
            ("not json", "not JSON"),
            ("[]", "JSON object"),
            (r#"{"Statement":[]}"#, "no statement"),
            (r#"{"Version":"2000-01-01","Statement":[]}"#, "Version"),
            (
                r#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b"}]}"#,
                "Statement 1: Effect",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b"},{"Effect":"Allow","Principal":"*","Action":"iam:*","Resource":"arn:aws:s3:::b"}]}"#,
                "Statement 2.Action",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::other/*"}]}"#,
                "Statement 1.Resource",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*"}]}"#,
                "Statement 1 has no Resource",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","NotPrincipal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b"}]}"#,
                "NotPrincipal is not supported",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"x"},"Action":"s3:*","Resource":"arn:aws:s3:::b"}]}"#,
                "Statement 1.Principal",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b","Condition":{"DateEquals":{"aws:CurrentTime":"x"}}}]}"#,
                "DateEquals",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b","Condition":{"IpAddress":{"aws:SourceIp":"300.1.1.1"}}}]}"#,
                "300.1.1.1",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b","Condition":{"StringEquals":{"aws:SourceIp":"1.2.3.4"}}}]}"#,
                "does not apply",
            ),
        ] {
            let e = Policy::parse("b", text).expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn operations_are_named_as_aws_names_their_actions() {
        for (op, named) in [
            ("GetPublicAccessBlock", "s3:GetBucketPublicAccessBlock"),
            ("DeletePublicAccessBlock", "s3:PutBucketPublicAccessBlock"),
            (
                "GetBucketLifecycleConfiguration",
                "s3:GetLifecycleConfiguration",
            ),
            ("DeleteBucketLifecycle", "s3:PutLifecycleConfiguration"),
            (
                "GetObjectLockConfiguration",
                "s3:GetBucketObjectLockConfiguration",
            ),
            (
                "DeleteBucketOwnershipControls",
                "s3:PutBucketOwnershipControls",
            ),
            ("GetObject", "s3:GetObject"),
        ] {
            assert_eq!(action(op), named, "{op}");
        }
        assert_eq!(
            version_action("DeleteObject"),
            Some("s3:DeleteObjectVersion")
        );
        assert_eq!(version_action("PutObject"), None);
    }

    #[test]
    fn a_version_action_applies_to_a_request_naming_a_version() {
        let policy = Policy::parse(
            "b",
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Deny","Principal":"*","Action":"s3:DeleteObjectVersion","Resource":"arn:aws:s3:::b/*"}]}"#,
        )
        .expect("parse");
        let plain = facts(Some("k"), "s3:DeleteObject", "arn:aws:s3:::b/x");
        assert_eq!(policy.evaluate(&plain), Decision::Silent);
        let versioned = Facts {
            version_action: Some("s3:DeleteObjectVersion"),
            ..plain
        };
        assert_eq!(policy.evaluate(&versioned), Decision::Deny);
    }
}
