//! The form of a browser upload (`multipart/form-data` to `POST /bucket`),
//! read as it streams: [`FormParser`] takes the fields up to the file's
//! part, which AWS requires to be the form's last (fields after it are
//! ignored), within `FORM_FIELDS_SIZE_MAX` bytes, then cuts the file's
//! bytes out of the stream without holding them. `crate::post_object`
//! drives it over a request body.

use bytes::{Bytes, BytesMut};
use s3s::{S3Error, S3ErrorCode};

use crate::limits::FORM_FIELDS_SIZE_MAX;

/// What the form says besides its fields: the file part's name and type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// The `acl` field's value (AWS's name for the canned ACL; s3s's
    /// PutObject reads `x-amz-acl`).
    pub acl: Option<String>,
    /// The file part's `filename`, without a path (some browsers send
    /// the client's full path).
    pub filename: Option<String>,
}

/// The fields before the file, in order, names in lower case (AWS's
/// field names are case-insensitive).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form {
    pub fields: Vec<(String, String)>,
    pub found: Found,
}

impl Form {
    /// The first field named `name` (lower case).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The boundary a form's `Content-Type` names; `None` if it names none.
pub fn boundary(content_type: &str) -> Option<String> {
    let (mime, params) = content_type.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        let value = value.trim().trim_matches('"');
        (name.trim().eq_ignore_ascii_case("boundary") && !value.is_empty() && value.len() <= 70)
            .then(|| value.to_owned())
    })
}

pub fn malformed() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MalformedPOSTRequest,
        "The body of your POST request is not well-formed multipart/form-data.",
    )
}

fn no_file() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InvalidArgument,
        "POST requires exactly one file upload per request.",
    )
}

fn fields_too_large() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MaxPostPreDataLengthExceededError,
        "Your POST request fields preceding the upload file were too large.",
    )
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Before the first delimiter (a preamble is ignored).
    Preamble,
    /// Just after a delimiter: `--` ends the form, CRLF starts a part.
    AfterDelimiter,
    /// A part's headers, up to the blank line.
    Headers,
    /// A field's value, up to the next delimiter.
    Value { name: String },
    /// The file's bytes, up to the next delimiter.
    File,
    /// The file has ended; the rest of the form is ignored.
    FileDone,
    /// The form closed without a file.
    Closed,
}

/// One step through the file's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum FileStep {
    /// The file's next bytes.
    Data(Bytes),
    /// The file has ended.
    End,
    /// More of the form is needed.
    NeedMore,
}

/// The form's state machine, fed bytes as they come, however they are cut.
#[derive(Debug)]
pub struct FormParser {
    /// `\r\n--` and the boundary: what ends every part.
    delimiter: Vec<u8>,
    /// Bytes not yet decided on: at most the fields' bound while reading
    /// fields, a frame and a delimiter's length in the file.
    pending: BytesMut,
    /// Bytes of the form decided on before the file.
    consumed: usize,
    state: State,
    form: Form,
}

impl FormParser {
    pub fn new(boundary: &str) -> FormParser {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        let mut pending = BytesMut::new();
        // The form opens with the delimiter less its CRLF.
        pending.extend_from_slice(b"\r\n");
        FormParser {
            delimiter,
            pending,
            consumed: 0,
            state: State::Preamble,
            form: Form::default(),
        }
    }

    /// Takes the next bytes of the form.
    pub fn push(&mut self, data: &[u8]) {
        if self.state != State::FileDone {
            self.pending.extend_from_slice(data);
        }
    }

    /// Reads fields as far as the bytes pushed go: the form once the file
    /// part's headers are in (then [`FormParser::file_step`] reads the
    /// file), `None` while more bytes are needed. `at_end` says no more
    /// will come.
    pub fn fields(&mut self, at_end: bool) -> Result<Option<Form>, S3Error> {
        loop {
            let progressed = match &self.state {
                State::Preamble => self.preamble(),
                State::AfterDelimiter => self.after_delimiter()?,
                State::Headers => self.headers()?,
                State::Value { .. } => self.value()?,
                State::File | State::FileDone => {
                    if self.consumed > FORM_FIELDS_SIZE_MAX {
                        return Err(fields_too_large());
                    }
                    return Ok(Some(std::mem::take(&mut self.form)));
                }
                State::Closed => return Err(no_file()),
            };
            if progressed {
                continue;
            }
            // The bytes before the file, decided on or not.
            if self.consumed.saturating_add(self.pending.len()) > FORM_FIELDS_SIZE_MAX {
                return Err(fields_too_large());
            }
            if at_end {
                return Err(malformed());
            }
            return Ok(None);
        }
    }

    fn skip(&mut self, n: usize) {
        let _ = self.pending.split_to(n);
        self.consumed = self.consumed.saturating_add(n);
    }

    fn preamble(&mut self) -> bool {
        match find(&self.pending, &self.delimiter) {
            Some(at) => {
                self.skip(at + self.delimiter.len());
                self.state = State::AfterDelimiter;
                true
            }
            None => false,
        }
    }

