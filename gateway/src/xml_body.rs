//! Request bodies s3s reads whole before an operation runs: the XML of
//! DeleteObjects, CompleteMultipartUpload, tagging, ACLs, CreateBucket and
//! the bucket configurations (and the JSON of a bucket policy).
//!
//! s3s 0.14 (pinned) reads them through `http_body_util::Limited` and its
//! check of `x-amz-content-sha256`, and answers every failure of that read
//! but one of its own with 500 InternalError: a body over the limit, or
//! whose SHA-256 is not the signed one. So the front end watches each
//! request body ([`WatchedBody`]); [`check_subresource_and_size`], part of
//! s3s's access check (run once the request is authenticated and its operation known, before the
//! body is read), arms the watch for these operations; and when s3s
//! answers 500, [`BodyWatch::verdict`] says which client mistake caused it.
//!
//! A body sent without a length, which the front end reads whole first
//! to give it one, is watched the same way ([`WatchedBody::read`]).
//!
//! The watch also checks such a body against its `Content-MD5` and its
//! `x-amz-checksum-` header, which s3s does not: a body that ends with
//! another digest ends with an error instead, which s3s answers 500 and
//! [`BodyWatch::verdict`] names BadDigest. (CompleteMultipartUpload's
//! checksum header is the object's, not its body's.) A DeleteObjects must
//! name a digest (`Content-MD5` or an `x-amz-checksum-` header), as S3
//! requires of it.
//!
//! The watch also takes back a body an operation dropped without reading
//! it (a PUT refused before it streams: a failed condition, no metadata
//! leader), so the front end can read it to its end after answering
//! ([`BodyWatch::take_unread`]): a connection closed on a body the client
//! is still sending loses the answer to a reset.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use md5::Md5;
use s3s::access::S3AccessContext;
use s3s::{S3Error, S3ErrorCode, S3Result, StdError};
use sha2::{Digest as _, Sha256};

use arbor_meta::records::ChecksumAlgorithm;
use s3s::checksum::ChecksumHasher;

use crate::limits::XML_BODY_SIZE_MAX;
use crate::s3::checksum::{self, Expectation};
use crate::{error, subresource};

/// The operations whose body S3 takes only with a digest of it
/// (`Content-MD5` or an `x-amz-checksum-` header or trailer), else 400
/// InvalidRequest: those whose API reference says so and that every SDK
/// sends one with. (S3's model marks more so; asking it of those too
/// would refuse clients that send, say, a bucket policy or tags without
/// one, which Arbor has always taken.)
const DIGEST_REQUIRED: [&str; 6] = [
    "DeleteObjects",
    "PutBucketCors",
    "PutBucketLifecycleConfiguration",
    "PutObjectLegalHold",
    "PutObjectLockConfiguration",
    "PutObjectRetention",
];

/// The operations s3s reads the body of whole (as s3s 0.14.1's
/// `resolve_route` marks them); every other body streams to the operation.
const READ_WHOLE: [&str; 30] = [
    "CompleteMultipartUpload",
    "CreateBucket",
    "CreateBucketMetadataTableConfiguration",
    "DeleteObjects",
    "PutBucketAccelerateConfiguration",
    "PutBucketAcl",
    "PutBucketAnalyticsConfiguration",
    "PutBucketCors",
    "PutBucketEncryption",
    "PutBucketIntelligentTieringConfiguration",
    "PutBucketInventoryConfiguration",
    "PutBucketLifecycleConfiguration",
    "PutBucketLogging",
    "PutBucketMetricsConfiguration",
    "PutBucketNotificationConfiguration",
    "PutBucketOwnershipControls",
    "PutBucketPolicy",
    "PutBucketReplication",
    "PutBucketRequestPayment",
    "PutBucketTagging",
    "PutBucketVersioning",
    "PutBucketWebsite",
    "PutObjectAcl",
    "PutObjectLegalHold",
    "PutObjectLockConfiguration",
    "PutObjectRetention",
    "PutObjectTagging",
    "PutPublicAccessBlock",
    "RestoreObject",
    "SelectObjectContent",
];

/// S3's answer to a body over `XML_BODY_SIZE_MAX`.
pub fn too_large() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MaxMessageLengthExceeded,
        format!(
            "Your request was too big: the request body may be at most {XML_BODY_SIZE_MAX} bytes."
        ),
    )
}

