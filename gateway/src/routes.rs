//! s3s's one custom route (`S3Route`), which sees a request after s3s has
//! checked its signature and before s3s parses an operation's input: the
//! admin API (`admin::AdminRoute`), RenameObject ([`RenameRoute`]), and
//! GET, HEAD and CopyObject requests with headers S3 ignores and s3s
//! refuses ([`IgnoredHeaders`]).

use std::borrow::Cow;

use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Uri};
use s3s::route::S3Route;
use s3s::service::S3Service;
use s3s::{Body, S3Request, S3Response, S3Result};

use s3s::path::S3Path;

use crate::admin::AdminRoute;
use crate::http_server::VirtualHosts;
use crate::keyring::Keyring;
use crate::metrics::OperationSlot;
use crate::{error, permission, s3, subresource};

pub struct Routes {
    pub admin: AdminRoute,
    pub keyring: Keyring,
    pub ignored_headers: IgnoredHeaders,
    pub rename: RenameRoute,
}

/// The operation name of Arbor's admin API in the metrics.
const ADMIN_OPERATION: &str = "Admin";

#[async_trait::async_trait]
impl S3Route for Routes {
    fn is_match(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        extensions: &mut http::Extensions,
    ) -> bool {
        // A request naming a subresource keeps to s3s's way, whose access
        // check refuses the subresources its operation does not take; the
        // service behind `IgnoredHeaders` checks only a copy's source.
        self.admin.is_match(method, uri, headers, extensions)
            || is_rename(method, uri)
            || (!ignored_headers(method, headers).is_empty()
                && subresource::first_in(uri.query()).is_none()
                && matches!(
                    s3_path(self.rename.hosts.as_ref(), uri, headers),
                    Ok(S3Path::Object { .. })
                ))
    }

    // `IgnoredHeaders` relies on it: the service behind it checks no
    // signature and, of the access checks, only a copy's source.
    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        let request_id = s3::RequestId::of(&req.extensions);
        self.check_permission(req)
            .await
            .map_err(|e| request_id.stamp(e))
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        if self
            .admin
            .is_match(&req.method, &req.uri, &req.headers, &mut req.extensions)
        {
            return self.admin.call(req).await;
        }
        if is_rename(&req.method, &req.uri) {
            return self.rename.call(req).await;
        }
        self.ignored_headers.call(req).await
    }
}

impl Routes {
    /// A request whose signer (or anonymous caller) may call what the
    /// route serves: the admin API is the administrator's; RenameObject
    /// needs write on its bucket, and no policy Deny on its source; a GET,
    /// HEAD or CopyObject with ignored headers what the same request
    /// without them needs (a copy's source is checked by the service
    /// behind `IgnoredHeaders`). The signer goes into the extensions.
    async fn check_permission(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        let principal = permission::principal(&self.keyring, req.credentials.as_ref()).await?;
        let admin = self
            .admin
            .is_match(&req.method, &req.uri, &req.headers, &mut req.extensions);
        let head = req.method == Method::HEAD;
        let (op, bucket, key) = match s3_path(self.rename.hosts.as_ref(), &req.uri, &req.headers) {
            _ if admin => ("ArborAdministration", None, None),
            // Refused as before by whatever serves it; the administrator's
            // alone meanwhile.
            Err(_) => ("Unparsed", None, None),
            Ok(S3Path::Root) => ("ListBuckets", None, None),
            Ok(S3Path::Bucket { bucket }) => (
                if head { "HeadBucket" } else { "ListObjects" },
                Some(bucket),
                None,
            ),
            Ok(S3Path::Object { bucket, key }) => (
                if head { "HeadObject" } else { "GetObject" },
                Some(bucket),
                Some(key),
            ),
        };
        let op = if admin {
            op
        } else if is_rename(&req.method, &req.uri) {
            "RenameObject"
        } else if is_copy(&req.method, &req.headers) {
            "CopyObject"
        } else {
            op
        };
        if let Some(slot) = req.extensions.get::<OperationSlot>() {
            slot.set(if admin { ADMIN_OPERATION } else { op });
        }
        let request = permission::Request {
            op,
            bucket: bucket.as_deref(),
            key: key.as_deref(),
            headers: &req.headers,
            uri: &req.uri,
            extensions: &req.extensions,
        };
        let access = permission::authorize(&self.keyring, &principal, &request).await?;
        permission::check_expected_owner(&principal, &request)?;
        if op == "RenameObject"
            && let Some(bucket) = request.bucket
            && let Ok(source) = s3::rename::source_key(bucket, &req.headers)
        {
            let actions = ["s3:GetObject", "s3:DeleteObject", "s3:PutObject"];
            permission::check_policy_denies(&self.keyring, &principal, &request, &actions, &source)
                .await?;
        }
        if let permission::Access::IfObjectAcl(gate) = access {
            req.extensions.insert(gate);
        }
        // What `permission::AccessControl` gives every admitted request.
        req.extensions.insert(principal);
        req.extensions.insert(self.keyring.clone());
        Ok(())
    }
}

