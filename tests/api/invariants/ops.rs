//! The operations the invariant test draws, and whom and what each one picks. How each is
//! carried out: `ops/tokens.rs`, `ops/iam.rs`, `ops/race.rs`.
//!
//! An [`Op`] is a kind and a seed: which principal acts and on what is decided when the op
//! runs, from the model as it then is. So any subsequence of a failing sequence is still a
//! sequence that can run (the shrinker relies on it), and the choices lean towards danger —
//! a target worth more than the actor, another member's personal token, a previous secret —
//! because that is where a broken rule shows.

mod iam;
mod race;
mod tokens;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

use super::case::Case;
use super::probes::{grant, statements, GRANTS, MANAGE_IAM, MANAGE_PERSONAL, MANAGE_SERVICE};
use super::world::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    CreatePersonal,
    CreateService,
    Rotate,
    Activate,
    Deactivate,
    Toggle,
    Rename,
    DeleteToken,
    ListTokens,
    GetToken,
    ReadPermissions,
    AttachMemberPolicy,
    DetachMemberPolicy,
    CreatePolicy,
    EditPolicy,
    DeletePolicy,
    AddGroupMember,
    RemoveGroupMember,
    AttachGroupPolicy,
    DetachGroupPolicy,
    AddMember,
    RemoveMember,
    ChangePassword,
    /// Issue 11 item 9: a member's deactivated personal tokens are activated while the member
    /// is being removed, all requests at once.
    RemovalRace,
}

use OpKind::*;

/// How often each kind is drawn. Rotation, the one that hands out secrets of existing tokens,
/// and the grants weigh most.
const WEIGHTS: &[(OpKind, u32)] = &[
    (CreatePersonal, 7),
    (CreateService, 8),
    (Rotate, 14),
    (Activate, 4),
    (Deactivate, 4),
    (Toggle, 3),
    (Rename, 2),
    (DeleteToken, 2),
    (ListTokens, 4),
    (GetToken, 3),
    (ReadPermissions, 4),
    (AttachMemberPolicy, 6),
    (DetachMemberPolicy, 3),
    (CreatePolicy, 2),
    (EditPolicy, 4),
    (DeletePolicy, 1),
    (AddGroupMember, 3),
    (RemoveGroupMember, 2),
    (AttachGroupPolicy, 3),
    (DetachGroupPolicy, 2),
    (AddMember, 2),
    (RemoveMember, 2),
    (ChangePassword, 1),
    (RemovalRace, 2),
];

/// The first ops of a case create tokens, so that the rest has something to work on.
const OPENING_CREATES: usize = 6;

impl OpKind {
    /// Writes to members, policies or groups: invariant 7 applies.
    pub fn is_iam(self) -> bool {
        matches!(
            self,
            AttachMemberPolicy
                | DetachMemberPolicy
                | CreatePolicy
                | EditPolicy
                | DeletePolicy
                | AddGroupMember
                | RemoveGroupMember
                | AttachGroupPolicy
                | DetachGroupPolicy
                | AddMember
                | RemoveMember
        )
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Op {
    pub kind: OpKind,
    seed: u64,
}

/// The sequence of a case.
pub fn generate(seed: u64, steps: usize) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(seed);
    let total: u32 = WEIGHTS.iter().map(|(_, w)| w).sum();
    (0..steps)
        .map(|i| {
            let kind = if i < OPENING_CREATES {
                *[CreatePersonal, CreateService]
                    .choose(&mut rng)
                    .expect("two kinds")
            } else {
                let mut roll = rng.gen_range(0..total);
                let mut chosen = WEIGHTS[0].0;
                for &(kind, weight) in WEIGHTS {
                    if roll < weight {
                        chosen = kind;
                        break;
                    }
                    roll -= weight;
                }
                chosen
            };
            Op {
                kind,
                seed: rng.gen(),
            }
        })
        .collect()
}

/// What an op did, for the checks that follow it.
#[derive(Debug, Default)]
pub struct Done {
    pub actor: Option<usize>,
    /// For IAM writes: whether the service accepted it.
    pub iam_accepted: Option<bool>,
}

/// An id an op names: one the case knows (with a label for the log), or another
/// organization's.
#[derive(Debug, Clone)]
enum Id {
    Known(Uuid, String),
    Foreign(Uuid, &'static str),
}

impl Id {
    fn id(&self) -> Uuid {
        match self {
            Id::Known(id, _) | Id::Foreign(id, _) => *id,
        }
    }

    /// The same id, except that another organization's becomes one that exists nowhere.
    fn twin(&self) -> Uuid {
        match self {
            Id::Known(id, _) => *id,
            Id::Foreign(..) => Uuid::new_v4(),
        }
    }

    fn is_foreign(&self) -> bool {
        matches!(self, Id::Foreign(..))
    }

