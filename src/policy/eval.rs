//! Evaluation of one statement list (SPEC §2.2).

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

#[cfg(test)]
mod tests {
    use super::super::builtin::OWNER_POLICY_ID;
    use super::super::fixtures::{allow, builtin, deny};
    use super::*;

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
}
