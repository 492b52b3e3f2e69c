//! Who is calling: the `Principal` a request acts as, and the checks a handler asks of it.
//! Authorization is an explicit `principal.require(..)` call in each handler.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::refusal::Refusal;
use crate::db::audit::Actor;
use crate::db::identity::UserView;
use crate::policy::Layers;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum PrincipalKind {
    /// A member logged in to the web UI.
    #[serde(rename_all = "camelCase")]
    Session { session_id: Uuid, user_id: Uuid },
    /// A token acting for its owner, a member of the organization.
    #[serde(rename_all = "camelCase")]
    PersonalToken { token_id: Uuid, owner_id: Uuid },
    /// A token of the organization's own. It is no member: its creator is provenance only.
    #[serde(rename_all = "camelCase")]
    ServiceToken { token_id: Uuid, creator_id: Uuid },
}

/// An authenticated caller, bound to one organization, with the layers its permission is made of.
#[derive(Debug, Clone)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub organization_id: Uuid,
    /// Every layer must allow an action (SPEC §2.3).
    pub layers: Layers,
    /// The credential is a token's previous secret, still in the grace period of a rotation: it
    /// may be used and may revoke its token, but never obtains a new secret.
    pub previous_secret: bool,
}

impl Principal {
    /// The principal's kind as a metrics label.
    pub fn kind_label(&self) -> &'static str {
        match self.kind {
            PrincipalKind::Session { .. } => "session",
            PrincipalKind::PersonalToken { .. } => "personal_token",
            PrincipalKind::ServiceToken { .. } => "service_token",
        }
    }

    pub fn allows(&self, action: &str, rn: &str) -> bool {
        self.layers.allows(action, rn)
    }

    /// Refused (403 `Forbidden`) unless every layer allows `action` on `rn`.
    pub fn require(&self, action: &str, rn: &str) -> Result<(), Refusal> {
        if self.allows(action, rn) {
            Ok(())
        } else {
            Err(Refusal::Forbidden)
        }
    }

    /// The member acting: a session's user or a personal token's owner. A service token is not
    /// a member (SPEC §5.2), so "own" tokens and "own" permissions never apply to it.
    pub fn member_id(&self) -> Option<Uuid> {
        match self.kind {
            PrincipalKind::Session { user_id, .. } => Some(user_id),
            PrincipalKind::PersonalToken { owner_id, .. } => Some(owner_id),
            PrincipalKind::ServiceToken { .. } => None,
        }
    }

    /// The person answerable for what this principal does, recorded as the creator of tokens it
    /// makes: the member, or the user who created the service token.
    pub fn accountable_user_id(&self) -> Uuid {
        match self.kind {
            PrincipalKind::Session { user_id, .. } => user_id,
            PrincipalKind::PersonalToken { owner_id, .. } => owner_id,
            PrincipalKind::ServiceToken { creator_id, .. } => creator_id,
        }
    }

    /// The token calling, if a token is.
    pub fn token_id(&self) -> Option<Uuid> {
        match self.kind {
            PrincipalKind::Session { .. } => None,
            PrincipalKind::PersonalToken { token_id, .. }
            | PrincipalKind::ServiceToken { token_id, .. } => Some(token_id),
        }
    }

    pub fn actor(&self) -> Actor {
        match self.kind {
            PrincipalKind::Session { user_id, .. } => Actor::user(user_id),
            PrincipalKind::PersonalToken { token_id, .. } => Actor {
                kind: "personal-token",
                id: token_id,
            },
            PrincipalKind::ServiceToken { token_id, .. } => Actor {
                kind: "service-token",
                id: token_id,
            },
        }
    }
}

/// A logged-in web session, not bound to an organization (profile, organizations, logout).
#[derive(Debug, Clone)]
pub struct CurrentSession {
    pub session_id: Uuid,
    pub user: UserView,
}
