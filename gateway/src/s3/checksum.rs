//! Additional checksums (`x-amz-checksum-*`): which one a request carries,
//! computing it over the body as it streams, and checking it at the end,
//! whether the value came as a header or as an aws-chunked trailer.

use arbor_meta::records::{ChecksumAlgorithm, ObjectChecksum};
use base64::Engine;
use http::HeaderMap;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::{Checksum, ChecksumType};
use s3s::{S3Error, S3ErrorCode, s3_error};

pub const ALGORITHMS: [ChecksumAlgorithm; 5] = [
    ChecksumAlgorithm::Crc32,
    ChecksumAlgorithm::Crc32c,
    ChecksumAlgorithm::Crc64Nvme,
    ChecksumAlgorithm::Sha1,
    ChecksumAlgorithm::Sha256,
];

/// The checksum S3 stores with an object written without one (PutObject,
/// UploadPart of an upload that declared none), as S3 has done since
/// 2025: a full-object CRC64NVME, which multipart parts combine into.
pub const DEFAULT_ALGORITHM: ChecksumAlgorithm = ChecksumAlgorithm::Crc64Nvme;

/// The default checksum to store for a body sent without one, if its
/// hasher computed it.
pub fn default_stored(computed: &Checksum) -> Option<ObjectChecksum> {
    value(computed, DEFAULT_ALGORITHM).map(|value| ObjectChecksum {
        algorithm: DEFAULT_ALGORITHM,
        value: value.to_owned(),
        full_object: true,
        parts: Vec::new(),
    })
}

pub fn header_name(algorithm: ChecksumAlgorithm) -> &'static str {
    match algorithm {
        ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
        ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
        ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
        ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
        ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
    }
}

/// The S3 name of the algorithm (`CRC32`, ...), as in `x-amz-sdk-checksum-algorithm`.
pub fn algorithm_name(algorithm: ChecksumAlgorithm) -> &'static str {
    match algorithm {
        ChecksumAlgorithm::Crc32 => "CRC32",
        ChecksumAlgorithm::Crc32c => "CRC32C",
        ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
        ChecksumAlgorithm::Sha1 => "SHA1",
        ChecksumAlgorithm::Sha256 => "SHA256",
    }
}

fn digest_len(algorithm: ChecksumAlgorithm) -> usize {
    match algorithm {
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
        ChecksumAlgorithm::Crc64Nvme => 8,
        ChecksumAlgorithm::Sha1 => 20,
        ChecksumAlgorithm::Sha256 => 32,
    }
}

/// What a request says about its checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub algorithm: ChecksumAlgorithm,
    /// The value sent as a header; `None` when it comes as a trailer or the
    /// client asked only that it be computed (`x-amz-sdk-checksum-algorithm`).
    pub header_value: Option<String>,
    /// `x-amz-trailer` names this checksum.
    pub in_trailer: bool,
}

/// Reads the checksum a request announces. More than one is an error, as in S3.
pub fn expectation(headers: &HeaderMap) -> Result<Option<Expectation>, S3Error> {
    let trailer = headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let mut found: Option<Expectation> = None;
    for algorithm in ALGORITHMS {
        let name = header_name(algorithm);
        let header_value = match headers.get(name) {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| invalid_value(algorithm))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        let in_trailer = trailer.as_deref() == Some(name);
        if header_value.is_none() && !in_trailer {
            continue;
        }
        if found.is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
            ));
        }
        if let Some(value) = &header_value {
            decode(algorithm, value)?;
        }
        found = Some(Expectation {
            algorithm,
            header_value,
            in_trailer,
        });
    }
    if found.is_none()
        && let Some(trailer) = trailer.as_deref()
        && trailer.starts_with("x-amz-checksum-")
    {
        return Err(s3_error!(
            InvalidRequest,
            "The value specified in the x-amz-trailer header is not supported"
        ));
    }
    if found.is_none()
        && let Some(name) = headers
            .get("x-amz-sdk-checksum-algorithm")
            .and_then(|v| v.to_str().ok())
    {
        let algorithm = parse_algorithm(name).ok_or_else(|| {
            s3_error!(InvalidRequest, "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
        })?;
        found = Some(Expectation {
            algorithm,
            header_value: None,
            in_trailer: false,
        });
    }
    Ok(found)
}

