//! Auto-indexing jobs (Sourcegraph's names): `queueAutoIndexJobsForRepo` puts index jobs on the
//! executors' `codeintel` queue, from an auto-index configuration or inferred from the
//! repository (`package.json`/`tsconfig.json`: scip-typescript; `Cargo.toml`: rust-analyzer),
//! and `preciseIndexes` shows them with Sourcegraph's states.

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use quarry_store::{JobRecord, JobState};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{SiteAdmin, bad_input, decode_id, encode_id, not_found, page_size, store_error};
use crate::AppState;

/// The executors' queue for indexing jobs.
const QUEUE: &str = "codeintel";

/// One index job of an auto-index configuration (Sourcegraph's `index_jobs` entry).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct IndexJob {
    #[serde(default)]
    steps: Vec<PreIndexStep>,
    #[serde(default)]
    local_steps: Vec<String>,
    #[serde(default)]
    root: String,
    indexer: String,
    #[serde(default)]
    indexer_args: Vec<String>,
    #[serde(default)]
    outfile: String,
    #[serde(default)]
    requested_envvars: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct PreIndexStep {
    #[serde(default)]
    root: String,
    image: String,
    #[serde(default)]
    commands: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoIndexConfiguration {
    index_jobs: Vec<IndexJob>,
}

/// Reads a configuration; errors name the key path.
fn parse_configuration(text: &str) -> Result<Vec<IndexJob>, String> {
    let config: AutoIndexConfiguration =
        serde_json::from_str(text).map_err(|e| format!("configuration: {e}"))?;
    if config.index_jobs.is_empty() {
        return Err("configuration: index_jobs: at least one job is needed".into());
    }
    for (i, job) in config.index_jobs.iter().enumerate() {
        if job.indexer.trim().is_empty() {
            return Err(format!(
                "configuration: index_jobs[{i}].indexer: must not be empty"
            ));
        }
        for path in std::iter::once(&job.root).chain(job.steps.iter().map(|s| &s.root)) {
            if path.starts_with('/') || path.split('/').any(|c| c == "..") {
                return Err(format!(
                    "configuration: index_jobs[{i}].root: {path:?} is not a path inside the repository"
                ));
            }
        }
    }
    Ok(config.index_jobs)
}

/// The index jobs a repository's root files call for.
fn infer(root_files: &[String]) -> Vec<IndexJob> {
    let has = |name: &str| root_files.iter().any(|f| f == name);
    let mut jobs = Vec::new();
    if has("package.json") || has("tsconfig.json") {
        jobs.push(IndexJob {
            steps: Vec::new(),
            local_steps: Vec::new(),
            root: String::new(),
            indexer: "sourcegraph/scip-typescript:autoindex".into(),
            indexer_args: vec!["scip-typescript".into(), "index".into()],
            outfile: "index.scip".into(),
            requested_envvars: Vec::new(),
        });
    }
    if has("Cargo.toml") {
        jobs.push(IndexJob {
            steps: Vec::new(),
            local_steps: Vec::new(),
            root: String::new(),
            indexer: "sourcegraph/scip-rust".into(),
            indexer_args: vec!["rust-analyzer".into(), "scip".into(), ".".into()],
            outfile: "index.scip".into(),
            requested_envvars: Vec::new(),
        });
    }
    jobs
}

/// Quotes a word for `sh`.
fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The job the executors run: pre-index steps, then the indexer with the local steps first.
fn payload(job: &IndexJob, commit: &str) -> Value {
    let mut steps: Vec<Value> = job
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            json!({ "key": format!("pre-index.{i}"), "image": step.image, "commands": step.commands, "dir": step.root })
        })
        .collect();
    let mut commands = job.local_steps.clone();
    if !job.indexer_args.is_empty() {
        commands.push(
            job.indexer_args
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    steps.push(
        json!({ "key": "indexer", "image": job.indexer, "commands": commands, "dir": job.root }),
    );
    json!({
        "commit": commit,
        "shallowClone": true,
        "fetchTags": false,
        "root": job.root,
        "indexer": job.indexer,
        "indexerArgs": job.indexer_args,
        "outfile": if job.outfile.is_empty() { "index.scip" } else { job.outfile.as_str() },
        "dockerSteps": steps,
    })
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum PreciseIndexState {
    QueuedForIndexing,
    Indexing,
    IndexingErrored,
    IndexingCompleted,
    /// The index was uploaded and waits for processing.
    QueuedForProcessing,
}

/// An index job's state, as Sourcegraph names it, given the state of its newest upload.
fn state_of(job: &JobRecord, upload_state: Option<&str>) -> PreciseIndexState {
    match job.state {
        JobState::Queued => PreciseIndexState::QueuedForIndexing,
        JobState::Processing => PreciseIndexState::Indexing,
        JobState::Completed if upload_state == Some("queued") => {
            PreciseIndexState::QueuedForProcessing
        }
        JobState::Completed => PreciseIndexState::IndexingCompleted,
        JobState::Errored | JobState::Failed | JobState::Canceled => {
            PreciseIndexState::IndexingErrored
        }
    }
}

#[derive(SimpleObject)]
pub struct ExecutionLogEntry {
    key: String,
    command: Vec<String>,
    start_time: String,
    exit_code: Option<i64>,
    out: String,
    duration_milliseconds: Option<i64>,
}

pub struct PreciseIndex(JobRecord, PreciseIndexState);

impl PreciseIndex {
    /// Index jobs with their states, reading their uploads in one query.
    async fn of_all(
        state: &AppState,
        jobs: Vec<JobRecord>,
    ) -> async_graphql::Result<Vec<PreciseIndex>> {
        let completed: Vec<i64> = jobs
            .iter()
            .filter(|job| job.state == JobState::Completed)
            .map(|job| job.id)
            .collect();
        let uploads = state
            .store
            .upload_states_of_indexes(&completed)
            .await
            .map_err(store_error)?;
        Ok(jobs
            .into_iter()
            .map(|job| {
                let current = state_of(&job, uploads.get(&job.id).map(String::as_str));
                PreciseIndex(job, current)
            })
            .collect())
    }

    fn payload(&self) -> Value {
        serde_json::from_str(&self.0.payload).unwrap_or_default()
    }
}

fn time_ms(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

#[Object]
impl PreciseIndex {
    async fn id(&self) -> ID {
        encode_id("PreciseIndex", self.0.id)
    }

    async fn state(&self) -> PreciseIndexState {
        self.1
    }

    async fn failure(&self) -> Option<&str> {
        self.0.failure_message.as_deref()
    }

    async fn input_commit(&self) -> String {
        self.payload()["commit"].as_str().unwrap_or("").to_string()
    }

    async fn input_root(&self) -> String {
        self.payload()["root"].as_str().unwrap_or("").to_string()
    }

    async fn input_indexer(&self) -> String {
        self.payload()["indexer"].as_str().unwrap_or("").to_string()
    }

    async fn queued_at(&self) -> String {
        time_ms(self.0.queued_at)
    }

    async fn started_at(&self) -> Option<String> {
        self.0.started_at.map(time_ms)
    }

    async fn finished_at(&self) -> Option<String> {
        self.0.finished_at.map(time_ms)
    }

    /// The execution log of the latest attempt, a command a step.
    async fn steps(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ExecutionLogEntry>> {
        let state = ctx.data::<AppState>()?;
        let logs = state.store.job_logs(self.0.id).await.map_err(store_error)?;
        Ok(logs
            .into_iter()
            .filter(|entry| entry.attempt == self.0.attempt)
            .map(|entry| ExecutionLogEntry {
                key: entry.key,
                command: serde_json::from_str(&entry.command).unwrap_or_default(),
                start_time: time_ms(entry.started_at),
                exit_code: entry.exit_code,
                out: entry.output,
                duration_milliseconds: entry.duration_ms,
            })
            .collect())
    }
}

#[derive(SimpleObject)]
pub struct PreciseIndexConnection {
    nodes: Vec<PreciseIndex>,
    total_count: i64,
}

#[derive(Default)]
pub struct CodeIntelQuery;

#[Object]
impl CodeIntelQuery {
    /// Index jobs, newest first, optionally of one repository and in some states.
    #[graphql(guard = "SiteAdmin")]
    async fn precise_indexes(
        &self,
        ctx: &Context<'_>,
        repo: Option<ID>,
        states: Option<Vec<PreciseIndexState>>,
        #[graphql(default = 50)] first: i32,
    ) -> async_graphql::Result<PreciseIndexConnection> {
        let state = ctx.data::<AppState>()?;
        let repo_id = match &repo {
            Some(id) => Some(decode_id("Repository", id)?),
            None => None,
        };
        let limit = page_size(first)?;
        let jobs = state
            .store
            .list_jobs(QUEUE, 10_000)
            .await
            .map_err(store_error)?;
        let jobs: Vec<JobRecord> = jobs
            .into_iter()
            .filter(|job| repo_id.is_none_or(|id| job.repository_id == Some(id)))
            .collect();
        let nodes: Vec<PreciseIndex> = PreciseIndex::of_all(state, jobs)
            .await?
            .into_iter()
            .filter(|index| states.as_ref().is_none_or(|s| s.contains(&index.1)))
            .collect();
        let total_count = nodes.len() as i64;
        Ok(PreciseIndexConnection {
            nodes: nodes.into_iter().take(limit as usize).collect(),
            total_count,
        })
    }
}

#[derive(Default)]
pub struct CodeIntelMutation;

#[Object]
impl CodeIntelMutation {
    /// Queues index jobs for a repository at a revision (the default branch by default), from
    /// `configuration` (Sourcegraph's auto-index JSON) or inferred from the repository.
    #[graphql(guard = "SiteAdmin")]
    async fn queue_auto_index_jobs_for_repo(
        &self,
        ctx: &Context<'_>,
        repository: ID,
        rev: Option<String>,
        configuration: Option<String>,
    ) -> async_graphql::Result<Vec<PreciseIndex>> {
        let state = ctx.data::<AppState>()?;
        let id = decode_id("Repository", &repository)?;
        let repo = state
            .store
            .repo_by_id(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| not_found("repository not found"))?;
        // The default branch's head is known from the latest fetch; other revisions ask git.
        let commit = match (rev.as_deref(), &repo.head_commit) {
            (None | Some("HEAD"), Some(head)) => head.clone(),
            _ => state
                .git
                .resolve_revision(&repo.name, rev.as_deref().unwrap_or("HEAD"))
                .await
                .map_err(|e| bad_input(format!("rev: {e}")))?,
        };
        let jobs = match configuration.filter(|c| !c.trim().is_empty()) {
            Some(text) => parse_configuration(&text).map_err(bad_input)?,
            None => {
                let entries = state
                    .git
                    .list_tree(&repo.name, &commit, "")
                    .await
                    .map_err(|e| async_graphql::Error::new(e.to_string()))?;
                let names: Vec<String> = entries.into_iter().map(|e| e.name).collect();
                let inferred = infer(&names);
                if inferred.is_empty() {
                    return Err(bad_input(
                        "no index job could be inferred (no package.json, tsconfig.json or Cargo.toml at the root): pass a configuration",
                    ));
                }
                inferred
            }
        };
        let mut queued = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let record = state
                .queues
                .enqueue(QUEUE, &payload(job, &commit).to_string(), Some(repo.id))
                .await
                .map_err(|e| async_graphql::Error::new(e.to_string()))?;
            queued.push(record);
        }
        PreciseIndex::of_all(state, queued).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_are_read_and_checked_by_key_path() {
        let jobs = parse_configuration(
            r#"{"index_jobs": [{"root": "web", "indexer": "sourcegraph/scip-typescript", "local_steps": ["npm ci"], "indexer_args": ["scip-typescript", "index", "--out", "my file.scip"], "outfile": "my file.scip"}]}"#,
        )
        .expect("valid");
        let job = payload(&jobs[0], "abc");
        assert_eq!(
            job["dockerSteps"][0]["commands"],
            json!(["npm ci", "scip-typescript index --out 'my file.scip'"])
        );
        assert_eq!(job["dockerSteps"][0]["dir"], json!("web"));
        assert_eq!(job["outfile"], json!("my file.scip"));
        let empty = parse_configuration(r#"{"index_jobs": [{"indexer": ""}]}"#).expect_err("empty");
        assert!(
            empty.starts_with("configuration: index_jobs[0].indexer"),
            "{empty}"
        );
        let escape = parse_configuration(r#"{"index_jobs": [{"indexer": "x", "root": "../up"}]}"#)
            .expect_err("escape");
        assert!(escape.contains("index_jobs[0].root"), "{escape}");
        assert!(parse_configuration(r#"{"index_jobs": [], "x": 1}"#).is_err());
    }

    #[test]
    fn jobs_are_inferred_from_root_files() {
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
        assert_eq!(
            infer(&names(&["package.json", "src"]))[0].indexer_args,
            ["scip-typescript", "index"]
        );
        assert_eq!(
            infer(&names(&["Cargo.toml"]))[0].indexer_args,
            ["rust-analyzer", "scip", "."]
        );
        assert!(infer(&names(&["README.md"])).is_empty());
    }
}