fn limit() -> u64 {
    u64::try_from(XML_BODY_SIZE_MAX).unwrap_or(u64::MAX)
}

/// What the front end learns about one request body while s3s reads it.
#[derive(Debug, Default)]
pub struct BodyWatch {
    /// Set once s3s is about to read the body whole; until then nothing is
    /// recorded, so streamed bodies (PutObject, UploadPart) cost one load.
    armed: AtomicBool,
    read: Mutex<WholeRead>,
    /// The rest of a body dropped before its end.
    unread: Mutex<Option<Incoming>>,
}

#[derive(Default)]
struct WholeRead {
    /// Whether the bytes on the wire are the payload itself, so counting
    /// them measures it (not so for aws-chunked framing, whose decoded
    /// length s3s checks against the declared one).
    counting: bool,
    seen: u64,
    /// The length the request declares (for aws-chunked, decoded).
    declared: Option<u64>,
    /// The SHA-256 `x-amz-content-sha256` names, and the hash of what
    /// has been read so far.
    sha256: Option<([u8; 32], Sha256)>,
    /// The MD5 `Content-MD5` names, and the hash of what has been read.
    md5: Option<([u8; 16], Md5)>,
    /// The checksum header the body is sent with, and its hasher.
    checksum: Option<(Expectation, ChecksumHasher)>,
    /// Which digest the whole body, once read, turned out not to match.
    differs: Option<BodyDigest>,
}

impl std::fmt::Debug for WholeRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WholeRead")
            .field("counting", &self.counting)
            .field("seen", &self.seen)
            .field("declared", &self.declared)
            .field("differs", &self.differs)
            .finish_non_exhaustive()
    }
}

/// A digest a body is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyDigest {
    Md5,
    Checksum(ChecksumAlgorithm),
}

impl BodyWatch {
    fn arm(
        &self,
        counting: bool,
        declared: Option<u64>,
        sha256: Option<[u8; 32]>,
        md5: Option<[u8; 16]>,
        checksum: Option<Expectation>,
    ) {
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        read.counting = counting;
        read.declared = declared;
        read.sha256 = sha256.map(|expected| (expected, Sha256::new()));
        read.md5 = md5.map(|expected| (expected, Md5::new()));
        read.checksum = checksum.map(|e| {
            let hasher = checksum::hasher(e.algorithm);
            (e, hasher)
        });
        self.armed.store(true, Ordering::Release);
    }

    fn saw(&self, data: &Bytes) {
        if !self.armed.load(Ordering::Acquire) {
            return;
        }
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        read.seen = read
            .seen
            .saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        let within = read.seen <= limit();
        if let Some((_, hasher)) = &mut read.sha256
            && within
        {
            hasher.update(data);
        }
        if let Some((_, hasher)) = &mut read.md5
            && within
        {
            hasher.update(data);
        }
        if let Some((_, hasher)) = &mut read.checksum
            && within
        {
            hasher.update(data);
        }
    }

    /// Once the whole body is read: the digest it does not match, if any
    /// (aws-chunked framing is not hashed: not told). Decided once.
    fn ended(&self) -> Option<BodyDigest> {
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        if !read.counting || read.seen > limit() {
            return None;
        }
        if let Some((expected, hasher)) = read.md5.take()
            && hasher.finalize().as_slice() != expected
        {
            read.differs = Some(BodyDigest::Md5);
        }
        if let Some((expected, hasher)) = read.checksum.take()
            && read.differs.is_none()
            && checksum::verify(&expected, &hasher.finalize(), None).is_err()
        {
            read.differs = Some(BodyDigest::Checksum(expected.algorithm));
        }
        read.differs
    }

