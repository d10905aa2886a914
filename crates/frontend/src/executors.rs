//! The executor API under `/.executors/` (Sourcegraph's paths and status codes): the shared
//! secret check, `test/auth`, and heartbeats, which record each executor for Site admin >
//! Executors and the `executors` GraphQL field.
//!
//! Invariants: every route checks the shared secret (`Authorization: token-executor <secret>`,
//! the site configuration's `executors.accessToken`) in constant time before anything else; with
//! no secret configured every route answers 500 "Executors are not configured on this
//! instance"; a wrong or missing secret is 401.

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use quarry_auth::secret;
use quarry_store::ExecutorHeartbeat;
use serde::{Deserialize, Serialize};

use crate::AppState;

/// The queues executors may serve.
pub const QUEUES: &[&str] = &["codeintel", "batches", "batches-hooks"];

/// The largest heartbeat accepted (it carries the executor's metrics).
const MAX_HEARTBEAT: usize = 1024 * 1024;

/// An executor counts as active when it was seen this recently.
pub const ACTIVE_WITHIN_SECS: i64 = 15 * 60;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/.executors/test/auth", get(|| async { "ok" }))
        .route("/.executors/queue/heartbeat", post(heartbeat_multi))
        .route(
            "/.executors/queue/{queue}/heartbeat",
            post(heartbeat_single),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_HEARTBEAT))
        .layer(middleware::from_fn_with_state(state.clone(), shared_secret))
        .with_state(state)
}

fn plain(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

async fn shared_secret(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let config = state.site.live().current();
    let Some(expected) = config.executors_access_token().filter(|t| !t.is_empty()) else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Executors are not configured on this instance",
        );
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("token-executor") && !token.is_empty()
        });
    match presented {
        Some((_, token)) if secret::equal(token, expected) => next.run(request).await,
        _ => plain(
            StatusCode::UNAUTHORIZED,
            "invalid or missing executor secret",
        ),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueueJobIds {
    queue_name: String,
}

/// A heartbeat. Job ids (`jobIds`, `jobIdsByQueue[].jobIds`) are accepted and not read: no job
/// is handed to executors yet.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeartbeatRequest {
    executor_name: String,
    #[serde(default)]
    queue_names: Vec<String>,
    #[serde(default)]
    job_ids_by_queue: Vec<QueueJobIds>,
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    docker_version: String,
    #[serde(default)]
    executor_version: String,
    #[serde(default)]
    git_version: String,
    #[serde(default)]
    src_cli_version: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HeartbeatResponse {
    known_ids: Vec<String>,
    cancel_ids: Vec<String>,
}

/// Reads a heartbeat; the error is the message of a 400 answer.
fn read_heartbeat(body: &[u8]) -> Result<HeartbeatRequest, String> {
    let request: HeartbeatRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid heartbeat: {e}"))?;
    if request.executor_name.trim().is_empty() {
        return Err("executorName: must not be empty".into());
    }
    if request.executor_name.len() > 255 {
        return Err("executorName: longer than 255 bytes".into());
    }
    Ok(request)
}

/// Checks a queue name; the error is the message of a 400 answer.
fn check_queue(name: &str) -> Result<(), String> {
    if QUEUES.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "unknown queue {name:?}: known queues are {}",
            QUEUES.join(", ")
        ))
    }
}

async fn record(state: &AppState, request: HeartbeatRequest, queues: Vec<String>) -> Response {
    let beat = ExecutorHeartbeat {
        hostname: request.executor_name,
        queue_names: queues,
        os: request.os,
        architecture: request.architecture,
        executor_version: request.executor_version,
        git_version: request.git_version,
        docker_version: request.docker_version,
        src_cli_version: request.src_cli_version,
    };
    if let Err(e) = state.store.record_executor_heartbeat(&beat).await {
        // Sourcegraph only logs this: a heartbeat still answers.
        tracing::error!(executor = %beat.hostname, error = %e, "cannot record executor heartbeat");
    }
    // No job is assigned to any executor yet: none is known, none to cancel.
    Json(HeartbeatResponse {
        known_ids: Vec::new(),
        cancel_ids: Vec::new(),
    })
    .into_response()
}

async fn heartbeat_multi(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let request = match read_heartbeat(&body) {
        Ok(request) => request,
        Err(message) => return plain(StatusCode::BAD_REQUEST, &message),
    };
    for queue in &request.queue_names {
        if let Err(message) = check_queue(queue) {
            return plain(StatusCode::BAD_REQUEST, &message);
        }
    }
    if let Some(stray) = request
        .job_ids_by_queue
        .iter()
        .find(|q| !request.queue_names.contains(&q.queue_name))
    {
        return plain(
            StatusCode::BAD_REQUEST,
            &format!(
                "jobIdsByQueue: queue {:?} is not in queueNames",
                stray.queue_name
            ),
        );
    }
    let queues = request.queue_names.clone();
    record(&state, request, queues).await
}

async fn heartbeat_single(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(message) = check_queue(&queue) {
        return plain(StatusCode::BAD_REQUEST, &message);
    }
    let request = match read_heartbeat(&body) {
        Ok(request) => request,
        Err(message) => return plain(StatusCode::BAD_REQUEST, &message),
    };
    record(&state, request, vec![queue]).await
}
