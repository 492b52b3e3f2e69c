//! argon2id password hashing off the async runtime, with a bound on concurrent hashes so a login
//! storm cannot take every core away from token verification.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use tokio::sync::Semaphore;

pub const MIN_PASSWORD_LEN: usize = 8;
/// Long enough for any passphrase, short enough that hashing it costs nothing extra.
pub const MAX_PASSWORD_LEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("password is too short")]
    TooShort,
    #[error("password is too long")]
    TooLong,
}

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Verified against when the email is unknown, so that costs the same as a wrong password.
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").finish_non_exhaustive()
    }
}

/// SPEC §3: argon2id, m = 19456 KiB, t = 2, p = 1 (OWASP's minimum).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None)
        .unwrap_or_else(|_| unreachable!("constant argon2 parameters are valid"));
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = argon2()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
    Ok(hash.to_string())
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

pub fn check_policy(password: &str) -> Result<(), PasswordPolicyError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        Err(PasswordPolicyError::TooShort)
    } else if chars > MAX_PASSWORD_LEN {
        Err(PasswordPolicyError::TooLong)
    } else {
        Ok(())
    }
}

/// Hashing threads run at a lower scheduling priority (nice 10) than the async workers: when
/// both want the CPU, token verification wins and a login storm only slows logins down.
/// Done once per blocking-pool thread; failure (e.g. a sandbox forbidding it) is harmless.
fn lower_this_threads_priority() {
    thread_local! {
        static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    LOWERED.with(|lowered| {
        if !lowered.replace(true) {
            #[cfg(target_os = "linux")]
            // SAFETY: setpriority takes plain integers and touches no memory of ours. On Linux,
            // PRIO_PROCESS with `who = 0` applies to the calling thread only.
            #[allow(unsafe_code)]
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, 10);
            }
        }
    });
}

impl PasswordHasher {
    /// `max_concurrent` hashes run at once; argon2 throughput halves beyond the core count.
    pub fn new(max_concurrent: usize) -> anyhow::Result<Self> {
        let dummy = hash_blocking("tokengate-timing-equaliser")?;
        Ok(PasswordHasher {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            dummy_hash: dummy.into(),
        })
    }

    pub fn check_policy(password: &str) -> Result<(), PasswordPolicyError> {
        check_policy(password)
    }

    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        tokio::task::spawn_blocking(move || {
            lower_this_threads_priority();
            hash_blocking(&password)
        })
        .await?
    }

    /// Verifies `password` against `phc`, or against a dummy hash when there is no user, so an
    /// unknown email and a wrong password cost the same.
    pub async fn verify(&self, password: String, phc: Option<String>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy_hash.to_string());
        let ok = tokio::task::spawn_blocking(move || {
            lower_this_threads_priority();
            verify_blocking(&password, &phc)
        })
        .await?;
        Ok(known && ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(2).expect("hasher");
        let phc = hasher.hash("correct horse".into()).await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher
            .verify("correct horse".into(), Some(phc.clone()))
            .await
            .expect("verify"));
        assert!(!hasher
            .verify("wrong horse".into(), Some(phc))
            .await
            .expect("verify"));
        assert!(!hasher
            .verify("tokengate-timing-equaliser".into(), None)
            .await
            .expect("verify"));
    }

    #[test]
    fn password_policy_bounds_length() {
        assert_eq!(check_policy("short"), Err(PasswordPolicyError::TooShort));
        assert_eq!(
            check_policy(&"x".repeat(257)),
            Err(PasswordPolicyError::TooLong)
        );
        assert!(check_policy("long enough").is_ok());
    }
}
