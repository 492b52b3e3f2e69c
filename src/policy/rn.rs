//! Resource-name (RN) matching, SPEC §2.2.
//!
//! An RN is a list of `type/key` segments joined by `:`; a segment may carry
//! comma-separated tags after a `;` (`project/web;team-a,beta`). The semantics
//! follow FeatBit's `RNMatcher` (modules/back-end/src/Domain/Resources/RNMatcher.cs),
//! but the `*` glob is a linear chunk matcher instead of a cached regex.

/// Does `pattern` (from a statement) match `resource` (the thing being accessed)?
///
/// - neither may be empty;
/// - the pattern may have fewer segments than the resource (it then matches as a
///   prefix: `project/foo` matches `project/foo:env/prod`), never more;
/// - each pattern segment's path must match the resource segment's path, where `*`
///   matches any run of characters and everything else is literal and case-sensitive;
/// - if the pattern segment has tags, the resource segment must have tags and at
///   least one pattern tag (wildcards allowed) must match at least one resource tag.
///
/// Splitting is done with byte scans over borrowed slices, so a call allocates nothing. This
/// runs for every statement on every verified request: `str::split` with a `char` pattern
/// costs more to set up than these short scans (a third of `/auth/forward`'s own work,
/// measured with callgrind), and every delimiter is ASCII, so slicing at its byte index is
/// always on a character boundary.
pub fn rn_matches(pattern: &str, resource: &str) -> bool {
    if pattern.is_empty() || resource.is_empty() {
        return false;
    }

    // Walking both lists together checks the segment count and the segments in one
    // pass: running out of resource segments first means the pattern is longer.
    let mut resource_segments = split(resource, b':');
    split(pattern, b':').all(|pattern_segment| {
        resource_segments
            .next()
            .is_some_and(|resource_segment| segment_matches(pattern_segment, resource_segment))
    })
}

fn segment_matches(pattern: &str, resource: &str) -> bool {
    let (pattern_path, pattern_tags) = split_tags(pattern);
    let (resource_path, resource_tags) = split_tags(resource);

    if !glob_matches(pattern_path, resource_path) {
        return false;
    }

    // A pattern without tags ignores the resource's tags.
    let Some(pattern_tags) = pattern_tags else {
        return true;
    };
    // A pattern with tags needs a resource with tags.
    let Some(resource_tags) = resource_tags else {
        return false;
    };

    // OR semantics: one pattern tag matching one resource tag is enough. The cost is
    // (pattern tags × resource tags) small globs, bounded by the RN length limits.
    split(pattern_tags, b',').any(|pattern_tag| {
        split(resource_tags, b',').any(|resource_tag| glob_matches(pattern_tag, resource_tag))
    })
}

/// Does `outer` match every resource that `inner` matches? Both are patterns. Used to decide
/// whether one grant covers another (`policy::layers`), so it must never say yes wrongly; it may
/// say no to a few exotic pairs that are in fact covered.
///
/// `inner`'s text is matched by `outer` with `inner`'s `*` taken literally: only a `*` of
/// `outer` can absorb it, and whatever `inner`'s `*` stands for, that `*` absorbs it too. Tags
/// are stricter than in [`rn_matches`]: every tag of `inner` must be matched by a tag of
/// `outer`, since a resource may carry any one of `inner`'s tags.
pub fn pattern_covers(outer: &str, inner: &str) -> bool {
    if outer.is_empty() || inner.is_empty() {
        return false;
    }
    let mut inner_segments = split(inner, b':');
    split(outer, b':').all(|outer_segment| {
        inner_segments.next().is_some_and(|inner_segment| {
            let (outer_path, outer_tags) = split_tags(outer_segment);
            let (inner_path, inner_tags) = split_tags(inner_segment);
            glob_matches(outer_path, inner_path)
                && match (outer_tags, inner_tags) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(outer_tags), Some(inner_tags)) => split(inner_tags, b',').all(|tag| {
                        split(outer_tags, b',').any(|outer_tag| glob_matches(outer_tag, tag))
                    }),
                }
        })
    })
}

