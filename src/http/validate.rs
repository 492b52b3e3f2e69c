//! Checks on what clients send that several resources share, each answering the field-specific
//! 400 (`<field>_is_required`, `<field>_is_invalid`) or 409 of SPEC §4.

use super::error::{ApiError, ApiResult};
use crate::names;

/// Names of tokens, policies, groups, organizations and members.
pub const MAX_NAME_LEN: usize = 128;

/// Free text that PostgreSQL can store: no NUL or other control characters but tab and newlines.
pub fn valid_text(field: &str, text: &str, max_chars: usize) -> ApiResult<()> {
    let bad_char = |c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r');
    if text.chars().count() > max_chars || text.chars().any(bad_char) {
        return Err(ApiError::BadRequest(format!("{field}_is_invalid")));
    }
    Ok(())
}

/// A list filter: bounded, no control characters; empty means none.
pub fn valid_filter(field: &str, value: Option<&str>) -> ApiResult<Option<String>> {
    match value {
        Some(v) if v.chars().any(char::is_control) || v.chars().count() > MAX_NAME_LEN => {
            Err(ApiError::BadRequest(format!("{field}_is_invalid")))
        }
        other => Ok(crate::db::contains_pattern(other)),
    }
}

/// The name of a token, policy, group, organization or member: present, trimmed, at most
/// `MAX_NAME_LEN` characters, none of them invisible or reordering (`names::is_forbidden`).
pub fn valid_name(field: &str, name: &str) -> ApiResult<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(ApiError::BadRequest(format!("{field}_is_required")));
    }
    if trimmed.chars().count() > MAX_NAME_LEN || trimmed.chars().any(names::is_forbidden) {
        return Err(ApiError::BadRequest(format!("{field}_is_invalid")));
    }
    Ok(trimmed.to_owned())
}

/// A custom policy's name: a valid name that is not a built-in policy's under the rule that
/// makes names unique (`names::unique_key`). The built-ins are listed in every organization, so
/// their names are taken there: 409 `NameHasBeenUsed`, as for any other taken name.
pub fn valid_policy_name(field: &str, name: &str) -> ApiResult<String> {
    let name = valid_name(field, name)?;
    let key = names::unique_key(&name);
    let reserved = crate::policy::builtin_policies()
        .iter()
        .any(|builtin| names::unique_key(builtin.name) == key);
    if reserved {
        return Err(ApiError::Conflict("NameHasBeenUsed"));
    }
    Ok(name)
}
