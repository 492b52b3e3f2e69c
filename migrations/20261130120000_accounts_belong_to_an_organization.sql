-- An account belongs to the organization that created it (SPEC §9, issue 15). Adding a member
-- by email finds accounts of this organization only, and otherwise makes a new account there:
-- an account (and the password) another organization set is never attached, and nothing about
-- it is revealed. The same email may so have one account per organization; login tells them
-- apart by password, or by the organization asked for.

alter table users add column organization_id uuid references organizations (id) on delete set null;
alter table users add column last_login_at timestamptz;

-- Existing accounts belong to the first organization they joined.
update users u set organization_id = (
    select m.organization_id from memberships m
     where m.user_id = u.id
     order by m.created_at, m.organization_id
     limit 1);

-- One account per canonical email (20261130100000) and organization, not overall.
drop index users_email_canonical_key;
create unique index users_organization_email_key on users (organization_id, email_canonical);
create index users_email_canonical_idx on users (email_canonical);
