//! Object Lock: a bucket's configuration (enabled at creation or on a
//! versioned bucket, with a default retention), and each version's
//! retention and legal hold. The metadata service enforces them when a
//! version is to go (docs/design.md, "Object Lock"); this module only
//! translates.

use arbor_meta::MetaError;
use arbor_meta::namespace::{
    GetObjectLock, GetObjectLockConfig, GetObjectLockRule, ReleaseObjectLegalHold,
    SetObjectLegalHold, SetObjectLockConfig, SetObjectLockConfigInYears, SetObjectRetention,
    SetObjectRetentionStrict,
};
use arbor_meta::records::{LegalHold, LockMode, ObjectLockConfig, Retention, VersionLock};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::object::parse_version_id;
use super::{Arbor, record_target, time};
use crate::error;

/// A year of default retention counts 365 days where a day count is
/// needed (the bound on Years below); the retention itself ends on the
/// anniversary (docs/design.md, "Object Lock").
const DAYS_PER_YEAR: i32 = 365;

/// A default retention's length as PutObjectLockConfiguration gave it.
enum Period {
    Days(u32),
    Years(u32),
}

fn malformed() -> S3Error {
    s3_error!(
        MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema"
    )
}

fn mode_of(mode: Option<&ObjectLockRetentionMode>) -> S3Result<LockMode> {
    match mode.map(ObjectLockRetentionMode::as_str) {
        Some(ObjectLockRetentionMode::GOVERNANCE) => Ok(LockMode::Governance),
        Some(ObjectLockRetentionMode::COMPLIANCE) => Ok(LockMode::Compliance),
        _ => Err(malformed()),
    }
}

fn mode_dto(mode: LockMode) -> ObjectLockRetentionMode {
    ObjectLockRetentionMode::from_static(match mode {
        LockMode::Governance => ObjectLockRetentionMode::GOVERNANCE,
        LockMode::Compliance => ObjectLockRetentionMode::COMPLIANCE,
    })
}

/// The lock a write (PutObject, CopyObject, CreateMultipartUpload) asks
/// for with its `x-amz-object-lock-*` headers; `None` without any. Mode
/// and retain-until date come together or not at all, and the date lies
/// after `now_ms`. The retention replaces the bucket's default one; the
/// metadata command that commits the version sets it (docs/design.md,
/// "Object Lock").
pub(super) fn asked_lock(
    mode: Option<&ObjectLockMode>,
    until: Option<&ObjectLockRetainUntilDate>,
    hold: Option<&ObjectLockLegalHoldStatus>,
    now_ms: i64,
) -> S3Result<Option<VersionLock>> {
    if mode.is_none() && until.is_none() && hold.is_none() {
        return Ok(None);
    }
    let retention = match (mode, until) {
        (None, None) => None,
        (Some(mode), Some(until)) => {
            let mode = match mode.as_str() {
                ObjectLockMode::GOVERNANCE => LockMode::Governance,
                ObjectLockMode::COMPLIANCE => LockMode::Compliance,
                _ => return Err(s3_error!(InvalidArgument, "Unknown wormMode directive.")),
            };
            let until_ms = time::millis(until);
            if until_ms <= now_ms {
                return Err(s3_error!(
                    InvalidArgument,
                    "The retain until date must be in the future!"
                ));
            }
            Some(Retention { mode, until_ms })
        }
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
            ));
        }
    };
    let legal_hold = match hold.map(ObjectLockLegalHoldStatus::as_str) {
        None | Some(ObjectLockLegalHoldStatus::OFF) => false,
        Some(ObjectLockLegalHoldStatus::ON) => true,
        Some(_) => {
            return Err(s3_error!(
                InvalidArgument,
                "Legal Hold must be either of 'ON' or 'OFF'"
            ));
        }
    };
    Ok(Some(VersionLock {
        retention,
        legal_hold: LegalHold::of(legal_hold),
    }))
}

/// A write asking for a lock in a bucket without Object Lock.
fn missing_config() -> S3Error {
    s3_error!(
        InvalidRequest,
        "Bucket is missing Object Lock Configuration"
    )
}

/// Refuses a write asking for a lock (`asked`) in a bucket without Object
/// Lock before its body streams; the metadata command checks again.
pub(super) async fn check_lockable(
    s3: &Arbor,
    bucket: &str,
    asked: Option<&VersionLock>,
) -> S3Result<()> {
    if asked.is_none() {
        return Ok(());
    }
    let read = s3
        .meta()
        .read(GetObjectLockConfig {
            bucket: bucket.to_owned(),
        })
        .await;
    match read {
        Ok(_) => Ok(()),
        Err(e) => Err(write_error(e)),
    }
}

