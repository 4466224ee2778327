//! Bucket lifecycle configuration: Put, Get and Delete. The rules are
//! checked here against what AWS accepts and what Arbor applies, stored in
//! meta, and applied there by the lifecycle batches a background task
//! proposes (docs/design.md, "Lifecycle").

use arbor_meta::MetaError;
use arbor_meta::lifecycle::{
    DeleteBucketLifecycle, GetBucketLifecycle, GetBucketLifecycleRules, PutBucketLifecycle,
    PutBucketLifecycleRules,
};
use arbor_meta::limits::{
    LIFECYCLE_FILTER_TAGS_MAX, LIFECYCLE_RULE_ID_LEN_MAX, LIFECYCLE_RULES_MAX,
};
use arbor_meta::namespace::DAY_MS;
use arbor_meta::records::ObjectVersion;
use arbor_meta::records::lifecycle::{
    LifecycleConfig, LifecycleFilter, LifecycleRule as Rule, LifecycleRules,
};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::{Arbor, record_target, tagging, time};
use crate::error;
use crate::keyring::Keyring;

/// AWS's bound on NewerNoncurrentVersions.
const NEWER_NONCURRENT_VERSIONS_MAX: i32 = 100;

fn malformed() -> S3Error {
    s3_error!(
        MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema"
    )
}

fn invalid_argument(message: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, message.to_owned())
}

/// A count of days AWS wants positive.
fn positive_days(days: Option<i32>, message: &str) -> S3Result<Option<u32>> {
    match days {
        None => Ok(None),
        Some(days) => match u32::try_from(days) {
            Ok(days) if days > 0 => Ok(Some(days)),
            _ => Err(invalid_argument(message)),
        },
    }
}

