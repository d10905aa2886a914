//! What the in-process tests share: the application state over a real store and git directory.

use std::sync::Arc;

use quarry_auth::Accounts;
use quarry_config::SiteConfigManager;
use quarry_frontend::AppState;
use quarry_gitserver::LocalGitService;
use quarry_repos::RepoUpdater;
use quarry_store::Store;

/// The state `quarry serve` builds, over this store, with mirrors under `dir`.
pub async fn state(store: Store, dir: &std::path::Path) -> AppState {
    let site = Arc::new(SiteConfigManager::load(store.clone(), None).await.unwrap());
    let git = Arc::new(LocalGitService::open(&dir.join("repos")).unwrap());
    let updater = Arc::new(RepoUpdater::new(store.clone(), git.clone(), site.live()));
    AppState {
        searcher: quarry_search::Searcher::new(store.clone(), git.clone()),
        accounts: Accounts::new(store.clone(), site.live()),
        queues: quarry_frontend::executor_queues(store.clone(), std::time::Duration::from_secs(25)),
        store,
        git,
        site,
        updater,
        highlighter: Arc::new(quarry_highlight::Highlighter::default()),
        blobs: Arc::new(quarry_store::BlobStore::open(&dir.join("blobs")).unwrap()),
    }
}
