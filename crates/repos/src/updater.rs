//! The repo updater: keeps the repository list in step with the code host connections, and every
//! mirror in step with its origin through an adaptive fetch schedule.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, Opts};
use quarry_config::LiveSiteConfig;
use quarry_gitserver::GitService;
use quarry_store::{
    CloneStatus, ExternalService, FetchFailure, FetchSuccess, Repo, RepoUpsert, Store, StoreError,
    now,
};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{ConnectionConfig, RepoError};

/// The shortest and longest time between two fetches of a repository (Sourcegraph's bounds).
pub const MIN_FETCH_INTERVAL: Duration = Duration::from_secs(45);
pub const MAX_FETCH_INTERVAL: Duration = Duration::from_secs(8 * 3600);

/// How often the loop looks for due work when nothing wakes it.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

static SYNCS: LazyLock<Option<IntCounterVec>> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        Opts::new(
            "src_repoupdater_syncs_total",
            "Clones and fetches of repositories, by operation and outcome.",
        ),
        &["operation", "outcome"],
    )
    .ok()?;
    prometheus::register(Box::new(counter.clone())).ok()?;
    Some(counter)
});

fn count_sync(operation: &str, ok: bool) {
    if let Some(counter) = SYNCS.as_ref() {
        counter
            .with_label_values(&[operation, if ok { "success" } else { "error" }])
            .inc();
    }
}

/// The next fetch interval: half the time since the repository last changed, within Sourcegraph's
/// bounds, so busy repositories are fetched often and quiet ones rarely.
pub fn next_fetch_interval(last_changed_at: Option<i64>, at: i64) -> Duration {
    let quiet_for = at.saturating_sub(last_changed_at.unwrap_or(at)).max(0) as u64;
    Duration::from_secs(quiet_for / 2).clamp(MIN_FETCH_INTERVAL, MAX_FETCH_INTERVAL)
}

/// When a repository that a fetch changed last changed: its head commit's time (a clone of a
/// repository untouched for a year is quiet, not busy), never later than now.
pub fn changed_at(head_committed_at: Option<i64>, at: i64) -> i64 {
    head_committed_at.map_or(at, |time| time.min(at))
}

/// The wait after the n-th consecutive failure: doubling from the minimum interval, capped.
pub fn failure_backoff(failures: i64) -> Duration {
    let exponent = failures.clamp(1, 20) as u32 - 1;
    MIN_FETCH_INTERVAL
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(MAX_FETCH_INTERVAL)
}

/// Spreads a delay by ±10% so that repositories cloned together do not stay in lockstep.
fn jittered(delay: Duration) -> i64 {
    let factor = 0.9 + fastrand::f64() * 0.2;
    (delay.as_secs_f64() * factor).round() as i64
}

/// What one sync of a connection did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub listed: usize,
    pub removed: Vec<String>,
    pub problems: Vec<String>,
}

pub struct RepoUpdater {
    store: Store,
    git: Arc<dyn GitService>,
    config: LiveSiteConfig,
    wake: Arc<Notify>,
}

