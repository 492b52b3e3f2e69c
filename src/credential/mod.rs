//! Credentials: the token format, its digest, password hashing and the canonical email a
//! password belongs to. Pure: no HTTP, no SQL.

mod digest;
mod email;
mod format;
mod password;

pub use digest::{Digest, HashKey, KeyId};
pub use email::canonical_email;
pub use format::{Credential, CredentialKind, Malformed};
pub use password::{
    HashingError, PasswordHasher, PasswordPolicyError, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN,
};
