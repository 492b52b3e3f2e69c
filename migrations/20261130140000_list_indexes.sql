-- Lists that stay fast at any size (SPEC §8 scale rows, issue 14): every filter and sort of the
-- token, audit and IAM lists has an index whose order is the list's order, so a first page or a
-- cursor page (`after`) reads only the rows it returns. Ties on the time are broken by the id,
-- descending like the time, so that (time, id) < (cursor) is one index range.
--
-- A plain CREATE INDEX takes a write lock on the table while it builds: on a large live table,
-- create these by hand with CREATE INDEX CONCURRENTLY (same names) before upgrading; the
-- `if not exists` then skips them here.

-- Substring filters (`name ILIKE '%…%'`): trigram indexes. pg_trgm ships with PostgreSQL
-- (contrib) and is a trusted extension: the database owner may create it.
create extension if not exists pg_trgm;

drop index if exists access_tokens_creator_idx;
create index if not exists access_tokens_org_created_idx
    on access_tokens (organization_id, created_at desc, id desc);
create index if not exists access_tokens_org_creator_created_idx
    on access_tokens (organization_id, creator_id, created_at desc, id desc);
create index if not exists access_tokens_org_type_created_idx
    on access_tokens (organization_id, type, created_at desc, id desc);
create index if not exists access_tokens_org_status_created_idx
    on access_tokens (organization_id, status, created_at desc, id desc);
create index if not exists access_tokens_name_trgm_idx
    on access_tokens using gin (name gin_trgm_ops);

drop index if exists audit_events_org_at_idx;
create index if not exists audit_events_org_at_idx
    on audit_events (organization_id, at desc, id desc);
create index if not exists audit_events_org_action_at_idx
    on audit_events (organization_id, action, at desc, id desc);
create index if not exists audit_events_org_target_at_idx
    on audit_events (organization_id, target_id, at desc, id desc);
create index if not exists audit_events_org_actor_at_idx
    on audit_events (organization_id, actor_id, at desc, id desc);

-- Members are listed by name: walk the people in name order and keep the organization's.
create index if not exists users_lower_name_idx on users (lower(name), id);
create index if not exists users_name_trgm_idx on users using gin (name gin_trgm_ops);
create index if not exists users_email_trgm_idx on users using gin (email gin_trgm_ops);
create index if not exists groups_org_lower_name_idx on groups (organization_id, lower(name), id);
create index if not exists groups_name_trgm_idx on groups using gin (name gin_trgm_ops);
create index if not exists policies_org_lower_name_idx
    on policies (organization_id, lower(name), id);
create index if not exists policies_name_trgm_idx on policies using gin (name gin_trgm_ops);
