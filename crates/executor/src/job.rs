//! One job: its workspace, its files, its steps in order with their logs, and its end.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::api::{Client, Job, LogEntry, now_ms};
use crate::clone::Mirrors;
use crate::sandbox::{self, Limits, Root, Step, StepEnd};
use crate::{Config, ExecutorError, NetworkPolicy};
use quarry_images::ImageStore;

/// How far behind the step the instance's copy of a log may be.
const LOG_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The most output kept per step; the rest is cut with a notice.
const MAX_STEP_OUTPUT: usize = 4 * 1024 * 1024;

/// Replaces secrets in text before it leaves the executor.
#[derive(Clone)]
pub struct Redactor {
    replacements: Vec<(String, String)>,
}

impl Redactor {
    fn new(job: &Job, shared_secret: &str) -> Redactor {
        let mut replacements: Vec<(String, String)> = job
            .redacted_values
            .iter()
            .filter(|(secret, _)| !secret.is_empty())
            .map(|(secret, replacement)| (secret.clone(), replacement.clone()))
            .collect();
        replacements.push((shared_secret.to_string(), "PASSWORD_REMOVED".into()));
        replacements.push((job.token.clone(), "TOKEN_REMOVED".into()));
        // Longer secrets first, so one that contains another is replaced whole.
        replacements.sort_by_key(|(secret, _)| std::cmp::Reverse(secret.len()));
        Redactor { replacements }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (secret, replacement) in &self.replacements {
            if !secret.is_empty() && out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), replacement);
            }
        }
        out
    }
}

/// A path of the job inside the workspace, or an error when it would leave it.
fn inside(workspace: &Path, relative: &str) -> Result<PathBuf, ExecutorError> {
    let path = Path::new(relative);
    if relative.is_empty()
        || path.is_absolute()
        || path.components().any(|c| {
            matches!(
                c,
                Component::ParentDir | Component::RootDir | Component::Prefix(_)
            )
        })
    {
        return Err(ExecutorError::Workspace(format!(
            "{relative:?} is not a path inside the workspace"
        )));
    }
    Ok(workspace.join(path))
}

/// Writes the job's files; v2 payloads carry `{content}` (base64 or text), older ones a string.
fn write_files(workspace: &Path, job: &Job) -> Result<(), ExecutorError> {
    use base64::Engine;
    for (relative, value) in &job.files {
        let target = inside(workspace, relative)?;
        let content: Vec<u8> = match value {
            Value::String(text) => text.clone().into_bytes(),
            Value::Object(fields) => match fields.get("content") {
                Some(Value::String(encoded)) => base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .unwrap_or_else(|_| encoded.clone().into_bytes()),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ExecutorError::Workspace(format!("{relative}: {e}")))?;
        }
        // A symlink already in the workspace must not lead the write elsewhere.
        if std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(ExecutorError::Workspace(format!(
                "{relative:?} is a symbolic link; refusing to write through it"
            )));
        }
        std::fs::write(&target, content)
            .map_err(|e| ExecutorError::Workspace(format!("{relative}: {e}")))?;
    }
    Ok(())
}

/// Lets the sandbox's unprivileged user write everything in the workspace.
fn open_to_steps(dir: &Path) -> Result<(), ExecutorError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::symlink_metadata(dir)
        .map_err(|e| ExecutorError::Workspace(format!("{}: {e}", dir.display())))?;
    if metadata.file_type().is_symlink() {
        return Ok(());
    }
    let mode = if metadata.is_dir() {
        0o777
    } else {
        metadata.permissions().mode() | 0o666
    };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| ExecutorError::Workspace(format!("{}: {e}", dir.display())))?;
    if metadata.is_dir() {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| ExecutorError::Workspace(format!("{}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            open_to_steps(&entry.path())?;
        }
    }
    Ok(())
}

/// `KEY=value` pairs; entries without `=` are refused.
fn step_env(env: &[String]) -> Result<Vec<(String, String)>, ExecutorError> {
    env.iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| ExecutorError::Workspace(format!("env: {pair:?} is not KEY=value")))
        })
        .collect()
}