    fn after_delimiter(&mut self) -> Result<bool, S3Error> {
        if self.pending.len() < 2 {
            return Ok(false);
        }
        if self.pending.starts_with(b"--") {
            self.state = State::Closed;
            return Ok(true);
        }
        // Transport padding (spaces, tabs) may precede the CRLF.
        let Some(end) = find(&self.pending, b"\r\n") else {
            return Ok(false);
        };
        if !self.pending[..end]
            .iter()
            .all(|b| *b == b' ' || *b == b'\t')
        {
            return Err(malformed());
        }
        self.skip(end + 2);
        self.state = State::Headers;
        Ok(true)
    }

    fn headers(&mut self) -> Result<bool, S3Error> {
        // A part without headers starts with the blank line itself.
        let (text_end, skip) = if self.pending.starts_with(b"\r\n") {
            (0, 2)
        } else {
            match find(&self.pending, b"\r\n\r\n") {
                Some(end) => (end, end + 4),
                None => return Ok(false),
            }
        };
        let text = std::str::from_utf8(&self.pending[..text_end]).map_err(|_| malformed())?;
        let (name, filename) = disposition(text).ok_or_else(malformed)?;
        self.skip(skip);
        if name.eq_ignore_ascii_case("file") {
            let base = filename
                .as_deref()
                .and_then(|f| f.rsplit(['/', '\\']).next())
                .unwrap_or_default();
            self.form.found.filename = Some(base.to_owned());
            self.state = State::File;
        } else {
            self.state = State::Value {
                name: name.to_ascii_lowercase(),
            };
        }
        Ok(true)
    }

    fn value(&mut self) -> Result<bool, S3Error> {
        let Some(at) = find(&self.pending, &self.delimiter) else {
            return Ok(false);
        };
        let value = std::str::from_utf8(&self.pending[..at])
            .map_err(|_| malformed())?
            .to_owned();
        self.skip(at + self.delimiter.len());
        let State::Value { name } = std::mem::replace(&mut self.state, State::AfterDelimiter)
        else {
            return Err(malformed());
        };
        if name == "acl" && self.form.found.acl.is_none() {
            self.form.found.acl = Some(value.clone());
        }
        self.form.fields.push((name, value));
        Ok(true)
    }

