//! IAM writes (policies on members and groups, policy statements, group membership, adding
//! and removing members) and the password change. Invariant 7 is checked after each step.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use reqwest::Method;
use serde_json::json;

use super::{choose, Done, Id};
use crate::helpers::PASSWORD;
use crate::invariants::case::{login, uuid_of, Case};
use crate::invariants::probes::Verdicts;
use crate::invariants::world::{Cred, Kind, Member, Named, Reply};

/// "attach X to Y", "detach X from Y".
fn preposition(verb: &str) -> &'static str {
    if verb == "attach" || verb == "add" {
        "to"
    } else {
        "from"
    }
}

impl Case<'_> {
    fn iam_done(actor: usize, reply: Option<Reply>) -> Done {
        Done {
            actor: Some(actor),
            iam_accepted: Some(reply.is_some_and(|r| r.ok())),
        }
    }

    pub(super) async fn member_policy(&mut self, d: &mut StdRng, method: Method) -> Done {
        let Some(actor) = self.iam_actor(d) else {
            return Done::default();
        };
        let (Some(member), Some(policy)) = (self.member_target(d), self.policy_target(d)) else {
            return Done::default();
        };
        let verb = if method == Method::PUT {
            "attach"
        } else {
            "detach"
        };
        let reply = self
            .on_ids(
                actor,
                method,
                &[&member, &policy],
                |ids| format!("/api/v1/members/{}/policies/{}", ids[0], ids[1]),
                None,
                format!(
                    "{verb} {} {} {}",
                    policy.label(),
                    preposition(verb),
                    member.label()
                ),
            )
            .await;
        Self::iam_done(actor, reply)
    }

    pub(super) async fn create_policy(&mut self, d: &mut StdRng) -> Done {
        let Some(actor) = self.iam_actor(d) else {
            return Done::default();
        };
        let (list, names) = self.some_statements(d);
        let name = self.world.fresh("policy-");
        let reply = self
            .call(
                Some(actor),
                Method::POST,
                "/api/v1/policies",
                Some(&json!({ "name": name, "statements": list })),
            )
            .await;
        let who = self.label(actor);
        self.note(format!(
            "{who}: create policy {name} {names} → {}",
            reply.summary()
        ));
        if let (true, Some(id)) = (reply.ok(), uuid_of(&reply.data()["id"])) {
            self.world.policies.push(Named {
                id,
                label: format!("{name} {names}"),
                builtin: false,
            });
        }
        Self::iam_done(actor, Some(reply))
    }

    pub(super) async fn edit_policy(&mut self, d: &mut StdRng) -> Done {
        let Some(actor) = self.iam_actor(d) else {
            return Done::default();
        };
        // Mostly a custom policy (built-ins are read-only, which is quickly learnt).
        let custom: Vec<usize> = (0..self.world.policies.len())
            .filter(|&p| !self.world.policies[p].builtin)
            .collect();
        let target = match choose(d, &custom) {
            Some(p) if d.gen_bool(0.85) => {
                let p = &self.world.policies[p];
                Some(Id::Known(p.id, format!("policy {}", p.label)))
            }
            _ => self.policy_target(d),
        };
        let Some(target) = target else {
            return Done::default();
        };
        let (list, names) = self.some_statements(d);
        let reply = self
            .on_ids(
                actor,
                Method::PUT,
                &[&target],
                |ids| format!("/api/v1/policies/{}/statements", ids[0]),
                Some(&list),
                format!("set the statements of {} to {names}", target.label()),
            )
            .await;
        if let (Some(r), Id::Known(id, _)) = (&reply, &target) {
            if r.ok() {
                if let Some(p) = self.world.policies.iter_mut().find(|p| p.id == *id) {
                    let name = p
                        .label
                        .rfind(" [")
                        .map_or(p.label.as_str(), |at| &p.label[..at]);
                    p.label = format!("{name} {names}");
                }
            }
        }
        Self::iam_done(actor, reply)
    }

    pub(super) async fn delete_policy(&mut self, d: &mut StdRng) -> Done {
        let Some(actor) = self.iam_actor(d) else {
            return Done::default();
        };
        let Some(target) = self.policy_target(d) else {
            return Done::default();
        };
        let reply = self
            .on_ids(
                actor,
                Method::DELETE,
                &[&target],
                |ids| format!("/api/v1/policies/{}", ids[0]),
                None,
                format!("delete {}", target.label()),
            )
            .await;
        Self::iam_done(actor, reply)
    }

    pub(super) async fn group_member(&mut self, d: &mut StdRng, method: Method) -> Done {
        let Some(actor) = self.iam_actor(d) else {
            return Done::default();
        };
        let (Some(group), Some(member)) = (self.group_target(d), self.member_target(d)) else {
            return Done::default();
        };
        let verb = if method == Method::PUT {
            "add"
        } else {
            "remove"
        };
        let reply = self
            .on_ids(
                actor,
                method,
                &[&group, &member],
                |ids| format!("/api/v1/groups/{}/members/{}", ids[0], ids[1]),
                None,
                format!(
                    "{verb} {} {} {}",
                    member.label(),
                    preposition(verb),
                    group.label()
                ),
            )
            .await;
        Self::iam_done(actor, reply)
    }

    pub(super) async fn group_policy(&mut self, d: &mut StdRng, method: Method) -> Done {
        let Some(actor) = self.iam_actor(d) else {
            return Done::default();
        };
        let (Some(group), Some(policy)) = (self.group_target(d), self.policy_target(d)) else {
            return Done::default();
        };
        let verb = if method == Method::PUT {
            "attach"
        } else {
            "detach"
        };
        let reply = self
            .on_ids(
                actor,
                method,
                &[&group, &policy],
                |ids| format!("/api/v1/groups/{}/policies/{}", ids[0], ids[1]),
                None,
                format!(
                    "{verb} {} {} {}",
                    policy.label(),
                    preposition(verb),
                    group.label()
                ),
            )
            .await;
        Self::iam_done(actor, reply)
    }

    pub(super) async fn remove_member(&mut self, d: &mut StdRng) -> Done {
        let Some(actor) = self.iam_actor(d) else {
            return Done::default();
        };
        let Some(member) = self.member_target(d) else {
            return Done::default();
        };
        let reply = self
            .on_ids(
                actor,
                Method::DELETE,
                &[&member],
                |ids| format!("/api/v1/members/{}", ids[0]),
                None,
                format!("remove {}", member.label()),
            )
            .await;
        Self::iam_done(actor, reply)
    }

    /// Adds a brand-new person (who then logs in) or brings back a removed member, with
    /// policies of the actor's choosing (the Owner policy included) or the default.
    pub(super) async fn add_member(&mut self, d: &mut StdRng) -> Done {
        let Some(actor) = self.iam_actor(d) else {
            return Done::default();
        };
        let removed: Vec<usize> = (0..self.world.members.len())
            .filter(|&m| !self.world.members[m].is_member)
            .collect();
        let back = choose(d, &removed).filter(|_| d.gen_bool(0.5));
        let (email, name) = match back {
            Some(m) => (
                self.world.members[m].email.clone(),
                self.world.members[m].label.clone(),
            ),
            None => {
                let name = self.world.fresh("newcomer");
                let email = format!("{name}-{}@example.test", self.world.org.simple());
                (email, name)
            }
        };
        let mut body = json!({ "email": email, "name": name, "password": PASSWORD });
        let mut granted = "the default policy".to_owned();
        if d.gen_bool(0.75) {
            let n = d.gen_range(1..=2);
            let picked: Vec<&Named> = (0..n)
                .filter_map(|_| self.world.policies.choose(d))
                .collect();
            body["policyIds"] = json!(picked.iter().map(|p| p.id).collect::<Vec<_>>());
            granted = picked
                .iter()
                .map(|p| p.label.as_str())
                .collect::<Vec<_>>()
                .join(" + ");
        }
        let reply = self
            .call(Some(actor), Method::POST, "/api/v1/members", Some(&body))
            .await;
        let who = self.label(actor);
        self.note(format!(
            "{who}: add member {name} with {granted} → {}",
            reply.summary()
        ));
        if back.is_none() && reply.ok() {
            self.welcome(&email, &name).await;
        }
        Self::iam_done(actor, Some(reply))
    }

    /// A person just added: into the model, logged in (they count as a member only if the
    /// database says so).
    async fn welcome(&mut self, email: &str, name: &str) {
        let Ok((secret, user)) = login(self.app, email.to_owned(), PASSWORD.to_owned()).await
        else {
            return;
        };
        self.world.creds.push(Cred {
            label: name.to_owned(),
            secret,
            org: Some(self.world.org),
            user,
            kind: Kind::Session,
            token: None,
            previous: false,
            dead: false,
            verdicts: Verdicts::NONE,
        });
        self.world.members.push(Member {
            user,
            label: name.to_owned(),
            email: email.to_owned(),
            password: PASSWORD.to_owned(),
            session: Some(self.world.creds.len() - 1),
            is_member: false,
        });
    }

    pub(super) async fn change_password(&mut self, d: &mut StdRng) -> Done {
        let sessions: Vec<usize> = self
            .world
            .alive()
            .into_iter()
            .filter(|&c| self.world.creds[c].kind == Kind::Session)
            .collect();
        let actor = match choose(d, &sessions) {
            Some(c) if d.gen_bool(0.8) => Some(c),
            _ => self.actor(d, None),
        };
        let Some(actor) = actor else {
            return Done::default();
        };
        let user = self.world.creds[actor].user;
        // Always the right current password: wrong ones count against the login limits, which
        // a long run would exhaust.
        let current = self
            .world
            .member(user)
            .map_or_else(|| PASSWORD.to_owned(), |m| m.password.clone());
        let new = format!("{PASSWORD} {}", self.world.fresh(""));
        let reply = self
            .call(
                Some(actor),
                Method::PUT,
                "/api/v1/user/password",
                Some(&json!({ "currentPassword": current, "newPassword": new })),
            )
            .await;
        let who = self.label(actor);
        self.note(format!("{who}: change password → {}", reply.summary()));
        if reply.ok() {
            if let Some(m) = self.world.members.iter_mut().find(|m| m.user == user) {
                m.password = new;
            }
        }
        Done {
            actor: Some(actor),
            ..Done::default()
        }
    }
}
