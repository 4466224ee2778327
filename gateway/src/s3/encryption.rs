//! Server-side encryption, which Arbor does not do (docs/design.md,
//! "Encryption at rest"): a write that asks for it is refused before
//! anything is stored, instead of being stored in the clear and answered
//! as if encrypted, and a customer's key sent to read an object is
//! refused as S3 refuses it for an object stored without one.

use md5::Digest as _;
use s3s::dto::ServerSideEncryption;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

/// The SSE-C parameters of a request (`x-amz-server-side-encryption-
/// customer-*`, or their `x-amz-copy-source-` forms for a copy's source).
#[derive(Clone, Copy, Default)]
pub(super) struct CustomerKey<'a> {
    pub algorithm: Option<&'a str>,
    pub key: Option<&'a str>,
    pub key_md5: Option<&'a str>,
}

impl CustomerKey<'_> {
    fn given(&self) -> bool {
        self.algorithm.is_some() || self.key.is_some() || self.key_md5.is_some()
    }

    /// Checks the three headers as S3 does before it uses them: AES256, a
    /// 256-bit key in base64, and the key's MD5 in base64. Each fault is
    /// 400, with S3's message for it, so a client learns what is wrong
    /// with its request before it learns that Arbor has no SSE-C.
    fn check(&self) -> S3Result<()> {
        use base64::Engine;
        let base64 = base64::engine::general_purpose::STANDARD;
        let invalid =
            |message: &str| S3Error::with_message(S3ErrorCode::InvalidArgument, message.to_owned());
        match self.algorithm {
            None => {
                return Err(invalid(
                    "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.",
                ));
            }
            Some(CUSTOMER_ALGORITHM) => {}
            Some(_) => {
                return Err(s3_error!(
                    InvalidEncryptionAlgorithmError,
                    "The Encryption request you specified is not valid. Supported value: AES256."
                ));
            }
        }
        let Some(key) = self.key else {
            return Err(invalid(
                "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key.",
            ));
        };
        let key = match base64.decode(key) {
            Ok(key) if key.len() == CUSTOMER_KEY_LEN => key,
            _ => {
                return Err(invalid(
                    "The secret key was invalid for the specified algorithm.",
                ));
            }
        };
        let Some(key_md5) = self.key_md5 else {
            return Err(invalid(
                "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key.",
            ));
        };
        let Ok(key_md5) = base64.decode(key_md5) else {
            return Err(invalid(
                "The MD5 hash of the secret key was improperly encoded. The MD5 hash must be Base64 encoded.",
            ));
        };
        if key_md5 != md5::Md5::digest(&key).as_slice() {
            return Err(invalid(
                "The calculated MD5 hash of the key did not match the hash that was provided.",
            ));
        }
        Ok(())
    }
}

/// SSE-C's one algorithm.
const CUSTOMER_ALGORITHM: &str = "AES256";
/// An SSE-C key is 256 bits.
const CUSTOMER_KEY_LEN: usize = 32;

/// What a write that creates an object (PutObject, a browser upload,
/// CopyObject's destination, CreateMultipartUpload) asks of encryption.
#[derive(Clone, Copy, Default)]
pub(super) struct Asked<'a> {
    /// `x-amz-server-side-encryption`.
    pub method: Option<&'a ServerSideEncryption>,
    /// `x-amz-server-side-encryption-aws-kms-key-id`.
    pub kms_key_id: Option<&'a str>,
    /// `x-amz-server-side-encryption-context`.
    pub kms_context: Option<&'a str>,
    /// `x-amz-server-side-encryption-bucket-key-enabled` (an SSE-KMS
    /// setting).
    pub bucket_key: Option<bool>,
    pub customer: CustomerKey<'a>,
}

/// The [`CustomerKey`] of an s3s input with `sse_customer_*` fields.
macro_rules! customer_key {
    ($input:expr) => {
        $crate::s3::encryption::CustomerKey {
            algorithm: $input.sse_customer_algorithm.as_deref(),
            key: $input.sse_customer_key.as_deref(),
            key_md5: $input.sse_customer_key_md5.as_deref(),
        }
    };
}
pub(super) use customer_key;

/// The [`CustomerKey`] of a copy's source (`copy_source_sse_customer_*`).
macro_rules! copy_source_key {
    ($input:expr) => {
        $crate::s3::encryption::CustomerKey {
            algorithm: $input.copy_source_sse_customer_algorithm.as_deref(),
            key: $input.copy_source_sse_customer_key.as_deref(),
            key_md5: $input.copy_source_sse_customer_key_md5.as_deref(),
        }
    };
}
pub(super) use copy_source_key;

/// The [`Asked`] of an s3s input that creates an object.
macro_rules! asked {
    ($input:expr) => {
        $crate::s3::encryption::Asked {
            method: $input.server_side_encryption.as_ref(),
            kms_key_id: $input.ssekms_key_id.as_deref(),
            kms_context: $input.ssekms_encryption_context.as_deref(),
            bucket_key: $input.bucket_key_enabled,
            customer: $crate::s3::encryption::customer_key!($input),
        }
    };
}
pub(super) use asked;

