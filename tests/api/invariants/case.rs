//! One case of the invariant test: a fresh organization, its model, the log of what was done
//! and the violations found. Every request of a case goes through [`Case::call`], which holds
//! the service to invariant 4 (no 5xx, no dropped connection).

use std::fmt;

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::probes::{grant, statements, Verdicts};
use super::world::{send, Cred, Foreign, Kind, Member, Named, Reply, World};
use crate::helpers::{TestApp, PASSWORD};
use tokengate::policy::{ADMINISTRATOR_POLICY_ID, DEVELOPER_POLICY_ID, OWNER_POLICY_ID};

#[derive(Debug, Clone)]
pub struct Violation {
    pub invariant: u8,
    pub step: usize,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {} at step {}: {}",
            self.invariant, self.step, self.message
        )
    }
}

/// A secret handed out during the current step, and to whom.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// The new credential, in [`World::creds`].
    pub cred: usize,
    /// The credential that asked for it.
    pub receiver: usize,
}

/// What the whole test shares between cases: the bootstrap Owner (who founds every case's
/// organization) and the ids of other organizations.
pub struct Lobby {
    pub owner: Cred,
    pub owner_email: String,
    pub owner_password: String,
    pub foreign: Foreign,
}

pub struct Case<'a> {
    pub app: &'a TestApp,
    pub world: World,
    pub log: Vec<String>,
    pub violations: Vec<Violation>,
    pub received: Vec<Received>,
    pub step: usize,
}

