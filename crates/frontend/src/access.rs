//! Who may call. Until accounts exist, the API answers only callers on the loopback interface.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Refuses every caller that is not on this machine.
pub async fn loopback_only(request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    match peer {
        Some(ip) if ip.is_loopback() || ip.to_canonical().is_loopback() => next.run(request).await,
        _ => (
            StatusCode::FORBIDDEN,
            "this endpoint answers only on loopback until user accounts are configured\n",
        )
            .into_response(),
    }
}
