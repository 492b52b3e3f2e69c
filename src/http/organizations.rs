//! The organizations a member belongs to; creating one makes its creator the Owner.

use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, Created, Data};
use super::extract::ApiJson;
use super::state::AppState;
use super::validate::valid_name;
use crate::auth::{commit_invalidating, CurrentSession, Invalidation};
use crate::db::identity::{self, OrganizationView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create))
}

/// The caller's organizations.
#[utoipa::path(get, path = "/api/v1/organizations", tag = "organizations",
    responses((status = 200, body = Vec<OrganizationView>)))]
async fn list(
    State(state): State<AppState>,
    session: CurrentSession,
) -> ApiResult<Data<Vec<OrganizationView>>> {
    Ok(Data(
        identity::organizations_of(&state.db, session.user.id).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrganization {
    pub name: String,
}

/// Create an organization; the caller becomes its Owner.
#[utoipa::path(post, path = "/api/v1/organizations", tag = "organizations",
    request_body = CreateOrganization,
    responses((status = 201, body = OrganizationView)))]
async fn create(
    State(state): State<AppState>,
    session: CurrentSession,
    ApiJson(body): ApiJson<CreateOrganization>,
) -> ApiResult<Created<OrganizationView>> {
    let name = valid_name("name", &body.name)?;
    let mut tx = state.db.begin().await?;
    let org = identity::create_organization(&mut tx, &name, session.user.id).await?;
    // The caller's cached sessions know their organizations.
    let what = Invalidation::Membership(org.id, session.user.id);
    commit_invalidating(&state.auth.caches, tx, what).await?;
    Ok(Created(org))
}
