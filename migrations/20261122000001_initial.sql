-- tokengate's initial schema. Forward-only: never edit this file once it has landed.

-- The tenant. Every row except users belongs to one.
create table organizations (
    id         uuid primary key,
    name       text not null,
    created_at timestamptz not null default now()
);

-- A global identity; joins organizations through memberships.
create table users (
    id            uuid primary key,
    email         text not null,
    name          text not null,
    password_hash text not null,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);
create unique index users_email_key on users (lower(email));

create table memberships (
    organization_id uuid not null references organizations (id) on delete cascade,
    user_id         uuid not null references users (id) on delete cascade,
    created_at      timestamptz not null default now(),
    primary key (organization_id, user_id)
);
create index memberships_user_idx on memberships (user_id);

-- Built-in policies have no organization and are visible to all of them.
create table policies (
    id              uuid primary key,
    organization_id uuid references organizations (id) on delete cascade,
    name            text not null,
    description     text not null default '',
    type            text not null check (type in ('SysManaged', 'Custom')),
    statements      jsonb not null default '[]',
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    check ((type = 'SysManaged') = (organization_id is null))
);
create unique index policies_name_key on policies (organization_id, lower(name));

create table groups (
    id              uuid primary key,
    organization_id uuid not null references organizations (id) on delete cascade,
    name            text not null,
    description     text not null default '',
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);
create unique index groups_name_key on groups (organization_id, lower(name));

-- Links die with the membership they hang off, so removing a member leaves nothing behind.
create table member_policies (
    organization_id uuid not null,
    user_id         uuid not null,
    policy_id       uuid not null references policies (id) on delete cascade,
    created_at      timestamptz not null default now(),
    primary key (organization_id, user_id, policy_id),
    foreign key (organization_id, user_id) references memberships (organization_id, user_id) on delete cascade
);
create index member_policies_policy_idx on member_policies (policy_id);

create table group_members (
    group_id        uuid not null references groups (id) on delete cascade,
    organization_id uuid not null,
    user_id         uuid not null,
    created_at      timestamptz not null default now(),
    primary key (group_id, user_id),
    foreign key (organization_id, user_id) references memberships (organization_id, user_id) on delete cascade
);
create index group_members_member_idx on group_members (organization_id, user_id);

create table group_policies (
    group_id   uuid not null references groups (id) on delete cascade,
    policy_id  uuid not null references policies (id) on delete cascade,
    created_at timestamptz not null default now(),
    primary key (group_id, policy_id)
);
create index group_policies_policy_idx on group_policies (policy_id);

-- Web sessions. Only HMAC-SHA256(server key, credential) is stored.
create table sessions (
    id          uuid primary key,
    user_id     uuid not null references users (id) on delete cascade,
    secret_hash bytea not null,
    expires_at  timestamptz not null,
    created_at  timestamptz not null default now(),
    constraint sessions_secret_hash_key unique (secret_hash)
);
create index sessions_user_idx on sessions (user_id);

-- API access tokens. `scope` is the token's own statement list (NULL = unscoped personal token);
-- `ceiling` is the frozen list of layers inherited from whatever created it (SPEC §2.3).
create table access_tokens (
    id                          uuid primary key,
    organization_id             uuid not null references organizations (id) on delete cascade,
    name                        text not null,
    type                        text not null check (type in ('Personal', 'Service')),
    status                      text not null check (status in ('Active', 'Inactive')),
    creator_id                  uuid not null references users (id),
    created_by_token_id         uuid,
    secret_hash                 bytea not null,
    hint                        text not null,
    previous_secret_hash        bytea,
    previous_secret_expires_at  timestamptz,
    scope                       jsonb,
    ceiling                     jsonb not null default '[]',
    expires_at                  timestamptz,
    last_used_at                timestamptz,
    created_at                  timestamptz not null default now(),
    updated_at                  timestamptz not null default now(),
    constraint access_tokens_secret_hash_key unique (secret_hash),
    constraint access_tokens_previous_secret_hash_key unique (previous_secret_hash)
);
create unique index access_tokens_name_key on access_tokens (organization_id, lower(name));
create index access_tokens_creator_idx on access_tokens (organization_id, creator_id);

-- Append-only record of every token lifecycle and IAM change.
create table audit_events (
    id              uuid primary key,
    organization_id uuid not null references organizations (id) on delete cascade,
    actor_kind      text not null,
    actor_id        uuid not null,
    action          text not null,
    target_id       uuid,
    details         jsonb not null default '{}',
    at              timestamptz not null default now()
);
create index audit_events_org_at_idx on audit_events (organization_id, at desc);