/// The request's bucket and key as s3s finds them: path-style or, with
/// `--domain`, virtual-host-style.
pub(crate) fn s3_path(
    hosts: Option<&VirtualHosts>,
    uri: &Uri,
    headers: &HeaderMap,
) -> S3Result<S3Path> {
    let path = urlencoding::decode(uri.path())
        .map_err(|_| s3s::s3_error!(InvalidURI, "The path is not valid UTF-8"))?;
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let virtual_host = match (hosts, host) {
        (Some(hosts), Some(host)) if !is_ip_address(host) => {
            Some(s3s::host::S3Host::parse_host_header(hosts, host)?)
        }
        _ => None,
    };
    let bucket = virtual_host.as_ref().and_then(|vh| vh.bucket());
    s3s::path::parse_virtual_hosted_style(bucket, &path)
        .map_err(|_| s3s::s3_error!(InvalidURI, "The path names no bucket or key"))
}

/// A PUT naming `?renameObject`: RenameObject, which s3s does not route.
fn is_rename(method: &Method, uri: &Uri) -> bool {
    method == Method::PUT && s3::has_query_flag(uri, s3::rename::RENAME_PARAM)
}

/// Serves RenameObject (`s3::rename`): finds the bucket and key as s3s
/// would, path-style or, with `--domain`, virtual-host-style.
pub struct RenameRoute {
    pub s3: s3::Arbor,
    pub hosts: Option<VirtualHosts>,
}

impl RenameRoute {
    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        match s3_path(self.hosts.as_ref(), &req.uri, &req.headers) {
            Ok(S3Path::Object { bucket, key }) => {
                let replace = s3::has_query_flag(&req.uri, s3::rename::REPLACE_PARAM);
                s3::rename::rename(&self.s3, &bucket, &key, &req.headers, replace).await
            }
            // RenameObject on a bucket (or the root): a subresource no
            // operation there takes.
            _ => Err(s3s::s3_error!(
                NotImplemented,
                "RenameObject names a bucket and a destination key"
            )),
        }
    }
}

/// `host[:port]` that is an IP address: addressing is then path-style.
fn is_ip_address(host: &str) -> bool {
    host.parse::<std::net::SocketAddr>().is_ok() || host.parse::<std::net::IpAddr>().is_ok()
}

/// A GET or HEAD with one Range header that s3s cannot parse as a single
/// byte range (`bytes=5-1`, `bytes=x`, `items=0-1`, `bytes=0-1,3-4`,
/// `bytes=-`): S3
/// ignores such a header and answers with the whole object, where s3s
/// refuses it with 400 InvalidArgument. (An empty Range s3s ignores
/// itself; two Range headers it refuses.) Numbers over 2^63 - 1 s3s does
/// not parse either, so they are ignored too, where S3 would find them
/// unsatisfiable.
fn ignorable_range(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    let mut values = headers.get_all(http::header::RANGE).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => {
            // s3s takes `bytes=-` for a suffix of 0 bytes (416).
            !value.is_empty()
                && value.to_str().map_or(true, |v| {
                    v == "bytes=-" || s3s::dto::Range::parse(v).is_err()
                })
        }
        _ => false,
    }
}

/// The date conditions of a read (GetObject, HeadObject) and of a copy's
/// source (CopyObject).
const READ_DATE_CONDITIONS: [&str; 2] = ["if-modified-since", "if-unmodified-since"];
const COPY_DATE_CONDITIONS: [&str; 2] = [
    "x-amz-copy-source-if-modified-since",
    "x-amz-copy-source-if-unmodified-since",
];

/// A PUT that copies (CopyObject, or UploadPartCopy with its query).
fn is_copy(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::PUT && headers.contains_key("x-amz-copy-source")
}

