//! Credentials: generated on first start and kept (mode 0600) in the data
//! directory, or given by the configuration (the `arbor` crate reads them
//! from a file or `ARBOR_ACCESS_KEY` / `ARBOR_SECRET_KEY`).
//! These are the administrator's key; signature checking itself is s3s's,
//! against `keyring::Keyring`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand::Rng;
use serde::{Deserialize, Serialize};

pub const CREDENTIALS_FILE: &str = "credentials.json";
const ACCESS_KEY_LEN: usize = 20;
const SECRET_KEY_LEN: usize = 40;

#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// Where the credentials in use came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialsSource {
    /// Given by the configuration.
    Configured,
    Stored,
    Generated,
}

/// `configured` if given; else the stored file; else new keys, stored with
/// mode 0600 before they are used.
pub fn load_or_create(
    data_dir: &Path,
    configured: Option<Credentials>,
) -> anyhow::Result<(Credentials, CredentialsSource)> {
    if let Some(credentials) = configured {
        anyhow::ensure!(
            !credentials.access_key.is_empty() && !credentials.secret_key.is_empty(),
            "the access key and the secret key must not be empty"
        );
        return Ok((credentials, CredentialsSource::Configured));
    }
    let path = data_dir.join(CREDENTIALS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let credentials: Credentials = serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            return Ok((credentials, CredentialsSource::Stored));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
    let credentials = Credentials {
        access_key: random_string(ACCESS_KEY_LEN, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
        secret_key: random_string(
            SECRET_KEY_LEN,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        ),
    };
    let tmp = data_dir.join(format!("{CREDENTIALS_FILE}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&serde_json::to_vec_pretty(&credentials)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok((credentials, CredentialsSource::Generated))
}

/// Credentials for a client of a running server (`arbor admin`) or a
/// gateway of a cluster: `configured` if given, else the data directory's
/// stored file; never generates.
pub fn load_existing(
    data_dir: &Path,
    configured: Option<Credentials>,
) -> anyhow::Result<(Credentials, CredentialsSource)> {
    if let Some(credentials) = configured {
        return Ok((credentials, CredentialsSource::Configured));
    }
    let path = data_dir.join(CREDENTIALS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (set ARBOR_ACCESS_KEY and ARBOR_SECRET_KEY, or --data-dir)",
            path.display()
        )
    })?;
    let credentials =
        serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok((credentials, CredentialsSource::Stored))
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| {
            let i = rng.random_range(0..alphabet.len());
            char::from(alphabet.get(i).copied().unwrap_or(b'A'))
        })
        .collect()
}

/// The region named in a SigV4 credential scope, from the Authorization
/// header or a presigned URL's `X-Amz-Credential`.
pub fn signed_region(headers: &http::HeaderMap, uri: &http::Uri) -> Option<String> {
    let scope = if let Some(auth) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let credential = auth.split("Credential=").nth(1)?;
        credential.split([',', ' ']).next()?.to_owned()
    } else {
        let query = uri.query()?;
        let raw = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("X-Amz-Credential="))?;
        urlencoding::decode(raw).ok()?.into_owned()
    };
    // access-key/date/region/service/aws4_request
    let mut parts = scope.rsplitn(4, '/');
    let _terminator = parts.next()?;
    let _service = parts.next()?;
    let region = parts.next()?;
    Some(region.to_owned())
}

