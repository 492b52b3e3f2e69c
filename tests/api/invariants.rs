//! The invariant test (issues 11 and 15): random sequences of operations by random principals,
//! against the real service over HTTP and a real PostgreSQL, with the promises of SPEC §2.3,
//! §5 and §9 checked after every step. Examples test the cases someone thought of; this tests
//! the rule ("a token can never do more than you", "nobody grants more than they hold").
//!
//! # The model
//! Each *case* is a fresh organization founded by the bootstrap Owner, with an Administrator,
//! a Developer, a member whose only power is `CanManageIAM` ("iam-only") and one with the token
//! actions and some flag actions ("tokens+flags"), each logged in; custom policies to grant
//! ("Everything", "Deny all", "Flags", ...) and two groups. A seeded generator draws a sequence
//! of operations (`ops.rs`): create personal and service tokens (scoped from a small vocabulary
//! of statements, `probes.rs`, or unscoped), rotate (with and without grace), activate,
//! deactivate, toggle, rename, delete, list and read tokens, read a member's permissions,
//! attach and detach policies on members and groups, create, edit and delete policies, add and
//! remove group members, add members (with policies of the actor's choosing) and remove them,
//! change passwords, and a race: a member's deactivated personal tokens activated while the
//! member is being removed, all at once.
//!
//! The actor of each op is a random *principal*: any credential the case has seen — member
//! sessions, scoped and unscoped personal tokens, service tokens (some scoped to IAM or to
//! token management only), previous secrets still in a rotation's grace, tokens of removed
//! members, and every secret an op handed out. Targets are random known ids, one in twelve
//! from another organization. Choices lean towards danger (a target worth more than the
//! actor, another member's personal token, a previous secret rotating its own token), so the
//! rules are tested where they bite. The model (`world.rs`) follows the service: what the
//! responses say, and memberships and token statuses read back from the database each step.
//!
//! # Verdicts
//! A principal's *verdicts* are its answers to `POST /auth/check` over a fixed probe set of
//! (action, resource) pairs spanning the catalogue (`probes::PROBES`); "holds more" means
//! "allowed some probe the other was not". A 403 answer (inactive, orphaned, not a member)
//! denies every probe. The first probe is `*` on `*`: only the Owner's kind of statement
//! allows it.
//!
//! # Invariants, checked after every step
//! 1. **A secret never carries more than its receiver.** Every secret a principal receives
//!    (create, rotate) belongs to a token whose verdicts are a subset of the receiver's own
//!    just before (an inactive token is measured as if activated: that is what its secret is
//!    worth to whoever may activate it). And a personal token's secret goes only to its own
//!    member: administrators may delete your tokens, never read them (SPEC §5.2).
//! 2. **A personal token never allows what its owner's live permissions deny** (the owner's
//!    session verdicts).
//! 3. **No removed member has an Active personal token** (read from the database).
//! 4. **No 5xx, no dropped connection**, on any request of the test.
//! 5. **Another organization's ids are not found**: a request naming one answers exactly as the
//!    same request naming an id that exists nowhere (never a success, never a different code).
//! 6. **A service token is not a member**: without `ListAccessTokens` it lists and reads only
//!    itself, and without `CanManageIAM` it may not read `GET /members/{id}/permissions`, its
//!    creator's included (SPEC §5.2). Members without those rights likewise see only tokens
//!    their member created and only their own permissions.
//! 7. **Nobody grants more than they hold** (SPEC §9). After an IAM write by actor P that
//!    succeeds, every member's verdicts are a subset of their own before ∪ P's before; only a
//!    principal allowed `*` on `*` grants or takes the Owner policy or attaches anything to an
//!    Owner (directly, or through a group); and a refused IAM write changes nothing.
//! 8. **A previous secret never obtains a new one**: rotating with a secret in its grace
//!    period never returns a secret.
//!
//! The test asserts these, not the status codes of operations: any 4xx is a refusal, and
//! refusing is always safe.
//!
//! # Where things are
//! This file: the test, the runner and shrinker, and invariants 1, 2, 3 and 7 (checked after
//! each step). `probes.rs`: the probe set and the statement vocabulary. `world.rs`: the model
//! and its sync with the service. `case.rs`: a case's setup, its log, and every request (which
//! holds invariant 4 and, for other organizations' ids, 5). `ops.rs` and `ops/`: the
//! operations (invariants 6 and 8 are checked on their answers).
//!
//! # Running it
//! `scripts/test invariants` runs cases until `DEFAULT_BUDGET` is spent (bounded for CI). Knobs:
//! - `TOKENGATE_INVARIANT_SEED=n`: the seed of the first case (case i uses seed + i); random
//!   otherwise, and printed on failure.
//! - `TOKENGATE_INVARIANT_CASES=n`: run exactly n cases (by default, cases run until a time
//!   budget is spent); `TOKENGATE_INVARIANT_STEPS=n`: ops per case.
//! - `TOKENGATE_INVARIANT_KEEP_GOING=1`: survey mode: every case runs to its end whatever it
//!   finds, and every distinct violation is listed (no shrinking).
//!
//! On failure the test prints the seed, the sequence that failed and a shrunk sequence (ops
//! removed while the same invariant still breaks); races make some reruns differ.

