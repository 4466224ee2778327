//! Streaming object bodies between clients and chunks.
//!
//! PUT: the body is hashed (MD5 for the ETag) once, on the way through, and
//! cut into chunks of the configured size that are written as they arrive;
//! nothing larger than one network buffer is held in memory. Bodies up to
//! `INLINE_OBJECT_SIZE_MAX` are kept inline in the metadata record instead.
//!
//! GET: the chunks covering the requested range are streamed in order, each
//! verified by the chunk store before its bytes are sent.
//!
//! Chunks go through a [`ChunkBackend`]: the local store of `arbor serve`,
//! or (`arbor gateway`) replicas on the chunk servers placement picks, whose
//! locations travel with the commit as [`ChunkPlacement`]s.

use std::ops::Range;

use arbor_chunkstore::{BackendWriter, ChunkBackend, ChunkError, Locations};
use arbor_meta::{ChunkId, ChunkPlacement, ChunkRef, ObjectData, ObjectVersion};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use s3s::S3Error;
use s3s::checksum::ChecksumHasher;
use s3s::dto::StreamingBlob;
use tracing::Instrument;

use crate::error;
use crate::limits::BODY_IDLE_TIMEOUT_SECS;

/// Pieces (up to 2 MiB each, the chunk store's read unit) read ahead of the
/// client on GET: bounds memory per request while keeping the disk busy.
const READ_AHEAD_PIECES: usize = 2;

/// An uploaded body whose bytes are durable in chunks (or inline), not yet
/// referenced by any committed metadata.
#[derive(Debug)]
pub struct WrittenBody {
    pub size: u64,
    pub md5: [u8; 16],
    /// The additional checksum computed on the way, if one was asked for.
    pub checksum: Option<s3s::dto::Checksum>,
    pub data: ObjectData,
    /// Where the replicas of the chunks are (cluster only), for the commit.
    pub placements: Vec<ChunkPlacement>,
}

/// Reads `body` to its end, writing it to `chunks` in chunks of `chunk_size`
/// (or keeping it inline if it is at most `inline_max` bytes)
/// and feeding every byte once to MD5 and to `checksum` (if any).
/// `verified_sha256` is the SHA-256 of the whole body when the signature
/// layer checks it as the body streams (a SigV4 signed payload, see
/// `auth::verified_payload_sha256`), whose error ends the body before its
/// last chunk is sealed: a body in one chunk then takes it as the chunk's
/// fingerprint, sparing a second SHA-256 pass.
/// On any error every chunk written so far is deleted (none is referenced).
pub async fn write_body(
    chunks: &ChunkBackend,
    chunk_size: u64,
    inline_max: u64,
    size_max: u64,
    mut body: StreamingBlob,
    mut checksum: Option<ChecksumHasher>,
    verified_sha256: Option<[u8; 32]>,
) -> Result<WrittenBody, S3Error> {
    let mut upload = Upload::new(chunks.clone(), chunk_size, inline_max);
    upload.verified = verified_sha256;
    let mut md5 = Md5::new();
    let result = async {
        while let Some(piece) = next_piece(&mut body).await? {
            let piece = piece.map_err(|e| error::from_body(e.as_ref()))?;
            if upload.size.saturating_add(piece.len() as u64) > size_max {
                return Err(s3s::s3_error!(
                    EntityTooLarge,
                    "Your proposed upload exceeds the maximum allowed size."
                ));
            }
            md5.update(&piece);
            if let Some(hasher) = &mut checksum {
                hasher.update(&piece);
            }
            upload.push(piece).await?;
        }
        upload.finish().await
    }
    .await;
    match result {
        Ok((size, data)) => Ok(WrittenBody {
            size,
            md5: md5.finalize().into(),
            checksum: checksum.map(ChecksumHasher::finalize),
            data,
            placements: std::mem::take(&mut upload.placements),
        }),
        Err(e) => {
            upload.discard().await;
            Err(e)
        }
    }
}

