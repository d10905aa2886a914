//! The executor API under `/.executors/` (Sourcegraph's paths, headers and status codes): the
//! shared secret check, `test/auth`, heartbeats (recorded for Site admin > Executors and the
//! `executors` GraphQL field, answered with the jobs the executor still owns and those to
//! cancel), dequeue (single- and multi-queue; a job comes with a fresh per-job token; with
//! `waitMs` the request waits, bounded, for a job instead of answering 204 at once), and the
//! job's own calls: execution log entries and `markComplete`, `markErrored`, `markFailed`.
//!
//! Invariants: queue routes check the shared secret (`Authorization: token-executor <secret>`,
//! the site configuration's `executors.accessToken`) in constant time before anything else; with
//! no secret configured they answer 500 "Executors are not configured on this instance"; a
//! wrong or missing secret is 401. Job routes take `Authorization: Bearer <job token>` with
//! `X-Sourcegraph-Job-ID` and `X-Sourcegraph-Executor-Name`: the token (stored as SHA-256 only,
//! dropped at the job's final state) must be the job's, for that queue and that executor, else
//! 403; an executor that never sent a heartbeat is 401.

use std::sync::LazyLock;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use prometheus::{IntGaugeVec, Opts};
use quarry_auth::secret;
use quarry_config::ExecutorPool;
use quarry_gitserver::smart_http::SmartHttpRequest;
use quarry_store::{ExecutorHeartbeat, JobRecord, JobState, QueueStats};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// The queues executors may serve.
pub const QUEUES: &[&str] = &["codeintel", "batches", "batches-hooks"];

/// The executors' queues: a job is stalled after `stall_after` without a heartbeat and fails
/// after 3 resets; errors are final.
pub fn queues(store: quarry_store::Store, stall_after: Duration) -> quarry_workqueue::WorkQueues {
    let options: Vec<(&str, quarry_workqueue::QueueOptions)> = QUEUES
        .iter()
        .map(|q| {
            let options = quarry_workqueue::QueueOptions {
                stall_after,
                ..quarry_workqueue::QueueOptions::default()
            };
            (*q, options)
        })
        .collect();
    quarry_workqueue::WorkQueues::new(store, &options)
}

/// The largest heartbeat accepted (it carries the executor's metrics).
const MAX_HEARTBEAT: usize = 1024 * 1024;

/// An executor counts as active when it was seen this recently.
pub const ACTIVE_WITHIN_SECS: i64 = 15 * 60;

/// The longest a dequeue may wait for a job.
const MAX_DEQUEUE_WAIT: Duration = Duration::from_secs(30);

/// The largest log entry update accepted.
const MAX_LOG_BODY: usize = 8 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    let shared = Router::new()
        .route("/.executors/test/auth", get(|| async { "ok" }))
        .route("/.executors/queue/heartbeat", post(heartbeat_multi))
        .route(
            "/.executors/queue/{queue}/heartbeat",
            post(heartbeat_single),
        )
        .route("/.executors/queue/dequeue", post(dequeue_multi))
        .route("/.executors/autoscaling", get(autoscaling))
        .route(
            "/.executors/scip/upload",
            post(crate::uploads::upload)
                .head(|| async { StatusCode::OK })
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::uploads::MAX_UPLOAD,
                )),
        )
        .route("/.executors/queue/{queue}/dequeue", post(dequeue_single))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_HEARTBEAT))
        .layer(middleware::from_fn_with_state(state.clone(), shared_secret));
    let job = Router::new()
        .route(
            "/.executors/queue/{queue}/addExecutionLogEntry",
            post(add_log_entry),
        )
        .route(
            "/.executors/queue/{queue}/updateExecutionLogEntry",
            post(update_log_entry),
        )
        .route(
            "/.executors/queue/{queue}/markComplete",
            post(mark_complete),
        )
        .route("/.executors/queue/{queue}/markErrored", post(mark_errored))
        .route("/.executors/queue/{queue}/markFailed", post(mark_failed))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_LOG_BODY))
        .route(
            "/.executors/git/{*tail}",
            any(git).layer(axum::extract::DefaultBodyLimit::max(
                quarry_gitserver::smart_http::MAX_UPLOAD_PACK_REQUEST,
            )),
        );
    shared.merge(job).with_state(state)
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
    #[serde(default)]
    job_ids: Vec<JobId>,
}

/// A job id as executors send it: a number (single queue) or a string (`"42"`, or `"42-queue"`
/// from a multi-queue executor).
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum JobId {
    Number(i64),
    Text(String),
}

