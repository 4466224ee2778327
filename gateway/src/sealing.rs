//! Secrets at rest: the access keys' secrets are kept in the metadata
//! service sealed (ChaCha20-Poly1305, the access key id as associated data)
//! under the node key, 32 random bytes in the data directory's
//! [`NODE_KEY_FILE`] (mode 0600). SigV4 needs the secret itself, so it is
//! sealed, not hashed. Every gateway of a deployment must hold the same
//! node key file; the metadata nodes never see it, nor a secret in the
//! clear.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use arbor_meta::clock::Entropy;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

pub const NODE_KEY_FILE: &str = "node.key";
const NODE_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// The first byte of a sealed secret: the format, so another cipher can
/// come later.
const SEALED_FORMAT: u8 = 1;

/// The key that seals and opens secrets.
#[derive(Clone)]
pub struct NodeKey {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeKey(<redacted>)")
    }
}

impl NodeKey {
    pub fn from_bytes(bytes: &[u8; NODE_KEY_LEN]) -> NodeKey {
        NodeKey {
            cipher: ChaCha20Poly1305::new(Key::from_slice(bytes)),
        }
    }

    /// The key in `data_dir`'s [`NODE_KEY_FILE`] (hex), written there first
    /// (mode 0600, fsync'd) if there is none.
    pub fn load_or_create(data_dir: &Path, entropy: &dyn Entropy) -> anyhow::Result<NodeKey> {
        let path = data_dir.join(NODE_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| <[u8; NODE_KEY_LEN]>::try_from(b).ok())
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "{}: not {NODE_KEY_LEN} bytes in hexadecimal",
                            path.display()
                        )
                    })?;
                return Ok(NodeKey::from_bytes(&bytes));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
        let mut bytes = [0u8; NODE_KEY_LEN];
        entropy.fill(&mut bytes);
        let tmp = data_dir.join(format!("{NODE_KEY_FILE}.tmp"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(hex::encode(bytes).as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(data_dir)?.sync_all()?;
        Ok(NodeKey::from_bytes(&bytes))
    }

    /// `secret` sealed for `access_key`: format ‖ nonce ‖ ciphertext and tag.
    pub fn seal(&self, access_key: &str, secret: &str, entropy: &dyn Entropy) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        entropy.fill(&mut nonce);
        let payload = Payload {
            msg: secret.as_bytes(),
            aad: access_key.as_bytes(),
        };
        // Encryption into a Vec fails only past ChaCha20's 256 GiB.
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(SEALED_FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The secret sealed for `access_key`; `None` if `sealed` was sealed
    /// under another node key, for another access key, or altered.
    pub fn open(&self, access_key: &str, sealed: &[u8]) -> Option<String> {
        let (&format, rest) = sealed.split_first()?;
        if format != SEALED_FORMAT || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: access_key.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_meta::clock::SeededEntropy;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_access_key() {
        let seeded = SeededEntropy::new(7);
        let entropy = seeded.as_ref();
        let key = NodeKey::from_bytes(&[1; NODE_KEY_LEN]);
        let sealed = key.seal("AKID", "the secret", entropy);
        assert!(
            !sealed.windows(10).any(|w| w == b"the secret"),
            "not in the clear"
        );
        assert_eq!(key.open("AKID", &sealed).as_deref(), Some("the secret"));
        assert_eq!(key.open("OTHER", &sealed), None);
        assert_eq!(
            NodeKey::from_bytes(&[2; NODE_KEY_LEN]).open("AKID", &sealed),
            None
        );
        let mut altered = sealed.clone();
        if let Some(last) = altered.last_mut() {
            *last ^= 1;
        }
        assert_eq!(key.open("AKID", &altered), None);
        assert_eq!(key.open("AKID", &[]), None);
        assert_eq!(key.open("AKID", &sealed[..5]), None);
        assert_ne!(
            key.seal("AKID", "the secret", entropy),
            sealed,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn the_node_key_file_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let seeded = SeededEntropy::new(1);
        let entropy = seeded.as_ref();
        let first = NodeKey::load_or_create(dir.path(), entropy).expect("create");
        let mode = std::fs::metadata(dir.path().join(NODE_KEY_FILE))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = NodeKey::load_or_create(dir.path(), entropy).expect("load");
        let sealed = first.seal("AKID", "s", entropy);
        assert_eq!(second.open("AKID", &sealed).as_deref(), Some("s"));
        std::fs::write(dir.path().join(NODE_KEY_FILE), "not hex").expect("write");
        assert!(NodeKey::load_or_create(dir.path(), entropy).is_err());
    }
}
