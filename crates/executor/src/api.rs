//! The executor's side of the `/.executors/` protocol.

use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ExecutorError;

/// A step of a job (Sourcegraph's `dockerSteps` entry).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct JobStep {
    #[serde(default)]
    pub key: String,
    /// An OCI image; steps run on the host's system directories for now, so it names what the
    /// step expects to find there.
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub commands: Vec<String>,
    #[serde(default)]
    pub dir: String,
    /// `KEY=value` pairs.
    #[serde(default)]
    pub env: Vec<String>,
}

/// A job as dequeued.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: i64,
    /// The queue it came from (multi-queue dequeues name it; otherwise the only one asked).
    #[serde(default)]
    pub queue: String,
    pub token: String,
    #[serde(default)]
    pub repository_name: String,
    /// Where in the workspace the repository goes (the workspace itself by default).
    #[serde(default)]
    pub repository_directory: String,
    #[serde(default)]
    pub commit: String,
    /// Files to write into the workspace: path to content.
    #[serde(default)]
    pub files: std::collections::BTreeMap<String, Value>,
    #[serde(default)]
    pub docker_steps: Vec<JobStep>,
    /// Whether the queue lets this job's steps use the network (`executors.jobNetwork`).
    #[serde(default)]
    pub network: bool,
    /// Where the index job's indexer writes its index, relative to `root` (codeintel jobs).
    #[serde(default)]
    pub outfile: String,
    /// The index job's directory in the repository.
    #[serde(default)]
    pub root: String,
    #[serde(default)]
    pub indexer: String,
    /// Secrets to replace in logs: value to replacement.
    #[serde(default)]
    pub redacted_values: std::collections::BTreeMap<String, String>,
}

/// What the heartbeat reports about the executor.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Telemetry {
    pub os: String,
    pub architecture: String,
    pub executor_version: String,
    pub git_version: String,
    pub docker_version: String,
    pub src_cli_version: String,
}

/// How long calls keep trying an instance that cannot be reached (a restart).
const UNREACHABLE_GRACE: Duration = Duration::from_secs(30);

