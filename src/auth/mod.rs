//! Who is calling: the `Principal` and the extractors that produce it from `Authorization`,
//! the verification caches and their invalidation across replicas.

pub mod cache;
pub mod last_used;
pub mod listener;
pub mod parsed;
mod principal;
pub mod rate_limit;
pub mod tokens;

pub use cache::{CacheConfig, Caches, Invalidation};
pub use last_used::LastUsed;
pub use principal::{
    bearer_credential, live_permissions, CurrentSession, Principal, PrincipalKind,
};
