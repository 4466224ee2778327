//! The cluster secret: every request between Arbor's processes (Raft and
//! client RPCs to metadata nodes, chunk reads and writes to chunk servers)
//! carries a MAC under a secret all processes of a cluster share, and the
//! metadata and chunk servers refuse a request without a valid one. So
//! whoever can reach those ports but lacks the secret can neither propose
//! a Raft command nor read or write a chunk (docs/design.md, "Cluster
//! secret").
//!
//! The MAC is HMAC-SHA256 over the method, the path and query, the time
//! the request was signed and the SHA-256 of its body, in header
//! [`AUTH_HEADER`]: `v1 <unix ms> <hex mac>`; the body's hash travels in
//! [`CONTENT_SHA256_HEADER`]. A server refuses a request signed more than
//! [`CLOCK_SKEW_MAX`] away from its own clock. A body that streams (a
//! chunk) is signed as the chunk's own SHA-256, which the chunk server
//! checks against the bytes it stores anyway.

use std::path::Path;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use sha2_next::{Digest, Sha256};

/// The header carrying the MAC.
pub const AUTH_HEADER: &str = "x-arbor-auth";
/// The header carrying the hex SHA-256 of the body the MAC covers.
pub const CONTENT_SHA256_HEADER: &str = "x-arbor-content-sha256";
/// The content hash of a body signed without one (a chunk whose SHA-256
/// is known only at its end, as a trailer).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// How far a request's signing time may be from the server's clock.
pub const CLOCK_SKEW_MAX: Duration = Duration::from_secs(300);
/// Bytes of secret.
const SECRET_LEN: usize = 32;
/// The version tag of the MAC's format.
const VERSION: &str = "v1";

type HmacSha256 = hmac::Hmac<Sha256>;

/// A cluster's shared secret (32 random bytes, kept as 64 hex digits in a
/// file readable by the processes' user only). Never printed: `Debug`
/// shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret([u8; SECRET_LEN]);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No [`AUTH_HEADER`].
    Missing,
    /// The header is not `v1 <ms> <hex>`.
    Malformed,
    /// Signed too far from the server's clock.
    Skewed,
    /// The MAC does not match: another secret, or a changed request.
    BadMac,
    /// The body is not the one that was signed.
    BodyMismatch,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Missing => "the request carries no cluster authentication",
            Refusal::Malformed => "the cluster authentication header is malformed",
            Refusal::Skewed => "the request was signed too far from this server's clock",
            Refusal::BadMac => "the cluster authentication does not match (another secret?)",
            Refusal::BodyMismatch => "the body is not the one that was signed",
        })
    }
}

impl ClusterSecret {
    /// A new random secret.
    pub fn generate() -> ClusterSecret {
        ClusterSecret(rand::random())
    }

    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<ClusterSecret, String> {
        let bytes =
            hex::decode(text.trim()).map_err(|_| "a cluster secret is 64 hex digits".to_owned())?;
        let bytes: [u8; SECRET_LEN] = bytes
            .try_into()
            .map_err(|_| "a cluster secret is 64 hex digits".to_owned())?;
        Ok(ClusterSecret(bytes))
    }

    /// The secret as the 64 hex digits its file holds.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads the secret from `path`.
    pub fn read(path: &Path) -> std::io::Result<ClusterSecret> {
        let text = std::fs::read_to_string(path)?;
        ClusterSecret::from_hex(&text).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    /// Writes a new secret file (mode 0600), refusing to replace one.
    pub fn create(path: &Path) -> std::io::Result<ClusterSecret> {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let secret = ClusterSecret::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(path)?;
        writeln!(file, "{}", secret.to_hex())?;
        file.sync_all()?;
        Ok(secret)
    }

    /// The [`AUTH_HEADER`] value for a request signed at `now_ms` whose
    /// body hashes to `content_sha256` (hex).
    pub fn sign(
        &self,
        method: &str,
        path_and_query: &str,
        content_sha256: &str,
        now_ms: i64,
    ) -> String {
        let mac = self.mac(method, path_and_query, content_sha256, now_ms);
        format!("{VERSION} {now_ms} {}", hex::encode(mac))
    }

    /// Checks a request's [`AUTH_HEADER`] value (`header`) against the
    /// request and the server's clock `now_ms`. `content_sha256` is the
    /// [`CONTENT_SHA256_HEADER`] the request carried; the caller checks
    /// the body against it (see [`body_sha256`]).
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        header: Option<&str>,
        content_sha256: &str,
        now_ms: i64,
    ) -> Result<(), Refusal> {
        let header = header.ok_or(Refusal::Missing)?;
        let mut fields = header.split(' ');
        let (Some(VERSION), Some(signed_ms), Some(mac), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(Refusal::Malformed);
        };
        let signed_ms: i64 = signed_ms.parse().map_err(|_| Refusal::Malformed)?;
        let mac = hex::decode(mac).map_err(|_| Refusal::Malformed)?;
        let skew = i64::try_from(CLOCK_SKEW_MAX.as_millis()).unwrap_or(i64::MAX);
        if signed_ms.abs_diff(now_ms) > skew.unsigned_abs() {
            return Err(Refusal::Skewed);
        }
        let mut expected = self.keyed();
        feed(
            &mut expected,
            method,
            path_and_query,
            content_sha256,
            signed_ms,
        );
        expected.verify_slice(&mac).map_err(|_| Refusal::BadMac)
    }

