//! Evaluation of statement lists and layers (SPEC §2.2, §2.3).

use super::rn::rn_matches;
use super::statement::{Effect, Statement};

/// FeatBit's `PolicyHelper.IsMatch`: a statement whose resourceType is `"*"` matches
/// everything; otherwise one of its actions must be `"*"` or equal `action`
/// (case-sensitive) and one of its resource patterns must match `rn`.
fn statement_matches(statement: &Statement, action: &str, rn: &str) -> bool {
    if statement.resource_type == "*" {
        return true;
    }
    statement.actions.iter().any(|a| a == "*" || a == action)
        && statement
            .resources
            .iter()
            .any(|pattern| rn_matches(pattern, rn))
}

/// One layer: allowed when at least one statement matches and none of the matching
/// statements is a deny (FeatBit's `PolicyHelper.IsAllowed`).
///
/// An empty `action` or `rn` is always denied. FeatBit has no such rule, and its
/// `resourceType: "*"` short-cut would allow them; a check that names nothing is a
/// malformed request, so this fails closed.
pub fn statements_allow(statements: &[Statement], action: &str, rn: &str) -> bool {
    if action.is_empty() || rn.is_empty() {
        return false;
    }
    let mut matched = false;
    for statement in statements {
        if statement_matches(statement, action, rn) {
            if statement.effect == Effect::Deny {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// Every layer must allow; an empty list of layers denies (SPEC §2.3).
/// Layers may be owned (`Vec<Statement>`) or shared (`Arc<Vec<Statement>>`).
pub fn layers_allow<L: AsRef<Vec<Statement>>>(layers: &[L], action: &str, rn: &str) -> bool {
    !layers.is_empty()
        && layers
            .iter()
            .all(|layer| statements_allow(layer.as_ref(), action, rn))
}

/// The creation-time check of SPEC §2.3: every allow statement's every (action,
/// resource) pair must be allowed by `layers`, with the requested pattern treated as
/// a resource name (so the creator's `*` covers the requester's `*`, while the
/// creator's `project/*:env/*:flag/*` does not cover a requested `project/*`).
/// Deny statements are not checked: they only take power away.
/// A requested statement with resourceType `"*"` matches everything, so it counts as
/// action `"*"` on resource `"*"`.
/// Returns the first offending pair as `Err((action, resource))`.
///
/// The check is conservative but not complete: a requested `project/*` passes against
/// a creator who may do everything except on a denied `project/secret`, because the
/// deny pattern does not match the literal name `project/*`. That is safe because a
/// token always carries its creator's layers too, so evaluation still denies it.
pub fn check_within<L: AsRef<Vec<Statement>>>(
    layers: &[L],
    requested: &[Statement],
) -> Result<(), (String, String)> {
    for statement in requested.iter().filter(|s| s.effect == Effect::Allow) {
        if statement.resource_type == "*" {
            if !layers_allow(layers, "*", "*") {
                return Err(("*".to_owned(), "*".to_owned()));
            }
            continue;
        }
        for action in &statement.actions {
            for resource in &statement.resources {
                if !layers_allow(layers, action, resource) {
                    return Err((action.clone(), resource.clone()));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::catalogue::{builtin_policies, DEVELOPER_POLICY_ID, OWNER_POLICY_ID};
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

    fn pair(action: &str, resource: &str) -> Result<(), (String, String)> {
        Err((action.to_owned(), resource.to_owned()))
    }

    #[test]
    fn matching_allow_statement_allows() {
        let layer = [allow(
            "flag",
            &["UpdateFlagName"],
            &["project/*:env/prod:flag/*"],
        )];
        assert!(statements_allow(
            &layer,
            "UpdateFlagName",
            "project/web:env/prod:flag/x"
        ));
    }

    #[test]
    fn no_matching_statement_denies() {
        let layer = [allow(
            "flag",
            &["UpdateFlagName"],
            &["project/*:env/prod:flag/*"],
        )];
        let cases = [
            ("UpdateFlagTags", "project/web:env/prod:flag/x"), // other action
            ("UpdateFlagName", "project/web:env/dev:flag/x"),  // other resource
            ("UpdateFlagName", "project/web:env/prod"),        // shorter resource
        ];
        for (action, rn) in cases {
            assert!(!statements_allow(&layer, action, rn), "{action} on {rn}");
        }
        assert!(!statements_allow(&[], "UpdateFlagName", "project/web"));
    }

    #[test]
    fn deny_wins_over_allow() {
        let layer = [
            allow("env", &["*"], &["project/prod:env/*"]),
            deny("env", &["DeleteEnv"], &["project/prod:env/dev"]),
        ];
        assert!(!statements_allow(
            &layer,
            "DeleteEnv",
            "project/prod:env/dev"
        ));
        assert!(statements_allow(&layer, "DeleteEnv", "project/prod:env/qa"));
        assert!(statements_allow(
            &layer,
            "UpdateEnvSettings",
            "project/prod:env/dev"
        ));

        let deny_first = [layer[1].clone(), layer[0].clone()];
        assert!(!statements_allow(
            &deny_first,
            "DeleteEnv",
            "project/prod:env/dev"
        ));
    }

    #[test]
    fn a_lone_deny_denies() {
        let layer = [deny("flag", &["*"], &["*"])];
        assert!(!statements_allow(&layer, "UpdateFlagName", "project/web"));
    }

    #[test]
    fn wildcard_action_matches_every_action() {
        let layer = [allow("flag", &["*"], &["project/*:env/*:flag/*"])];
        assert!(statements_allow(
            &layer,
            "ManageFeatureFlag",
            "project/web:env/prod:flag/x"
        ));
        assert!(statements_allow(
            &layer,
            "AnythingAtAll",
            "project/web:env/prod:flag/x"
        ));
    }

    #[test]
    fn resource_type_star_matches_any_action_and_resource() {
        // As in FeatBit, even when actions and resources say otherwise.
        let layer = [allow("*", &["UpdateOrgName"], &["organization/*"])];
        assert!(statements_allow(&layer, "CanManageIAM", "iam/*"));

        let blanket_deny = [allow("*", &["*"], &["*"]), deny("*", &[], &[])];
        assert!(!statements_allow(&blanket_deny, "CanManageIAM", "iam/*"));
    }

    #[test]
    fn actions_are_case_sensitive() {
        let layer = [allow("iam", &["CanManageIAM"], &["iam/*"])];
        assert!(!statements_allow(&layer, "canmanageiam", "iam/*"));
        assert!(!statements_allow(&layer, "CanManageIam", "iam/*"));
    }

    #[test]
    fn empty_action_or_resource_is_denied_even_for_owner() {
        let owner = builtin(OWNER_POLICY_ID);
        assert!(statements_allow(&owner, "CanManageIAM", "iam/*"));
        assert!(!statements_allow(&owner, "", "iam/*"));
        assert!(!statements_allow(&owner, "CanManageIAM", ""));
        assert!(!statements_allow(&owner, "", ""));
    }

    #[test]
    fn every_layer_must_allow() {
        let member = vec![allow("*", &["*"], &["*"])];
        let scope = vec![allow(
            "flag",
            &["ManageFeatureFlag"],
            &["project/web:env/*:flag/*"],
        )];
        let layers = [member.clone(), scope];
        assert!(layers_allow(
            &layers,
            "ManageFeatureFlag",
            "project/web:env/prod:flag/x"
        ));
        assert!(!layers_allow(
            &layers,
            "ManageFeatureFlag",
            "project/api:env/prod:flag/x"
        ));
        assert!(!layers_allow(&layers, "CanManageIAM", "iam/*"));
        assert!(layers_allow(&[member], "CanManageIAM", "iam/*"));
    }

    #[test]
    fn a_deny_in_any_layer_denies() {
        let layers = [
            vec![allow("*", &["*"], &["*"])],
            vec![
                allow("flag", &["*"], &["*"]),
                deny("flag", &["DeleteFlag"], &["*"]),
            ],
        ];
        assert!(layers_allow(
            &layers,
            "UpdateFlagName",
            "project/web:env/prod:flag/x"
        ));
        assert!(!layers_allow(
            &layers,
            "DeleteFlag",
            "project/web:env/prod:flag/x"
        ));
    }

    #[test]
    fn empty_list_of_layers_denies() {
        assert!(!layers_allow::<Vec<Statement>>(
            &[],
            "CanManageIAM",
            "iam/*"
        ));
        assert!(!layers_allow(&[vec![]], "CanManageIAM", "iam/*"));
    }

    #[test]
    fn creator_star_covers_requested_star() {
        let owner = vec![builtin(OWNER_POLICY_ID)];
        let requested = [allow("*", &["*"], &["*"]), allow("flag", &["*"], &["*"])];
        assert_eq!(check_within(&owner, &requested), Ok(()));
    }

    #[test]
    fn requested_resource_type_star_needs_everything() {
        let developer = vec![builtin(DEVELOPER_POLICY_ID)];
        let requested = [allow("*", &["CanAccessProject"], &["project/*"])];
        assert_eq!(check_within(&developer, &requested), pair("*", "*"));
    }

    #[test]
    fn developer_cannot_grant_iam() {
        let developer = vec![builtin(DEVELOPER_POLICY_ID)];
        let requested = [
            allow("project", &["CanAccessProject"], &["project/*"]),
            allow("iam", &["CanManageIAM"], &["iam/*"]),
        ];
        assert_eq!(
            check_within(&developer, &requested),
            pair("CanManageIAM", "iam/*")
        );
    }

    #[test]
    fn developer_cannot_grant_flag_actions_on_a_shorter_resource() {
        // The Developer's `project/*:env/*:flag/*` has more segments than `project/*`.
        let developer = vec![builtin(DEVELOPER_POLICY_ID)];
        let requested = [allow("flag", &["UpdateFlagName"], &["project/*"])];
        assert_eq!(
            check_within(&developer, &requested),
            pair("UpdateFlagName", "project/*")
        );
    }

    #[test]
    fn developer_can_grant_what_they_hold() {
        let developer = vec![builtin(DEVELOPER_POLICY_ID)];
        let requested = [
            allow("flag", &["*"], &["project/*:env/*:flag/*"]),
            allow(
                "flag",
                &["ManageFeatureFlag"],
                &["project/web:env/prod:flag/*;beta"],
            ),
            allow("access-token", &["ListAccessTokens"], &["access-token/*"]),
        ];
        assert_eq!(check_within(&developer, &requested), Ok(()));
    }

    #[test]
    fn requested_star_action_needs_creator_star_action() {
        let creator = vec![vec![allow(
            "flag",
            &["UpdateFlagName"],
            &["project/*:env/*:flag/*"],
        )]];
        let requested = [allow("flag", &["*"], &["project/*:env/*:flag/*"])];
        assert_eq!(
            check_within(&creator, &requested),
            pair("*", "project/*:env/*:flag/*")
        );
    }

    #[test]
    fn requested_deny_statements_are_not_checked() {
        let developer = vec![builtin(DEVELOPER_POLICY_ID)];
        let requested = [
            allow("flag", &["*"], &["project/web:env/*:flag/*"]),
            deny("iam", &["CanManageIAM"], &["iam/*"]),
        ];
        assert_eq!(check_within(&developer, &requested), Ok(()));
    }

    #[test]
    fn the_first_offending_pair_is_reported() {
        let creator = vec![vec![allow(
            "project",
            &["CanAccessProject"],
            &["project/web"],
        )]];
        let requested = [allow(
            "project",
            &["CanAccessProject", "DeleteProject"],
            &["project/web", "project/api"],
        )];
        assert_eq!(
            check_within(&creator, &requested),
            pair("CanAccessProject", "project/api")
        );
    }

    #[test]
    fn every_creator_layer_must_cover_the_request() {
        let layers = vec![
            builtin(OWNER_POLICY_ID),
            vec![allow("flag", &["*"], &["project/web:env/*:flag/*"])],
        ];
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
        assert_eq!(check_within(&layers, &inside), Ok(()));
        assert_eq!(
            check_within(&layers, &outside),
            pair("ToggleFlag", "project/*:env/prod:flag/*")
        );
        assert_eq!(
            check_within::<Vec<Statement>>(&[], &inside),
            pair("ToggleFlag", "project/web:env/prod:flag/*")
        );
    }

    #[test]
    fn a_creator_deny_blocks_the_same_pattern() {
        let creator = vec![vec![
            allow("*", &["*"], &["*"]),
            deny("project", &["DeleteProject"], &["project/*"]),
        ]];
        let requested = [allow("project", &["DeleteProject"], &["project/*"])];
        assert_eq!(
            check_within(&creator, &requested),
            pair("DeleteProject", "project/*")
        );
    }
}