impl RepoUpdater {
    pub fn new(store: Store, git: Arc<dyn GitService>, config: LiveSiteConfig) -> Self {
        RepoUpdater {
            store,
            git,
            config,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Wakes the loop, for instance after a fetch was requested.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Lists a connection's repositories and brings the stored list in line with it. Problems
    /// with single repositories (bad names, name conflicts, unreadable directories) are recorded
    /// on the connection and never stop the others.
    pub async fn sync_connection(
        &self,
        service: &ExternalService,
    ) -> Result<SyncReport, RepoError> {
        let next_sync_at = self.next_connection_sync();
        let config = match ConnectionConfig::parse(service.kind, &service.config) {
            Ok(config) => config,
            Err(e) => {
                self.store
                    .record_external_service_sync(service.id, Some(&e.to_string()), next_sync_at)
                    .await?;
                return Err(e);
            }
        };
        let discovery = tokio::task::spawn_blocking(move || config.discover())
            .await
            .map_err(|e| RepoError::Discovery(format!("repository scan stopped: {e}")))?;
        let discovery = match discovery {
            Ok(discovery) => discovery,
            Err(e) => {
                self.store
                    .record_external_service_sync(service.id, Some(&e.to_string()), next_sync_at)
                    .await?;
                return Err(e);
            }
        };
        let mut report = SyncReport {
            problems: discovery.problems,
            ..Default::default()
        };
        let mut listed = Vec::with_capacity(discovery.repos.len());
        for repo in &discovery.repos {
            let upsert = RepoUpsert {
                external_service_id: service.id,
                name: &repo.name,
                clone_url: &repo.clone_url,
            };
            match self.store.upsert_repo(upsert).await {
                Ok(_) => listed.push(repo.name.clone()),
                Err(StoreError::Conflict(message)) => report.problems.push(message),
                Err(e) => return Err(e.into()),
            }
        }
        report.listed = listed.len();
        if discovery.complete {
            report.removed = self
                .store
                .remove_unlisted_repos(service.id, &listed)
                .await?;
            for name in &report.removed {
                if let Err(e) = self.git.remove(name).await {
                    tracing::warn!(repo = %name, error = %e, "could not remove mirror");
                }
            }
        }
        let error = (!report.problems.is_empty()).then(|| report.problems.join("\n"));
        self.store
            .record_external_service_sync(service.id, error.as_deref(), next_sync_at)
            .await?;
        for problem in &report.problems {
            tracing::warn!(connection = %service.display_name, problem = %problem, "code host connection problem");
        }
        tracing::info!(
            connection = %service.display_name,
            repositories = report.listed,
            removed = report.removed.len(),
            "synced code host connection"
        );
        self.wake();
        Ok(report)
    }

    fn next_connection_sync(&self) -> i64 {
        let config = self.config.current();
        let interval = config.repo_list_update_interval();
        if config.disable_auto_code_host_syncs() || interval.is_zero() {
            // Only a change to the connection (which resets this) syncs it again.
            i64::MAX
        } else {
            now().saturating_add(jittered(interval))
        }
    }

    /// Syncs every connection that is due.
    pub async fn sync_due_connections(&self) -> Result<(), RepoError> {
        let at = now();
        for service in self.store.list_external_services().await? {
            if service.next_sync_at <= at {
                // Failures are recorded on the connection; the loop goes on with the next one.
                if let Err(e) = self.sync_connection(&service).await {
                    tracing::warn!(connection = %service.display_name, error = %e, "code host connection sync failed");
                }
            }
        }
        Ok(())
    }

    /// Clones or fetches one repository and records the outcome and the next fetch time.
    pub async fn fetch(&self, repo: &Repo) -> Result<(), RepoError> {
        let config = self.config.current();
        let first_clone = repo.clone_status != CloneStatus::Cloned;
        let operation = if first_clone { "clone" } else { "fetch" };
        if first_clone {
            self.store.mark_repo_cloning(repo.id).await?;
            tracing::info!(repo = %repo.name, "cloning");
        }
        let started = Instant::now();
        let result = self
            .git
            .sync(
                &repo.name,
                &repo.clone_url,
                config.git_long_command_timeout(),
            )
            .await;
        let at = now();
        count_sync(operation, result.is_ok());
        match result {
            Ok(synced) => {
                let last_changed_at = if synced.changed {
                    changed_at(synced.head_committed_at, at)
                } else {
                    repo.last_changed_at.unwrap_or(at)
                };
                let interval = next_fetch_interval(Some(last_changed_at), at);
                self.store
                    .record_fetch_success(
                        repo.id,
                        &FetchSuccess {
                            last_changed_at,
                            default_branch: synced.default_branch,
                            head_commit: synced.head_commit,
                            fetch_interval_secs: interval.as_secs() as i64,
                            next_fetch_at: at + jittered(interval),
                        },
                    )
                    .await?;
                tracing::info!(
                    repo = %repo.name,
                    operation,
                    changed = synced.changed,
                    recloned = synced.recloned,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "{operation} finished"
                );
            }
            Err(e) => {
                let backoff = failure_backoff(repo.failure_count + 1);
                self.store
                    .record_fetch_failure(
                        repo.id,
                        &FetchFailure {
                            error: e.to_string(),
                            next_fetch_at: at + jittered(backoff),
                        },
                    )
                    .await?;
                tracing::warn!(
                    repo = %repo.name,
                    operation,
                    error = %e,
                    retry_in_secs = backoff.as_secs(),
                    "{operation} failed"
                );
            }
        }
        Ok(())
    }

    /// Runs connection syncs and fetches until cancelled. At most `gitMaxConcurrentClones`
    /// fetches run at once (read live). On cancellation running git processes are killed and
    /// interrupted clones are marked not cloned; their debris is cleared when the gitserver opens.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        match self.store.reset_interrupted_clones().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                repositories = n,
                "clones interrupted by a stop will start again"
            ),
            Err(e) => tracing::error!(error = %e, "could not reset interrupted clones"),
        }
        let mut running: JoinSet<i64> = JoinSet::new();
        let mut in_flight: HashSet<i64> = HashSet::new();
        loop {
            if let Err(e) = self.sync_due_connections().await {
                tracing::error!(error = %e, "code host connection sync failed");
            }
            if let Err(e) = self.start_due_fetches(&mut running, &mut in_flight).await {
                tracing::error!(error = %e, "could not schedule fetches");
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.wake.notified() => {}
                Some(done) = running.join_next(), if !running.is_empty() => {
                    if let Ok(id) = done {
                        in_flight.remove(&id);
                    }
                }
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
            while let Some(done) = running.try_join_next() {
                if let Ok(id) = done {
                    in_flight.remove(&id);
                }
            }
        }
        running.shutdown().await;
        if let Err(e) = self.store.reset_interrupted_clones().await {
            tracing::error!(error = %e, "could not reset interrupted clones");
        }
    }

