-- The live statements of many members at once (SPEC §2.3), for the batches that read members
-- again after a policy or group change (`auth::refresh`): one row per (organization, member)
-- asked, whether or not they hold anything ('[]' then).
--
-- Members of one organization mostly hold the same few sets of policies, and putting a set's
-- statements together is most of the work. So each member's set is read first (their policy
-- ids, sorted), and each distinct set is put together once (docs/benchmarks.md says what
-- that saves a batch).
--
-- `member_statements` becomes this function asked for one member, so that the two cannot
-- drift apart: still inlined into the calling query (a single SELECT, STABLE), and the same
-- statements in the same order, by policy id and then as each policy lists them.
create function members_statements(orgs uuid[], members uuid[])
returns table (organization_id uuid, user_id uuid, statements jsonb)
language sql
stable
as $$
    with held as (
        select k.org, k.member,
               array(select mp.policy_id from member_policies mp
                      where mp.organization_id = k.org and mp.user_id = k.member
                     union
                     select gp.policy_id from group_policies gp
                       join group_members gm on gm.group_id = gp.group_id
                      where gm.organization_id = k.org and gm.user_id = k.member
                     order by 1) as ids
          from (select distinct org, member from unnest(orgs, members) as u(org, member)) k
    ),
    -- Materialized: otherwise the planner may put each set together again for every member.
    sets as materialized (
        select d.ids,
               (select coalesce(jsonb_agg(s.statement order by p.id, s.n), '[]'::jsonb)
                  from policies p
                 cross join lateral jsonb_array_elements(p.statements)
                       with ordinality as s(statement, n)
                 where p.id = any(d.ids)) as statements
          from (select distinct ids from held) d
    )
    select held.org, held.member, sets.statements
      from held
      join sets on sets.ids = held.ids
$$;

create or replace function member_statements(org uuid, member uuid)
returns table (statements jsonb)
language sql
stable
as $$
    select m.statements from members_statements(array[org], array[member]) m
$$;