/// S3 takes a body that locks its version (a PutObject with Object Lock
/// headers, a part of an upload created with them) only with a digest of
/// it: `Content-MD5`, or an `x-amz-checksum-` header, trailer or
/// `x-amz-sdk-checksum-algorithm`. `request` names it in the refusal
/// ("Put Object", "Put Part").
pub(super) fn require_digest(
    locks: bool,
    md5: Option<&[u8; 16]>,
    checksum: Option<&crate::s3::checksum::Expectation>,
    request: &str,
) -> S3Result<()> {
    if locks && md5.is_none() && checksum.is_none() {
        return Err(s3s::s3_error!(
            InvalidRequest,
            "Content-MD5 OR x-amz-checksum- HTTP header is required for {request} requests with Object Lock parameters"
        ));
    }
    Ok(())
}

/// The S3 error for a refused write, or a version's retention or legal
/// hold read: in a bucket without Object Lock that is 400 InvalidRequest,
/// not GetObjectLockConfiguration's 404.
pub(super) fn write_error(e: MetaError) -> S3Error {
    match e {
        MetaError::NoObjectLockConfig(_) => missing_config(),
        e => error::from_meta(e),
    }
}

/// Sets the Object Lock fields GetObject and HeadObject answer with for a
/// version that has them.
macro_rules! describe_lock {
    ($output:expr, $lock:expr) => {{
        let lock: &arbor_meta::records::VersionLock = $lock;
        if let Some(retention) = lock.retention {
            $output.object_lock_mode = Some(ObjectLockMode::from_static(match retention.mode {
                arbor_meta::records::LockMode::Governance => ObjectLockMode::GOVERNANCE,
                arbor_meta::records::LockMode::Compliance => ObjectLockMode::COMPLIANCE,
            }));
            $output.object_lock_retain_until_date = Some(time::timestamp(retention.until_ms));
        }
        if lock.legal_hold.is_on() {
            $output.object_lock_legal_hold_status = Some(ObjectLockLegalHoldStatus::from_static(
                ObjectLockLegalHoldStatus::ON,
            ));
        }
    }};
}
pub(super) use describe_lock;

pub async fn put_config(
    s3: &Arbor,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let input = req.input;
    record_target("PutObjectLockConfiguration", &input.bucket, None);
    let config = input.object_lock_configuration.ok_or_else(malformed)?;
    if config
        .object_lock_enabled
        .as_ref()
        .map(ObjectLockEnabled::as_str)
        != Some(ObjectLockEnabled::ENABLED)
    {
        return Err(malformed());
    }
    let period = match config.rule.and_then(|rule| rule.default_retention) {
        None => None,
        Some(retention) => {
            let mode = mode_of(retention.mode.as_ref())?;
            let period = match (retention.days, retention.years) {
                // AWS's schema allows one of them.
                (Some(_), Some(_)) => return Err(malformed()),
                (Some(days), None) if days > 0 => u32::try_from(days).ok().map(Period::Days),
                // Years whose days count in an `i32`, as S3's Days do.
                (None, Some(years)) if years > 0 => years
                    .checked_mul(DAYS_PER_YEAR)
                    .and_then(|_| u32::try_from(years).ok())
                    .map(Period::Years),
                _ => None,
            }
            .ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    "Default retention period must be a positive integer value."
                )
            })?;
            Some((mode, period))
        }
    };
    let bucket = input.bucket;
    let written = match period {
        // A rule in years is a command of a later release: proposed only
        // for it (docs/OPERATING.md, "Upgrading a metadata group").
        Some((mode, Period::Years(years))) => {
            s3.meta()
                .write(SetObjectLockConfigInYears {
                    bucket,
                    mode,
                    years,
                })
                .await
        }
        Some((mode, Period::Days(days))) => {
            s3.meta()
                .write(SetObjectLockConfig {
                    bucket,
                    config: ObjectLockConfig {
                        default: Some((mode, days)),
                    },
                })
                .await
        }
        None => {
            s3.meta()
                .write(SetObjectLockConfig {
                    bucket,
                    config: ObjectLockConfig { default: None },
                })
                .await
        }
    };
    written.map_err(|e| match e {
        // The command's outcome for an unversioned bucket, kept as
        // every release's replicas remember it; S3 answers 409.
        MetaError::VersionedBucket(_) => s3_error!(
            InvalidBucketState,
            "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
        ),
        e => error::from_meta(e),
    })?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

pub async fn get_config(
    s3: &Arbor,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let input = req.input;
    record_target("GetObjectLockConfiguration", &input.bucket, None);
    let stored = s3
        .meta()
        .read(GetObjectLockRule {
            bucket: input.bucket,
        })
        .await
        .map_err(error::from_meta)?;
    // As it was given: in years, or in days.
    let rule = stored.config.default.map(|(mode, days)| ObjectLockRule {
        default_retention: Some(DefaultRetention {
            days: match stored.years {
                Some(_) => None,
                None => i32::try_from(days).ok(),
            },
            mode: Some(mode_dto(mode)),
            years: stored.years.and_then(|years| i32::try_from(years).ok()),
        }),
    });
    Ok(S3Response::new(GetObjectLockConfigurationOutput {
        object_lock_configuration: Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
            rule,
        }),
    }))
}