impl JobId {
    /// The record id, and the id as sent (to answer in the same form).
    fn read(&self, queue: &str) -> Option<(i64, String)> {
        match self {
            JobId::Number(id) => Some((*id, id.to_string())),
            JobId::Text(text) => {
                let number = text
                    .strip_suffix(&format!("-{queue}"))
                    .unwrap_or(text)
                    .parse()
                    .ok()?;
                Some((number, text.clone()))
            }
        }
    }
}

/// Reads the job ids of one queue; the error is the message of a 400 answer.
fn read_job_ids(queue: &str, ids: &[JobId]) -> Result<Vec<(i64, String)>, String> {
    ids.iter()
        .map(|id| {
            id.read(queue)
                .ok_or_else(|| format!("jobIds: not a job id of queue {queue}"))
        })
        .collect()
}

/// A heartbeat: the executor, what it runs on, and the jobs it is running (`jobIds` from a
/// single-queue executor, `jobIdsByQueue` from a multi-queue one).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeartbeatRequest {
    executor_name: String,
    #[serde(default)]
    queue_names: Vec<String>,
    #[serde(default)]
    job_ids_by_queue: Vec<QueueJobIds>,
    #[serde(default)]
    job_ids: Vec<JobId>,
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
    /// The executor's metrics in the Prometheus text format.
    #[serde(default)]
    prometheus_metrics: String,
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

/// Records the heartbeat, then answers, per queue, which of the reported jobs the executor still
/// owns and which it should cancel (`ids` as the executor sent them, answered in the same form).
async fn record(
    state: &AppState,
    request: HeartbeatRequest,
    queues: Vec<String>,
    jobs: Vec<(String, Vec<(i64, String)>)>,
) -> Response {
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
    let metrics = crate::executor_metrics::ingest(&beat.hostname, &request.prometheus_metrics);
    if let Err(e) = state.store.record_executor_heartbeat(&beat, &metrics).await {
        // Sourcegraph only logs this: a heartbeat still answers.
        tracing::error!(executor = %beat.hostname, error = %e, "cannot record executor heartbeat");
    }
    let mut answer = HeartbeatResponse {
        known_ids: Vec::new(),
        cancel_ids: Vec::new(),
    };
    for (queue, ids) in jobs {
        let numbers: Vec<i64> = ids.iter().map(|(id, _)| *id).collect();
        let (known, cancel) = match state
            .queues
            .heartbeat(&queue, &beat.hostname, &numbers)
            .await
        {
            Ok(found) => found,
            Err(e) => return server_error(&e.to_string()),
        };
        for (id, as_sent) in ids {
            if known.contains(&id) {
                answer.known_ids.push(as_sent.clone());
            }
            if cancel.contains(&id) {
                answer.cancel_ids.push(as_sent);
            }
        }
    }
    Json(answer).into_response()
}

fn server_error(message: &str) -> Response {
    tracing::error!(error = %message, "executor request failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": message })),
    )
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
    let mut jobs = Vec::new();
    for queue in &request.job_ids_by_queue {
        match read_job_ids(&queue.queue_name, &queue.job_ids) {
            Ok(ids) => jobs.push((queue.queue_name.clone(), ids)),
            Err(message) => return plain(StatusCode::BAD_REQUEST, &message),
        }
    }
    let queues = request.queue_names.clone();
    record(&state, request, queues, jobs).await
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
    let ids = match read_job_ids(&queue, &request.job_ids) {
        Ok(ids) => ids,
        Err(message) => return plain(StatusCode::BAD_REQUEST, &message),
    };
    record(&state, request, vec![queue.clone()], vec![(queue, ids)]).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DequeueRequest {
    executor_name: String,
    /// The queues of a multi-queue dequeue.
    #[serde(default)]
    queues: Vec<String>,
    /// How long to wait for a job before answering 204 (Quarry's; at most 30 s). Without it
    /// the answer is immediate, as Sourcegraph's.
    #[serde(default)]
    wait_ms: u64,
}

fn read_dequeue(body: &[u8]) -> Result<DequeueRequest, String> {
    let request: DequeueRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid dequeue request: {e}"))?;
    if request.executor_name.trim().is_empty() {
        return Err("executorName: must not be empty".into());
    }
    Ok(request)
}

async fn dequeue_single(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(message) = check_queue(&queue) {
        return plain(StatusCode::BAD_REQUEST, &message);
    }
    match read_dequeue(&body) {
        Ok(request) => dequeue(&state, &[queue.as_str()], &request, false).await,
        Err(message) => plain(StatusCode::BAD_REQUEST, &message),
    }
}

