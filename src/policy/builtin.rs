//! The built-in policies (SPEC §2.4): Owner, Administrator and Developer, read-only and in every
//! organization. Their statements follow SPEC §2.4's table, which follows FeatBit's Postgres
//! migrations.

use serde::Serialize;
use uuid::Uuid;

use super::statement::{Effect, Statement};

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
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::super::catalogue::Catalogue;
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
                validate_statements("statements", &policy.statements, |a| catalogue.contains(a)),
                Ok(()),
                "{}",
                policy.name
            );
        }
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
