//! What a browser upload's form says that s3s does not pass on: the `acl`
//! field (s3s 0.14.1 reads an ACL from a field named `x-amz-acl` only,
//! AWS's forms name it `acl`) and the file's name, which AWS puts in place
//! of `${filename}` in the key. [`FormScanBody`] watches the form's bytes
//! on their way to s3s, without holding them: it keeps the part headers
//! and the short `acl` value, and stops at the file's part, which AWS
//! requires to be the form's last. The access hook for PostObject reads
//! the findings from the request's extensions ([`FormFields`]).

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// A part's headers longer than this end the scan (nothing is found).
const PART_HEADERS_MAX: usize = 8 * 1024;
/// An `acl` value longer than this is no canned ACL: kept cut, refused.
const ACL_VALUE_MAX: usize = 64;

/// What the scan found, once s3s has read the form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// The `acl` field's value.
    pub acl: Option<String>,
    /// The file part's `filename`, without a path (some browsers send
    /// the client's full path).
    pub filename: Option<String>,
}

/// Shared between the body and the request's extensions.
#[derive(Debug)]
pub struct FormFields {
    scan: Mutex<Scanner>,
}

impl FormFields {
    /// For a form whose `Content-Type` is `content_type`; `None` if it
    /// names no boundary (s3s refuses such a form).
    pub fn for_content_type(content_type: &str) -> Option<Arc<FormFields>> {
        let boundary = content_type.split(';').find_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| value.trim().trim_matches('"').to_owned())
        })?;
        if boundary.is_empty() {
            return None;
        }
        Some(Arc::new(FormFields {
            scan: Mutex::new(Scanner::new(&boundary)),
        }))
    }

    /// Scans the next bytes of the form.
    pub fn feed(&self, data: &[u8]) {
        self.scan
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .feed(data);
    }

    /// What was found so far (all of it once s3s has read the form).
    pub fn found(&self) -> Found {
        self.scan
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .found
            .clone()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Looking for the end of a part's headers.
    Headers,
    /// In a part's value, up to the next delimiter; capturing it when
    /// it is the `acl` field.
    Value { capture: bool },
    /// Just after a delimiter: `--` ends the form, CRLF starts a part.
    AfterDelimiter,
    /// Nothing more to learn.
    Done,
}

#[derive(Debug)]
struct Scanner {
    /// `\r\n--` and the boundary: what ends every part.
    delimiter: Vec<u8>,
    /// Bytes not yet decided on (at most a part's headers, or a
    /// delimiter's length while in a value).
    pending: Vec<u8>,
    captured: Vec<u8>,
    state: State,
    found: Found,
}

impl Scanner {
    fn new(boundary: &str) -> Scanner {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        Scanner {
            delimiter,
            // The form opens with the delimiter less its CRLF.
            pending: b"\r\n".to_vec(),
            captured: Vec::new(),
            state: State::Value { capture: false },
            found: Found::default(),
        }
    }

    fn feed(&mut self, data: &[u8]) {
        if self.state == State::Done {
            return;
        }
        self.pending.extend_from_slice(data);
        loop {
            let progressed = match self.state {
                State::Done => {
                    self.pending = Vec::new();
                    return;
                }
                State::Headers => self.headers(),
                State::Value { capture } => self.value(capture),
                State::AfterDelimiter => self.after_delimiter(),
            };
            if !progressed {
                return;
            }
        }
    }

    fn headers(&mut self) -> bool {
        let Some(end) = find(&self.pending, b"\r\n\r\n") else {
            if self.pending.len() > PART_HEADERS_MAX {
                self.state = State::Done;
            }
            return false;
        };
        let headers = String::from_utf8_lossy(&self.pending[..end]).into_owned();
        self.pending.drain(..end + 4);
        let (name, filename) = disposition(&headers);
        if let Some(filename) = filename.filter(|_| name.as_deref() == Some("file")) {
            let base = filename.rsplit(['/', '\\']).next().unwrap_or_default();
            self.found.filename = Some(base.to_owned());
            // The file is the last field: nothing after it matters.
            self.state = State::Done;
            return true;
        }
        self.captured.clear();
        self.state = State::Value {
            capture: name.is_some_and(|n| n.eq_ignore_ascii_case("acl")),
        };
        true
    }

    fn value(&mut self, capture: bool) -> bool {
        match find(&self.pending, &self.delimiter) {
            Some(at) => {
                if capture {
                    self.keep(at);
                    self.found.acl = Some(String::from_utf8_lossy(&self.captured).into_owned());
                }
                self.pending.drain(..at + self.delimiter.len());
                self.state = State::AfterDelimiter;
                true
            }
            None => {
                // Keep what may be the start of a delimiter.
                let undecided = self.delimiter.len().saturating_sub(1);
                let decided = self.pending.len().saturating_sub(undecided);
                if capture {
                    self.keep(decided);
                }
                self.pending.drain(..decided);
                false
            }
        }
    }