/// The SHA-256 of a request's body when its SigV4 signature covers it and
/// s3s checks the bytes against it as they stream: a PUT whose signature
/// s3s accepted (`signed`) as SigV4, in the Authorization header or a
/// presigned URL, with a hex `x-amz-content-sha256`. s3s 0.14 (pinned)
/// then wraps the body in its `UploadStream`, which ends the body with an
/// error instead of its end if the bytes hash otherwise. The tests mirror
/// the order s3s picks a scheme in (a form POST, then SigV2 by a
/// `Signature` query parameter or an `AWS ` Authorization, then SigV4);
/// anything else (SigV2, anonymous, UNSIGNED-PAYLOAD, aws-chunked, forms)
/// is `None`, and the body is hashed as usual.
pub fn verified_payload_sha256(
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    signed: bool,
) -> Option<[u8; 32]> {
    if method != http::Method::PUT || !signed {
        return None;
    }
    let has_param = |name: &str| {
        uri.query().is_some_and(|query| {
            query
                .split('&')
                .any(|pair| pair.split('=').next() == Some(name))
        })
    };
    let authorization = match headers.get_all(http::header::AUTHORIZATION).iter().count() {
        0 => None,
        1 => Some(headers.get(http::header::AUTHORIZATION)?.to_str().ok()?),
        _ => return None,
    };
    if has_param("Signature") {
        return None;
    }
    let sigv4 = match authorization {
        Some(value) => value.starts_with("AWS4-HMAC-SHA256 "),
        None => has_param("X-Amz-Signature"),
    };
    if !sigv4 {
        return None;
    }
    let mut values = headers.get_all("x-amz-content-sha256").iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() || value.len() != 64 {
        return None;
    }
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(value, &mut sha256).ok()?;
    Some(sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_sigv4_put_with_a_hex_payload_hash_counts_as_verified() {
        let hash = "ab".repeat(32);
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = http::HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, http::HeaderValue::from_str(value).expect("value"));
            }
            map
        };
        let v4 = "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab";
        let plain: http::Uri = "/b/k".parse().expect("uri");
        let put = http::Method::PUT;
        let signed = headers(&[("authorization", v4), ("x-amz-content-sha256", &hash)]);
        assert_eq!(
            verified_payload_sha256(&put, &plain, &signed, true),
            Some([0xab; 32])
        );
        // Not signed (anonymous), not a PUT (a form upload is a POST).
        assert_eq!(verified_payload_sha256(&put, &plain, &signed, false), None);
        assert_eq!(
            verified_payload_sha256(&http::Method::POST, &plain, &signed, true),
            None
        );
        // SigV2, by header or query: s3s checks no payload hash.
        let v2 = headers(&[
            ("authorization", "AWS AKID:c2ln"),
            ("x-amz-content-sha256", &hash),
        ]);
        assert_eq!(verified_payload_sha256(&put, &plain, &v2, true), None);
        let v2_query: http::Uri = "/b/k?AWSAccessKeyId=AKID&Signature=c2ln&Expires=1"
            .parse()
            .expect("uri");
        assert_eq!(
            verified_payload_sha256(&put, &v2_query, &signed, true),
            None
        );
        // A presigned SigV4 URL with the header.
        let presigned: http::Uri = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab"
            .parse()
            .expect("uri");
        let hash_only = headers(&[("x-amz-content-sha256", &hash)]);
        assert_eq!(
            verified_payload_sha256(&put, &presigned, &hash_only, true),
            Some([0xab; 32])
        );
        assert_eq!(
            verified_payload_sha256(&put, &plain, &hash_only, true),
            None
        );
        // Payloads s3s does not hash as a whole.
        for payload in [
            "UNSIGNED-PAYLOAD",
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            &"zz".repeat(32),
            &"ab".repeat(31),
        ] {
            let h = headers(&[("authorization", v4), ("x-amz-content-sha256", payload)]);
            assert_eq!(
                verified_payload_sha256(&put, &plain, &h, true),
                None,
                "{payload}"
            );
        }
    }

    #[test]
    fn region_from_header_and_query() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKID/20250101/eu-west-3/s3/aws4_request, SignedHeaders=host, Signature=ab",
            ),
        );
        let uri: http::Uri = "/b/k".parse().expect("uri");
        assert_eq!(signed_region(&headers, &uri).as_deref(), Some("eu-west-3"));
        let uri: http::Uri = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20250101%2Fus-east-1%2Fs3%2Faws4_request"
            .parse()
            .expect("uri");
        assert_eq!(
            signed_region(&http::HeaderMap::new(), &uri).as_deref(),
            Some("us-east-1")
        );
        assert_eq!(
            signed_region(&http::HeaderMap::new(), &"/".parse().expect("uri")),
            None
        );
    }

    #[test]
    fn generated_credentials_are_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let (first, source) = load_or_create(dir.path(), None).expect("create");
        assert_eq!(source, CredentialsSource::Generated);
        let mode = std::fs::metadata(dir.path().join(CREDENTIALS_FILE))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, source) = load_or_create(dir.path(), None).expect("load");
        assert_eq!(source, CredentialsSource::Stored);
        assert_eq!(first.access_key, second.access_key);
        assert_eq!(first.secret_key, second.secret_key);
    }

    #[test]
    fn configured_credentials_win_over_the_stored_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        load_or_create(dir.path(), None).expect("create");
        let configured = Credentials {
            access_key: "AKID".into(),
            secret_key: "secret".into(),
        };
        for load in [load_or_create, load_existing] {
            let (credentials, source) =
                load(dir.path(), Some(configured.clone())).expect("configured");
            assert_eq!(source, CredentialsSource::Configured);
            assert_eq!(credentials.access_key, "AKID");
            assert_eq!(credentials.secret_key, "secret");
        }
    }
}
