//! Accounts and access control: who a caller is and what they may do.
//!
//! Owns: builtin accounts (argon2id password hashes), browser sessions with CSRF tokens, access
//! tokens (Sourcegraph's `token` and `token-sudo` schemes), one-time sign-in and password reset
//! links, sign-in throttling (Sourcegraph's `auth.lockout`), the audit trail of security events,
//! and the [`Actor`] every request is served for.
//!
//! Invariants: secrets (session cookies, access tokens, link tokens) are stored only as SHA-256
//! digests and compared through the database index or in constant time; passwords only as argon2id
//! hashes; no secret is ever logged or written to the audit log; the first account is a site
//! admin and the last site admin can be neither demoted nor deleted; a one-time link works once
//! and for 15 minutes at most.

mod accounts;
mod actor;
pub mod password;
pub mod secret;
mod throttle;

pub use accounts::{
    AccountForm, Accounts, LINK_LIFETIME, require_self_or_admin, require_site_admin,
};
pub use actor::{
    Actor, Credential, Presented, SCOPE_SITE_ADMIN_SUDO, SCOPE_USER_ALL, parse_authorization,
};
pub use throttle::SignInThrottle;

use quarry_store::StoreError;

/// The name of the session cookie (Sourcegraph's).
pub const SESSION_COOKIE: &str = "sgs";

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("incorrect username or password")]
    BadCredentials,
    #[error("too many failed sign-in attempts; try again in {0} seconds")]
    Throttled(u64),
    #[error("sign-up is disabled on this instance; ask a site admin for an account")]
    SignupDisabled,
    #[error("password sign-in is disabled: auth.providers has no builtin provider")]
    BuiltinDisabled,
    #[error("not signed in: sign in or send an access token (Authorization: token ...)")]
    Unauthenticated,
    #[error("invalid or revoked access token")]
    InvalidToken,
    #[error("this link is invalid, expired or already used")]
    InvalidLink,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("cannot make a secret: {0}")]
    Random(String),
    #[error(transparent)]
    Store(StoreError),
}

impl AuthError {
    /// The HTTP status that says what kind of refusal this is; GraphQL's error codes follow it.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::BadCredentials | AuthError::Unauthenticated | AuthError::InvalidToken => 401,
            AuthError::Throttled(_) => 429,
            AuthError::SignupDisabled | AuthError::BuiltinDisabled | AuthError::Forbidden(_) => 403,
            AuthError::InvalidLink | AuthError::Invalid(_) => 400,
            AuthError::Conflict(_) => 409,
            AuthError::NotFound(_) => 404,
            AuthError::Random(_) | AuthError::Store(_) => 500,
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) => AuthError::Conflict(message),
            StoreError::NotFound(what) => AuthError::NotFound(what),
            other => AuthError::Store(other),
        }
    }
}