/// What becomes of a header [`ignored_headers`] picks out.
#[derive(Debug, PartialEq, Eq)]
enum Fix {
    /// Dropped: S3 ignores it.
    Drop,
    /// Sent on as this value: an HTTP date in one of the obsolete forms
    /// RFC 9110 has a recipient accept, in the one s3s parses.
    Rewrite(String),
}

/// The headers of a GET, HEAD or CopyObject of an object that S3 ignores
/// or reads and s3s refuses with 400 InvalidArgument: an unparsable Range
/// ([`ignorable_range`]), and a date condition sent once that is not an
/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, the one form s3s
/// parses): one in RFC 850's or asctime's form is rewritten to it, as
/// RFC 9110 has a recipient accept those, and anything else
/// (`If-Modified-Since: Invalid Date`) is dropped, as RFC 9110 has it
/// ignored and S3 ignores it. Two of one header s3s refuses, as S3 does.
fn ignored_headers(method: &Method, headers: &HeaderMap) -> Vec<(&'static str, Fix)> {
    let mut ignored = Vec::new();
    if ignorable_range(method, headers) {
        ignored.push(("range", Fix::Drop));
    }
    let dates: &[&'static str] = if method == Method::GET || method == Method::HEAD {
        &READ_DATE_CONDITIONS
    } else if is_copy(method, headers) {
        &COPY_DATE_CONDITIONS
    } else {
        &[]
    };
    for name in dates {
        let mut values = headers.get_all(*name).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            continue;
        };
        let Ok(value) = value.to_str() else {
            ignored.push((*name, Fix::Drop));
            continue;
        };
        if s3s::dto::Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, value).is_ok() {
            continue;
        }
        ignored.push((
            *name,
            obsolete_http_date(value).map_or(Fix::Drop, Fix::Rewrite),
        ));
    }
    ignored
}

/// Month names of HTTP dates.
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An HTTP date in RFC 850's form (`Sunday, 06-Nov-94 08:49:37 GMT`) or
/// asctime's (`Sun Nov  6 08:49:37 1994`), as an IMF-fixdate.
fn obsolete_http_date(value: &str) -> Option<String> {
    let (year, month, day, clock) = if let Some((_, rest)) = value.split_once(", ") {
        // RFC 850: a two-digit year more than 50 years ahead is in the
        // past century (RFC 9110, section 5.6.7).
        let mut fields = rest.split_whitespace();
        let (date, clock, zone) = (fields.next()?, fields.next()?, fields.next()?);
        if zone != "GMT" || fields.next().is_some() {
            return None;
        }
        let mut date = date.split('-');
        let (day, month, year) = (date.next()?, date.next()?, date.next()?);
        if date.next().is_some() || year.len() != 2 {
            return None;
        }
        let year: i32 = year.parse().ok()?;
        let this_year = time::OffsetDateTime::now_utc().year();
        let year = if 2000 + year > this_year + 50 {
            1900 + year
        } else {
            2000 + year
        };
        (year, month, day, clock)
    } else {
        let mut fields = value.split_whitespace();
        let (_, month, day, clock, year) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        if fields.next().is_some() || year.len() != 4 {
            return None;
        }
        (year.parse().ok()?, month, day, clock)
    };
    let month_index = MONTHS.iter().position(|m| *m == month)?;
    let day: u8 = day.parse().ok()?;
    let date = time::Date::from_calendar_date(
        year,
        time::Month::try_from(u8::try_from(month_index + 1).ok()?).ok()?,
        day,
    )
    .ok()?;
    let mut hms = clock.split(':');
    let (h, m, s) = (hms.next()?, hms.next()?, hms.next()?);
    if hms.next().is_some() || [h, m, s].iter().any(|p| p.len() != 2) {
        return None;
    }
    let time = time::Time::from_hms(h.parse().ok()?, m.parse().ok()?, s.parse().ok()?).ok()?;
    let weekday = format!("{:?}", date.weekday());
    Some(format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        weekday.get(..3)?,
        date.day(),
        MONTHS[month_index],
        date.year(),
        time.hour(),
        time.minute(),
        time.second()
    ))
}

/// Serves the requests [`ignored_headers`] picks out as if they had not
/// sent those headers (or had sent their dates in the form s3s parses).
/// They are signed, so they cannot be changed before s3s checks the
/// signature; once s3s has checked it, this route hands the request,
/// without them and without its signature, to
/// `unauthenticated`: an S3 service over the same `Arbor` that checks no
/// signature, and that nothing but this route can reach. Its one access
/// check is a copy's source ([`CopySourceCheck`]); `Routes` has checked
/// the rest.
pub struct IgnoredHeaders {
    pub unauthenticated: S3Service,
}

