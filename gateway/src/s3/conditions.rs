//! Conditional requests (RFC 7232 as S3 applies it).
//!
//! Order: If-Match (else If-Unmodified-Since), then If-None-Match (else
//! If-Modified-Since). Dates compare at whole seconds, the precision of
//! `Last-Modified`. On GET and HEAD a failed If-None-Match or
//! If-Modified-Since is `304 Not Modified`; on a copy source every failure
//! is `412 Precondition Failed`. An If-Modified-Since in the future is
//! no condition ([`Conditions::at`]).

use crate::error;
use s3s::dto::{ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode};

/// The four conditional headers of one request.
#[derive(Default)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// Where the conditions apply, which decides the failure codes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Target {
    /// GetObject / HeadObject.
    Read,
    /// The source of CopyObject / UploadPartCopy.
    CopySource,
}

impl Conditions<'_> {
    /// The conditions as they stand at `now_ms`: an If-Modified-Since
    /// later than now is invalid (RFC 2616, section 14.25) and ignored,
    /// as S3 ignores it on a copy source, which it then copies.
    pub fn at(mut self, now_ms: i64) -> Self {
        if let Some(since) = self.if_modified_since
            && seconds(since) > now_ms.div_euclid(1000)
        {
            self.if_modified_since = None;
        }
        self
    }

    /// Checks the conditions against the current version's ETag (hex, no
    /// quotes) and last-modified time.
    pub fn check(&self, target: Target, etag: &str, last_modified_ms: i64) -> Result<(), S3Error> {
        let modified_s = last_modified_ms.div_euclid(1000);
        let failed = |read: &'static str, copy: &'static str| {
            error::precondition_failed(match target {
                Target::Read => read,
                Target::CopySource => copy,
            })
        };
        match self.if_match {
            Some(condition) => {
                if !matches(condition, etag) {
                    return Err(failed("If-Match", "x-amz-copy-source-If-Match"));
                }
            }
            None => {
                if let Some(since) = self.if_unmodified_since
                    && modified_s > seconds(since)
                {
                    return Err(failed(
                        "If-Unmodified-Since",
                        "x-amz-copy-source-If-Unmodified-Since",
                    ));
                }
            }
        }
        let not_modified = |copy: &'static str| match target {
            Target::Read => S3Error::with_message(S3ErrorCode::NotModified, "Not Modified"),
            Target::CopySource => error::precondition_failed(copy),
        };
        match self.if_none_match {
            Some(condition) => {
                if matches(condition, etag) {
                    return Err(not_modified("x-amz-copy-source-If-None-Match"));
                }
            }
            None => {
                if let Some(since) = self.if_modified_since
                    && modified_s <= seconds(since)
                {
                    return Err(not_modified("x-amz-copy-source-If-Modified-Since"));
                }
            }
        }
        Ok(())
    }
}

fn matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition.as_etag() {
        None => true, // `*`: any existing object
        Some(tag) => tag.value() == etag,
    }
}

fn seconds(ts: &Timestamp) -> i64 {
    time::OffsetDateTime::from(ts.clone()).unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::ETag;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from(time::OffsetDateTime::from_unix_timestamp(s).expect("valid"))
    }
    fn tag(v: &str) -> ETagCondition {
        ETagCondition::ETag(ETag::Strong(v.to_owned()))
    }
    fn code(r: Result<(), S3Error>) -> Option<S3ErrorCode> {
        r.err().map(|e| e.code().clone())
    }

    const MODIFIED_MS: i64 = 1_000_500; // 1000.5 s: second 1000

    #[test]
    fn if_match_wins_over_if_unmodified_since() {
        let (good, old) = (tag("abc"), ts(10));
        let c = Conditions {
            if_match: Some(&good),
            if_unmodified_since: Some(&old),
            ..Default::default()
        };
        assert_eq!(code(c.check(Target::Read, "abc", MODIFIED_MS)), None);
        let bad = tag("zzz");
        let c = Conditions {
            if_match: Some(&bad),
            ..Default::default()
        };
        assert_eq!(
            code(c.check(Target::Read, "abc", MODIFIED_MS)),
            Some(S3ErrorCode::PreconditionFailed)
        );
        let c = Conditions {
            if_unmodified_since: Some(&old),
            ..Default::default()
        };
        assert_eq!(
            code(c.check(Target::Read, "abc", MODIFIED_MS)),
            Some(S3ErrorCode::PreconditionFailed)
        );
        let same_second = ts(1000);
        let c = Conditions {
            if_unmodified_since: Some(&same_second),
            ..Default::default()
        };
        assert_eq!(code(c.check(Target::Read, "abc", MODIFIED_MS)), None);
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let (other, future) = (tag("zzz"), ts(5000));
        let c = Conditions {
            if_none_match: Some(&other),
            if_modified_since: Some(&future),
            ..Default::default()
        };
        assert_eq!(code(c.check(Target::Read, "abc", MODIFIED_MS)), None);
        let same = tag("abc");
        let c = Conditions {
            if_none_match: Some(&same),
            ..Default::default()
        };
        assert_eq!(
            code(c.check(Target::Read, "abc", MODIFIED_MS)),
            Some(S3ErrorCode::NotModified)
        );
        assert_eq!(
            code(c.check(Target::CopySource, "abc", MODIFIED_MS)),
            Some(S3ErrorCode::PreconditionFailed)
        );
        let c = Conditions {
            if_none_match: Some(&ETagCondition::Any),
            ..Default::default()
        };
        assert_eq!(
            code(c.check(Target::Read, "abc", MODIFIED_MS)),
            Some(S3ErrorCode::NotModified)
        );
        let same_second = ts(1000);
        let c = Conditions {
            if_modified_since: Some(&same_second),
            ..Default::default()
        };
        assert_eq!(
            code(c.check(Target::Read, "abc", MODIFIED_MS)),
            Some(S3ErrorCode::NotModified)
        );
        let before = ts(999);
        let c = Conditions {
            if_modified_since: Some(&before),
            ..Default::default()
        };
        assert_eq!(code(c.check(Target::Read, "abc", MODIFIED_MS)), None);
    }

    #[test]
    fn an_if_modified_since_in_the_future_is_ignored() {
        let (later, earlier) = (ts(5_000), ts(900));
        let now_ms = 4_000_000;
        for target in [Target::Read, Target::CopySource] {
            let c = Conditions {
                if_modified_since: Some(&later),
                ..Default::default()
            };
            assert!(code(c.check(target, "abc", MODIFIED_MS)).is_some());
            let c = Conditions {
                if_modified_since: Some(&later),
                ..Default::default()
            };
            assert_eq!(code(c.at(now_ms).check(target, "abc", MODIFIED_MS)), None);
            // Modified since a date in the past: still a condition.
            let c = Conditions {
                if_modified_since: Some(&earlier),
                ..Default::default()
            };
            assert_eq!(code(c.at(now_ms).check(target, "abc", MODIFIED_MS)), None);
            let at_it = ts(1_000);
            let c = Conditions {
                if_modified_since: Some(&at_it),
                ..Default::default()
            };
            assert!(code(c.at(now_ms).check(target, "abc", MODIFIED_MS)).is_some());
        }
    }
}