pub fn parse_algorithm(name: &str) -> Option<ChecksumAlgorithm> {
    ALGORITHMS
        .into_iter()
        .find(|a| algorithm_name(*a).eq_ignore_ascii_case(name))
}

/// A hasher computing just `algorithm`.
pub fn hasher(algorithm: ChecksumAlgorithm) -> ChecksumHasher {
    let mut hasher = ChecksumHasher::default();
    match algorithm {
        ChecksumAlgorithm::Crc32 => hasher.crc32 = Some(Crc32::new()),
        ChecksumAlgorithm::Crc32c => hasher.crc32c = Some(Crc32c::new()),
        ChecksumAlgorithm::Crc64Nvme => hasher.crc64nvme = Some(Crc64Nvme::new()),
        ChecksumAlgorithm::Sha1 => hasher.sha1 = Some(Sha1::new()),
        ChecksumAlgorithm::Sha256 => hasher.sha256 = Some(Sha256::new()),
    }
    hasher
}

/// The base64 value of `algorithm` in a computed checksum set.
pub fn value(computed: &Checksum, algorithm: ChecksumAlgorithm) -> Option<&str> {
    match algorithm {
        ChecksumAlgorithm::Crc32 => computed.checksum_crc32.as_deref(),
        ChecksumAlgorithm::Crc32c => computed.checksum_crc32c.as_deref(),
        ChecksumAlgorithm::Crc64Nvme => computed.checksum_crc64nvme.as_deref(),
        ChecksumAlgorithm::Sha1 => computed.checksum_sha1.as_deref(),
        ChecksumAlgorithm::Sha256 => computed.checksum_sha256.as_deref(),
    }
}

/// After the body: compares the computed checksum with the header or trailer
/// value and returns what to store.
pub fn verify(
    expectation: &Expectation,
    computed: &Checksum,
    trailers: Option<&HeaderMap>,
) -> Result<ObjectChecksum, S3Error> {
    let algorithm = expectation.algorithm;
    let computed_value = value(computed, algorithm)
        .ok_or_else(|| crate::error::internal("checksum", "hasher produced no value"))?;
    let sent = if expectation.in_trailer {
        let trailer = trailers
            .and_then(|t| t.get(header_name(algorithm)))
            .ok_or_else(|| {
                s3_error!(
                    InvalidRequest,
                    "The x-amz-trailer header was declared but the trailer is missing"
                )
            })?;
        Some(
            trailer
                .to_str()
                .map_err(|_| invalid_value(algorithm))?
                .trim()
                .to_owned(),
        )
    } else {
        expectation.header_value.clone()
    };
    if let Some(sent) = sent {
        let sent_bytes = decode(algorithm, &sent)?;
        let computed_bytes = base64::engine::general_purpose::STANDARD
            .decode(computed_value)
            .map_err(|e| crate::error::internal("checksum", e))?;
        if sent_bytes != computed_bytes {
            return Err(S3Error::with_message(
                S3ErrorCode::BadDigest,
                format!(
                    "The {} you specified did not match the calculated checksum.",
                    algorithm_name(algorithm)
                ),
            ));
        }
    }
    Ok(ObjectChecksum {
        algorithm,
        value: computed_value.to_owned(),
        full_object: true,
        parts: Vec::new(),
    })
}

/// Refuses an object checksum sent with CompleteMultipartUpload that is
/// not one in form: base64 of the algorithm's digest, with an optional
/// `-N` part count (InvalidRequest, as S3 answers, before any comparison).
pub fn check_complete_value(algorithm: ChecksumAlgorithm, value: &str) -> Result<(), S3Error> {
    let digest = match value.rsplit_once('-') {
        Some((digest, count)) if !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit()) => {
            digest
        }
        Some(_) => return Err(invalid_value(algorithm)),
        None => value,
    };
    decode(algorithm, digest).map(drop)
}

