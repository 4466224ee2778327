//! Subresources: the query parameters (`?acl`, `?tagging`, `?website`,
//! ...) that choose an S3 operation rather than modify one.
//!
//! s3s 0.14.1's router looks for the subresources of the operations it
//! knows, per method and path, and falls through to the plain operation
//! for any other: `PUT /bucket/key?torrent` is a PutObject that replaces
//! the object with the request body, `DELETE /bucket/key?website` a
//! DeleteObject, `PUT /bucket?uploads` a CreateBucket. So once s3s has
//! chosen the operation, [`check`] refuses every request whose query names
//! a subresource that operation does not take, with 501 NotImplemented,
//! before anything runs. The list of what each operation takes is an
//! allow-list: an operation not named in [`taken_by`] takes none, so a
//! subresource nobody thought of is refused, never served as something
//! else.

use std::borrow::Cow;

use s3s::{S3Error, S3ErrorCode};

/// The subresources of the S3 API reference (and MinIO's `events`, which
/// s3s refuses on its own): a query parameter of one of these names picks
/// an operation. `uploadId` is here too: it turns an object request into
/// a multipart one, so a PutObject carrying it is no PutObject. So are
/// Arbor's own `arbor-recursive` and `arbor-replace`: a DELETE of a
/// bucket with `arbor-recursive` is no DeleteBucket. Sorted.
pub const SUBRESOURCES: [&str; 42] = [
    "abac",
    "accelerate",
    "acl",
    "analytics",
    "arbor-recursive",
    "arbor-replace",
    "attributes",
    "cors",
    "delete",
    "encryption",
    "events",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metadataConfiguration",
    "metadataInventoryTable",
    "metadataJournalTable",
    "metadataTable",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "renameObject",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "session",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versioning",
    "versions",
    "website",
];

/// The subresources the operation `op` (s3s's name for it) takes, of the
/// operations Arbor serves. Every other operation takes none: those Arbor
/// does not serve s3s answers with NotImplemented anyway.
fn taken_by(op: &str) -> &'static [&'static str] {
    match op {
        "GetBucketAcl" | "PutBucketAcl" | "GetObjectAcl" | "PutObjectAcl" => &["acl"],
        "GetBucketLocation" => &["location"],
        "GetBucketVersioning" | "PutBucketVersioning" => &["versioning"],
        "GetObjectLockConfiguration" | "PutObjectLockConfiguration" => &["object-lock"],
        "GetObjectRetention" | "PutObjectRetention" => &["retention"],
        "GetObjectLegalHold" | "PutObjectLegalHold" => &["legal-hold"],
        "ListObjectVersions" => &["versions"],
        "ListMultipartUploads" | "CreateMultipartUpload" => &["uploads"],
        "DeleteObjects" => &["delete"],
        // Arbor's recursive delete (`s3::object`); `arbor-replace` only
        // goes with `renameObject`, which `routes` serves before s3s.
        "DeleteObject" => &["arbor-recursive"],
        "GetObjectTagging"
        | "PutObjectTagging"
        | "DeleteObjectTagging"
        | "GetBucketTagging"
        | "PutBucketTagging"
        | "DeleteBucketTagging" => &["tagging"],
        "GetBucketOwnershipControls"
        | "PutBucketOwnershipControls"
        | "DeleteBucketOwnershipControls" => &["ownershipControls"],
        "GetObjectAttributes" => &["attributes"],
        "PutBucketPolicy" | "GetBucketPolicy" | "DeleteBucketPolicy" => &["policy"],
        "GetBucketPolicyStatus" => &["policyStatus"],
        "PutBucketCors" | "GetBucketCors" | "DeleteBucketCors" => &["cors"],
        "PutBucketLifecycleConfiguration"
        | "GetBucketLifecycleConfiguration"
        | "DeleteBucketLifecycle" => &["lifecycle"],
        "GetPublicAccessBlock" | "PutPublicAccessBlock" | "DeletePublicAccessBlock" => {
            &["publicAccessBlock"]
        }
        // Settings of features Arbor does not have, read and deleted as
        // never set (`s3::absent`).
        "GetBucketEncryption" | "DeleteBucketEncryption" => &["encryption"],
        "GetBucketWebsite" | "DeleteBucketWebsite" => &["website"],
        "GetBucketReplication" | "DeleteBucketReplication" => &["replication"],
        "GetBucketLogging" => &["logging"],
        "GetBucketRequestPayment" => &["requestPayment"],
        "GetBucketAccelerateConfiguration" => &["accelerate"],
        "GetBucketNotificationConfiguration" => &["notification"],
        "UploadPart"
        | "UploadPartCopy"
        | "ListParts"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload" => &["uploadId"],
        _ => &[],
    }
}

/// The names of the query's parameters, percent-decoded.
fn parameter_names(query: &str) -> impl Iterator<Item = Cow<'_, str>> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            urlencoding::decode(name).unwrap_or(Cow::Borrowed(name))
        })
}

/// The first subresource in `query`, if any.
pub fn first_in(query: Option<&str>) -> Option<Cow<'_, str>> {
    parameter_names(query?).find(|name| SUBRESOURCES.contains(&name.as_ref()))
}

