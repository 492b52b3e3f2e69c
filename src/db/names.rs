//! The `name_key` columns behind unique names (migration `20261130110000_name_keys`): rows
//! written before keys existed are keyed here, by the same function the API checks with.

use sqlx::PgPool;
use uuid::Uuid;

use crate::names::unique_key;

/// Tables whose `name` is unique per organization under `names::unique_key`.
const TABLES: [&str; 3] = ["access_tokens", "policies", "groups"];

/// Rows keyed per statement, so a large table is keyed in short transactions.
const BATCH: i64 = 500;

/// Gives every row without a `name_key` its key. Two older rows whose names are now the same
/// (`prod` and `ｐｒｏｄ`) both stay, names unchanged: the oldest gets the plain key, the others a
/// key made unique by their id after a control character, which no name's key can contain.
/// New names equal to any of them are refused.
pub async fn key_unkeyed_rows(db: &PgPool) -> sqlx::Result<u64> {
    let mut keyed = 0;
    for table in TABLES {
        // The table names are the constants above, never input.
        let select = format!(
            "select id, organization_id, name from {table} where name_key is null
             order by created_at, id limit $1"
        );
        let update = format!(
            "update {table} set name_key = case
                 when exists (select 1 from {table} other
                              where other.organization_id = $2 and other.name_key = $3)
                 then $3 || chr(1) || id::text
                 else $3 end
             where id = $1 and name_key is null"
        );
        loop {
            let rows: Vec<(Uuid, Option<Uuid>, String)> =
                sqlx::query_as(&select).bind(BATCH).fetch_all(db).await?;
            if rows.is_empty() {
                break;
            }
            let mut tx = db.begin().await?;
            for (id, organization_id, name) in &rows {
                sqlx::query(&update)
                    .bind(id)
                    .bind(organization_id)
                    .bind(unique_key(name))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            keyed += rows.len() as u64;
        }
    }
    Ok(keyed)
}
