//! The executor protocol in process, on SQLite and PostgreSQL: the shared secret, dequeue with
//! per-job tokens (and waiting for a job), heartbeats that say which jobs an executor still owns
//! and which to cancel, log entries and the final marks, and every way a token can be misused.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use quarry_frontend::{AppState, router};
use quarry_store::JobState;
use quarry_store::testing::with_each_store;
use serde_json::{Value, json};
use tower::ServiceExt;

const SECRET: &str = "a shared executor secret";

/// A request with these headers; answers the status and the body.
async fn send(
    state: &AppState,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, String) {
    let mut request = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Body::from(body.to_string())).expect("request");
    let peer: SocketAddr = "10.0.0.9:5000".parse().expect("address");
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = router(state.clone())
        .oneshot(request)
        .await
        .expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn secret() -> String {
    format!("token-executor {SECRET}")
}

/// A job call's headers.
fn job_headers<'a>(token: &'a str, id: &'a str, executor: &'a str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("Bearer {token}")),
        ("x-sourcegraph-job-id", id.to_string()),
        ("x-sourcegraph-executor-name", executor.to_string()),
    ]
}

async fn job_call(
    state: &AppState,
    path: &str,
    headers: &[(&'static str, String)],
    body: Value,
) -> (StatusCode, String) {
    let borrowed: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    send(state, path, &borrowed, body).await
}

#[tokio::test]
async fn executors_take_jobs_report_on_them_and_cannot_misuse_tokens() {
    with_each_store(|store| async move {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = common::state(store, dir.path()).await;
        let auth = secret();
        let shared = [("authorization", auth.as_str())];

        // No secret configured yet.
        let (status, body) = send(&state, "/.executors/test/auth", &shared, json!({})).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("not configured"));
        let current = state.site.current().await.expect("config");
        state
            .site
            .update(current.id, &format!("{{\"executors.accessToken\": \"{SECRET}\"}}"))
            .await
            .expect("configure executors");
        let (status, _) = send(&state, "/.executors/queue/codeintel/dequeue", &[], json!({"executorName": "e1"})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "no secret");
        let wrong = [("authorization", "token-executor not the secret at all")];
        let (status, _) = send(&state, "/.executors/queue/codeintel/dequeue", &wrong, json!({"executorName": "e1"})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "wrong secret");

        // Nothing queued: 204 at once.
        let (status, body) = send(&state, "/.executors/queue/codeintel/dequeue", &shared, json!({"executorName": "e1"})).await;
        assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
        let (status, _) = send(&state, "/.executors/queue/nope/dequeue", &shared, json!({"executorName": "e1"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "unknown queue");

        let first = state
            .queues
            .enqueue("codeintel", r#"{"commit": "abc", "dockerSteps": [{"image": "alpine", "commands": ["true"]}]}"#, None)
            .await
            .expect("enqueue");
        let second = state.queues.enqueue("codeintel", "{}", None).await.expect("enqueue");
        let (status, body) = send(&state, "/.executors/queue/codeintel/dequeue", &shared, json!({"executorName": "e1"})).await;
        assert_eq!(status, StatusCode::OK);
        let job: Value = serde_json::from_str(&body).expect("job JSON");
        assert_eq!(job["id"], json!(first.id));
        assert_eq!(job["commit"], json!("abc"), "the queue's payload is kept");
        assert_eq!(job["version"], json!(2));
        let token = job["token"].as_str().expect("a token").to_string();
        assert_eq!(token.len(), 40);
        let (status, body) = send(&state, "/.executors/queue/dequeue", &shared, json!({"executorName": "e2", "queues": ["codeintel"]})).await;
        assert_eq!(status, StatusCode::OK);
        let job2: Value = serde_json::from_str(&body).expect("job JSON");
        assert_eq!((job2["id"].clone(), job2["queue"].clone()), (json!(second.id), json!("codeintel")));
        let token2 = job2["token"].as_str().expect("a token").to_string();

        // Job calls need an executor that sent a heartbeat.
        let id = first.id.to_string();
        let log = json!({"executorName": "e1", "jobId": first.id, "key": "step.0", "command": ["true"], "startTime": 1});
        let (status, _) = job_call(&state, "/.executors/queue/codeintel/addExecutionLogEntry", &job_headers(&token, &id, "e1"), log.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "no heartbeat yet");
        let beat = json!({"executorName": "e1", "queueNames": ["codeintel"], "jobIdsByQueue": [{"queueName": "codeintel", "jobIds": [format!("{}-codeintel", first.id), format!("{}-codeintel", second.id)]}]});
        let (status, body) = send(&state, "/.executors/queue/heartbeat", &shared, beat).await;
        assert_eq!(status, StatusCode::OK);
        let answer: Value = serde_json::from_str(&body).expect("heartbeat JSON");
        assert_eq!(answer, json!({"knownIds": [format!("{}-codeintel", first.id)], "cancelIds": []}), "e2 owns the second job");
        let (status, _) = send(&state, "/.executors/queue/codeintel/heartbeat", &shared, json!({"executorName": "e2", "jobIds": [second.id]})).await;
        assert_eq!(status, StatusCode::OK);

        // Misused tokens.
        let path = "/.executors/queue/codeintel/addExecutionLogEntry";
        let (status, _) = job_call(&state, path, &job_headers(&token2, &id, "e1"), log.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "job B's token for job A");
        let (status, _) = job_call(&state, "/.executors/queue/batches/addExecutionLogEntry", &job_headers(&token, &id, "e1"), log.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "another queue");
        let (status, _) = job_call(&state, path, &job_headers(&token, &id, "e2"), log.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "another executor");
        let (status, _) = job_call(&state, path, &job_headers(&token, "x", "e1"), log.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "a job id that is not one");
        let (status, _) = job_call(&state, path, &job_headers("0123456789abcdef0123456789abcdef01234567", &id, "e1"), log.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a forged token");
        let mut other_body = log.clone();
        other_body["jobId"] = json!(second.id);
        let (status, _) = job_call(&state, path, &job_headers(&token, &id, "e1"), other_body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a body about another job");

        // Logs and the end of a job.
        let (status, body) = job_call(&state, path, &job_headers(&token, &id, "e1"), log.clone()).await;
        assert_eq!(status, StatusCode::OK);
        let entry: i64 = body.parse().expect("an entry id");
        let update = json!({"executorName": "e1", "jobId": first.id, "entryId": entry, "key": "step.0", "exitCode": 0, "out": "done\n", "durationMs": 7});
        let (status, _) = job_call(&state, "/.executors/queue/codeintel/updateExecutionLogEntry", &job_headers(&token, &id, "e1"), update).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let mark = json!({"executorName": "e1", "jobId": first.id});
        let (status, _) = job_call(&state, "/.executors/queue/codeintel/markComplete", &job_headers(&token, &id, "e1"), mark.clone()).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = job_call(&state, "/.executors/queue/codeintel/markComplete", &job_headers(&token, &id, "e1"), mark).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "the token is gone with the job's final state");
        let stored = state.queues.store().job(first.id).await.expect("job").expect("exists");
        assert_eq!(stored.state, JobState::Completed);
        let logs = state.queues.store().job_logs(first.id).await.expect("logs");
        assert_eq!((logs.len(), logs[0].output.as_str(), logs[0].exit_code), (1, "done\n", Some(0)));

        // Cancellation reaches the executor through its heartbeat.
        state.queues.cancel(second.id).await.expect("cancel");
        let (_, body) = send(&state, "/.executors/queue/codeintel/heartbeat", &shared, json!({"executorName": "e2", "jobIds": [second.id]})).await;
        let answer: Value = serde_json::from_str(&body).expect("heartbeat JSON");
        assert_eq!(answer["cancelIds"], json!([second.id.to_string()]));
        let id2 = second.id.to_string();
        let failed = json!({"executorName": "e2", "jobId": second.id, "errorMessage": "canceled"});
        let (status, _) = job_call(&state, "/.executors/queue/codeintel/markFailed", &job_headers(&token2, &id2, "e2"), failed).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let stored = state.queues.store().job(second.id).await.expect("job").expect("exists");
        assert_eq!(stored.state, JobState::Canceled);

        // A waiting dequeue takes a job the moment it is queued.
        let waiting = {
            let state = state.clone();
            let auth = auth.clone();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let answer = send(&state, "/.executors/queue/codeintel/dequeue", &[("authorization", auth.as_str())], json!({"executorName": "e1", "waitMs": 20000})).await;
                (answer, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let third = state.queues.enqueue("codeintel", "{}", None).await.expect("enqueue");
        let ((status, body), waited) = waiting.await.expect("task");
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains(&format!("\"id\":{}", third.id)), "{body}");
        assert!(waited < Duration::from_secs(20), "{waited:?}");
    })
    .await;
}