/// The object PUTs s3s routes when the query names no whole upload and
/// part: PutObject, and CopyObject for one with `x-amz-copy-source`.
fn names_no_upload(op: &str) -> bool {
    matches!(op, "PutObject" | "CopyObject")
}

/// Refuses a request that s3s routed to `op` while its query names a
/// subresource `op` does not take (see the module comment).
pub fn check(op: &str, query: Option<&str>) -> Result<(), S3Error> {
    let Some(query) = query else { return Ok(()) };
    let taken = taken_by(op);
    let stray = parameter_names(query)
        .find(|name| SUBRESOURCES.contains(&name.as_ref()) && !taken.contains(&name.as_ref()));
    match stray {
        // An object PUT naming an upload but no part: S3 answers it as a
        // method the upload does not take.
        Some(name) if names_no_upload(op) && name == "uploadId" => Err(crate::error::with_headers(
            S3Error::with_message(
                S3ErrorCode::MethodNotAllowed,
                "The specified method is not allowed against this resource.",
            ),
            http::HeaderMap::from_iter([(
                http::header::ALLOW,
                http::HeaderValue::from_static("DELETE, POST, GET"),
            )]),
        )),
        // A part number without its upload: no PutObject, as S3 has it.
        None if names_no_upload(op) && parameter_names(query).any(|name| name == "partNumber") => {
            Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "This operation does not accept partNumber without uploadId",
            ))
        }
        None => Ok(()),
        // The names are ASCII words from `SUBRESOURCES`.
        Some(name) => Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            format!("The {name} subresource is not implemented for this request."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subresources_are_sorted_and_unique() {
        assert!(SUBRESOURCES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn an_object_put_names_both_an_upload_and_a_part_or_neither() {
        let e = check("PutObject", Some("uploadId=abc")).expect_err("no part");
        assert_eq!(e.code(), &S3ErrorCode::MethodNotAllowed);
        assert_eq!(e.status_code().map(|s| s.as_u16()), Some(405));
        assert_eq!(
            e.headers().and_then(|h| h.get(http::header::ALLOW)),
            Some(&http::HeaderValue::from_static("DELETE, POST, GET"))
        );
        for query in [
            "partNumber=1",
            "x-id=PutObject&partNumber=2",
            "%70artNumber=1",
        ] {
            let e = check("PutObject", Some(query)).expect_err(query);
            assert_eq!(e.code(), &S3ErrorCode::InvalidArgument, "{query}");
        }
        for op in ["PutObject", "CopyObject"] {
            let e = check(op, Some("uploadId=abc")).expect_err(op);
            assert_eq!(e.code(), &S3ErrorCode::MethodNotAllowed, "{op}");
            let e = check(op, Some("partNumber=1")).expect_err(op);
            assert_eq!(e.code(), &S3ErrorCode::InvalidArgument, "{op}");
        }
        assert!(check("UploadPart", Some("partNumber=1&uploadId=abc")).is_ok());
        assert!(check("GetObject", Some("partNumber=1")).is_ok());
    }

    #[test]
    fn every_operation_takes_only_its_own_subresources() {
        for (op, query) in [
            ("PutObject", "torrent"),
            ("PutObject", "website="),
            ("PutObject", "x-id=PutObject&cors"),
            ("DeleteObject", "acl"),
            ("DeleteBucket", "versioning"),
            ("CreateBucket", "uploads"),
            ("GetObject", "legal-hold"),
            ("HeadObject", "tagging"),
            ("ListObjects", "%74orrent"),
            ("GetObjectAcl", "acl&tagging"),
            ("PutBucketWebsite", "website"),
            ("DeleteBucket", "arbor-recursive"),
            ("PutObject", "arbor-replace"),
        ] {
            let e = check(op, Some(query)).expect_err(&format!("{op} ?{query}"));
            assert_eq!(e.code(), &S3ErrorCode::NotImplemented);
            assert_eq!(e.status_code().map(|s| s.as_u16()), Some(501));
        }
        for (op, query) in [
            ("PutObject", None),
            ("PutObject", Some("x-id=PutObject")),
            (
                "GetObject",
                Some("response-content-type=a&partNumber=1&versionId=v"),
            ),
            (
                "ListObjectsV2",
                Some("list-type=2&prefix=acl&delimiter=%2F"),
            ),
            ("GetObjectTagging", Some("tagging")),
            ("PutObjectAcl", Some("acl=")),
            ("UploadPart", Some("partNumber=1&uploadId=u")),
            ("CompleteMultipartUpload", Some("uploadId=u")),
            ("ListObjectVersions", Some("versions&prefix=p")),
            ("DeleteObjects", Some("delete")),
            ("GetBucketLocation", Some("location")),
            ("GetBucketEncryption", Some("encryption")),
            ("GetBucketRequestPayment", Some("requestPayment")),
            ("PutObject", Some("ACL&Torrent")),
        ] {
            assert!(check(op, query).is_ok(), "{op} {query:?}");
        }
    }

    #[test]
    fn the_first_subresource_is_found_by_its_decoded_name() {
        assert_eq!(first_in(None), None);
        assert_eq!(first_in(Some("prefix=acl&x-id=GetObject")), None);
        assert_eq!(
            first_in(Some("prefix=a&%61cl&tagging")).as_deref(),
            Some("acl")
        );
    }
}