/// An ID for a rule sent without one: 24 random bytes, URL-safe base64.
fn generated_id() -> String {
    use base64::Engine as _;
    use rand::Rng as _;
    let bytes: [u8; 24] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A size bound of a filter: AWS wants it not negative.
fn size_bound(bytes: Option<i64>) -> S3Result<Option<u64>> {
    bytes
        .map(|bytes| {
            u64::try_from(bytes).map_err(|_| {
                invalid_argument("ObjectSizeGreaterThan and ObjectSizeLessThan cannot be negative")
            })
        })
        .transpose()
}

/// A rule's `<Filter>`: its prefix and the rest. A filter names one of
/// Prefix, Tag, ObjectSizeGreaterThan, ObjectSizeLessThan or And (or
/// nothing: every key).
fn filter_of(filter: LifecycleRuleFilter) -> S3Result<(String, LifecycleFilter)> {
    let named = [
        filter.prefix.is_some(),
        filter.tag.is_some(),
        filter.object_size_greater_than.is_some(),
        filter.object_size_less_than.is_some(),
        filter.and.is_some(),
    ];
    if named.iter().filter(|n| **n).count() > 1 {
        return Err(malformed());
    }
    let (prefix, tags, greater, less, and) = match filter.and {
        Some(and) => (
            and.prefix,
            and.tags.unwrap_or_default(),
            and.object_size_greater_than,
            and.object_size_less_than,
            true,
        ),
        None => (
            filter.prefix,
            filter.tag.into_iter().collect(),
            filter.object_size_greater_than,
            filter.object_size_less_than,
            false,
        ),
    };
    if tags.len() > LIFECYCLE_FILTER_TAGS_MAX {
        return Err(invalid_argument(
            "A lifecycle filter can name at most 50 tags",
        ));
    }
    if tags.iter().any(|t| t.key.is_none()) {
        return Err(malformed());
    }
    let tags = tagging::validate_filter(tagging::pairs(tags))?;
    let filter = LifecycleFilter {
        tags,
        size_greater_than: size_bound(greater)?,
        size_less_than: size_bound(less)?,
        and,
    };
    if let (Some(greater), Some(less)) = (filter.size_greater_than, filter.size_less_than)
        && greater >= less
    {
        return Err(invalid_argument(
            "ObjectSizeGreaterThan must be less than ObjectSizeLessThan",
        ));
    }
    Ok((prefix.unwrap_or_default(), filter))
}

/// One rule as S3 sends it, checked, with its filter beside the prefix;
/// what Arbor does not apply is refused, never stored.
fn rule_of(rule: LifecycleRule) -> S3Result<(Rule, LifecycleFilter)> {
    let enabled = match rule.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => return Err(malformed()),
    };
    if rule.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || rule
            .noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            NotImplemented,
            "Lifecycle transitions are not implemented: Arbor has one storage class"
        ));
    }
    // A rule sent without an ID gets one, as AWS gives it.
    let id = rule
        .id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(generated_id);
    if id.len() > LIFECYCLE_RULE_ID_LEN_MAX {
        return Err(invalid_argument(
            "ID length should not exceed allowed limit of 255",
        ));
    }
    let (prefix, legacy_prefix, filter) = match (rule.filter, rule.prefix) {
        (Some(_), Some(_)) | (None, None) => return Err(malformed()),
        (None, Some(prefix)) => (prefix, true, LifecycleFilter::default()),
        (Some(filter), None) => {
            let (prefix, filter) = filter_of(filter)?;
            (prefix, false, filter)
        }
    };
    if prefix.len() > arbor_meta::limits::KEY_LEN_MAX {
        return Err(invalid_argument("The prefix is longer than a key can be"));
    }
    let mut out = Rule {
        id,
        enabled,
        prefix,
        legacy_prefix,
        ..Rule::default()
    };
    if let Some(expiration) = rule.expiration {
        let marker = expiration.expired_object_delete_marker;
        if marker.is_some() && (expiration.days.is_some() || expiration.date.is_some()) {
            return Err(invalid_argument(
                "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy.",
            ));
        }
        if expiration.days.is_some() && expiration.date.is_some() {
            return Err(malformed());
        }
        out.expiration_days = positive_days(
            expiration.days,
            "'Days' for Expiration action must be a positive integer",
        )?;
        if let Some(date) = &expiration.date {
            let ms = time::millis(date);
            if ms.rem_euclid(DAY_MS) != 0 {
                return Err(invalid_argument("'Date' must be at midnight GMT"));
            }
            out.expiration_date_ms = Some(ms);
        }
        out.expired_object_delete_marker = marker.unwrap_or(false);
        if marker.is_none() && expiration.days.is_none() && expiration.date.is_none() {
            return Err(malformed());
        }
    }
    if let Some(noncurrent) = rule.noncurrent_version_expiration {
        let Some(days) = noncurrent.noncurrent_days else {
            return Err(malformed());
        };
        out.noncurrent_days = positive_days(
            Some(days),
            "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
        )?;
        if let Some(newer) = noncurrent.newer_noncurrent_versions {
            if !(1..=NEWER_NONCURRENT_VERSIONS_MAX).contains(&newer) {
                return Err(invalid_argument(
                    "'NewerNoncurrentVersions' for NoncurrentVersionExpiration action must be a positive integer up to 100",
                ));
            }
            out.newer_noncurrent_versions = u32::try_from(newer).ok();
        }
    }
    if let Some(abort) = rule.abort_incomplete_multipart_upload {
        let Some(days) = abort.days_after_initiation else {
            return Err(malformed());
        };
        out.abort_upload_days = positive_days(
            Some(days),
            "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer",
        )?;
    }
    if !out.has_action() {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "At least one action needs to be specified in a rule".to_owned(),
        ));
    }
    let by_version = !filter.tags.is_empty()
        || filter.size_greater_than.is_some()
        || filter.size_less_than.is_some();
    if by_version && out.abort_upload_days.is_some() {
        let by = if filter.tags.is_empty() {
            "an object size filter"
        } else {
            "Tags"
        };
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            format!("AbortIncompleteMultipartUpload cannot be specified with {by}."),
        ));
    }
    if !filter.tags.is_empty() && out.expired_object_delete_marker {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "ExpiredObjectDeleteMarker cannot be specified with Tags.".to_owned(),
        ));
    }
    Ok((out, filter))
}

/// The configuration S3 sent, checked rule by rule.
fn config_of(configuration: Option<BucketLifecycleConfiguration>) -> S3Result<LifecycleRules> {
    let Some(configuration) = configuration else {
        return Err(malformed());
    };
    if configuration.rules.is_empty() || configuration.rules.len() > LIFECYCLE_RULES_MAX {
        return Err(malformed());
    }
    let mut rules = Vec::with_capacity(configuration.rules.len());
    let mut filters = Vec::with_capacity(configuration.rules.len());
    for rule in configuration.rules {
        let (rule, filter) = rule_of(rule)?;
        if !rule.id.is_empty() && rules.iter().any(|r: &Rule| r.id == rule.id) {
            return Err(invalid_argument(
                "Rule ID must be unique. Found same ID for more than one rule",
            ));
        }
        rules.push(rule);
        filters.push(filter);
    }
    Ok(LifecycleRules {
        config: LifecycleConfig { rules },
        filters,
    })
}

