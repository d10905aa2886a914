//! Password hashing with argon2id (its default, memory-hard parameters), run off the async
//! threads, and the rules a new password must meet.

use std::sync::LazyLock;

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

use crate::AuthError;

/// The longest password accepted: hashing cost grows with length, so it is bounded.
pub const MAX_PASSWORD_LENGTH: usize = 256;

/// Refuses a password outside the length bounds.
pub fn check_policy(password: &str, min_length: usize) -> Result<(), AuthError> {
    let length = password.chars().count();
    if length < min_length {
        return Err(AuthError::Invalid(format!(
            "password: must be at least {min_length} characters long"
        )));
    }
    if length > MAX_PASSWORD_LENGTH {
        return Err(AuthError::Invalid(format!(
            "password: must be at most {MAX_PASSWORD_LENGTH} characters long"
        )));
    }
    Ok(())
}

fn hash_now(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AuthError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Random(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Random(e.to_string()))
}

/// A PHC-format argon2id hash of the password.
pub async fn hash(password: &str) -> Result<String, AuthError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| AuthError::Random(e.to_string()))?
}

/// A hash of nothing anyone knows, verified against when an account does not exist, so that a
/// sign-in takes as long whether or not the name is taken.
static DECOY: LazyLock<Option<String>> = LazyLock::new(|| {
    let mut secret = [0u8; 16];
    getrandom::fill(&mut secret).ok()?;
    hash_now(&hex::encode(secret)).ok()
});

/// Whether the password matches the stored hash; with no hash, the decoy is checked and the
/// answer is no.
pub async fn verify(password: &str, stored: Option<&str>) -> bool {
    let password = password.to_string();
    let stored = stored.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let (hash, real) = match &stored {
            Some(hash) => (Some(hash.as_str()), true),
            None => (DECOY.as_deref(), false),
        };
        let matches = hash
            .and_then(|hash| PasswordHash::new(hash).ok())
            .is_some_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            });
        real && matches
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let stored = hash("correct horse battery").await.unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains("correct horse"));
        assert!(verify("correct horse battery", Some(&stored)).await);
        assert!(!verify("correct horse batterY", Some(&stored)).await);
        assert!(!verify("anything", None).await);
        assert!(!verify("anything", Some("not a hash")).await);
    }

    #[test]
    fn policy_bounds_length() {
        assert!(check_policy("short", 12).is_err());
        assert!(check_policy("long enough password", 12).is_ok());
        assert!(check_policy(&"x".repeat(257), 12).is_err());
    }
}
