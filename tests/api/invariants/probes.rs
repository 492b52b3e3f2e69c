//! How the invariant test measures power: a fixed probe set spanning the catalogue, and the
//! small vocabulary of statements that token scopes and custom policies are drawn from.

use std::fmt;

use serde_json::{json, Value};

/// The (action, resource) pairs every principal is asked about (`POST /auth/check`) after each
/// step. Together they span the catalogue: each resource type, the actions that tell the
/// built-in policies apart, and one action only `*` grants.
pub const PROBES: &[(&str, &str)] = &[
    // The Owner's power: only a statement granting every action on every resource allows it.
    ("*", "*"),
    ("CanManageIAM", "iam/*"),
    ("ListAccessTokens", "access-token/*"),
    ("ManageServiceAccessTokens", "access-token/*"),
    ("ManagePersonalAccessTokens", "access-token/*"),
    ("UpdateWorkspaceLicense", "workspace/main"),
    ("UpdateWorkspaceSSOSettings", "workspace/main"),
    ("UpdateOrgName", "organization/acme"),
    ("CreateOrg", "organization/acme"),
    ("ListRelayProxies", "relay-proxy/edge"),
    ("ManageRelayProxies", "relay-proxy/edge"),
    ("CanAccessProject", "project/web"),
    ("CreateProject", "project/web"),
    ("DeleteProject", "project/web"),
    ("CreateEnv", "project/web"),
    ("CanAccessEnv", "project/web:env/prod"),
    ("DeleteEnv", "project/web:env/prod"),
    ("UpdateEnvSecret", "project/web:env/dev"),
    ("ManageFeatureFlag", "project/web:env/prod:flag/dark-mode"),
    ("ManageFeatureFlag", "project/web:env/dev:flag/dark-mode"),
    ("ToggleFlag", "project/api:env/prod:flag/checkout"),
    ("UpdateFlagName", "project/web:env/dev:flag/beta"),
    ("DeleteFlag", "project/web:env/prod:flag/dark-mode"),
    ("UpdateSegmentRules", "project/web:env/prod:segment/beta"),
    ("CreateSegment", "project/api:env/dev:segment/new"),
    // Not in the catalogue: no statement names it, so only `*` grants it.
    ("IntrospectAccessTokens", "access-token/*"),
];

/// Indexes into [`PROBES`] the generator and the invariants refer to.
pub const OWNER_POWER: usize = 0;
pub const MANAGE_IAM: usize = 1;
pub const LIST_TOKENS: usize = 2;
pub const MANAGE_SERVICE: usize = 3;
pub const MANAGE_PERSONAL: usize = 4;

/// The probe-set body of `POST /auth/check`.
pub fn check_body() -> Value {
    let checks: Vec<Value> = PROBES
        .iter()
        .map(|(action, resource)| json!({ "action": action, "resource": resource }))
        .collect();
    json!({ "checks": checks })
}

/// A principal's answers over the probe set, one bit per probe (set = allowed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdicts(u64);

impl Verdicts {
    pub const NONE: Verdicts = Verdicts(0);

    /// From the `results` of a `/auth/check` answer to [`check_body`].
    pub fn from_results(results: &[Value]) -> Option<Verdicts> {
        if results.len() != PROBES.len() {
            return None;
        }
        let mut bits = 0;
        for (i, result) in results.iter().enumerate() {
            if result["allowed"].as_bool()? {
                bits |= 1 << i;
            }
        }
        Some(Verdicts(bits))
    }

    pub fn allows(self, probe: usize) -> bool {
        self.0 & (1 << probe) != 0
    }

    /// What `self` allows and `other` does not.
    pub fn beyond(self, other: Verdicts) -> Verdicts {
        Verdicts(self.0 & !other.0)
    }

    pub fn union(self, other: Verdicts) -> Verdicts {
        Verdicts(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Verdicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(f, "nothing");
        }
        let allowed: Vec<String> = (0..PROBES.len())
            .filter(|&i| self.allows(i))
            .map(|i| format!("{} on {}", PROBES[i].0, PROBES[i].1))
            .collect();
        write!(f, "[{}]", allowed.join(", "))
    }
}

/// One statement of the vocabulary, named so that logs read as sentences.
pub struct Grant {
    pub name: &'static str,
    deny: bool,
    resource_type: &'static str,
    actions: &'static [&'static str],
    resources: &'static [&'static str],
}

impl Grant {
    pub fn statement(&self) -> Value {
        json!({
            "resourceType": self.resource_type,
            "effect": if self.deny { "deny" } else { "allow" },
            "actions": self.actions,
            "resources": self.resources,
        })
    }
}

const fn allow(
    name: &'static str,
    resource_type: &'static str,
    actions: &'static [&'static str],
    resources: &'static [&'static str],
) -> Grant {
    Grant {
        name,
        deny: false,
        resource_type,
        actions,
        resources,
    }
}

const fn deny(
    name: &'static str,
    resource_type: &'static str,
    actions: &'static [&'static str],
    resources: &'static [&'static str],
) -> Grant {
    Grant {
        name,
        deny: true,
        resource_type,
        actions,
        resources,
    }
}

/// Statements scopes and policies are drawn from. The first two come first on purpose: an
/// IAM-only or token-only service token is the principal issue 11 items 1 and 4 are about.
pub const GRANTS: &[Grant] = &[
    allow("IAM", "iam", &["CanManageIAM"], &["iam/*"]),
    allow(
        "Tokens",
        "access-token",
        &[
            "ListAccessTokens",
            "ManageServiceAccessTokens",
            "ManagePersonalAccessTokens",
        ],
        &["access-token/*"],
    ),
    allow(
        "ServiceTokens",
        "access-token",
        &["ManageServiceAccessTokens"],
        &["access-token/*"],
    ),
    allow(
        "Flags",
        "flag",
        &["ManageFeatureFlag", "ToggleFlag", "UpdateFlagName"],
        &["project/*:env/*:flag/*"],
    ),
    allow(
        "ProdFlags",
        "flag",
        &["*"],
        &["project/web:env/prod:flag/*"],
    ),
    allow(
        "Segments",
        "segment",
        &["*"],
        &["project/*:env/*:segment/*"],
    ),
    allow(
        "Org",
        "organization",
        &["UpdateOrgName", "CreateOrg"],
        &["organization/*"],
    ),
    allow(
        "Workspace",
        "workspace",
        &["UpdateWorkspaceLicense"],
        &["workspace/*"],
    ),
    allow(
        "Projects",
        "project",
        &["CanAccessProject", "CreateProject"],
        &["project/*"],
    ),
    deny(
        "NoProdFlags",
        "flag",
        &["*"],
        &["project/*:env/prod:flag/*"],
    ),
    allow("Everything", "*", &["*"], &["*"]),
    deny("Nothing", "*", &["*"], &["*"]),
];

/// The grant of that name (the names are this file's own).
pub fn grant(name: &str) -> &'static Grant {
    GRANTS
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no grant named {name}"))
}

/// A statement list as JSON, and its names for the log.
pub fn statements(grants: &[&Grant]) -> (Value, String) {
    let list: Vec<Value> = grants.iter().map(|g| g.statement()).collect();
    let names: Vec<&str> = grants.iter().map(|g| g.name).collect();
    (Value::Array(list), format!("[{}]", names.join(", ")))
}
