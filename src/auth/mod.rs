//! Who is calling: the `Principal` and the extractors that produce it from `Authorization`.

pub mod last_used;
mod principal;
pub mod tokens;

pub use last_used::LastUsed;
pub use principal::{bearer_credential, CurrentSession, Principal, PrincipalKind};
