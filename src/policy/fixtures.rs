//! Statements for the policy tests, written the way policies are read: `allow("flag",
//! &["UpdateFlagName"], &["project/*:env/*:flag/*"])`.

use super::builtin::builtin_policies;
use super::statement::{Effect, Statement};

pub fn stmt(
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

pub fn allow(resource_type: &str, actions: &[&str], resources: &[&str]) -> Statement {
    stmt(resource_type, Effect::Allow, actions, resources)
}

pub fn deny(resource_type: &str, actions: &[&str], resources: &[&str]) -> Statement {
    stmt(resource_type, Effect::Deny, actions, resources)
}

/// The statements of the built-in policy `id` (none for an unknown id).
pub fn builtin(id: uuid::Uuid) -> Vec<Statement> {
    builtin_policies()
        .into_iter()
        .find(|policy| policy.id == id)
        .map(|policy| policy.statements)
        .unwrap_or_default()
}
