//! The race of issue 11 item 9: a member's deactivated personal tokens are activated while the
//! member is being removed, all requests at once. Invariant 3 is checked after each round.

use rand::rngs::StdRng;
use reqwest::Method;
use serde_json::json;

use super::{choose, Done};
use crate::helpers::PASSWORD;
use crate::invariants::case::{uuid_of, Case, Received};
use crate::invariants::probes::{Verdicts, MANAGE_IAM, MANAGE_PERSONAL};
use crate::invariants::world::{send, IamSnapshot, Kind, Token};

impl Case<'_> {
    /// A member who may manage their own personal tokens gets three of them, deactivated;
    /// then, all at once, an IAM principal removes the member while the member and an
    /// administrator activate the tokens. The member is added back between rounds.
    pub(super) async fn removal_race(&mut self, d: &mut StdRng) -> Done {
        let owner_user = self.world.members[0].user;
        let victims: Vec<usize> = (0..self.world.members.len())
            .filter(|&m| {
                let member = &self.world.members[m];
                member.is_member
                    && member.user != owner_user
                    && member.session.is_some_and(|s| {
                        let s = &self.world.creds[s];
                        !s.dead && s.verdicts.allows(MANAGE_PERSONAL)
                    })
            })
            .collect();
        let Some(victim) = choose(d, &victims) else {
            return Done::default();
        };
        let member = self.world.members[victim].clone();
        let Some(session) = member.session else {
            return Done::default();
        };
        let alive = self.world.alive();
        let iam: Vec<usize> = alive
            .iter()
            .copied()
            .filter(|&c| {
                let cred = &self.world.creds[c];
                cred.user != member.user && cred.verdicts.allows(MANAGE_IAM)
            })
            .collect();
        let Some(remover) = choose(d, &iam) else {
            return Done::default();
        };
        let helpers: Vec<usize> = iam
            .iter()
            .copied()
            .filter(|&c| self.world.creds[c].verdicts.allows(MANAGE_PERSONAL))
            .collect();
        let helper = choose(d, &helpers).unwrap_or(session);
        let (remover_label, helper_label) = (self.label(remover), self.label(helper));
        self.note(format!(
            "race: {remover_label} removes {} while {} and {helper_label} activate their \
             deactivated personal tokens",
            member.label, member.label
        ));
        let known = self.violations.len();
        for round in 0..3 {
            let mut mine: Vec<usize> = self
                .world
                .live_tokens()
                .into_iter()
                .filter(|&t| {
                    let token = &self.world.tokens[t];
                    token.kind == Kind::Personal && token.creator == member.user
                })
                .collect();
            while mine.len() < 3 {
                let before = self.world.tokens.len();
                self.create_personal_for_race(session).await;
                if self.world.tokens.len() == before {
                    return Done {
                        actor: Some(remover),
                        ..Done::default()
                    };
                }
                mine.push(before);
            }
            mine.truncate(3);
            for &t in &mine {
                if self.world.tokens[t].active {
                    let id = self.world.tokens[t].id;
                    self.call(
                        Some(session),
                        Method::POST,
                        &format!("/api/v1/access-tokens/{id}/deactivate"),
                        None,
                    )
                    .await;
                }
            }
            let snapshot = IamSnapshot::take(self.app, self.world.org).await;
            let policies = snapshot
                .member_policies
                .iter()
                .filter(|(u, _)| *u == member.user)
                .map(|(_, p)| *p)
                .collect::<Vec<_>>();
            let groups = snapshot
                .group_members
                .iter()
                .filter(|(_, u)| *u == member.user)
                .map(|(g, _)| *g)
                .collect::<Vec<_>>();
            let removal_who = self.world.creds[remover].who();
            let removal_path = format!("/api/v1/members/{}", member.user);
            let removal = send(
                self.app,
                Method::DELETE,
                &removal_path,
                Some(&removal_who),
                None,
            );
            let activations = mine.iter().enumerate().map(|(k, &t)| {
                let by = if k % 2 == 0 { session } else { helper };
                let who = self.world.creds[by].who();
                let path = format!("/api/v1/access-tokens/{}/activate", self.world.tokens[t].id);
                let app = self.app;
                async move {
                    (
                        path.clone(),
                        send(app, Method::POST, &path, Some(&who), None).await,
                    )
                }
            });
            let (removed, activated) =
                tokio::join!(removal, futures::future::join_all(activations));
            self.no_server_error(&format!("DELETE {removal_path}"), &removed);
            let mut outcome = vec![format!("removal {}", removed.summary())];
            for (path, reply) in &activated {
                self.no_server_error(&format!("POST {path}"), reply);
                outcome.push(format!("activation {}", reply.summary()));
            }
            self.note(format!("race round {round}: {}", outcome.join(", ")));
            self.world.sync(self.app).await;
            self.no_active_orphans().await;
            if self.violations.len() > known || self.world.members[victim].is_member {
                break;
            }
            // Back in, with the policies and the groups they had, for another round: the
            // tokens the next round makes must be measured against the same member.
            let back = self
                .call(
                    Some(0),
                    Method::POST,
                    "/api/v1/members",
                    Some(&json!({ "email": member.email, "name": member.label,
                                  "password": PASSWORD, "policyIds": policies })),
                )
                .await;
            for group in &groups {
                self.call(
                    Some(0),
                    Method::PUT,
                    &format!("/api/v1/groups/{group}/members/{}", member.user),
                    None,
                )
                .await;
            }
            self.world.sync(self.app).await;
            self.note(format!("{} added back → {}", member.label, back.summary()));
            if !self.world.members[victim].is_member {
                break;
            }
        }
        Done {
            actor: Some(remover),
            ..Done::default()
        }
    }

    async fn create_personal_for_race(&mut self, session: usize) {
        let name = self.world.fresh("race");
        let reply = self
            .call(
                Some(session),
                Method::POST,
                "/api/v1/access-tokens",
                Some(&json!({ "name": name, "type": "Personal" })),
            )
            .await;
        let (Some(id), Some(secret), true) = (
            uuid_of(&reply.data()["id"]),
            reply.data()["token"].as_str(),
            reply.ok(),
        ) else {
            return;
        };
        let creator = self.world.creds[session].user;
        let n = self.world.tokens.len();
        let label = format!(
            "T{n} (personal of {}, unscoped)",
            self.world.member_label(creator)
        );
        self.world.tokens.push(Token {
            id,
            label,
            kind: Kind::Personal,
            creator,
            active: true,
            deleted: false,
            power: Verdicts::NONE,
        });
        let cred = self.world.add_token_cred(n, secret.to_owned());
        self.received.push(Received {
            cred,
            receiver: session,
        });
    }
}
