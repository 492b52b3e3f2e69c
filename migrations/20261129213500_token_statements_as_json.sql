-- A token's scope and frozen ceiling are only ever written and read whole (the verifier parses
-- them itself), so they are stored as `json` text rather than `jsonb`: a cache miss reads the
-- text as stored instead of having PostgreSQL render jsonb back to text on every lookup
-- (pgbench: the verification query ran about 7% faster). jsonb and json convert to each other
-- by assignment, so replicas still running the previous version keep reading and writing.
-- The table is rewritten under a brief exclusive lock.
alter table access_tokens
    alter column ceiling drop default,
    alter column scope type json using scope::json,
    alter column ceiling type json using ceiling::json,
    alter column ceiling set default '[]'::json;
