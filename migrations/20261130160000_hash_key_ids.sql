-- Which hash key made each stored digest (issue 16, key rotation): the key's id, the first 4
-- bytes of SHA-256 of the key as 8 hex digits, never the key. `tokengate key-status` counts the
-- credentials that still depend on a previous key. Null: made before this column existed; a
-- `serve` started without previous keys labels those with its current key (the only key that
-- can still verify them).
alter table access_tokens
    add column secret_key_id text,
    add column previous_secret_key_id text;
alter table sessions
    add column key_id text;