-- FeatBit's built-in policies, with FeatBit's ids and statements (SPEC §2.4).
insert into policies (id, organization_id, name, description, type, statements) values
('98881f6a-5c6c-4277-bcf7-fda94c538785', null, 'Owner',
 'Contains all permissions. This policy is granted to the user who created the organization',
 'SysManaged',
 '[
 {
  "id": "fd508a3d-6191-41d4-902b-023a79471b1f",
  "resourceType": "*",
  "effect": "allow",
  "actions": [
   "*"
  ],
  "resources": [
   "*"
  ]
 }
]'),
('3e961f0f-6fd4-4cf4-910f-52d356f8cc08', null, 'Administrator',
 'Contains all the permissions required by an administrator',
 'SysManaged',
 '[
 {
  "id": "a1473ba1-1b1a-454d-8d45-88a6c6d476c5",
  "resourceType": "organization",
  "effect": "allow",
  "actions": [
   "UpdateOrgName",
   "UpdateOrgDefaultUserPermissions",
   "CreateOrg"
  ],
  "resources": [
   "organization/*"
  ]
 },
 {
  "id": "259c743c-bbde-48c4-9f31-85023a0b82a6",
  "resourceType": "iam",
  "effect": "allow",
  "actions": [
   "CanManageIAM"
  ],
  "resources": [
   "iam/*"
  ]
 },
 {
  "id": "b2dbf310-9a21-48d1-ac59-3c08ebbe1dc6",
  "resourceType": "access-token",
  "effect": "allow",
  "actions": [
   "ManageServiceAccessTokens",
   "ManagePersonalAccessTokens",
   "ListAccessTokens"
  ],
  "resources": [
   "access-token/*"
  ]
 },
 {
  "id": "fa9ae2e5-852f-49d6-a371-d1fe96dc06b9",
  "resourceType": "relay-proxy",
  "effect": "allow",
  "actions": [
   "ManageRelayProxies",
   "ListRelayProxies"
  ],
  "resources": [
   "relay-proxy/*"
  ]
 },
 {
  "id": "0552f1cd-1b5b-4b15-939f-adb96efb2928",
  "resourceType": "project",
  "effect": "allow",
  "actions": [
   "CanAccessProject",
   "CreateProject",
   "DeleteProject",
   "UpdateProjectSettings",
   "CreateEnv"
  ],
  "resources": [
   "project/*"
  ]
 },
 {
  "id": "3df7153a-d5d8-4833-9abb-76105cddf17a",
  "resourceType": "env",
  "effect": "allow",
  "actions": [
   "CanAccessEnv",
   "DeleteEnv",
   "UpdateEnvSettings",
   "CreateEnvSecret",
   "DeleteEnvSecret",
   "UpdateEnvSecret"
  ],
  "resources": [
   "project/*:env/*"
  ]
 },
 {
  "id": "5186cfb9-bd2a-402b-b384-d3d1fbd31766",
  "resourceType": "flag",
  "effect": "allow",
  "actions": [
   "*"
  ],
  "resources": [
   "project/*:env/*:flag/*"
  ]
 },
 {
  "id": "09fa261a-9168-42c5-bb0f-4bf18324d42b",
  "resourceType": "segment",
  "effect": "allow",
  "actions": [
   "*"
  ],
  "resources": [
   "project/*:env/*:segment/*"
  ]
 }
]'),
('66f3687f-939d-4257-bd3f-c3553d39e1b6', null, 'Developer',
 'Contains all the permissions required by a developer',
 'SysManaged',
 '[
 {
  "id": "bfd7fe73-ca78-4fe6-bee8-a46003415a95",
  "resourceType": "access-token",
  "effect": "allow",
  "actions": [
   "ManageServiceAccessTokens",
   "ManagePersonalAccessTokens",
   "ListAccessTokens"
  ],
  "resources": [
   "access-token/*"
  ]
 },
 {
  "id": "31d74918-aaf2-443b-873e-4d5d74a7b565",
  "resourceType": "relay-proxy",
  "effect": "allow",
  "actions": [
   "ManageRelayProxies",
   "ListRelayProxies"
  ],
  "resources": [
   "relay-proxy/*"
  ]
 },
 {
  "id": "6841ce78-28ee-4de6-b022-b9ebed036ea3",
  "resourceType": "project",
  "effect": "allow",
  "actions": [
   "CanAccessProject"
  ],
  "resources": [
   "project/*"
  ]
 },
 {
  "id": "8f82563c-4f49-402b-9560-d3ca9834c021",
  "resourceType": "env",
  "effect": "allow",
  "actions": [
   "CanAccessEnv"
  ],
  "resources": [
   "project/*:env/*"
  ]
 },
 {
  "id": "478ad703-6562-4b11-b34c-874f710549f7",
  "resourceType": "flag",
  "effect": "allow",
  "actions": [
   "*"
  ],
  "resources": [
   "project/*:env/*:flag/*"
  ]
 },
 {
  "id": "b59bd6f3-35f3-45dd-99c8-52a9a130d0d7",
  "resourceType": "segment",
  "effect": "allow",
  "actions": [
   "*"
  ],
  "resources": [
   "project/*:env/*:segment/*"
  ]
 }
]');
