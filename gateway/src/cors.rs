//! Cross-origin resource sharing (docs/design.md, "CORS"): a bucket's
//! rules ([`CorsRule`], set by PutBucketCors in `s3::cors`) answer a
//! browser's preflight (`OPTIONS`, unauthenticated, before s3s) and add
//! the `Access-Control-*` headers to every answer to a request that names
//! an `Origin` the rules allow, errors included. The first rule that
//! matches the origin, the method and the requested headers decides, as in
//! S3. Rules are read through the [`Keyring`]'s cache.

use arbor_meta::records::CorsRule;
use http::{HeaderMap, HeaderValue, Method, Uri};
use s3s::{S3Error, S3ErrorCode};

use crate::http_server::VirtualHosts;
use crate::keyring::Keyring;

/// The methods a rule may allow, as S3 takes them.
pub const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

/// What the HTTP layer needs to answer browsers: the rules, and how to
/// find a request's bucket.
pub struct Cors {
    pub keyring: Keyring,
    pub hosts: Option<VirtualHosts>,
}

/// A request that named an `Origin`, and the bucket it went to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrossOrigin {
    pub bucket: Option<String>,
    pub origin: String,
    pub method: Method,
}

impl Cors {
    /// The cross-origin facts of a request, if it names an `Origin`.
    pub fn of(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<CrossOrigin> {
        let origin = headers.get(http::header::ORIGIN)?.to_str().ok()?.to_owned();
        let bucket = crate::routes::s3_path(self.hosts.as_ref(), uri, headers)
            .ok()
            .and_then(|path| path.get_bucket_name().map(str::to_owned));
        Some(CrossOrigin {
            bucket,
            origin,
            method: method.clone(),
        })
    }

    /// The answer to a preflight `OPTIONS`: 200 with the first matching
    /// rule's headers, or S3's refusal.
    pub async fn preflight(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<http::Response<s3s::Body>, S3Error> {
        let Some(cross) = self.of(&Method::OPTIONS, uri, headers) else {
            return Err(bad_request(
                "Insufficient information. Origin request header needed.",
            ));
        };
        let requested = headers
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let method = match requested {
            Some(m) if METHODS.contains(&m.as_str()) => m,
            Some(m) => {
                return Err(bad_request(format!(
                    "Invalid Access-Control-Request-Method: {m}"
                )));
            }
            None => return Err(bad_request("Invalid Access-Control-Request-Method: null")),
        };
        let Some(bucket) = cross.bucket else {
            return Err(forbidden("CORSResponse: Bucket not found"));
        };
        let rules = match self.keyring.cors_rules(&bucket).await? {
            None => return Err(forbidden("CORSResponse: Bucket not found")),
            Some(rules) if rules.is_empty() => {
                return Err(forbidden(
                    "CORSResponse: CORS is not enabled for this bucket.",
                ));
            }
            Some(rules) => rules,
        };
        let request_headers = requested_headers(headers);
        let Some(rule) = first_match(&rules, &cross.origin, &method, &request_headers) else {
            return Err(forbidden(
                "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
            ));
        };
        let mut response = http::Response::new(s3s::Body::empty());
        allow(response.headers_mut(), rule, &cross.origin);
        if !request_headers.is_empty() {
            set(
                response.headers_mut(),
                http::header::ACCESS_CONTROL_ALLOW_HEADERS,
                &request_headers.join(", "),
            );
        }
        Ok(response)
    }

    /// Adds the `Access-Control-*` headers of the first rule that allows
    /// `cross` to `response`, whatever its status. Rules that cannot be
    /// read add nothing: the answer stands without them.
    pub async fn decorate(&self, cross: &CrossOrigin, response: &mut http::Response<s3s::Body>) {
        let Some(bucket) = &cross.bucket else { return };
        let rules = match self.keyring.cors_rules(bucket).await {
            Ok(Some(rules)) => rules,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "CORS rules unreadable");
                return;
            }
        };
        if let Some(rule) = first_match(&rules, &cross.origin, cross.method.as_str(), &[]) {
            allow(response.headers_mut(), rule, &cross.origin);
        }
    }
}

fn bad_request(message: impl Into<String>) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom("BadRequest".into()), message.into());
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

fn forbidden(message: &str) -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("AccessForbidden".into()),
        message.to_owned(),
    );
    e.set_status_code(http::StatusCode::FORBIDDEN);
    e
}

/// `Access-Control-Request-Headers`, lowercased, without empty names.
fn requested_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|h| !h.is_empty())
        .collect()
}

