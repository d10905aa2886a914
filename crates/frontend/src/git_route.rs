//! Read-only git smart HTTP for mirrors, on the frontend's internal route.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quarry_auth::Actor;
use quarry_gitserver::smart_http::SmartHttpRequest;

use crate::AppState;

pub async fn smart_http(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    request: SmartHttpRequest,
) -> Response {
    // Only repositories the instance knows, and the caller may see, are served, whatever the
    // gitserver holds on disk.
    let known = match request.repo() {
        Some(name) => state.store.visible_repo_by_name(name, actor.viewer()).await,
        None => Ok(None),
    };
    match known {
        Ok(Some(_)) => request.answer(state.git.as_ref()).await,
        Ok(None) => (StatusCode::NOT_FOUND, "repository not found\n").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}