async fn dequeue_multi(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let request = match read_dequeue(&body) {
        Ok(request) => request,
        Err(message) => return plain(StatusCode::BAD_REQUEST, &message),
    };
    if request.queues.is_empty() {
        return plain(StatusCode::BAD_REQUEST, "queues: name at least one queue");
    }
    for queue in &request.queues {
        if let Err(message) = check_queue(queue) {
            return plain(StatusCode::BAD_REQUEST, &message);
        }
    }
    let queues: Vec<&str> = request.queues.iter().map(String::as_str).collect();
    dequeue(&state, &queues, &request, true).await
}

/// Hands out a job with a fresh token (only its digest is stored), or 204.
async fn dequeue(
    state: &AppState,
    queues: &[&str],
    request: &DequeueRequest,
    multi: bool,
) -> Response {
    let token = match secret::random_hex(20) {
        Ok(token) => token,
        Err(e) => return server_error(&e.to_string()),
    };
    let wait = Duration::from_millis(request.wait_ms).min(MAX_DEQUEUE_WAIT);
    let job = match state
        .queues
        .dequeue(
            queues,
            &request.executor_name,
            &secret::digest(&token),
            wait,
        )
        .await
    {
        Ok(Some(job)) => job,
        Ok(None) => return StatusCode::NO_CONTENT.into_response(),
        Err(e) => return server_error(&e.to_string()),
    };
    match job_payload(state, &job, &token, multi).await {
        Ok(payload) => Json(payload).into_response(),
        Err(message) => server_error(&message),
    }
}

/// The job as executors read it: the queue's payload with the id, token and repository.
async fn job_payload(
    state: &AppState,
    job: &JobRecord,
    token: &str,
    multi: bool,
) -> Result<Value, String> {
    let mut payload: Value = serde_json::from_str(&job.payload).unwrap_or_else(|_| json!({}));
    if !payload.is_object() {
        payload = json!({});
    }
    let repository = match job.repository_id {
        Some(id) => state
            .store
            .repo_by_id(id)
            .await
            .map_err(|e| e.to_string())?
            .map(|r| r.name)
            .unwrap_or_default(),
        None => String::new(),
    };
    payload["version"] = json!(2);
    payload["id"] = json!(job.id);
    payload["token"] = json!(token);
    payload["repositoryName"] = json!(repository);
    payload["network"] = json!(
        state
            .site
            .live()
            .current()
            .executor_queue_has_network(&job.queue)
    );
    if multi {
        payload["queue"] = json!(job.queue);
    }
    Ok(payload)
}

/// A job's own call: the job its token names, checked against the headers, the path's queue
/// and the executor.
struct JobCall {
    job: JobRecord,
    executor: String,
}

impl FromRequestParts<AppState> for JobCall {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .unwrap_or("")
                .to_string()
        };
        let job_id: i64 = header("x-sourcegraph-job-id").parse().map_err(|_| {
            plain(
                StatusCode::BAD_REQUEST,
                "X-Sourcegraph-Job-ID: missing or not a job id",
            )
        })?;
        let executor = header("x-sourcegraph-executor-name");
        if executor.is_empty() {
            return Err(plain(
                StatusCode::BAD_REQUEST,
                "X-Sourcegraph-Executor-Name: missing",
            ));
        }
        let authorization = header("authorization");
        let Some(token) = authorization
            .split_once(' ')
            .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
            .map(|(_, token)| token.to_string())
        else {
            return Err(plain(StatusCode::UNAUTHORIZED, "a job token is required"));
        };
        // Queue routes name the job's queue; the git route names its repository instead.
        let queue = parts
            .uri
            .path()
            .strip_prefix("/.executors/queue/")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_string);
        let known = state
            .store
            .executor_known(&executor)
            .await
            .map_err(|e| server_error(&e.to_string()))?;
        if !known {
            return Err(plain(
                StatusCode::UNAUTHORIZED,
                "unknown executor: send a heartbeat first",
            ));
        }
        let job = state
            .store
            .job_by_token(&secret::digest(&token))
            .await
            .map_err(|e| server_error(&e.to_string()))?;
        match job {
            Some(job)
                if job.id == job_id
                    && queue.as_ref().is_none_or(|q| *q == job.queue)
                    && job.worker_hostname.as_deref() == Some(executor.as_str()) =>
            {
                Ok(JobCall { job, executor })
            }
            _ => Err(plain(
                StatusCode::FORBIDDEN,
                "the job token is not valid for this job, queue or executor",
            )),
        }
    }
}

