//! A principal's permission as named layers (SPEC §2.3), and the one rule that decides whether
//! a holder covers a grant. Token creation, token rotation and IAM grants all ask it: nobody may
//! hand out, or obtain, a power they do not hold.

use std::fmt;
use std::sync::Arc;

use super::eval::statements_allow;
use super::rn::{pattern_covers, patterns_may_overlap};
use super::statement::{Effect, Statement};

/// One statement list. Shared: the caches hand the same list to many requests.
pub type Layer = Arc<Vec<Statement>>;

/// What a principal may do: an action is allowed only when every layer present allows it, and
/// with no layer at all nothing is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layers {
    /// The member's live permissions, read at request time: sessions and personal tokens.
    pub live: Option<Layer>,
    /// Frozen when the token was created: whatever bounded the principal that created it.
    pub frozen: Vec<Layer>,
    /// The token's own scope, when it was given one.
    pub scope: Option<Layer>,
}

/// The first (action, resource) pair of a grant that the holder does not cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeds {
    pub action: String,
    pub resource: String,
}

impl fmt::Display for Exceeds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.action, self.resource)
    }
}

impl Layers {
    /// A member acting in person: their live permissions only.
    pub fn member(live: Layer) -> Self {
        Layers {
            live: Some(live),
            ..Layers::default()
        }
    }

    /// Live first, then the frozen layers, then the scope.
    pub fn iter(&self) -> impl Iterator<Item = &Layer> {
        self.live
            .iter()
            .chain(self.frozen.iter())
            .chain(self.scope.iter())
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_none() && self.frozen.is_empty() && self.scope.is_none()
    }

    /// May this principal do `action` on `rn`? (SPEC §2.2 within each layer, §2.3 across them.)
    pub fn allows(&self, action: &str, rn: &str) -> bool {
        let mut any = false;
        for layer in self.iter() {
            if !statements_allow(layer, action, rn) {
                return false;
            }
            any = true;
        }
        any
    }

    /// What a personal token created by this principal carries frozen. It gets its owner's live
    /// layer at every use, so it keeps everything else that bounds its creator.
    pub fn frozen_for_personal_token(&self) -> Vec<Layer> {
        self.frozen
            .iter()
            .chain(self.scope.iter())
            .cloned()
            .collect()
    }

    /// What a service token created by this principal carries frozen: every layer, as it is now.
    pub fn frozen_for_service_token(&self) -> Vec<Layer> {
        self.iter().cloned().collect()
    }

    /// Does this holder hold every power that `granted` (one statement list) gives? Every
    /// `allow` pair of `granted` must be within every layer of the holder; `deny` statements
    /// of `granted` only take power away and are not checked.
    pub fn covers(&self, granted: &[Statement]) -> Result<(), Exceeds> {
        for (action, resource) in allowed_pairs(granted) {
            let mut any = false;
            for layer in self.iter() {
                if !pair_within(layer, action, resource) {
                    return Err(exceeds(action, resource));
                }
                any = true;
            }
            if !any {
                return Err(exceeds(action, resource));
            }
        }
        Ok(())
    }

    /// Does this holder hold every power of a principal made of `other`'s layers? (Rotation:
    /// whoever receives a token's secret must already be able to do what the token can.)
    ///
    /// `other` allows only what all its layers allow, so it is enough that each of the holder's
    /// layers contains one of `other`'s: the same list (a member's own live layer), or one
    /// whose every grant it covers. The offending pair is named from `other`'s narrowest layer:
    /// its scope, else its last frozen layer, else its live one.
    pub fn covers_layers(&self, other: &Layers) -> Result<(), Exceeds> {
        let Some(narrowest) = other
            .scope
            .as_ref()
            .or(other.frozen.last())
            .or(other.live.as_ref())
        else {
            // No layer: `other` allows nothing.
            return Ok(());
        };
        if self.is_empty() {
            return match allowed_pairs(narrowest).next() {
                Some((action, resource)) => Err(exceeds(action, resource)),
                None => Ok(()),
            };
        }
        for layer in self.iter() {
            let contains_one = other
                .iter()
                .any(|theirs| theirs == layer || layer_within(layer, theirs).is_ok());
            if !contains_one {
                return layer_within(layer, narrowest);
            }
        }
        Ok(())
    }
}

fn exceeds(action: &str, resource: &str) -> Exceeds {
    Exceeds {
        action: action.to_owned(),
        resource: resource.to_owned(),
    }
}