fn decode(algorithm: ChecksumAlgorithm, value: &str) -> Result<Vec<u8>, S3Error> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| invalid_value(algorithm))?;
    if bytes.len() != digest_len(algorithm) {
        return Err(invalid_value(algorithm));
    }
    Ok(bytes)
}

fn invalid_value(algorithm: ChecksumAlgorithm) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InvalidRequest,
        format!("Value for {} header is invalid.", header_name(algorithm)),
    )
}

/// Sets the five `checksum_*` fields of an s3s output, part or result
/// from a stored checksum (every such s3s type has the same field names).
macro_rules! set_checksum_fields {
    ($target:expr, $stored:expr) => {{
        let dto = $crate::s3::checksum::to_dto($stored);
        $target.checksum_crc32 = dto.checksum_crc32;
        $target.checksum_crc32c = dto.checksum_crc32c;
        $target.checksum_crc64nvme = dto.checksum_crc64nvme;
        $target.checksum_sha1 = dto.checksum_sha1;
        $target.checksum_sha256 = dto.checksum_sha256;
    }};
}
pub(crate) use set_checksum_fields;

/// The full-object checksum of a multipart object from its parts' CRCs and
/// sizes: CRCs compose (crc(a ‖ b) from crc(a), crc(b) and |b|), so no byte
/// is read. `None` for SHA algorithms, which S3 allows only as composite.
pub fn combine_full_object(
    algorithm: ChecksumAlgorithm,
    parts: &[(String, u64)],
) -> Result<Option<String>, S3Error> {
    let (crc, width) = match algorithm {
        ChecksumAlgorithm::Crc32 => (crc_fast::CrcAlgorithm::Crc32IsoHdlc, 4),
        ChecksumAlgorithm::Crc32c => (crc_fast::CrcAlgorithm::Crc32Iscsi, 4),
        ChecksumAlgorithm::Crc64Nvme => (crc_fast::CrcAlgorithm::Crc64Nvme, 8),
        ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => return Ok(None),
    };
    let mut combined: Option<u64> = None;
    for (value, size) in parts {
        let bytes = decode(algorithm, value)?;
        let part = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        combined = Some(match combined {
            None => part,
            Some(sum) => crc_fast::checksum_combine(crc, sum, part, *size),
        });
    }
    let Some(sum) = combined else { return Ok(None) };
    let bytes = sum.to_be_bytes();
    Ok(Some(
        base64::engine::general_purpose::STANDARD.encode(&bytes[8 - width..]),
    ))
}

/// A stored checksum's type as S3 names it: FULL_OBJECT, or COMPOSITE
/// for one made of its parts' checksums (`-N` at its end).
pub fn checksum_type(stored: &ObjectChecksum) -> ChecksumType {
    ChecksumType::from_static(if stored.full_object {
        ChecksumType::FULL_OBJECT
    } else {
        ChecksumType::COMPOSITE
    })
}

