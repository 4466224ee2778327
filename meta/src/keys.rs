//! S3 keys and bucket names onto the directory tree (docs/design.md, Keys
//! onto the tree).
//!
//! A key is split at every `/`: each segment but the last is a directory,
//! the last is the object's name. Nothing is normalised. In the children
//! index a directory's stored name is its segment followed by `/`, an
//! object's is its bare name (which never contains `/`), so the two never
//! collide and byte order of stored names is S3 key order.

use crate::error::{MetaError, Result};
use crate::limits::{BUCKET_NAME_LEN_MAX, BUCKET_NAME_LEN_MIN, KEY_LEN_MAX, TREE_DEPTH_MAX};

/// The byte that separates path segments and ends a directory's stored name.
pub const SEPARATOR: u8 = b'/';

// A key of KEY_LEN_MAX bytes has at most KEY_LEN_MAX separators.
const _: () = assert!(TREE_DEPTH_MAX > KEY_LEN_MAX);

/// S3 bucket naming rules (general purpose buckets).
pub fn validate_bucket_name(name: &str) -> Result<()> {
    if bucket_name_is_valid(name) {
        Ok(())
    } else {
        Err(MetaError::InvalidBucketName(name.to_owned()))
    }
}

fn bucket_name_is_valid(name: &str) -> bool {
    let bytes = name.as_bytes();
    if !(BUCKET_NAME_LEN_MIN..=BUCKET_NAME_LEN_MAX).contains(&bytes.len()) {
        return false;
    }
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.';
    if !bytes.iter().all(allowed) {
        return false;
    }
    let alphanumeric =
        |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !alphanumeric(bytes.first()) || !alphanumeric(bytes.last()) {
        return false;
    }
    if name.contains("..") || looks_like_ipv4(name) {
        return false;
    }
    // Reserved by AWS for punycode, access point aliases and other features.
    const PREFIXES_RESERVED: &[&str] = &["xn--", "sthree-", "amzn-s3-demo-"];
    const SUFFIXES_RESERVED: &[&str] = &["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    if PREFIXES_RESERVED.iter().any(|p| name.starts_with(p)) {
        return false;
    }
    !SUFFIXES_RESERVED.iter().any(|s| name.ends_with(s))
}

/// `192.168.5.4` and the like: four dot-separated groups of 1-3 digits.
fn looks_like_ipv4(name: &str) -> bool {
    let mut groups = 0;
    for group in name.split('.') {
        groups += 1;
        if group.is_empty() || group.len() > 3 || !group.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    groups == 4
}

/// A key is 1..=`KEY_LEN_MAX` bytes of UTF-8 (any characters, kept as is).
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(MetaError::InvalidKey("key is empty".to_owned()));
    }
    if key.len() > KEY_LEN_MAX {
        return Err(MetaError::KeyTooLong);
    }
    Ok(())
}

/// Splits `key` into its directory segments and its object name:
/// `a/b/c` → (`[a, b]`, `c`); `a/` → (`[a]`, ``); `/a` → (`[``]`, `a`);
/// `a` → (`[]`, `a`).
pub fn split_key(key: &str) -> (Vec<&str>, &str) {
    match key.rsplit_once('/') {
        Some((directories, name)) => (directories.split('/').collect(), name),
        None => (Vec::new(), key),
    }
}

/// The stored name of the directory for `segment`: the segment plus `/`.
pub fn directory_stored_name(segment: &str) -> Vec<u8> {
    let mut stored = Vec::with_capacity(segment.len() + 1);
    stored.extend_from_slice(segment.as_bytes());
    stored.push(SEPARATOR);
    stored
}

/// Whether a stored name names a directory (it ends in `/`).
pub fn is_directory_stored_name(stored_name: &[u8]) -> bool {
    stored_name.last() == Some(&SEPARATOR)
}

/// The smallest byte string greater than every string that starts with
/// `prefix`, or `None` if there is none (empty or all `0xff`).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut successor = prefix.to_vec();
    while let Some(last) = successor.pop() {
        if let Some(next) = last.checked_add(1) {
            successor.push(next);
            return Some(successor);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in [
            "abc",
            "my-bucket",
            "my.bucket.1",
            "1bucket",
            "a-b.c-d",
            "192.168.5",
            "1.2.3.4.5",
        ] {
            assert_eq!(validate_bucket_name(ok), Ok(()), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in [
            "ab",
            long.as_str(),
            "My-bucket",
            "bucket_1",
            "-bucket",
            "bucket-",
            ".bucket",
            "bucket.",
            "a..b",
            "192.168.5.4",
            "xn--bucket",
            "bucket-s3alias",
            "bucket--ol-s3",
            "buck et",
            "bücket",
            "",
        ] {
            assert_eq!(
                validate_bucket_name(bad),
                Err(MetaError::InvalidBucketName(bad.to_owned())),
                "{bad}"
            );
        }
        assert_eq!(validate_bucket_name(&"a".repeat(63)), Ok(()));
    }

    #[test]
    fn keys() {
        assert_eq!(validate_key("a"), Ok(()));
        assert_eq!(validate_key(&"k".repeat(KEY_LEN_MAX)), Ok(()));
        assert_eq!(
            validate_key(&"k".repeat(KEY_LEN_MAX + 1)),
            Err(MetaError::KeyTooLong)
        );
        assert!(matches!(validate_key(""), Err(MetaError::InvalidKey(_))));
        // Multi-byte characters count in bytes.
        assert_eq!(
            validate_key(&"é".repeat(KEY_LEN_MAX / 2 + 1)),
            Err(MetaError::KeyTooLong)
        );
    }

    #[test]
    fn split() {
        assert_eq!(split_key("a"), (vec![], "a"));
        assert_eq!(split_key("a/b/c"), (vec!["a", "b"], "c"));
        assert_eq!(split_key("a/"), (vec!["a"], ""));
        assert_eq!(split_key("/a"), (vec![""], "a"));
        assert_eq!(split_key("a//b"), (vec!["a", ""], "b"));
        assert_eq!(split_key("./../é"), (vec![".", ".."], "é"));
        assert_eq!(split_key("/"), (vec![""], ""));
    }

    #[test]
    fn successor() {
        assert_eq!(prefix_successor(b"a-"), Some(b"a.".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b""), None);
        assert_eq!(prefix_successor(b"\xff\xff"), None);
    }

    #[test]
    fn stored_names_sort_in_key_order() {
        // Sibling stored names: object `a`, objects `a-c`, `a0`, directory `a/`.
        let mut names = [
            b"a0".to_vec(),
            directory_stored_name("a"),
            b"a-c".to_vec(),
            b"a".to_vec(),
        ];
        names.sort();
        assert_eq!(
            names,
            [
                b"a".to_vec(),
                b"a-c".to_vec(),
                b"a/".to_vec(),
                b"a0".to_vec()
            ]
        );
        assert!(is_directory_stored_name(b"a/"));
        assert!(!is_directory_stored_name(b"a"));
        assert!(!is_directory_stored_name(b""));
    }
}
