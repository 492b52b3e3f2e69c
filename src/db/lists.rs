//! What list queries share: a page, a name filter, a reference to a named row.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamedRef {
    pub id: Uuid,
    pub name: String,
}

/// One page of a list: `pageIndex` is 0-based, `pageSize` at most 100.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub index: i64,
    pub size: i64,
}

impl Page {
    pub fn offset(&self) -> i64 {
        self.index.saturating_mul(self.size)
    }
}

/// `name ILIKE '%…%'` with the user's `%`, `_` and `\` taken literally.
pub fn contains_pattern(needle: Option<&str>) -> Option<String> {
    needle.filter(|n| !n.is_empty()).map(|n| {
        let mut escaped = String::with_capacity(n.len() + 2);
        escaped.push('%');
        for c in n.chars() {
            if matches!(c, '%' | '_' | '\\') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        escaped.push('%');
        escaped
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(
            contains_pattern(Some("a%b_c\\")).as_deref(),
            Some("%a\\%b\\_c\\\\%")
        );
        assert_eq!(contains_pattern(Some("")), None);
        assert_eq!(contains_pattern(None), None);
    }
}
