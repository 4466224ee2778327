//! The form of a request's signature, checked before s3s verifies it, where
//! s3s 0.14 (pinned) checks less than S3 or answers otherwise:
//! - SigV4 in the Authorization header ([`check_sigv4_header`]): its
//!   three components, its credential scope and the scope's date against
//!   `x-amz-date`, the date within 15 minutes of now, and every `x-amz-`
//!   header sent, and `host`, signed;
//! - SigV4 presigned URLs ([`check_presigned_url`]): their expiry, date
//!   and signed headers;
//! - Signature Version 2 dates ([`check_signature_v2_date`]);
//! - a pinned region ([`check_region`]).
//!
//! The refusals are S3's, with the elements S3 writes beside the message
//! (`<HeadersNotSigned>`, `<ServerTime>`, `<Region>`, ...).

use s3s::S3Error;

use crate::{auth, error};

/// How far a request's date may be from the gateway's clock, as S3
/// allows: 15 minutes either way (SigV2 and SigV4 headers, a presigned
/// URL's date, a browser upload's).
pub(crate) const CLOCK_SKEW_MAX_SECS: i64 = 15 * 60;

/// Signature Version 2 (`Authorization: AWS key:signature`) is accepted
/// (botocore still presigns with it by default, and s3s checks its
/// signature against the same keys as SigV4), but s3s checks only that a
/// date header is present. As S3 does, the date (`x-amz-date` before
/// `Date`) must parse and lie within 15 minutes of now, so a captured
/// request cannot be replayed later: 403 AccessDenied for a missing or
/// unreadable date, 403 RequestTimeTooSkewed for one too far off.
/// Presigned SigV2 URLs carry `Expires` instead, which s3s checks.
pub(crate) fn check_signature_v2_date<B>(
    req: &http::Request<B>,
    now_ms: i64,
) -> Result<(), S3Error> {
    let is_v2 = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS "));
    if !is_v2 {
        return Ok(());
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let signed_ms = header("x-amz-date")
        .or_else(|| header("date"))
        .and_then(|value| {
            s3s::dto::Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, value.trim()).ok()
        })
        .map(|ts| {
            let at = time::OffsetDateTime::from(ts);
            i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
        })
        // A date before 1970 is no valid date to S3 (AccessDenied), not
        // one too far off.
        .filter(|ms| *ms >= 0);
    let Some(signed_ms) = signed_ms else {
        return Err(S3Error::with_message(
            s3s::S3ErrorCode::AccessDenied,
            "AWS authentication requires a valid Date or x-amz-date header",
        ));
    };
    if signed_ms.abs_diff(now_ms) > (CLOCK_SKEW_MAX_SECS * 1000).unsigned_abs() {
        let sent = header("x-amz-date")
            .or_else(|| header("date"))
            .unwrap_or_default();
        return Err(too_skewed(sent, now_ms));
    }
    Ok(())
}

/// The longest a SigV4 presigned URL may be valid, as S3 allows: a week.
const PRESIGNED_EXPIRES_MAX_SECS: u64 = 7 * 24 * 3600;

