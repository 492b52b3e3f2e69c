//! The one form of an email that logins, their limits and account uniqueness compare.

use unicode_normalization::UnicodeNormalization;

/// The canonical form of `email`: compatibility-normalised (NFKC, so fullwidth or ligature
/// spellings meet their plain letters), lower-cased by Rust, and trimmed. Computed here only, for
/// the login limiter's key and for the `users.email_canonical` column every lookup uses: when two
/// places each folded case their own way (Rust for the limiter, PostgreSQL's locale for the
/// lookup), a spelling could get a fresh limit and still open the account.
pub fn canonical_email(email: &str) -> String {
    let lowered = email.nfkc().collect::<String>().to_lowercase();
    // Lower-casing can leave a string that is no longer normalised (a dotted capital I becomes an
    // i and a combining dot), and normalising can add leading spaces (a spacing diaeresis):
    // normalise and trim last, so the form is stable when applied again.
    lowered.nfkc().collect::<String>().trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_width_and_surrounding_space_do_not_matter() {
        for spelling in [
            "admin@example.test",
            "Admin@Example.TEST",
            "  ADMIN@example.test\t",
            "ａｄｍｉｎ@ｅｘａｍｐｌｅ.test",
            "ＡＤＭＩＮ@example.test",
        ] {
            assert_eq!(
                canonical_email(spelling),
                "admin@example.test",
                "{spelling}"
            );
        }
    }

    #[test]
    fn a_dotted_capital_i_is_not_a_plain_i() {
        let dotted = canonical_email("admİn@example.test");
        assert_ne!(dotted, "admin@example.test");
        assert_eq!(dotted, "admi\u{307}n@example.test");
        assert_eq!(canonical_email(&dotted), dotted);
    }

    #[test]
    fn composed_and_decomposed_accents_meet() {
        assert_eq!(
            canonical_email("E\u{301}mile@example.test"),
            canonical_email("Émile@example.test")
        );
        assert_eq!(canonical_email("Émile@example.test"), "émile@example.test");
    }

    proptest::proptest! {
        #[test]
        fn the_canonical_form_is_its_own_canonical_form(email in "\\PC{0,40}") {
            let once = canonical_email(&email);
            proptest::prop_assert_eq!(canonical_email(&once), once);
        }

        /// (Latin-1 letters but ß, whose capital is "SS": lower-casing is not full case folding.)
        #[test]
        fn upper_and_lower_case_give_one_form(email in "[a-zA-ZÀ-ÖØ-Þà-öø-ÿ0-9.@]{1,40}") {
            proptest::prop_assert_eq!(
                canonical_email(&email.to_uppercase()),
                canonical_email(&email.to_lowercase())
            );
        }
    }
}