/// Whether `value` matches `pattern`, which holds at most one `*` standing
/// for any run of characters.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, suffix)) => {
            value.len() >= prefix.len().saturating_add(suffix.len())
                && value.starts_with(prefix)
                && value.ends_with(suffix)
        }
    }
}

/// The first rule allowing `origin` to send `method` with `headers`
/// (lowercase): origins compare exactly, header names without case.
pub fn first_match<'r>(
    rules: &'r [CorsRule],
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<&'r CorsRule> {
    rules.iter().find(|rule| {
        rule.allowed_origins
            .iter()
            .any(|allowed| wildcard_match(allowed, origin))
            && rule.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|header| {
                rule.allowed_headers
                    .iter()
                    .any(|allowed| wildcard_match(&allowed.to_ascii_lowercase(), header))
            })
    })
}

fn set(headers: &mut HeaderMap, name: http::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// The headers `rule` gives a request from `origin`: S3 answers `*` for a
/// rule allowing every origin, and otherwise the origin itself with
/// credentials allowed.
fn allow(headers: &mut HeaderMap, rule: &CorsRule, origin: &str) {
    use http::header::{
        ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_METHODS,
        ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, VARY,
    };
    if rule.allowed_origins.iter().any(|o| o == "*") {
        set(headers, ACCESS_CONTROL_ALLOW_ORIGIN, "*");
    } else {
        set(headers, ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        set(headers, ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
    }
    set(
        headers,
        ACCESS_CONTROL_ALLOW_METHODS,
        &rule.allowed_methods.join(", "),
    );
    if !rule.expose_headers.is_empty() {
        set(
            headers,
            ACCESS_CONTROL_EXPOSE_HEADERS,
            &rule.expose_headers.join(", "),
        );
    }
    if let Some(max_age) = rule.max_age_seconds {
        set(headers, ACCESS_CONTROL_MAX_AGE, &max_age.to_string());
    }
    set(
        headers,
        VARY,
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        CorsRule {
            allowed_origins: strings(origins),
            allowed_methods: strings(methods),
            allowed_headers: strings(headers),
            ..CorsRule::default()
        }
    }

    #[test]
    fn one_wildcard_stands_for_any_run() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match(
            "https://*.example.com",
            "https://a.b.example.com"
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "https://example.com"
        ));
        assert!(
            !wildcard_match("ab*ba", "aba"),
            "prefix and suffix may not overlap"
        );
        assert!(wildcard_match("http://x", "http://x"));
        assert!(!wildcard_match("http://x", "http://X"));
    }

    #[test]
    fn the_first_rule_allowing_origin_method_and_headers_decides() {
        let rules = vec![
            rule(&["https://a.example"], &["PUT"], &["x-amz-*"]),
            rule(&["*"], &["GET", "HEAD"], &[]),
        ];
        let headers = |h: &[&str]| h.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let first = first_match(
            &rules,
            "https://a.example",
            "PUT",
            &headers(&["x-amz-date"]),
        );
        assert_eq!(first, Some(&rules[0]));
        assert_eq!(
            first_match(
                &rules,
                "https://a.example",
                "PUT",
                &headers(&["content-type"])
            ),
            None
        );
        assert_eq!(
            first_match(&rules, "https://b.example", "GET", &[]),
            Some(&rules[1])
        );
        assert_eq!(
            first_match(&rules, "https://b.example", "DELETE", &[]),
            None
        );
    }

    #[test]
    fn a_wildcard_origin_gets_a_star_and_no_credentials() {
        let mut headers = HeaderMap::new();
        allow(&mut headers, &rule(&["*"], &["GET"], &[]), "https://x");
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert!(!headers.contains_key("access-control-allow-credentials"));
        let mut headers = HeaderMap::new();
        let mut named = rule(&["https://x"], &["GET", "PUT"], &[]);
        named.expose_headers = vec!["ETag".to_owned()];
        named.max_age_seconds = Some(30);
        allow(&mut headers, &named, "https://x");
        assert_eq!(headers["access-control-allow-origin"], "https://x");
        assert_eq!(headers["access-control-allow-credentials"], "true");
        assert_eq!(headers["access-control-allow-methods"], "GET, PUT");
        assert_eq!(headers["access-control-expose-headers"], "ETag");
        assert_eq!(headers["access-control-max-age"], "30");
        assert!(
            headers["vary"]
                .to_str()
                .expect("ascii")
                .starts_with("Origin")
        );
    }
}
