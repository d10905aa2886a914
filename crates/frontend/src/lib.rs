//! The frontend: Quarry's HTTP surface.
//!
//! Owns: the GraphQL API (`/.api/graphql`), the search stream (`/.api/search/stream`), health (`/-/healthz`, `/-/readyz`), Prometheus metrics
//! (`/metrics`), and the internal read-only git smart HTTP route (`/.internal/git/<repo>/...`).
//!
//! Invariants: handlers reach storage and git only through the store and the `GitService` trait,
//! never the disk; every route but the health checks refuses callers that are not on loopback
//! until accounts exist; the git route serves only repositories the instance knows.

mod access;
mod git_route;
pub mod graphql;
mod health;
mod metrics;
mod search_stream;
mod state;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{any, get, post};
use tokio_util::sync::CancellationToken;

pub use state::AppState;

/// The largest GraphQL request body accepted.
const MAX_GRAPHQL_BODY: usize = 4 * 1024 * 1024;

/// All routes of the frontend.
pub fn router(state: AppState) -> Router {
    let schema = graphql::schema(state.clone());
    let api = Router::new()
        .route(
            "/.api/graphql",
            post(graphql::handler).get(graphql::handler),
        )
        .layer(DefaultBodyLimit::max(MAX_GRAPHQL_BODY))
        .with_state(schema);
    let internal = Router::new()
        .route("/.internal/git/{*tail}", any(git_route::smart_http))
        .layer(DefaultBodyLimit::max(
            quarry_gitserver::smart_http::MAX_UPLOAD_PACK_REQUEST,
        ))
        .route("/metrics", get(metrics::metrics))
        .route("/.api/search/stream", get(search_stream::stream))
        .with_state(state.clone());
    let guarded = api
        .merge(internal)
        .layer(middleware::from_fn(access::loopback_only));
    Router::new()
        .route("/-/healthz", get(health::healthz))
        .route("/-/readyz", get(health::readyz))
        .with_state(state)
        .merge(guarded)
        .layer(middleware::from_fn(metrics::observe_requests))
}

/// Serves the frontend on a bound listener until `shutdown` is cancelled; requests in flight then
/// finish before this returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