/// Refuses a write that asks for server-side encryption: SSE-S3, SSE-KMS
/// (an S3 Bucket Key included) and SSE-C are 501 NotImplemented; a method
/// S3 does not know, and KMS parameters without `aws:kms`, are 400
/// InvalidArgument, as S3 answers them.
pub(super) fn refuse_on_write(asked: Asked<'_>) -> S3Result<()> {
    let method = asked.method.map(ServerSideEncryption::as_str);
    // SSE-C is a method of its own: asking for another beside it is a
    // bad request, as S3 answers it.
    if method.is_some() && asked.customer.given() {
        return Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
        ));
    }
    let kms = matches!(
        method,
        Some(ServerSideEncryption::AWS_KMS | ServerSideEncryption::AWS_KMS_DSSE)
    );
    if !kms && (asked.kms_key_id.is_some() || asked.kms_context.is_some()) {
        return Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms"
        ));
    }
    match method {
        None => {}
        Some(ServerSideEncryption::AES256) => {
            return Err(s3_error!(
                NotImplemented,
                "Server-side encryption (x-amz-server-side-encryption: AES256) is not supported: objects are stored unencrypted"
            ));
        }
        Some(_) if kms => {
            return Err(s3_error!(
                NotImplemented,
                "Server-side encryption with KMS keys is not supported: objects are stored unencrypted"
            ));
        }
        Some(_) => {
            return Err(s3_error!(
                InvalidArgument,
                "The encryption method specified is not supported"
            ));
        }
    }
    if asked.bucket_key == Some(true) {
        return Err(s3_error!(
            NotImplemented,
            "S3 Bucket Keys (SSE-KMS) are not supported: objects are stored unencrypted"
        ));
    }
    if asked.customer.given() {
        asked.customer.check()?;
        return Err(s3_error!(
            NotImplemented,
            "Server-side encryption with customer-provided keys (SSE-C) is not supported: objects are stored unencrypted"
        ));
    }
    Ok(())
}

/// Refuses a customer's key sent for an object or upload already stored,
/// once it is found (GetObject, HeadObject, GetObjectAttributes, a copy's
/// source, UploadPart, UploadPartCopy, ListParts and
/// CompleteMultipartUpload): none is stored with one, so S3's answer is
/// 400 InvalidRequest; a missing one is still 404.
pub(super) fn refuse_customer_key(key: CustomerKey<'_>) -> S3Result<()> {
    if key.given() {
        key.check()?;
        return Err(s3_error!(
            InvalidRequest,
            "The encryption parameters are not applicable to this object."
        ));
    }
    Ok(())
}

/// The headers that ask for SSE-S3 or SSE-KMS: a write's, never a
/// read's.
const WRITE_ONLY_HEADERS: [&str; 4] = [
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-context",
    "x-amz-server-side-encryption-bucket-key-enabled",
];