    fn keyed(&self) -> HmacSha256 {
        match <HmacSha256 as KeyInit>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            // HMAC takes keys of any length.
            Err(_) => unreachable!("HMAC accepts a 32-byte key"),
        }
    }

    fn mac(
        &self,
        method: &str,
        path_and_query: &str,
        content_sha256: &str,
        now_ms: i64,
    ) -> Vec<u8> {
        let mut mac = self.keyed();
        feed(&mut mac, method, path_and_query, content_sha256, now_ms);
        mac.finalize().into_bytes().to_vec()
    }
}

fn feed(mac: &mut HmacSha256, method: &str, path_and_query: &str, content_sha256: &str, ms: i64) {
    for part in [
        VERSION,
        method,
        path_and_query,
        &ms.to_string(),
        content_sha256,
    ] {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
}

/// The hex SHA-256 of a body, as [`CONTENT_SHA256_HEADER`] carries it.
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The path and query of `uri`, as signed.
pub fn signed_target(uri: &http::Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

/// Adds the authentication headers to `headers` for a request to
/// `method uri` whose body hashes to `content_sha256`.
pub fn sign_headers(
    secret: &ClusterSecret,
    headers: &mut http::HeaderMap,
    method: &http::Method,
    uri: &http::Uri,
    content_sha256: &str,
    now_ms: i64,
) {
    let value = secret.sign(method.as_str(), signed_target(uri), content_sha256, now_ms);
    for (name, value) in [
        (AUTH_HEADER, value.as_str()),
        (CONTENT_SHA256_HEADER, content_sha256),
    ] {
        match http::HeaderValue::from_str(value) {
            Ok(value) => {
                headers.insert(name, value);
            }
            // Hex digits, digits and spaces only.
            Err(_) => unreachable!("authentication headers are ASCII"),
        }
    }
}

/// Checks a request's headers: the MAC, and that the signed content hash
/// is the one it carries. Returns the signed content hash for the caller
/// to check the body against.
pub fn verify_headers<'h>(
    secret: &ClusterSecret,
    method: &http::Method,
    uri: &http::Uri,
    headers: &'h http::HeaderMap,
    now_ms: i64,
) -> Result<&'h str, Refusal> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let content = header(CONTENT_SHA256_HEADER).ok_or(Refusal::Missing)?;
    secret.verify(
        method.as_str(),
        signed_target(uri),
        header(AUTH_HEADER),
        content,
        now_ms,
    )?;
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn a_signed_request_verifies_and_any_change_is_refused() {
        let secret = ClusterSecret::generate();
        let body = body_sha256(b"proposal");
        let header = secret.sign("POST", "/client/propose", &body, NOW);
        let verify = |method, target, header: Option<&str>, body: &str, now| {
            secret.verify(method, target, header, body, now)
        };
        assert_eq!(
            verify("POST", "/client/propose", Some(&header), &body, NOW),
            Ok(())
        );
        assert_eq!(
            verify(
                "POST",
                "/client/propose",
                Some(&header),
                &body,
                NOW + 299_000
            ),
            Ok(()),
            "within the skew"
        );
        assert_eq!(
            verify(
                "POST",
                "/client/propose",
                Some(&header),
                &body,
                NOW + 301_000
            ),
            Err(Refusal::Skewed)
        );
        assert_eq!(
            verify("POST", "/client/read", Some(&header), &body, NOW),
            Err(Refusal::BadMac)
        );
        assert_eq!(
            verify("PUT", "/client/propose", Some(&header), &body, NOW),
            Err(Refusal::BadMac)
        );
        let other = body_sha256(b"another proposal");
        assert_eq!(
            verify("POST", "/client/propose", Some(&header), &other, NOW),
            Err(Refusal::BadMac)
        );
        assert_eq!(
            verify("POST", "/client/propose", None, &body, NOW),
            Err(Refusal::Missing)
        );
        for bad in ["v1", "v2 1 00", "v1 x 00", "v1 1 zz", "v1 1 00 extra"] {
            assert_eq!(
                verify("POST", "/client/propose", Some(bad), &body, NOW),
                Err(Refusal::Malformed),
                "{bad}"
            );
        }
        let stranger = ClusterSecret::generate();
        let forged = stranger.sign("POST", "/client/propose", &body, NOW);
        assert_eq!(
            verify("POST", "/client/propose", Some(&forged), &body, NOW),
            Err(Refusal::BadMac)
        );
    }

    #[test]
    fn a_secret_round_trips_through_its_file_and_is_never_shown() {
        let dir = std::env::temp_dir().join(format!("arbor-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("cluster.secret");
        let secret = ClusterSecret::create(&path).expect("create");
        assert_eq!(ClusterSecret::read(&path).expect("read"), secret);
        assert!(ClusterSecret::create(&path).is_err(), "never replaced");
        assert!(!format!("{secret:?}").contains(&secret.to_hex()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(ClusterSecret::from_hex("abc").is_err());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
