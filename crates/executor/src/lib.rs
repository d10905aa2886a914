//! The executor: `quarry executor run` takes jobs from an instance's queues over the
//! `/.executors/` protocol and runs their steps in a sandbox, away from the instance.
//!
//! Owns: configuration from Sourcegraph's executor environment variables, the executor's name
//! (`<hostname>-<uuid>`), heartbeats every 5 s (with the jobs it runs; canceled jobs are stopped
//! at once), dequeueing with a bounded wait so an idle executor starts a job within milliseconds,
//! workspaces (files written only inside them), steps in order with their output streamed to the
//! instance at most a second behind and with secrets redacted, a runtime limit per job, draining
//! after `EXECUTOR_NUM_TOTAL_JOBS`, `EXECUTOR_MAX_ACTIVE_TIME` or SIGTERM, and `validate`.
//!
//! Invariants: a step runs in the sandbox unless the shell runtime was asked for (with a warning
//! at start); nothing a step started survives it; the shared secret and the job's redacted
//! values never reach an uploaded log; a path that would leave the workspace is refused.

pub mod api;
mod clone;
mod job;
mod metrics;
pub mod sandbox;
mod seccomp;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use sandbox::Runtime;

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Api(String),
    #[error("{0}")]
    Sandbox(String),
    #[error("{0}")]
    Workspace(String),
}

/// Whether steps may use the network (`EXECUTOR_JOB_NETWORK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkPolicy {
    /// As the job's queue says (the instance's `executors.jobNetwork`).
    Queue,
    Always,
    Never,
}

/// A sandboxed step's root file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootFs {
    /// The step's OCI image, unpacked once per digest.
    Image,
    /// The host's system directories, read-only, for hosts that carry the tools themselves.
    Host,
}

/// How long a dequeue waits on the instance for a job before asking again.
const DEQUEUE_WAIT: Duration = Duration::from_secs(10);

/// The executor's configuration, as Sourcegraph's executors read it from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub frontend_url: String,
    pub frontend_password: String,
    pub queues: Vec<String>,
    pub max_jobs: usize,
    /// Pause after a failed dequeue.
    pub poll_interval: Duration,
    pub max_runtime_per_job: Duration,
    /// Jobs to run before exiting (0: no limit).
    pub total_jobs: usize,
    /// Time after which no new job is taken (zero: no limit).
    pub max_active_time: Duration,
    pub job_cpus: f64,
    pub job_memory_bytes: u64,
    pub job_max_processes: u64,
    pub job_network: NetworkPolicy,
    pub keep_workspaces: bool,
    pub runtime: Runtime,
    /// What a sandboxed step's root file system is (`EXECUTOR_SANDBOX_ROOTFS`).
    pub rootfs: RootFs,
    /// Where images come from and are kept (`EXECUTOR_IMAGE_CACHE_DIR`,
    /// `EXECUTOR_DOCKER_REGISTRY_MIRROR_URL`, `EXECUTOR_DOCKER_AUTH_CONFIG`).
    pub images: quarry_images::Options,
    /// Where the mirrors of jobs' repositories are kept (`EXECUTOR_REPOSITORY_CACHE_DIR`).
    pub repository_cache: PathBuf,
    pub workspace_root: PathBuf,
    /// Where `/metrics` is served (`SRC_PROF_HTTP`; empty: not served).
    pub metrics_address: String,
    /// How often the executor reports itself and its jobs (`EXECUTOR_HEARTBEAT_INTERVAL`, 5 s).
    pub heartbeat_interval: Duration,
}

