-- `serve` gives digests stored before key ids were recorded the current key's id at every start,
-- before it answers ready (`db::hash_keys::label_unlabelled`). Without an index each of those
-- UPDATEs scans its whole table: a minute at a million tokens, on every start of every replica.
-- These partial indexes hold only the rows still unlabelled (none, once a start has labelled
-- them, since every write records its key id), so the labelling finds them without a scan.
-- Their predicates name no column `lastUsedAt` writes touch: those stay in-place (HOT) updates.
-- On a large live database, build them by hand first with CREATE INDEX CONCURRENTLY and the
-- same names; these statements then do nothing.
create index if not exists access_tokens_unlabelled_idx on access_tokens (id)
    where secret_key_id is null;
create index if not exists access_tokens_unlabelled_previous_idx on access_tokens (id)
    where previous_secret_key_id is null and previous_secret_hash is not null;
create index if not exists sessions_unlabelled_idx on sessions (id) where key_id is null;
