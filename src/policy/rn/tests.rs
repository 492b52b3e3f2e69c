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
