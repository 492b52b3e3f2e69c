//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::Modify;

use super::state::AppState;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "tokengate",
        description = "Issues, manages and verifies API access tokens. Every response is \
                       `{success, errors, data}`.",
    ),
    paths(super::forward::forward_doc, super::forward::forward_path_doc),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A web session (`tgw_…`), personal token (`tgp_…`) or service token (`tgs_…`)",
                    ))
                    .build(),
            ),
        );
    }
}

pub fn base() -> OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}

/// Serves the document, completed by `openapi_contract` once, here.
pub fn router(doc: Arc<OpenApi>) -> Router<AppState> {
    let json = serde_json::to_value(doc.as_ref()).unwrap_or_default();
    let doc = Arc::new(super::openapi_contract::complete(json));
    Router::new().route(
        "/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { Json(doc.as_ref().clone()) }
        }),
    )
}
