//! Secrets: generation from the operating system's random source, digests for storage, and
//! comparison in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AuthError;

/// The prefix of access tokens, as Sourcegraph's (`sgp_`), so secret scanners recognise them.
pub const ACCESS_TOKEN_PREFIX: &str = "sgp_";

/// `bytes` random bytes from the operating system, as lowercase hex.
pub fn random_hex(bytes: usize) -> Result<String, AuthError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(hex::encode(buffer))
}

/// A new access token: the prefix and 160 random bits.
pub fn new_access_token() -> Result<String, AuthError> {
    Ok(format!("{ACCESS_TOKEN_PREFIX}{}", random_hex(20)?))
}

/// The SHA-256 digest (hex) under which a secret is stored. Secrets here are random and long, so
/// a fast digest is enough: there is nothing to guess from it.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_digested() {
        let a = new_access_token().unwrap();
        let b = new_access_token().unwrap();
        assert!(a.starts_with("sgp_") && a.len() == 44, "{a}");
        assert_ne!(a, b);
        assert_eq!(digest(&a), digest(&a));
        assert_eq!(digest(&a).len(), 64);
        assert_ne!(digest(&a), digest(&b));
    }

    #[test]
    fn equality_is_exact() {
        assert!(equal("abc", "abc"));
        assert!(!equal("abc", "abd"));
        assert!(!equal("abc", "abcd"));
    }
}
