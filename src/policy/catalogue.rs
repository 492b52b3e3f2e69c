//! The permission catalogue (SPEC §2.4): the actions statements may name.
//!
//! Action names and their resource types come from FeatBit's
//! `modules/back-end/src/Domain/Policies/Permissions.cs` and the front end's
//! `permissionActions` (`modules/front-end/src/app/shared/policy.ts`).

use std::collections::HashSet;

use serde::Serialize;

/// One known action, as listed by `GET /api/v1/permissions`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionInfo {
    pub name: String,
    pub resource_type: String,
    pub description: String,
}

/// The set of action names statements may use (besides `"*"`).
#[derive(Debug, Clone)]
pub struct Catalogue {
    actions: Vec<ActionInfo>,
    names: HashSet<String>,
}

/// (resource type, action, description) for every built-in action, grouped by type.
#[rustfmt::skip]
const BUILTIN_ACTIONS: &[(&str, &str, &str)] = &[
    ("workspace",    "UpdateWorkspaceGeneralSettings",  "Update workspace general settings"),
    ("workspace",    "UpdateWorkspaceLicense",          "Update the workspace license"),
    ("workspace",    "UpdateWorkspaceSSOSettings",      "Update workspace SSO settings"),
    ("organization", "UpdateOrgName",                   "Rename the organization"),
    ("organization", "UpdateOrgDefaultUserPermissions", "Change the permissions new members get"),
    ("organization", "CreateOrg",                       "Create organizations"),
    ("iam",          "CanManageIAM",                    "Manage members, groups and policies"),
    ("access-token", "ListAccessTokens",                "List every access token"),
    ("access-token", "ManageServiceAccessTokens",       "Create and manage service access tokens"),
    ("access-token", "ManagePersonalAccessTokens",      "Create and manage personal access tokens"),
    ("access-token", "IntrospectAccessTokens",          "Ask about other tokens (RFC 7662 introspection)"),
    ("relay-proxy",  "ListRelayProxies",                "List relay proxies"),
    ("relay-proxy",  "ManageRelayProxies",              "Create and manage relay proxies"),
    ("project",      "CanAccessProject",                "Access a project"),
    ("project",      "CreateProject",                   "Create projects"),
    ("project",      "DeleteProject",                   "Delete a project"),
    ("project",      "UpdateProjectSettings",           "Update a project's settings"),
    // FeatBit files CreateEnv under the project the environment is created in.
    ("project",      "CreateEnv",                       "Create environments in a project"),
    ("env",          "CanAccessEnv",                    "Access an environment"),
    ("env",          "DeleteEnv",                       "Delete an environment"),
    ("env",          "UpdateEnvSettings",               "Update an environment's settings"),
    ("env",          "CreateEnvSecret",                 "Create an environment secret"),
    ("env",          "DeleteEnvSecret",                 "Delete an environment secret"),
    ("env",          "UpdateEnvSecret",                 "Update an environment secret"),
    ("flag",         "ManageFeatureFlag",               "Manage feature flags (any change)"),
    ("flag",         "CreateFlag",                      "Create a feature flag"),
    ("flag",         "ArchiveFlag",                     "Archive a feature flag"),
    ("flag",         "RestoreFlag",                     "Restore an archived feature flag"),
    ("flag",         "DeleteFlag",                      "Delete a feature flag"),
    ("flag",         "CloneFlag",                       "Clone a feature flag"),
    ("flag",         "CopyFlagTo",                      "Copy a flag to another environment"),
    ("flag",         "ToggleFlag",                      "Turn a feature flag on or off"),
    ("flag",         "UpdateFlagName",                  "Rename a feature flag"),
    ("flag",         "UpdateFlagDescription",           "Update a feature flag's description"),
    ("flag",         "UpdateFlagOffVariation",          "Change what a flag serves when it is off"),
    ("flag",         "UpdateFlagVariations",            "Change a feature flag's variations"),
    ("flag",         "UpdateFlagTags",                  "Change a feature flag's tags"),
    ("flag",         "UpdateFlagDefaultRule",           "Change a feature flag's default rule"),
    ("flag",         "UpdateFlagIndividualTargeting",   "Change a flag's individual targeting"),
    ("flag",         "UpdateFlagTargetingRules",        "Change a feature flag's targeting rules"),
    ("segment",      "CreateSegment",                   "Create a segment"),
    ("segment",      "ArchiveSegment",                  "Archive a segment"),
    ("segment",      "RestoreSegment",                  "Restore an archived segment"),
    ("segment",      "DeleteSegment",                   "Delete a segment"),
    ("segment",      "UpdateSegmentName",               "Rename a segment"),
    ("segment",      "UpdateSegmentDescription",        "Update a segment's description"),
    ("segment",      "UpdateSegmentTags",               "Change a segment's tags"),
    ("segment",      "UpdateSegmentTargetingUsers",     "Change the users a segment targets"),
    ("segment",      "UpdateSegmentRules",              "Change a segment's rules"),
];

