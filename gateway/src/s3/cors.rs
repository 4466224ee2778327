//! A bucket's CORS configuration: PutBucketCors, GetBucketCors,
//! DeleteBucketCors. The rules are checked here as S3 checks them and
//! stored in one metadata command; `crate::cors` answers browsers with
//! them.

use arbor_meta::access::{GetBucketCors, SetBucketCors};
use arbor_meta::limits::BUCKET_CORS_RULES_MAX;
use arbor_meta::records::CorsRule;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::{Arbor, record_target};
use crate::cors::METHODS;
use crate::error;
use crate::keyring::Keyring;

/// A rule's ID: S3 takes at most 255 characters.
const RULE_ID_LEN_MAX: usize = 255;

/// Drops this gateway's cached copy of the bucket's rules.
fn forget(extensions: &http::Extensions, bucket: &str) {
    if let Some(keyring) = extensions.get::<Keyring>() {
        keyring.forget_cors(bucket);
    }
}

fn malformed() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

fn invalid(message: String) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidRequest, message)
}

/// The rules of `config`, checked as S3 checks them: 1 to 100 rules, each
/// with origins and methods; methods among GET, PUT, POST, DELETE and
/// HEAD; at most one `*` per origin and per allowed header; no `*` in
/// exposed headers.
pub fn checked_rules(config: CORSConfiguration) -> S3Result<Vec<CorsRule>> {
    if config.cors_rules.is_empty() || config.cors_rules.len() > BUCKET_CORS_RULES_MAX {
        return Err(malformed());
    }
    let mut rules = Vec::with_capacity(config.cors_rules.len());
    for rule in config.cors_rules {
        if rule.allowed_methods.is_empty() || rule.allowed_origins.is_empty() {
            return Err(malformed());
        }
        if let Some(method) = rule
            .allowed_methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return Err(invalid(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            )));
        }
        for origin in &rule.allowed_origins {
            if origin.matches('*').count() > 1 {
                return Err(invalid(format!(
                    "AllowedOrigin \"{origin}\" can not have more than one wildcard."
                )));
            }
        }
        let allowed_headers = rule.allowed_headers.unwrap_or_default();
        for header in &allowed_headers {
            if header.matches('*').count() > 1 {
                return Err(invalid(format!(
                    "AllowedHeader \"{header}\" can not have more than one wildcard."
                )));
            }
        }
        let expose_headers = rule.expose_headers.unwrap_or_default();
        if let Some(header) = expose_headers.iter().find(|h| h.contains('*')) {
            return Err(invalid(format!(
                "ExposeHeader \"{header}\" contains wildcard. We currently do not support wildcard for ExposeHeader."
            )));
        }
        if rule
            .id
            .as_ref()
            .is_some_and(|id| id.len() > RULE_ID_LEN_MAX)
        {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                format!("ID length should not exceed allowed limit of {RULE_ID_LEN_MAX}"),
            ));
        }
        if rule.max_age_seconds.is_some_and(|age| age < 0) {
            return Err(malformed());
        }
        rules.push(CorsRule {
            id: rule.id,
            allowed_origins: rule.allowed_origins,
            allowed_methods: rule.allowed_methods,
            allowed_headers,
            expose_headers,
            max_age_seconds: rule.max_age_seconds,
        });
    }
    Ok(rules)
}

fn non_empty(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

pub async fn put(
    s3: &Arbor,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let bucket = req.input.bucket;
    record_target("PutBucketCors", &bucket, None);
    let rules = checked_rules(req.input.cors_configuration)?;
    let written = s3
        .meta()
        .write(SetBucketCors {
            bucket: bucket.clone(),
            rules,
        })
        .await;
    forget(&req.extensions, &bucket);
    written.map_err(error::from_meta)?;
    Ok(S3Response::new(PutBucketCorsOutput::default()))
}

pub async fn get(
    s3: &Arbor,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let bucket = req.input.bucket;
    record_target("GetBucketCors", &bucket, None);
    let rules = s3
        .meta()
        .read(GetBucketCors { bucket })
        .await
        .map_err(error::from_meta)?;
    if rules.is_empty() {
        return Err(s3_error!(
            NoSuchCORSConfiguration,
            "The CORS configuration does not exist"
        ));
    }
    let rules = rules
        .into_iter()
        .map(|rule| CORSRule {
            allowed_headers: non_empty(rule.allowed_headers),
            allowed_methods: rule.allowed_methods,
            allowed_origins: rule.allowed_origins,
            expose_headers: non_empty(rule.expose_headers),
            id: rule.id,
            max_age_seconds: rule.max_age_seconds,
        })
        .collect();
    Ok(S3Response::new(GetBucketCorsOutput {
        cors_rules: Some(rules),
    }))
}

pub async fn delete(
    s3: &Arbor,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    let bucket = req.input.bucket;
    record_target("DeleteBucketCors", &bucket, None);
    let deleted = s3
        .meta()
        .write(SetBucketCors {
            bucket: bucket.clone(),
            rules: Vec::new(),
        })
        .await;
    forget(&req.extensions, &bucket);
    deleted.map_err(error::from_meta)?;
    let mut response = S3Response::new(DeleteBucketCorsOutput::default());
    response.status = Some(http::StatusCode::NO_CONTENT);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rules: Vec<CORSRule>) -> CORSConfiguration {
        CORSConfiguration { cors_rules: rules }
    }

    fn rule(origins: &[&str], methods: &[&str]) -> CORSRule {
        CORSRule {
            allowed_headers: None,
            allowed_methods: methods.iter().map(|s| (*s).to_owned()).collect(),
            allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            expose_headers: None,
            id: None,
            max_age_seconds: None,
        }
    }

    fn code(result: S3Result<Vec<CorsRule>>) -> S3ErrorCode {
        result.expect_err("refused").code().clone()
    }

    #[test]
    fn rules_are_checked_as_s3_checks_them() {
        let good = rule(&["https://*.example.com"], &["GET", "PUT"]);
        let rules = checked_rules(config(vec![good.clone()])).expect("good");
        assert_eq!(rules[0].allowed_methods, ["GET", "PUT"]);
        assert_eq!(
            code(checked_rules(config(Vec::new()))),
            S3ErrorCode::MalformedXML
        );
        assert_eq!(
            code(checked_rules(config(vec![
                good.clone();
                BUCKET_CORS_RULES_MAX + 1
            ]))),
            S3ErrorCode::MalformedXML
        );
        assert!(checked_rules(config(vec![good; BUCKET_CORS_RULES_MAX])).is_ok());
        assert_eq!(
            code(checked_rules(config(vec![rule(&["*"], &["PATCH"])]))),
            S3ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(checked_rules(config(vec![rule(&["*"], &["get"])]))),
            S3ErrorCode::InvalidRequest,
            "methods are upper case"
        );
        assert_eq!(
            code(checked_rules(config(vec![rule(
                &["https://*.*.com"],
                &["GET"]
            )]))),
            S3ErrorCode::InvalidRequest
        );
        let mut headers = rule(&["*"], &["GET"]);
        headers.allowed_headers = Some(vec!["x-*-*".to_owned()]);
        assert_eq!(
            code(checked_rules(config(vec![headers]))),
            S3ErrorCode::InvalidRequest
        );
        let mut exposed = rule(&["*"], &["GET"]);
        exposed.expose_headers = Some(vec!["*".to_owned()]);
        assert_eq!(
            code(checked_rules(config(vec![exposed]))),
            S3ErrorCode::InvalidRequest
        );
        assert_eq!(
            code(checked_rules(config(vec![rule(&[], &["GET"])]))),
            S3ErrorCode::MalformedXML
        );
    }
}