    fn label(&self) -> String {
        match self {
            Id::Known(_, label) => label.clone(),
            Id::Foreign(_, what) => format!("another organization's {what}"),
        }
    }
}

/// One in twelve targets belongs to another organization (invariant 5).
const FOREIGN_ONE_IN: u32 = 12;

fn choose(d: &mut StdRng, items: &[usize]) -> Option<usize> {
    items.choose(d).copied()
}

impl Case<'_> {
    pub async fn run(&mut self, op: &Op) -> Done {
        let mut d = StdRng::seed_from_u64(op.seed);
        let d = &mut d;
        match op.kind {
            CreatePersonal => self.create_token(d, Kind::Personal).await,
            CreateService => self.create_token(d, Kind::Service).await,
            Rotate => self.rotate(d).await,
            Activate => self.set_status(d, "/activate", Some(true)).await,
            Deactivate => self.set_status(d, "/deactivate", Some(false)).await,
            Toggle => self.set_status(d, "/toggle", None).await,
            Rename => self.rename(d).await,
            DeleteToken => self.delete_token(d).await,
            ListTokens => self.list_tokens(d).await,
            GetToken => self.get_token(d).await,
            ReadPermissions => self.read_permissions(d).await,
            AttachMemberPolicy => self.member_policy(d, Method::PUT).await,
            DetachMemberPolicy => self.member_policy(d, Method::DELETE).await,
            CreatePolicy => self.create_policy(d).await,
            EditPolicy => self.edit_policy(d).await,
            DeletePolicy => self.delete_policy(d).await,
            AddGroupMember => self.group_member(d, Method::PUT).await,
            RemoveGroupMember => self.group_member(d, Method::DELETE).await,
            AttachGroupPolicy => self.group_policy(d, Method::PUT).await,
            DetachGroupPolicy => self.group_policy(d, Method::DELETE).await,
            AddMember => self.add_member(d).await,
            RemoveMember => self.remove_member(d).await,
            ChangePassword => self.change_password(d).await,
            RemovalRace => self.removal_race(d).await,
        }
    }

    // ---- choosing ----

    /// A live credential; three times in four, one whose last verdicts allow `wanted` (when
    /// some do), so that most ops get past the permission check and test what lies behind it.
    fn actor(&self, d: &mut StdRng, wanted: Option<usize>) -> Option<usize> {
        let alive = self.world.alive();
        if let Some(probe) = wanted {
            if d.gen_bool(0.75) {
                let holders: Vec<usize> = alive
                    .iter()
                    .copied()
                    .filter(|&c| self.world.creds[c].verdicts.allows(probe))
                    .collect();
                if let Some(c) = choose(d, &holders) {
                    return Some(c);
                }
            }
        }
        choose(d, &alive)
    }

    /// A token manager: either kind of token management.
    fn token_actor(&self, d: &mut StdRng) -> Option<usize> {
        let wanted = if d.gen_bool(0.5) {
            MANAGE_SERVICE
        } else {
            MANAGE_PERSONAL
        };
        self.actor(d, Some(wanted))
    }

    /// An IAM actor; now and then a token holding `CanManageIAM` (an IAM-scoped token).
    fn iam_actor(&self, d: &mut StdRng) -> Option<usize> {
        if d.gen_bool(0.3) {
            let tokens: Vec<usize> = self
                .world
                .alive()
                .into_iter()
                .filter(|&c| {
                    let cred = &self.world.creds[c];
                    cred.kind != Kind::Session && cred.verdicts.allows(MANAGE_IAM)
                })
                .collect();
            if let Some(c) = choose(d, &tokens) {
                return Some(c);
            }
        }
        self.actor(d, Some(MANAGE_IAM))
    }

    /// Any live credential, often a service token (the "service token is not a member" rule).
    fn reader(&self, d: &mut StdRng) -> Option<usize> {
        let alive = self.world.alive();
        if d.gen_bool(0.5) {
            let services: Vec<usize> = alive
                .iter()
                .copied()
                .filter(|&c| self.world.creds[c].kind == Kind::Service)
                .collect();
            if let Some(c) = choose(d, &services) {
                return Some(c);
            }
        }
        choose(d, &alive)
    }

    fn token_id(&self, t: usize) -> Id {
        let token = &self.world.tokens[t];
        Id::Known(token.id, token.label.clone())
    }

    /// A token to act on. With `risky`, mostly one the actor should not reach: worth more
    /// than the actor, or another member's personal token.
    fn token_target(&self, d: &mut StdRng, actor: usize, risky: bool) -> Option<Id> {
        if d.gen_ratio(1, FOREIGN_ONE_IN) {
            return self
                .world
                .foreign
                .tokens
                .choose(d)
                .map(|id| Id::Foreign(*id, "token"));
        }
        let live = self.world.live_tokens();
        if risky && d.gen_bool(0.7) {
            let a = &self.world.creds[actor];
            let out_of_reach: Vec<usize> = live
                .iter()
                .copied()
                .filter(|&t| {
                    let token = &self.world.tokens[t];
                    !token.power.beyond(a.verdicts).is_empty()
                        || (token.kind == Kind::Personal
                            && (token.creator != a.user || a.kind == Kind::Service))
                })
                .collect();
            if let Some(t) = choose(d, &out_of_reach) {
                return Some(self.token_id(t));
            }
        }
        choose(d, &live).map(|t| self.token_id(t))
    }

