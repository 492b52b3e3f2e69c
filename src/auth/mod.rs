//! Who is calling: the `Principal`, the extractors that prove it from `Authorization`, the
//! verification caches and their invalidation across replicas. Nothing here speaks HTTP status
//! codes: a request turned away is a `Refusal`, which the HTTP layer answers.

pub mod cache;
mod extract;
pub mod intern;
pub mod invalidation;
pub mod last_used;
mod principal;
pub mod rate_limit;
mod refresh;
mod refusal;
mod token_reads;
mod tokens;
mod verifier;

pub use cache::{CacheConfig, Caches};
pub use extract::{bearer_credential, client_ip, ORGANIZATION_HEADER};
pub use invalidation::{commit_invalidating, Invalidation};
pub use last_used::LastUsed;
pub use principal::{CurrentSession, Principal, PrincipalKind};
pub use refusal::Refusal;
pub use token_reads::TokenReads;
pub use tokens::presented_token;
pub use verifier::{Verifier, VerifierParts};