/// A stored filter as S3 answers it, in the form it came in.
fn filter_answer(prefix: String, filter: LifecycleFilter) -> LifecycleRuleFilter {
    let greater = filter.size_greater_than.and_then(|b| i64::try_from(b).ok());
    let less = filter.size_less_than.and_then(|b| i64::try_from(b).ok());
    if filter.and {
        return LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                object_size_greater_than: greater,
                object_size_less_than: less,
                prefix: (!prefix.is_empty()).then_some(prefix),
                tags: (!filter.tags.is_empty()).then(|| tagging::to_tag_set(filter.tags)),
            }),
            ..LifecycleRuleFilter::default()
        };
    }
    let tag = tagging::to_tag_set(filter.tags).into_iter().next();
    let by_other = tag.is_some() || greater.is_some() || less.is_some();
    LifecycleRuleFilter {
        object_size_greater_than: greater,
        object_size_less_than: less,
        prefix: (!by_other).then_some(prefix),
        tag,
        and: None,
    }
}

/// A stored rule as S3 answers it.
fn answer_of(rule: Rule, filter: LifecycleFilter) -> LifecycleRule {
    let (filter, prefix) = if rule.legacy_prefix {
        (None, Some(rule.prefix))
    } else {
        (Some(filter_answer(rule.prefix, filter)), None)
    };
    let expiration = (rule.expiration_days.is_some()
        || rule.expiration_date_ms.is_some()
        || rule.expired_object_delete_marker)
        .then(|| LifecycleExpiration {
            date: rule.expiration_date_ms.map(time::timestamp),
            days: rule.expiration_days.and_then(|d| i32::try_from(d).ok()),
            expired_object_delete_marker: rule.expired_object_delete_marker.then_some(true),
        });
    let noncurrent_version_expiration =
        rule.noncurrent_days
            .map(|days| NoncurrentVersionExpiration {
                noncurrent_days: i32::try_from(days).ok(),
                newer_noncurrent_versions: rule
                    .newer_noncurrent_versions
                    .and_then(|n| i32::try_from(n).ok()),
            });
    let abort_incomplete_multipart_upload =
        rule.abort_upload_days
            .map(|days| AbortIncompleteMultipartUpload {
                days_after_initiation: i32::try_from(days).ok(),
            });
    LifecycleRule {
        abort_incomplete_multipart_upload,
        expiration,
        filter,
        id: (!rule.id.is_empty()).then_some(rule.id),
        noncurrent_version_expiration,
        noncurrent_version_transitions: None,
        prefix,
        status: ExpirationStatus::from_static(if rule.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        transitions: None,
    }
}

/// Drops this gateway's cached copy of the bucket's rules.
fn forget(extensions: &http::Extensions, bucket: &str) {
    if let Some(keyring) = extensions.get::<Keyring>() {
        keyring.forget_lifecycle(bucket);
    }
}

/// When a current version expires under `rules`, and by which rule: the
/// earliest of the enabled rules with an Expiration (Days or Date) that
/// cover it, by prefix and filter. Days end at the next midnight UTC after
/// the version's time plus the days, as the rules are applied
/// (docs/design.md, "Lifecycle"); a day is 24 hours here, whatever
/// `lifecycle_day_secs` makes it for the background pass.
fn expiry<'r>(
    rules: &'r LifecycleRules,
    key: &str,
    last_modified_ms: i64,
    size: u64,
    tags: &[(String, String)],
) -> Option<(i64, &'r str)> {
    rules
        .iter()
        .filter(|(rule, filter)| {
            rule.enabled && key.starts_with(rule.prefix.as_str()) && filter.matches(size, tags)
        })
        .filter_map(|(rule, _)| {
            let by_days = rule.expiration_days.map(|days| {
                let end = last_modified_ms.saturating_add(i64::from(days).saturating_mul(DAY_MS));
                end.saturating_add(DAY_MS - 1)
                    .div_euclid(DAY_MS)
                    .saturating_mul(DAY_MS)
            });
            let at = match (by_days, rule.expiration_date_ms) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b)?,
            };
            Some((at, rule.id.as_str()))
        })
        .min_by_key(|(at, _)| *at)
}