mod case;
mod ops;
mod probes;
mod world;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{TestApp, OWNER_EMAIL, PASSWORD};
use case::{id_of, Case, Lobby, Violation};
use ops::{generate, Op};
use probes::{grant, statements, Verdicts, OWNER_POWER};
use tokengate::policy::OWNER_POLICY_ID;
use world::{verdicts, Cred, Foreign, IamSnapshot, Kind};

/// Ops per case unless `TOKENGATE_INVARIANT_STEPS` says otherwise.
const DEFAULT_STEPS: usize = 40;
/// Without `TOKENGATE_INVARIANT_CASES`, cases run until this much time is spent.
const DEFAULT_BUDGET: Duration = Duration::from_secs(40);
/// The most time spent shrinking a failing sequence.
const SHRINK_BUDGET: Duration = Duration::from_secs(60);

struct Settings {
    seed: u64,
    cases: Option<usize>,
    steps: usize,
    keep_going: bool,
}

impl Settings {
    fn from_env() -> Settings {
        let number = |name: &str| {
            std::env::var(name).ok().map(|v| {
                let v = v.trim();
                match v.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => v.parse(),
                }
                .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
            })
        };
        Settings {
            seed: number("TOKENGATE_INVARIANT_SEED").unwrap_or_else(rand::random),
            cases: number("TOKENGATE_INVARIANT_CASES").map(|n| n as usize),
            steps: number("TOKENGATE_INVARIANT_STEPS").map_or(DEFAULT_STEPS, |n| n as usize),
            keep_going: std::env::var("TOKENGATE_INVARIANT_KEEP_GOING")
                .is_ok_and(|v| v == "1" || v == "true"),
        }
    }
}

#[sqlx::test]
async fn no_sequence_of_operations_gives_anyone_more_than_they_hold(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let settings = Settings::from_env();
    let mut lobby = Lobby::open(&app).await;
    let started = Instant::now();
    let mut runs = 0;
    let mut survey: Vec<(u64, Vec<Violation>)> = Vec::new();
    for i in 0.. {
        match settings.cases {
            Some(cases) if i >= cases => break,
            None if i > 0 && started.elapsed() > DEFAULT_BUDGET => break,
            _ => {}
        }
        let seed = settings.seed.wrapping_add(i as u64);
        let ops = generate(seed, settings.steps);
        let run = run_case(&app, &mut lobby, &mut runs, &ops, !settings.keep_going).await;
        if run.violations.is_empty() {
            continue;
        }
        if settings.keep_going {
            eprintln!("---- seed {seed}\n{}", run.log.join("\n"));
            survey.push((seed, run.violations));
            continue;
        }
        let first = run.violations[0].clone();
        let shrunk = shrink(&app, &mut lobby, &mut runs, &ops, &run).await;
        let mut report = format!(
            "{first}\n\nReproduce: TOKENGATE_INVARIANT_SEED={seed} TOKENGATE_INVARIANT_CASES=1 \
             scripts/test invariants\n\nThe sequence ({} step(s)):\n{}\n",
            first.step,
            run.log.join("\n")
        );
        if let Some(shrunk) = shrunk {
            report.push_str(&format!(
                "\nShrunk to {} step(s) ({}):\n{}\n",
                shrunk.ops,
                shrunk.violations[0],
                shrunk.log.join("\n")
            ));
        }
        eprintln!("{report}");
        panic!(
            "invariant {} broken (seed {seed}): {}",
            first.invariant, first.message
        );
    }
    if !survey.is_empty() {
        let mut lines = Vec::new();
        let mut found = BTreeSet::new();
        for (seed, violations) in &survey {
            for v in violations {
                found.insert(v.invariant);
                lines.push(format!("seed {seed}: {v}"));
            }
        }
        eprintln!("{}", lines.join("\n"));
        panic!(
            "{} of {} cases broke invariants {found:?}",
            survey.len(),
            runs
        );
    }
}

