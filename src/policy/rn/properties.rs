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
