//! The properties the credential fuzz targets check, shared by the libFuzzer target
//! (`fuzz_targets/credential_parse.rs`) and the stable-toolchain runner
//! (`src/bin/credential_parse_stable.rs`).
//!
//! For any input, `Credential::parse` must not panic, and:
//! - whatever parses round-trips: `parse(c.expose()) == Ok(c)`, and `expose()` is the input itself;
//! - the parser agrees with an independent model of the format (SPEC §3: prefix `tgp_`/`tgs_`/`tgw_`,
//!   43 base62 body characters, a 6-character base62 CRC32 of prefix + body) — it neither accepts
//!   what the model rejects nor rejects what the model accepts;
//! - `hint()` never panics, starts with the kind's prefix and reveals at most 4 body characters;
//! - `Debug` never shows the secret.
//!
//! Random bytes almost never carry a valid checksum, so every input is also turned into a
//! well-formed credential (kind and body taken from the bytes, checksum from the model), which must
//! parse, and then into a one-character mutation of it, which must not.

use tokengate::credential::{Credential, CredentialKind};

const PREFIXES: [(&str, CredentialKind); 3] = [
    ("tgp_", CredentialKind::PersonalToken),
    ("tgs_", CredentialKind::ServiceToken),
    ("tgw_", CredentialKind::WebSession),
];
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const PREFIX_LEN: usize = 4;
const BODY_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
const LEN: usize = PREFIX_LEN + BODY_LEN + CHECKSUM_LEN;
const HINT_BODY_MAX: usize = 4;

/// The format as SPEC §3 describes it, written independently of `src/credential/format.rs`.
pub mod model {
    use super::*;

    /// Base62 (`0-9A-Za-z`, most significant digit first) of the CRC32 of `payload`, 6 digits.
    pub fn checksum(payload: &str) -> String {
        let mut n = u64::from(crc32fast::hash(payload.as_bytes()));
        let mut digits = [0u8; CHECKSUM_LEN];
        for d in digits.iter_mut().rev() {
            *d = ALPHABET[(n % 62) as usize];
            n /= 62;
        }
        debug_assert_eq!(n, 0, "a CRC32 always fits in 6 base62 digits");
        String::from_utf8(digits.to_vec()).unwrap_or_default()
    }

    /// The kind `s` would parse as, if it is a well-formed credential.
    pub fn kind_of(s: &str) -> Option<CredentialKind> {
        if s.len() != LEN || !s.is_ascii() {
            return None;
        }
        let (_, kind) = PREFIXES.iter().find(|(p, _)| s.starts_with(p))?;
        if !s.as_bytes()[PREFIX_LEN..]
            .iter()
            .all(u8::is_ascii_alphanumeric)
        {
            return None;
        }
        let (payload, sum) = s.split_at(PREFIX_LEN + BODY_LEN);
        (checksum(payload) == sum).then_some(*kind)
    }

    /// A well-formed credential built from arbitrary bytes: the first picks the kind, the next
    /// 43 (cycled, `0` when there are none) the body characters.
    pub fn build(data: &[u8]) -> (String, CredentialKind) {
        let (prefix, kind) = PREFIXES[usize::from(data.first().copied().unwrap_or(0)) % 3];
        let rest = data.get(1..).unwrap_or(&[]);
        let mut s = String::with_capacity(LEN);
        s.push_str(prefix);
        for i in 0..BODY_LEN {
            let b = if rest.is_empty() {
                0
            } else {
                rest[i % rest.len()]
            };
            s.push(ALPHABET[usize::from(b) % 62] as char);
        }
        let sum = checksum(&s);
        s.push_str(&sum);
        (s, kind)
    }
}

/// Every property, on one string.
pub fn check_str(s: &str) {
    let parsed = Credential::parse(s);
    let expected = model::kind_of(s);
    match parsed {
        Ok(c) => {
            assert_eq!(
                expected,
                Some(c.kind()),
                "parse accepted a string the format model rejects (or gave another kind): {s:?}"
            );
            check_accepted(s, &c);
        }
        Err(_) => assert!(
            expected.is_none(),
            "parse rejected a well-formed {expected:?} credential: {s:?}"
        ),
    }
}

fn check_accepted(s: &str, c: &Credential) {
    assert_eq!(
        c.expose(),
        s,
        "expose() must give back exactly what was parsed"
    );
    assert_eq!(
        Credential::parse(c.expose()),
        Ok(c.clone()),
        "a parsed credential must round-trip"
    );
    assert!(
        s.starts_with(c.kind().prefix()),
        "kind does not match the prefix: {s:?}"
    );

    let hint = c.hint();
    assert!(
        hint.starts_with(c.kind().prefix()),
        "hint {hint:?} lacks the prefix"
    );
    let shown = hint.trim_end_matches('…');
    assert!(
        s.starts_with(shown),
        "hint {hint:?} is not a prefix of the credential"
    );
    assert!(
        shown.len() <= PREFIX_LEN + HINT_BODY_MAX,
        "hint {hint:?} reveals more than {HINT_BODY_MAX} body characters"
    );

    let debug = format!("{c:?}");
    assert!(
        !debug.contains(&s[PREFIX_LEN..]),
        "Debug shows the secret: {debug}"
    );
}

/// Every property, on arbitrary bytes: as UTF-8 when they are, always through
/// `from_utf8_lossy`, and through a credential built from them plus a one-character mutation.
pub fn check_bytes(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        check_str(s);
    }
    check_str(&String::from_utf8_lossy(data));

    let (good, kind) = model::build(data);
    match Credential::parse(&good) {
        Ok(c) => assert_eq!(c.kind(), kind, "{good:?} parsed with the wrong kind"),
        Err(e) => panic!("a well-formed credential was rejected ({e}): {good:?}"),
    }
    check_str(&good);

    // One character changed (position and replacement from the input): always rejected, since a
    // CRC32 catches every single-character change and the checksum has one spelling per value.
    if data.len() >= 2 {
        let pos = usize::from(data[data.len() - 2]) % LEN;
        let replacement = char::from(data[data.len() - 1] & 0x7f);
        let mut mutated: Vec<char> = good.chars().collect();
        if mutated[pos] != replacement {
            mutated[pos] = replacement;
            let mutated: String = mutated.into_iter().collect();
            assert!(
                Credential::parse(&mutated).is_err(),
                "a one-character change of a valid credential was accepted: {mutated:?}"
            );
            check_str(&mutated);
        }
    }
    // Truncated and extended.
    check_str(&good[..LEN - 1]);
    check_str(&format!("{good}0"));
    check_str(&format!("Bearer {good}"));
}