/// Refuses a GetObject or HeadObject that sends a write's encryption
/// headers: S3 answers 400 InvalidArgument (an object is read with the
/// keys it was stored with, or SSE-C's customer key).
pub(super) fn refuse_on_read(headers: &http::HeaderMap) -> S3Result<()> {
    match WRITE_ONLY_HEADERS
        .iter()
        .find(|h| headers.contains_key(**h))
    {
        Some(header) => Err(s3s::S3Error::with_message(
            s3s::S3ErrorCode::InvalidArgument,
            format!("{header} header is not supported for this operation."),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::S3ErrorCode;

    fn code(result: S3Result<()>) -> Option<S3ErrorCode> {
        result.err().map(|e| e.code().clone())
    }

    #[test]
    fn a_read_that_asks_for_encryption_is_an_invalid_argument() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(code(refuse_on_read(&headers)), None);
        headers.insert(
            "x-amz-server-side-encryption-customer-algorithm",
            http::HeaderValue::from_static("AES256"),
        );
        assert_eq!(
            code(refuse_on_read(&headers)),
            None,
            "SSE-C is a read's too"
        );
        for header in WRITE_ONLY_HEADERS {
            let mut headers = http::HeaderMap::new();
            headers.insert(header, http::HeaderValue::from_static("aws:kms"));
            assert_eq!(
                code(refuse_on_read(&headers)),
                Some(S3ErrorCode::InvalidArgument),
                "{header}"
            );
        }
    }

    #[test]
    fn every_way_of_asking_for_encryption_is_refused() {
        assert_eq!(code(refuse_on_write(Asked::default())), None);
        for (method, expected) in [
            ("AES256", S3ErrorCode::NotImplemented),
            ("aws:kms", S3ErrorCode::NotImplemented),
            ("aws:kms:dsse", S3ErrorCode::NotImplemented),
            ("rot13", S3ErrorCode::InvalidArgument),
        ] {
            let method = ServerSideEncryption::from(method.to_owned());
            let asked = Asked {
                method: Some(&method),
                ..Asked::default()
            };
            assert_eq!(code(refuse_on_write(asked)), Some(expected));
        }
        let aes = ServerSideEncryption::from("AES256".to_owned());
        let kms = ServerSideEncryption::from("aws:kms".to_owned());
        for (method, key_id, context, expected) in [
            (None, Some("key"), None, S3ErrorCode::InvalidArgument),
            (None, None, Some("e30="), S3ErrorCode::InvalidArgument),
            (Some(&aes), Some("key"), None, S3ErrorCode::InvalidArgument),
            (
                Some(&kms),
                Some("key"),
                Some("e30="),
                S3ErrorCode::NotImplemented,
            ),
        ] {
            let asked = Asked {
                method,
                kms_key_id: key_id,
                kms_context: context,
                ..Asked::default()
            };
            assert_eq!(
                code(refuse_on_write(asked)),
                Some(expected),
                "{method:?} {key_id:?} {context:?}"
            );
        }
        for (bucket_key, expected) in [
            (Some(true), Some(S3ErrorCode::NotImplemented)),
            (Some(false), None),
        ] {
            let asked = Asked {
                bucket_key,
                ..Asked::default()
            };
            assert_eq!(code(refuse_on_write(asked)), expected, "{bucket_key:?}");
        }
        let customer = CustomerKey {
            algorithm: Some("AES256"),
            key: Some(KEY),
            key_md5: Some(KEY_MD5),
        };
        let sse_c = Asked {
            customer,
            ..Asked::default()
        };
        assert_eq!(
            code(refuse_on_write(sse_c)),
            Some(S3ErrorCode::NotImplemented)
        );
        assert_eq!(
            code(refuse_customer_key(customer)),
            Some(S3ErrorCode::InvalidRequest)
        );
        assert_eq!(code(refuse_customer_key(CustomerKey::default())), None);
    }

    #[test]
    fn a_customer_key_beside_another_method_is_an_invalid_argument() {
        for method in ["AES256", "aws:kms"] {
            let method = ServerSideEncryption::from(method.to_owned());
            let asked = Asked {
                method: Some(&method),
                customer: CustomerKey {
                    algorithm: Some("AES256"),
                    key: Some(KEY),
                    key_md5: Some(KEY_MD5),
                },
                ..Asked::default()
            };
            let e = refuse_on_write(asked).expect_err("both");
            assert_eq!(*e.code(), S3ErrorCode::InvalidArgument, "{method:?}");
        }
    }

    /// A 256-bit key and its MD5, in base64.
    const KEY: &str = "pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs=";
    const KEY_MD5: &str = "DWygnHRtgiJ77HCm+1rvHw==";

    #[test]
    fn a_faulty_customer_key_is_a_bad_request_before_it_is_refused() {
        let valid = CustomerKey {
            algorithm: Some("AES256"),
            key: Some(KEY),
            key_md5: Some(KEY_MD5),
        };
        assert!(valid.check().is_ok());
        for (faulty, expected, says) in [
            (
                CustomerKey {
                    algorithm: None,
                    ..valid
                },
                S3ErrorCode::InvalidArgument,
                "valid encryption algorithm",
            ),
            (
                CustomerKey {
                    algorithm: Some("AES128"),
                    ..valid
                },
                S3ErrorCode::InvalidEncryptionAlgorithmError,
                "Supported value: AES256",
            ),
            (
                CustomerKey { key: None, ..valid },
                S3ErrorCode::InvalidArgument,
                "appropriate secret key",
            ),
            (
                CustomerKey {
                    key: Some("c2hvcnQ="),
                    ..valid
                },
                S3ErrorCode::InvalidArgument,
                "secret key was invalid",
            ),
            (
                CustomerKey {
                    key: Some("not base64!"),
                    ..valid
                },
                S3ErrorCode::InvalidArgument,
                "secret key was invalid",
            ),
            (
                CustomerKey {
                    key_md5: None,
                    ..valid
                },
                S3ErrorCode::InvalidArgument,
                "calculated MD5 of the secret key",
            ),
            (
                CustomerKey {
                    key_md5: Some("%%%"),
                    ..valid
                },
                S3ErrorCode::InvalidArgument,
                "improperly encoded",
            ),
            (
                CustomerKey {
                    key_md5: Some("AAAAAAAAAAAAAAAAAAAAAA=="),
                    ..valid
                },
                S3ErrorCode::InvalidArgument,
                "did not match",
            ),
        ] {
            for result in [
                refuse_customer_key(faulty),
                refuse_on_write(Asked {
                    customer: faulty,
                    ..Asked::default()
                }),
            ] {
                let e = result.expect_err("faulty");
                assert_eq!(*e.code(), expected, "{says}");
                assert!(
                    e.message().is_some_and(|m| m.contains(says)),
                    "{says}: {e:?}"
                );
            }
        }
    }
}
