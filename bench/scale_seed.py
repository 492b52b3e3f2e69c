"""Seeds one organization at scale for `bench/scale`, straight through SQL.

What the API would take hours to make is written with COPY (members, links, tokens) and
`insert … select` (audit rows), in the shapes tokengate itself writes: credentials in the exact
format (`credential/format.rs`), HMAC-SHA256 digests under the key the servers run with
(`credential/digest.rs`), `name_key` and `email_canonical` as `names::unique_key` and
`credential::canonical_email` compute them. Whatever the Rust code derives that the bench should
not guess — the frozen layers (`ceiling`) and `scope` of each kind of token, a password hash — is
copied from template rows made through the API first.

The credentials go to files under .data/ as one string of fixed-length credentials without
separators, which wrk's Lua scripts slice by index.
"""

import datetime
import hmac
import os
import subprocess
import time
import uuid
import zlib

ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BODY_LEN = 43
CHECKSUM_LEN = 6
CREDENTIAL_LEN = 4 + BODY_LEN + CHECKSUM_LEN
DEVELOPER_POLICY_ID = "66f3687f-939d-4257-bd3f-c3553d39e1b6"
# Bytes 0..247 map onto the alphabet evenly (248 = 4 × 62); the rest are dropped, so every
# character is uniform, as the product's rejection sampling makes it.
_TO_BASE62 = bytes(ALPHABET[b % 62] for b in range(248)) + bytes(8)
_OUT_OF_RANGE = bytes(range(248, 256))

# Audit actions and how often each occurs in the seeded log (weights out of 1000).
AUDIT_ACTIONS = [
    ("access-token.created", 400), ("access-token.renamed", 100), ("access-token.activated", 80),
    ("access-token.deactivated", 80), ("access-token.rotated", 100), ("access-token.deleted", 40),
    ("member.added", 60), ("member.policy-attached", 60), ("member.removed", 19),
    ("policy.updated", 60), ("group.member-added", 1),
]
# One event in a thousand: a page of it is found quickly only through an index on the action.
RARE_ACTION = "group.member-added"


def ascii_lower(text):
    """`names::unique_key` and `canonical_email` for ASCII text: NFKC leaves it as it is and case
    folding lowers A–Z only. The seeder only makes ASCII names, and says so."""
    assert text.isascii(), text
    return text.strip().lower()


def checksum(payload):
    value = zlib.crc32(payload)
    out = bytearray(b"0" * CHECKSUM_LEN)
    for i in range(CHECKSUM_LEN - 1, -1, -1):
        out[i] = ALPHABET[value % 62]
        value //= 62
    return bytes(out)


def new_credential(prefix):
    """`<prefix><43 base62 chars from the OS CSPRNG><6-char base62 CRC32 of prefix+body>`."""
    body = b""
    while len(body) < BODY_LEN:
        body += os.urandom(64).translate(_TO_BASE62, _OUT_OF_RANGE)
    payload = prefix + body[:BODY_LEN]
    return payload + checksum(payload)


def digest(key, credential):
    return hmac.digest(key, credential, "sha256")


def copy_text(value):
    """One field of COPY's text format."""
    if value is None:
        return r"\N"
    return (str(value).replace("\\", "\\\\").replace("\t", "\\t")
            .replace("\n", "\\n").replace("\r", "\\r"))


def timestamp(dt):
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f+00")


class Copier:
    """Streams rows into `COPY table (columns) FROM STDIN` through psql."""

    def __init__(self, url, table, columns):
        sql = f"copy {table} ({', '.join(columns)}) from stdin"
        self.proc = subprocess.Popen(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
                                     stdin=subprocess.PIPE)
        self.buffer = []

    def row(self, *fields):
        self.buffer.append("\t".join(copy_text(f) for f in fields))
        if len(self.buffer) >= 20000:
            self.flush()

    def flush(self):
        if self.buffer:
            self.proc.stdin.write(("\n".join(self.buffer) + "\n").encode())
            self.buffer = []

    def close(self):
        self.flush()
        self.proc.stdin.close()
        if self.proc.wait() != 0:
            raise SystemExit("COPY failed (see psql's message above)")


def psql(url, *statements):
    """Runs each statement in turn in one session (each its own transaction); the output."""
    args = [arg for sql in statements for arg in ("-c", sql)]
    out = subprocess.run(["psql", url, "-X", "-v", "ON_ERROR_STOP=1", "-tAq", *args],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"psql failed: {out.stderr.strip()}\n{statements}")
    return out.stdout.strip()


def new_id():
    return str(uuid.UUID(bytes=os.urandom(16), version=4))


