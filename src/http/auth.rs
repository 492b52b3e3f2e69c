//! For integrations: who am I, and may I?

use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{ApiResult, AppState, Data};
use crate::auth::{Principal, PrincipalKind};
use crate::db::identity::UserView;
use crate::policy::Statement;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(whoami))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    pub principal: PrincipalKind,
    pub organization_id: Uuid,
    /// The member behind the call.
    pub user: UserView,
    /// Every layer must allow an action.
    pub layers: Vec<Vec<Statement>>,
}

/// The calling principal and its effective permission layers.
#[utoipa::path(get, path = "/auth/whoami", tag = "auth",
    responses((status = 200, body = WhoAmI), (status = 401)))]
async fn whoami(principal: Principal) -> ApiResult<Data<WhoAmI>> {
    Ok(Data(WhoAmI {
        principal: principal.kind,
        organization_id: principal.organization_id,
        user: principal.user,
        layers: principal.layers,
    }))
}