    /// The rest of the body, if it was dropped before its end.
    pub fn take_unread(&self) -> Option<Incoming> {
        self.unread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The client's mistake that made s3s fail reading the body whole, if
    /// that is what happened.
    pub fn verdict(&self) -> Option<S3Error> {
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        if read.counting && read.seen > limit() {
            return Some(too_large());
        }
        // s3s checks the hash once it has read the declared length.
        if let Some((expected, hasher)) = &read.sha256
            && read.counting
            && Some(read.seen) == read.declared
            && hasher.clone().finalize().as_slice() != expected.as_slice()
        {
            return Some(error::content_sha256_mismatch());
        }
        match read.differs? {
            BodyDigest::Md5 => Some(S3Error::with_message(
                S3ErrorCode::BadDigest,
                "The Content-MD5 you specified did not match what we received.",
            )),
            BodyDigest::Checksum(algorithm) => Some(S3Error::with_message(
                S3ErrorCode::BadDigest,
                format!(
                    "The {} you specified did not match the calculated checksum.",
                    checksum::algorithm_name(algorithm)
                ),
            )),
        }
    }
}

/// A request body that reports what passes through it to its [`BodyWatch`].
/// Dropped unread, it hands itself to the watch (one read from and then
/// dropped failed or stalled: it is not read any further).
pub struct WatchedBody {
    /// `None` only once dropped.
    inner: Option<Source>,
    watch: Arc<BodyWatch>,
    /// Whether anything polled it.
    polled: bool,
    /// Whether it ended (with its last frame, or with an error).
    ended: bool,
}

/// Where a watched body's bytes come from.
enum Source {
    /// The connection, as they arrive.
    Wire(Incoming),
    /// Read already: a body sent without a length, which the front end
    /// reads whole to give it one. Taken as it is sent on.
    Read(Option<Bytes>),
}

impl WatchedBody {
    pub fn new(inner: Incoming, watch: Arc<BodyWatch>) -> WatchedBody {
        WatchedBody::of(Source::Wire(inner), watch)
    }

    /// A body already read whole, watched as if it came from the wire, so
    /// that it is checked against its digests as well.
    pub fn read(bytes: Bytes, watch: Arc<BodyWatch>) -> WatchedBody {
        WatchedBody::of(Source::Read(Some(bytes)), watch)
    }

    fn of(source: Source, watch: Arc<BodyWatch>) -> WatchedBody {
        WatchedBody {
            inner: Some(source),
            watch,
            polled: false,
            ended: false,
        }
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        if let Some(Source::Wire(inner)) = self.inner.take()
            && !self.polled
            && !inner.is_end_stream()
        {
            *self
                .watch
                .unread
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(inner);
        }
    }
}

impl Body for WatchedBody {
    type Data = Bytes;
    type Error = StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StdError>>> {
        self.polled = true;
        if self.ended {
            return Poll::Ready(None);
        }
        let polled = match self.inner.as_mut() {
            None => return Poll::Ready(None),
            Some(Source::Wire(inner)) => Pin::new(inner)
                .poll_frame(cx)
                .map(|frame| frame.map(|result| result.map_err(StdError::from))),
            Some(Source::Read(bytes)) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.watch.saw(data);
                }
            }
            Poll::Ready(None) => {
                self.ended = true;
                if let Some(digest) = self.watch.ended() {
                    let error = format!("the body does not match its {digest:?} digest");
                    return Poll::Ready(Some(Err(error.into())));
                }
            }
            Poll::Ready(Some(Err(_))) => self.ended = true,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            None => true,
            Some(Source::Wire(inner)) => inner.is_end_stream(),
            // Not yet: its end, once polled, is where the digests are
            // checked.
            Some(Source::Read(_)) => self.ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            None => SizeHint::with_exact(0),
            Some(Source::Wire(inner)) => inner.size_hint(),
            Some(Source::Read(bytes)) => SizeHint::with_exact(
                bytes
                    .as_ref()
                    .map_or(0, |b| u64::try_from(b.len()).unwrap_or(u64::MAX)),
            ),
        }
    }
}

/// The first part of s3s's access check (`permission::AccessControl`,
/// which then checks who may do what): the query may name no subresource
/// its operation does not take ([`subresource::check`]), and a body s3s is
/// about to read whole is refused if it declares a length over
/// `XML_BODY_SIZE_MAX`, else watched.
pub(crate) fn check_subresource_and_size(cx: &mut S3AccessContext<'_>) -> S3Result<()> {
    subresource::check(cx.s3_op().name(), cx.uri().query())?;
    if !READ_WHOLE.contains(&cx.s3_op().name()) {
        return Ok(());
    }
    // For aws-chunked bodies s3s has put the decoded length here.
    let declared = cx
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit()) {
        return Err(too_large());
    }
    let payload = cx.headers().get("x-amz-content-sha256");
    let aws_chunked = payload.is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"));
    // Otherwise a SHA-256 in hex, or UNSIGNED-PAYLOAD.
    let sha256 = payload.and_then(|v| {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(v.as_bytes(), &mut digest)
            .ok()
            .map(|()| digest)
    });
    let md5 = content_md5(cx.headers())?;
    // CompleteMultipartUpload's checksum header is the object's.
    let checksum = if cx.s3_op().name() == "CompleteMultipartUpload" {
        None
    } else {
        checksum::expectation(cx.headers())?.filter(|e| e.header_value.is_some())
    };
    if DIGEST_REQUIRED.contains(&cx.s3_op().name())
        && md5.is_none()
        && !names_checksum(cx.headers())
    {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "Missing required header for this request: Content-Md5.",
        ));
    }
    if let Some(watch) = cx.extensions_mut().get::<Arc<BodyWatch>>() {
        watch.arm(!aws_chunked, declared, sha256, md5, checksum);
    }
    Ok(())
}

