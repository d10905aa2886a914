//! The index service: keeps every cloned repository's index at its default branch's head.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quarry_config::LiveSiteConfig;
use quarry_store::{CloneStatus, RepoFilter, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::IndexBuilder;

/// How often the service looks for repositories whose index is behind.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a repository whose indexing failed waits before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(60);

pub struct IndexService {
    store: Store,
    builder: IndexBuilder,
    config: LiveSiteConfig,
    wake: Notify,
}

impl IndexService {
    pub fn new(store: Store, builder: IndexBuilder, config: LiveSiteConfig) -> Self {
        IndexService {
            store,
            builder,
            config,
            wake: Notify::new(),
        }
    }

    /// Looks for work now (after a fetch moved a head, for instance).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Indexes repositories whose head moved, one at a time, until cancelled.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut failures: HashMap<(i64, String), Instant> = HashMap::new();
        loop {
            let enabled = self.config.current().search_index_enabled();
            match self.store.list_repos(&RepoFilter::default()).await {
                Ok(_) if !enabled => {}
                Ok(repos) => {
                    let ids: Vec<i64> = repos.iter().map(|r| r.id).collect();
                    self.builder.catalog().retain(&ids);
                    for repo in repos
                        .into_iter()
                        .filter(|r| r.clone_status == CloneStatus::Cloned)
                    {
                        if cancel.is_cancelled() {
                            return;
                        }
                        let Some(head) = repo.head_commit.clone() else {
                            continue;
                        };
                        let current = self.builder.catalog().get(repo.id);
                        if current.is_some_and(|c| c.commit == head) {
                            continue;
                        }
                        let key = (repo.id, head.clone());
                        if failures
                            .get(&key)
                            .is_some_and(|at| at.elapsed() < RETRY_AFTER)
                        {
                            continue;
                        }
                        let outcome = tokio::select! {
                            outcome = self.builder.index(repo.id, &repo.name, &head) => outcome,
                            _ = cancel.cancelled() => return,
                        };
                        match outcome {
                            Ok(stats) => {
                                failures.remove(&key);
                                tracing::info!(
                                    repo = %repo.name,
                                    documents = stats.documents,
                                    removed = stats.tombstoned,
                                    text_bytes = stats.text_bytes,
                                    full = stats.full,
                                    duration_ms = stats.duration.as_millis() as u64,
                                    "indexed"
                                );
                            }
                            Err(e) => {
                                tracing::warn!(repo = %repo.name, error = %e, "indexing failed; will retry");
                                failures.insert(key, Instant::now());
                            }
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot list repositories to index"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }
}
