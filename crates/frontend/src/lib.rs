//! The frontend: Quarry's HTTP surface.
//!
//! Owns: the GraphQL API (`/.api/graphql`), the search stream (`/.api/search/stream`), the
//! highlighting endpoint (`/.api/highlight`), health (`/-/healthz`, `/-/readyz`), Prometheus
//! metrics (`/metrics`), the sign-in routes (`/-/sign-in`, `/-/sign-up`, `/-/site-init`, ...), the
//! web app (`web`: account pages, `/search`, code browsing at `/<repo>/...`, `/site-admin/...`,
//! and its assets under `/.assets/`), the executor API (`/.executors/...`), and the read-only git
//! smart HTTP route (`/.internal/git/<repo>/...`).
//!
//! Invariants: handlers reach storage and git only through the store, the accounts service and
//! the `GitService` trait, never the disk; every request is identified before any handler runs
//! (executor routes by the executors' shared secret instead); only the health checks, the assets
//! and the sign-in routes answer anonymous callers (plus read-only search and code pages when
//! `auth.public` is on); a repository a caller may not see is absent from every answer
//! (listings, counts, search, pages, git); the git route serves only repositories the instance
//! knows.

mod access;
mod executor_metrics;
mod executors;
mod git_route;
pub mod graphql;
mod health;
mod highlight;
mod markdown;
mod metrics;
mod operations;
mod search_stream;
mod sign_in;
mod state;
mod uploads;
mod web;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{any, get, post};
use tokio_util::sync::CancellationToken;

pub use executors::{queues as executor_queues, report_queue_sizes};
pub use state::AppState;

/// The largest GraphQL request body accepted.
const MAX_GRAPHQL_BODY: usize = 4 * 1024 * 1024;

/// The largest highlighting request accepted (the highlighter's own limit is lower, and larger
/// files come back as plain text).
const MAX_HIGHLIGHT_BODY: usize = 8 * 1024 * 1024;

/// All routes of the frontend.
pub fn router(state: AppState) -> Router {
    let schema = graphql::schema(state.clone());
    let graphql = Router::new()
        .route(
            "/.api/graphql",
            post(graphql::handler).get(graphql::handler),
        )
        .layer(DefaultBodyLimit::max(MAX_GRAPHQL_BODY))
        .with_state(schema);
    let readable = Router::new()
        .route("/.internal/git/{*tail}", any(git_route::smart_http))
        .layer(DefaultBodyLimit::max(
            quarry_gitserver::smart_http::MAX_UPLOAD_PACK_REQUEST,
        ))
        .route("/.api/search/stream", get(search_stream::stream))
        .route(
            "/.api/highlight",
            post(highlight::highlight).layer(DefaultBodyLimit::max(MAX_HIGHLIGHT_BODY)),
        )
        .with_state(state.clone())
        .merge(graphql)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            access::signed_in_or_public,
        ));
    let admin = Router::new()
        .route("/metrics", get(metrics::metrics))
        .with_state(state.clone())
        .layer(middleware::from_fn(access::site_admin_only));
    let accounts = Router::new()
        .route("/-/site-init", post(sign_in::site_init))
        .route("/-/sign-up", post(sign_in::sign_up))
        .route("/-/sign-in", post(sign_in::sign_in))
        .route("/-/sign-in/link", get(sign_in::sign_in_link))
        .route("/-/reset-password", post(sign_in::reset_password))
        .route("/", get(web::home))
        .route("/sign-in", get(web::sign_in_page).post(web::sign_in_submit))
        .route("/sign-up", get(web::sign_up_page).post(web::sign_up_submit))
        .route("/sign-out", post(web::sign_out_submit))
        .route(
            "/password-reset",
            get(web::password_reset_page).post(web::password_reset_submit),
        )
        .route(
            "/users/{username}/settings/tokens",
            get(web::tokens).post(web::create_token),
        )
        .route(
            "/users/{username}/settings/tokens/{id}/delete",
            post(web::delete_token),
        )
        .route("/search", get(web::search_page))
        .route("/site-admin", get(web::admin_index))
        .route("/site-admin/repositories", get(web::admin_repositories))
        .route(
            "/site-admin/repositories/{id}/fetch",
            post(web::admin_fetch_repository),
        )
        .route(
            "/site-admin/external-services",
            get(web::admin_external_services),
        )
        .route(
            "/site-admin/external-services/{id}",
            get(web::admin_external_service).post(web::admin_external_service_save),
        )
        .route(
            "/site-admin/external-services/{id}/delete",
            post(web::admin_external_service_delete),
        )
        .route(
            "/site-admin/configuration",
            get(web::admin_configuration).post(web::admin_configuration_save),
        )
        .route("/site-admin/executors", get(web::admin_executors))
        .route("/-/sign-out", post(sign_in::sign_out))
        .route("/-/session", get(sign_in::current_session))
        .layer(DefaultBodyLimit::max(access::MAX_FORM));
    Router::new()
        .route("/-/healthz", get(health::healthz))
        .route("/-/readyz", get(health::readyz))
        .route("/.assets/{name}", get(web::asset))
        .merge(accounts)
        .with_state(state.clone())
        .merge(readable)
        .merge(admin)
        .merge(executors::router(state.clone()))
        .fallback_service(get(web::repository_page).with_state(state.clone()))
        .layer(middleware::from_fn_with_state(state, access::identify))
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
        quarry_gitserver::http::without_nagle(listener),
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
