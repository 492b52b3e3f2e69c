//! Statement lists parsed from their JSON text, remembered by that text.
//!
//! Tokens made by the same creator with the same permissions carry identical frozen ceilings
//! and scopes, and every personal token of a member reads the same live statements. Parsing that
//! JSON was a third of a cache miss's own work (callgrind). The same text always parses to the
//! same statements, so an entry can never be stale: no invalidation applies, and the map is kept
//! even while the verdict caches are off or bypassed. Every verdict is still decided from rows
//! read in that request's round trip; only their parse is reused.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use foldhash::fast::RandomState;

use crate::policy::Statement;

/// Texts kept per kind, in bytes of JSON; past this the map starts over.
const MAX_TEXT_BYTES: usize = 8 * 1024 * 1024;

/// Parsed layers (`[[statement…]…]`, a frozen ceiling) and lists (`[statement…]`, a scope or
/// live permissions). Two maps: `[]` is both an empty ceiling and an empty list.
#[derive(Default)]
pub struct ParsedStatements {
    lists: Remembered<Arc<Vec<Statement>>>,
    layers: Remembered<Arc<[Arc<Vec<Statement>>]>>,
}

impl std::fmt::Debug for ParsedStatements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedStatements")
            .field("texts", &self.len())
            .finish()
    }
}

impl ParsedStatements {
    pub fn list(&self, json: &str) -> serde_json::Result<Arc<Vec<Statement>>> {
        self.lists
            .get_or_parse(json, |j| serde_json::from_str(j).map(Arc::new))
    }

    pub fn layers(&self, json: &str) -> serde_json::Result<Arc<[Arc<Vec<Statement>>]>> {
        self.layers.get_or_parse(json, |j| {
            let layers: Vec<Vec<Statement>> = serde_json::from_str(j)?;
            Ok(layers.into_iter().map(Arc::new).collect())
        })
    }

    /// Texts remembered, lists and layers (for tests).
    pub fn len(&self) -> usize {
        self.lists.len() + self.layers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Remembered<V> {
    map: RwLock<Table<V>>,
}

struct Table<V> {
    /// foldhash: SipHash over a few hundred bytes of JSON was a tenth of the saving.
    parsed: HashMap<Box<str>, V, RandomState>,
    bytes: usize,
}

impl<V> Default for Remembered<V> {
    fn default() -> Self {
        Remembered {
            map: RwLock::new(Table {
                parsed: HashMap::default(),
                bytes: 0,
            }),
        }
    }
}

impl<V: Clone> Remembered<V> {
    fn get_or_parse(
        &self,
        json: &str,
        parse: impl FnOnce(&str) -> serde_json::Result<V>,
    ) -> serde_json::Result<V> {
        if let Ok(table) = self.map.read() {
            if let Some(value) = table.parsed.get(json) {
                return Ok(value.clone());
            }
        }
        let value = parse(json)?;
        if json.len() <= MAX_TEXT_BYTES {
            if let Ok(mut table) = self.map.write() {
                if table.bytes + json.len() > MAX_TEXT_BYTES {
                    table.parsed.clear();
                    table.bytes = 0;
                }
                if table.parsed.insert(json.into(), value.clone()).is_none() {
                    table.bytes += json.len();
                }
            }
        }
        Ok(value)
    }

    fn len(&self) -> usize {
        self.map.read().map_or(0, |t| t.parsed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"[{"id":"a","resourceType":"flag","effect":"allow","actions":["*"],"resources":["project/*:env/*:flag/*"]}]"#;

    #[test]
    fn the_same_text_gives_the_same_statements_once_parsed() {
        let parsed = ParsedStatements::default();
        let first = parsed.list(LIST).expect("parses");
        let again = parsed.list(LIST).expect("parses");
        assert!(Arc::ptr_eq(&first, &again), "parsed twice");
        assert_eq!(
            *first,
            serde_json::from_str::<Vec<Statement>>(LIST).expect("ok")
        );
        assert_eq!(parsed.len(), 1);
    }

    #[test]
    fn an_empty_ceiling_is_not_an_empty_list() {
        let parsed = ParsedStatements::default();
        assert!(parsed.list("[]").expect("list").is_empty());
        assert!(parsed.layers("[]").expect("layers").is_empty());
        let layers = parsed.layers(&format!("[{LIST},[]]")).expect("layers");
        assert_eq!(layers.len(), 2);
        assert_eq!(*layers[0], *parsed.list(LIST).expect("list"));
        assert!(layers[1].is_empty());
    }

    #[test]
    fn bad_json_is_an_error_and_is_not_remembered() {
        let parsed = ParsedStatements::default();
        assert!(parsed.list("[{").is_err());
        assert!(parsed.layers(LIST).is_err(), "a list is not layers");
        assert!(parsed.is_empty());
    }

    #[test]
    fn it_starts_over_once_full() {
        let parsed = ParsedStatements::default();
        let big = format!(
            "[{}]",
            [LIST.trim_matches(['[', ']'])].repeat(20_000).join(",")
        );
        assert!(big.len() > MAX_TEXT_BYTES / 4);
        for n in 0..5 {
            // Distinct texts, same meaning: whitespace differs.
            let text = format!("{}{big}", " ".repeat(n));
            assert_eq!(parsed.list(&text).expect("parses").len(), 20_000);
        }
        let bytes = parsed.lists.map.read().expect("lock").bytes;
        assert!(bytes <= MAX_TEXT_BYTES, "{bytes}");
        assert!(parsed.len() < 5);
    }
}
