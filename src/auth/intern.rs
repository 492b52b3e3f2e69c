//! One parsed copy of each distinct permission set. A million service tokens made by the same
//! creator hold the same frozen layers, and ten thousand members of one policy the same live
//! statements: parsed per entry, each cached token would carry kilobytes of identical
//! statements, and every cache miss would parse them again. Keyed by the JSON text the database
//! returns, so a miss whose text is already known costs one hash lookup instead of a parse.
//!
//! Only weak references are kept here: a set no cached entry or request holds any more is
//! freed, and its key forgotten at the next sweep.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

pub struct Interner<T> {
    sets: Mutex<Sets<T>>,
}

struct Sets<T> {
    by_text: HashMap<Box<str>, Weak<T>>,
    /// Sweep dead keys when the map grows past this.
    sweep_at: usize,
}

const FIRST_SWEEP: usize = 64;

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            sets: Mutex::new(Sets {
                by_text: HashMap::new(),
                sweep_at: FIRST_SWEEP,
            }),
        }
    }
}

impl<T> Interner<T> {
    /// The shared value for `text`, parsed by `parse` only when no live copy exists.
    pub fn get<E>(
        &self,
        text: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        if let Some(shared) = self.lookup(text) {
            return Ok(shared);
        }
        // Parsed outside the lock; two first parses of one text race harmlessly (the later
        // insert wins, and the earlier copy lives only as long as its holders).
        let parsed = Arc::new(parse(text)?);
        if let Ok(mut sets) = self.sets.lock() {
            sets.by_text.insert(text.into(), Arc::downgrade(&parsed));
            if sets.by_text.len() > sets.sweep_at {
                sets.by_text.retain(|_, set| set.strong_count() > 0);
                sets.sweep_at = (sets.by_text.len() * 2).max(FIRST_SWEEP);
            }
        }
        Ok(parsed)
    }

    fn lookup(&self, text: &str) -> Option<Arc<T>> {
        self.sets.lock().ok()?.by_text.get(text)?.upgrade()
    }

    /// Distinct texts remembered (live or not yet swept).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.sets.lock().map(|s| s.by_text.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<u32>, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn equal_texts_share_one_parse_and_dead_ones_are_swept() {
        let interner = Interner::default();
        let a = interner.get("[1,2]", parse).unwrap();
        let b = interner.get("[1,2]", |_| -> Result<_, ()> { panic!("parsed twice") });
        let b = b.unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = interner.get("[3]", parse).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(interner.get("[", parse).is_err());
        drop((a, b, c));
        // Freed with their last holder; parsed again when asked for after that.
        let again = interner.get("[1,2]", parse).unwrap();
        assert_eq!(*again, vec![1, 2]);
        for i in 0..1000 {
            interner.get(&format!("[{i}]"), parse).unwrap();
        }
        assert!(
            interner.remembered() <= 2 * FIRST_SWEEP + 1,
            "{}",
            interner.remembered()
        );
    }
}
