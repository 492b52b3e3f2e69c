-- One canonical form of an email (credential::canonical_email in the Rust code: NFKC, lower
-- case, trimmed) for login lookups and account uniqueness, the same form the login limits use.
-- Before this, the limiter lower-cased with Rust and the lookup with PostgreSQL's lower(), which
-- follows the server's locale: a spelling could get a fresh limit and still open the account.
--
-- For an email in ASCII the form below is exactly the Rust one (NFKC leaves ASCII as it is); for
-- others it is PostgreSQL's approximation, which `tokengate migrate` and `serve` replace with the
-- Rust form right after applying migrations (db::identity::recompute_canonical_emails).
alter table users add column email_canonical text;

update users set email_canonical = case
    when octet_length(email) = length(email)
        then translate(btrim(email, E' \t\n\r\f\x0b'),
                       'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
    else btrim(normalize(lower(normalize(email, NFKC)), NFKC))
end;

do $$
declare
    clash text;
begin
    select string_agg(email, ', ') into clash
    from (select email, count(*) over (partition by email_canonical) as n from users) u
    where n > 1;
    if clash is not null then
        raise exception 'these accounts'' emails differ only in case or width: %; change all but one of each before upgrading', clash;
    end if;
end $$;

alter table users alter column email_canonical set not null;
create unique index users_email_canonical_key on users (email_canonical);
drop index users_email_key;
