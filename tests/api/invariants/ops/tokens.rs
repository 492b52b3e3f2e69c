//! Token operations: create, rotate, activate, deactivate, toggle, rename, delete, list and
//! read, and reading a member's permissions. Invariants 6 and 8 are checked here, on the
//! answers; the rest after each step.

use rand::rngs::StdRng;
use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};

use super::{choose, Done, Id};
use crate::invariants::case::{uuid_of, Case, Received};
use crate::invariants::probes::{
    grant, statements, Verdicts, LIST_TOKENS, MANAGE_IAM, MANAGE_PERSONAL, MANAGE_SERVICE,
};
use crate::invariants::world::{Kind, Token};

impl Case<'_> {
    pub(super) async fn create_token(&mut self, d: &mut StdRng, kind: Kind) -> Done {
        let wanted = match kind {
            Kind::Personal => MANAGE_PERSONAL,
            _ => MANAGE_SERVICE,
        };
        // Now and then a personal token makes a (scoped) sibling: the pair issue 11 item 2
        // rotates one from the other.
        let personal_tokens: Vec<usize> = self
            .world
            .alive()
            .into_iter()
            .filter(|&c| {
                let cred = &self.world.creds[c];
                cred.kind == Kind::Personal && cred.verdicts.allows(MANAGE_PERSONAL)
            })
            .collect();
        let actor = match choose(d, &personal_tokens) {
            Some(c) if kind == Kind::Personal && d.gen_bool(0.3) => Some(c),
            _ => self.actor(d, Some(wanted)),
        };
        let Some(actor) = actor else {
            return Done::default();
        };
        // Only a member's session makes unscoped tokens (a token must spell out what it passes
        // on); a token's child is often scoped to token management, issue 11 item 2's actor.
        let by_session = self.world.creds[actor].kind == Kind::Session;
        let scope = match kind {
            Kind::Personal if by_session && d.gen_bool(0.4) => None,
            Kind::Personal if !by_session && d.gen_bool(0.5) => {
                Some(statements(&[grant("Tokens")]))
            }
            _ => Some(self.some_statements(d)),
        };
        let name = self.world.fresh("t");
        let word = match kind {
            Kind::Personal => "personal",
            _ => "service",
        };
        let mut body = json!({ "name": name, "type": if kind == Kind::Personal { "Personal" } else { "Service" } });
        let scope_names = match scope {
            Some((list, names)) => {
                body["permissions"] = list;
                names
            }
            None => "unscoped".to_owned(),
        };
        let reply = self
            .call(
                Some(actor),
                Method::POST,
                "/api/v1/access-tokens",
                Some(&body),
            )
            .await;
        let who = self.label(actor);
        let created = match (uuid_of(&reply.data()["id"]), reply.data()["token"].as_str()) {
            (Some(id), Some(secret)) if reply.ok() => {
                let creator =
                    uuid_of(&reply.data()["creator"]["id"]).unwrap_or(self.world.creds[actor].user);
                let n = self.world.tokens.len();
                let label = format!(
                    "T{n} ({word} of {}, {scope_names})",
                    self.world.member_label(creator)
                );
                self.world.tokens.push(Token {
                    id,
                    label: label.clone(),
                    kind,
                    creator,
                    active: true,
                    deleted: false,
                    power: Verdicts::NONE,
                });
                let cred = self.world.add_token_cred(n, secret.to_owned());
                self.received.push(Received {
                    cred,
                    receiver: actor,
                });
                label
            }
            _ => format!("a {word} token {scope_names}"),
        };
        self.note(format!("{who}: create {created} → {}", reply.summary()));
        Done {
            actor: Some(actor),
            ..Done::default()
        }
    }

    pub(super) async fn rotate(&mut self, d: &mut StdRng) -> Done {
        let (actor, target) = match self.dangerous_rotation(d) {
            Some((actor, t)) if d.gen_bool(0.6) => (actor, Some(self.token_id(t))),
            _ => {
                let Some(actor) = self.token_actor(d) else {
                    return Done::default();
                };
                (actor, self.token_target(d, actor, false))
            }
        };
        let Some(target) = target else {
            return Done::default();
        };
        let grace = if d.gen_bool(0.5) { 0 } else { 3600 };
        let body = json!({ "oldTokenExpiresInSeconds": grace });
        let was_previous = self.world.creds[actor].previous;
        let who = self.label(actor);
        let reply = self
            .on_ids(
                actor,
                Method::POST,
                &[&target],
                |ids| format!("/api/v1/access-tokens/{}/rotate", ids[0]),
                Some(&body),
                format!("rotate {} with {grace} s of grace", target.label()),
            )
            .await;
        if let (Some(reply), Id::Known(id, label)) = (reply, &target) {
            let t = self.world.tokens.iter().position(|t| t.id == *id);
            if let (Some(t), Some(secret), true) = (t, reply.data()["token"].as_str(), reply.ok()) {
                let cred = self.world.rotated(t, grace > 0, secret.to_owned());
                self.received.push(Received {
                    cred,
                    receiver: actor,
                });
                if was_previous {
                    self.violate(
                        8,
                        format!(
                            "{who}, a previous secret in its grace period, rotated {label} and \
                             received its new secret"
                        ),
                    );
                }
            }
        }
        Done {
            actor: Some(actor),
            ..Done::default()
        }
    }

    /// Activate (`Some(true)`), deactivate (`Some(false)`) or toggle (`None`).
    pub(super) async fn set_status(
        &mut self,
        d: &mut StdRng,
        suffix: &str,
        to: Option<bool>,
    ) -> Done {
        let Some(actor) = self.token_actor(d) else {
            return Done::default();
        };
        // Mostly a token the op changes.
        let changing: Vec<usize> = self
            .world
            .live_tokens()
            .into_iter()
            .filter(|&t| match to {
                None => true,
                Some(active) => self.world.tokens[t].active != active,
            })
            .collect();
        let target = match choose(d, &changing) {
            Some(t) if d.gen_bool(0.6) => Some(self.token_id(t)),
            _ => self.token_target(d, actor, false),
        };
        let Some(target) = target else {
            return Done::default();
        };
        let method = if to.is_none() {
            Method::PUT
        } else {
            Method::POST
        };
        let verb = suffix.trim_start_matches('/');
        self.on_ids(
            actor,
            method,
            &[&target],
            |ids| format!("/api/v1/access-tokens/{}{suffix}", ids[0]),
            None,
            format!("{verb} {}", target.label()),
        )
        .await;
        Done {
            actor: Some(actor),
            ..Done::default()
        }
    }

    pub(super) async fn rename(&mut self, d: &mut StdRng) -> Done {
        let Some(actor) = self.token_actor(d) else {
            return Done::default();
        };
        let Some(target) = self.token_target(d, actor, false) else {
            return Done::default();
        };
        let name = self.world.fresh("renamed");
        self.on_ids(
            actor,
            Method::PUT,
            &[&target],
            |ids| format!("/api/v1/access-tokens/{}", ids[0]),
            Some(&json!({ "name": name })),
            format!("rename {} to {name}", target.label()),
        )
        .await;
        Done {
            actor: Some(actor),
            ..Done::default()
        }
    }

    pub(super) async fn delete_token(&mut self, d: &mut StdRng) -> Done {
        let Some(actor) = self.token_actor(d) else {
            return Done::default();
        };
        let Some(target) = self.token_target(d, actor, false) else {
            return Done::default();
        };
        self.on_ids(
            actor,
            Method::DELETE,
            &[&target],
            |ids| format!("/api/v1/access-tokens/{}", ids[0]),
            None,
            format!("delete {}", target.label()),
        )
        .await;
        Done {
            actor: Some(actor),
            ..Done::default()
        }
    }

    /// Invariant 6, listing: without `ListAccessTokens` a service token sees only itself, a
    /// member (session or personal token) only tokens its member created.
    pub(super) async fn list_tokens(&mut self, d: &mut StdRng) -> Done {
        let Some(actor) = self.reader(d) else {
            return Done::default();
        };
        let reply = self
            .call(
                Some(actor),
                Method::GET,
                "/api/v1/access-tokens?pageSize=100",
                None,
            )
            .await;
        let who = self.label(actor);
        let items = reply.data()["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        self.note(format!(
            "{who}: list tokens → {} ({} items)",
            reply.summary(),
            items.len()
        ));
        if reply.ok() {
            for item in items {
                self.may_see(actor, &item, "listed");
            }
        }
        Done {
            actor: Some(actor),
            ..Done::default()
        }
    }

    pub(super) async fn get_token(&mut self, d: &mut StdRng) -> Done {
        let Some(actor) = self.reader(d) else {
            return Done::default();
        };
        let Some(target) = self.token_target(d, actor, true) else {
            return Done::default();
        };
        let reply = self
            .on_ids(
                actor,
                Method::GET,
                &[&target],
                |ids| format!("/api/v1/access-tokens/{}", ids[0]),
                None,
                format!("read {}", target.label()),
            )
            .await;
        if let Some(reply) = reply.filter(|r| r.ok()) {
            self.may_see(actor, reply.data(), "read");
        }
        Done {
            actor: Some(actor),
            ..Done::default()
        }
    }

    /// Invariant 6 on one token view the actor received.
    fn may_see(&mut self, actor: usize, view: &Value, how: &str) {
        let cred = &self.world.creds[actor];
        if cred.verdicts.allows(LIST_TOKENS) {
            return;
        }
        let id = uuid_of(&view["id"]);
        let creator = uuid_of(&view["creator"]["id"]);
        let own_token = cred.token.map(|t| self.world.tokens[t].id);
        let (who, kind, user) = (cred.label.clone(), cred.kind, cred.user);
        let shown = self
            .world
            .tokens
            .iter()
            .find(|t| Some(t.id) == id)
            .map_or_else(|| format!("{id:?}"), |t| t.label.clone());
        if kind == Kind::Service && id != own_token {
            self.violate(
                6,
                format!(
                    "{who}, a service token without ListAccessTokens, {how} {shown}: a service \
                     token is not a member and sees only itself"
                ),
            );
        } else if kind != Kind::Service && creator != Some(user) {
            self.violate(
                6,
                format!("{who}, without ListAccessTokens, {how} {shown}, made by someone else"),
            );
        }
    }

    /// Invariant 6: `GET /members/{id}/permissions` is for the member themself (a session or
    /// personal token of theirs) or `CanManageIAM`; a service token is not its creator.
    pub(super) async fn read_permissions(&mut self, d: &mut StdRng) -> Done {
        let Some(actor) = self.reader(d) else {
            return Done::default();
        };
        let cred = self.world.creds[actor].clone();
        let target = if cred.kind == Kind::Service && d.gen_bool(0.6) {
            Some(Id::Known(cred.user, self.world.member_label(cred.user)))
        } else {
            self.member_target(d)
        };
        let Some(target) = target else {
            return Done::default();
        };
        let reply = self
            .on_ids(
                actor,
                Method::GET,
                &[&target],
                |ids| format!("/api/v1/members/{}/permissions", ids[0]),
                None,
                format!("read the permissions of {}", target.label()),
            )
            .await;
        if reply.is_some_and(|r| r.ok()) && !cred.verdicts.allows(MANAGE_IAM) {
            let whose = target.label();
            if cred.kind == Kind::Service {
                self.violate(
                    6,
                    format!(
                        "{}, a service token without CanManageIAM, read the permissions of \
                         {whose}: a service token is not its creator",
                        cred.label
                    ),
                );
            } else if target.id() != cred.user {
                self.violate(
                    6,
                    format!(
                        "{} read the permissions of {whose} without CanManageIAM",
                        cred.label
                    ),
                );
            }
        }
        Done {
            actor: Some(actor),
            ..Done::default()
        }
    }
}