impl IgnoredHeaders {
    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let S3Request {
            input,
            method,
            uri,
            mut headers,
            extensions,
            ..
        } = req;
        for (name, fix) in ignored_headers(&method, &headers) {
            match fix {
                Fix::Drop => {
                    headers.remove(name);
                }
                Fix::Rewrite(value) => {
                    let value = http::HeaderValue::from_str(&value)
                        .map_err(|e| error::internal("rewriting an HTTP date", e))?;
                    headers.insert(name, value);
                }
            }
        }
        headers.remove(http::header::AUTHORIZATION);
        let mut request = http::Request::new(input);
        *request.method_mut() = method;
        *request.uri_mut() = without_signature(uri)?;
        *request.headers_mut() = headers;
        *request.extensions_mut() = extensions;
        let response = self.unauthenticated.call(request).await.map_err(|e| {
            error::internal("serving without the ignored headers", format!("{e:?}"))
        })?;
        let (parts, body) = response.into_parts();
        let mut answer = S3Response::new(body);
        answer.status = Some(parts.status);
        answer.headers = parts.headers;
        answer.extensions = parts.extensions;
        Ok(answer)
    }
}

/// The access check of the service behind [`IgnoredHeaders`]: a copy's
/// source, as [`permission::AccessControl`] checks it, for the signer
/// `Routes` put in the extensions.
pub struct CopySourceCheck(pub permission::AccessControl);

#[async_trait::async_trait]
impl s3s::access::S3Access for CopySourceCheck {
    async fn check(&self, _cx: &mut s3s::access::S3AccessContext<'_>) -> S3Result<()> {
        // Not called: the service has no authentication, so s3s skips it.
        Ok(())
    }

    async fn copy_object(&self, req: &mut S3Request<s3s::dto::CopyObjectInput>) -> S3Result<()> {
        s3s::access::S3Access::copy_object(&self.0, req).await
    }
}

/// The query parameters of SigV4 and SigV2 presigned URLs.
const SIGNATURE_PARAMETERS: [&str; 10] = [
    "AWSAccessKeyId",
    "Expires",
    "Signature",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
    "X-Amz-SignedHeaders",
];

