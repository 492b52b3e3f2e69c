//! Credentials: the token format, its digest, and password hashing. Pure: no HTTP, no SQL.

mod digest;
mod format;
mod password;

pub use digest::{Digest, HashKey};
pub use format::{Credential, CredentialKind, Malformed};
pub use password::{
    HashingError, PasswordHasher, PasswordPolicyError, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN,
};