/// Every `allow` (action, resource pattern) pair of a list. A statement with resourceType `*`
/// matches everything, so it counts as `*` on `*`.
fn allowed_pairs(statements: &[Statement]) -> impl Iterator<Item = (&str, &str)> {
    statements
        .iter()
        .filter(|s| s.effect == Effect::Allow)
        .flat_map(|s| -> Box<dyn Iterator<Item = (&str, &str)> + '_> {
            if s.resource_type == "*" {
                Box::new(std::iter::once(("*", "*")))
            } else {
                Box::new(s.actions.iter().flat_map(move |action| {
                    s.resources
                        .iter()
                        .map(move |resource| (action.as_str(), resource.as_str()))
                }))
            }
        })
}

/// Is every `allow` pair of `inner` within `outer`?
fn layer_within(outer: &[Statement], inner: &[Statement]) -> Result<(), Exceeds> {
    match allowed_pairs(inner).find(|(action, resource)| !pair_within(outer, action, resource)) {
        Some((action, resource)) => Err(exceeds(action, resource)),
        None => Ok(()),
    }
}

/// Does `outer` allow `action` on every resource `pattern` names? An allow statement must
/// cover the pair, and no deny statement may touch any part of it. `*` as the action stands for
/// every action, so only a `*` covers it and every deny touches it.
///
/// SPEC §2.3 checks a requested pattern as if it were a resource name. That is enough at
/// creation, where the new token also carries its creator's layers, but not for rotation or
/// IAM grants, where nothing else bounds the result: a deny on `iam/secret` does not match the
/// name `iam/*`, yet a grant of `iam/*` reaches `iam/secret`. So denies are matched by overlap.
fn pair_within(outer: &[Statement], action: &str, pattern: &str) -> bool {
    let mut granted = false;
    for statement in outer {
        match statement.effect {
            Effect::Allow if !granted => {
                granted = statement.resource_type == "*"
                    || (statement
                        .actions
                        .iter()
                        .any(|a| a == "*" || (a == action && action != "*"))
                        && statement
                            .resources
                            .iter()
                            .any(|p| pattern_covers(p, pattern)));
            }
            Effect::Allow => {}
            Effect::Deny => {
                let touches = statement.resource_type == "*"
                    || (statement
                        .actions
                        .iter()
                        .any(|a| a == "*" || a == action || action == "*")
                        && statement
                            .resources
                            .iter()
                            .any(|p| patterns_may_overlap(p, pattern)));
                if touches {
                    return false;
                }
            }
        }
    }
    granted
}

#[cfg(test)]
mod tests {
    use super::super::builtin::{builtin_policies, DEVELOPER_POLICY_ID, OWNER_POLICY_ID};
    use super::*;