    async fn start_due_fetches(
        self: &Arc<Self>,
        running: &mut JoinSet<i64>,
        in_flight: &mut HashSet<i64>,
    ) -> Result<(), RepoError> {
        let config = self.config.current();
        let limit = config.git_max_concurrent_clones();
        if in_flight.len() >= limit {
            return Ok(());
        }
        let candidates = self
            .store
            .repos_due_for_fetch(now(), (limit + in_flight.len()) as i64)
            .await?;
        let auto_updates = !config.disable_auto_git_updates();
        for repo in candidates {
            if in_flight.len() >= limit {
                break;
            }
            let requested = repo.next_fetch_at == 0;
            let periodic_fetch = repo.clone_status == CloneStatus::Cloned && !requested;
            if in_flight.contains(&repo.id) || (periodic_fetch && !auto_updates) {
                continue;
            }
            in_flight.insert(repo.id);
            let updater = Arc::clone(self);
            running.spawn(async move {
                if let Err(e) = updater.fetch(&repo).await {
                    tracing::error!(repo = %repo.name, error = %e, "could not record fetch outcome");
                }
                repo.id
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_follows_how_recently_a_repository_changed() {
        let at = 1_000_000;
        assert_eq!(next_fetch_interval(Some(at - 10), at), MIN_FETCH_INTERVAL);
        assert_eq!(
            next_fetch_interval(Some(at - 3600), at),
            Duration::from_secs(1800)
        );
        assert_eq!(
            next_fetch_interval(Some(at - 30 * 24 * 3600), at),
            MAX_FETCH_INTERVAL
        );
        assert_eq!(next_fetch_interval(None, at), MIN_FETCH_INTERVAL);
        // A fetch that changed the mirror dates the change by its head commit: a fresh clone of
        // a repository quiet for six hours is fetched again in three, not in 45 seconds.
        assert_eq!(changed_at(Some(at - 21_600), at), at - 21_600);
        assert_eq!(changed_at(None, at), at);
        assert_eq!(changed_at(Some(at + 3600), at), at, "a clock ahead of ours");
        assert_eq!(
            next_fetch_interval(Some(changed_at(Some(at - 21_600), at)), at),
            Duration::from_secs(10_800)
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(failure_backoff(1), Duration::from_secs(45));
        assert_eq!(failure_backoff(2), Duration::from_secs(90));
        assert_eq!(failure_backoff(4), Duration::from_secs(360));
        assert_eq!(failure_backoff(50), MAX_FETCH_INTERVAL);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let j = jittered(Duration::from_secs(1000));
            assert!((900..=1100).contains(&j), "{j}");
        }
    }
}
