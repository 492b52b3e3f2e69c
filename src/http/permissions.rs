//! The permission catalogue (SPEC §2.4).

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, Data};
use super::state::AppState;
use crate::auth::Principal;
use crate::policy::ActionInfo;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(catalogue))
}

/// Every known action with its resource type and description.
#[utoipa::path(get, path = "/api/v1/permissions", tag = "iam",
    responses((status = 200, body = Vec<ActionInfo>)))]
async fn catalogue(
    State(state): State<AppState>,
    _principal: Principal,
) -> ApiResult<Data<Vec<ActionInfo>>> {
    Ok(Data(state.catalogue.actions().to_vec()))
}