    fn stmt(
        resource_type: &str,
        effect: Effect,
        actions: &[&str],
        resources: &[&str],
    ) -> Statement {
        Statement {
            id: String::new(),
            resource_type: resource_type.to_owned(),
            effect,
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            resources: resources.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn allow(resource_type: &str, actions: &[&str], resources: &[&str]) -> Statement {
        stmt(resource_type, Effect::Allow, actions, resources)
    }

    fn deny(resource_type: &str, actions: &[&str], resources: &[&str]) -> Statement {
        stmt(resource_type, Effect::Deny, actions, resources)
    }

    fn builtin(id: uuid::Uuid) -> Vec<Statement> {
        builtin_policies()
            .into_iter()
            .find(|policy| policy.id == id)
            .map(|policy| policy.statements)
            .unwrap_or_default()
    }

    fn member(statements: Vec<Statement>) -> Layers {
        Layers::member(Arc::new(statements))
    }

    fn scoped(live: Vec<Statement>, scope: Vec<Statement>) -> Layers {
        Layers {
            live: Some(Arc::new(live)),
            frozen: Vec::new(),
            scope: Some(Arc::new(scope)),
        }
    }

    fn pair(action: &str, resource: &str) -> Result<(), Exceeds> {
        Err(exceeds(action, resource))
    }

    #[test]
    fn every_layer_must_allow_and_no_layer_allows_nothing() {
        let layers = scoped(
            builtin(OWNER_POLICY_ID),
            vec![allow(
                "flag",
                &["ManageFeatureFlag"],
                &["project/web:env/*:flag/*"],
            )],
        );
        assert!(layers.allows("ManageFeatureFlag", "project/web:env/prod:flag/x"));
        assert!(!layers.allows("ManageFeatureFlag", "project/api:env/prod:flag/x"));
        assert!(!layers.allows("CanManageIAM", "iam/*"));
        assert!(!Layers::default().allows("CanManageIAM", "iam/*"));
        assert!(!member(vec![]).allows("CanManageIAM", "iam/*"));
    }

    #[test]
    fn a_deny_in_any_layer_denies() {
        let layers = scoped(
            vec![allow("*", &["*"], &["*"])],
            vec![
                allow("flag", &["*"], &["*"]),
                deny("flag", &["DeleteFlag"], &["*"]),
            ],
        );
        assert!(layers.allows("UpdateFlagName", "project/web:env/prod:flag/x"));
        assert!(!layers.allows("DeleteFlag", "project/web:env/prod:flag/x"));
    }

    #[test]
    fn creator_star_covers_requested_star() {
        let owner = member(builtin(OWNER_POLICY_ID));
        let requested = [allow("*", &["*"], &["*"]), allow("flag", &["*"], &["*"])];
        assert_eq!(owner.covers(&requested), Ok(()));
    }

    #[test]
    fn requested_resource_type_star_needs_everything() {
        let developer = member(builtin(DEVELOPER_POLICY_ID));
        let requested = [allow("*", &["CanAccessProject"], &["project/*"])];
        assert_eq!(developer.covers(&requested), pair("*", "*"));
    }

    #[test]
    fn developer_cannot_grant_iam() {
        let developer = member(builtin(DEVELOPER_POLICY_ID));
        let requested = [
            allow("project", &["CanAccessProject"], &["project/*"]),
            allow("iam", &["CanManageIAM"], &["iam/*"]),
        ];
        assert_eq!(developer.covers(&requested), pair("CanManageIAM", "iam/*"));
    }

    #[test]
    fn developer_cannot_grant_flag_actions_on_a_shorter_resource() {
        // The Developer's `project/*:env/*:flag/*` has more segments than `project/*`.
        let developer = member(builtin(DEVELOPER_POLICY_ID));
        let requested = [allow("flag", &["UpdateFlagName"], &["project/*"])];
        assert_eq!(
            developer.covers(&requested),
            pair("UpdateFlagName", "project/*")
        );
    }

    #[test]
    fn developer_can_grant_what_they_hold() {
        let developer = member(builtin(DEVELOPER_POLICY_ID));
        let requested = [
            allow("flag", &["*"], &["project/*:env/*:flag/*"]),
            allow(
                "flag",
                &["ManageFeatureFlag"],
                &["project/web:env/prod:flag/*;beta"],
            ),
            allow("access-token", &["ListAccessTokens"], &["access-token/*"]),
        ];
        assert_eq!(developer.covers(&requested), Ok(()));
    }

    #[test]
    fn requested_star_action_needs_creator_star_action() {
        let creator = member(vec![allow(
            "flag",
            &["UpdateFlagName"],
            &["project/*:env/*:flag/*"],
        )]);
        let requested = [allow("flag", &["*"], &["project/*:env/*:flag/*"])];
        assert_eq!(
            creator.covers(&requested),
            pair("*", "project/*:env/*:flag/*")
        );
    }

    #[test]
    fn requested_deny_statements_are_not_checked() {
        let developer = member(builtin(DEVELOPER_POLICY_ID));
        let requested = [
            allow("flag", &["*"], &["project/web:env/*:flag/*"]),
            deny("iam", &["CanManageIAM"], &["iam/*"]),
        ];
        assert_eq!(developer.covers(&requested), Ok(()));
    }

    #[test]
    fn the_first_offending_pair_is_reported() {
        let creator = member(vec![allow(
            "project",
            &["CanAccessProject"],
            &["project/web"],
        )]);
        let requested = [allow(
            "project",
            &["CanAccessProject", "DeleteProject"],
            &["project/web", "project/api"],
        )];
        assert_eq!(
            creator.covers(&requested),
            pair("CanAccessProject", "project/api")
        );
    }

    #[test]
    fn every_holder_layer_must_cover_the_grant() {
        let layers = scoped(
            builtin(OWNER_POLICY_ID),
            vec![allow("flag", &["*"], &["project/web:env/*:flag/*"])],
        );
        let inside = [allow(
            "flag",
            &["ToggleFlag"],
            &["project/web:env/prod:flag/*"],
        )];
        let outside = [allow(
            "flag",
            &["ToggleFlag"],
            &["project/*:env/prod:flag/*"],
        )];
        assert_eq!(layers.covers(&inside), Ok(()));
        assert_eq!(
            layers.covers(&outside),
            pair("ToggleFlag", "project/*:env/prod:flag/*")
        );
        assert_eq!(
            Layers::default().covers(&inside),
            pair("ToggleFlag", "project/web:env/prod:flag/*")
        );
    }

    #[test]
    fn a_deny_blocks_every_grant_it_could_touch() {
        let creator = member(vec![
            allow("*", &["*"], &["*"]),
            deny("iam", &["*"], &["iam/secret"]),
        ]);
        // The name `iam/*` does not match the deny, but a grant of it reaches `iam/secret`.
        assert_eq!(
            creator.covers(&[allow("iam", &["CanManageIAM"], &["iam/*"])]),
            pair("CanManageIAM", "iam/*")
        );
        assert_eq!(
            creator.covers(&[allow("iam", &["CanManageIAM"], &["iam/public"])]),
            Ok(())
        );
        let no_delete = member(vec![
            allow("*", &["*"], &["*"]),
            deny("project", &["DeleteProject"], &["project/*"]),
        ]);
        assert_eq!(
            no_delete.covers(&[allow("project", &["*"], &["project/web"])]),
            pair("*", "project/web")
        );
        assert_eq!(
            no_delete.covers(&[allow("project", &["CreateEnv"], &["project/web"])]),
            Ok(())
        );
    }

    #[test]
    fn a_scoped_token_does_not_cover_its_unscoped_sibling() {
        let live = Arc::new(builtin(DEVELOPER_POLICY_ID));
        let scope = Arc::new(vec![allow(
            "access-token",
            &["ManagePersonalAccessTokens"],
            &["access-token/*"],
        )]);
        let scoped_token = Layers {
            live: Some(live.clone()),
            frozen: Vec::new(),
            scope: Some(scope.clone()),
        };
        let unscoped_token = Layers::member(live.clone());
        let session = Layers::member(live.clone());
        assert!(scoped_token.covers_layers(&unscoped_token).is_err());
        assert_eq!(session.covers_layers(&scoped_token), Ok(()));
        assert_eq!(session.covers_layers(&unscoped_token), Ok(()));
        assert_eq!(scoped_token.covers_layers(&scoped_token), Ok(()));
    }

    #[test]
    fn a_member_covers_a_token_frozen_from_more_power_when_its_scope_fits() {
        let developer = member(builtin(DEVELOPER_POLICY_ID));
        let owner_made = Layers {
            live: None,
            frozen: vec![Arc::new(builtin(OWNER_POLICY_ID))],
            scope: Some(Arc::new(vec![allow(
                "flag",
                &["ToggleFlag"],
                &["project/*:env/*:flag/*"],
            )])),
        };
        assert_eq!(developer.covers_layers(&owner_made), Ok(()));
        let iam_token = Layers {
            scope: Some(Arc::new(vec![allow("iam", &["CanManageIAM"], &["iam/*"])])),
            ..owner_made
        };
        assert_eq!(
            developer.covers_layers(&iam_token),
            pair("CanManageIAM", "iam/*")
        );
        assert_eq!(
            member(builtin(OWNER_POLICY_ID)).covers_layers(&iam_token),
            Ok(())
        );
    }

    #[test]
    fn nothing_covers_something_and_anything_covers_nothing() {
        let something = member(vec![allow("iam", &["CanManageIAM"], &["iam/*"])]);
        assert_eq!(
            Layers::default().covers_layers(&something),
            pair("CanManageIAM", "iam/*")
        );
        assert_eq!(something.covers_layers(&Layers::default()), Ok(()));
        assert_eq!(Layers::default().covers_layers(&Layers::default()), Ok(()));
    }
}

#[cfg(test)]
mod properties {
    //! Soundness: whenever the rule says "covers", no concrete check is allowed to the covered
    //! side and refused to the holder. Statements are drawn from a small vocabulary so that
    //! wildcards, prefixes, tags and denies meet often.

    use proptest::prelude::*;

    use super::*;

    const PATTERNS: &[&str] = &[
        "*", "p/*", "p/a", "p/a*", "p/*b", "p/*:e/*", "p/a:e/x", "p/*;t", "p/*;t,u", "p/a;u*",
        "q/*", "*/a",
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
}