/// Could some resource match both patterns? Answers no only when it is certain, so a deny that
/// might touch a grant is always counted (`policy::layers`). Tags are assumed to overlap.
pub fn patterns_may_overlap(a: &str, b: &str) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    // A shorter pattern matches as a prefix: only the segments both have can tell them apart.
    split(a, b':')
        .zip(split(b, b':'))
        .all(|(a_segment, b_segment)| {
            globs_may_overlap(split_tags(a_segment).0, split_tags(b_segment).0)
        })
}

/// Could one text match both globs? Certain answers where a side has no `*`; otherwise the
/// literal text before the first `*` and after the last must be compatible.
fn globs_may_overlap(a: &str, b: &str) -> bool {
    match (a.contains('*'), b.contains('*')) {
        (false, false) => a == b,
        (true, false) => glob_matches(a, b),
        (false, true) => glob_matches(b, a),
        (true, true) => {
            let (a_first, a_last) = outer_chunks(a);
            let (b_first, b_last) = outer_chunks(b);
            (a_first.starts_with(b_first) || b_first.starts_with(a_first))
                && (a_last.ends_with(b_last) || b_last.ends_with(a_last))
        }
    }
}

/// The literal text before the first `*` and after the last one.
fn outer_chunks(glob: &str) -> (&str, &str) {
    let first = split_once(glob, b'*').map_or(glob, |(first, _)| first);
    let last = glob
        .bytes()
        .rposition(|b| b == b'*')
        .map_or(glob, |at| &glob[at + 1..]);
    (first, last)
}

/// Splits a segment into its path and its tag list, `None` when it has no tags.
///
/// Edge cases taken from FeatBit's `RNMatcher`, which SPEC §2.2 does not spell out:
/// - an empty tag list (`flag/x;`) counts as no tags at all, on either side, so the
///   pattern `flag/*;` matches `flag/x` and the pattern `flag/*;beta` does not match
///   `flag/x;`;
/// - only the text between the first and a second `;` is the tag list; anything after
///   a second `;` is ignored (FeatBit splits on every `;` and reads part 1 only);
/// - empty tags inside a list (`a,,b`) are kept, so an empty pattern tag matches an
///   empty resource tag, as FeatBit's split does.
fn split_tags(segment: &str) -> (&str, Option<&str>) {
    match split_once(segment, b';') {
        None => (segment, None),
        Some((path, rest)) => {
            let tags = split_once(rest, b';').map_or(rest, |(tags, _ignored)| tags);
            (path, (!tags.is_empty()).then_some(tags))
        }
    }
}

/// `*` matches any run of characters (including none); all else is literal.
///
/// Linear time, no backtracking: the pattern is cut at each `*` into literal chunks.
/// The first chunk must be a prefix of the text and the last one a suffix (of what
/// remains); each middle chunk is then taken at its leftmost occurrence, which is
/// always safe because any later occurrence leaves less room for the chunks after it.
/// `str::find` is linear and each search starts where the previous match ended.
///
/// Unlike FeatBit's regex (`.` there stops at a newline and `$` also matches before
/// a final newline), `*` here matches every character, as SPEC §2.2 states.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let Some((first, rest)) = split_once(pattern, b'*') else {
        return pattern == text;
    };
    let (middle, last) = match rest.bytes().rposition(|b| b == b'*') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => ("", rest),
    };

    let Some(remaining) = text.strip_prefix(first) else {
        return false;
    };
    let Some(mut window) = remaining.strip_suffix(last) else {
        return false;
    };

    for chunk in split(middle, b'*').filter(|chunk| !chunk.is_empty()) {
        match window.find(chunk) {
            Some(at) => window = &window[at + chunk.len()..],
            None => return false,
        }
    }
    true
}

