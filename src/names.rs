//! Names people give things (tokens, policies, groups, organizations, members): which characters
//! a name may hold, and when two names count as the same (SPEC §9). Pure: no I/O.

use caseless::Caseless;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Whether `c` may not appear in a name: controls (Cc), format characters (Cf: zero-width space
/// and joiners, bidi overrides and isolates, the byte-order mark, the soft hyphen, …) and the
/// line and paragraph separators (Zl, Zp). They are invisible or reorder what is shown, so two
/// names that look the same could differ only by them, and a list could show a name that reads
/// as another.
pub fn is_forbidden(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// The form under which two names are the same: Unicode's compatibility caseless match (NFKC
/// and full case folding, definition D145), so `ｐｒｏｄ` (fullwidth), `Prod` and `PROD` are
/// all `prod`, and `Straße` is `strasse`. Stored beside each unique name and compared by a
/// unique index, so the database refuses what this says is taken.
pub fn unique_key(name: &str) -> String {
    // D145 folds, decomposes, folds again (folding can un-normalize) and decomposes; composing
    // at the end keeps the stored key short without changing which keys are equal.
    name.chars()
        .nfd()
        .default_case_fold()
        .nfkd()
        .default_case_fold()
        .nfkc()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_reordering_characters_are_forbidden() {
        for c in [
            '\u{0}',
            '\u{7}',
            '\u{7f}',
            '\u{85}',   // controls
            '\u{ad}',   // soft hyphen
            '\u{200b}', // zero-width space
            '\u{200c}',
            '\u{200d}', // zero-width non-joiner, joiner
            '\u{200e}',
            '\u{200f}', // LRM, RLM
            '\u{202a}',
            '\u{202e}', // LRE, RLO
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}', // LRI, RLI, FSI, PDI
            '\u{2060}', // word joiner
            '\u{feff}', // byte-order mark
            '\u{2028}',
            '\u{2029}',  // line, paragraph separators
            '\u{e0041}', // tag character
        ] {
            assert!(is_forbidden(c), "{:?} should be forbidden", c);
        }
        for c in [
            'a', 'Z', '0', ' ', '-', '_', 'é', 'ß', 'ｐ', '中', '\u{a0}', '🚀',
        ] {
            assert!(!is_forbidden(c), "{c:?} should be allowed");
        }
    }

    #[test]
    fn look_alike_names_share_a_key() {
        let prod = unique_key("prod");
        for same in ["prod", "Prod", "PROD", "ｐｒｏｄ", "ＰＲＯＤ", "ｐrod"] {
            assert_eq!(unique_key(same), prod, "{same}");
        }
        assert_eq!(unique_key("Straße"), unique_key("STRASSE"));
        // Composed and decomposed accents, ligatures and superscripts.
        assert_eq!(unique_key("caf\u{e9}"), unique_key("cafe\u{301}"));
        assert_eq!(unique_key("\u{fb01}le"), unique_key("file"));
        assert_eq!(unique_key("x\u{b2}"), unique_key("x2"));
        // Greek final sigma folds like the others.
        assert_eq!(unique_key("ΟΔΟΣ"), unique_key("οδος"));
        assert_eq!(unique_key("ΟΔΟΣ"), unique_key("οδοσ"));
    }

    #[test]
    fn different_names_keep_different_keys() {
        for (a, b) in [
            ("prod", "prod2"),
            ("prod", "pr od"),
            ("dev", "dév"),
            ("a-b", "a_b"),
        ] {
            assert_ne!(unique_key(a), unique_key(b), "{a} vs {b}");
        }
    }

    #[test]
    fn a_key_is_its_own_key() {
        for name in [
            "Prod",
            "ｐｒｏｄ",
            "Straße",
            "ﬁle",
            "ΟΔΟΣ",
            "İstanbul",
            "x\u{345}",
        ] {
            let key = unique_key(name);
            assert_eq!(unique_key(&key), key, "{name}");
        }
    }
}