impl<'a> Case<'a> {
    /// A fresh organization founded by the lobby's Owner, with an Administrator, a Developer, a
    /// member whose only power is `CanManageIAM` and one with the token actions and some flag
    /// actions, each logged in; custom policies to grant and two groups.
    pub async fn setup(app: &'a TestApp, lobby: &Lobby, tag: &str) -> Case<'a> {
        let founded = send(
            app,
            Method::POST,
            "/api/v1/organizations",
            Some(&lobby.owner.who()),
            Some(&json!({ "name": format!("Case {tag}") })),
        )
        .await;
        assert_eq!(founded.status, 201, "{:#}", founded.body);
        let org: Uuid = founded.data()["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("organization id");
        let owner = Cred {
            org: Some(org),
            label: "owner".into(),
            ..lobby.owner.clone()
        };
        let builtin = |id, label: &str| Named {
            id,
            label: label.into(),
            builtin: true,
        };
        let mut case = Case {
            app,
            world: World {
                org,
                creds: vec![owner.clone()],
                tokens: Vec::new(),
                members: vec![Member {
                    user: owner.user,
                    label: "owner".into(),
                    email: lobby.owner_email.clone(),
                    password: lobby.owner_password.clone(),
                    session: Some(0),
                    is_member: true,
                }],
                policies: vec![
                    builtin(OWNER_POLICY_ID, "Owner"),
                    builtin(ADMINISTRATOR_POLICY_ID, "Administrator"),
                    builtin(DEVELOPER_POLICY_ID, "Developer"),
                ],
                groups: Vec::new(),
                foreign: lobby.foreign.clone(),
                counter: 0,
            },
            log: Vec::new(),
            violations: Vec::new(),
            received: Vec::new(),
            step: 0,
        };
        for (name, grants) in [
            ("IAM only", &["IAM"][..]),
            ("Tokens and flags", &["Tokens", "Flags"]),
            ("Flags", &["Flags"]),
            ("Workspace", &["Workspace", "Org"]),
            ("Everything", &["Everything"]),
            ("Deny all", &["Nothing"]),
            ("No prod flags", &["NoProdFlags"]),
        ] {
            let grants: Vec<_> = grants.iter().map(|g| grant(g)).collect();
            let (list, names) = statements(&grants);
            let reply = case
                .setup_call(
                    Method::POST,
                    "/api/v1/policies",
                    json!({ "name": name, "statements": list }),
                )
                .await;
            case.world.policies.push(Named {
                id: id_of(reply.data()),
                label: format!("{name} {names}"),
                builtin: false,
            });
        }
        let flags = case.policy_named("Flags");
        for name in ["Flag team", "Empty team"] {
            let reply = case
                .setup_call(Method::POST, "/api/v1/groups", json!({ "name": name }))
                .await;
            case.world.groups.push(Named {
                id: id_of(reply.data()),
                label: name.into(),
                builtin: false,
            });
        }
        let team = case.world.groups[0].id;
        case.setup_call(
            Method::PUT,
            &format!("/api/v1/groups/{team}/policies/{flags}"),
            Value::Null,
        )
        .await;
        let iam_only = case.policy_named("IAM only");
        let tokens_and_flags = case.policy_named("Tokens and flags");
        for (label, policy) in [
            ("admin", ADMINISTRATOR_POLICY_ID),
            ("dev", DEVELOPER_POLICY_ID),
            ("iam-only", iam_only),
            ("tokens+flags", tokens_and_flags),
        ] {
            let email = format!("{label}-{tag}@example.test").replace('+', "-");
            case.setup_call(
                Method::POST,
                "/api/v1/members",
                json!({ "email": email, "name": label, "password": PASSWORD, "policyIds": [policy] }),
            )
            .await;
            case.world.members.push(Member {
                // Known once they log in, below.
                user: Uuid::nil(),
                label: label.into(),
                email,
                password: PASSWORD.into(),
                session: None,
                is_member: true,
            });
        }
        // One at a time: the test must not be what fills the password-hashing queue.
        for member in 1..case.world.members.len() {
            let (email, password) = {
                let m = &case.world.members[member];
                (m.email.clone(), m.password.clone())
            };
            let (secret, user) = login(app, email, password).await.expect("login");
            case.world.members[member].user = user;
            case.world.creds.push(Cred {
                label: case.world.members[member].label.clone(),
                secret,
                org: Some(org),
                user,
                kind: Kind::Session,
                token: None,
                previous: false,
                dead: false,
                verdicts: Verdicts::NONE,
            });
            case.world.members[member].session = Some(case.world.creds.len() - 1);
        }
        let odd = case.world.refresh(app).await;
        assert!(odd.is_empty(), "setup: {odd:?}");
        case
    }

    /// A request by the case's Owner that must succeed (setup only).
    async fn setup_call(&mut self, method: Method, path: &str, body: Value) -> Reply {
        let owner = self.world.creds[0].who();
        let body = (!body.is_null()).then_some(body);
        let reply = send(self.app, method, path, Some(&owner), body.as_ref()).await;
        assert!(
            reply.ok(),
            "setup {path}: {} {:#}",
            reply.status,
            reply.body
        );
        reply
    }

    fn policy_named(&self, name: &str) -> Uuid {
        self.world
            .policies
            .iter()
            .find(|p| p.label.starts_with(&format!("{name} [")))
            .map(|p| p.id)
            .expect("policy")
    }

    /// Records a violation (once: a broken state persists from step to step).
    pub fn violate(&mut self, invariant: u8, message: String) {
        let seen = self
            .violations
            .iter()
            .any(|v| v.invariant == invariant && v.message == message);
        if seen {
            return;
        }
        self.log
            .push(format!("      !! invariant {invariant}: {message}"));
        self.violations.push(Violation {
            invariant,
            step: self.step,
            message,
        });
    }

    pub fn note(&mut self, line: String) {
        self.log.push(format!("#{:<3} {line}", self.step));
    }

    pub fn label(&self, cred: usize) -> String {
        self.world.creds[cred].label.clone()
    }

    /// Invariant 4 on a reply: never a 5xx, never a dropped connection.
    pub fn no_server_error(&mut self, what: &str, reply: &Reply) {
        if reply.status == 0 || reply.status >= 500 {
            self.violate(
                4,
                format!("{what} answered {}: {}", reply.status, reply.body),
            );
        }
    }

    /// A request as `cred` (or anonymous), held to invariant 4.
    pub async fn call(
        &mut self,
        cred: Option<usize>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let who = cred.map(|c| self.world.creds[c].who());
        let what = format!("{method} {path}");
        let reply = send(self.app, method, path, who.as_ref(), body).await;
        self.no_server_error(&what, &reply);
        reply
    }

    /// Invariant 5: a request naming another organization's id must answer exactly as the same
    /// request naming an id that exists nowhere (`twin_path`), and never succeed.
    pub async fn foreign_twin(
        &mut self,
        actor: usize,
        method: Method,
        (path, twin_path): (String, String),
        body: Option<&Value>,
        what: &str,
    ) -> Reply {
        let real = self.call(Some(actor), method.clone(), &path, body).await;
        let twin = self.call(Some(actor), method, &twin_path, body).await;
        let who = self.label(actor);
        self.note(format!("{who}: {what} → {}", real.summary()));
        if real.ok() || real.status != twin.status || real.errors() != twin.errors() {
            self.violate(
                5,
                format!(
                    "{who}: {what} answered {} where an id that exists nowhere answers {}",
                    real.summary(),
                    twin.summary()
                ),
            );
        }
        real
    }
}

/// A web session for this email and password, and the user it belongs to.
pub async fn login(
    app: &TestApp,
    email: String,
    password: String,
) -> Result<(String, Uuid), Reply> {
    let reply = send(
        app,
        Method::POST,
        "/api/v1/identity/login",
        None,
        Some(&json!({ "email": email, "password": password })),
    )
    .await;
    let token = reply.data()["token"].as_str().map(str::to_owned);
    match (token, uuid_of(&reply.data()["user"]["id"])) {
        (Some(token), Some(user)) if reply.status == 200 => Ok((token, user)),
        _ => Err(reply),
    }
}

pub fn id_of(data: &Value) -> Uuid {
    uuid_of(&data["id"]).expect("id")
}

pub fn uuid_of(value: &Value) -> Option<Uuid> {
    value.as_str().and_then(|s| s.parse().ok())
}
