//! HMAC-SHA256 of a credential under the server key: what the database stores and indexes.

use std::fmt;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::format::Credential;

/// The server's HMAC key (`TOKENGATE_HASH_KEY`): at least 32 bytes. `Debug` never prints it.
/// Kept as a keyed HMAC state, so each digest starts from the precomputed key pads.
#[derive(Clone)]
pub struct HashKey {
    mac: Hmac<Sha256>,
    id: KeyId,
}

/// Which key made a digest, stored beside it so that `tokengate key-status` can tell what still
/// depends on a previous key: the first 4 bytes of SHA-256 of the key, as 8 hex digits. It
/// names a key without revealing it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 4]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

pub const MIN_KEY_BYTES: usize = 32;

impl HashKey {
    pub fn from_base64(encoded: &str) -> Result<Self, String> {
        Self::named_from_base64("TOKENGATE_HASH_KEY", encoded)
    }

    /// As [`HashKey::from_base64`], with errors naming `what` (the variable, or which entry of
    /// `TOKENGATE_PREVIOUS_HASH_KEYS`); never the key itself.
    pub fn named_from_base64(what: &str, encoded: &str) -> Result<Self, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| format!("{what} is not valid base64"))?;
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "{what} must decode to at least {MIN_KEY_BYTES} bytes (it has {})",
                bytes.len()
            ));
        }
        // HMAC accepts keys of any length, so this cannot fail for a 32-byte key.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&bytes)
            .map_err(|_| format!("{what} cannot key HMAC-SHA256"))?;
        let hash = <Sha256 as sha2::Digest>::digest(&bytes);
        let id = KeyId([hash[0], hash[1], hash[2], hash[3]]);
        Ok(HashKey { mac, id })
    }

    /// `TOKENGATE_PREVIOUS_HASH_KEYS`: comma-separated keys in the format of
    /// `TOKENGATE_HASH_KEY`, each checked; empty entries are ignored, and so is a repeat of the
    /// current key (or of an earlier entry).
    pub fn previous_from_base64(
        current: &HashKey,
        entries: &[&str],
    ) -> Result<Vec<HashKey>, String> {
        let mut keys: Vec<HashKey> = Vec::new();
        for (n, entry) in entries.iter().enumerate() {
            if entry.trim().is_empty() {
                continue;
            }
            let what = format!("TOKENGATE_PREVIOUS_HASH_KEYS entry {}", n + 1);
            let key = Self::named_from_base64(&what, entry)?;
            if key.id != current.id && keys.iter().all(|k| k.id != key.id) {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    /// A fresh random key, base64 encoded, for `tokengate gen-key`.
    pub fn generate_base64() -> String {
        use rand::RngCore;
        let mut bytes = [0u8; MIN_KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn digest(&self, credential: &Credential) -> Digest {
        let mut mac = self.mac.clone();
        mac.update(credential.expose().as_bytes());
        Digest(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HashKey({}, [redacted])", self.id)
    }
}

/// What is stored in the unique `secret_hash` column.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::CredentialKind;

    #[test]
    fn short_or_invalid_keys_are_refused() {
        assert!(HashKey::from_base64("not base64!").is_err());
        assert!(HashKey::from_base64("c2hvcnQ=").is_err());
        assert!(HashKey::from_base64(&HashKey::generate_base64()).is_ok());
    }

    #[test]
    fn digest_depends_on_key_and_credential() {
        let k1 = HashKey::from_base64(&HashKey::generate_base64()).expect("key");
        let k2 = HashKey::from_base64(&HashKey::generate_base64()).expect("key");
        let c = Credential::generate(CredentialKind::PersonalToken);
        let d = Credential::generate(CredentialKind::PersonalToken);
        assert_eq!(k1.digest(&c), k1.digest(&c));
        assert_ne!(k1.digest(&c), k2.digest(&c));
        assert_ne!(k1.digest(&c), k1.digest(&d));
        assert_ne!(k1.id(), k2.id());
        assert_eq!(k1.id().to_string().len(), 8);
    }

    #[test]
    fn previous_keys_are_checked_named_and_deduplicated() {
        let current_text = HashKey::generate_base64();
        let current = HashKey::from_base64(&current_text).expect("key");
        let old = HashKey::generate_base64();
        let keys = HashKey::previous_from_base64(&current, &[&old, "", &current_text, &old])
            .expect("valid");
        assert_eq!(keys.len(), 1);
        let err = HashKey::previous_from_base64(&current, &[&old, "c2hvcnQ="]).expect_err("short");
        assert!(
            err.contains("TOKENGATE_PREVIOUS_HASH_KEYS entry 2"),
            "{err}"
        );
        assert!(!err.contains(&old), "{err}");
        assert!(!format!("{current:?}").contains(&current_text));
    }
}