/// `body` as the handlers read it: an aws-chunked body (`STREAMING-*` in
/// `x-amz-content-sha256`) is held to the `x-amz-decoded-content-length`
/// its signature covers. s3s 0.14 (pinned) decodes the framing without
/// counting it, so a stream that stops after a whole chunk, its final
/// empty chunk left out, would otherwise be stored short. Other bodies
/// are held to their Content-Length by hyper, and pass as they are.
pub fn declared_length(body: StreamingBlob, headers: &http::HeaderMap) -> StreamingBlob {
    let streaming = headers
        .get("x-amz-content-sha256")
        .is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"));
    // s3s refuses a streaming body without the header (411).
    let declared = headers
        .get("x-amz-decoded-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(declared) if streaming => StreamingBlob::wrap(DeclaredLength {
            inner: body,
            declared,
            seen: 0,
            ended: false,
        }),
        _ => body,
    }
}

/// A decoded aws-chunked body that fails with S3's IncompleteBody unless it
/// brings exactly `declared` bytes: at its end if fewer, at once if more.
struct DeclaredLength {
    inner: StreamingBlob,
    declared: u64,
    seen: u64,
    ended: bool,
}

impl DeclaredLength {
    fn mismatch(&mut self) -> Option<Result<Bytes, S3Error>> {
        self.ended = true;
        let error = error::with_elements(
            S3Error::with_message(
                s3s::S3ErrorCode::IncompleteBody,
                "You did not provide the number of bytes specified by the Content-Length HTTP header",
            ),
            &[
                ("NumberBytesExpected", &self.declared.to_string()),
                ("NumberBytesProvided", &self.seen.to_string()),
            ],
        );
        Some(Err(error))
    }
}

impl Stream for DeclaredLength {
    type Item = Result<Bytes, S3Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.ended {
            return Poll::Ready(None);
        }
        let next = match self.inner.poll_next_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(next) => next,
        };
        Poll::Ready(match next {
            Some(Ok(bytes)) => {
                self.seen = self.seen.saturating_add(bytes.len() as u64);
                if self.seen > self.declared {
                    self.mismatch()
                } else {
                    Some(Ok(bytes))
                }
            }
            Some(Err(e)) => {
                self.ended = true;
                Some(Err(error::from_body(e.as_ref())))
            }
            None if self.seen < self.declared => self.mismatch(),
            None => {
                self.ended = true;
                None
            }
        })
    }
}

/// The SHA-256 to take as the fingerprint of a body's only chunk: the
/// signed payload's, when s3s checks it as the body streams
/// (`auth::verified_payload_sha256`) and the declared length fits one
/// chunk of `chunk_size`.
pub fn verified_one_chunk_sha256<T>(
    req: &s3s::S3Request<T>,
    content_length: Option<i64>,
    chunk_size: u64,
) -> Option<[u8; 32]> {
    let fits = content_length
        .and_then(|length| u64::try_from(length).ok())
        .is_some_and(|length| length <= chunk_size);
    if !fits {
        return None;
    }
    crate::auth::verified_payload_sha256(
        &req.method,
        &req.uri,
        &req.headers,
        req.credentials.is_some(),
    )
}

/// The next piece of a request body, or S3's RequestTimeout if the client
/// sends nothing for `BODY_IDLE_TIMEOUT_SECS`.
async fn next_piece(
    body: &mut StreamingBlob,
) -> Result<Option<Result<Bytes, s3s::StdError>>, S3Error> {
    let idle = std::time::Duration::from_secs(BODY_IDLE_TIMEOUT_SECS);
    tokio::time::timeout(idle, body.next()).await.map_err(|_| {
        s3s::s3_error!(
            RequestTimeout,
            "Your socket connection to the server was not read from or written to within the timeout period."
        )
    })
}