class Seeded:
    """What the measures need to know about the seeded organization."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def seed(url, key, api, n, data_dir, log, password):
    """Seeds the organization behind `api` (a logged-in owner: `api.owner`, `api.org`) with n
    service tokens and the rest; returns a `Seeded`. `key` is the raw HMAC key (bytes)."""
    timings = {}
    started = time.perf_counter()
    members = max(n // 10, 1)
    custom_members = min(members, 10_000)
    org = api.org

    # -- templates through the API: a member, a custom policy, one token of each kind
    custom = api.must("POST", "/api/v1/policies", api.owner, {
        "name": "Scale custom", "description": "attached to many members by bench/scale",
        "statements": [{"resourceType": "project", "effect": "allow",
                        "actions": ["UpdateProjectSettings"], "resources": ["project/*"]}]})
    first_email = "member-0000000@scale.test"
    first = api.must("POST", "/api/v1/members", api.owner, {
        "email": first_email, "name": "Member 0000000", "password": password,
        "policyIds": [DEVELOPER_POLICY_ID]})
    first_id = first["id"]
    member_session = api.must("POST", "/api/v1/identity/login",
                              body={"email": first_email, "password": password})["token"]
    service_template = api.must("POST", "/api/v1/access-tokens", member_session, {
        "name": "template-service", "type": "Service",
        "permissions": [{"resourceType": "flag", "effect": "allow", "actions": ["*"],
                         "resources": ["project/*:env/*:flag/*"]}]})
    personal_template = api.must("POST", "/api/v1/access-tokens", member_session, {
        "name": "template-personal", "type": "Personal"})
    template = {}
    for kind, token in (("service", service_template), ("personal", personal_template)):
        row = psql(url, "select secret_key_id, coalesce(scope::text, ''), ceiling::text "
                        f"from access_tokens where id = '{token['id']}'").split("|", 2)
        template[kind] = (row[1] or None, row[2])
        # Made with the same key: its id is what every write records (`serve` would otherwise
        # label a million unlabelled digests at its first start).
        key_id = row[0]
    password_hash = psql(url, f"select password_hash from users where id = '{first_id}'")
    timings["templates"] = time.perf_counter() - started

    # -- members: accounts of this organization, memberships, the Developer policy; the custom
    #    policy on the first ones (who also hold the personal tokens)
    t0 = time.perf_counter()
    member_ids = [first_id] + [new_id() for _ in range(members - 1)]
    now = datetime.datetime.now(datetime.timezone.utc)
    users = Copier(url, "users", ["id", "organization_id", "email", "email_canonical", "name",
                                  "password_hash", "created_at", "updated_at"])
    links = Copier(url, "memberships", ["organization_id", "user_id", "created_at"])
    for i, user_id in enumerate(member_ids[1:], start=1):
        email = f"member-{i:07d}@scale.test"
        at = timestamp(now - datetime.timedelta(seconds=members - i))
        users.row(user_id, org, email, ascii_lower(email), f"Member {i:07d}", password_hash, at, at)
        links.row(org, user_id, at)
    users.close()
    links.close()
    policies = Copier(url, "member_policies", ["organization_id", "user_id", "policy_id"])
    for i, user_id in enumerate(member_ids):
        if i:
            policies.row(org, user_id, DEVELOPER_POLICY_ID)
        if i < custom_members:
            policies.row(org, user_id, custom["id"])
    policies.close()
    timings["members"] = time.perf_counter() - t0

    # -- tokens: n service tokens made by the members in turn, oldest first over the past year;
    #    one personal token for each member holding the custom policy
    t0 = time.perf_counter()
    os.makedirs(data_dir, exist_ok=True)
    service_file = os.path.join(data_dir, "service.creds")
    personal_file = os.path.join(data_dir, "personal.creds")
    columns = ["id", "organization_id", "name", "name_key", "type", "status", "creator_id",
               "secret_hash", "secret_key_id", "hint", "scope", "ceiling", "created_at",
               "updated_at"]
    tokens = Copier(url, "access_tokens", columns)
    year = datetime.timedelta(days=365)
    with open(service_file, "wb") as creds:
        creds.write(service_template["token"].encode())
        scope, ceiling = template["service"]
        for i in range(1, n):
            credential = new_credential(b"tgs_")
            creds.write(credential)
            token_id = new_id()
            name = f"svc-{i:07d}"
            at = timestamp(now - year + year * i / n)
            tokens.row(token_id, org, name, ascii_lower(name), "Service", "Active",
                       member_ids[i % members], "\\x" + digest(key, credential).hex(), key_id,
                       credential[:8].decode() + "…", scope, ceiling, at, at)
    with open(personal_file, "wb") as creds:
        creds.write(personal_template["token"].encode())
        scope, ceiling = template["personal"]
        for i in range(1, custom_members):
            credential = new_credential(b"tgp_")
            creds.write(credential)
            name = f"pat-{i:07d}"
            at = timestamp(now - datetime.timedelta(seconds=custom_members - i))
            tokens.row(new_id(), org, name, ascii_lower(name), "Personal", "Active",
                       member_ids[i], "\\x" + digest(key, credential).hex(), key_id,
                       credential[:8].decode() + "…", scope, ceiling, at, at)
    tokens.close()
    timings["tokens"] = time.perf_counter() - t0

    # -- audit: 10 × n rows in time order over the past year (as a log grows), over the actions
    #    above; token actions target tokens, member and group actions members, policy actions
    #    the custom policy; a fifth are done by service tokens, the rest by members
    t0 = time.perf_counter()
    audit_rows = 10 * n - int(psql(url, "select count(*) from audit_events"))
    cases, upto = [], 0
    for action, weight in AUDIT_ACTIONS:
        upto += weight
        cases.append(f"when h.w < {upto} then '{action}'")
    # Numbered tokens and members to draw targets and actors from (tables, not temporary ones:
    # the chunks below are separate sessions).
    psql(url, f"""
        create unlogged table bench_seq_tokens as
            select row_number() over (order by created_at, id) - 1 as k, id from access_tokens
             where organization_id = '{org}' and type = 'Service';
        create unlogged table bench_seq_members as
            select row_number() over (order by user_id) - 1 as k, user_id as id from memberships
             where organization_id = '{org}';
        alter table bench_seq_tokens add primary key (k);
        alter table bench_seq_members add primary key (k);
        analyze bench_seq_tokens, bench_seq_members;""")
    chunk = 1_000_000
    for low in range(1, audit_rows + 1, chunk):
        high = min(low + chunk - 1, audit_rows)
        psql(url, "set work_mem = '256MB'", f"""
        insert into audit_events (id, organization_id, actor_kind, actor_id, action, target_id,
                                  details, at)
        select gen_random_uuid(), '{org}',
               case when h.actor % 5 = 0 then 'service-token' else 'user' end,
               case when h.actor % 5 = 0 then actor_token.id else actor_member.id end,
               a.action,
               case when a.action like 'access-token.%' then target_token.id
                    when a.action like 'policy.%' then '{custom['id']}'::uuid
                    else target_member.id end,
               jsonb_build_object('seq', g),
               '{timestamp(now)}'::timestamptz - interval '365 days' * (1 - g::float8 / {audit_rows})
          from generate_series({low}::bigint, {high}::bigint) g
          -- Independent pseudo-random picks per row (hashes of g), so that no action, target
          -- and actor go together.
          cross join lateral (select abs(hashint8(g)) % 1000 as w,
                                     abs(hashint8(g + {10 * audit_rows})) as target,
                                     abs(hashint8(g + {20 * audit_rows})) as actor) h
          cross join lateral (select case {' '.join(cases)} end as action) a
          join bench_seq_tokens target_token on target_token.k = h.target % {n}
          join bench_seq_tokens actor_token on actor_token.k = h.actor % {n}
          join bench_seq_members target_member on target_member.k = h.target % {members}
          join bench_seq_members actor_member on actor_member.k = (h.actor / 5) % {members};""")
        if audit_rows > chunk:
            log(f"audit rows: {high:,}/{audit_rows:,}")
    psql(url, "drop table bench_seq_tokens, bench_seq_members")
    timings["audit"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    psql(url, "set maintenance_work_mem = '256MB'", "vacuum analyze")
    timings["vacuum analyze"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started
    sizes = psql(url, "select pg_database_size(current_database()), "
                      "pg_total_relation_size('audit_events'), "
                      "pg_total_relation_size('access_tokens')").split("|")
    # A token with events half a year back, and a member who acted then: for the filtered
    # audit pages (found through the time index, so this costs little at any size).
    target_id, actor_id = psql(url, f"""
        select (select target_id from audit_events
                 where organization_id = '{org}' and at < now() - interval '182 days'
                   and action like 'access-token.%' order by at desc limit 1),
               (select actor_id from audit_events
                 where organization_id = '{org}' and at < now() - interval '182 days'
                   and actor_kind = 'user' order by at desc limit 1)""").split("|")
    log("seeded: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return Seeded(n=n, members=members, custom_members=custom_members, org=org,
                  custom_policy_id=custom["id"], first_member_email=first_email,
                  service_file=service_file, personal_file=personal_file,
                  service_count=n, personal_count=custom_members, audit_rows=10 * n,
                  target_id=target_id, actor_id=actor_id, rare_action=RARE_ACTION,
                  timings=timings, db_bytes=int(sizes[0]), audit_bytes=int(sizes[1]),
                  tokens_bytes=int(sizes[2]))