impl Catalogue {
    /// FeatBit's workspace, organization, IAM, access-token, relay-proxy, project,
    /// environment, flag and segment actions, plus `ManageFeatureFlag`.
    pub fn builtin() -> Catalogue {
        let actions = BUILTIN_ACTIONS
            .iter()
            .map(|&(resource_type, name, description)| ActionInfo {
                name: name.to_owned(),
                resource_type: resource_type.to_owned(),
                description: description.to_owned(),
            })
            .collect();
        Catalogue::from_actions(actions)
    }

    /// Adds operator-defined actions (from config). A name already present keeps
    /// its first definition; checking names for sanity is the config loader's job.
    pub fn with_extra(self, extra: Vec<ActionInfo>) -> Catalogue {
        let mut actions = self.actions;
        actions.extend(extra);
        Catalogue::from_actions(actions)
    }

    fn from_actions(all: Vec<ActionInfo>) -> Catalogue {
        let mut names = HashSet::with_capacity(all.len());
        let actions = all
            .into_iter()
            .filter(|action| names.insert(action.name.clone()))
            .collect();
        Catalogue { actions, names }
    }

    /// Is `action` a known action name? Case-sensitive, as evaluation is (FeatBit's
    /// `Permissions.IsDefined` ignores case, which would accept a name that can
    /// never match).
    pub fn contains(&self, action: &str) -> bool {
        self.names.contains(action)
    }

    /// Every known action, built-ins first, in a stable order.
    pub fn actions(&self) -> &[ActionInfo] {
        &self.actions
    }
}