/// The state of one body being cut into chunks.
struct Upload {
    chunks: ChunkBackend,
    chunk_size: u64,
    /// Bodies up to this size are kept inline (0: only the empty body).
    inline_max: u64,
    /// Bytes received so far.
    size: u64,
    /// The first bytes, held until we know whether the body fits inline.
    head: BytesMut,
    current: Option<BackendWriter>,
    done: Vec<ChunkRef>,
    placements: Vec<ChunkPlacement>,
    /// The whole body's SHA-256 as the signature layer verifies it, for
    /// the first chunk's writer; valid only if that chunk is the body.
    verified: Option<[u8; 32]>,
}

impl Upload {
    fn new(chunks: ChunkBackend, chunk_size: u64, inline_max: u64) -> Self {
        Upload {
            chunks,
            chunk_size,
            inline_max,
            size: 0,
            head: BytesMut::new(),
            current: None,
            done: Vec::new(),
            placements: Vec::new(),
            verified: None,
        }
    }

    fn inline_candidate(&self) -> bool {
        self.current.is_none() && self.done.is_empty()
    }

    async fn push(&mut self, piece: Bytes) -> Result<(), S3Error> {
        self.size += piece.len() as u64;
        if self.inline_candidate() {
            if self.size <= self.inline_max {
                self.head.extend_from_slice(&piece);
                return Ok(());
            }
            // Too big for inline: what we held goes to the first chunk.
            let head = std::mem::take(&mut self.head).freeze();
            self.write_chunked(head).await?;
        }
        self.write_chunked(piece).await
    }

    /// Appends bytes to the chunk being written. A full chunk is sealed
    /// when more bytes come (or at `finish`), so the last chunk is sealed
    /// only after the body ended cleanly.
    async fn write_chunked(&mut self, mut bytes: Bytes) -> Result<(), S3Error> {
        while !bytes.is_empty() {
            if self
                .current
                .as_ref()
                .is_some_and(|writer| writer.len() >= self.chunk_size)
            {
                self.seal(false).await?;
            }
            let writer = match &mut self.current {
                Some(current) => current,
                None => {
                    let verified = if self.done.is_empty() {
                        self.verified.take()
                    } else {
                        None
                    };
                    let writer = self
                        .chunks
                        .writer_verified(verified)
                        .await
                        .map_err(error::from_chunk)?;
                    self.current.insert(writer)
                }
            };
            let room = self.chunk_size.saturating_sub(writer.len());
            let take = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
            writer
                .write(bytes.split_to(take))
                .await
                .map_err(error::from_chunk)?;
        }
        Ok(())
    }