    /// Adds the first `n` pending bytes to the captured value, up to its
    /// bound.
    fn keep(&mut self, n: usize) {
        let room = (ACL_VALUE_MAX + 1).saturating_sub(self.captured.len());
        self.captured
            .extend_from_slice(&self.pending[..n.min(room)]);
    }

    fn after_delimiter(&mut self) -> bool {
        if self.pending.len() < 2 {
            return false;
        }
        if self.pending.starts_with(b"--") {
            self.state = State::Done;
            return true;
        }
        // Transport padding before the CRLF is allowed; a CRLF follows.
        let Some(end) = find(&self.pending, b"\r\n") else {
            if self.pending.len() > PART_HEADERS_MAX {
                self.state = State::Done;
            }
            return false;
        };
        self.pending.drain(..end + 2);
        self.state = State::Headers;
        true
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The `name` and `filename` of a part's Content-Disposition header.
fn disposition(headers: &str) -> (Option<String>, Option<String>) {
    let Some(line) = headers.split("\r\n").find(|line| {
        line.split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("content-disposition"))
    }) else {
        return (None, None);
    };
    let mut name = None;
    let mut filename = None;
    for param in line.split(';').skip(1) {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_owned();
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(value),
            "filename" => filename = Some(value),
            _ => {}
        }
    }
    (name, filename)
}

/// A request body that shows every byte passing through it to its
/// [`FormFields`].
pub struct FormScanBody<B> {
    inner: B,
    fields: Arc<FormFields>,
}

impl<B> FormScanBody<B> {
    pub fn new(inner: B, fields: Arc<FormFields>) -> FormScanBody<B> {
        FormScanBody { inner, fields }
    }
}

impl<B> Body for FormScanBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.fields.feed(data);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The key with `${filename}` replaced by the file's name, as AWS fills
/// it in; `None` when the key does not name it.
pub fn fill_filename(key: &str, found: &Found) -> Option<String> {
    key.contains("${filename}")
        .then(|| key.replace("${filename}", found.filename.as_deref().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(boundary: &str, parts: &[(&str, Option<&str>, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, filename, value) in parts {
            out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match filename {
                Some(f) => out.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: text/plain\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        out
    }

    fn scan(body: &[u8], piece: usize) -> Found {
        let fields =
            FormFields::for_content_type("multipart/form-data; boundary=\"XyZ-123\"").expect("b");
        for chunk in body.chunks(piece) {
            fields.feed(chunk);
        }
        fields.found()
    }

    #[test]
    fn finds_the_acl_and_the_file_name_however_the_bytes_are_cut() {
        let body = form(
            "XyZ-123",
            &[
                ("key", None, "user/${filename}"),
                ("acl", None, "public-read"),
                ("policy", None, "eyJ4IjoxfQ=="),
                (
                    "file",
                    Some("C:\\Users\\me\\photo.jpg"),
                    "--XyZ-12 not the end\r\n--XyZ-1",
                ),
            ],
        );
        let expected = Found {
            acl: Some("public-read".into()),
            filename: Some("photo.jpg".into()),
        };
        for piece in [1, 2, 3, 7, 16, 64, body.len()] {
            assert_eq!(scan(&body, piece), expected, "pieces of {piece}");
        }
    }

    #[test]
    fn a_form_without_them_finds_nothing_and_a_long_acl_is_kept_cut() {
        let body = form("XyZ-123", &[("key", None, "k"), ("file", None, "data")]);
        assert_eq!(scan(&body, 5), Found::default());
        let long = "a".repeat(10_000);
        let body = form("XyZ-123", &[("acl", None, &long), ("file", Some("f"), "x")]);
        let found = scan(&body, 100);
        assert_eq!(found.acl.as_deref().map(str::len), Some(ACL_VALUE_MAX + 1));
        assert_eq!(found.filename.as_deref(), Some("f"));
        assert!(FormFields::for_content_type("multipart/form-data").is_none());
    }

    #[test]
    fn headers_without_end_stop_the_scan() {
        let mut body = b"--XyZ-123\r\nContent-Disposition: form-data; name=\"acl\"".to_vec();
        body.extend(std::iter::repeat_n(b'x', PART_HEADERS_MAX + 10));
        assert_eq!(scan(&body, 1000), Found::default());
    }

    #[test]
    fn the_file_name_fills_the_key() {
        let found = Found {
            acl: None,
            filename: Some("a.txt".into()),
        };
        assert_eq!(
            fill_filename("up/${filename}", &found).as_deref(),
            Some("up/a.txt")
        );
        assert_eq!(fill_filename("up/b.txt", &found), None);
    }
}
