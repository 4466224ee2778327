#![allow(dead_code)] // each test binary uses a different subset

//! aws-sdk-s3 clients for the suites, and SigV4 for raw requests.

pub mod sign;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

/// A path-style us-east-1 client for `endpoint`, over plain HTTP.
pub fn client(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            access_key,
            secret_key,
            None,
            None,
            "compat-tests",
        ))
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// [`client`], sending checksums only where S3 requires one, as SDKs
/// before 2025 and most other clients do.
pub fn client_without_checksums(
    endpoint: &str,
    access_key: &str,
    secret_key: &str,
) -> aws_sdk_s3::Client {
    let config = client(endpoint, access_key, secret_key)
        .config()
        .to_builder()
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A call's outcome as far as an error-code check cares: `Ok(())`, or
/// the S3 error code of the answer (`None` if it had none).
pub fn code_of<T, E: aws_sdk_s3::error::ProvideErrorMetadata>(
    result: Result<T, E>,
) -> Result<(), Option<String>> {
    result.map(|_| ()).map_err(|e| e.code().map(str::to_owned))
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

/// A client that sends each request once, without retries: a test that
/// kills or fills a server looks at each answer itself. `timeout` bounds
/// a whole operation.
pub fn client_once(
    endpoint: &str,
    access_key: &str,
    secret_key: &str,
    timeout: std::time::Duration,
) -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            access_key,
            secret_key,
            None,
            None,
            "compat-tests",
        ))
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .operation_timeout(timeout)
                .connect_timeout(std::time::Duration::from_secs(2))
                .build(),
        )
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A mebibyte.
pub const MIB: usize = 1024 * 1024;

/// What a key's object is made of, small enough to keep for every write
/// of a storm: one PUT of `size` bytes, or a multipart upload of 5 MiB
/// then `last` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    Single { seed: u64, size: usize },
    Multipart { seed: u64, last: usize },
}

impl Body {
    pub fn bytes(self) -> Vec<u8> {
        match self {
            Body::Single { seed, size } => bytes(size, seed),
            Body::Multipart { seed, last } => {
                let mut all = bytes(5 * MIB, seed);
                all.extend_from_slice(&bytes(last, seed + 1));
                all
            }
        }
    }

    /// Uploads a `Multipart` body to `bucket/key` in its two parts; the
    /// error names the step that failed and S3's code.
    pub async fn upload_multipart(
        self,
        s3: &aws_sdk_s3::Client,
        bucket: &str,
        key: &str,
    ) -> Result<(), String> {
        use aws_sdk_s3::error::ProvideErrorMetadata;
        use aws_sdk_s3::primitives::ByteStream;
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let Body::Multipart { seed, last } = self else {
            return Err("not a multipart body".to_owned());
        };
        let fail = |what: &str, code: Option<&str>| format!("{what} {key}: {code:?}");
        let created = s3
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| fail("create", e.code()))?;
        let id = created.upload_id().unwrap_or_default().to_owned();
        let mut parts = Vec::new();
        for (number, piece) in [(1, bytes(5 * MIB, seed)), (2, bytes(last, seed + 1))] {
            let out = s3
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&id)
                .part_number(number)
                .body(ByteStream::from(piece))
                .send()
                .await
                .map_err(|e| fail("part", e.code()))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(out.e_tag().unwrap_or_default())
                    .build(),
            );
        }
        s3.complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail("complete", e.code()))
    }
}

/// Waits (at most a minute) until exactly `expected` chunk files remain
/// under `data` (an `arbor serve` data directory).
pub async fn settle(data: &std::path::Path, expected: usize, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let count = arbor_compat_tests::chunk_files(&data.join("chunks")).len();
        if count == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {count} chunk files, expected {expected}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `method target` with no body, signed with `server`'s credentials.
pub fn signed(
    server: &arbor_compat_tests::ArborServer,
    method: &str,
    target: &str,
) -> arbor_compat_tests::RawResponse {
    let signer = sign::Signer::new(&server.endpoint, &server.access_key, &server.secret_key);
    let headers = signer.sign_headers(
        method,
        target,
        &[],
        sign::Payload::Sha256Of(b""),
        std::time::SystemTime::now(),
    );
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    arbor_compat_tests::raw_request(&server.endpoint, method, target, &refs, b"")
        .unwrap_or_else(|e| panic!("{method} {target}: {e:#}"))
}

/// Runs `arbor fs ARGS` against `server`; (exit code, stdout, stderr).
pub fn arbor_fs(
    server: &arbor_compat_tests::ArborServer,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(arbor_compat_tests::arbor_binary().expect("binary"))
        .arg("fs")
        .arg("--endpoint")
        .arg(&server.endpoint)
        .args(args)
        .env("ARBOR_ACCESS_KEY", &server.access_key)
        .env("ARBOR_SECRET_KEY", &server.secret_key)
        .output()
        .expect("run arbor fs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