/// One run of a sequence in a fresh organization.
struct Run {
    ops: usize,
    log: Vec<String>,
    violations: Vec<Violation>,
}

async fn run_case(
    app: &TestApp,
    lobby: &mut Lobby,
    runs: &mut u32,
    ops: &[Op],
    stop_at_first: bool,
) -> Run {
    *runs += 1;
    let tag = format!("{runs}-{}", Uuid::new_v4().simple());
    let mut case = Case::setup(app, lobby, &tag).await;
    for (i, op) in ops.iter().enumerate() {
        case.step = i + 1;
        case.step(op).await;
        if stop_at_first && !case.violations.is_empty() {
            break;
        }
    }
    // The Owner is the same person in every case.
    lobby.owner_password = case.world.members[0].password.clone();
    Run {
        ops: case.step,
        log: case.log,
        violations: case.violations,
    }
}

/// Removes ops (halves, then quarters, ... then single ops) as long as the same invariant
/// still breaks; returns the smallest failing run found within the budget.
async fn shrink(
    app: &TestApp,
    lobby: &mut Lobby,
    runs: &mut u32,
    ops: &[Op],
    failed: &Run,
) -> Option<Run> {
    let started = Instant::now();
    let invariant = failed.violations[0].invariant;
    let mut best: Vec<Op> = ops[..failed.violations[0].step].to_vec();
    let mut best_run = None;
    let mut chunk = best.len() / 2;
    while chunk >= 1 && started.elapsed() < SHRINK_BUDGET {
        let mut at = 0;
        while at < best.len() && started.elapsed() < SHRINK_BUDGET {
            let end = (at + chunk).min(best.len());
            let candidate: Vec<Op> = best[..at].iter().chain(&best[end..]).copied().collect();
            let run = run_case(app, lobby, runs, &candidate, true).await;
            match run.violations.first() {
                Some(v) if v.invariant == invariant => {
                    best = candidate[..v.step].to_vec();
                    best_run = Some(run);
                }
                _ => at += chunk,
            }
        }
        chunk /= 2;
    }
    best_run
}

impl Lobby {
    /// The bootstrap organization and its Owner (who founds every case), and a second
    /// organization of a stranger, each with a token, a policy and a group: the ids that must
    /// stay "not found" in every case.
    async fn open(app: &TestApp) -> Lobby {
        let (home, owner) = app.owner().await;
        let stranger = app.member(&owner, "stranger@example.test", &[]).await;
        let founded = app
            .post(
                "/api/v1/organizations",
                &stranger,
                json!({ "name": "Elsewhere" }),
            )
            .await;
        founded.assert(201);
        let elsewhere = id_of(founded.data());
        app.delete(&format!("/api/v1/members/{}", stranger.user_id), &owner)
            .await
            .assert(200);
        let stranger = stranger.in_org(elsewhere);
        let owner = owner.in_org(home);
        let (flags, _) = statements(&[grant("Flags")]);
        let mut foreign = Foreign {
            tokens: Vec::new(),
            members: vec![stranger.user_id],
            policies: Vec::new(),
            groups: Vec::new(),
        };
        for (who, name) in [(&stranger, "elsewhere"), (&owner, "home")] {
            let (token, _) = app
                .token(
                    who,
                    json!({ "name": name, "type": "Service", "permissions": flags }),
                )
                .await;
            foreign.tokens.push(token);
            let policy = app
                .post(
                    "/api/v1/policies",
                    who,
                    json!({ "name": name, "statements": flags }),
                )
                .await;
            policy.assert(201);
            foreign.policies.push(id_of(policy.data()));
            let group = app
                .post("/api/v1/groups", who, json!({ "name": name }))
                .await;
            group.assert(201);
            foreign.groups.push(id_of(group.data()));
        }
        Lobby {
            owner: Cred {
                label: "owner".into(),
                secret: owner.token,
                org: Some(home),
                user: owner.user_id,
                kind: Kind::Session,
                token: None,
                previous: false,
                dead: false,
                verdicts: Verdicts::NONE,
            },
            owner_email: OWNER_EMAIL.into(),
            owner_password: PASSWORD.into(),
            foreign,
        }
    }
}

