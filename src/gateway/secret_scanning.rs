//! GitHub secret scanning (its partner programme): GitHub posts the secrets it found in public
//! code, signed with ECDSA P-256 over the raw body; the keys come from a file the operator keeps
//! (this service may not reach GitHub to fetch them). This module checks the signature; the
//! route decides what to do with the reported tokens.

use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;

/// GitHub's public keys, by identifier.
#[derive(Debug, Clone, Default)]
pub struct ScanningKeys {
    keys: Vec<(String, VerifyingKey)>,
}

/// Why a report is not believed. Deliberately vague to the caller: it answers 401 either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadSignature {
    UnknownKey,
    Malformed,
    Mismatch,
}

#[derive(Deserialize)]
struct KeysFile {
    public_keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
struct KeyEntry {
    key_identifier: String,
    key: String,
}

impl ScanningKeys {
    /// GitHub's `public_keys` document: `{"public_keys": [{"key_identifier", "key" (PEM),
    /// "is_current"}]}`. Every key is accepted, current or not: GitHub signs with the current
    /// one, and a report signed just before a rotation is still GitHub's.
    pub fn parse(json: &str) -> Result<Self, String> {
        let file: KeysFile = serde_json::from_str(json)
            .map_err(|e| format!("secret-scanning keys: not GitHub's public_keys JSON: {e}"))?;
        if file.public_keys.is_empty() {
            return Err("secret-scanning keys: no key in the file".to_owned());
        }
        let keys = file
            .public_keys
            .into_iter()
            .map(|entry| {
                VerifyingKey::from_public_key_pem(entry.key.trim())
                    .map(|key| (entry.key_identifier.clone(), key))
                    .map_err(|e| {
                        format!(
                            "secret-scanning keys: key {:?} is not a P-256 public key in PEM: {e}",
                            entry.key_identifier
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(ScanningKeys { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks `signature` (base64 of a DER ECDSA signature, SHA-256) over `body` with the key
    /// `key_id` names.
    pub fn verify(&self, key_id: &str, signature: &str, body: &[u8]) -> Result<(), BadSignature> {
        let key = self
            .keys
            .iter()
            .find(|(id, _)| id == key_id)
            .map(|(_, key)| key)
            .ok_or(BadSignature::UnknownKey)?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| BadSignature::Malformed)?;
        let signature = Signature::from_der(&der).map_err(|_| BadSignature::Malformed)?;
        key.verify(body, &signature)
            .map_err(|_| BadSignature::Mismatch)
    }
}

#[cfg(test)]
pub mod tests {
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::SigningKey;
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    use super::*;

    /// A key pair and the keys file that names it, as a test of the route would make them.
    pub fn keys_file(id: &str) -> (SigningKey, String) {
        let signing = SigningKey::random(&mut rand::rngs::OsRng);
        let pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        let file = serde_json::json!({ "public_keys": [
            { "key_identifier": id, "key": pem, "is_current": true }
        ] });
        (signing, file.to_string())
    }

    pub fn sign(key: &SigningKey, body: &[u8]) -> String {
        let signature: Signature = key.sign(body);
        base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
    }

    #[test]
    fn a_signature_by_the_named_key_over_the_body_verifies() {
        let (signing, file) = keys_file("k1");
        let keys = ScanningKeys::parse(&file).expect("keys");
        let body = br#"[{"token":"x","type":"t","url":"u","source":"s"}]"#;
        let signature = sign(&signing, body);
        assert_eq!(keys.verify("k1", &signature, body), Ok(()));
        assert_eq!(
            keys.verify("k1", &signature, b"[]"),
            Err(BadSignature::Mismatch)
        );
        assert_eq!(
            keys.verify("k2", &signature, body),
            Err(BadSignature::UnknownKey)
        );
        assert_eq!(
            keys.verify("k1", "not base64!", body),
            Err(BadSignature::Malformed)
        );
        assert_eq!(
            keys.verify("k1", "AAAA", body),
            Err(BadSignature::Malformed)
        );
        let (other, _) = keys_file("k1");
        assert_eq!(
            keys.verify("k1", &sign(&other, body), body),
            Err(BadSignature::Mismatch)
        );
    }

    #[test]
    fn malformed_key_files_are_refused() {
        for file in [
            "",
            "{}",
            r#"{"public_keys": []}"#,
            r#"{"public_keys": [{"key_identifier": "k", "key": "not pem"}]}"#,
        ] {
            assert!(ScanningKeys::parse(file).is_err(), "{file:?}");
        }
    }
}
