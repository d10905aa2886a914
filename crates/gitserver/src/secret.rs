//! The shared secret between Quarry's own processes.

use subtle::ConstantTimeEq;

/// The variable that holds the secret the frontend, workers and gitservers share.
pub const INTERNAL_SECRET_VAR: &str = "QUARRY_INTERNAL_SECRET";

/// Compares a presented secret with the expected one in time that does not depend on where they
/// differ.
pub fn secrets_match(presented: &[u8], expected: &[u8]) -> bool {
    presented.ct_eq(expected).into()
}

/// Whether an `Authorization: Bearer <secret>` header carries the expected secret.
pub fn bearer_matches(header: Option<&str>, expected: &str) -> bool {
    match header.and_then(|h| h.strip_prefix("Bearer ")) {
        Some(presented) => secrets_match(presented.as_bytes(), expected.as_bytes()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_secret_matches() {
        assert!(bearer_matches(Some("Bearer abc"), "abc"));
        assert!(!bearer_matches(Some("Bearer abd"), "abc"));
        assert!(!bearer_matches(Some("Bearer ab"), "abc"));
        assert!(!bearer_matches(Some("abc"), "abc"));
        assert!(!bearer_matches(None, "abc"));
    }
}