impl Case<'_> {
    /// One op, then every invariant.
    async fn step(&mut self, op: &Op) {
        let before: Vec<Verdicts> = self.world.creds.iter().map(|c| c.verdicts).collect();
        let grants_before = if op.kind.is_iam() {
            Some(IamSnapshot::take(self.app, self.world.org).await)
        } else {
            None
        };
        self.received.clear();
        let done = self.run(op).await;
        self.world.sync(self.app).await;
        for (label, reply) in self.world.refresh(self.app).await {
            self.no_server_error(&format!("{label}: POST /api/v1/auth/check"), &reply);
            self.note(format!(
                "(model) {label}: /auth/check → {}",
                reply.summary()
            ));
        }
        self.received_within_receiver(&before).await;
        self.personal_tokens_within_owner();
        self.no_active_orphans().await;
        if let (Some(was), Some(actor)) = (grants_before, done.actor) {
            self.grants_within_granter(&before, actor, was, done.iam_accepted)
                .await;
        }
    }

    /// Invariant 1.
    async fn received_within_receiver(&mut self, before: &[Verdicts]) {
        for received in self.received.clone() {
            let cred = self.world.creds[received.cred].clone();
            let Some(t) = cred.token else { continue };
            let token = self.world.tokens[t].clone();
            let mut power = cred.verdicts;
            if !token.active && !token.deleted && !cred.dead {
                power = self.verdicts_if_active(token.id, &cred).await;
            }
            let receiver = self.world.creds[received.receiver].clone();
            let had = before
                .get(received.receiver)
                .copied()
                .unwrap_or(Verdicts::NONE);
            let beyond = power.beyond(had);
            if !beyond.is_empty() {
                self.violate(
                    1,
                    format!(
                        "{} received the secret of {}, which allows {beyond}: more than {} held",
                        receiver.label, token.label, receiver.label
                    ),
                );
            }
            let own_member = receiver.kind != Kind::Service && receiver.user == token.creator;
            if token.kind == Kind::Personal && !own_member {
                self.violate(
                    1,
                    format!(
                        "{} received the secret of {}, another member's personal token \
                         (administrators may delete it, never read it)",
                        receiver.label, token.label
                    ),
                );
            }
        }
    }

    /// What an inactive token's secret would allow once activated: activated behind the
    /// service's back for one check, then put back.
    async fn verdicts_if_active(&mut self, id: Uuid, cred: &Cred) -> Verdicts {
        let set = |status: &str| {
            format!("update access_tokens set status = '{status}' where id = '{id}'")
        };
        self.app.sql(&set("Active")).await;
        let answer = verdicts(self.app, &cred.who()).await;
        self.app.sql(&set("Inactive")).await;
        match answer {
            Ok(Some(v)) => v,
            Ok(None) => Verdicts::NONE,
            Err(reply) => {
                self.no_server_error("POST /api/v1/auth/check", &reply);
                Verdicts::NONE
            }
        }
    }

    /// Invariant 2.
    fn personal_tokens_within_owner(&mut self) {
        let mut broken = Vec::new();
        for cred in self.world.creds.iter().filter(|c| !c.dead) {
            if cred.kind != Kind::Personal {
                continue;
            }
            let Some(owner) = self.world.member(cred.user) else {
                continue;
            };
            let Some(session) = owner.session.map(|s| &self.world.creds[s]) else {
                continue;
            };
            if session.dead {
                continue;
            }
            let beyond = cred.verdicts.beyond(session.verdicts);
            if !beyond.is_empty() {
                broken.push(format!(
                    "{} allows {beyond}, which its owner {} is denied",
                    cred.label, owner.label
                ));
            }
        }
        for message in broken {
            self.violate(2, message);
        }
    }

    /// Invariant 3.
    pub async fn no_active_orphans(&mut self) {
        let orphans: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "select t.id, t.creator_id from access_tokens t
             where t.organization_id = $1 and t.type = 'Personal' and t.status = 'Active'
               and not exists (select 1 from memberships m
                               where m.organization_id = t.organization_id
                                 and m.user_id = t.creator_id)",
        )
        .bind(self.world.org)
        .fetch_all(&self.app.db)
        .await
        .expect("orphans");
        for (id, owner) in orphans {
            let label = self
                .world
                .tokens
                .iter()
                .find(|t| t.id == id)
                .map_or_else(|| id.to_string(), |t| t.label.clone());
            let owner = self.world.member_label(owner);
            self.violate(
                3,
                format!("{label} is Active but its owner {owner} is no longer a member"),
            );
        }
    }

    /// Invariant 7.
    async fn grants_within_granter(
        &mut self,
        before: &[Verdicts],
        actor: usize,
        was: IamSnapshot,
        accepted: Option<bool>,
    ) {
        let now = IamSnapshot::take(self.app, self.world.org).await;
        let who = self.label(actor);
        if accepted != Some(true) {
            if now != was {
                self.violate(
                    7,
                    format!("{who}'s refused IAM write changed members, policies or groups"),
                );
            }
            return;
        }
        let granter = before.get(actor).copied().unwrap_or(Verdicts::NONE);
        let mut broken = Vec::new();
        for member in &self.world.members {
            let Some(s) = member.session else { continue };
            let had = before.get(s).copied().unwrap_or(Verdicts::NONE);
            let gained = self.world.creds[s].verdicts.beyond(had.union(granter));
            if !gained.is_empty() {
                broken.push(format!(
                    "{who} gave {} {gained}, which {who} did not hold",
                    member.label
                ));
            }
        }
        if !granter.allows(OWNER_POWER) {
            broken.extend(self.owner_only_changes(&who, &was, &now));
        }
        for message in broken {
            self.violate(7, message);
        }
    }

    /// The Owner-only changes in `was` → `now`, for an actor who is not allowed `*` on `*`.
    fn owner_only_changes(&self, who: &str, was: &IamSnapshot, now: &IamSnapshot) -> Vec<String> {
        let owners = was.holders(OWNER_POLICY_ID);
        let name = |user: &Uuid| self.world.member_label(*user);
        let policy = |id: &Uuid| {
            self.world
                .policies
                .iter()
                .find(|p| p.id == *id)
                .map_or_else(|| id.to_string(), |p| p.label.clone())
        };
        let group = |id: &Uuid| {
            self.world
                .groups
                .iter()
                .find(|g| g.id == *id)
                .map_or_else(|| id.to_string(), |g| g.label.clone())
        };
        let mut broken = Vec::new();
        for (user, p) in now.member_policies.difference(&was.member_policies) {
            if *p == OWNER_POLICY_ID {
                broken.push(format!("{who} gave {} the Owner policy", name(user)));
            } else if owners.contains(user) {
                broken.push(format!(
                    "{who} attached {} to the Owner {}",
                    policy(p),
                    name(user)
                ));
            }
        }
        for (user, p) in was.member_policies.difference(&now.member_policies) {
            // Leaving the organization takes a member's policies with them: not a detach.
            if *p == OWNER_POLICY_ID && now.memberships.contains(user) {
                broken.push(format!("{who} took the Owner policy from {}", name(user)));
            }
        }
        for (g, p) in now.group_policies.difference(&was.group_policies) {
            let owner_inside = was
                .group_members
                .iter()
                .find(|(gg, u)| gg == g && owners.contains(u));
            if *p == OWNER_POLICY_ID {
                broken.push(format!("{who} attached the Owner policy to {}", group(g)));
            } else if let Some((_, u)) = owner_inside {
                broken.push(format!(
                    "{who} attached {} to {}, which holds the Owner {}",
                    policy(p),
                    group(g),
                    name(u)
                ));
            }
        }
        for (g, p) in was.group_policies.difference(&now.group_policies) {
            if *p == OWNER_POLICY_ID {
                broken.push(format!("{who} took the Owner policy from {}", group(g)));
            }
        }
        for (g, user) in now.group_members.difference(&was.group_members) {
            if owners.contains(user) && now.group_policies.iter().any(|(gg, _)| gg == g) {
                broken.push(format!(
                    "{who} put the Owner {} into {}, which carries policies",
                    name(user),
                    group(g)
                ));
            }
        }
        broken
    }
}
