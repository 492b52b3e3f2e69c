-- `lastUsedAt` is written for every token used, in batches (`auth::last_used`): at scale that
-- is up to 100,000 rows a flush. The column is in no index, so PostgreSQL can update such a
-- row in place on its page (a HOT update: no new entry in any of the table's ten indexes, and
-- the old version pruned without a vacuum), but only when the page has room. Leave 30 % of
-- each page free for that. Takes effect for pages written from now on; on a large existing
-- table, `VACUUM FULL access_tokens` (or pg_repack) rewrites the old pages with the room.
alter table access_tokens set (fillfactor = 70);