fn duration(name: &str, value: &str) -> Result<Duration, ExecutorError> {
    humantime::parse_duration(value.trim())
        .map_err(|e| ExecutorError::Config(format!("{name}: {value:?} is not a duration: {e}")))
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ExecutorError> {
    value
        .trim()
        .parse()
        .map_err(|_| ExecutorError::Config(format!("{name}: {value:?} is not a number")))
}

/// Reads sizes such as `12G`, `512M` or `1073741824`.
fn bytes(name: &str, value: &str) -> Result<u64, ExecutorError> {
    let value = value.trim();
    let (digits, unit) = value.split_at(
        value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    );
    let multiplier: u64 = match unit.to_ascii_uppercase().trim_end_matches('B') {
        "" => 1,
        "K" | "KI" => 1 << 10,
        "M" | "MI" => 1 << 20,
        "G" | "GI" => 1 << 30,
        _ => {
            return Err(ExecutorError::Config(format!(
                "{name}: {value:?} is not a size such as 2G or 512M"
            )));
        }
    };
    Ok(number::<u64>(name, digits)?.saturating_mul(multiplier))
}

fn flag(name: &str, value: &str) -> Result<bool, ExecutorError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" | "" => Ok(false),
        other => Err(ExecutorError::Config(format!(
            "{name}: {other:?} is not true or false"
        ))),
    }
}

