//! `GET /.api/search/stream?q=...`: search results as server-sent events, in Sourcegraph's event
//! names and shapes. The search stops when the client goes away.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quarry_auth::Actor;
use quarry_search::query::PatternType;
use quarry_search::{MAX_CONTEXT_LINES, SearchOptions};
use serde::Deserialize;

use crate::AppState;

#[derive(Deserialize)]
pub struct StreamParams {
    q: Option<String>,
    /// The pattern type used unless the query names one.
    t: Option<String>,
    /// Lines of context around each match (Sourcegraph's `cl`), at most 10.
    cl: Option<usize>,
}

/// Reads the optional `t` (pattern type) parameter shared by the search endpoints.
pub fn search_options(pattern_type: Option<&str>, actor: &Actor) -> Result<SearchOptions, String> {
    let mut options = SearchOptions::for_viewer(actor.viewer());
    if let Some(t) = pattern_type.filter(|t| !t.is_empty()) {
        options.pattern_type = PatternType::parse(t).ok_or_else(|| {
            format!("unknown pattern type `{t}`: use keyword, standard, literal or regexp")
        })?;
    }
    Ok(options)
}

pub async fn stream(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Query(params): Query<StreamParams>,
) -> Response {
    let Some(query) = params.q else {
        return (StatusCode::BAD_REQUEST, "missing query parameter q\n").into_response();
    };
    let mut options = match search_options(params.t.as_deref(), &actor) {
        Ok(options) => options,
        Err(message) => return (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response(),
    };
    if let Some(lines) = params.cl {
        if lines > MAX_CONTEXT_LINES {
            return (
                StatusCode::BAD_REQUEST,
                format!("cl: at most {MAX_CONTEXT_LINES} context lines\n"),
            )
                .into_response();
        }
        options.context_lines = lines;
    }
    let events = match state.searcher.search(&query, options) {
        Ok(events) => events,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("invalid query: {e}\n")).into_response();
        }
    };
    quarry_search::http::event_stream(events)
}
