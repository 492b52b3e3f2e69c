//! Statements (SPEC §2.1) and the validation of client-supplied statement lists.

use serde::{Deserialize, Serialize};

/// Most statements a client may send in one list (SPEC §9).
pub const MAX_STATEMENTS: usize = 100;
/// Most actions in one statement (SPEC §9).
pub const MAX_ACTIONS_PER_STATEMENT: usize = 100;
/// Most resource patterns in one statement (SPEC §9).
pub const MAX_RESOURCES_PER_STATEMENT: usize = 100;
/// Longest resource name or pattern, in characters (SPEC §4.2).
pub const MAX_RN_LEN: usize = 1024;

/// Longest `resourceType`, in characters.
const MAX_RESOURCE_TYPE_LEN: usize = 128;

/// Whether a matching statement grants or refuses. Deny wins (SPEC §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

/// One permission statement in FeatBit's camelCase JSON shape:
/// `{"id": "…", "resourceType": "flag", "effect": "allow", "actions": ["UpdateFlagName"],
/// "resources": ["project/*:env/prod:flag/*;beta"]}`.
///
/// `resourceType` is a label for the UI, except that `"*"` makes the statement match
/// every action on every resource (FeatBit's Owner policy relies on this).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Statement {
    /// Client-chosen identifier; not interpreted.
    #[serde(default)]
    pub id: String,
    pub resource_type: String,
    pub effect: Effect,
    /// Action names from the catalogue, or `"*"` for every action.
    pub actions: Vec<String>,
    /// Resource-name patterns (SPEC §2.2).
    pub resources: Vec<String>,
}

/// Validates a client-supplied statement list, sent as the body's `list_field` (`statements`
/// of a policy, `permissions` of a token); `is_action` says which action names exist (the
/// catalogue's).
///
/// On failure returns the error code for the first problem found:
/// `<list_field>_is_invalid` when there are more than [`MAX_STATEMENTS`], otherwise
/// `<list_field>[<i>].<field>_is_required` or `<list_field>[<i>].<field>_is_invalid` for
/// `resourceType`, `actions` or `resources`. An action that is neither `"*"` nor known is
/// `<list_field>[<i>].actions_is_invalid`, so typos are caught.
///
/// `effect` cannot be wrong here: [`Effect`] is an enum, so a bad or missing effect
/// already fails JSON deserialisation, and the HTTP layer reports it. Ids are not
/// checked or filled in.
pub fn validate_statements(
    list_field: &str,
    statements: &[Statement],
    is_action: impl Fn(&str) -> bool,
) -> Result<(), String> {
    if statements.len() > MAX_STATEMENTS {
        return Err(format!("{list_field}_is_invalid"));
    }
    for (index, statement) in statements.iter().enumerate() {
        validate_statement(statement, &is_action)
            .map_err(|(field, problem)| format!("{list_field}[{index}].{field}_is_{problem}"))?;
    }
    Ok(())
}

type Problem = (&'static str, &'static str);

const REQUIRED: &str = "required";
const INVALID: &str = "invalid";

/// Statement ids are opaque labels (FeatBit uses UUIDs); an empty one is filled in by the server.
const MAX_ID_LEN: usize = 128;

fn validate_statement(
    statement: &Statement,
    is_action: &impl Fn(&str) -> bool,
) -> Result<(), Problem> {
    if statement.id.chars().count() > MAX_ID_LEN || has_control_chars(&statement.id) {
        return Err(("id", INVALID));
    }
    let resource_type = statement.resource_type.as_str();
    if resource_type.is_empty() {
        return Err(("resourceType", REQUIRED));
    }
    if resource_type.chars().count() > MAX_RESOURCE_TYPE_LEN || has_control_chars(resource_type) {
        return Err(("resourceType", INVALID));
    }

    let actions = &statement.actions;
    if actions.is_empty() {
        return Err(("actions", REQUIRED));
    }
    let known = |action: &String| action == "*" || is_action(action);
    if actions.len() > MAX_ACTIONS_PER_STATEMENT || !actions.iter().all(known) {
        return Err(("actions", INVALID));
    }

    let resources = &statement.resources;
    if resources.is_empty() {
        return Err(("resources", REQUIRED));
    }
    let well_formed =
        |rn: &String| !rn.is_empty() && rn.chars().count() <= MAX_RN_LEN && !has_control_chars(rn);
    if resources.len() > MAX_RESOURCES_PER_STATEMENT || !resources.iter().all(well_formed) {
        return Err(("resources", INVALID));
    }

    Ok(())
}