    /// Seals the chunk being written; `last` once the body has ended.
    async fn seal(&mut self, last: bool) -> Result<(), S3Error> {
        if let Some(writer) = self.current.take() {
            if writer.is_verified() && !last {
                // The verified SHA-256 covers the whole body, which the
                // caller said fits one chunk: it did not.
                writer.abort().await;
                return Err(error::internal(
                    "writing a body",
                    "a body verified as one chunk ran past it",
                ));
            }
            let id = writer.id();
            let offset = self.done.last().map_or(0, |c| c.offset + c.size);
            let stored = writer.finish().await.map_err(error::from_chunk)?;
            assert_eq!(
                stored.info.id, id,
                "chunk store sealed a different chunk than was written"
            );
            self.done.push(ChunkRef {
                id,
                offset,
                size: stored.info.size,
                sha256: stored.info.sha256,
            });
            self.placements.extend(stored.placement);
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(u64, ObjectData), S3Error> {
        if self.inline_candidate() {
            return Ok((
                self.size,
                ObjectData::Inline(std::mem::take(&mut self.head).to_vec()),
            ));
        }
        self.seal(true).await?;
        let chunks = std::mem::take(&mut self.done);
        let total: u64 = chunks.iter().map(|c| c.size).sum();
        assert_eq!(total, self.size, "chunk sizes must add up to the body size");
        Ok((self.size, ObjectData::Chunks(chunks)))
    }

    /// Best-effort removal of everything this upload wrote; GC collects
    /// whatever this misses.
    async fn discard(&mut self) {
        if let Some(writer) = self.current.take() {
            writer.abort().await;
        }
        let done = std::mem::take(&mut self.done);
        let placements = std::mem::take(&mut self.placements);
        discard_chunks(&self.chunks, &done, &placements).await;
    }
}

/// Deletes chunks that were written but will not be committed.
async fn discard_chunks(chunks: &ChunkBackend, refs: &[ChunkRef], placements: &[ChunkPlacement]) {
    for chunk in refs {
        let placement = placements.iter().find(|p| p.id == chunk.id);
        chunks.discard(chunk.id, placement).await;
    }
}

/// Deletes the chunks of a body that was written but will not be committed.
pub async fn discard_body(chunks: &ChunkBackend, data: &ObjectData, placements: &[ChunkPlacement]) {
    if let ObjectData::Chunks(refs) = data {
        discard_chunks(chunks, refs, placements).await;
    }
}

/// Streams bytes `range` of `version` (the range already checked against its
/// size). `known`: where its chunks are, as the metadata read of the
/// version returned them; those it lacks (an object of more chunks than
/// one read locates) are looked up first, so an unreachable metadata group
/// is an error, not a cut-off body. The chunks are then opened one after
/// another, as the client consumes them.
pub async fn read_body(
    chunks: &ChunkBackend,
    version: &ObjectVersion,
    range: Range<u64>,
    known: Locations,
) -> Result<StreamingBlob, S3Error> {
    match &version.data {
        ObjectData::Inline(bytes) => {
            let start = usize::try_from(range.start)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let end = usize::try_from(range.end)
                .unwrap_or(usize::MAX)
                .min(bytes.len())
                .max(start);
            let slice = Bytes::copy_from_slice(bytes.get(start..end).unwrap_or_default());
            Ok(StreamingBlob::wrap(futures::stream::once(async move {
                Ok::<_, std::io::Error>(slice)
            })))
        }
        ObjectData::Chunks(refs) => {
            let pieces: Vec<(ChunkRef, Range<u64>)> = refs
                .iter()
                .filter(|c| c.offset < range.end && c.offset + c.size > range.start)
                .map(|c| {
                    let start = range.start.max(c.offset) - c.offset;
                    let end = range.end.min(c.offset + c.size) - c.offset;
                    (c.clone(), start..end)
                })
                .collect();
            let located: Vec<ChunkRef> = pieces.iter().map(|(c, _)| c.clone()).collect();
            let locations = chunks
                .locate_missing(&located, known)
                .await
                .map_err(error::from_chunk)?;
            let (sender, receiver) = tokio::sync::mpsc::channel(READ_AHEAD_PIECES);
            let chunks = chunks.clone();
            tokio::spawn(
                stream_chunks(chunks, locations, pieces, sender)
                    .instrument(tracing::Span::current()),
            );
            let stream = ChannelBody { receiver };
            Ok(StreamingBlob::wrap(stream))
        }
    }
}

/// Reads `pieces` in order into `sender`; stops at the first error (after
/// passing it on) or when the client has gone away.
async fn stream_chunks(
    chunks: ChunkBackend,
    locations: Locations,
    pieces: Vec<(ChunkRef, Range<u64>)>,
    sender: tokio::sync::mpsc::Sender<Result<Bytes, ChunkError>>,
) {
    for (chunk, range) in pieces {
        let mut stream = match chunks.read(&chunk, &locations, range).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::error!(chunk = %chunk.id, error = %e, "cannot open chunk");
                let _ = sender.send(Err(e)).await;
                return;
            }
        };
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if let Err(e) = &item {
                tracing::error!(chunk = %chunk.id, error = %e, "chunk read failed");
            }
            if sender.send(item).await.is_err() || failed {
                return;
            }
        }
    }
}

/// The receiving end of `stream_chunks`, as the `Sync` stream s3s wants.
struct ChannelBody {
    receiver: tokio::sync::mpsc::Receiver<Result<Bytes, ChunkError>>,
}

