//! Soundness: whenever the rule says "covers", no concrete check is allowed to the covered
//! side and refused to the holder. Statements are drawn from a small vocabulary so that
//! wildcards, prefixes, tags and denies meet often.

use proptest::prelude::*;

use super::*;

const PATTERNS: &[&str] = &[
    "*", "p/*", "p/a", "p/a*", "p/*b", "p/*:e/*", "p/a:e/x", "p/*;t", "p/*;t,u", "p/a;u*", "q/*",
    "*/a",
];
const ACTIONS: &[&str] = &["A", "B", "*"];
const RESOURCES: &[&str] = &[
    "p/a", "p/b", "p/ab", "p/a:e/x", "p/a:e/y", "p/a;t", "p/b;t,u", "p/a;u1", "q/a", "q/b:e/x",
];
const PROBE_ACTIONS: &[&str] = &["A", "B", "C", "*"];

fn statement() -> impl Strategy<Value = Statement> {
    (
        prop_oneof![9 => Just("x"), 1 => Just("*")],
        prop_oneof![3 => Just(Effect::Allow), 1 => Just(Effect::Deny)],
        proptest::collection::vec(proptest::sample::select(ACTIONS), 1..3),
        proptest::collection::vec(proptest::sample::select(PATTERNS), 1..3),
    )
        .prop_map(|(resource_type, effect, actions, resources)| Statement {
            id: String::new(),
            resource_type: resource_type.to_owned(),
            effect,
            actions: actions.into_iter().map(str::to_owned).collect(),
            resources: resources.into_iter().map(str::to_owned).collect(),
        })
}

fn layer() -> impl Strategy<Value = Layer> {
    proptest::collection::vec(statement(), 0..4).prop_map(Arc::new)
}

fn layers(live: Option<Layer>) -> impl Strategy<Value = Layers> {
    (
        proptest::collection::vec(layer(), 0..2),
        proptest::option::of(layer()),
    )
        .prop_map(move |(frozen, scope)| Layers {
            live: live.clone(),
            frozen,
            scope,
        })
}

fn holder_and_other() -> impl Strategy<Value = (Layers, Layers)> {
    // Half the time both share one live layer, as a member and their own token do.
    (proptest::option::of(layer()), any::<bool>()).prop_flat_map(|(live, shared)| {
        let other_live = if shared {
            Just(live.clone()).boxed()
        } else {
            proptest::option::of(layer()).boxed()
        };
        (layers(live), other_live.prop_flat_map(layers))
    })
}

fn no_check_escapes(holder: &Layers, other: &Layers) -> Result<(), TestCaseError> {
    for action in PROBE_ACTIONS {
        for resource in RESOURCES {
            prop_assert!(
                !other.allows(action, resource) || holder.allows(action, resource),
                "covered side may {action} on {resource}, holder may not"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn covering_a_grant_means_holding_all_it_allows(
        holder in layers(None).prop_flat_map(|l| (Just(l), proptest::option::of(layer())))
            .prop_map(|(mut l, live)| { l.live = live; l }),
        granted in proptest::collection::vec(statement(), 0..4),
    ) {
        if holder.covers(&granted).is_ok() {
            no_check_escapes(&holder, &Layers::member(Arc::new(granted)))?;
        }
    }

    #[test]
    fn covering_layers_means_holding_all_they_allow((holder, other) in holder_and_other()) {
        if holder.covers_layers(&other).is_ok() {
            no_check_escapes(&holder, &other)?;
        }
    }
}
