//! The index service: keeps every cloned repository's index at its default branch's head.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use quarry_config::LiveSiteConfig;
use quarry_store::{CloneStatus, RepoFilter, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::IndexBuilder;
use crate::shards::Ownership;

/// How often the service looks for repositories whose index is behind.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a repository whose indexing failed waits before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(60);

pub struct IndexService {
    store: Store,
    builder: IndexBuilder,
    config: LiveSiteConfig,
    concurrency: usize,
    owned: Option<Ownership>,
    wake: Notify,
}

impl IndexService {
    pub fn new(store: Store, builder: IndexBuilder, config: LiveSiteConfig) -> Self {
        IndexService {
            store,
            builder,
            config,
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            owned: None,
            wake: Notify::new(),
        }
    }

    /// Indexes only the repositories this index server owns.
    pub fn owning(mut self, ownership: Ownership) -> Self {
        self.owned = Some(ownership);
        self
    }

    /// Looks for work now (after a fetch moved a head, for instance).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Indexes repositories whose head moved, several at once, until cancelled.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut failures: HashMap<(i64, String), Instant> = HashMap::new();
        loop {
            let enabled = self.config.current().search_index_enabled();
            match self.store.list_repos(&RepoFilter::default()).await {
                Ok(_) if !enabled => {}
                Ok(repos) => {
                    let ids: Vec<i64> = repos.iter().map(|r| r.id).collect();
                    self.builder.catalog().retain(&ids);
                    let behind: Vec<(i64, String, String)> = repos
                        .into_iter()
                        .filter(|r| r.clone_status == CloneStatus::Cloned)
                        .filter(|r| self.owned.as_ref().is_none_or(|o| o.owns(&r.name)))
                        .filter_map(|r| {
                            let head = r.head_commit?;
                            let current = self.builder.catalog().get(r.id);
                            let failed = failures
                                .get(&(r.id, head.clone()))
                                .is_some_and(|at| at.elapsed() < RETRY_AFTER);
                            (!failed && current.is_none_or(|c| c.commit != head))
                                .then_some((r.id, r.name, head))
                        })
                        .collect();
                    // One build per core: a build is mostly CPU (trigrams, compression).
                    let builder = &self.builder;
                    let outcomes: Vec<_> = tokio::select! {
                        outcomes = stream::iter(behind)
                            .map(|(id, name, head)| async move {
                                let outcome = builder.index(id, &name, &head).await;
                                (id, name, head, outcome)
                            })
                            .buffer_unordered(self.concurrency)
                            .collect() => outcomes,
                        _ = cancel.cancelled() => return,
                    };
                    for (id, name, head, outcome) in outcomes {
                        match outcome {
                            Ok(stats) => {
                                failures.remove(&(id, head));
                                tracing::info!(
                                    repo = %name,
                                    documents = stats.documents,
                                    removed = stats.tombstoned,
                                    text_bytes = stats.text_bytes,
                                    full = stats.full,
                                    duration_ms = stats.duration.as_millis() as u64,
                                    "indexed"
                                );
                            }
                            Err(e) => {
                                tracing::warn!(repo = %name, error = %e, "indexing failed; will retry");
                                failures.insert((id, head), Instant::now());
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