/// The `x-amz-expiration` header S3 answers PutObject, GetObject and
/// HeadObject of a current version with when a lifecycle rule will expire
/// it: `expiry-date="<HTTP date>", rule-id="<URL-encoded ID>"`. Read
/// through the gateway's cache of the bucket's rules (at most a second
/// old); the header only informs, so a failed read leaves it out.
pub(super) async fn expiration(
    extensions: &http::Extensions,
    bucket: &str,
    key: &str,
    version: &ObjectVersion,
) -> Option<String> {
    let keyring = extensions.get::<Keyring>()?;
    let rules = match keyring.lifecycle_rules(bucket).await {
        Ok(rules) => rules?,
        Err(e) => {
            tracing::debug!(error = %e, "lifecycle rules unread: no x-amz-expiration");
            return None;
        }
    };
    let (at, id) = expiry(
        &rules,
        key,
        version.last_modified_ms,
        version.size,
        &version.tags,
    )?;
    let mut date = Vec::new();
    time::timestamp(at)
        .format(TimestampFormat::HttpDate, &mut date)
        .ok()?;
    let date = String::from_utf8(date).ok()?;
    Some(format!(
        "expiry-date=\"{date}\", rule-id=\"{}\"",
        urlencoding::encode(id)
    ))
}

pub async fn put(
    s3: &Arbor,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let bucket = req.input.bucket;
    record_target("PutBucketLifecycleConfiguration", &bucket, None);
    let minimum_size = transition_minimum_size(
        req.input
            .transition_default_minimum_object_size
            .as_ref()
            .map(TransitionDefaultMinimumObjectSize::as_str),
    );
    let rules = config_of(req.input.lifecycle_configuration)?;
    // A configuration of prefixes only is the command every release
    // applies (docs/OPERATING.md, "Upgrading a metadata group").
    let written = if rules.filters.iter().all(LifecycleFilter::is_empty) {
        s3.meta()
            .write(PutBucketLifecycle {
                bucket: bucket.clone(),
                config: rules.config,
            })
            .await
    } else {
        s3.meta()
            .write(PutBucketLifecycleRules {
                bucket: bucket.clone(),
                rules,
            })
            .await
    };
    forget(&req.extensions, &bucket);
    written.map_err(error::from_meta)?;
    Ok(S3Response::new(PutBucketLifecycleConfigurationOutput {
        transition_default_minimum_object_size: Some(minimum_size),
    }))
}

/// The `x-amz-transition-default-minimum-object-size` a lifecycle
/// configuration is answered with: the one asked for, else S3's default,
/// `all_storage_classes_128K`. It only matters to transitions, which
/// Arbor does not make, so it is not kept: GetBucketLifecycleConfiguration
/// answers the default, as S3 does for a configuration put without one
/// (Terraform reads it back, and sees a change where it is missing).
fn transition_minimum_size(asked: Option<&str>) -> TransitionDefaultMinimumObjectSize {
    match asked {
        Some(TransitionDefaultMinimumObjectSize::VARIES_BY_STORAGE_CLASS) => {
            TransitionDefaultMinimumObjectSize::from_static(
                TransitionDefaultMinimumObjectSize::VARIES_BY_STORAGE_CLASS,
            )
        }
        _ => TransitionDefaultMinimumObjectSize::from_static(
            TransitionDefaultMinimumObjectSize::ALL_STORAGE_CLASSES_128K,
        ),
    }
}