fn has_control_chars(text: &str) -> bool {
    text.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(resource_type: &str, actions: &[&str], resources: &[&str]) -> Statement {
        Statement {
            id: String::new(),
            resource_type: resource_type.to_owned(),
            effect: Effect::Allow,
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            resources: resources.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn valid() -> Statement {
        statement(
            "flag",
            &["UpdateFlagName"],
            &["project/*:env/prod:flag/*;beta"],
        )
    }

    /// A catalogue of two actions.
    fn validate(statements: &[Statement]) -> Result<(), String> {
        validate_statements("statements", statements, |action| {
            ["UpdateFlagName", "CreateFlag"].contains(&action)
        })
    }

    fn error_for(edit: impl FnOnce(&mut Statement)) -> Result<(), String> {
        let mut second = valid();
        edit(&mut second);
        validate(&[valid(), second])
    }

    #[test]
    fn statements_use_featbit_camel_case_json() -> Result<(), serde_json::Error> {
        let json = concat!(
            r#"{"id":"s1","resourceType":"flag","effect":"deny","actions":["UpdateFlagName"],"#,
            r#""resources":["project/*:env/prod:flag/*;beta"]}"#
        );
        let parsed: Statement = serde_json::from_str(json)?;
        assert_eq!(parsed.id, "s1");
        assert_eq!(parsed.resource_type, "flag");
        assert_eq!(parsed.effect, Effect::Deny);
        assert_eq!(serde_json::to_string(&parsed)?, json);
        Ok(())
    }

    #[test]
    fn statement_id_is_optional() -> Result<(), serde_json::Error> {
        let json = r#"{"resourceType":"*","effect":"allow","actions":["*"],"resources":["*"]}"#;
        let parsed: Statement = serde_json::from_str(json)?;
        assert_eq!(parsed.id, "");
        Ok(())
    }

    #[test]
    fn unknown_fields_and_bad_effects_are_rejected() {
        let extra = concat!(
            r#"{"resourceType":"*","effect":"allow","actions":["*"],"resources":["*"],"#,
            r#""condition":{}}"#
        );
        let capitalised =
            r#"{"resourceType":"*","effect":"Allow","actions":["*"],"resources":["*"]}"#;
        let missing = r#"{"resourceType":"*","actions":["*"],"resources":["*"]}"#;
        for json in [extra, capitalised, missing] {
            assert!(serde_json::from_str::<Statement>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn valid_statements_pass() {
        assert_eq!(validate(&[]), Ok(()));
        assert_eq!(validate(&[valid()]), Ok(()));
        assert_eq!(validate(&[statement("*", &["*"], &["*"])]), Ok(()));
        let full = statement(
            "flag",
            &vec!["UpdateFlagName"; MAX_ACTIONS_PER_STATEMENT],
            &vec!["project/*"; MAX_RESOURCES_PER_STATEMENT],
        );
        assert_eq!(validate(&vec![full; MAX_STATEMENTS]), Ok(()));
        let longest = format!("project/{}", "k".repeat(MAX_RN_LEN - "project/".len()));
        assert_eq!(validate(&[statement("flag", &["*"], &[&longest])]), Ok(()));
    }

    #[test]
    fn too_many_statements_is_invalid() {
        assert_eq!(
            validate(&vec![valid(); MAX_STATEMENTS + 1]),
            Err("statements_is_invalid".to_owned())
        );
    }

    #[test]
    fn each_field_reports_its_own_error_code() {
        type Edit = fn(&mut Statement);
        let cases: [(&str, Edit); 13] = [
            ("resourceType_is_required", |s| s.resource_type.clear()),
            ("resourceType_is_invalid", |s| {
                s.resource_type = "x".repeat(129)
            }),
            ("resourceType_is_invalid", |s| {
                s.resource_type = "fl\nag".into()
            }),
            ("actions_is_required", |s| s.actions.clear()),
            ("actions_is_invalid", |s| {
                s.actions = vec!["CreateFlag".into(); 101]
            }),
            ("actions_is_invalid", |s| s.actions.push(String::new())),
            ("actions_is_invalid", |s| {
                s.actions.push("UpdateFlagNmae".into())
            }),
            ("actions_is_invalid", |s| {
                s.actions.push("updateflagname".into())
            }),
            ("resources_is_required", |s| s.resources.clear()),
            ("resources_is_invalid", |s| {
                s.resources = vec!["p/*".into(); 101]
            }),
            ("resources_is_invalid", |s| s.resources.push(String::new())),
            ("resources_is_invalid", |s| {
                s.resources.push("p/\u{0}".into())
            }),
            ("resources_is_invalid", |s| {
                s.resources.push("p".repeat(1025))
            }),
        ];
        for (code, edit) in cases {
            assert_eq!(error_for(edit), Err(format!("statements[1].{code}")));
        }
    }

    #[test]
    fn resource_type_of_exactly_128_characters_is_valid() {
        assert_eq!(error_for(|s| s.resource_type = "é".repeat(128)), Ok(()));
    }

    #[test]
    fn codes_name_the_list_field() {
        let over = vec![valid(); MAX_STATEMENTS + 1];
        let unknown = [statement("flag", &["Nope"], &["project/*"])];
        let known = |action: &str| action == "UpdateFlagName";
        assert_eq!(
            validate_statements("permissions", &over, known),
            Err("permissions_is_invalid".to_owned())
        );
        assert_eq!(
            validate_statements("permissions", &unknown, known),
            Err("permissions[0].actions_is_invalid".to_owned())
        );
    }
}