/// Pause between those tries.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct Client {
    base: String,
    secret: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, secret: &str) -> Result<Client, ExecutorError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ExecutorError::Api(e.to_string()))?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            secret: secret.to_string(),
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request built by `build`. One that cannot reach the instance (it may be
    /// restarting) is sent again for up to [`UNREACHABLE_GRACE`]; an answer, whatever its
    /// status, is returned.
    async fn send(
        &self,
        op: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(StatusCode, String), ExecutorError> {
        let first_try = std::time::Instant::now();
        loop {
            let started = std::time::Instant::now();
            match build().send().await {
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    crate::metrics::api_call(op, started, status.is_success());
                    return Ok((status, text));
                }
                Err(e) => {
                    crate::metrics::api_call(op, started, false);
                    if first_try.elapsed() >= UNREACHABLE_GRACE {
                        return Err(ExecutorError::Api(format!("{op}: {e}")));
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    async fn post(
        &self,
        path: &str,
        body: &Value,
        job: Option<(&Job, &str)>,
        timeout: Duration,
    ) -> Result<(StatusCode, String), ExecutorError> {
        let op = path.rsplit('/').next().unwrap_or(path);
        self.send(op, || {
            let request = self
                .http
                .post(format!("{}/.executors/{path}", self.base))
                .timeout(timeout)
                .json(body);
            match job {
                Some((job, executor)) => request
                    .bearer_auth(&job.token)
                    .header("X-Sourcegraph-Job-ID", job.id.to_string())
                    .header("X-Sourcegraph-Executor-Name", executor),
                None => request.header("Authorization", format!("token-executor {}", self.secret)),
            }
        })
        .await
    }

    fn unexpected(path: &str, status: StatusCode, body: &str) -> ExecutorError {
        ExecutorError::Api(format!(
            "{path}: unexpected status code {status}: {}",
            body.trim()
        ))
    }

    /// `GET /.executors/test/auth`.
    pub async fn test_auth(&self) -> Result<(), ExecutorError> {
        let response = self
            .http
            .get(format!("{}/.executors/test/auth", self.base))
            .header("Authorization", format!("token-executor {}", self.secret))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| ExecutorError::Api(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(Self::unexpected("test/auth", status, &body))
    }

    /// Takes a job from the queues, waiting up to `wait` for one.
    pub async fn dequeue(
        &self,
        queues: &[String],
        executor: &str,
        wait: Duration,
    ) -> Result<Option<Job>, ExecutorError> {
        let body = json!({
            "executorName": executor,
            "queues": queues,
            "waitMs": wait.as_millis() as u64,
        });
        let (status, text) = self
            .post("queue/dequeue", &body, None, wait + Duration::from_secs(30))
            .await?;
        match status {
            StatusCode::NO_CONTENT => Ok(None),
            StatusCode::OK => {
                let mut job: Job = serde_json::from_str(&text)
                    .map_err(|e| ExecutorError::Api(format!("dequeue: unreadable job: {e}")))?;
                if job.queue.is_empty() {
                    match queues {
                        [only] => job.queue = only.clone(),
                        _ => {
                            return Err(ExecutorError::Api(
                                "dequeue: the job does not say which queue it is from".into(),
                            ));
                        }
                    }
                }
                Ok(Some(job))
            }
            other => Err(Self::unexpected("dequeue", other, &text)),
        }
    }

    /// Reports the jobs this executor runs; answers the ones to cancel.
    pub async fn heartbeat(
        &self,
        executor: &str,
        queues: &[String],
        running: &[(i64, String)],
        telemetry: &Telemetry,
    ) -> Result<Vec<i64>, ExecutorError> {
        let by_queue: Vec<Value> = queues
            .iter()
            .map(|queue| {
                let ids: Vec<String> = running
                    .iter()
                    .filter(|(_, q)| q == queue)
                    .map(|(id, q)| format!("{id}-{q}"))
                    .collect();
                json!({ "queueName": queue, "jobIds": ids })
            })
            .collect();
        let mut body = serde_json::to_value(telemetry).unwrap_or_else(|_| json!({}));
        body["executorName"] = json!(executor);
        body["queueNames"] = json!(queues);
        body["jobIdsByQueue"] = json!(by_queue);
        body["prometheusMetrics"] = json!(crate::metrics::text());
        let (status, text) = self
            .post("queue/heartbeat", &body, None, Duration::from_secs(10))
            .await?;
        if status != StatusCode::OK {
            return Err(Self::unexpected("heartbeat", status, &text));
        }
        let answer: Value = serde_json::from_str(&text)
            .map_err(|e| ExecutorError::Api(format!("heartbeat: {e}")))?;
        Ok(answer["cancelIds"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str())
                    .filter_map(|id| id.split('-').next()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// A job's own call (`queue/<queue>/<route>` with its token), answering the body of the
    /// `expected` status.
    async fn job_call(
        &self,
        job: &Job,
        executor: &str,
        route: &str,
        body: &Value,
        expected: StatusCode,
    ) -> Result<String, ExecutorError> {
        let path = format!("queue/{}/{route}", job.queue);
        let (status, text) = self
            .post(&path, body, Some((job, executor)), Duration::from_secs(30))
            .await?;
        if status != expected {
            return Err(Self::unexpected(&path, status, &text));
        }
        Ok(text)
    }

    /// `addExecutionLogEntry`: opens a log entry, with what is known of it so far (an entry
    /// sent once the step has ended carries its exit code, duration and output). Answers its id.
    pub async fn add_log_entry(
        &self,
        job: &Job,
        executor: &str,
        entry: &LogEntry<'_>,
    ) -> Result<i64, ExecutorError> {
        let body = json!({
            "executorName": executor, "jobId": job.id, "key": entry.key, "command": entry.command,
            "startTime": entry.start_time_ms, "exitCode": entry.exit_code,
            "durationMs": entry.duration_ms, "out": entry.out,
        });
        let text = self
            .job_call(job, executor, "addExecutionLogEntry", &body, StatusCode::OK)
            .await?;
        text.trim().parse().map_err(|_| {
            ExecutorError::Api(format!("addExecutionLogEntry: not an entry id: {text}"))
        })
    }

    /// `updateExecutionLogEntry`: replaces an open entry's output (and ends it, with an exit code).
    pub async fn update_log_entry(
        &self,
        job: &Job,
        executor: &str,
        id: i64,
        entry: &LogEntry<'_>,
    ) -> Result<(), ExecutorError> {
        let body = json!({
            "executorName": executor, "jobId": job.id, "entryId": id, "key": entry.key,
            "exitCode": entry.exit_code, "durationMs": entry.duration_ms, "out": entry.out,
        });
        self.job_call(
            job,
            executor,
            "updateExecutionLogEntry",
            &body,
            StatusCode::NO_CONTENT,
        )
        .await
        .map(drop)
    }

    /// Uploads a SCIP index for the job (gzipped, with the shared secret; the secret never
    /// enters the sandbox). Answers the upload id.
    pub async fn upload_index(&self, job: &Job, index: &[u8]) -> Result<String, ExecutorError> {
        use std::io::Write;
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(index)
            .map_err(|e| ExecutorError::Workspace(e.to_string()))?;
        let body = gzip
            .finish()
            .map_err(|e| ExecutorError::Workspace(e.to_string()))?;
        let index_id = job.id.to_string();
        let query = [
            ("repository", job.repository_name.as_str()),
            ("commit", job.commit.as_str()),
            ("root", job.root.as_str()),
            ("indexerName", job.indexer.as_str()),
            ("associatedIndexId", index_id.as_str()),
        ];
        let (status, text) = self
            .send("upload", || {
                self.http
                    .post(format!("{}/.executors/scip/upload", self.base))
                    .query(&query)
                    .header("Authorization", format!("token-executor {}", self.secret))
                    .header("X-Uncompressed-Size", index.len().to_string())
                    .timeout(Duration::from_secs(600))
                    .body(body.clone())
            })
            .await?;
        if status != StatusCode::OK {
            return Err(Self::unexpected("scip/upload", status, &text));
        }
        let answer: Value = serde_json::from_str(&text).unwrap_or_default();
        Ok(answer["id"].as_str().unwrap_or_default().to_string())
    }

    /// `markComplete`, or `markErrored` / `markFailed` with a message.
    pub async fn mark(
        &self,
        job: &Job,
        executor: &str,
        outcome: &Result<(), String>,
        final_failure: bool,
    ) -> Result<(), ExecutorError> {
        let (route, body) = match outcome {
            Ok(()) => (
                "markComplete",
                json!({ "executorName": executor, "jobId": job.id }),
            ),
            Err(message) => (
                if final_failure {
                    "markFailed"
                } else {
                    "markErrored"
                },
                json!({ "executorName": executor, "jobId": job.id, "errorMessage": message }),
            ),
        };
        self.job_call(job, executor, route, &body, StatusCode::NO_CONTENT)
            .await
            .map(drop)
    }
}

/// A log entry as the executor sends it.
#[derive(Debug, Clone)]
pub struct LogEntry<'a> {
    pub key: &'a str,
    pub command: &'a [String],
    pub start_time_ms: i64,
    /// Set once the step has ended.
    pub exit_code: Option<i32>,
    pub duration_ms: Option<u64>,
    /// Already redacted.
    pub out: &'a str,
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
