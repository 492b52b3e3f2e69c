//! `<prefix>_<body><checksum>`: a distinct prefix per kind, 43 base62 characters of CSPRNG output
//! (≥ 256 bits), and a 6-character base62 CRC32 of prefix + body. The fixed shape lets us reject
//! garbage before any database work and lets secret scanners recognise a leaked token.

use std::fmt;

use rand::rngs::OsRng;
use rand::Rng;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 43 × log2(62) ≈ 256.03 bits.
const BODY_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
const PREFIX_LEN: usize = 4;
pub const CREDENTIAL_LEN: usize = PREFIX_LEN + BODY_LEN + CHECKSUM_LEN;
/// How many body characters the display hint keeps.
const HINT_BODY_CHARS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    PersonalToken,
    ServiceToken,
    WebSession,
}

impl CredentialKind {
    pub fn prefix(self) -> &'static str {
        match self {
            CredentialKind::PersonalToken => "tgp_",
            CredentialKind::ServiceToken => "tgs_",
            CredentialKind::WebSession => "tgw_",
        }
    }

    fn from_prefix(prefix: &str) -> Option<Self> {
        match prefix {
            "tgp_" => Some(CredentialKind::PersonalToken),
            "tgs_" => Some(CredentialKind::ServiceToken),
            "tgw_" => Some(CredentialKind::WebSession),
            _ => None,
        }
    }
}

/// A credential whose shape and checksum have been verified. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    kind: CredentialKind,
    secret: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed credential")]
pub struct Malformed;

impl Credential {
    /// A fresh credential from the operating system's CSPRNG.
    pub fn generate(kind: CredentialKind) -> Self {
        let mut secret = String::with_capacity(CREDENTIAL_LEN);
        secret.push_str(kind.prefix());
        let mut rng = OsRng;
        for _ in 0..BODY_LEN {
            // gen_range is uniform (rejection sampling), so every character carries log2(62) bits.
            secret.push(ALPHABET[rng.gen_range(0..ALPHABET.len())] as char);
        }
        let checksum = checksum(&secret);
        secret.extend(checksum.iter().map(|&b| char::from(b)));
        Credential { kind, secret }
    }

    /// Checks prefix, length, alphabet and checksum. Costs a CRC32 of ≤ 53 bytes: no I/O.
    pub fn parse(input: &str) -> Result<Self, Malformed> {
        if input.len() != CREDENTIAL_LEN || !input.is_ascii() {
            return Err(Malformed);
        }
        let kind = CredentialKind::from_prefix(&input[..PREFIX_LEN]).ok_or(Malformed)?;
        let (payload, sum) = input.split_at(PREFIX_LEN + BODY_LEN);
        if !input.as_bytes()[PREFIX_LEN..]
            .iter()
            .all(u8::is_ascii_alphanumeric)
        {
            return Err(Malformed);
        }
        if checksum(payload) != sum.as_bytes() {
            return Err(Malformed);
        }
        Ok(Credential {
            kind,
            secret: input.to_owned(),
        })
    }

    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    /// The secret itself: for the one response that hands it out, and for the digest.
    pub fn expose(&self) -> &str {
        &self.secret
    }

    /// What may be shown later: the prefix and the first body characters (`tgs_Ab3x…`).
    pub fn hint(&self) -> String {
        format!("{}…", &self.secret[..PREFIX_LEN + HINT_BODY_CHARS])
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("kind", &self.kind)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The base62 CRC32 of `payload`, as the credential's last characters (no allocation: it is
/// computed for every presented credential).
fn checksum(payload: &str) -> [u8; CHECKSUM_LEN] {
    let mut value = u64::from(crc32fast::hash(payload.as_bytes()));
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_parse_back_with_their_kind() {
        for kind in [
            CredentialKind::PersonalToken,
            CredentialKind::ServiceToken,
            CredentialKind::WebSession,
        ] {
            let credential = Credential::generate(kind);
            assert_eq!(credential.expose().len(), CREDENTIAL_LEN);
            assert!(credential.expose().starts_with(kind.prefix()));
            let parsed = Credential::parse(credential.expose()).expect("round trip");
            assert_eq!(parsed.kind(), kind);
        }
    }

    #[test]
    fn two_credentials_differ() {
        let a = Credential::generate(CredentialKind::ServiceToken);
        let b = Credential::generate(CredentialKind::ServiceToken);
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn malformed_credentials_are_rejected() {
        let good = Credential::generate(CredentialKind::PersonalToken);
        let s = good.expose();
        let mut flipped = s.to_owned().into_bytes();
        // Change one body character: the checksum no longer matches.
        flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        let wrong_prefix = format!("tgx_{}", &s[4..]);
        let bad_alphabet = format!("{}-{}", &s[..20], &s[21..]);
        for input in [
            "",
            "tgp_",
            &s[..s.len() - 1],
            &format!("{s}0"),
            &flipped,
            &wrong_prefix,
            &bad_alphabet,
            &format!("Bearer {s}"),
            &"é".repeat(CREDENTIAL_LEN / 2),
        ] {
            assert_eq!(Credential::parse(input), Err(Malformed), "{input:?}");
        }
    }

    #[test]
    fn hint_keeps_prefix_and_four_body_characters() {
        let c = Credential::generate(CredentialKind::ServiceToken);
        let hint = c.hint();
        assert_eq!(hint, format!("{}…", &c.expose()[..8]));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credential::generate(CredentialKind::WebSession);
        let shown = format!("{c:?}");
        assert!(!shown.contains(&c.expose()[4..]));
        assert!(shown.contains("redacted"));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn kind() -> impl Strategy<Value = CredentialKind> {
        prop_oneof![
            Just(CredentialKind::PersonalToken),
            Just(CredentialKind::ServiceToken),
            Just(CredentialKind::WebSession),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_input(input in ".{0,80}") {
            let _ = Credential::parse(&input);
        }

        #[test]
        fn never_panics_on_near_misses(input in "tg[psw]_[0-9A-Za-z]{47,51}") {
            let _ = Credential::parse(&input);
        }

        #[test]
        fn any_single_character_change_is_rejected(kind in kind(), position in 0usize..CREDENTIAL_LEN, replacement in "[0-9A-Za-z_]") {
            let credential = Credential::generate(kind);
            let mut bytes = credential.expose().as_bytes().to_vec();
            let replacement = replacement.as_bytes()[0];
            prop_assume!(bytes[position] != replacement);
            bytes[position] = replacement;
            let mutated = String::from_utf8(bytes).expect("ascii");
            prop_assert_eq!(Credential::parse(&mutated), Err(Malformed));
        }

        #[test]
        fn generated_credentials_round_trip(kind in kind()) {
            let credential = Credential::generate(kind);
            prop_assert_eq!(Credential::parse(credential.expose()).map(|c| c.kind()), Ok(kind));
        }
    }
}
