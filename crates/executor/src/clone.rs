//! Cloning a job's repository into its workspace through a local proxy: git talks to a loopback
//! port of this process, which adds the job's token on the way to the instance's
//! `/.executors/git/` route, so no credential is ever on git's command line, in its config or in
//! the workspace.

use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use crate::ExecutorError;
use crate::api::{Client, Job};

/// The largest request git sends through the proxy (a fetch's list of wants and haves).
const MAX_GIT_REQUEST: usize = 64 * 1024 * 1024;

/// How long a clone may take.
const CLONE_TIMEOUT: Duration = Duration::from_secs(600);

/// Clones tried before the job fails (the instance may be restarting).
const CLONE_TRIES: u32 = 5;

/// Headers passed through in each direction.
const PASSED: [&str; 4] = ["content-type", "git-protocol", "accept", "content-encoding"];

#[derive(Clone)]
struct ProxyState {
    http: reqwest::Client,
    upstream: String,
    token: String,
    job_id: String,
    executor: String,
}

async fn forward(State(proxy): State<ProxyState>, request: Request) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let method = request.method().clone();
    let mut outgoing = proxy
        .http
        .request(method, format!("{}{path}", proxy.upstream))
        .bearer_auth(&proxy.token)
        .header("X-Sourcegraph-Job-ID", &proxy.job_id)
        .header("X-Sourcegraph-Executor-Name", &proxy.executor);
    for name in PASSED {
        if let Some(value) = request.headers().get(name) {
            outgoing = outgoing.header(name, value);
        }
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_GIT_REQUEST).await {
        Ok(body) => body,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request too large").into_response(),
    };
    let answer = match outgoing.body(body).send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for name in PASSED {
        if let Some(value) = answer.headers().get(name) {
            response = response.header(HeaderName::from_static(name), value.as_bytes());
        }
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// Runs git with a timeout, failing with its message.
async fn git(args: &[&str], dir: &Path) -> Result<(), ExecutorError> {
    let run = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(CLONE_TIMEOUT, run)
        .await
        .map_err(|_| ExecutorError::Workspace(format!("git {} timed out", args[0])))?
        .map_err(|e| ExecutorError::Workspace(format!("cannot run git: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(ExecutorError::Workspace(format!(
            "git {} failed: {}",
            args[0],
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Removes what a failed clone left in `target`, keeping the directory.
fn empty(target: &Path) -> Result<(), ExecutorError> {
    let Ok(entries) = std::fs::read_dir(target) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| ExecutorError::Workspace(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// Clones the job's repository at its commit into `target` (inside the workspace).
pub async fn clone_repository(
    client: &Client,
    executor: &str,
    job: &Job,
    target: &Path,
) -> Result<(), ExecutorError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| ExecutorError::Workspace(format!("cannot start the git proxy: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| ExecutorError::Workspace(e.to_string()))?;
    let state = ProxyState {
        http: reqwest::Client::new(),
        upstream: format!("{}/.executors/git", client.base()),
        token: job.token.clone(),
        job_id: job.id.to_string(),
        executor: executor.to_string(),
    };
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let server = tokio::spawn(async move {
        let app = Router::new().fallback(forward).with_state(state);
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await;
    });
    let url = format!("http://{address}/{}", job.repository_name);
    let target_text = target.to_string_lossy().into_owned();
    let parent = target.parent().unwrap_or(target);
    let cloned = async {
        let clone = ["clone", "--quiet", "--no-checkout", &url, &target_text];
        let mut tries = 0;
        loop {
            tries += 1;
            match git(&clone, parent).await {
                Ok(()) => break,
                Err(e) if tries >= CLONE_TRIES => return Err(e),
                Err(e) => {
                    tracing::warn!(job = job.id, error = %e, "clone failed; trying again");
                    empty(target)?;
                    tokio::time::sleep(Duration::from_secs(u64::from(tries))).await;
                }
            }
        }
        if !job.commit.is_empty() {
            git(&["checkout", "--quiet", "--detach", &job.commit], target).await?;
        } else {
            git(&["checkout", "--quiet"], target).await?;
        }
        // The proxy's address means nothing after the job: leave no remote behind.
        git(&["remote", "remove", "origin"], target).await
    }
    .await;
    stop.cancel();
    let _ = server.await;
    cloned
}