/// `TOKENGATE_EXTRA_ACTIONS` entries, `Action:resourceType:description` (the description may be
/// left out); blank entries are skipped.
pub fn parse_extra_actions(entries: &[String]) -> Result<Vec<ActionInfo>, String> {
    entries
        .iter()
        .filter(|e| !e.trim().is_empty())
        .map(|entry| {
            let mut parts = entry.trim().splitn(3, ':');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(name), Some(resource_type), description)
                    if !name.is_empty() && !resource_type.is_empty() =>
                {
                    Ok(ActionInfo {
                        name: name.to_owned(),
                        resource_type: resource_type.to_owned(),
                        description: description.unwrap_or("").to_owned(),
                    })
                }
                _ => Err(format!(
                    "TOKENGATE_EXTRA_ACTIONS entry {entry:?} is not `Action:resourceType:description`"
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::statement::{validate_statements, Effect, Statement};
    use super::*;

    #[test]
    fn catalogue_lists_the_actions_spec_names() {
        let catalogue = Catalogue::builtin();
        let required = [
            "UpdateWorkspaceGeneralSettings",
            "CanManageIAM",
            "CanAccessProject",
            "CanAccessEnv",
            "CreateFlag",
            "UpdateFlagName",
            "CreateSegment",
            "ListAccessTokens",
            "ManageServiceAccessTokens",
            "ManagePersonalAccessTokens",
            "UpdateOrgName",
            "UpdateOrgDefaultUserPermissions",
            "CreateOrg",
            "ManageRelayProxies",
            "ListRelayProxies",
            "ManageFeatureFlag",
        ];
        for action in required {
            assert!(catalogue.contains(action), "{action}");
        }
        assert!(!catalogue.contains("*"));
        assert!(!catalogue.contains("canmanageiam"));
        assert!(!catalogue.contains(""));
    }

    #[test]
    fn catalogue_entries_are_unique_and_complete() {
        let catalogue = Catalogue::builtin();
        assert_eq!(catalogue.actions().len(), BUILTIN_ACTIONS.len());
        for action in catalogue.actions() {
            assert!(!action.name.is_empty() && !action.resource_type.is_empty());
            assert!(!action.description.is_empty(), "{}", action.name);
        }
    }

    #[test]
    fn operators_can_extend_the_catalogue() {
        let extra = |name: &str, description: &str| ActionInfo {
            name: name.to_owned(),
            resource_type: "report".to_owned(),
            description: description.to_owned(),
        };
        let catalogue = Catalogue::builtin()
            .with_extra(vec![
                extra("ExportReport", "Export"),
                extra("ExportReport", "Again"),
            ])
            .with_extra(vec![extra("CanManageIAM", "Override attempt")]);

        assert!(catalogue.contains("ExportReport"));
        assert_eq!(catalogue.actions().len(), BUILTIN_ACTIONS.len() + 1);
        let last = catalogue.actions().last().map(|a| a.description.as_str());
        assert_eq!(last, Some("Export"));
        let iam = catalogue
            .actions()
            .iter()
            .find(|a| a.name == "CanManageIAM");
        assert_eq!(iam.map(|a| a.resource_type.as_str()), Some("iam"));
    }

    #[test]
    fn action_info_serialises_in_camel_case() -> Result<(), serde_json::Error> {
        let json = serde_json::to_value(&Catalogue::builtin().actions()[0])?;
        assert_eq!(
            json,
            serde_json::json!({
                "name": "UpdateWorkspaceGeneralSettings",
                "resourceType": "workspace",
                "description": "Update workspace general settings"
            })
        );
        Ok(())
    }

    #[test]
    fn operator_actions_become_valid_when_added_to_the_catalogue() {
        let custom = Statement {
            id: String::new(),
            resource_type: "report".into(),
            effect: Effect::Allow,
            actions: vec!["ExportReport".into()],
            resources: vec!["report/*".into()],
        };
        let statements = std::slice::from_ref(&custom);
        let builtin = Catalogue::builtin();
        assert_eq!(
            validate_statements("statements", statements, |a| builtin.contains(a)),
            Err("statements[0].actions_is_invalid".to_owned())
        );
        let extra =
            parse_extra_actions(&["ExportReport:report:Export a report".into()]).expect("an entry");
        let catalogue = Catalogue::builtin().with_extra(extra);
        assert_eq!(
            validate_statements("statements", statements, |a| catalogue.contains(a)),
            Ok(())
        );
    }

    #[test]
    fn extra_actions_must_name_an_action_and_a_resource_type() {
        let parsed =
            parse_extra_actions(&["A:t".into(), " ".into(), "B:u:Does B".into()]).expect("entries");
        let names: Vec<(&str, &str, &str)> = parsed
            .iter()
            .map(|a| {
                (
                    a.name.as_str(),
                    a.resource_type.as_str(),
                    a.description.as_str(),
                )
            })
            .collect();
        assert_eq!(names, [("A", "t", ""), ("B", "u", "Does B")]);
        for bad in ["A", ":t", "A::x"] {
            let error = parse_extra_actions(&[bad.into()]).expect_err(bad);
            assert!(error.contains("TOKENGATE_EXTRA_ACTIONS"), "{error}");
        }
    }
}