/// `text.split_once(delimiter)` for an ASCII delimiter.
fn split_once(text: &str, delimiter: u8) -> Option<(&str, &str)> {
    let at = text.bytes().position(|b| b == delimiter)?;
    Some((&text[..at], &text[at + 1..]))
}

/// `text.split(delimiter)` for an ASCII delimiter: empty pieces included, as `str::split`.
fn split(text: &str, delimiter: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match split_once(current, delimiter) {
            Some((piece, tail)) => {
                rest = Some(tail);
                Some(piece)
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_splitting_agrees_with_str_split() {
        for text in [
            "",
            ":",
            "a",
            "a:b",
            ":a:",
            "a::b",
            "é:ü;x",
            "::",
            "project/é*:env",
        ] {
            for delimiter in [b':', b';', b',', b'*'] {
                let ours: Vec<&str> = split(text, delimiter).collect();
                let std: Vec<&str> = text.split(char::from(delimiter)).collect();
                assert_eq!(ours, std, "{text:?} on {}", char::from(delimiter));
                assert_eq!(
                    split_once(text, delimiter),
                    text.split_once(char::from(delimiter))
                );
            }
        }
    }

    fn check(cases: &[(&str, &str, bool)]) {
        for &(pattern, resource, expected) in cases {
            assert_eq!(
                rn_matches(pattern, resource),
                expected,
                "rn_matches({pattern:?}, {resource:?})"
            );
        }
    }

    #[test]
    fn exact_names_match_and_others_do_not() {
        check(&[
            ("project/foo", "project/foo", true),
            ("project/foo", "project/bar", false),
            ("project/foo:env/prod", "project/foo:env/prod", true),
            ("project/foo:env/prod", "project/foo:env/staging", false),
            ("project/foo.bar", "project/foo.bar", true),
            ("project/foo.bar", "project/fooxbar", false),
        ]);
    }

    #[test]
    fn wildcard_matches_any_run_of_characters_at_start_middle_and_end() {
        check(&[
            ("*", "project/foo", true),
            ("project/*", "project/foo", true),
            ("project/*", "project/", true),
            ("project/f*", "project/foo", true),
            ("project/b*", "project/foo", false),
            ("*/foo", "project/foo", true),
            ("*/foo", "project/bar", false),
            ("project/*o", "project/foo", true),
            ("project/f*-bar", "project/foo-bar", true),
            ("project/f*-bar", "project/foo-baz", false),
            ("project/f*o", "project/fo", true),
            ("project/fo*o", "project/fo", false),
            ("project/*.bar", "project/foo.bar", true),
        ]);
    }

    #[test]
    fn multiple_wildcards_match_in_order() {
        check(&[
            ("project/*-*-*", "project/foo-bar-baz", true),
            ("project/*-*-*", "project/foo-bar", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b*", "xxbxxaxx", false),
            ("**", "anything/at-all", true),
            ("a**b", "ab", true),
            ("*ab*ab*", "abab", true),
            ("*ab*ab*", "aba", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
        ]);
    }

    #[test]
    fn shorter_pattern_matches_as_a_prefix() {
        check(&[
            ("project/foo", "project/foo:env/prod", true),
            ("project/*", "project/foo:env/prod:flag/x", true),
            ("project/foo:env/prod", "project/foo:env/prod:flag/x", true),
            ("project/*:env/*", "project/a:env/b:flag/c", true),
            ("project/bar", "project/foo:env/prod", false),
            // the one-segment "*" covers every resource, which Owner relies on
            ("*", "project/p:env/e:flag/f", true),
        ]);
    }

    #[test]
    fn longer_pattern_never_matches() {
        check(&[
            ("project/foo:env/prod", "project/foo", false),
            ("project/foo:env/*", "project/foo", false),
            ("project/*:env/*:flag/*", "project/*", false),
            ("*:*", "project/foo", false),
            ("project/foo:env/prod:flag/x", "env/prod", false),
        ]);
    }

    #[test]
    fn tags_use_or_semantics() {
        check(&[
            ("project/foo;tagA", "project/foo;tagA", true),
            ("project/foo;tagA", "project/foo;tagA,tagB", true),
            ("project/foo;tagB", "project/foo;tagA", false),
            ("project/foo;tagA,tagB", "project/foo;tagB", true),
            ("project/foo;tagA,tagB", "project/foo;tagC", false),
            ("project/foo;tagB,tagC", "project/foo;tagA,tagB", true),
            ("project/foo;tagC,tagD", "project/foo;tagA,tagB", false),
        ]);
    }

    #[test]
    fn pattern_tags_require_resource_tags() {
        check(&[
            ("project/foo;tagA", "project/foo", false),
            ("project/*;required", "project/foo", false),
            ("project/*;*", "project/foo", false),
            // an empty resource tag list is no tag list (FeatBit)
            ("project/*;tagA", "project/foo;", false),
        ]);
    }

    #[test]
    fn pattern_tags_may_use_wildcards() {
        check(&[
            ("project/foo;*", "project/foo;tagA", true),
            ("project/foo;tag*", "project/foo;tagA,tagB", true),
            ("project/foo;prod*", "project/foo;production", true),
            ("project/foo;prod*", "project/foo;staging", false),
            ("project/foo;*-east", "project/foo;us-east,eu-west", true),
        ]);
    }

    #[test]
    fn pattern_without_tags_ignores_resource_tags() {
        check(&[
            ("project/foo", "project/foo;tagA", true),
            ("project/*", "project/foo;tagA,tagB", true),
            // an empty pattern tag list is no tag list (FeatBit)
            ("project/*;", "project/foo", true),
            ("project/*;", "project/foo;tagA", true),
        ]);
    }

    #[test]
    fn tags_are_checked_per_segment() {
        check(&[
            (
                "project/*;dev:env/*;us-east",
                "project/foo;dev:env/prod;us-east",
                true,
            ),
            (
                "project/*;dev:env/*;us-east",
                "project/foo;dev:env/prod;eu-west",
                false,
            ),
            (
                "project/*:env/*;us-east",
                "project/foo;dev:env/prod;us-east",
                true,
            ),
            (
                "project/*:env/*:flag/*;beta",
                "project/web:env/prod:flag/dark-mode;beta,ui",
                true,
            ),
            (
                "project/*:env/*:flag/*;beta",
                "project/web:env/prod:flag/dark-mode",
                false,
            ),
        ]);
    }

    #[test]
    fn text_after_a_second_semicolon_is_ignored_as_in_featbit() {
        check(&[
            ("flag/*;a;b", "flag/x;a", true),
            ("flag/*;a;b", "flag/x;b", false),
            ("flag/*;b", "flag/x;a;b", false),
            ("flag/*;a", "flag/x;a;ignored", true),
        ]);
    }

    #[test]
    fn empty_pattern_or_resource_never_matches() {
        check(&[
            ("", "project/foo", false),
            ("project/foo", "", false),
            ("", "", false),
            ("*", "", false),
        ]);
    }

    #[test]
    fn empty_segments_are_literal_and_count() {
        // FeatBit keeps empty entries when splitting; a trailing ':' adds a segment.
        check(&[
            ("project/foo:", "project/foo", false),
            ("project/foo:", "project/foo:env/prod", false),
            ("project/*:", "project/foo:", true),
            ("project/foo", "project/foo:", true),
            ("project/*:*", "project/foo:", true),
        ]);
    }

    #[test]
    fn matching_is_case_sensitive() {
        check(&[
            ("project/foo", "project/Foo", false),
            ("project/Foo", "project/Foo", true),
            ("Project/*", "project/foo", false),
            ("project/foo;Beta", "project/foo;beta", false),
        ]);
    }

    #[test]
    fn wildcard_matches_characters_a_regex_dot_would_not() {
        check(&[
            ("project/*", "project/a\nb", true),
            ("project/a*", "project/ab\n", true),
            ("project/a", "project/a\n", false),
            ("project/*é", "project/café", true),
        ]);
    }

    #[test]
    fn pathological_patterns_against_a_long_name_finish() {
        let long_key = "a".repeat(10 * 1024);
        let resource = format!("project/{long_key}");
        let stars = format!("project/{}", "*".repeat(50));
        let a_stars = format!("project/{}", "a*".repeat(50));
        let a_stars_b = format!("project/{}b", "a*".repeat(50));
        let many_tags = format!("project/*;{}", vec!["x*"; 200].join(","));
        let tagged_resource = format!("project/k;{}", vec!["y"; 2000].join(","));

        assert!(rn_matches(&stars, &resource));
        assert!(rn_matches(&a_stars, &resource));
        assert!(!rn_matches(&a_stars_b, &resource));
        assert!(!rn_matches(&many_tags, &tagged_resource));
        assert!(rn_matches("*", &resource));
    }

    /// The textbook dynamic-programming glob, as a reference for `glob_matches`.
    fn reference_glob(pattern: &[u8], text: &[u8]) -> bool {
        let mut row = vec![false; text.len() + 1];
        row[0] = true;
        for &p in pattern {
            let mut next = vec![false; text.len() + 1];
            if p == b'*' {
                next[0] = row[0];
                for j in 1..=text.len() {
                    next[j] = row[j] || next[j - 1];
                }
            } else {
                for j in 1..=text.len() {
                    next[j] = row[j - 1] && text[j - 1] == p;
                }
            }
            row = next;
        }
        row[text.len()]
    }

    fn all_strings(alphabet: &[u8], max_len: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut current = vec![String::new()];
        for _ in 0..max_len {
            current = current
                .iter()
                .flat_map(|s| {
                    alphabet.iter().map(move |&c| {
                        let mut longer = s.clone();
                        longer.push(char::from(c));
                        longer
                    })
                })
                .collect();
            all.extend(current.iter().cloned());
        }
        all
    }

    #[test]
    fn a_covering_glob_matches_everything_the_covered_one_does() {
        let patterns = all_strings(b"ab*", 4);
        let texts = all_strings(b"ab", 6);
        for outer in &patterns {
            for inner in &patterns {
                if !glob_matches(outer, inner) {
                    continue;
                }
                for text in texts.iter().filter(|t| glob_matches(inner, t)) {
                    assert!(
                        glob_matches(outer, text),
                        "{outer:?} covers {inner:?} but not {text:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn globs_said_not_to_overlap_share_no_text() {
        let patterns = all_strings(b"ab*", 4);
        let texts = all_strings(b"ab", 6);
        for a in &patterns {
            for b in &patterns {
                if globs_may_overlap(a, b) {
                    continue;
                }
                for text in &texts {
                    assert!(
                        !(glob_matches(a, text) && glob_matches(b, text)),
                        "{a:?} and {b:?} both match {text:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn pattern_cover_by_segments_and_tags() {
        let cases = [
            ("*", "project/web:env/prod", true),
            ("project/*", "project/*", true),
            ("project/*", "project/w*", true),
            ("project/w*", "project/*", false),
            // A shorter pattern covers a longer one as a prefix, never the other way.
            ("project/web", "project/web:env/*", true),
            ("project/web:env/*", "project/web", false),
            // Every tag the covered pattern accepts must be accepted by the cover.
            ("flag/*;beta", "flag/x;beta", true),
            ("flag/*;b*", "flag/x;beta,bold", true),
            ("flag/*;beta", "flag/x;beta,gamma", false),
            ("flag/*;beta", "flag/x", false),
            ("flag/*", "flag/x;anything", true),
            ("", "flag/x", false),
        ];
        for (outer, inner, expected) in cases {
            assert_eq!(
                pattern_covers(outer, inner),
                expected,
                "pattern_covers({outer:?}, {inner:?})"
            );
        }
    }

    #[test]
    fn pattern_overlap_compares_the_shared_segments() {
        let cases = [
            ("iam/secret", "iam/*", true),
            ("iam/secret", "iam/public", false),
            ("project/a*", "project/b*", false),
            ("project/*x", "project/*y", false),
            ("project/a*", "project/*b", true),
            // Prefix semantics: `project/web` matches `project/web:env/prod`.
            ("project/web", "project/web:env/prod", true),
            ("project/web:env/dev", "project/*:env/prod", false),
            ("flag/x;beta", "flag/x;gamma", true),
        ];
        for (a, b, expected) in cases {
            assert_eq!(patterns_may_overlap(a, b), expected, "{a:?} vs {b:?}");
            assert_eq!(patterns_may_overlap(b, a), expected, "{b:?} vs {a:?}");
        }
    }

    #[test]
    fn glob_agrees_with_a_reference_matcher_on_every_small_case() {
        let patterns = all_strings(b"ab*", 5);
        let texts = all_strings(b"ab", 6);
        for pattern in &patterns {
            for text in &texts {
                assert_eq!(
                    glob_matches(pattern, text),
                    reference_glob(pattern.as_bytes(), text.as_bytes()),
                    "glob_matches({pattern:?}, {text:?})"
                );
            }
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::{rn_matches, split};

    /// RNs built from the grammar: 1–4 segments `type/key`, each with optional tags.
    fn rn() -> impl Strategy<Value = String> {
        let segment = (
            "[a-z]{1,6}",
            "[a-z0-9-]{1,8}",
            prop::option::of(prop::collection::vec("[a-z]{1,5}", 1..3)),
        )
            .prop_map(|(kind, key, tags)| match tags {
                Some(tags) => format!("{kind}/{key};{}", tags.join(",")),
                None => format!("{kind}/{key}"),
            });
        prop::collection::vec(segment, 1..4).prop_map(|segments| segments.join(":"))
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_input(pattern in ".{0,64}", resource in ".{0,64}") {
            let _ = rn_matches(&pattern, &resource);
        }

        #[test]
        fn byte_splitting_agrees_with_str_split_on_any_text(text in "[a:;,*é/]{0,24}") {
            for delimiter in [b':', b';', b',', b'*'] {
                let ours: Vec<&str> = split(&text, delimiter).collect();
                let std: Vec<&str> = text.split(char::from(delimiter)).collect();
                prop_assert_eq!(ours, std);
            }
        }

        #[test]
        fn a_literal_rn_matches_itself(resource in rn()) {
            prop_assert!(rn_matches(&resource, &resource));
        }

        #[test]
        fn a_single_star_matches_every_non_empty_rn(resource in rn()) {
            prop_assert!(rn_matches("*", &resource));
        }

        #[test]
        fn every_prefix_of_segments_matches(resource in rn()) {
            let segments: Vec<&str> = resource.split(':').collect();
            for n in 1..=segments.len() {
                prop_assert!(rn_matches(&segments[..n].join(":"), &resource));
            }
        }

        #[test]
        fn a_longer_pattern_never_matches(resource in rn(), extra in "[a-z]{1,5}/[a-z]{1,5}") {
            let pattern = format!("{resource}:{extra}");
            prop_assert!(!rn_matches(&pattern, &resource));
        }

        #[test]
        fn replacing_keys_with_stars_still_matches(resource in rn()) {
            let pattern: Vec<String> = resource
                .split(':')
                .map(|segment| {
                    let path = segment.split(';').next().unwrap_or(segment);
                    match path.split_once('/') {
                        Some((kind, _)) => format!("{kind}/*"),
                        None => "*".to_owned(),
                    }
                })
                .collect();
            prop_assert!(rn_matches(&pattern.join(":"), &resource));
        }
    }
}
