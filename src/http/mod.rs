//! The HTTP layer: the state, the application (routes and middleware), the server process, the
//! error envelope, and one module per resource.

mod access_tokens;
mod app;
mod audit;
mod auth;
#[cfg(feature = "bench")]
mod bench;
mod drain;
mod error;
mod extract;
mod forward;
mod grants;
mod groups;
mod headers;
mod health;
mod identity;
mod introspect;
mod members;
mod openapi;
mod openapi_contract;
mod organizations;
mod panic;
mod permissions;
mod policies;
mod retry;
mod secret_scanning;
pub mod server;
mod state;
mod ui;
mod validate;

pub use app::{app, AppOptions, MAX_HEADER_BYTES};
pub use error::{ApiError, ApiResult, Envelope, Paged};
pub use extract::MAX_BODY_BYTES;
pub use server::serve;
pub use state::{AppState, StateConfig};
pub use validate::{valid_name, MAX_NAME_LEN};