/// `/.executors/git/<repo>/...`: git smart HTTP for the job's own repository only.
async fn git(call: JobCall, State(state): State<AppState>, request: SmartHttpRequest) -> Response {
    let allowed = match call.job.repository_id {
        Some(id) => match state.store.repo_by_id(id).await {
            Ok(repo) => repo.map(|r| r.name),
            Err(e) => return server_error(&e.to_string()),
        },
        None => None,
    };
    match (allowed, request.repo()) {
        (Some(allowed), Some(asked)) if allowed == asked => {
            request.answer(state.git.as_ref()).await
        }
        _ => plain(
            StatusCode::FORBIDDEN,
            "a job may fetch only its own repository",
        ),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogEntryRequest {
    job_id: i64,
    #[serde(default)]
    entry_id: Option<i64>,
    key: String,
    #[serde(default)]
    command: Vec<String>,
    /// RFC 3339 or Unix milliseconds; the server's clock when absent.
    #[serde(default)]
    start_time: Option<Value>,
    #[serde(default)]
    exit_code: Option<i64>,
    #[serde(default)]
    out: String,
    #[serde(default)]
    duration_ms: Option<i64>,
}

/// Reads a job call's body, whose `jobId` must be the token's job; the error is the status and
/// message to answer.
fn read_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    call: &JobCall,
) -> Result<T, (StatusCode, String)> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("invalid request: {e}")))?;
    if value.get("jobId").and_then(Value::as_i64) != Some(call.job.id) {
        return Err((
            StatusCode::FORBIDDEN,
            "jobId: not the job of this token".into(),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("invalid request: {e}")))
}

