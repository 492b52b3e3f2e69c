//! The invariant test's model of one case: every credential seen, every token, member, policy
//! and group, kept in step with the service (responses, and the database after each step).

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

use super::probes::{check_body, Verdicts};
use crate::helpers::TestApp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Session,
    Personal,
    Service,
}

/// A credential some principal holds: a member's session, or a token's current or previous
/// secret.
#[derive(Debug, Clone)]
pub struct Cred {
    pub label: String,
    pub secret: String,
    /// The `Organization` header (sessions only: a token knows its organization).
    pub org: Option<Uuid>,
    /// The session's user, a personal token's owner, a service token's creator.
    pub user: Uuid,
    pub kind: Kind,
    /// Index into [`World::tokens`].
    pub token: Option<usize>,
    /// A rotation's previous secret, still in its grace period.
    pub previous: bool,
    /// Known dead (rotated away, deleted): never used again.
    pub dead: bool,
    /// Its answers over the probe set at the last refresh.
    pub verdicts: Verdicts,
}

impl Cred {
    pub fn who(&self) -> Who {
        Who {
            secret: self.secret.clone(),
            org: self.org,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Token {
    pub id: Uuid,
    /// "T3 (service by dev, [IAM])".
    pub label: String,
    pub kind: Kind,
    pub creator: Uuid,
    pub active: bool,
    pub deleted: bool,
    /// What it allowed the last time it was active: what its secret is worth.
    pub power: Verdicts,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub user: Uuid,
    pub label: String,
    pub email: String,
    pub password: String,
    /// Index into [`World::creds`] of the member's one session.
    pub session: Option<usize>,
    pub is_member: bool,
}

#[derive(Debug, Clone)]
pub struct Named {
    pub id: Uuid,
    pub label: String,
    pub builtin: bool,
}

/// Ids that belong to other organizations: the second organization's, and the bootstrap
/// organization's (whose Owner is also the Owner of every case).
#[derive(Debug, Clone)]
pub struct Foreign {
    pub tokens: Vec<Uuid>,
    pub members: Vec<Uuid>,
    pub policies: Vec<Uuid>,
    pub groups: Vec<Uuid>,
}

/// How to present a credential.
#[derive(Debug, Clone)]
pub struct Who {
    pub secret: String,
    pub org: Option<Uuid>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    pub fn errors(&self) -> String {
        self.body["errors"].to_string()
    }

    /// "200", "403 [\"Forbidden\"]": for the log.
    pub fn summary(&self) -> String {
        if self.ok() {
            self.status.to_string()
        } else {
            format!("{} {}", self.status, self.errors())
        }
    }
}

/// One request, whatever happens: a dropped connection is status 0, not a panic, so the
/// invariant test can report it with the sequence that led there.
pub async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    who: Option<&Who>,
    body: Option<&Value>,
) -> Reply {
    let mut request = app.client.request(method, format!("{}{path}", app.base));
    if let Some(who) = who {
        request = request.bearer_auth(&who.secret);
        if let Some(org) = who.org {
            request = request.header("Organization", org.to_string());
        }
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            Reply { status, body }
        }
        Err(error) => Reply {
            status: 0,
            body: Value::String(error.to_string()),
        },
    }
}

fn reply_401() -> Reply {
    Reply {
        status: 401,
        body: serde_json::json!({ "errors": ["Unauthorized"] }),
    }
}

/// The answer of `/auth/check` over the probe set: `None` when the credential is unknown (401).
pub async fn verdicts(app: &TestApp, who: &Who) -> Result<Option<Verdicts>, Reply> {
    let reply = send(
        app,
        Method::POST,
        "/api/v1/auth/check",
        Some(who),
        Some(&check_body()),
    )
    .await;
    match reply.status {
        200 => reply.data()["results"]
            .as_array()
            .and_then(|r| Verdicts::from_results(r))
            .map(Some)
            .ok_or(reply),
        // Inactive, orphaned, not a member: denied everything.
        403 => Ok(Some(Verdicts::NONE)),
        401 => Ok(None),
        _ => Err(reply),
    }
}

pub struct World {
    pub org: Uuid,
    pub creds: Vec<Cred>,
    pub tokens: Vec<Token>,
    pub members: Vec<Member>,
    pub policies: Vec<Named>,
    pub groups: Vec<Named>,
    pub foreign: Foreign,
    /// Makes names unique within the case.
    pub counter: u32,
}

impl World {
    pub fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    pub fn alive(&self) -> Vec<usize> {
        (0..self.creds.len())
            .filter(|&i| !self.creds[i].dead)
            .collect()
    }

    pub fn live_tokens(&self) -> Vec<usize> {
        (0..self.tokens.len())
            .filter(|&i| !self.tokens[i].deleted)
            .collect()
    }

    pub fn member(&self, user: Uuid) -> Option<&Member> {
        self.members.iter().find(|m| m.user == user)
    }

    pub fn member_label(&self, user: Uuid) -> String {
        self.member(user)
            .map_or_else(|| user.to_string(), |m| m.label.clone())
    }

    /// A new credential for a token whose secret was just received.
    pub fn add_token_cred(&mut self, token: usize, secret: String) -> usize {
        let t = &self.tokens[token];
        let kind = t.kind;
        let user = t.creator;
        let label = t.label.clone();
        self.creds.push(Cred {
            label,
            secret,
            org: None,
            user,
            kind,
            token: Some(token),
            previous: false,
            dead: false,
            verdicts: Verdicts::NONE,
        });
        self.creds.len() - 1
    }

