//! HMAC-SHA256 of a credential under the server key: what the database stores and indexes.

use std::fmt;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::format::Credential;

/// The server's HMAC key (`TOKENGATE_HASH_KEY`): at least 32 bytes. `Debug` never prints it.
/// Kept as a keyed HMAC state, so each digest starts from the precomputed key pads.
#[derive(Clone)]
pub struct HashKey(Hmac<Sha256>);

pub const MIN_KEY_BYTES: usize = 32;

impl HashKey {
    pub fn from_base64(encoded: &str) -> Result<Self, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| "TOKENGATE_HASH_KEY is not valid base64".to_owned())?;
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "TOKENGATE_HASH_KEY must decode to at least {MIN_KEY_BYTES} bytes (it has {})",
                bytes.len()
            ));
        }
        // HMAC accepts keys of any length, so this cannot fail for a 32-byte key.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&bytes)
            .map_err(|_| "TOKENGATE_HASH_KEY cannot key HMAC-SHA256".to_owned())?;
        Ok(HashKey(mac))
    }

    /// A fresh random key, base64 encoded, for `tokengate gen-key`.
    pub fn generate_base64() -> String {
        use rand::RngCore;
        let mut bytes = [0u8; MIN_KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn digest(&self, credential: &Credential) -> Digest {
        let mut mac = self.0.clone();
        mac.update(credential.expose().as_bytes());
        Digest(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey([redacted])")
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
    }
}
