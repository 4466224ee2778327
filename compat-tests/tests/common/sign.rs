//! SigV4 for raw requests (region us-east-1, service s3), so suites can
//! send signed input no SDK would produce: odd paths, wrong digests, skewed
//! clocks, expired presigned URLs.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;

pub const REGION: &str = "us-east-1";

/// What `x-amz-content-sha256` claims about the body.
#[derive(Clone, Copy, Debug)]
pub enum Payload<'a> {
    /// The SHA-256 of these bytes (normally the body sent).
    Sha256Of(&'a [u8]),
    /// `UNSIGNED-PAYLOAD`.
    Unsigned,
    /// This exact value, e.g. a hash of other bytes.
    Claimed(&'a str),
}

/// Signs requests for one endpoint with one key pair.
#[derive(Clone, Debug)]
pub struct Signer {
    /// `http://host:port`
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
}

impl Signer {
    pub fn new(endpoint: &str, access_key: &str, secret_key: &str) -> Signer {
        Signer {
            endpoint: endpoint.to_owned(),
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
        }
    }

    fn settings() -> SigningSettings {
        let mut settings = SigningSettings::default();
        // S3 signs the path as sent: no normalisation, no double encoding.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings
    }

    /// The headers to send: `headers` (all signed) plus `x-amz-date`,
    /// `x-amz-content-sha256` and `authorization`, signed at `time`.
    /// `target` is the path and query exactly as it will be sent.
    pub fn sign_headers(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
        time: SystemTime,
    ) -> Vec<(String, String)> {
        let identity = Credentials::new(
            &self.access_key,
            &self.secret_key,
            None,
            None,
            "compat-tests",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("s3")
            .time(time)
            .settings(Self::settings())
            .build()
            .expect("signing params")
            .into();
        let body = match payload {
            Payload::Sha256Of(bytes) => SignableBody::Bytes(bytes),
            Payload::Unsigned => SignableBody::UnsignedPayload,
            Payload::Claimed(value) => SignableBody::Precomputed(value.to_owned()),
        };
        let uri = format!("{}{target}", self.endpoint);
        let request = SignableRequest::new(method, uri, headers.iter().copied(), body)
            .expect("signable request");
        let (instructions, _signature) = sign(request, &params).expect("sign").into_parts();
        let mut out: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        out.extend(
            instructions
                .headers()
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        out
    }

    /// A presigned `target` (path and query) valid for `expires_in` from `time`.
    pub fn presign(
        &self,
        method: &str,
        target: &str,
        expires_in: Duration,
        time: SystemTime,
    ) -> String {
        let identity = Credentials::new(
            &self.access_key,
            &self.secret_key,
            None,
            None,
            "compat-tests",
        )
        .into();
        let mut settings = Self::settings();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
        settings.expires_in = Some(expires_in);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .expect("signing params")
            .into();
        let uri = format!("{}{target}", self.endpoint);
        let request = SignableRequest::new(
            method,
            uri,
            std::iter::empty(),
            SignableBody::UnsignedPayload,
        )
        .expect("signable request");
        let (instructions, _signature) = sign(request, &params).expect("sign").into_parts();
        let mut out = target.to_owned();
        for (name, value) in instructions.params() {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(&encode(name));
            out.push('=');
            out.push_str(&encode(value));
        }
        out
    }
}

/// Percent-encodes everything but SigV4's unreserved characters.
pub fn encode(s: &str) -> Cow<'_, str> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
    if s.bytes().all(unreserved) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

/// A browser upload form (`POST /bucket`, multipart/form-data).
pub struct PostForm {
    /// `content-type` with the boundary.
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Signer {
    /// A POST upload of `file` signed at `time`: the policy's conditions
    /// are `conditions` (JSON values, joined as given) plus the signing
    /// fields; `fields` are the form's fields before the signing ones, in
    /// order. The policy expires `valid_for` after `time` (negative:
    /// already expired).
    pub fn post_form(
        &self,
        fields: &[(&str, &str)],
        conditions: &[String],
        file: &[u8],
        time: SystemTime,
        valid_for: i64,
    ) -> PostForm {
        let date = time::OffsetDateTime::from(time);
        let day = format!(
            "{:04}{:02}{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        );
        let amz_date = format!(
            "{day}T{:02}{:02}{:02}Z",
            date.hour(),
            date.minute(),
            date.second()
        );
        let credential = format!("{}/{day}/{REGION}/s3/aws4_request", self.access_key);
        let expires = date + time::Duration::seconds(valid_for);
        let expiration = expires
            .format(&time::format_description::well_known::Rfc3339)
            .expect("expiration");
        let mut all = conditions.to_vec();
        all.push(r#"{"x-amz-algorithm":"AWS4-HMAC-SHA256"}"#.to_owned());
        all.push(format!(r#"{{"x-amz-credential":"{credential}"}}"#));
        all.push(format!(r#"{{"x-amz-date":"{amz_date}"}}"#));
        let policy = format!(
            r#"{{"expiration":"{expiration}","conditions":[{}]}}"#,
            all.join(",")
        );
        use base64::Engine;
        let policy = base64::engine::general_purpose::STANDARD.encode(policy);
        let key = v4::generate_signing_key(&self.secret_key, time, REGION, "s3");
        let signature = v4::calculate_signature(key, policy.as_bytes());
        let boundary = "----arborformboundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        let mut field = |name: &str, value: &str| {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        };
        for (name, value) in fields {
            field(name, value);
        }
        field("policy", &policy);
        field("x-amz-algorithm", "AWS4-HMAC-SHA256");
        field("x-amz-credential", &credential);
        field("x-amz-date", &amz_date);
        field("x-amz-signature", &signature);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        PostForm {
            content_type: format!("multipart/form-data; boundary={boundary}"),
            body,
        }
    }
}
