//! What list queries share: a page, a cursor, a capped count, a name filter, a reference to a
//! named row.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::PgPool;
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
    /// Rows to skip: none when a cursor (`after`) says where the page starts, else `index`
    /// pages' worth.
    pub fn offset(&self, cursor: bool) -> i64 {
        if cursor {
            0
        } else {
            self.index.saturating_mul(self.size)
        }
    }

    /// The total, when the page's rows alone tell it: a first page (no offset, no cursor) with
    /// room to spare holds every item there is, so a selective filter needs no count.
    pub fn total_from_rows(&self, cursor: bool, rows: usize) -> Option<Total> {
        let rows = i64::try_from(rows).ok()?;
        (!cursor && self.index == 0 && rows < self.size).then_some(Total {
            count: rows,
            exact: true,
        })
    }
}

/// A read-only transaction whose statements are planned with their values: the list queries'
/// optional filters (`$2 is null or …`) and cursors then fold into index ranges, where a cached
/// generic plan would scan the organization's rows and filter them. (A transaction setting, so
/// it also holds through PgBouncer in transaction mode.)
pub async fn planned_with_values(
    db: &PgPool,
) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = db.begin().await?;
    sqlx::query!("set local plan_cache_mode = force_custom_plan")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Counts stop one past this: a list never counts more rows than that to answer a page.
pub const COUNT_CAP: i64 = 10_000;

/// A list's `totalCount`, capped at `COUNT_CAP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Total {
    pub count: i64,
    /// False when there are more than `count` (= `COUNT_CAP`) items.
    pub exact: bool,
}

impl Total {
    /// From a count made with `limit COUNT_CAP + 1`.
    pub fn capped(counted: i64) -> Total {
        Total {
            count: counted.min(COUNT_CAP),
            exact: counted <= COUNT_CAP,
        }
    }
}

/// Where a page starts: just after the item whose sort key and id these are (keyset paging: a
/// deep page costs what the first one does). Opaque to clients: base64url of `<id>:<key>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub id: Uuid,
    pub key: String,
}

impl Cursor {
    /// After an item of a list sorted by time.
    pub fn at(time: DateTime<Utc>, id: Uuid) -> Cursor {
        Cursor {
            id,
            key: time.to_rfc3339_opts(SecondsFormat::Micros, true),
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.id, self.key))
    }

    /// `None` for anything `encode` did not make.
    pub fn decode(text: &str) -> Option<Cursor> {
        if text.len() > 1024 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (id, key) = text.split_once(':')?;
        Some(Cursor {
            id: id.parse().ok()?,
            key: key.to_owned(),
        })
    }

    /// The time of a cursor made by `at`.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.key)
            .ok()
            .map(|t| t.with_timezone(&Utc))
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
    fn cursors_round_trip_and_garbage_is_refused() {
        let at = Cursor::at(Utc::now(), Uuid::new_v4());
        let back = Cursor::decode(&at.encode()).expect("decodes");
        assert_eq!(back, at);
        assert!(back.time().is_some());
        let named = Cursor {
            id: Uuid::new_v4(),
            key: "ünïcode: with colons".into(),
        };
        assert_eq!(Cursor::decode(&named.encode()), Some(named));
        for garbage in ["", "!!", "bm90IGEgY3Vyc29y", &"A".repeat(2000)] {
            assert_eq!(Cursor::decode(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn counts_are_capped() {
        assert_eq!(
            Total::capped(3),
            Total {
                count: 3,
                exact: true
            }
        );
        assert_eq!(
            Total::capped(COUNT_CAP),
            Total {
                count: COUNT_CAP,
                exact: true
            }
        );
        assert_eq!(
            Total::capped(COUNT_CAP + 1),
            Total {
                count: COUNT_CAP,
                exact: false
            }
        );
    }

    #[test]
    fn only_a_first_page_with_room_to_spare_tells_the_total() {
        let first = Page { index: 0, size: 10 };
        let exact = |count| Some(Total { count, exact: true });
        assert_eq!(first.total_from_rows(false, 0), exact(0));
        assert_eq!(first.total_from_rows(false, 9), exact(9));
        // A full page may have more behind it; a later page or a cursor page does not say
        // what came before.
        assert_eq!(first.total_from_rows(false, 10), None);
        assert_eq!(first.total_from_rows(true, 3), None);
        assert_eq!(Page { index: 1, size: 10 }.total_from_rows(false, 3), None);
    }

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
