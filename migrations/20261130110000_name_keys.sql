-- Names are unique per organization under NFKC + case folding (SPEC §9): `ｐｒｏｄ` (fullwidth),
-- `Prod` and `prod` are one name. Each unique name gets a `name_key` column holding that form,
-- computed by tokengate (names::unique_key), and the unique indexes move from lower(name) to it.
--
-- Why not an expression index over PostgreSQL's lower(normalize(name, NFKC)): it would not give
-- the same answer as the check the API makes. lower() follows the database's collation (under
-- the C locale it folds ASCII only), it lower-cases rather than case-folds (`ß` stays, so
-- `Straße` and `STRASSE` would differ), and normalize() uses the server's Unicode version.
-- One Rust function decides, and the index enforces exactly what it says.
--
-- Rows written before this migration have no key yet: tokengate keys them right after applying
-- migrations (db::key_names), before it reports ready. The column stays nullable so that rows a
-- replica still running the previous version writes during a rolling upgrade are keyed on the
-- next start instead of failing.

alter table access_tokens add column name_key text;
alter table policies add column name_key text;
alter table groups add column name_key text;

drop index access_tokens_name_key;
drop index policies_name_key;
drop index groups_name_key;

-- Still named `<table>_name_key`: the API maps a violation of any such index to 409
-- NameHasBeenUsed.
create unique index access_tokens_name_key on access_tokens (organization_id, name_key);
create unique index policies_name_key on policies (organization_id, name_key);
create unique index groups_name_key on groups (organization_id, name_key);
