//! Read-only git smart HTTP for mirrors, on the frontend's internal route.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::AppState;

pub async fn smart_http(
    State(state): State<AppState>,
    Path(tail): Path<String>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Only repositories the instance knows are served, whatever the gitserver holds on disk.
    let known = match quarry_gitserver::smart_http::split_repo(&tail) {
        Some(name) => state.store.repo_by_name(name).await,
        None => Ok(None),
    };
    match known {
        Ok(Some(_)) => {}
        Ok(None) => return (StatusCode::NOT_FOUND, "repository not found\n").into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
    quarry_gitserver::smart_http::serve(
        state.git.as_ref(),
        &tail,
        query.as_deref(),
        &method,
        &headers,
        body,
    )
    .await
}
