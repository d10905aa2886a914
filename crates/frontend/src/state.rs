//! What every handler can reach.

use std::sync::Arc;

use quarry_auth::Accounts;
use quarry_config::SiteConfigManager;
use quarry_gitserver::GitService;
use quarry_highlight::Highlighter;
use quarry_repos::RepoUpdater;
use quarry_search::Searcher;
use quarry_store::{BlobStore, Store};
use quarry_workqueue::WorkQueues;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub git: Arc<dyn GitService>,
    pub site: Arc<SiteConfigManager>,
    pub updater: Arc<RepoUpdater>,
    pub searcher: Searcher,
    pub accounts: Accounts,
    /// Grammars are loaded once and shared.
    pub highlighter: Arc<Highlighter>,
    /// The executors' job queues.
    pub queues: WorkQueues,
    /// Large artifacts (SCIP uploads).
    pub blobs: Arc<BlobStore>,
}