pub async fn put_retention(
    s3: &Arbor,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let input = req.input;
    record_target("PutObjectRetention", &input.bucket, Some(&input.key));
    let now_ms = s3.now_ms();
    // An empty Retention removes it (GOVERNANCE only, with the bypass).
    let retention = match input.retention {
        Some(ObjectLockRetention {
            mode: None,
            retain_until_date: None,
        })
        | None => None,
        Some(r) => {
            let mode = mode_of(r.mode.as_ref())?;
            let until_ms = time::millis(r.retain_until_date.as_ref().ok_or_else(malformed)?);
            if until_ms <= now_ms {
                return Err(s3_error!(
                    InvalidArgument,
                    "The retain until date must be in the future!"
                ));
            }
            Some(Retention { mode, until_ms })
        }
    };
    let change = SetObjectRetention {
        bucket: input.bucket,
        version_id: parse_version_id(input.version_id.as_deref())?,
        key: input.key,
        retention,
        bypass_governance: input.bypass_governance_retention.unwrap_or(false),
        now_ms,
    };
    // The two commands answer otherwise only a switch from a GOVERNANCE
    // retention in force to COMPLIANCE without the bypass: that alone
    // proposes the newer command, and every other request the one older
    // metadata nodes know (docs/OPERATING.md, upgrading), so a COMPLIANCE
    // retention set or lengthened during an upgrade still applies on
    // them. Should a GOVERNANCE retention be set between this read and
    // the write, the older command's rule applies: the retention is still
    // only made stricter.
    let to_compliance = !change.bypass_governance
        && change
            .retention
            .is_some_and(|r| r.mode == LockMode::Compliance);
    let switches_mode = to_compliance
        && version_lock(
            s3,
            change.bucket.clone(),
            change.key.clone(),
            input.version_id.as_deref(),
        )
        .await
        .is_ok_and(|lock| {
            lock.retention
                .is_some_and(|r| r.mode == LockMode::Governance && r.until_ms > now_ms)
        });
    let written = if switches_mode {
        s3.meta().write(SetObjectRetentionStrict(change)).await
    } else {
        s3.meta().write(change).await
    };
    written.map_err(write_error)?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

/// The lock of `bucket/key`'s version `version_id` (the current one when
/// `None`).
async fn version_lock(
    s3: &Arbor,
    bucket: String,
    key: String,
    version_id: Option<&str>,
) -> S3Result<VersionLock> {
    s3.meta()
        .read(GetObjectLock {
            bucket,
            version_id: parse_version_id(version_id)?,
            key,
        })
        .await
        .map_err(write_error)
}

pub async fn get_retention(
    s3: &Arbor,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let input = req.input;
    record_target("GetObjectRetention", &input.bucket, Some(&input.key));
    let lock = version_lock(s3, input.bucket, input.key, input.version_id.as_deref()).await?;
    let Some(retention) = lock.retention else {
        return Err(S3Error::with_message(
            S3ErrorCode::NoSuchObjectLockConfiguration,
            "The specified object does not have a ObjectLock configuration",
        ));
    };
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(mode_dto(retention.mode)),
            retain_until_date: Some(time::timestamp(retention.until_ms)),
        }),
    }))
}

pub async fn put_legal_hold(
    s3: &Arbor,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let input = req.input;
    record_target("PutObjectLegalHold", &input.bucket, Some(&input.key));
    let status = input
        .legal_hold
        .and_then(|hold| hold.status)
        .ok_or_else(malformed)?;
    let version_id = parse_version_id(input.version_id.as_deref())?;
    let written = match status.as_str() {
        ObjectLockLegalHoldStatus::ON => {
            s3.meta()
                .write(SetObjectLegalHold {
                    bucket: input.bucket,
                    version_id,
                    key: input.key,
                    on: true,
                })
                .await
        }
        // Lifted, and remembered so: GetObjectLegalHold answers OFF.
        ObjectLockLegalHoldStatus::OFF => {
            s3.meta()
                .write(ReleaseObjectLegalHold {
                    bucket: input.bucket,
                    version_id,
                    key: input.key,
                })
                .await
        }
        _ => return Err(malformed()),
    };
    written.map_err(write_error)?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub async fn get_legal_hold(
    s3: &Arbor,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let input = req.input;
    record_target("GetObjectLegalHold", &input.bucket, Some(&input.key));
    let lock = version_lock(s3, input.bucket, input.key, input.version_id.as_deref()).await?;
    let status = match lock.legal_hold {
        LegalHold::On => ObjectLockLegalHoldStatus::ON,
        LegalHold::Off => ObjectLockLegalHoldStatus::OFF,
        // As S3 answers of a version never held.
        LegalHold::Never => {
            return Err(S3Error::with_message(
                S3ErrorCode::NoSuchObjectLockConfiguration,
                "The specified object does not have a ObjectLock configuration",
            ));
        }
    };
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold {
            status: Some(ObjectLockLegalHoldStatus::from_static(status)),
        }),
    }))
}
