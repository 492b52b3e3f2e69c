-- A member's live permissions (SPEC §2.3): the statements of every policy attached to them
-- directly or through any of their groups, as one JSON array, ordered by policy id and then as
-- each policy lists them. The one definition every query that needs them selects from: token
-- verification, a member's own verification, and the re-reads inside IAM and token writes.
--
-- A set-returning SQL function that is STABLE and a single SELECT: PostgreSQL inlines it into
-- the calling query (no function call, no separate plan), so the verification query's plan is
-- the same as with the subquery written out in place.
create function member_statements(org uuid, member uuid)
returns table (statements jsonb)
language sql
stable
as $$
    select coalesce(jsonb_agg(s.statement order by p.id, s.n), '[]'::jsonb)
      from policies p
     cross join lateral jsonb_array_elements(p.statements) with ordinality as s(statement, n)
     where p.id in (select mp.policy_id from member_policies mp
                     where mp.organization_id = org and mp.user_id = member
                    union
                    select gp.policy_id from group_policies gp
                      join group_members gm on gm.group_id = gp.group_id
                     where gm.organization_id = org and gm.user_id = member)
$$;