/// `uri` without the parameters of a presigned URL; the others are kept
/// as sent.
fn without_signature(uri: Uri) -> S3Result<Uri> {
    let Some(query) = uri.query() else {
        return Ok(uri);
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
            let name = urlencoding::decode(name).unwrap_or(Cow::Borrowed(name));
            !SIGNATURE_PARAMETERS.contains(&name.as_ref())
        })
        .collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let path_and_query = PathAndQuery::try_from(path_and_query)
        .map_err(|e| error::internal("rebuilding the request target", e))?;
    let mut parts = uri.into_parts();
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).map_err(|e| error::internal("rebuilding the request target", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(method: Method, values: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                http::header::RANGE,
                http::HeaderValue::from_str(value).expect("value"),
            );
        }
        ignorable_range(&method, &headers)
    }

    #[test]
    fn only_a_single_unparsable_range_of_a_read_is_ignored() {
        for value in [
            "bytes=5-1",
            "bytes=x",
            "bytes=",
            "items=0-1",
            "bytes=--1",
            "bytes=0-1,3-4",
            "bytes= 0-1",
            "bytes=0-1 ",
            "bytes=-",
        ] {
            assert!(range(Method::GET, &[value]), "{value}");
            assert!(range(Method::HEAD, &[value]), "{value}");
        }
        // Valid, if perhaps unsatisfiable: s3s serves or refuses them.
        for value in [
            "bytes=0-1",
            "bytes=5-",
            "bytes=-5",
            "bytes=1000000-",
            "bytes=-0",
        ] {
            assert!(!range(Method::GET, &[value]), "{value}");
        }
        assert!(!range(Method::GET, &[]), "no Range");
        assert!(!range(Method::GET, &[""]), "empty: s3s ignores it");
        assert!(!range(Method::GET, &["bytes=x", "bytes=y"]), "repeated");
        assert!(!range(Method::PUT, &["bytes=x"]), "not a read");
    }

    #[test]
    fn only_single_unparsable_date_conditions_are_ignored() {
        let ignored = |method: Method, headers: &[(&str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.append(
                    http::header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                    http::HeaderValue::from_str(value).expect("value"),
                );
            }
            ignored_headers(&method, &map)
                .into_iter()
                .map(|(name, fix)| {
                    assert_eq!(fix, Fix::Drop, "{name}");
                    name
                })
                .collect::<Vec<_>>()
        };
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        for method in [Method::GET, Method::HEAD] {
            assert_eq!(
                ignored(
                    method.clone(),
                    &[
                        ("if-modified-since", "Invalid Date"),
                        ("if-unmodified-since", date)
                    ]
                ),
                ["if-modified-since"]
            );
            assert_eq!(
                ignored(
                    method.clone(),
                    &[("range", "bytes=x"), ("if-unmodified-since", "2015-10-21")]
                ),
                ["range", "if-unmodified-since"]
            );
            assert!(ignored(method.clone(), &[("if-modified-since", date)]).is_empty());
            // Two of one header are s3s's to refuse.
            assert!(
                ignored(
                    method.clone(),
                    &[("if-modified-since", "x"), ("if-modified-since", "y")]
                )
                .is_empty()
            );
            // A copy's conditions mean nothing on a read.
            assert!(ignored(method, &[("x-amz-copy-source-if-modified-since", "x")]).is_empty());
        }
        let copy = [
            ("x-amz-copy-source", "/b/k"),
            ("x-amz-copy-source-if-unmodified-since", "Invalid Date"),
            ("if-modified-since", "x"),
        ];
        assert_eq!(
            ignored(Method::PUT, &copy),
            ["x-amz-copy-source-if-unmodified-since"]
        );
        // Not a copy: PutObject's headers are s3s's to judge.
        assert!(ignored(Method::PUT, &copy[1..]).is_empty());
        assert!(ignored(Method::POST, &copy).is_empty());
    }

    #[test]
    fn obsolete_http_dates_are_rewritten_not_ignored() {
        let imf = "Sun, 06 Nov 1994 08:49:37 GMT";
        for obsolete in ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            assert_eq!(
                obsolete_http_date(obsolete).as_deref(),
                Some(imf),
                "{obsolete}"
            );
            let mut headers = HeaderMap::new();
            headers.insert(
                "if-unmodified-since",
                http::HeaderValue::from_static(obsolete),
            );
            assert_eq!(
                ignored_headers(&Method::GET, &headers),
                [("if-unmodified-since", Fix::Rewrite(imf.to_owned()))]
            );
        }
        // The rewritten form is the one s3s parses.
        assert!(s3s::dto::Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, imf).is_ok());
        // A two-digit year far ahead is in the past century.
        assert_eq!(
            obsolete_http_date("Friday, 01-Jan-99 00:00:00 GMT").as_deref(),
            Some("Fri, 01 Jan 1999 00:00:00 GMT")
        );
        assert_eq!(
            obsolete_http_date("Monday, 01-Jan-24 00:00:00 GMT").as_deref(),
            Some("Mon, 01 Jan 2024 00:00:00 GMT")
        );
        for bad in [
            "Sunday, 06-Nov-94 08:49:37 CET",
            "Sunday, 31-Feb-94 08:49:37 GMT",
            "Sun Nov  6 25:49:37 1994",
            "Sun Nov  6 08:49:37 94",
            "Sun Nov  6 08:49:37 1994 extra",
            "Invalid Date",
            "",
        ] {
            assert_eq!(obsolete_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn presigned_parameters_are_dropped_and_the_rest_kept_as_sent() {
        let uri: Uri = "/b/k?response-content-type=text%2Fplain&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250101T000000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=ab&x-id=GetObject"
            .parse()
            .expect("uri");
        assert_eq!(
            without_signature(uri).expect("uri").to_string(),
            "/b/k?response-content-type=text%2Fplain&x-id=GetObject"
        );
        let uri: Uri = "/b/k?AWSAccessKeyId=AKID&Expires=1&Signature=x%2By"
            .parse()
            .expect("uri");
        assert_eq!(without_signature(uri).expect("uri").to_string(), "/b/k");
        let uri: Uri = "/b/k?X%2DAmz%2DSignature=ab&partNumber=1"
            .parse()
            .expect("uri");
        assert_eq!(
            without_signature(uri).expect("uri").to_string(),
            "/b/k?partNumber=1"
        );
        let uri: Uri = "/b/k".parse().expect("uri");
        assert_eq!(without_signature(uri).expect("uri").to_string(), "/b/k");
    }
}