/// The job's workspace: a fresh directory the steps can write (the sandbox runs them as an
/// unprivileged user).
fn make_workspace(config: &Config, job: &Job) -> Result<PathBuf, ExecutorError> {
    let mut suffix = [0u8; 6];
    let _ = getrandom::fill(&mut suffix);
    let name: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let dir = config.workspace_root.join(format!("job-{}-{name}", job.id));
    std::fs::create_dir_all(&dir)
        .map_err(|e| ExecutorError::Workspace(format!("cannot create the workspace: {e}")))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
        .map_err(|e| ExecutorError::Workspace(format!("cannot open the workspace: {e}")))?;
    Ok(dir)
}

/// What the jobs of one executor share.
pub struct Context {
    pub client: Client,
    /// The executor's name.
    pub executor: String,
    pub config: Config,
    /// Where images come from, when steps run on them.
    pub images: Option<ImageStore>,
    pub mirrors: Mirrors,
}

/// Runs a job to its end and reports it. Problems reaching the instance are logged; the job's
/// own failures are reported as its outcome.
pub async fn run_job(context: &Context, job: Job, cancel: CancellationToken) {
    let Context {
        client,
        executor,
        config,
        ..
    } = context;
    let started = Instant::now();
    let queue = job.queue.clone();
    tracing::info!(job = job.id, %queue, "job started");
    if let Some(metrics) = crate::metrics::METRICS.as_ref() {
        metrics.handlers.with_label_values(&[&queue]).inc();
    }
    let redactor = Redactor::new(&job, &config.frontend_password);
    let workspace = match make_workspace(config, &job) {
        Ok(dir) => dir,
        Err(e) => {
            report(client, executor, &job, &Err(e.to_string()), false).await;
            return;
        }
    };
    let outcome = run_steps(context, &job, &workspace, &redactor, &cancel).await;
    let canceled = cancel.is_cancelled();
    report(client, executor, &job, &outcome, canceled).await;
    if !config.keep_workspaces {
        let _ = std::fs::remove_dir_all(&workspace);
    }
    if let Some(metrics) = crate::metrics::METRICS.as_ref() {
        let labels = [queue.as_str(), "handle"];
        metrics.handlers.with_label_values(&[&queue]).dec();
        metrics.jobs.with_label_values(&labels).inc();
        metrics
            .job_duration
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
        if outcome.is_err() {
            metrics.job_errors.with_label_values(&labels).inc();
        }
    }
    tracing::info!(
        job = job.id,
        ok = outcome.is_ok(),
        seconds = started.elapsed().as_secs_f64(),
        "job ended"
    );
}

async fn report(
    client: &Client,
    executor: &str,
    job: &Job,
    outcome: &Result<(), String>,
    final_failure: bool,
) {
    if let Err(e) = client.mark(job, executor, outcome, final_failure).await {
        tracing::warn!(job = job.id, error = %e, "cannot report the job's end");
    }
}

