//! The permission catalogue and the built-in policies (SPEC §2.4).
//!
//! Action names and their resource types come from FeatBit's
//! `modules/back-end/src/Domain/Policies/Permissions.cs` and the front end's
//! `permissionActions` (`modules/front-end/src/app/shared/policy.ts`); the built-in
//! policies are SPEC §2.4's table, which follows FeatBit's Postgres migrations.

use std::collections::HashSet;

use serde::Serialize;
use uuid::Uuid;

use super::statement::{Effect, Statement};

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

/// FeatBit's Owner policy id.
pub const OWNER_POLICY_ID: Uuid = Uuid::from_u128(0x98881f6a_5c6c_4277_bcf7_fda94c538785);
/// FeatBit's Administrator policy id.
pub const ADMINISTRATOR_POLICY_ID: Uuid = Uuid::from_u128(0x3e961f0f_6fd4_4cf4_910f_52d356f8cc08);
/// FeatBit's Developer policy id (the corrected one from FeatBit's v5.2.1 migration).
pub const DEVELOPER_POLICY_ID: Uuid = Uuid::from_u128(0x66f3687f_939d_4257_bd3f_c3553d39e1b6);

/// A built-in (`SysManaged`) policy: organization-less, read-only.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltinPolicy {
    pub id: Uuid,
    pub name: &'static str,
    pub description: &'static str,
    pub statements: Vec<Statement>,
}

fn allow(id: &str, resource_type: &str, actions: &[&str], resources: &[&str]) -> Statement {
    Statement {
        id: id.to_owned(),
        resource_type: resource_type.to_owned(),
        effect: Effect::Allow,
        actions: actions.iter().map(|&a| a.to_owned()).collect(),
        resources: resources.iter().map(|&r| r.to_owned()).collect(),
    }
}

const ACCESS_TOKEN_ACTIONS: &[&str] = &[
    "ManageServiceAccessTokens",
    "ManagePersonalAccessTokens",
    "ListAccessTokens",
];
const RELAY_PROXY_ACTIONS: &[&str] = &["ManageRelayProxies", "ListRelayProxies"];
const FLAGS: &str = "project/*:env/*:flag/*";
const SEGMENTS: &str = "project/*:env/*:segment/*";

// FeatBit's descriptions of its built-in policies.
const OWNER_DESCRIPTION: &str =
    "Contains all permissions. This policy is granted to the user who created the organization";

