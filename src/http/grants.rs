//! Nobody hands out more than they hold (SPEC §2.3, §9). Token creation and rotation are bounded
//! by the caller's layers; so is every IAM change that gives someone a power: creating or editing
//! a policy, attaching one, adding a member (with policies, or to a group). Lifting a deny gives
//! what it denied, so detaching, removing from a group and deleting are bounded the same way by
//! the denies they lift. Only Owners change what an Owner may do, and the organization always
//! keeps someone who may do everything.

use std::sync::Arc;

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::error::{ApiError, ApiResult};
use crate::auth::Principal;
use crate::db::{iam, identity, tokens};
use crate::policy::{builtin_policies, Effect, Exceeds, Layers, Statement, OWNER_POLICY_ID};

/// The caller's layers as they stand now, read inside `tx`, which must hold the organization's
/// IAM lock (shared for token writes, exclusive for IAM writes): a permission being taken away
/// right now is either gone here, or its removal waits for this transaction. A member must still
/// be a member, and their live permissions are read again; a calling token must still be Active
/// and unexpired.
pub async fn layers_now(
    tx: &mut Transaction<'_, Postgres>,
    principal: &Principal,
) -> ApiResult<Layers> {
    let org = principal.organization_id;
    let mut layers = principal.layers.clone();
    if let Some(member) = principal.member_id() {
        if !identity::is_member(&mut **tx, org, member).await? {
            return Err(ApiError::Forbidden);
        }
        layers.live = Some(Arc::new(
            iam::live_statements(&mut **tx, org, member).await?,
        ));
    }
    if let Some(token_id) = principal.token_id() {
        if !tokens::is_usable(&mut **tx, org, token_id).await? {
            return Err(ApiError::Forbidden);
        }
    }
    Ok(layers)
}

/// Whoever makes an IAM change, with what they hold at that moment.
pub struct Granter {
    layers: Layers,
}

impl Granter {
    /// Call with the organization's IAM lock held exclusively.
    pub async fn of(tx: &mut Transaction<'_, Postgres>, principal: &Principal) -> ApiResult<Self> {
        Ok(Granter {
            layers: layers_now(tx, principal).await?,
        })
    }

    /// Giving someone these statements: the granter must hold every power they allow.
    pub fn may_give(&self, statements: &[Statement]) -> ApiResult<()> {
        self.layers.covers(statements).map_err(exceeds_granter)
    }

    /// Taking these statements away from someone: each deny lifted gives back what it denied,
    /// so the granter must hold that.
    pub fn may_take(&self, statements: &[Statement]) -> ApiResult<()> {
        let lifted: Vec<Statement> = statements
            .iter()
            .filter(|s| s.effect == Effect::Deny)
            .map(|s| Statement {
                effect: Effect::Allow,
                ..s.clone()
            })
            .collect();
        self.may_give(&lifted)
    }

    /// Replacing a policy's statements: what the new list allows is given, and every deny that
    /// the new list no longer has is lifted.
    pub fn may_replace(&self, before: &[Statement], after: &[Statement]) -> ApiResult<()> {
        self.may_give(after)?;
        let same = |a: &Statement, b: &Statement| {
            a.resource_type == b.resource_type
                && a.effect == b.effect
                && a.actions == b.actions
                && a.resources == b.resources
        };
        let dropped: Vec<Statement> = before
            .iter()
            .filter(|old| !after.iter().any(|new| same(old, new)))
            .cloned()
            .collect();
        self.may_take(&dropped)
    }

    /// The Owner policy, and anything that changes what an Owner may do, is for Owners only:
    /// whoever holds everything the Owner policy gives.
    pub fn must_be_owner(&self) -> ApiResult<()> {
        self.may_give(&owner_statements())
    }
}

fn exceeds_granter(pair: Exceeds) -> ApiError {
    ApiError::ForbiddenWith(vec![
        "PermissionExceedsGranter".to_owned(),
        pair.to_string(),
    ])
}

fn owner_statements() -> Vec<Statement> {
    builtin_policies()
        .into_iter()
        .find(|policy| policy.id == OWNER_POLICY_ID)
        .map(|policy| policy.statements)
        .unwrap_or_default()
}

/// After an IAM change, inside its transaction: some Owner must still be able to do everything
/// the Owner policy gives (a deny attached to the last Owner would otherwise lock the
/// organization out of its own IAM).
pub async fn ensure_an_owner_remains(
    tx: &mut Transaction<'_, Postgres>,
    organization_id: Uuid,
) -> ApiResult<()> {
    let everything = owner_statements();
    for owner in iam::owners(&mut **tx, organization_id).await? {
        let live = iam::live_statements(&mut **tx, organization_id, owner).await?;
        if Layers::member(Arc::new(live)).covers(&everything).is_ok() {
            return Ok(());
        }
    }
    Err(ApiError::bad_request("CannotRemoveLastOwner"))
}

/// The same check for a member about to be changed: Owners are for Owners.
pub async fn guard_owner(
    tx: &mut Transaction<'_, Postgres>,
    granter: &Granter,
    organization_id: Uuid,
    user_id: Uuid,
) -> ApiResult<()> {
    if iam::is_owner(&mut **tx, organization_id, user_id).await? {
        granter.must_be_owner()?;
    }
    Ok(())
}