async fn run_steps(
    context: &Context,
    job: &Job,
    workspace: &Path,
    redactor: &Redactor,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let Context {
        client,
        executor,
        config,
        images,
        mirrors,
    } = context;
    let mut mirror = None;
    if !job.repository_name.is_empty() {
        let target = if job.repository_directory.is_empty() {
            workspace.to_path_buf()
        } else {
            inside(workspace, &job.repository_directory).map_err(|e| e.to_string())?
        };
        std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
        mirror = Some(
            mirrors
                .checkout(client, executor, job, &target)
                .await
                .map_err(|e| format!("cannot clone {}: {e}", job.repository_name))?,
        );
        open_to_steps(workspace).map_err(|e| e.to_string())?;
    }
    write_files(workspace, job).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + config.max_runtime_per_job;
    let limits = Limits {
        memory_bytes: config.job_memory_bytes,
        max_processes: config.job_max_processes,
        cpus: config.job_cpus,
        network: match config.job_network {
            NetworkPolicy::Queue => job.network,
            NetworkPolicy::Always => true,
            NetworkPolicy::Never => false,
        },
    };
    for (index, step) in job.docker_steps.iter().enumerate() {
        let key = if step.key.is_empty() {
            format!("step.docker.{index}")
        } else {
            step.key.clone()
        };
        if !step.dir.is_empty() {
            inside(workspace, &step.dir).map_err(|e| e.to_string())?;
        }
        let env = step_env(&step.env).map_err(|e| e.to_string())?;
        let script = step.commands.join("\n");
        let log = OpenedLog {
            client: client.clone(),
            executor: executor.to_string(),
            job: job.clone(),
            key: key.clone(),
            command: step.commands.clone(),
            start_time_ms: now_ms(),
            id: None,
        };
        let output = Arc::new(Mutex::new(Vec::<u8>::new()));
        let flushing = CancellationToken::new();
        let flusher = tokio::spawn(flush_log(
            log,
            output.clone(),
            redactor.clone(),
            flushing.clone(),
        ));
        let step_started = Instant::now();
        // The step's image (when steps run on images), noted at the top of its log.
        let image = match images {
            Some(images) => match images.get(&step.image).await {
                Ok((image, provenance)) => {
                    if let Ok(mut buffer) = output.lock() {
                        let note =
                            quarry_images::describe(&step.image, &image, provenance, step_started);
                        buffer.extend_from_slice(note.as_bytes());
                    }
                    Ok(Some(image))
                }
                Err(e) => Err(ExecutorError::Sandbox(format!(
                    "step {key}: cannot get its image: {e}"
                ))),
            },
            None => Ok(None),
        };
        let sink = output.clone();
        let mut collect = move |bytes: &[u8]| {
            if let Ok(mut buffer) = sink.lock()
                && buffer.len() < MAX_STEP_OUTPUT
            {
                let room = MAX_STEP_OUTPUT - buffer.len();
                buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
        };
        let cgroup_name = format!("job-{}-{index}-{}", job.id, std::process::id());
        let ended = match &image {
            Ok(image) => {
                let root = image.as_ref().map_or(Root::Host, Root::Image);
                sandbox::run_step(
                    config.runtime,
                    &cgroup_name,
                    &Step {
                        script: &script,
                        workspace,
                        dir: &step.dir,
                        env: &env,
                        root,
                        readable: mirror.as_deref(),
                        deadline,
                    },
                    &limits,
                    cancel,
                    &mut collect,
                )
                .await
            }
            Err(e) => Err(ExecutorError::Sandbox(e.to_string())),
        };
        flushing.cancel();
        let log = flusher.await;
        let (exit_code, verdict) = match &ended {
            Ok(StepEnd::Exited(0)) => (Some(0), Ok(())),
            Ok(StepEnd::Exited(code)) => (
                Some(*code),
                Err(format!("step {key} failed with exit code {code}")),
            ),
            Ok(StepEnd::Signaled(signal)) => (
                Some(128 + signal),
                Err(format!("step {key} was killed by signal {signal}")),
            ),
            Ok(StepEnd::TimedOut) => (
                None,
                Err(format!(
                    "the job ran longer than EXECUTOR_MAXIMUM_RUNTIME_PER_JOB ({}) and was stopped in step {key}",
                    humantime::format_duration(config.max_runtime_per_job)
                )),
            ),
            Ok(StepEnd::Canceled) => (None, Err(format!("the job was canceled during step {key}"))),
            Err(e) => (None, Err(e.to_string())),
        };
        let mut text =
            String::from_utf8_lossy(&output.lock().map(|b| b.clone()).unwrap_or_default())
                .into_owned();
        if let Err(message) = &verdict {
            text.push_str(&format!("\nquarry: {message}\n"));
        }
        let duration_ms = step_started.elapsed().as_millis() as u64;
        let text = redactor.redact(&text);
        let sent = match log {
            Ok(mut log) => log.send(&text, exit_code, Some(duration_ms)).await,
            Err(e) => Err(ExecutorError::Api(format!(
                "the log's flusher stopped: {e}"
            ))),
        };
        if let Err(e) = sent {
            tracing::warn!(job = job.id, error = %e, "cannot upload the step's log");
        }
        verdict?;
    }
    if !job.outfile.is_empty() {
        upload(client, executor, job, workspace, redactor).await?;
    }
    Ok(())
}

/// Uploads the index the job's indexer wrote, with a log entry saying how it went.
async fn upload(
    client: &Client,
    executor: &str,
    job: &Job,
    workspace: &Path,
    redactor: &Redactor,
) -> Result<(), String> {
    let relative = if job.root.is_empty() {
        job.outfile.clone()
    } else {
        format!("{}/{}", job.root.trim_end_matches('/'), job.outfile)
    };
    let command = vec!["upload".to_string(), relative.clone()];
    let start_time_ms = now_ms();
    let started = Instant::now();
    let outcome = match inside(workspace, &relative).map(std::fs::read) {
        Ok(Ok(index)) => client
            .upload_index(job, &index)
            .await
            .map(|id| format!("uploaded {} bytes as upload {id}\n", index.len()))
            .map_err(|e| format!("the upload was refused: {e}")),
        Ok(Err(e)) => Err(format!("the indexer wrote no {relative}: {e}")),
        Err(e) => Err(e.to_string()),
    };
    let (exit_code, text) = match &outcome {
        Ok(text) => (0, text.clone()),
        Err(message) => (1, format!("quarry: {message}\n")),
    };
    // One call once the upload has ended: it writes no output while it runs.
    let entry = LogEntry {
        key: "upload",
        command: &command,
        start_time_ms,
        exit_code: Some(exit_code),
        duration_ms: Some(started.elapsed().as_millis() as u64),
        out: &redactor.redact(&text),
    };
    if let Err(e) = client.add_log_entry(job, executor, &entry).await {
        tracing::warn!(job = job.id, error = %e, "cannot upload the upload's log");
    }
    outcome.map(|_| ())
}

/// A step's entry in the job's log on the instance, opened at its first flush: a step that ends
/// within a flush interval costs one call for its whole entry, a longer one is shown running
/// within a second and updated as it goes.
struct OpenedLog {
    client: Client,
    executor: String,
    job: Job,
    key: String,
    command: Vec<String>,
    start_time_ms: i64,
    /// The entry's id once opened.
    id: Option<i64>,
}

impl OpenedLog {
    /// Sends the step's (redacted) output so far, or, with an exit code, its end.
    async fn send(
        &mut self,
        out: &str,
        exit_code: Option<i32>,
        duration_ms: Option<u64>,
    ) -> Result<(), ExecutorError> {
        let entry = LogEntry {
            key: &self.key,
            command: &self.command,
            start_time_ms: self.start_time_ms,
            exit_code,
            duration_ms,
            out,
        };
        match self.id {
            Some(id) => {
                self.client
                    .update_log_entry(&self.job, &self.executor, id, &entry)
                    .await
            }
            None => {
                let id = self
                    .client
                    .add_log_entry(&self.job, &self.executor, &entry)
                    .await?;
                self.id = Some(id);
                Ok(())
            }
        }
    }
}

/// Sends a running step's output every second until stopped (the first time whether or not it
/// wrote anything, so that the step shows as running); gives the log back for its end.
async fn flush_log(
    mut log: OpenedLog,
    output: Arc<Mutex<Vec<u8>>>,
    redactor: Redactor,
    stop: CancellationToken,
) -> OpenedLog {
    let mut sent = 0usize;
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + LOG_FLUSH_INTERVAL,
        LOG_FLUSH_INTERVAL,
    );
    loop {
        tokio::select! {
            _ = stop.cancelled() => return log,
            _ = ticks.tick() => {}
        }
        let snapshot = match output.lock() {
            Ok(buffer) if buffer.len() != sent || log.id.is_none() => buffer.clone(),
            _ => continue,
        };
        sent = snapshot.len();
        let text = redactor.redact(&String::from_utf8_lossy(&snapshot));
        if let Err(e) = log.send(&text, None, None).await {
            tracing::warn!(job = log.job.id, error = %e, "cannot upload the step's log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_workspace_are_refused() {
        let root = Path::new("/w");
        assert_eq!(
            inside(root, "a/b.txt").expect("inside"),
            Path::new("/w/a/b.txt")
        );
        for bad in ["/etc/passwd", "../x", "a/../../x", ""] {
            assert!(inside(root, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_redacted_longest_first() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "id": 1, "token": "tok123",
            "redactedValues": { "abc": "${{ secrets.SHORT }}", "abcdef": "${{ secrets.LONG }}" },
        }))
        .expect("job");
        let redactor = Redactor::new(&job, "shared-secret");
        assert_eq!(
            redactor.redact("abcdef abc shared-secret tok123"),
            "${{ secrets.LONG }} ${{ secrets.SHORT }} PASSWORD_REMOVED TOKEN_REMOVED"
        );
    }
}