/// Fills the output fields for a stored checksum.
pub fn to_dto(stored: &ObjectChecksum) -> Checksum {
    let mut out = Checksum::default();
    let value = Some(stored.value.clone());
    match stored.algorithm {
        ChecksumAlgorithm::Crc32 => out.checksum_crc32 = value,
        ChecksumAlgorithm::Crc32c => out.checksum_crc32c = value,
        ChecksumAlgorithm::Crc64Nvme => out.checksum_crc64nvme = value,
        ChecksumAlgorithm::Sha1 => out.checksum_sha1 = value,
        ChecksumAlgorithm::Sha256 => out.checksum_sha256 = value,
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().expect("header value"));
        }
        map
    }

    fn crc32_of(data: &[u8]) -> String {
        let mut h = hasher(ChecksumAlgorithm::Crc32);
        h.update(data);
        h.finalize().checksum_crc32.expect("crc32")
    }

    #[test]
    fn header_checksum_is_verified() {
        let good = crc32_of(b"hello");
        let e = expectation(&headers(&[("x-amz-checksum-crc32", &good)]))
            .expect("ok")
            .expect("some");
        let mut h = hasher(e.algorithm);
        h.update(b"hello");
        let stored = verify(&e, &h.finalize(), None).expect("matches");
        assert_eq!(stored.value, good);
        let mut h = hasher(e.algorithm);
        h.update(b"hellO");
        assert_eq!(
            verify(&e, &h.finalize(), None)
                .expect_err("mismatch")
                .code(),
            &S3ErrorCode::BadDigest
        );
    }

    #[test]
    fn a_complete_checksum_out_of_form_is_an_invalid_request() {
        let sha = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        for good in [sha.clone(), format!("{sha}-3")] {
            assert!(check_complete_value(ChecksumAlgorithm::Sha256, &good).is_ok());
        }
        for bad in [
            "bad".to_owned(),
            format!("{sha}-"),
            format!("{sha}-x"),
            crc32_of(b"a"),
        ] {
            let e = check_complete_value(ChecksumAlgorithm::Sha256, &bad).expect_err("bad");
            assert_eq!(e.code(), &S3ErrorCode::InvalidRequest, "{bad}");
        }
    }

    #[test]
    fn trailer_checksum_is_verified() {
        let e = expectation(&headers(&[("x-amz-trailer", "x-amz-checksum-crc32")]))
            .expect("ok")
            .expect("some");
        assert!(e.in_trailer);
        let mut h = hasher(e.algorithm);
        h.update(b"data");
        let computed = h.finalize();
        let trailers = headers(&[("x-amz-checksum-crc32", &crc32_of(b"data"))]);
        verify(&e, &computed, Some(&trailers)).expect("matches");
        assert_eq!(
            verify(&e, &computed, None).expect_err("missing").code(),
            &S3ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn part_crcs_combine_into_the_full_object_crc() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for algorithm in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc64Nvme,
        ] {
            let of = |bytes: &[u8]| {
                let mut h = hasher(algorithm);
                h.update(bytes);
                value(&h.finalize(), algorithm).expect("value").to_owned()
            };
            let parts = [
                (of(&data[..3000]), 3000),
                (of(&data[3000..3001]), 1),
                (of(&data[3001..]), 6999),
            ];
            let combined = combine_full_object(algorithm, &parts).expect("combine");
            assert_eq!(combined, Some(of(&data)), "{algorithm:?}");
        }
        assert_eq!(
            combine_full_object(ChecksumAlgorithm::Sha256, &[]).expect("sha"),
            None
        );
    }

    #[test]
    fn malformed_and_multiple_checksums_are_refused() {
        let bad = expectation(&headers(&[("x-amz-checksum-crc32", "not-base64!")]));
        assert_eq!(
            bad.expect_err("bad value").code(),
            &S3ErrorCode::InvalidRequest
        );
        let short = expectation(&headers(&[("x-amz-checksum-sha256", "AAAA")]));
        assert_eq!(
            short.expect_err("wrong length").code(),
            &S3ErrorCode::InvalidRequest
        );
        let two = expectation(&headers(&[
            ("x-amz-checksum-crc32", "AAAAAA=="),
            ("x-amz-checksum-crc32c", "AAAAAA=="),
        ]));
        assert_eq!(two.expect_err("two").code(), &S3ErrorCode::InvalidRequest);
        assert_eq!(expectation(&HeaderMap::new()).expect("none"), None);
        let computed_only = expectation(&headers(&[("x-amz-sdk-checksum-algorithm", "crc32c")]))
            .expect("ok")
            .expect("some");
        assert_eq!(computed_only.algorithm, ChecksumAlgorithm::Crc32c);
    }
}