/// Owner, Administrator and Developer with FeatBit's ids and SPEC §2.4's statements.
/// Statement ids are fixed so that the seeded JSON is deterministic.
pub fn builtin_policies() -> Vec<BuiltinPolicy> {
    vec![
        BuiltinPolicy {
            id: OWNER_POLICY_ID,
            name: "Owner",
            description: OWNER_DESCRIPTION,
            statements: vec![allow(
                "fd508a3d-6191-41d4-902b-023a79471b1f",
                "*",
                &["*"],
                &["*"],
            )],
        },
        BuiltinPolicy {
            id: ADMINISTRATOR_POLICY_ID,
            name: "Administrator",
            description: "Contains all the permissions required by an administrator",
            statements: vec![
                allow(
                    "a1473ba1-1b1a-454d-8d45-88a6c6d476c5",
                    "organization",
                    &[
                        "UpdateOrgName",
                        "UpdateOrgDefaultUserPermissions",
                        "CreateOrg",
                    ],
                    &["organization/*"],
                ),
                allow(
                    "259c743c-bbde-48c4-9f31-85023a0b82a6",
                    "iam",
                    &["CanManageIAM"],
                    &["iam/*"],
                ),
                allow(
                    "b2dbf310-9a21-48d1-ac59-3c08ebbe1dc6",
                    "access-token",
                    ACCESS_TOKEN_ACTIONS,
                    &["access-token/*"],
                ),
                allow(
                    "fa9ae2e5-852f-49d6-a371-d1fe96dc06b9",
                    "relay-proxy",
                    RELAY_PROXY_ACTIONS,
                    &["relay-proxy/*"],
                ),
                allow(
                    "0552f1cd-1b5b-4b15-939f-adb96efb2928",
                    "project",
                    &[
                        "CanAccessProject",
                        "CreateProject",
                        "DeleteProject",
                        "UpdateProjectSettings",
                        "CreateEnv",
                    ],
                    &["project/*"],
                ),
                allow(
                    "3df7153a-d5d8-4833-9abb-76105cddf17a",
                    "env",
                    &[
                        "CanAccessEnv",
                        "DeleteEnv",
                        "UpdateEnvSettings",
                        "CreateEnvSecret",
                        "DeleteEnvSecret",
                        "UpdateEnvSecret",
                    ],
                    &["project/*:env/*"],
                ),
                allow(
                    "5186cfb9-bd2a-402b-b384-d3d1fbd31766",
                    "flag",
                    &["*"],
                    &[FLAGS],
                ),
                allow(
                    "09fa261a-9168-42c5-bb0f-4bf18324d42b",
                    "segment",
                    &["*"],
                    &[SEGMENTS],
                ),
            ],
        },
        BuiltinPolicy {
            id: DEVELOPER_POLICY_ID,
            name: "Developer",
            description: "Contains all the permissions required by a developer",
            statements: vec![
                allow(
                    "bfd7fe73-ca78-4fe6-bee8-a46003415a95",
                    "access-token",
                    ACCESS_TOKEN_ACTIONS,
                    &["access-token/*"],
                ),
                allow(
                    "31d74918-aaf2-443b-873e-4d5d74a7b565",
                    "relay-proxy",
                    RELAY_PROXY_ACTIONS,
                    &["relay-proxy/*"],
                ),
                allow(
                    "6841ce78-28ee-4de6-b022-b9ebed036ea3",
                    "project",
                    &["CanAccessProject"],
                    &["project/*"],
                ),
                allow(
                    "8f82563c-4f49-402b-9560-d3ca9834c021",
                    "env",
                    &["CanAccessEnv"],
                    &["project/*:env/*"],
                ),
                allow(
                    "478ad703-6562-4b11-b34c-874f710549f7",
                    "flag",
                    &["*"],
                    &[FLAGS],
                ),
                allow(
                    "b59bd6f3-35f3-45dd-99c8-52a9a130d0d7",
                    "segment",
                    &["*"],
                    &[SEGMENTS],
                ),
            ],
        },
    ]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::eval::statements_allow;
    use super::super::layers::{Exceeds, Layers};
    use super::super::statement::validate_statements;
    use super::*;

    fn policy(id: Uuid) -> Vec<Statement> {
        builtin_policies()
            .into_iter()
            .find(|policy| policy.id == id)
            .map(|policy| policy.statements)
            .unwrap_or_default()
    }

    #[test]
    fn builtin_policies_use_featbit_ids() {
        let ids: Vec<String> = builtin_policies()
            .iter()
            .map(|p| p.id.to_string())
            .collect();
        assert_eq!(
            ids,
            [
                "98881f6a-5c6c-4277-bcf7-fda94c538785",
                "3e961f0f-6fd4-4cf4-910f-52d356f8cc08",
                "66f3687f-939d-4257-bd3f-c3553d39e1b6",
            ]
        );
        let names: Vec<&str> = builtin_policies().iter().map(|p| p.name).collect();
        assert_eq!(names, ["Owner", "Administrator", "Developer"]);
    }

    #[test]
    fn builtin_statement_ids_are_unique_uuids() {
        let mut seen = HashSet::new();
        for policy in builtin_policies() {
            for statement in policy.statements {
                assert!(Uuid::parse_str(&statement.id).is_ok(), "{}", statement.id);
                assert!(
                    seen.insert(statement.id.clone()),
                    "duplicate {}",
                    statement.id
                );
            }
        }
    }

    #[test]
    fn every_action_the_builtin_policies_use_is_in_the_catalogue() {
        let catalogue = Catalogue::builtin();
        for policy in builtin_policies() {
            for action in policy.statements.iter().flat_map(|s| &s.actions) {
                assert!(
                    action == "*" || catalogue.contains(action),
                    "{} uses {action}",
                    policy.name
                );
            }
            assert_eq!(
                validate_statements(&policy.statements, &catalogue),
                Ok(()),
                "{}",
                policy.name
            );
        }
    }

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
    fn owner_can_do_everything() {
        let owner = policy(OWNER_POLICY_ID);
        for (action, rn) in [
            ("CanManageIAM", "iam/*"),
            ("DeleteProject", "project/web"),
            (
                "ManageFeatureFlag",
                "project/web:env/prod:flag/dark-mode;beta",
            ),
            ("SomethingAnOperatorAdded", "report/q3"),
        ] {
            assert!(statements_allow(&owner, action, rn), "{action} on {rn}");
        }
    }

    #[test]
    fn administrator_can_manage_iam_tokens_projects_and_flags() {
        let admin = policy(ADMINISTRATOR_POLICY_ID);
        for (action, rn) in [
            ("CanManageIAM", "iam/*"),
            ("CreateOrg", "organization/*"),
            ("ListAccessTokens", "access-token/*"),
            ("ManagePersonalAccessTokens", "access-token/0b5e"),
            ("DeleteProject", "project/web"),
            ("CreateEnv", "project/web"),
            ("UpdateEnvSecret", "project/web:env/prod"),
            ("ManageFeatureFlag", "project/web:env/prod:flag/dark-mode"),
            ("DeleteSegment", "project/web:env/prod:segment/beta-users"),
        ] {
            assert!(statements_allow(&admin, action, rn), "{action} on {rn}");
        }
        assert!(!statements_allow(
            &admin,
            "UpdateWorkspaceLicense",
            "workspace/*"
        ));
    }

    #[test]
    fn developer_can_manage_flags_and_tokens_but_not_iam() {
        let developer = policy(DEVELOPER_POLICY_ID);
        for (action, rn) in [
            ("ManageFeatureFlag", "project/web:env/prod:flag/x"),
            (
                "ManageFeatureFlag",
                "project/web:env/prod:flag/dark-mode;beta",
            ),
            ("UpdateSegmentRules", "project/web:env/prod:segment/s"),
            ("CanAccessProject", "project/web"),
            ("CanAccessEnv", "project/web:env/prod"),
            ("ManagePersonalAccessTokens", "access-token/*"),
            ("ListRelayProxies", "relay-proxy/*"),
        ] {
            assert!(statements_allow(&developer, action, rn), "{action} on {rn}");
        }
        for (action, rn) in [
            ("CanManageIAM", "iam/*"),
            ("DeleteProject", "project/web"),
            ("DeleteEnv", "project/web:env/prod"),
            ("UpdateOrgName", "organization/*"),
            // flag rights do not reach up to the project
            ("ManageFeatureFlag", "project/web"),
        ] {
            assert!(
                !statements_allow(&developer, action, rn),
                "{action} on {rn}"
            );
        }
    }

    #[test]
    fn administrator_fits_within_owner_but_not_within_developer() {
        let owner = Layers::member(Arc::new(policy(OWNER_POLICY_ID)));
        let developer = Layers::member(Arc::new(policy(DEVELOPER_POLICY_ID)));
        let admin = policy(ADMINISTRATOR_POLICY_ID);
        assert_eq!(owner.covers(&admin), Ok(()));
        assert_eq!(developer.covers(&policy(DEVELOPER_POLICY_ID)), Ok(()));
        assert_eq!(
            developer.covers(&admin),
            Err(Exceeds {
                action: "UpdateOrgName".to_owned(),
                resource: "organization/*".to_owned(),
            })
        );
    }
}
