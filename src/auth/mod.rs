//! Who is calling: the `Principal` and the extractors that produce it from `Authorization`.

mod principal;
pub mod tokens;

pub use principal::{bearer_credential, CurrentSession, Principal, PrincipalKind};