async fn add_log_entry(
    call: JobCall,
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Response {
    let entry: LogEntryRequest = match read_body(&body, &call) {
        Ok(entry) => entry,
        Err((status, message)) => return plain(status, &message),
    };
    let started_at = entry
        .start_time
        .as_ref()
        .and_then(Value::as_i64)
        .unwrap_or_else(quarry_store::now_ms);
    let command = serde_json::to_string(&entry.command).unwrap_or_else(|_| "[]".into());
    let added = state
        .store
        .append_job_log(
            entry.job_id,
            &call.executor,
            &entry.key,
            &command,
            started_at,
        )
        .await;
    match added {
        Ok(Some(id)) => {
            if (entry.exit_code.is_some() || !entry.out.is_empty())
                && let Err(e) = state
                    .store
                    .update_job_log(
                        entry.job_id,
                        &call.executor,
                        id,
                        entry.exit_code,
                        entry.duration_ms,
                        &entry.out,
                    )
                    .await
            {
                return server_error(&e.to_string());
            }
            Json(id).into_response()
        }
        Ok(None) => server_error("unknown job"),
        Err(e) => server_error(&e.to_string()),
    }
}

async fn update_log_entry(
    call: JobCall,
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Response {
    let entry: LogEntryRequest = match read_body(&body, &call) {
        Ok(entry) => entry,
        Err((status, message)) => return plain(status, &message),
    };
    let Some(entry_id) = entry.entry_id else {
        return plain(StatusCode::BAD_REQUEST, "entryId: missing");
    };
    match state
        .store
        .update_job_log(
            entry.job_id,
            &call.executor,
            entry_id,
            entry.exit_code,
            entry.duration_ms,
            &entry.out,
        )
        .await
    {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => server_error("unknown job"),
        Err(e) => server_error(&e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MarkRequest {
    #[serde(default)]
    error_message: String,
}

/// How an executor ends a job.
#[derive(Clone, Copy)]
enum Mark {
    Complete,
    Errored,
    Failed,
}

async fn mark(call: JobCall, state: &AppState, body: &[u8], how: Mark) -> Response {
    let request: MarkRequest = match read_body(body, &call) {
        Ok(request) => request,
        Err((status, message)) => return plain(status, &message),
    };
    let (queue, worker, id) = (call.job.queue.as_str(), call.executor.as_str(), call.job.id);
    let ended = match how {
        Mark::Complete => state.queues.complete(queue, worker, id).await,
        Mark::Errored => {
            state
                .queues
                .error(queue, worker, id, &request.error_message)
                .await
        }
        Mark::Failed => {
            state
                .queues
                .fail(queue, worker, id, &request.error_message)
                .await
        }
    };
    match ended {
        Ok(Some(JobState::Processing)) | Ok(None) => plain(
            StatusCode::NOT_FOUND,
            "the job is not processing under this executor",
        ),
        Ok(Some(_)) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => server_error(&e.to_string()),
    }
}

async fn mark_complete(
    call: JobCall,
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Response {
    mark(call, &state, &body, Mark::Complete).await
}

async fn mark_errored(
    call: JobCall,
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Response {
    mark(call, &state, &body, Mark::Errored).await
}

async fn mark_failed(
    call: JobCall,
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Response {
    mark(call, &state, &body, Mark::Failed).await
}

static QUEUED: LazyLock<Option<IntGaugeVec>> =
    LazyLock::new(|| gauge("src_executor_total", "Jobs queued, by queue.", &["queue"]));

static OLDEST_QUEUED: LazyLock<Option<IntGaugeVec>> = LazyLock::new(|| {
    gauge(
        "src_executor_queued_duration_seconds_total",
        "Age of the oldest queued job, by queue.",
        &["queue"],
    )
});

static QUEUE_SIZE: LazyLock<Option<IntGaugeVec>> = LazyLock::new(|| {
    gauge(
        "src_executors_queue_size",
        "Jobs queued or processing, by queue: the autoscaling signal.",
        &["queue"],
    )
});

static DESIRED: LazyLock<Option<IntGaugeVec>> = LazyLock::new(|| {
    gauge(
        "src_executors_pool_desired_replicas",
        "Executors each pool of the site configuration wants for its queue.",
        &["pool", "queue"],
    )
});

fn gauge(name: &str, help: &str, labels: &[&str]) -> Option<IntGaugeVec> {
    let gauge = IntGaugeVec::new(Opts::new(name, help), labels).ok()?;
    prometheus::register(Box::new(gauge.clone())).ok()?;
    Some(gauge)
}

/// Each pool of the site configuration, its queue's size and the executors it wants.
fn pools(state: &AppState, sizes: &[(String, QueueStats)]) -> Vec<(ExecutorPool, u64, u64)> {
    state
        .site
        .live()
        .current()
        .executor_pools()
        .into_iter()
        .map(|pool| {
            let size = sizes
                .iter()
                .find(|(q, _)| *q == pool.queue)
                .map_or(0, |(_, s)| (s.queued + s.processing).max(0) as u64);
            let desired = pool.desired(size);
            (pool, size, desired)
        })
        .collect()
}

/// Every few seconds: each queue's size (queued plus processing), the age of its oldest queued
/// job, and each pool's desired executor count, as gauges and for `/.executors/autoscaling`.
pub async fn report_queue_sizes(state: AppState, every: Duration, cancel: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let sizes = match state.queues.refresh_sizes().await {
            Ok(sizes) => sizes,
            Err(e) => {
                tracing::error!(error = %e, "cannot read queue sizes");
                continue;
            }
        };
        let now = quarry_store::now_ms();
        for (queue, stats) in &sizes {
            let age = stats
                .oldest_queued_at
                .map_or(0, |at| (now - at).max(0) / 1000);
            let labels = [queue.as_str()];
            for (gauge, value) in [
                (QUEUED.as_ref(), stats.queued),
                (OLDEST_QUEUED.as_ref(), age),
                (QUEUE_SIZE.as_ref(), stats.queued + stats.processing),
            ] {
                if let Some(gauge) = gauge {
                    gauge.with_label_values(&labels).set(value);
                }
            }
        }
        if let Some(gauge) = DESIRED.as_ref() {
            for (pool, _, desired) in pools(&state, &sizes) {
                gauge
                    .with_label_values(&[pool.name.as_str(), pool.queue.as_str()])
                    .set(i64::try_from(desired).unwrap_or(i64::MAX));
            }
        }
    }
}

/// `GET /.executors/autoscaling`: the latest queue sizes and each pool's desired executor count,
/// for autoscalers (behind the executors' shared secret).
async fn autoscaling(State(state): State<AppState>) -> Response {
    let sizes = state.queues.sizes();
    let now = quarry_store::now_ms();
    let queues: Vec<Value> = sizes
        .iter()
        .map(|(queue, stats)| {
            json!({
                "queue": queue,
                "queued": stats.queued,
                "processing": stats.processing,
                "size": stats.queued + stats.processing,
                "oldestQueuedAgeSeconds": stats.oldest_queued_at.map_or(0, |at| (now - at).max(0) / 1000),
            })
        })
        .collect();
    let pools: Vec<Value> = pools(&state, &sizes)
        .into_iter()
        .map(|(pool, size, desired)| {
            json!({
                "name": pool.name, "queue": pool.queue, "size": size,
                "jobsPerInstanceScaling": pool.jobs_per_instance_scaling,
                "minReplicas": pool.min_replicas, "maxReplicas": pool.max_replicas,
                "desiredReplicas": desired,
            })
        })
        .collect();
    Json(json!({ "queues": queues, "pools": pools })).into_response()
}