    /// After a rotation: older previous secrets die, the current one becomes previous (with a
    /// grace period) or dies, and the new one is current.
    pub fn rotated(&mut self, token: usize, grace: bool, secret: String) -> usize {
        for cred in self.creds.iter_mut().filter(|c| c.token == Some(token)) {
            if cred.previous || !grace {
                cred.dead = true;
            } else if !cred.dead {
                cred.previous = true;
                cred.label = format!("{} previous secret", cred.label);
            }
        }
        self.add_token_cred(token, secret)
    }

    /// Brings memberships and token statuses in line with the database.
    pub async fn sync(&mut self, app: &TestApp) {
        let members: BTreeSet<Uuid> =
            sqlx::query_scalar("select user_id from memberships where organization_id = $1")
                .bind(self.org)
                .fetch_all(&app.db)
                .await
                .expect("memberships")
                .into_iter()
                .collect();
        for member in &mut self.members {
            member.is_member = members.contains(&member.user);
        }
        let rows: Vec<(Uuid, String)> =
            sqlx::query_as("select id, status from access_tokens where organization_id = $1")
                .bind(self.org)
                .fetch_all(&app.db)
                .await
                .expect("tokens");
        let status: BTreeMap<Uuid, bool> = rows
            .into_iter()
            .map(|(id, status)| (id, status == "Active"))
            .collect();
        for (i, token) in self.tokens.iter_mut().enumerate() {
            match status.get(&token.id) {
                Some(active) => token.active = *active,
                None => {
                    token.deleted = true;
                    for cred in self.creds.iter_mut().filter(|c| c.token == Some(i)) {
                        cred.dead = true;
                    }
                }
            }
        }
    }

    /// Asks every live credential for its verdicts, all at once. Returns the replies that were
    /// neither an answer nor a refusal (a credential the model thought alive answering 401
    /// included), for the caller to judge and log.
    pub async fn refresh(&mut self, app: &TestApp) -> Vec<(String, Reply)> {
        let alive = self.alive();
        let asks = alive.iter().map(|&i| {
            let who = self.creds[i].who();
            async move { verdicts(app, &who).await }
        });
        let answers = futures::future::join_all(asks).await;
        let mut odd = Vec::new();
        for (&i, answer) in alive.iter().zip(answers) {
            match answer {
                Ok(Some(v)) => {
                    self.creds[i].verdicts = v;
                    if let Some(t) = self.creds[i].token {
                        if self.tokens[t].active && !self.creds[i].previous {
                            self.tokens[t].power = v;
                        }
                    }
                }
                Ok(None) => {
                    self.creds[i].dead = true;
                    self.creds[i].verdicts = Verdicts::NONE;
                    odd.push((self.creds[i].label.clone(), reply_401()));
                }
                Err(reply) => odd.push((self.creds[i].label.clone(), reply)),
            }
        }
        odd
    }
}

/// Who holds which policy, directly and through groups, and what each custom policy says: what
/// an IAM operation may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamSnapshot {
    pub memberships: BTreeSet<Uuid>,
    /// (user, policy)
    pub member_policies: BTreeSet<(Uuid, Uuid)>,
    /// (group, policy)
    pub group_policies: BTreeSet<(Uuid, Uuid)>,
    /// (group, user)
    pub group_members: BTreeSet<(Uuid, Uuid)>,
    /// policy → statements (custom policies of the organization)
    pub statements: BTreeMap<Uuid, String>,
}

impl IamSnapshot {
    pub async fn take(app: &TestApp, org: Uuid) -> IamSnapshot {
        let pairs = |sql: &'static str| {
            let db = app.db.clone();
            async move {
                sqlx::query_as::<_, (Uuid, Uuid)>(sql)
                    .bind(org)
                    .fetch_all(&db)
                    .await
                    .expect("snapshot")
                    .into_iter()
                    .collect::<BTreeSet<_>>()
            }
        };
        let memberships =
            sqlx::query_scalar("select user_id from memberships where organization_id = $1")
                .bind(org)
                .fetch_all(&app.db)
                .await
                .expect("memberships")
                .into_iter()
                .collect();
        let statements = sqlx::query_as::<_, (Uuid, String)>(
            "select id, statements::text from policies where organization_id = $1",
        )
        .bind(org)
        .fetch_all(&app.db)
        .await
        .expect("policies")
        .into_iter()
        .collect();
        IamSnapshot {
            memberships,
            member_policies: pairs(
                "select user_id, policy_id from member_policies where organization_id = $1",
            )
            .await,
            group_policies: pairs(
                "select gp.group_id, gp.policy_id from group_policies gp
                 join groups g on g.id = gp.group_id where g.organization_id = $1",
            )
            .await,
            group_members: pairs(
                "select group_id, user_id from group_members where organization_id = $1",
            )
            .await,
            statements,
        }
    }

    /// Members holding `policy`, directly or through a group.
    pub fn holders(&self, policy: Uuid) -> BTreeSet<Uuid> {
        let groups: BTreeSet<Uuid> = self
            .group_policies
            .iter()
            .filter(|(_, p)| *p == policy)
            .map(|(g, _)| *g)
            .collect();
        self.member_policies
            .iter()
            .filter(|(_, p)| *p == policy)
            .map(|(u, _)| *u)
            .chain(
                self.group_members
                    .iter()
                    .filter(|(g, _)| groups.contains(g))
                    .map(|(_, u)| *u),
            )
            .collect()
    }
}