impl Config {
    /// Reads the configuration from variables (the process environment in `quarry executor`).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ExecutorError> {
        let get = |name: &str| vars.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let required = |name: &str| {
            get(name)
                .map(str::to_string)
                .ok_or_else(|| ExecutorError::Config(format!("{name} is required but not set")))
        };
        let frontend_url = required("EXECUTOR_FRONTEND_URL")?;
        if !frontend_url.starts_with("http://") && !frontend_url.starts_with("https://") {
            return Err(ExecutorError::Config(format!(
                "EXECUTOR_FRONTEND_URL: {frontend_url:?} is not an http(s) URL"
            )));
        }
        let frontend_password = required("EXECUTOR_FRONTEND_PASSWORD")?;
        let queues: Vec<String> = match (get("EXECUTOR_QUEUE_NAMES"), get("EXECUTOR_QUEUE_NAME")) {
            (Some(_), Some(_)) => {
                return Err(ExecutorError::Config(
                    "set EXECUTOR_QUEUE_NAME or EXECUTOR_QUEUE_NAMES, not both".into(),
                ));
            }
            (Some(names), None) => names
                .split(',')
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect(),
            (None, Some(name)) => vec![name.trim().to_string()],
            (None, None) => {
                return Err(ExecutorError::Config(
                    "EXECUTOR_QUEUE_NAME or EXECUTOR_QUEUE_NAMES is required".into(),
                ));
            }
        };
        let runtime = match get("EXECUTOR_SANDBOX").unwrap_or("bubblewrap") {
            "bubblewrap" | "sandbox" => Runtime::Sandbox,
            "shell" => Runtime::Shell,
            other => {
                return Err(ExecutorError::Config(format!(
                    "EXECUTOR_SANDBOX: {other:?} is not bubblewrap or shell"
                )));
            }
        };
        let rootfs = match get("EXECUTOR_SANDBOX_ROOTFS").unwrap_or("image") {
            "image" => RootFs::Image,
            "host" => RootFs::Host,
            other => {
                return Err(ExecutorError::Config(format!(
                    "EXECUTOR_SANDBOX_ROOTFS: {other:?} is not image (each step's OCI image) or host (the host's read-only system directories)"
                )));
            }
        };
        let job_network = match get("EXECUTOR_JOB_NETWORK")
            .unwrap_or("queue")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "queue" => NetworkPolicy::Queue,
            "1" | "true" | "yes" | "always" => NetworkPolicy::Always,
            "0" | "false" | "no" | "never" => NetworkPolicy::Never,
            other => {
                return Err(ExecutorError::Config(format!(
                    "EXECUTOR_JOB_NETWORK: {other:?} is not queue (as the job's queue says), true or false"
                )));
            }
        };
        let workspace_root = get("EXECUTOR_WORKSPACE_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("quarry-executor"));
        let images = quarry_images::Options {
            cache_dir: get("EXECUTOR_IMAGE_CACHE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join("quarry-executor-images")),
            mirrors: get("EXECUTOR_DOCKER_REGISTRY_MIRROR_URL")
                .map(|urls| {
                    urls.split(',')
                        .map(|u| u.trim().to_string())
                        .filter(|u| !u.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            auth_config: get("EXECUTOR_DOCKER_AUTH_CONFIG").map(str::to_string),
            max_unpacked_bytes: match get("EXECUTOR_IMAGE_MAX_SIZE") {
                Some(size) => bytes("EXECUTOR_IMAGE_MAX_SIZE", size)?,
                None => quarry_images::DEFAULT_MAX_UNPACKED_BYTES,
            },
        };
        for mirror in &images.mirrors {
            if !mirror.starts_with("http://") && !mirror.starts_with("https://") {
                return Err(ExecutorError::Config(format!(
                    "EXECUTOR_DOCKER_REGISTRY_MIRROR_URL: {mirror:?} is not an http(s) URL"
                )));
            }
        }
        Ok(Config {
            frontend_url,
            frontend_password,
            queues,
            max_jobs: number(
                "EXECUTOR_MAXIMUM_NUM_JOBS",
                get("EXECUTOR_MAXIMUM_NUM_JOBS").unwrap_or("1"),
            )?,
            poll_interval: duration(
                "EXECUTOR_QUEUE_POLL_INTERVAL",
                get("EXECUTOR_QUEUE_POLL_INTERVAL").unwrap_or("1s"),
            )?,
            max_runtime_per_job: duration(
                "EXECUTOR_MAXIMUM_RUNTIME_PER_JOB",
                get("EXECUTOR_MAXIMUM_RUNTIME_PER_JOB").unwrap_or("30m"),
            )?,
            total_jobs: number(
                "EXECUTOR_NUM_TOTAL_JOBS",
                get("EXECUTOR_NUM_TOTAL_JOBS").unwrap_or("0"),
            )?,
            max_active_time: duration(
                "EXECUTOR_MAX_ACTIVE_TIME",
                get("EXECUTOR_MAX_ACTIVE_TIME").unwrap_or("0s"),
            )?,
            job_cpus: number(
                "EXECUTOR_JOB_NUM_CPUS",
                get("EXECUTOR_JOB_NUM_CPUS").unwrap_or("1"),
            )?,
            job_memory_bytes: bytes(
                "EXECUTOR_JOB_MEMORY",
                get("EXECUTOR_JOB_MEMORY").unwrap_or("2G"),
            )?,
            job_max_processes: number(
                "EXECUTOR_JOB_MAX_PROCESSES",
                get("EXECUTOR_JOB_MAX_PROCESSES").unwrap_or("256"),
            )?,
            job_network,
            keep_workspaces: flag(
                "EXECUTOR_KEEP_WORKSPACES",
                get("EXECUTOR_KEEP_WORKSPACES").unwrap_or("false"),
            )?,
            runtime,
            rootfs,
            images,
            heartbeat_interval: duration(
                "EXECUTOR_HEARTBEAT_INTERVAL",
                get("EXECUTOR_HEARTBEAT_INTERVAL").unwrap_or("5s"),
            )?,
            metrics_address: vars
                .get("SRC_PROF_HTTP")
                .cloned()
                .unwrap_or_else(|| "127.0.0.1:6060".into()),
            repository_cache: get("EXECUTOR_REPOSITORY_CACHE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root.with_extension("mirrors")),
            workspace_root,
        })
    }
}

/// A name unique to this process: `<hostname>-<uuid>`.
pub fn executor_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "executor".into());
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{host}-{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// What the executor reports about the machine.
fn telemetry() -> api::Telemetry {
    let git_version = std::process::Command::new("git")
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .trim_start_matches("git version ")
                .to_string()
        })
        .unwrap_or_default();
    api::Telemetry {
        os: std::env::consts::OS.into(),
        architecture: std::env::consts::ARCH.into(),
        executor_version: env!("CARGO_PKG_VERSION").into(),
        git_version,
        docker_version: String::new(),
        src_cli_version: String::new(),
    }
}

/// Checks the configuration, the tools the runtime needs and the instance's answer to the
/// shared secret; each problem is said exactly.
pub async fn validate(config: &Config) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if config.runtime == Runtime::Sandbox {
        match std::process::Command::new("bwrap").arg("--version").output() {
            Ok(out) if out.status.success() => {}
            _ => problems.push(
                "bwrap (bubblewrap) is not installed: install Debian's bubblewrap package, or set EXECUTOR_SANDBOX=shell to run steps without isolation".to_string(),
            ),
        }
        let cgroups = std::path::Path::new("/sys/fs/cgroup");
        let writable = cgroups.join("cgroup.controllers").exists()
            || cgroups.join("memory").join("cgroup.procs").exists();
        if !writable {
            problems.push("no cgroup v1 memory controller nor cgroup v2 tree under /sys/fs/cgroup: step limits cannot be set".into());
        }
    }
    if config.runtime == Runtime::Sandbox
        && config.rootfs == RootFs::Image
        && let Err(e) = quarry_images::ImageStore::new(config.images.clone())
    {
        problems.push(format!("images: {e}"));
    }
    if std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_err()
    {
        problems.push("git is not installed".into());
    }
    match api::Client::new(&config.frontend_url, &config.frontend_password) {
        Ok(client) => {
            if let Err(e) = client.test_auth().await {
                problems.push(format!("{}/.executors/test/auth: {e}", config.frontend_url));
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Jobs running now: id, queue and how to stop each.
type Running = Arc<Mutex<HashMap<i64, (String, CancellationToken)>>>;

fn running_jobs(running: &Running) -> Vec<(i64, String)> {
    let guard = match running.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    guard.iter().map(|(id, (q, _))| (*id, q.clone())).collect()
}

/// Runs until `shutdown` (then drains: running jobs finish, none is taken) or until the job or
/// time budget is spent.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ExecutorError> {
    if config.runtime == Runtime::Shell {
        tracing::warn!("EXECUTOR_SANDBOX=shell: steps run on this host without any isolation");
    }
    if config.runtime == Runtime::Sandbox
        && sandbox::cgroup_moves_wait(&std::fs::read_to_string("/proc/mounts").unwrap_or_default())
    {
        tracing::warn!(
            "each step waits 5-25 ms to join its cgroups, one step at a time on this host; remounting a cgroup file system with `favordynmods` (`mount -o remount,favordynmods /sys/fs/cgroup/unified` on a hybrid host) makes that about 0.4 ms"
        );
    }
    std::fs::create_dir_all(&config.workspace_root).map_err(|e| {
        ExecutorError::Workspace(format!(
            "cannot create {}: {e}",
            config.workspace_root.display()
        ))
    })?;
    // Images are what sandboxed steps run on unless the host's own directories were asked for.
    let images = match (config.runtime, config.rootfs) {
        (Runtime::Sandbox, RootFs::Image) => Some(
            quarry_images::ImageStore::new(config.images.clone())
                .map_err(|e| ExecutorError::Config(e.to_string()))?,
        ),
        _ => None,
    };
    let mirrors = clone::Mirrors::new(config.repository_cache.clone(), &config.frontend_url)?;
    let name = executor_name();
    let client = api::Client::new(&config.frontend_url, &config.frontend_password)?;
    let telemetry = telemetry();
    // Announce ourselves before taking jobs: job calls need a known executor.
    loop {
        match client
            .heartbeat(&name, &config.queues, &[], &telemetry)
            .await
        {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "the instance does not take heartbeats yet");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    if !config.metrics_address.is_empty() {
        tokio::spawn(metrics::serve(config.metrics_address.clone()));
    }
    tracing::info!(executor = %name, queues = ?config.queues, runtime = ?config.runtime, rootfs = ?config.rootfs, "executor started");
    let running: Running = Arc::default();
    let beats = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeats(
        config.heartbeat_interval,
        client.clone(),
        name.clone(),
        config.queues.clone(),
        running.clone(),
        telemetry,
        beats.clone(),
    ));
    let slots = Arc::new(Semaphore::new(config.max_jobs.max(1)));
    let started = Instant::now();
    let mut taken = 0usize;
    let mut jobs = tokio::task::JoinSet::new();
    let context = Arc::new(job::Context {
        client: client.clone(),
        executor: name.clone(),
        config,
        images,
        mirrors,
    });
    let config = &context.config;
    loop {
        if config.total_jobs > 0 && taken >= config.total_jobs {
            tracing::info!(jobs = taken, "EXECUTOR_NUM_TOTAL_JOBS reached; draining");
            break;
        }
        if !config.max_active_time.is_zero() && started.elapsed() >= config.max_active_time {
            tracing::info!("EXECUTOR_MAX_ACTIVE_TIME reached; draining");
            break;
        }
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let dequeued = tokio::select! {
            _ = shutdown.cancelled() => break,
            dequeued = client.dequeue(&config.queues, &name, DEQUEUE_WAIT) => dequeued,
        };
        match dequeued {
            Ok(Some(job)) => {
                taken += 1;
                let cancel = CancellationToken::new();
                let queue = job.queue.clone();
                if let Ok(mut guard) = running.lock() {
                    guard.insert(job.id, (queue, cancel.clone()));
                }
                let (context, running) = (context.clone(), running.clone());
                jobs.spawn(async move {
                    let id = job.id;
                    job::run_job(&context, job, cancel).await;
                    if let Ok(mut guard) = running.lock() {
                        guard.remove(&id);
                    }
                    drop(permit);
                });
            }
            Ok(None) => drop(permit),
            Err(e) => {
                drop(permit);
                tracing::warn!(error = %e, "dequeue failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(config.poll_interval) => {}
                }
            }
        }
    }
    while jobs.join_next().await.is_some() {}
    beats.cancel();
    let _ = heartbeat.await;
    tracing::info!(jobs = taken, "executor stopped");
    Ok(())
}

/// Reports the running jobs every few seconds and stops the ones the instance cancels.
async fn heartbeats(
    every: Duration,
    client: api::Client,
    name: String,
    queues: Vec<String>,
    running: Running,
    telemetry: api::Telemetry,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(100)));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let jobs = running_jobs(&running);
        match client.heartbeat(&name, &queues, &jobs, &telemetry).await {
            Ok(cancel) => {
                if let Ok(guard) = running.lock() {
                    for id in cancel {
                        if let Some((_, token)) = guard.get(&id) {
                            tracing::info!(job = id, "the instance canceled the job");
                            token.cancel();
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn configuration_reads_sourcegraphs_variables_and_names_what_is_wrong() {
        let base = [
            ("EXECUTOR_FRONTEND_URL", "http://127.0.0.1:7080"),
            ("EXECUTOR_FRONTEND_PASSWORD", "secret"),
            ("EXECUTOR_QUEUE_NAMES", "codeintel, batches"),
            ("EXECUTOR_MAXIMUM_NUM_JOBS", "3"),
            ("EXECUTOR_MAXIMUM_RUNTIME_PER_JOB", "90s"),
            ("EXECUTOR_JOB_MEMORY", "512M"),
        ];
        let config = Config::from_vars(&vars(&base)).expect("valid");
        assert_eq!(config.queues, ["codeintel", "batches"]);
        assert_eq!(config.max_jobs, 3);
        assert_eq!(config.max_runtime_per_job, Duration::from_secs(90));
        assert_eq!(config.job_memory_bytes, 512 << 20);
        assert_eq!(config.runtime, Runtime::Sandbox);
        let missing = Config::from_vars(&vars(&base[1..])).expect_err("no URL");
        assert_eq!(
            missing.to_string(),
            "EXECUTOR_FRONTEND_URL is required but not set"
        );
        let mut bad = vars(&base);
        bad.insert("EXECUTOR_JOB_MEMORY".into(), "lots".into());
        assert!(
            Config::from_vars(&bad)
                .expect_err("bad size")
                .to_string()
                .starts_with("EXECUTOR_JOB_MEMORY")
        );
        let mut both = vars(&base);
        both.insert("EXECUTOR_QUEUE_NAME".into(), "codeintel".into());
        assert!(Config::from_vars(&both).is_err());
    }

    #[test]
    fn names_are_hostname_and_a_uuid() {
        let name = executor_name();
        let (_, uuid) = name.split_at(name.len() - 36);
        assert_eq!(uuid.matches('-').count(), 4);
        assert_ne!(executor_name(), name);
    }
}