impl Stream for ChannelBody {
    type Item = Result<Bytes, ChunkError>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.receiver.poll_recv(cx)
    }
}

/// A byte range of an existing object made into a part (UploadPartCopy).
#[derive(Debug)]
pub struct CopiedRange {
    pub size: u64,
    pub md5: [u8; 16],
    pub checksum: Option<s3s::dto::Checksum>,
    /// The part's chunks, offsets relative to the part.
    pub chunks: Vec<ChunkRef>,
    /// Those of `chunks` shared with the source (whole chunks in the range);
    /// the rest were written for this part.
    pub shared: Vec<ChunkId>,
    /// Where the replicas of the chunks written for this part are.
    pub placements: Vec<ChunkPlacement>,
}

impl CopiedRange {
    /// The chunks written for this part, to delete if it is not committed.
    pub fn fresh(&self) -> ObjectData {
        ObjectData::Chunks(
            self.chunks
                .iter()
                .filter(|c| !self.shared.contains(&c.id))
                .cloned()
                .collect(),
        )
    }
}

/// Makes bytes `range` of `source` into part chunks: chunks wholly inside
/// the range are shared, not copied; the partial chunks at its ends (and
/// inline bytes) are written anew. Every byte is read once to compute the
/// part's MD5 (its ETag) and `checksum`.
pub async fn copy_range(
    chunks: &ChunkBackend,
    chunk_size: u64,
    source: &ObjectVersion,
    range: Range<u64>,
    mut checksum: Option<ChecksumHasher>,
) -> Result<CopiedRange, S3Error> {
    let mut md5 = Md5::new();
    let mut copied = CopiedRange {
        size: range.end - range.start,
        md5: [0; 16],
        checksum: None,
        chunks: Vec::new(),
        shared: Vec::new(),
        placements: Vec::new(),
    };
    let result = async {
        let mut hash = |bytes: &[u8]| {
            md5.update(bytes);
            if let Some(hasher) = &mut checksum {
                hasher.update(bytes);
            }
        };
        match &source.data {
            ObjectData::Inline(bytes) => {
                let start =
                    usize::try_from(range.start).map_err(|e| error::internal("range", e))?;
                let end = usize::try_from(range.end).map_err(|e| error::internal("range", e))?;
                let slice = bytes
                    .get(start..end)
                    .ok_or_else(|| error::internal("range", "outside inline data"))?;
                hash(slice);
                let mut upload = Upload::new(chunks.clone(), chunk_size, 0);
                upload.push(Bytes::copy_from_slice(slice)).await?;
                if let (_, ObjectData::Chunks(fresh)) = upload.finish().await? {
                    copied.chunks.extend(fresh);
                    copied.placements.append(&mut upload.placements);
                }
            }
            ObjectData::Chunks(refs) => {
                let covered: Vec<ChunkRef> = refs
                    .iter()
                    .filter(|c| c.offset < range.end && c.offset + c.size > range.start)
                    .cloned()
                    .collect();
                let locations = chunks.locate(&covered).await.map_err(error::from_chunk)?;
                for chunk in &covered {
                    let start = range.start.max(chunk.offset) - chunk.offset;
                    let end = range.end.min(chunk.offset + chunk.size) - chunk.offset;
                    let part_offset = chunk.offset + start - range.start;
                    let whole = start == 0 && end == chunk.size;
                    let mut stream = chunks
                        .read(chunk, &locations, start..end)
                        .await
                        .map_err(error::from_chunk)?;
                    let mut upload = (!whole).then(|| Upload::new(chunks.clone(), chunk_size, 0));
                    while let Some(piece) = stream.next().await {
                        let piece = piece.map_err(error::from_chunk)?;
                        hash(&piece);
                        if let Some(upload) = &mut upload {
                            upload.push(piece).await?;
                        }
                    }
                    match upload {
                        None => {
                            copied.chunks.push(ChunkRef {
                                offset: part_offset,
                                ..chunk.clone()
                            });
                            copied.shared.push(chunk.id);
                        }
                        Some(mut upload) => {
                            if let (_, ObjectData::Chunks(fresh)) = upload.finish().await? {
                                copied.chunks.extend(fresh.into_iter().map(|c| ChunkRef {
                                    offset: c.offset + part_offset,
                                    ..c
                                }));
                                copied.placements.append(&mut upload.placements);
                            }
                        }
                    }
                }
            }
        }
        Ok::<(), S3Error>(())
    }
    .await;
    if let Err(e) = result {
        discard_body(chunks, &copied.fresh(), &copied.placements).await;
        return Err(e);
    }
    let total: u64 = copied.chunks.iter().map(|c| c.size).sum();
    assert_eq!(total, copied.size, "copied chunks must add up to the range");
    copied.md5 = md5.finalize().into();
    copied.checksum = checksum.map(ChecksumHasher::finalize);
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_chunkstore::ChunkStore;
    use arbor_meta::clock::{OsEntropy, SystemClock};
    use sha2::Sha256;

    const KIB: usize = 1024;

    async fn local_store() -> (tempfile::TempDir, ChunkStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ChunkStore::open(dir.path(), SystemClock::shared(), OsEntropy::shared())
            .await
            .expect("store");
        (dir, store)
    }

    fn body(pieces: Vec<Result<Bytes, std::io::Error>>) -> StreamingBlob {
        StreamingBlob::wrap(futures::stream::iter(pieces))
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    async fn write(
        store: &ChunkStore,
        chunk_size: u64,
        pieces: Vec<Result<Bytes, std::io::Error>>,
        verified: Option<[u8; 32]>,
    ) -> Result<WrittenBody, S3Error> {
        let chunks = ChunkBackend::Local(store.clone());
        write_body(
            &chunks,
            chunk_size,
            0,
            u64::MAX,
            body(pieces),
            None,
            verified,
        )
        .await
    }

    /// A body in one chunk records the verified SHA-256 as its fingerprint,
    /// which the scrubber's whole read then confirms.
    #[tokio::test]
    async fn a_verified_one_chunk_body_is_fingerprinted_with_the_verified_hash() {
        let (_dir, store) = local_store().await;
        let content = data(200 * KIB);
        let sha256: [u8; 32] = Sha256::digest(&content).into();
        let pieces = content
            .chunks(64 * KIB)
            .map(|piece| Ok(Bytes::copy_from_slice(piece)))
            .collect();
        let written = write(&store, 256 * KIB as u64, pieces, Some(sha256))
            .await
            .expect("write");
        let ObjectData::Chunks(chunks) = &written.data else {
            panic!("not chunked: {:?}", written.data);
        };
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].sha256, sha256);
        let mut read = store.read_checked(chunks[0].id).await.expect("read");
        let mut back = Vec::new();
        while let Some(piece) = read.next().await {
            back.extend_from_slice(&piece.expect("checked piece"));
        }
        assert!(back == content);
    }

    /// A body exactly one chunk long is sealed only once it has ended: an
    /// error at its end (as s3s reports a payload hash mismatch) leaves no
    /// chunk behind.
    #[tokio::test]
    async fn a_full_chunk_is_not_sealed_before_the_body_ends() {
        let (_dir, store) = local_store().await;
        let content = data(128 * KIB);
        let pieces = vec![
            Ok(Bytes::copy_from_slice(&content)),
            Err(std::io::Error::other("payload hash mismatch")),
        ];
        let result = write(&store, 128 * KIB as u64, pieces, Some([3; 32])).await;
        assert!(result.is_err());
        assert!(store.list().await.expect("list").is_empty());
    }

    /// A verified hash covers the whole body: a body that runs past one
    /// chunk never gets it, and nothing is left.
    #[tokio::test]
    async fn a_verified_body_longer_than_one_chunk_is_refused() {
        let (_dir, store) = local_store().await;
        let content = data(200 * KIB);
        let sha256: [u8; 32] = Sha256::digest(&content).into();
        let pieces = vec![Ok(Bytes::copy_from_slice(&content))];
        let result = write(&store, 128 * KIB as u64, pieces, Some(sha256)).await;
        assert!(result.is_err());
        assert!(store.list().await.expect("list").is_empty());
        // Unverified, the same body is two chunks, each hashed here.
        let pieces = vec![Ok(Bytes::copy_from_slice(&content))];
        let written = write(&store, 128 * KIB as u64, pieces, None)
            .await
            .expect("write");
        let ObjectData::Chunks(chunks) = &written.data else {
            panic!("not chunked");
        };
        assert_eq!(chunks.len(), 2);
        let first: [u8; 32] = Sha256::digest(&content[..128 * KIB]).into();
        assert_eq!(chunks[0].sha256, first);
    }

    /// What a handler reads of `pieces` sent with these headers: the
    /// bytes, or the error's code and body elements.
    async fn read_declared(
        pieces: Vec<Result<Bytes, std::io::Error>>,
        headers: &[(&'static str, &'static str)],
    ) -> Result<Vec<u8>, (s3s::S3ErrorCode, Vec<(String, String)>)> {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, http::HeaderValue::from_static(value));
        }
        let mut blob = declared_length(body(pieces), &map);
        let mut read = Vec::new();
        while let Some(piece) = blob.next().await {
            match piece {
                Ok(piece) => read.extend_from_slice(&piece),
                Err(e) => {
                    let e = error::from_body(e.as_ref());
                    let mut headers = e.headers().cloned().unwrap_or_default();
                    return Err((e.code().clone(), error::take_elements(&mut headers)));
                }
            }
        }
        Ok(read)
    }

    /// An aws-chunked body brings exactly its declared decoded length, or
    /// is IncompleteBody with both counts; other bodies pass as they are.
    #[tokio::test]
    async fn a_streamed_body_is_held_to_its_declared_length() {
        const STREAMING: (&str, &str) =
            ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
        let pieces = || {
            vec![
                Ok(Bytes::from_static(b"abc")),
                Ok(Bytes::from_static(b"de")),
            ]
        };
        let exact = read_declared(
            pieces(),
            &[STREAMING, ("x-amz-decoded-content-length", "5")],
        );
        assert_eq!(exact.await.expect("exact"), b"abcde");
        let incomplete = |expected: &str, provided: &str| {
            (
                s3s::S3ErrorCode::IncompleteBody,
                vec![
                    ("NumberBytesExpected".to_owned(), expected.to_owned()),
                    ("NumberBytesProvided".to_owned(), provided.to_owned()),
                ],
            )
        };
        let short = read_declared(
            pieces(),
            &[STREAMING, ("x-amz-decoded-content-length", "6")],
        );
        assert_eq!(short.await.expect_err("short"), incomplete("6", "5"));
        // Refused at the piece that overruns, before it is passed on.
        let long = read_declared(
            pieces(),
            &[STREAMING, ("x-amz-decoded-content-length", "4")],
        );
        assert_eq!(long.await.expect_err("long"), incomplete("4", "5"));
        let none = read_declared(
            pieces(),
            &[STREAMING, ("x-amz-decoded-content-length", "0")],
        );
        assert_eq!(none.await.expect_err("none"), incomplete("0", "3"));
        // Not aws-chunked: hyper holds it to its Content-Length.
        let plain = read_declared(
            pieces(),
            &[
                ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
                ("x-amz-decoded-content-length", "9"),
            ],
        );
        assert_eq!(plain.await.expect("plain"), b"abcde");
        // An error of the stream itself passes through as it was.
        let failed = read_declared(
            vec![
                Ok(Bytes::from_static(b"abc")),
                Err(std::io::Error::other("connection reset")),
            ],
            &[STREAMING, ("x-amz-decoded-content-length", "5")],
        );
        assert_eq!(
            failed.await.expect_err("failed").0,
            s3s::S3ErrorCode::IncompleteBody
        );
    }
}