/// The request's `Content-MD5`, if it sends one: 16 bytes in base64, else
/// 400 InvalidDigest.
fn content_md5(headers: &http::HeaderMap) -> S3Result<Option<[u8; 16]>> {
    use base64::Engine;
    let Some(value) = headers.get("content-md5") else {
        return Ok(None);
    };
    let invalid = || {
        S3Error::with_message(
            S3ErrorCode::InvalidDigest,
            "The Content-MD5 you specified was invalid.",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| invalid())?;
    <[u8; 16]>::try_from(bytes.as_slice())
        .map(Some)
        .map_err(|_| invalid())
}

/// Whether the request sends a checksum of its body instead of an MD5: an
/// `x-amz-checksum-<algorithm>` header, or a trailer of one.
fn names_checksum(headers: &http::HeaderMap) -> bool {
    let trailer = headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    checksum::ALGORITHMS.into_iter().any(|algorithm| {
        let name = checksum::header_name(algorithm);
        headers.contains_key(name) || trailer.as_deref() == Some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_armed_watch_over_the_limit_has_a_verdict() {
        let over = Bytes::from(vec![0u8; XML_BODY_SIZE_MAX + 1]);
        let watch = BodyWatch::default();
        watch.saw(&over);
        assert!(watch.verdict().is_none(), "not armed: a streamed body");

        let watch = BodyWatch::default();
        watch.arm(true, None, None, None, None);
        watch.saw(&Bytes::from(vec![0u8; XML_BODY_SIZE_MAX]));
        assert!(watch.verdict().is_none(), "at the limit");
        watch.saw(&Bytes::from_static(b"x"));
        let e = watch.verdict().expect("over the limit");
        assert_eq!(e.code(), &S3ErrorCode::MaxMessageLengthExceeded);
        assert_eq!(e.code().status_code().map(|s| s.as_u16()), Some(400));

        let watch = BodyWatch::default();
        watch.arm(false, None, None, None, None);
        watch.saw(&over);
        assert!(
            watch.verdict().is_none(),
            "aws-chunked framing is not counted"
        );
    }

    #[test]
    fn a_body_read_to_its_length_is_checked_against_its_sha256() {
        let body = Bytes::from_static(b"<Delete><Object><Key>k</Key></Object></Delete>");
        let length = u64::try_from(body.len()).ok();
        let digest: [u8; 32] = Sha256::digest(&body).into();

        let watch = BodyWatch::default();
        watch.arm(true, length, Some(digest), None, None);
        watch.saw(&body.slice(..10));
        watch.saw(&body.slice(10..));
        assert!(watch.verdict().is_none(), "the right hash");

        let watch = BodyWatch::default();
        watch.arm(true, length, Some([0xab; 32]), None, None);
        watch.saw(&body.slice(..10));
        assert!(watch.verdict().is_none(), "not read to its length");
        watch.saw(&body.slice(10..));
        let e = watch.verdict().expect("another hash");
        assert_eq!(e.code().as_str(), "XAmzContentSHA256Mismatch");
        assert_eq!(e.status_code().map(|s| s.as_u16()), Some(400));

        let watch = BodyWatch::default();
        watch.arm(false, length, Some([0xab; 32]), None, None);
        watch.saw(&body);
        assert!(watch.verdict().is_none(), "aws-chunked: s3s checks");
    }

    #[tokio::test]
    async fn a_body_read_up_front_is_watched_as_one_from_the_wire() {
        use http_body_util::BodyExt;
        let body = Bytes::from_static(b"<Delete><Object><Key>k</Key></Object></Delete>");
        let digest: [u8; 16] = Md5::digest(&body).into();
        let watch = Arc::new(BodyWatch::default());
        watch.arm(true, Some(46), None, Some(digest), None);
        let read = WatchedBody::read(body.clone(), watch.clone());
        assert_eq!(read.size_hint().exact(), Some(46));
        assert!(!read.is_end_stream(), "its end checks the digests");
        let collected = read.collect().await.expect("its MD5").to_bytes();
        assert_eq!(collected, body);
        assert!(watch.verdict().is_none());

        let watch = Arc::new(BodyWatch::default());
        watch.arm(true, Some(46), None, Some([7; 16]), None);
        let read = WatchedBody::read(body, watch.clone());
        assert!(read.collect().await.is_err(), "another MD5");
        let e = watch.verdict().expect("a verdict");
        assert_eq!(e.code(), &S3ErrorCode::BadDigest);
        assert!(watch.take_unread().is_none(), "nothing left to read");
    }

    #[test]
    fn a_body_read_whole_is_checked_against_its_content_md5() {
        let body = Bytes::from_static(b"<Delete><Object><Key>k</Key></Object></Delete>");
        let digest: [u8; 16] = Md5::digest(&body).into();
        let watch = BodyWatch::default();
        watch.arm(true, None, None, Some(digest), None);
        watch.saw(&body);
        assert_eq!(watch.ended(), None, "its MD5");
        assert!(watch.verdict().is_none());

        let watch = BodyWatch::default();
        watch.arm(true, None, None, Some([7; 16]), None);
        watch.saw(&body);
        assert_eq!(watch.ended(), Some(BodyDigest::Md5));
        let e = watch.verdict().expect("another MD5");
        assert_eq!(e.code(), &S3ErrorCode::BadDigest);

        let watch = BodyWatch::default();
        watch.arm(false, None, None, Some([7; 16]), None);
        watch.saw(&body);
        assert_eq!(watch.ended(), None, "aws-chunked framing is not hashed");

        let sha256 = |value: &str| Expectation {
            algorithm: ChecksumAlgorithm::Sha256,
            header_value: Some(value.to_owned()),
            in_trailer: false,
        };
        let right = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body))
        };
        let watch = BodyWatch::default();
        watch.arm(true, None, None, None, Some(sha256(&right)));
        watch.saw(&body);
        assert_eq!(watch.ended(), None, "its SHA-256");
        let watch = BodyWatch::default();
        watch.arm(true, None, None, None, Some(sha256(&"A".repeat(43))));
        watch.saw(&body);
        assert_eq!(
            watch.ended(),
            Some(BodyDigest::Checksum(ChecksumAlgorithm::Sha256))
        );
        let e = watch.verdict().expect("another SHA-256");
        assert_eq!(e.code(), &S3ErrorCode::BadDigest);

        let mut headers = http::HeaderMap::new();
        assert_eq!(content_md5(&headers).expect("none"), None);
        headers.insert("content-md5", http::HeaderValue::from_static("notbase64!!"));
        let e = content_md5(&headers).expect_err("malformed");
        assert_eq!(e.code(), &S3ErrorCode::InvalidDigest);
        headers.insert("content-md5", http::HeaderValue::from_static("AAAA"));
        assert!(content_md5(&headers).is_err(), "three bytes");
        assert!(!names_checksum(&headers));
        for not_a_digest in [
            "x-amz-checksum-mode",
            "x-amz-checksum-type",
            "x-amz-sdk-checksum-algorithm",
        ] {
            headers.insert(not_a_digest, http::HeaderValue::from_static("CRC32"));
        }
        assert!(!names_checksum(&headers), "no checksum value");
        headers.insert(
            "x-amz-trailer",
            http::HeaderValue::from_static("x-amz-checksum-crc32"),
        );
        assert!(names_checksum(&headers), "a trailing one");
        headers.remove("x-amz-trailer");
        headers.insert(
            "x-amz-checksum-crc32",
            http::HeaderValue::from_static("AAAAAA=="),
        );
        assert!(names_checksum(&headers));
    }

    #[test]
    fn read_whole_is_sorted_and_leaves_streamed_bodies_alone() {
        assert!(READ_WHOLE.windows(2).all(|w| w[0] < w[1]));
        for streamed in ["PutObject", "UploadPart", "PostObject"] {
            assert!(!READ_WHOLE.contains(&streamed), "{streamed}");
        }
    }
}
