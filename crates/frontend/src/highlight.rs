//! `POST /.api/highlight`: syntax highlighting for other tools, in the shape of Sourcegraph's
//! syntect_server (`filepath`, `code` in; `data` HTML table and `plaintext` out).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::AppState;

#[derive(Deserialize)]
pub struct HighlightRequest {
    filepath: String,
    code: String,
}

#[derive(Serialize)]
struct HighlightResponse {
    data: String,
    /// Whether the file was shown without highlighting (unknown language, or over a limit).
    plaintext: bool,
    /// Why, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<String>,
}

#[derive(Serialize)]
struct HighlightError {
    error: String,
    code: &'static str,
}

pub async fn highlight(
    State(state): State<AppState>,
    request: Result<Json<HighlightRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match request {
        Ok(request) => request,
        Err(rejection) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(HighlightError {
                    error: format!("invalid request: {}", rejection.body_text()),
                    code: "invalid_request",
                }),
            )
                .into_response();
        }
    };
    let highlighter = Arc::clone(&state.highlighter);
    let outcome = tokio::task::spawn_blocking(move || {
        let highlighted = highlighter.highlight(&request.filepath, &request.code);
        HighlightResponse {
            data: quarry_highlight::table_html(&highlighted.lines),
            plaintext: highlighted.language.is_none()
                || !matches!(
                    highlighted.plain,
                    None | Some(quarry_highlight::PlainReason::LongLines { .. })
                ),
            reason: highlighted.plain.map(|r| r.to_string()),
            language: highlighted.language,
        }
    })
    .await;
    match outcome {
        Ok(response) => Json(response).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(HighlightError {
                error: format!("highlighting failed: {e}"),
                code: "internal",
            }),
        )
            .into_response(),
    }
}
