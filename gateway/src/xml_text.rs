//! XML character data, escaped as quick-xml's `escape` (which s3s uses)
//! escapes it: the five predefined entities, nothing else. Every document
//! the gateway writes by hand escapes with these.

use std::borrow::Cow;

/// Appends `value` to `out`, escaped.
pub fn escape_into(out: &mut Vec<u8>, value: &str) {
    let mut rest = value;
    // A byte scan: the five are ASCII, so never inside a UTF-8 sequence.
    while let Some(at) = rest.bytes().position(needs_escape) {
        out.extend_from_slice(&rest.as_bytes()[..at]);
        out.extend_from_slice(match rest.as_bytes()[at] {
            b'<' => b"&lt;".as_slice(),
            b'>' => b"&gt;",
            b'&' => b"&amp;",
            b'\'' => b"&apos;",
            _ => b"&quot;",
        });
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest.as_bytes());
}

/// `value`, escaped; borrowed when there is nothing to escape.
pub fn escaped(value: &str) -> Cow<'_, str> {
    if !value.bytes().any(needs_escape) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 16);
    for c in value.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(b: u8) -> bool {
    matches!(b, b'<' | b'>' | b'&' | b'\'' | b'"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_escape_the_five_entities_alike() {
        for value in ["plain é", "a<b>&'\"c", ""] {
            let mut bytes = Vec::new();
            escape_into(&mut bytes, value);
            assert_eq!(bytes, escaped(value).as_bytes(), "{value}");
        }
        assert_eq!(escaped("a<&>'\"b"), "a&lt;&amp;&gt;&apos;&quot;b");
        assert!(matches!(escaped("plain"), Cow::Borrowed(_)));
    }
}
