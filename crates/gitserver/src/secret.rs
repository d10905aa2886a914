//! The shared secret between Quarry's own processes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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

/// Middleware for Quarry's internal services: with a secret set, a request must carry
/// `Authorization: Bearer <secret>`.
pub async fn require_internal_secret(
    State(secret): State<Option<Arc<str>>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(secret) = &secret {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !bearer_matches(presented, secret) {
            return (
                StatusCode::UNAUTHORIZED,
                "this service requires the internal secret\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// The base URL of an internal service given as `host:port` or a full URL.
pub fn service_url(address: &str) -> String {
    let address = address.trim().trim_end_matches('/');
    if address.starts_with("http://") || address.starts_with("https://") {
        address.to_string()
    } else {
        format!("http://{address}")
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