    /// The file's next bytes, as far as the bytes pushed go.
    pub fn file_step(&mut self) -> FileStep {
        match self.state {
            State::File => {}
            State::FileDone => return FileStep::End,
            _ => return FileStep::NeedMore,
        }
        if let Some(at) = find(&self.pending, &self.delimiter) {
            let data = self.pending.split_to(at).freeze();
            self.pending = BytesMut::new();
            self.state = State::FileDone;
            return if data.is_empty() {
                FileStep::End
            } else {
                FileStep::Data(data)
            };
        }
        // Keep what may be the start of a delimiter.
        let undecided = self.delimiter.len().saturating_sub(1);
        let decided = self.pending.len().saturating_sub(undecided);
        if decided == 0 {
            return FileStep::NeedMore;
        }
        FileStep::Data(self.pending.split_to(decided).freeze())
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(offset) = haystack.get(from..)?.iter().position(|b| *b == first) {
        let at = from + offset;
        let tail = haystack.get(at + 1..)?;
        if tail.len() < rest.len() {
            return None;
        }
        if tail.starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The `name` and `filename` of a part's Content-Disposition header;
/// `None` if the part names no field.
fn disposition(headers: &str) -> Option<(String, Option<String>)> {
    let line = headers.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-disposition")
            .then_some(value)
    })?;
    let mut params = line.split(';');
    if !params.next()?.trim().eq_ignore_ascii_case("form-data") {
        return None;
    }
    let mut name = None;
    let mut filename = None;
    for param in params {
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
    Some((name?, filename))
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

    const BOUNDARY: &str = "XyZ-123";

    fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut out = b"preamble to ignore\r\n".to_vec();
        for (name, filename, value) in parts {
            out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
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
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        out
    }

    /// Feeds `pieces` in turn; the form and the file, or the error.
    fn parse(pieces: &[&[u8]]) -> Result<(Form, Vec<u8>), S3Error> {
        let mut parser = FormParser::new(BOUNDARY);
        let mut form = None;
        let mut file = Vec::new();
        let mut ended = false;
        let count = pieces.len();
        for (i, piece) in pieces.iter().enumerate() {
            parser.push(piece);
            if form.is_none() {
                form = parser.fields(i + 1 == count)?;
            }
            if form.is_some() {
                loop {
                    match parser.file_step() {
                        FileStep::Data(data) => file.extend_from_slice(&data),
                        FileStep::End => {
                            ended = true;
                            break;
                        }
                        FileStep::NeedMore => break,
                    }
                }
            }
        }
        let form = form.ok_or_else(malformed)?;
        if !ended {
            return Err(malformed());
        }
        Ok((form, file))
    }

    #[test]
    fn reads_the_fields_and_the_file_however_the_bytes_are_cut() {
        let file: &[u8] = b"--XyZ-12 not the end\r\n--XyZ-1\r\n\r\n--XyZ-12";
        let body = form(&[
            ("key", None, b"user/${filename}"),
            ("ACL", None, b"public-read"),
            ("policy", None, b"eyJ4IjoxfQ=="),
            ("file", Some("C:\\Users\\me\\photo.jpg"), file),
            ("after", None, b"ignored"),
        ]);
        let expected = Form {
            fields: vec![
                ("key".into(), "user/${filename}".into()),
                ("acl".into(), "public-read".into()),
                ("policy".into(), "eyJ4IjoxfQ==".into()),
            ],
            found: Found {
                acl: Some("public-read".into()),
                filename: Some("photo.jpg".into()),
            },
        };
        // Cut in two at every position, and in three around each.
        for at in 0..=body.len() {
            let (a, b) = body.split_at(at);
            let (form, got) = parse(&[a, b]).expect("parses");
            assert_eq!((&form, got.as_slice()), (&expected, file), "cut at {at}");
            for at2 in at..(at + 3).min(body.len()) {
                let (b1, b2) = b.split_at(at2 - at);
                let (_, got) = parse(&[a, b1, b2]).expect("parses");
                assert_eq!(got.as_slice(), file, "cut at {at} and {at2}");
            }
        }
        for piece in [1, 2, 7, 64] {
            let pieces: Vec<&[u8]> = body.chunks(piece).collect();
            let (form, got) = parse(&pieces).expect("parses");
            assert_eq!(
                (&form, got.as_slice()),
                (&expected, file),
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn an_empty_file_and_a_nameless_one() {
        let body = form(&[("key", None, b"k"), ("file", None, b"")]);
        let (form, file) = parse(&[&body]).expect("parses");
        assert!(file.is_empty());
        assert_eq!(form.found.filename.as_deref(), Some(""));
        assert_eq!(form.field("key"), Some("k"));
    }

    #[test]
    fn forms_without_a_file_or_out_of_shape_are_refused() {
        let code = |pieces: &[&[u8]]| parse(pieces).expect_err("refused").code().clone();
        let without_file = form(&[("key", None, b"k")]);
        assert_eq!(code(&[&without_file]), S3ErrorCode::InvalidArgument);
        assert_eq!(
            code(&[b"no delimiter at all"]),
            S3ErrorCode::MalformedPOSTRequest
        );
        let cut = form(&[("key", None, b"k"), ("file", Some("f"), b"data")]);
        // Cut before the file's part ends: the file never ends.
        assert_eq!(
            code(&[&cut[..cut.len() - 20]]),
            S3ErrorCode::MalformedPOSTRequest
        );
        let nameless =
            format!("--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nv\r\n--{BOUNDARY}--");
        assert_eq!(
            code(&[nameless.as_bytes()]),
            S3ErrorCode::MalformedPOSTRequest
        );
        let not_utf8 = form(&[("key", None, &[0xff, 0xfe]), ("file", Some("f"), b"x")]);
        assert_eq!(code(&[&not_utf8]), S3ErrorCode::MalformedPOSTRequest);
    }

    #[test]
    fn fields_over_the_bound_are_refused_before_the_file() {
        let long = vec![b'a'; FORM_FIELDS_SIZE_MAX];
        let body = form(&[("x-ignore-pad", None, &long), ("file", Some("f"), b"x")]);
        let pieces: Vec<&[u8]> = body.chunks(4096).collect();
        let e = parse(&pieces).expect_err("too large");
        assert_eq!(e.code(), &S3ErrorCode::MaxPostPreDataLengthExceededError);
        // Just under the bound passes.
        let fits = vec![b'a'; FORM_FIELDS_SIZE_MAX - 400];
        let body = form(&[("x-ignore-pad", None, &fits), ("file", Some("f"), b"x")]);
        let pieces: Vec<&[u8]> = body.chunks(4096).collect();
        assert!(parse(&pieces).is_ok());
        // Over the bound in one piece is refused all the same.
        let body = form(&[("x-ignore-pad", None, &long), ("file", Some("f"), b"x")]);
        let e = parse(&[&body]).expect_err("too large");
        assert_eq!(e.code(), &S3ErrorCode::MaxPostPreDataLengthExceededError);
    }

    #[test]
    fn the_boundary_comes_from_the_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(
            boundary("Multipart/Form-Data;charset=utf-8; BOUNDARY=xyz").as_deref(),
            Some("xyz")
        );
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary("multipart/form-data; boundary="), None);
        assert_eq!(boundary("text/plain; boundary=x"), None);
    }

    #[test]
    fn finds_needles() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"abcab", b"abd"), None);
        assert_eq!(find(b"", b"a"), None);
        assert_eq!(find(b"\r\n\r\n", b"\r\n\r\n"), Some(0));
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