    /// A rotation that must not hand its secret to its actor, of one of the kinds issue 11
    /// lists, each kind equally likely however few pairs it has: a member (session or personal
    /// token) reaching for a service token worth more; a personal token reaching for a
    /// personal token of its own member worth more (a scoped token and its unscoped sibling);
    /// anyone reaching for another member's personal token; a service token reaching for a
    /// service token worth more; a previous secret reaching for its own token. Except for the
    /// last (self-rotation needs no right), actors hold the management right for the target's
    /// kind, so the pair gets past the first check.
    fn dangerous_rotation(&self, d: &mut StdRng) -> Option<(usize, usize)> {
        let mut kinds: [Vec<(usize, usize)>; 5] = Default::default();
        for a in self.world.alive() {
            let actor = &self.world.creds[a];
            for t in self.world.live_tokens() {
                let token = &self.world.tokens[t];
                let right = match token.kind {
                    Kind::Personal => MANAGE_PERSONAL,
                    _ => MANAGE_SERVICE,
                };
                let worth_more = !token.power.beyond(actor.verdicts).is_empty();
                let personal = token.kind == Kind::Personal;
                if actor.previous && actor.token == Some(t) {
                    kinds[4].push((a, t));
                }
                if !actor.verdicts.allows(right) {
                    continue;
                }
                if !personal && worth_more && actor.kind != Kind::Service {
                    kinds[0].push((a, t));
                }
                if personal
                    && actor.kind == Kind::Personal
                    && token.creator == actor.user
                    && worth_more
                {
                    kinds[1].push((a, t));
                }
                if personal && (token.creator != actor.user || actor.kind == Kind::Service) {
                    kinds[2].push((a, t));
                }
                if !personal && worth_more && actor.kind == Kind::Service {
                    kinds[3].push((a, t));
                }
            }
        }
        let present: Vec<&Vec<(usize, usize)>> = kinds.iter().filter(|k| !k.is_empty()).collect();
        present.choose(d).and_then(|pairs| pairs.choose(d)).copied()
    }

    fn member_target(&self, d: &mut StdRng) -> Option<Id> {
        if d.gen_ratio(1, FOREIGN_ONE_IN) {
            return self
                .world
                .foreign
                .members
                .choose(d)
                .map(|id| Id::Foreign(*id, "member"));
        }
        self.world
            .members
            .choose(d)
            .map(|m| Id::Known(m.user, m.label.clone()))
    }

    fn policy_target(&self, d: &mut StdRng) -> Option<Id> {
        if d.gen_ratio(1, FOREIGN_ONE_IN) {
            return self
                .world
                .foreign
                .policies
                .choose(d)
                .map(|id| Id::Foreign(*id, "policy"));
        }
        self.world
            .policies
            .choose(d)
            .map(|p| Id::Known(p.id, format!("policy {}", p.label)))
    }

    fn group_target(&self, d: &mut StdRng) -> Option<Id> {
        if d.gen_ratio(1, FOREIGN_ONE_IN) {
            return self
                .world
                .foreign
                .groups
                .choose(d)
                .map(|id| Id::Foreign(*id, "group"));
        }
        self.world
            .groups
            .choose(d)
            .map(|g| Id::Known(g.id, format!("group {}", g.label)))
    }

    /// A token scope or policy body: often a lone IAM or token-management statement (the
    /// tokens issue 11 is about: they may act on tokens worth more than they are), else one or
    /// two statements of the vocabulary.
    fn some_statements(&self, d: &mut StdRng) -> (Value, String) {
        let grants = match d.gen_range(0..4) {
            0 => vec![grant("IAM")],
            1 => vec![grant("Tokens")],
            _ => {
                let n = d.gen_range(1..=2);
                GRANTS.choose_multiple(d, n).collect::<Vec<_>>()
            }
        };
        statements(&grants)
    }

    /// Runs a request on ids; when one of them is another organization's, checks it against
    /// the same request on an id that exists nowhere (invariant 5).
    async fn on_ids(
        &mut self,
        actor: usize,
        method: Method,
        ids: &[&Id],
        path: impl Fn(&[Uuid]) -> String,
        body: Option<&Value>,
        what: String,
    ) -> Option<super::world::Reply> {
        let real: Vec<Uuid> = ids.iter().map(|i| i.id()).collect();
        if ids.iter().any(|i| i.is_foreign()) {
            let twin: Vec<Uuid> = ids.iter().map(|i| i.twin()).collect();
            self.foreign_twin(actor, method, (path(&real), path(&twin)), body, &what)
                .await;
            return None;
        }
        let reply = self.call(Some(actor), method, &path(&real), body).await;
        let who = self.label(actor);
        self.note(format!("{who}: {what} → {}", reply.summary()));
        Some(reply)
    }
}