/// A SigV4 presigned URL's `X-Amz-Expires`, `X-Amz-Date` and
/// `X-Amz-SignedHeaders`, checked as S3 checks them, at `now_ms`:
/// - `X-Amz-Expires` a number of seconds from 0 to a week (s3s 0.14 takes
///   any that parses, and answers a negative one as missing fields), else
///   400 AuthorizationQueryParametersError;
/// - `X-Amz-Date` in ISO 8601's basic form, else the same 400 (s3s says
///   "missing presigned url v4 fields");
/// - a date still in the future (beyond the skew allowed) is 403
///   AccessDenied "Request is not yet valid", and one whose expiry has
///   passed 403 "Request has expired", each naming the times in the
///   error's elements as S3's does (s3s names none).
///
/// - every `x-amz-` header sent, and `host`, among `X-Amz-SignedHeaders`
///   ([`check_all_signed`]), but `x-amz-content-sha256`, which only
///   narrows what the body may be.
///
/// A URL missing a parameter is left to s3s, which refuses it.
pub(crate) fn check_presigned_url(
    uri: &http::Uri,
    headers: &http::HeaderMap,
    now_ms: i64,
) -> Result<(), S3Error> {
    let Some(query) = uri.query() else {
        return Ok(());
    };
    // Names decoded as s3s decodes them (`X-Amz-%45xpires` too).
    let param = |name: &str| crate::policy::query_param(query, name);
    if param("X-Amz-Algorithm").is_none() {
        return Ok(());
    }
    let Some(expires) = param("X-Amz-Expires") else {
        return Ok(());
    };
    let malformed = |message: &str| {
        S3Error::with_message(
            s3s::S3ErrorCode::AuthorizationQueryParametersError,
            message.to_owned(),
        )
    };
    let expires_secs = match expires.parse::<i64>() {
        Ok(secs) if secs < 0 => return Err(malformed("X-Amz-Expires must be non-negative")),
        Ok(secs) if secs.unsigned_abs() > PRESIGNED_EXPIRES_MAX_SECS => {
            return Err(malformed(
                "X-Amz-Expires must be less than a week (in seconds) that is, the given X-Amz-Expires must be less than 604800 seconds",
            ));
        }
        Ok(secs) => secs,
        Err(_) => return Err(malformed("X-Amz-Expires should be a number")),
    };
    if let Some(signed) = param("X-Amz-SignedHeaders") {
        check_all_signed(headers, &signed, PRESIGNED_UNSIGNED_ALLOWED)?;
    }
    let Some(date) = param("X-Amz-Date") else {
        return Ok(());
    };
    let signed_s = amz_date_secs(&date).ok_or_else(|| {
        malformed("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    })?;
    let now_s = now_ms.div_euclid(1000);
    let expires_at_s = signed_s + expires_secs;
    let denied = |message: &str, first: (&'static str, &str)| {
        crate::error::with_elements(
            S3Error::with_message(s3s::S3ErrorCode::AccessDenied, message.to_owned()),
            &[
                first,
                ("Expires", &iso8601_secs(expires_at_s)),
                ("ServerTime", &iso8601_secs(now_s)),
            ],
        )
    };
    if signed_s - now_s > CLOCK_SKEW_MAX_SECS {
        return Err(denied("Request is not yet valid", ("X-Amz-Date", &date)));
    }
    if now_s > expires_at_s {
        return Err(denied(
            "Request has expired",
            ("X-Amz-Expires", &expires_secs.to_string()),
        ));
    }
    Ok(())
}

/// `X-Amz-Date`'s `yyyyMMdd'T'HHmmss'Z'` (ISO 8601's basic form, UTC);
/// `None` if it is not that form or not a date. Browser uploads' forms
/// carry the same.
pub(crate) fn parse_amz_date(text: &str) -> Option<time::OffsetDateTime> {
    let bytes = text.as_bytes();
    let form_ok = bytes.len() == 16
        && bytes.get(8) == Some(&b'T')
        && bytes.get(15) == Some(&b'Z')
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| matches!(i, 8 | 15) || b.is_ascii_digit());
    if !form_ok {
        return None;
    }
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<u16>().ok();
    let month = time::Month::try_from(u8::try_from(number(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::from(number(0..4)?),
        month,
        u8::try_from(number(6..8)?).ok()?,
    )
    .ok()?;
    let at = time::Time::from_hms(
        u8::try_from(number(9..11)?).ok()?,
        u8::try_from(number(11..13)?).ok()?,
        u8::try_from(number(13..15)?).ok()?,
    )
    .ok()?;
    Some(date.with_time(at).assume_utc())
}

/// [`parse_amz_date`] in seconds since the Unix epoch.
fn amz_date_secs(text: &str) -> Option<i64> {
    parse_amz_date(text).map(time::OffsetDateTime::unix_timestamp)
}

/// A SigV4 credential scope's five parts,
/// `KEY/YYYYMMDD/REGION/SERVICE/aws4_request`, as they are (each may be
/// empty); `None` for another number of parts.
pub(crate) fn split_credential(credential: &str) -> Option<[&str; 5]> {
    let mut parts = credential.split('/');
    let all = [
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    ];
    parts.next().is_none().then_some(all)
}

/// Seconds since the Unix epoch as S3's error elements write a time:
/// `2017-04-20T01:24:03Z`.
fn iso8601_secs(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => secs.to_string(),
    }
}

/// With `--region`, a request signed for another region is refused the way
/// S3 refuses it.
pub(crate) fn check_region<B>(pinned: Option<&str>, req: &http::Request<B>) -> Result<(), S3Error> {
    let Some(pinned) = pinned else { return Ok(()) };
    let Some(region) = auth::signed_region(req.headers(), req.uri()) else {
        return Ok(());
    };
    if region == pinned {
        return Ok(());
    }
    let wrong = format!("the region '{region}' is wrong; expecting '{pinned}'");
    // A presigned URL's credential is a query parameter: S3 names it so.
    let error = if req.headers().contains_key(http::header::AUTHORIZATION) {
        S3Error::with_message(
            s3s::S3ErrorCode::AuthorizationHeaderMalformed,
            format!("The authorization header is malformed; {wrong}"),
        )
    } else {
        S3Error::with_message(
            s3s::S3ErrorCode::AuthorizationQueryParametersError,
            format!("Error parsing the X-Amz-Credential parameter; {wrong}"),
        )
    };
    // `<Region>` tells a client (botocore's redirector) where to sign.
    Err(error::with_elements(error, &[("Region", pinned)]))
}

/// The one algorithm of SigV4 that S3 and s3s take.
const SIGV4_ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// SigV4 in the Authorization header, checked as S3 checks it before the
/// signature, at `now_ms`:
/// - the three components, `Credential`, `SignedHeaders` and `Signature`,
///   and a credential of `KEY/YYYYMMDD/REGION/SERVICE/aws4_request`, else
///   400 AuthorizationHeaderMalformed (s3s: 400 InvalidRequest);
/// - the scope's date that of `x-amz-date`, else the same 400 (s3s: 403
///   SignatureDoesNotMatch);
/// - `x-amz-date` within 15 minutes of now, else 403
///   RequestTimeTooSkewed with S3's `<RequestTime>`, `<ServerTime>` and
///   `<MaxAllowedSkewMilliseconds>`;
/// - every `x-amz-` header sent, and `host`, signed ([`check_all_signed`]).
///
/// Any other Authorization header is left alone.
pub(crate) fn check_sigv4_header(headers: &http::HeaderMap, now_ms: i64) -> Result<(), S3Error> {
    let Some(authorization) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let Some(rest) = authorization.strip_prefix(SIGV4_ALGORITHM) else {
        return Ok(());
    };
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return Ok(());
    }
    let component = |name: &str| {
        rest.split(',').find_map(|part| {
            let (key, value) = part.trim().split_once('=')?;
            (key.trim() == name).then(|| value.trim())
        })
    };
    let (Some(credential), Some(signed), Some(_signature)) = (
        component("Credential"),
        component("SignedHeaders"),
        component("Signature"),
    ) else {
        return Err(header_malformed(
            "the authorization header requires three components: Credential, SignedHeaders, and Signature.",
        ));
    };
    // An empty key or region is s3s's to answer (an unknown key, any
    // region when none is pinned).
    let scope_date = match split_credential(credential) {
        Some([_key, date, _region, service, "aws4_request"])
            if date.len() == 8
                && date.bytes().all(|b| b.is_ascii_digit())
                && !service.is_empty() =>
        {
            date
        }
        _ => {
            return Err(header_malformed(
                "the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".",
            ));
        }
    };
    if let Some(sent) = headers.get("x-amz-date").and_then(|v| v.to_str().ok())
        && let Some(sent_s) = amz_date_secs(sent)
    {
        if sent.get(..8) != Some(scope_date) {
            return Err(header_malformed(
                "Invalid credential date. Date is not the same as X-Amz-Date.",
            ));
        }
        if sent_s.abs_diff(now_ms.div_euclid(1000)) > CLOCK_SKEW_MAX_SECS.unsigned_abs() {
            return Err(too_skewed(sent, now_ms));
        }
    }
    check_all_signed(headers, signed, RELAY_HEADERS)
}

/// `x-amz-` headers a relay adds on its way to the origin, which no
/// client signs: CloudFront's request id. S3 takes requests so relayed.
const RELAY_HEADERS: &[&str] = &["x-amz-cf-id"];

/// `x-amz-` headers a presigned URL need not sign: a relay's, and the
/// payload hash, which only narrows what the body may be.
const PRESIGNED_UNSIGNED_ALLOWED: &[&str] = &["x-amz-cf-id", "x-amz-content-sha256"];

/// Every `x-amz-` header of the request (but those `allowed`), and `host`,
/// named in `signed` (`SignedHeaders`, `;`-separated): else whoever
/// passes a request on could add a header the signer never meant (an
/// `x-amz-copy-source` turning a PUT into a copy, an `x-amz-acl`). 403
/// AccessDenied naming them in `<HeadersNotSigned>`, as S3 answers.
fn check_all_signed(
    headers: &http::HeaderMap,
    signed: &str,
    allowed: &[&str],
) -> Result<(), S3Error> {
    let signed: Vec<String> = signed
        .split(';')
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut unsigned: Vec<&str> = Vec::new();
    for name in headers.keys() {
        let name = name.as_str();
        let needs_signing =
            name == "host" || (name.starts_with("x-amz-") && !allowed.contains(&name));
        if needs_signing && !signed.iter().any(|s| s == name) && !unsigned.contains(&name) {
            unsigned.push(name);
        }
    }
    if unsigned.is_empty() {
        return Ok(());
    }
    Err(error::with_elements(
        S3Error::with_message(
            s3s::S3ErrorCode::AccessDenied,
            "There were headers present in the request which were not signed",
        ),
        &[("HeadersNotSigned", &unsigned.join(", "))],
    ))
}

/// S3's 400 AuthorizationHeaderMalformed, with what is wrong.
fn header_malformed(what: &str) -> S3Error {
    S3Error::with_message(
        s3s::S3ErrorCode::AuthorizationHeaderMalformed,
        format!("The authorization header is malformed; {what}"),
    )
}

/// S3's 403 RequestTimeTooSkewed for a request dated `sent` (as it came)
/// at `now_ms`, with the elements S3 writes.
fn too_skewed(sent: &str, now_ms: i64) -> S3Error {
    error::with_elements(
        S3Error::with_message(
            s3s::S3ErrorCode::RequestTimeTooSkewed,
            "The difference between the request time and the current time is too large.",
        ),
        &[
            ("RequestTime", sent),
            ("ServerTime", &iso8601_secs(now_ms.div_euclid(1000))),
            (
                "MaxAllowedSkewMilliseconds",
                &(CLOCK_SKEW_MAX_SECS * 1000).to_string(),
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_v2_date_is_valid_and_near() {
        let now_ms = 1_700_000_000_000;
        let request = |date: &str| {
            http::Request::builder()
                .header(http::header::AUTHORIZATION, "AWS key:signature")
                .header("x-amz-date", date)
                .body(())
                .expect("request")
        };
        let code = |date: &str| {
            check_signature_v2_date(&request(date), now_ms)
                .err()
                .map(|e| e.code().clone())
        };
        assert_eq!(code("Tue, 14 Nov 2023 22:13:20 GMT"), None);
        assert_eq!(
            code("Tue, 07 Jul 1950 21:53:04 GMT"),
            Some(s3s::S3ErrorCode::AccessDenied)
        );
        assert_eq!(code("Bad Date"), Some(s3s::S3ErrorCode::AccessDenied));
        assert_eq!(
            code("Wed, 07 Jul 2010 21:53:04 GMT"),
            Some(s3s::S3ErrorCode::RequestTimeTooSkewed)
        );
    }

    #[test]
    fn a_presigned_url_is_valid_from_its_date_to_its_expiry() {
        let uri = |date: &str| -> http::Uri {
            format!(
                "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={date}&X-Amz-Expires=300&X-Amz-Signature=ab"
            )
            .parse()
            .expect("uri")
        };
        // 2026-12-07T12:00:00Z.
        let signed_ms = 1_796_644_800_000;
        assert_eq!(amz_date_secs("20261207T120000Z"), Some(signed_ms / 1000));
        let at = |now_ms: i64| {
            check_presigned_url(&uri("20261207T120000Z"), &http::HeaderMap::new(), now_ms)
        };
        for now_ms in [signed_ms, signed_ms + 300_000, signed_ms - 900_000] {
            assert!(at(now_ms).is_ok(), "{now_ms}");
        }
        let elements = |e: &S3Error| {
            let mut headers = e.headers().cloned().unwrap_or_default();
            crate::error::take_elements(&mut headers)
        };
        let named = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        let expired = at(signed_ms + 301_000).expect_err("expired");
        assert_eq!(expired.code(), &s3s::S3ErrorCode::AccessDenied);
        assert_eq!(expired.message(), Some("Request has expired"));
        assert_eq!(
            elements(&expired),
            [
                named("X-Amz-Expires", "300"),
                named("Expires", "2026-12-07T12:05:00Z"),
                named("ServerTime", "2026-12-07T12:05:01Z")
            ]
        );
        let early = at(signed_ms - 901_000).expect_err("not yet");
        assert_eq!(early.code(), &s3s::S3ErrorCode::AccessDenied);
        assert_eq!(early.message(), Some("Request is not yet valid"));
        assert_eq!(elements(&early)[0], named("X-Amz-Date", "20261207T120000Z"));
        for bad in [
            "20261301T000000Z",
            "20261207T250000Z",
            "20260230T000000Z",
            "2026-12-07T12:00:00Z",
            "20261207120000Z",
            "20261207T1200+0Z",
            "",
        ] {
            let e =
                check_presigned_url(&uri(bad), &http::HeaderMap::new(), signed_ms).expect_err(bad);
            assert_eq!(
                e.code(),
                &s3s::S3ErrorCode::AuthorizationQueryParametersError,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_presigned_url_lasts_at_most_a_week() {
        let uri = |expires: &str| -> http::Uri {
            format!(
                "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires={expires}&X-Amz-Signature=ab"
            )
            .parse()
            .expect("uri")
        };
        for good in ["0", "300", "604800"] {
            assert!(
                check_presigned_url(&uri(good), &http::HeaderMap::new(), 0).is_ok(),
                "{good}"
            );
        }
        for bad in ["604801", "-1", "x", ""] {
            let e = check_presigned_url(&uri(bad), &http::HeaderMap::new(), 0).expect_err(bad);
            assert_eq!(
                e.code(),
                &s3s::S3ErrorCode::AuthorizationQueryParametersError
            );
            assert_eq!(e.code().status_code().map(|s| s.as_u16()), Some(400));
        }
        // An encoded name is the same parameter.
        let encoded: http::Uri =
            "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-%45xpires=31536000&X-Amz-Signature=ab"
                .parse()
                .expect("uri");
        assert!(check_presigned_url(&encoded, &http::HeaderMap::new(), 0).is_err());
        // Not a SigV4 presigned URL: left alone.
        let plain: http::Uri = "/b/k?X-Amz-Expires=-5".parse().expect("uri");
        assert!(check_presigned_url(&plain, &http::HeaderMap::new(), 0).is_ok());
    }

    /// Headers of a SigV4 request dated 2026-12-07T12:00:00Z, signed over
    /// `signed`, with `extra` beside.
    fn sigv4(credential: &str, signed: &str, extra: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature=ab"
        );
        headers.insert(
            http::header::AUTHORIZATION,
            authorization.parse().expect("value"),
        );
        headers.insert("host", "127.0.0.1:9000".parse().expect("value"));
        headers.insert("x-amz-date", "20261207T120000Z".parse().expect("value"));
        headers.insert(
            "x-amz-content-sha256",
            "UNSIGNED-PAYLOAD".parse().expect("value"),
        );
        for (name, value) in extra {
            headers.insert(*name, value.parse().expect("value"));
        }
        headers
    }

    const SCOPE: &str = "AK/20261207/us-east-1/s3/aws4_request";
    const SIGNED: &str = "host;x-amz-content-sha256;x-amz-date";
    const NOW_MS: i64 = 1_796_644_800_000;

    fn elements(e: &S3Error) -> Vec<(String, String)> {
        let mut headers = e.headers().cloned().unwrap_or_default();
        error::take_elements(&mut headers)
    }

    #[test]
    fn a_sigv4_header_signs_every_amz_header_and_host() {
        assert!(check_sigv4_header(&sigv4(SCOPE, SIGNED, &[]), NOW_MS).is_ok());
        // Headers other than x-amz- ones need not be signed.
        let plain = sigv4(SCOPE, SIGNED, &[("content-type", "text/plain")]);
        assert!(check_sigv4_header(&plain, NOW_MS).is_ok());
        let injected = sigv4(
            SCOPE,
            SIGNED,
            &[
                ("x-amz-copy-source", "/b/secret"),
                ("x-amz-acl", "public-read"),
            ],
        );
        let e = check_sigv4_header(&injected, NOW_MS).expect_err("unsigned");
        assert_eq!(e.code(), &s3s::S3ErrorCode::AccessDenied);
        assert_eq!(
            e.message(),
            Some("There were headers present in the request which were not signed")
        );
        assert_eq!(
            elements(&e),
            [(
                "HeadersNotSigned".to_owned(),
                "x-amz-copy-source, x-amz-acl".to_owned()
            )]
        );
        let without_host = sigv4(SCOPE, "x-amz-content-sha256;x-amz-date", &[]);
        let e = check_sigv4_header(&without_host, NOW_MS).expect_err("host");
        assert_eq!(elements(&e)[0].1, "host");
        // A relay's own header (CloudFront's) is no request header.
        let relayed = sigv4(SCOPE, SIGNED, &[("x-amz-cf-id", "abc==")]);
        assert!(check_sigv4_header(&relayed, NOW_MS).is_ok());
        // Names compare without case.
        let upper = sigv4(SCOPE, "Host;X-Amz-Content-Sha256;X-Amz-Date", &[]);
        assert!(check_sigv4_header(&upper, NOW_MS).is_ok());
    }

    #[test]
    fn a_sigv4_header_has_its_three_components_and_a_whole_scope() {
        let code = |headers: http::HeaderMap| {
            check_sigv4_header(&headers, NOW_MS)
                .err()
                .map(|e| (e.code().clone(), e.message().unwrap_or_default().to_owned()))
        };
        let mut garbage = sigv4(SCOPE, SIGNED, &[]);
        garbage.insert(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 garbage".parse().expect("value"),
        );
        let (c, message) = code(garbage).expect("refused");
        assert_eq!(c, s3s::S3ErrorCode::AuthorizationHeaderMalformed);
        assert!(message.contains("three components"), "{message}");
        for scope in [
            "AK/20261207/us-east-1/s3/aws5_request",
            "AK/20261207/us-east-1/s3",
            "AK/2026120/us-east-1/s3/aws4_request",
            "AK/20261207/us-east-1//aws4_request",
            "AK/20261207/us-east-1/s3/aws4_request/x",
        ] {
            let (c, message) = code(sigv4(scope, SIGNED, &[])).expect(scope);
            assert_eq!(c, s3s::S3ErrorCode::AuthorizationHeaderMalformed, "{scope}");
            assert!(message.contains("Credential is mal-formed"), "{message}");
        }
        // An empty key or region is s3s's to answer.
        for scope in [
            "/20261207/us-east-1/s3/aws4_request",
            "AK/20261207//s3/aws4_request",
        ] {
            assert_eq!(code(sigv4(scope, SIGNED, &[])), None, "{scope}");
        }
        let (c, message) =
            code(sigv4("AK/20261206/us-east-1/s3/aws4_request", SIGNED, &[])).expect("another day");
        assert_eq!(c, s3s::S3ErrorCode::AuthorizationHeaderMalformed);
        assert!(
            message.contains("Date is not the same as X-Amz-Date"),
            "{message}"
        );
        // Not SigV4 in the header: left alone.
        let mut v2 = http::HeaderMap::new();
        v2.insert(
            http::header::AUTHORIZATION,
            "AWS AK:sig".parse().expect("value"),
        );
        v2.insert("x-amz-meta-a", "1".parse().expect("value"));
        assert_eq!(code(v2), None);
        assert_eq!(code(http::HeaderMap::new()), None);
    }

    #[test]
    fn a_sigv4_date_more_than_15_minutes_off_is_too_skewed() {
        let headers = sigv4(SCOPE, SIGNED, &[]);
        for now_ms in [NOW_MS - 900_000, NOW_MS + 900_999] {
            assert!(check_sigv4_header(&headers, now_ms).is_ok(), "{now_ms}");
        }
        let e = check_sigv4_header(&headers, NOW_MS + 901_000).expect_err("skewed");
        assert_eq!(e.code(), &s3s::S3ErrorCode::RequestTimeTooSkewed);
        let named = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        assert_eq!(
            elements(&e),
            [
                named("RequestTime", "20261207T120000Z"),
                named("ServerTime", "2026-12-07T12:15:01Z"),
                named("MaxAllowedSkewMilliseconds", "900000")
            ]
        );
        assert!(check_sigv4_header(&headers, NOW_MS - 901_000).is_err());
    }

    #[test]
    fn a_presigned_url_signs_every_amz_header_but_the_payload_hash() {
        let uri: http::Uri = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261207T120000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=ab"
            .parse()
            .expect("uri");
        let mut headers = http::HeaderMap::new();
        headers.insert("host", "h".parse().expect("value"));
        headers.insert(
            "x-amz-content-sha256",
            "UNSIGNED-PAYLOAD".parse().expect("value"),
        );
        assert!(check_presigned_url(&uri, &headers, NOW_MS).is_ok());
        headers.insert("x-amz-acl", "public-read".parse().expect("value"));
        let e = check_presigned_url(&uri, &headers, NOW_MS).expect_err("unsigned acl");
        assert_eq!(e.code(), &s3s::S3ErrorCode::AccessDenied);
        assert_eq!(
            elements(&e),
            [("HeadersNotSigned".to_owned(), "x-amz-acl".to_owned())]
        );
    }

    #[test]
    fn a_wrong_region_names_the_right_one() {
        let mut request = http::Request::new(());
        request.headers_mut().insert(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AK/20261207/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=ab"
                .parse()
                .expect("value"),
        );
        let e = check_region(Some("us-east-1"), &request).expect_err("wrong region");
        assert_eq!(e.code(), &s3s::S3ErrorCode::AuthorizationHeaderMalformed);
        assert_eq!(
            elements(&e),
            [("Region".to_owned(), "us-east-1".to_owned())]
        );
        assert!(check_region(Some("eu-west-1"), &request).is_ok());
        let presigned = http::Request::builder()
            .uri("/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261207%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Signature=ab")
            .body(())
            .expect("request");
        let e = check_region(Some("us-east-1"), &presigned).expect_err("wrong region");
        assert_eq!(
            e.code(),
            &s3s::S3ErrorCode::AuthorizationQueryParametersError
        );
        assert_eq!(e.code().status_code().map(|s| s.as_u16()), Some(400));
        assert_eq!(
            elements(&e),
            [("Region".to_owned(), "us-east-1".to_owned())]
        );
        assert!(check_region(None, &request).is_ok());
    }
}
