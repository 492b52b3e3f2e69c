//! `tokengate key-status`: what still depends on each hash key, and whether the previous keys
//! can be dropped (docs/operations.md, "Rotating the hash key").

use crate::config::DatabaseConfig;
use crate::credential::HashKey;
use crate::db;
use crate::db::hash_keys::KeyUsage;

/// Exit code while credentials still depend on a previous key (or on a key not known yet).
pub const EXIT_PREVIOUS_KEYS_IN_USE: i32 = 4;

pub async fn run(
    database: &DatabaseConfig,
    current: &HashKey,
    previous: &[HashKey],
) -> anyhow::Result<i32> {
    let pool = db::connect(database).await?;
    let usage = db::hash_keys::usage(&pool).await.map_err(|e| {
        anyhow::anyhow!("{e} (has this version's `tokengate migrate` or `serve` run yet?)")
    })?;
    let role = |id: Option<&str>| -> (String, bool) {
        let Some(id) = id else {
            // Digests made before key ids were recorded: any configured key may have made them.
            return (
                "unrecorded (made before key ids were kept)".to_owned(),
                !previous.is_empty(),
            );
        };
        if id == current.id().to_string() {
            return ("current (TOKENGATE_HASH_KEY)".to_owned(), false);
        }
        match previous.iter().position(|k| k.id().to_string() == id) {
            Some(n) => (format!("previous, entry {}", n + 1), true),
            None => ("not configured: cannot be verified".to_owned(), false),
        }
    };
    println!(
        "{:<10} {:>8} {:>14} {:>9}  key",
        "key id", "tokens", "grace secrets", "sessions"
    );
    let mut blocking = 0;
    for KeyUsage {
        key_id,
        tokens,
        grace_secrets,
        sessions,
    } in &usage
    {
        let (name, blocks) = role(key_id.as_deref());
        println!(
            "{:<10} {tokens:>8} {grace_secrets:>14} {sessions:>9}  {name}",
            key_id.as_deref().unwrap_or("-")
        );
        if blocks {
            blocking += tokens + grace_secrets + sessions;
        }
    }
    if previous.is_empty() {
        println!("no previous key configured (TOKENGATE_PREVIOUS_HASH_KEYS): nothing to drop");
        return Ok(0);
    }
    if blocking == 0 {
        println!(
            "safe to drop TOKENGATE_PREVIOUS_HASH_KEYS: no credential in use depends on a \
             previous key"
        );
        Ok(0)
    } else {
        println!(
            "not yet safe to drop TOKENGATE_PREVIOUS_HASH_KEYS: {blocking} credential(s) in use \
             still depend on a previous key; each moves to the current key when next used, \
             or stops mattering when it expires"
        );
        Ok(EXIT_PREVIOUS_KEYS_IN_USE)
    }
}