pub async fn get(
    s3: &Arbor,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let bucket = req.input.bucket;
    record_target("GetBucketLifecycleConfiguration", &bucket, None);
    let read = match s3
        .meta()
        .read(GetBucketLifecycleRules {
            bucket: bucket.clone(),
        })
        .await
    {
        Err(e) if !matches!(e, MetaError::NoSuchBucket(_)) => {
            // A metadata leader of an earlier release does not know the
            // read; it has no filters to answer either.
            tracing::debug!(error = %e, "reading the lifecycle rules as before");
            s3.meta()
                .read(GetBucketLifecycle { bucket })
                .await
                .map(|config| {
                    config.map(|config| LifecycleRules {
                        config,
                        filters: Vec::new(),
                    })
                })
        }
        read => read,
    };
    let LifecycleRules { config, filters } = read.map_err(error::from_meta)?.ok_or_else(|| {
        s3_error!(
            NoSuchLifecycleConfiguration,
            "The lifecycle configuration does not exist"
        )
    })?;
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
        transition_default_minimum_object_size: Some(transition_minimum_size(None)),
        rules: Some(
            config
                .rules
                .into_iter()
                .enumerate()
                .map(|(i, rule)| {
                    let filter = filters.get(i).cloned().unwrap_or_default();
                    answer_of(rule, filter)
                })
                .collect(),
        ),
    }))
}

