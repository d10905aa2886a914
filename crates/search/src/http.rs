//! The routes of `quarry indexserver`: health, and the search stream for the repositories it
//! owns (the frontend's fan-out calls it with the internal secret).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::stream;
use serde::Deserialize;

use crate::events::SearchEvent;
use crate::query::PatternType;
use crate::{SearchOptions, Searcher};

#[derive(Clone)]
struct ServerState {
    searcher: Searcher,
    secret: Option<Arc<str>>,
}

#[derive(Deserialize)]
struct StreamParams {
    q: Option<String>,
    t: Option<String>,
    viewer: Option<String>,
    /// Context lines.
    cl: Option<usize>,
}

/// The index server's routes. With a secret, searching requires `Authorization: Bearer <secret>`.
pub fn router(searcher: Searcher, secret: Option<String>) -> Router {
    let state = ServerState {
        searcher,
        secret: secret.map(Arc::from),
    };
    let protected = Router::new()
        .route("/.internal/search/stream", get(search_stream))
        .layer(middleware::from_fn_with_state(
            state.secret.clone(),
            quarry_gitserver::require_internal_secret,
        ));
    Router::new()
        .route("/-/healthz", get(|| async { "ok\n" }))
        .merge(protected)
        .with_state(state)
}

/// A search's events as a server-sent event response.
pub fn event_stream(events: tokio::sync::mpsc::Receiver<SearchEvent>) -> Response {
    let frames = stream::unfold(events, |mut events| async move {
        let event = events.recv().await?;
        Some((Ok::<_, Infallible>(Bytes::from(event.frame())), events))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(frames))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn search_stream(
    State(state): State<ServerState>,
    Query(params): Query<StreamParams>,
) -> Response {
    let Some(query) = params.q else {
        return (StatusCode::BAD_REQUEST, "missing query parameter q\n").into_response();
    };
    let mut options =
        SearchOptions::for_viewer(crate::shards::parse_viewer(params.viewer.as_deref()));
    options.context_lines = params.cl.unwrap_or(0).min(crate::MAX_CONTEXT_LINES);
    if let Some(t) = params.t.as_deref().filter(|t| !t.is_empty()) {
        match PatternType::parse(t) {
            Some(pattern_type) => options.pattern_type = pattern_type,
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("unknown pattern type `{t}`\n"),
                )
                    .into_response();
            }
        }
    }
    match state.searcher.search(&query, options) {
        Ok(events) => event_stream(events),
        Err(e) => (StatusCode::BAD_REQUEST, format!("invalid query: {e}\n")).into_response(),
    }
}

/// Serves an index server until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    searcher: Searcher,
    secret: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        quarry_gitserver::http::without_nagle(listener),
        router(searcher, secret),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