pub async fn delete(
    s3: &Arbor,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    let bucket = req.input.bucket;
    record_target("DeleteBucketLifecycle", &bucket, None);
    let written = s3
        .meta()
        .write(DeleteBucketLifecycle {
            bucket: bucket.clone(),
        })
        .await;
    forget(&req.extensions, &bucket);
    written.map_err(error::from_meta)?;
    let mut response = S3Response::new(DeleteBucketLifecycleOutput::default());
    response.status = Some(http::StatusCode::NO_CONTENT);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expiring(days: i32) -> LifecycleExpiration {
        LifecycleExpiration {
            days: Some(days),
            ..LifecycleExpiration::default()
        }
    }

    fn base() -> LifecycleRule {
        LifecycleRule {
            abort_incomplete_multipart_upload: None,
            expiration: Some(expiring(1)),
            filter: Some(LifecycleRuleFilter::default()),
            id: Some("r".to_owned()),
            noncurrent_version_expiration: None,
            noncurrent_version_transitions: None,
            prefix: None,
            status: ExpirationStatus::from_static(ExpirationStatus::ENABLED),
            transitions: None,
        }
    }

    fn code(rule: LifecycleRule) -> Option<String> {
        rule_of(rule).err().map(|e| e.code().as_str().to_owned())
    }

    #[test]
    fn an_empty_filter_covers_every_key_and_the_older_prefix_is_kept_as_given() {
        let (rule, filter) = rule_of(base()).expect("rule");
        assert!(filter.is_empty());
        assert_eq!(rule.prefix, "");
        assert!(!rule.legacy_prefix && rule.enabled);
        let (legacy, filter) = rule_of(LifecycleRule {
            filter: None,
            prefix: Some("logs/".to_owned()),
            ..base()
        })
        .expect("legacy");
        assert!(filter.is_empty());
        assert_eq!(
            (legacy.prefix.as_str(), legacy.legacy_prefix),
            ("logs/", true)
        );
        let answered = answer_of(legacy, LifecycleFilter::default());
        assert_eq!(answered.prefix.as_deref(), Some("logs/"));
        assert!(answered.filter.is_none());
    }

    #[test]
    fn what_is_not_applied_or_not_valid_is_refused_with_aws_codes() {
        let cases = [
            (
                LifecycleRule {
                    prefix: Some("a".to_owned()),
                    ..base()
                },
                "MalformedXML",
            ),
            (
                LifecycleRule {
                    filter: None,
                    ..base()
                },
                "MalformedXML",
            ),
            (
                LifecycleRule {
                    status: ExpirationStatus::from("enabled".to_owned()),
                    ..base()
                },
                "MalformedXML",
            ),
            (
                LifecycleRule {
                    expiration: Some(expiring(-1)),
                    ..base()
                },
                "InvalidArgument",
            ),
            (
                LifecycleRule {
                    expiration: Some(LifecycleExpiration {
                        date: Some(time::timestamp(DAY_MS + 1)),
                        ..LifecycleExpiration::default()
                    }),
                    ..base()
                },
                "InvalidArgument",
            ),
            (
                LifecycleRule {
                    expiration: None,
                    noncurrent_version_expiration: Some(NoncurrentVersionExpiration {
                        noncurrent_days: Some(1),
                        newer_noncurrent_versions: Some(101),
                    }),
                    ..base()
                },
                "InvalidArgument",
            ),
            (
                LifecycleRule {
                    expiration: None,
                    ..base()
                },
                "InvalidRequest",
            ),
            (
                LifecycleRule {
                    filter: Some(LifecycleRuleFilter {
                        object_size_greater_than: Some(10),
                        prefix: Some("a".to_owned()),
                        ..LifecycleRuleFilter::default()
                    }),
                    ..base()
                },
                "MalformedXML",
            ),
            (
                filtered(LifecycleRuleFilter {
                    object_size_less_than: Some(-1),
                    ..LifecycleRuleFilter::default()
                }),
                "InvalidArgument",
            ),
            (
                filtered(and(None, vec![tag("a", "1")], Some(10), Some(10))),
                "InvalidArgument",
            ),
            (
                filtered(and(None, vec![tag("a", "1"), tag("a", "2")], None, None)),
                "InvalidTag",
            ),
            (
                filtered(LifecycleRuleFilter {
                    tag: Some(Tag {
                        key: None,
                        value: Some("v".to_owned()),
                    }),
                    ..LifecycleRuleFilter::default()
                }),
                "MalformedXML",
            ),
            (
                LifecycleRule {
                    abort_incomplete_multipart_upload: Some(AbortIncompleteMultipartUpload {
                        days_after_initiation: Some(1),
                    }),
                    ..filtered(and(Some("p/"), vec![tag("a", "1")], None, None))
                },
                "InvalidRequest",
            ),
            (
                LifecycleRule {
                    abort_incomplete_multipart_upload: Some(AbortIncompleteMultipartUpload {
                        days_after_initiation: Some(1),
                    }),
                    ..filtered(LifecycleRuleFilter {
                        object_size_greater_than: Some(1),
                        ..LifecycleRuleFilter::default()
                    })
                },
                "InvalidRequest",
            ),
            (
                LifecycleRule {
                    expiration: Some(LifecycleExpiration {
                        expired_object_delete_marker: Some(true),
                        ..LifecycleExpiration::default()
                    }),
                    ..filtered(LifecycleRuleFilter {
                        tag: Some(tag("a", "1")),
                        ..LifecycleRuleFilter::default()
                    })
                },
                "InvalidRequest",
            ),
        ];
        for (rule, expected) in cases {
            assert_eq!(code(rule.clone()).as_deref(), Some(expected), "{rule:?}");
        }
        let (date, _) = rule_of(LifecycleRule {
            expiration: Some(LifecycleExpiration {
                date: Some(time::timestamp(3 * DAY_MS)),
                ..LifecycleExpiration::default()
            }),
            ..base()
        })
        .expect("a midnight date");
        assert_eq!(date.expiration_date_ms, Some(3 * DAY_MS));
    }

    #[test]
    fn the_expiry_is_the_earliest_covering_rule_at_midnight() {
        let rule = |id: &str, prefix: &str, days: Option<u32>, date: Option<i64>| Rule {
            id: id.to_owned(),
            enabled: true,
            prefix: prefix.to_owned(),
            expiration_days: days,
            expiration_date_ms: date,
            ..Rule::default()
        };
        let tagged = LifecycleFilter {
            tags: vec![("t".into(), "1".into())],
            ..LifecycleFilter::default()
        };
        let mut disabled = rule("off", "", Some(1), None);
        disabled.enabled = false;
        let mut noncurrent = rule("noncurrent", "", None, None);
        noncurrent.noncurrent_days = Some(1);
        let rules = LifecycleRules {
            config: LifecycleConfig {
                rules: vec![
                    disabled,
                    noncurrent,
                    rule("logs", "logs/", Some(3), None),
                    rule("tagged", "", Some(2), None),
                    rule("dated", "logs/old", None, Some(10 * DAY_MS)),
                ],
            },
            filters: vec![
                LifecycleFilter::default(),
                LifecycleFilter::default(),
                LifecycleFilter::default(),
                tagged,
                LifecycleFilter::default(),
            ],
        };
        let noon = 5 * DAY_MS + DAY_MS / 2;
        // Days 5.5 + 3 end at the midnight after: day 9.
        assert_eq!(
            expiry(&rules, "logs/a", noon, 1, &[]),
            Some((9 * DAY_MS, "logs"))
        );
        // At midnight exactly, no rounding.
        assert_eq!(
            expiry(&rules, "logs/a", 5 * DAY_MS, 1, &[]),
            Some((8 * DAY_MS, "logs"))
        );
        // The tagged rule only with its tag; the earliest wins.
        let tags = vec![("t".to_owned(), "1".to_owned())];
        assert_eq!(
            expiry(&rules, "logs/a", noon, 1, &tags),
            Some((8 * DAY_MS, "tagged"))
        );
        assert_eq!(expiry(&rules, "other", noon, 1, &[]), None);
        // A date before the days' end.
        assert_eq!(
            expiry(&rules, "logs/old/x", 8 * DAY_MS, 1, &[]),
            Some((10 * DAY_MS, "dated"))
        );
    }

    fn tag(key: &str, value: &str) -> Tag {
        Tag {
            key: Some(key.to_owned()),
            value: Some(value.to_owned()),
        }
    }

    fn and(
        prefix: Option<&str>,
        tags: Vec<Tag>,
        greater: Option<i64>,
        less: Option<i64>,
    ) -> LifecycleRuleFilter {
        LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                object_size_greater_than: greater,
                object_size_less_than: less,
                prefix: prefix.map(str::to_owned),
                tags: Some(tags),
            }),
            ..LifecycleRuleFilter::default()
        }
    }

    fn filtered(filter: LifecycleRuleFilter) -> LifecycleRule {
        LifecycleRule {
            filter: Some(filter),
            ..base()
        }
    }

    /// Every form of filter is stored as it came and answered the same way.
    #[test]
    fn filters_by_tag_and_size_come_back_in_the_form_they_were_sent() {
        let forms = [
            LifecycleRuleFilter {
                prefix: Some("logs/".to_owned()),
                ..LifecycleRuleFilter::default()
            },
            LifecycleRuleFilter {
                tag: Some(tag("tier", "")),
                ..LifecycleRuleFilter::default()
            },
            LifecycleRuleFilter {
                object_size_greater_than: Some(0),
                ..LifecycleRuleFilter::default()
            },
            LifecycleRuleFilter {
                object_size_less_than: Some(1 << 40),
                ..LifecycleRuleFilter::default()
            },
            and(
                Some("p/"),
                vec![tag("b", "2"), tag("a", "1")],
                Some(5),
                Some(9),
            ),
            and(None, vec![tag("a", "1")], None, None),
            and(Some("only/"), Vec::new(), None, None),
        ];
        for form in forms {
            let (rule, filter) = rule_of(filtered(form.clone())).expect("valid");
            let answered = answer_of(rule, filter).filter.expect("a filter");
            let mut expected = form;
            if let Some(and) = &mut expected.and {
                // Tags come back sorted by key; an empty list as none.
                if let Some(tags) = &mut and.tags {
                    tags.sort_by(|a, b| a.key.cmp(&b.key));
                }
                if and.tags.as_ref().is_some_and(Vec::is_empty) {
                    and.tags = None;
                }
            }
            assert_eq!(format!("{answered:?}"), format!("{expected:?}"));
        }
        let (rule, filter) = rule_of(filtered(and(
            Some("p/"),
            vec![tag("b", "2"), tag("a", "1")],
            Some(5),
            None,
        )))
        .expect("valid");
        assert_eq!(rule.prefix, "p/");
        assert_eq!(
            filter,
            LifecycleFilter {
                tags: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
                size_greater_than: Some(5),
                size_less_than: None,
                and: true,
            }
        );
    }

    #[test]
    fn rule_ids_are_unique_and_rules_bounded() {
        // A rule without an ID gets a fresh one.
        let (a, _) = rule_of(LifecycleRule { id: None, ..base() }).expect("no id");
        let (b, _) = rule_of(LifecycleRule {
            id: Some(String::new()),
            ..base()
        })
        .expect("empty id");
        assert_eq!((a.id.len(), b.id.len()), (32, 32));
        assert_ne!(a.id, b.id);
        let two = BucketLifecycleConfiguration {
            rules: vec![base(), base()],
        };
        let e = config_of(Some(two)).expect_err("duplicate");
        assert_eq!(e.code(), &S3ErrorCode::InvalidArgument);
        let many = BucketLifecycleConfiguration {
            rules: (0..=LIFECYCLE_RULES_MAX)
                .map(|i| LifecycleRule {
                    id: Some(i.to_string()),
                    ..base()
                })
                .collect(),
        };
        let e = config_of(Some(many)).expect_err("too many");
        assert_eq!(e.code(), &S3ErrorCode::MalformedXML);
        assert!(config_of(None).is_err());
    }
}
