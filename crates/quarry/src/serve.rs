//! `quarry serve`: the all-in-one instance.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use quarry_auth::Accounts;
use quarry_config::SiteConfigManager;
use quarry_frontend::AppState;
use quarry_gitserver::{GitService, HttpGitClient, LocalGitService, ShardedGitService};
use quarry_repos::{ConnectionConfig, RepoUpdater, connection_for_argument};
use quarry_search::index::{IndexBuilder, IndexCatalog, IndexService};
use quarry_search::{Ownership, RemoteShard, Searcher};
use quarry_store::{RepoFilter, Store, redact_url};

use crate::cli::{ServeArgs, data_dir};
use crate::shutdown;

/// How long background work may take to stop after the HTTP server has drained.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// How often expired sessions are removed from the database.
const SESSION_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// How often queue sizes are read for metrics and autoscalers.
const QUEUE_SIZE_INTERVAL: Duration = Duration::from_secs(5);

/// How often jobs whose executor stopped sending heartbeats are looked for.
const STALLED_JOB_CHECK_INTERVAL: Duration = Duration::from_secs(5);

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let data_dir = data_dir(args.shared.data_dir.clone())?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;

    // Check every target before anything is stored, so a typo changes nothing.
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let targets = if args.targets.is_empty() {
        vec![".".to_string()]
    } else {
        args.targets.clone()
    };
    let connections = targets
        .iter()
        .map(|target| connection_for_argument(target, &cwd))
        .collect::<Result<Vec<_>, _>>()?;

    let seed = match &args.site_config {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read site configuration {}", path.display()))?,
        ),
        None => None,
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;

    let store = match &args.database_url {
        Some(url) => Store::open(url).await?,
        None => Store::open_sqlite(&data_dir.join("quarry.db")).await?,
    };
    let site = SiteConfigManager::load(store.clone(), seed.as_deref())
        .await
        .context("site configuration refused; nothing was changed")?;
    let site = Arc::new(site);

    let git = gitserver(&args, &data_dir)?;
    for connection in &connections {
        ensure_connection(&store, connection).await?;
    }

    let updater = Arc::new(RepoUpdater::new(store.clone(), git.clone(), site.live()));
    updater.sync_due_connections().await?;
    let repo_count = store.count_repos(&RepoFilter::default()).await?;

    println!("Quarry is running at http://{}", args.listen);
    println!("  data directory: {}", data_dir.display());
    match &args.database_url {
        Some(url) => println!(
            "  database:       {} ({})",
            store.dialect().name(),
            redact_url(url)
        ),
        None => println!("  database:       {}", store.dialect().name()),
    }
    println!("  repositories:   {repo_count}");
    println!("  GraphQL API:    http://{}/.api/graphql", args.listen);
    let accounts = Accounts::new(store.clone(), site.live());
    if args.listen.ip().is_loopback() {
        // Only someone on this machine can follow it; it works once, for 15 minutes.
        let token = accounts.site_admin_sign_in_link().await?;
        println!(
            "  sign in:        http://{}/-/sign-in/link?token={token}",
            args.listen
        );
    }

    let index_shards: Vec<RemoteShard> = args
        .indexservers
        .iter()
        .filter(|a| !a.trim().is_empty())
        .map(|a| RemoteShard::new(a.trim(), args.shared.internal_secret.clone()))
        .collect();
    let (searcher, indexer) = if index_shards.is_empty() {
        let (searcher, indexer) = indexed_search(
            &store,
            &git,
            &site,
            &data_dir,
            args.shared.search_max_file_size,
            None,
        )?;
        (searcher, Some(Arc::new(indexer)))
    } else {
        // Index servers index and search; this process merges what they find.
        let searcher = Searcher::new(store.clone(), git.clone()).fanning_out(index_shards);
        (searcher, None)
    };

    let shutdown = shutdown::on_signal();
    let background = shutdown.child_token();
    let updater_task = tokio::spawn(updater.clone().run(background.clone()));
    let watch_task = tokio::spawn(site.clone().watch(background.clone()));
    let index_task = indexer.map(|indexer| tokio::spawn(indexer.run(background.clone())));
    let sessions_task = tokio::spawn(
        accounts
            .clone()
            .expire_sessions(SESSION_SWEEP_INTERVAL, background.clone()),
    );

    let queues = quarry_frontend::executor_queues(store.clone(), args.job_stall_after)
        .with_stopping(shutdown.clone());
    let resetter_task = tokio::spawn(queues.clone().run_resetter(
        STALLED_JOB_CHECK_INTERVAL.min(args.job_stall_after / 2),
        background.clone(),
    ));
    let state = AppState {
        store: store.clone(),
        searcher,
        git,
        site,
        updater,
        accounts,
        highlighter: Arc::new(quarry_highlight::Highlighter::default()),
        blobs: Arc::new(quarry_store::BlobStore::open(&data_dir.join("blobs"))?),
        queues: queues.clone(),
    };
    let sizes_task = tokio::spawn(quarry_frontend::report_queue_sizes(
        state.clone(),
        QUEUE_SIZE_INTERVAL,
        background.clone(),
    ));
    let served = quarry_frontend::serve(listener, state, shutdown.clone()).await;
    background.cancel();
    let stopped = tokio::time::timeout(STOP_GRACE, async {
        let _ = updater_task.await;
        let _ = watch_task.await;
        let _ = sessions_task.await;
        let _ = resetter_task.await;
        let _ = sizes_task.await;
        if let Some(task) = index_task {
            let _ = task.await;
        }
    })
    .await;
    if stopped.is_err() {
        tracing::warn!("background work did not stop in time");
    }
    store.close().await;
    tracing::info!("stopped");
    served.context("HTTP server failed")
}

fn gitserver(args: &ServeArgs, data_dir: &Path) -> anyhow::Result<Arc<dyn GitService>> {
    if args.gitservers.iter().all(|s| s.trim().is_empty()) {
        let local = LocalGitService::open(&data_dir.join("repos"))
            .with_context(|| format!("cannot use mirror directory under {}", data_dir.display()))?;
        return Ok(Arc::new(local));
    }
    remote_gitservers(&args.gitservers, args.shared.internal_secret.clone())
}

/// A searcher over the indexes kept under `data_dir`, and the service that keeps them current;
/// with an ownership, both cover only the repositories this process owns.
pub fn indexed_search(
    store: &Store,
    git: &Arc<dyn GitService>,
    site: &SiteConfigManager,
    data_dir: &Path,
    max_file_size: u64,
    owned: Option<Ownership>,
) -> anyhow::Result<(Searcher, IndexService)> {
    let catalog = Arc::new(
        IndexCatalog::new(&data_dir.join("index"))
            .with_context(|| format!("cannot use index directory under {}", data_dir.display()))?,
    );
    let mut indexer = IndexService::new(
        store.clone(),
        IndexBuilder::new(git.clone(), catalog.clone(), max_file_size),
        site.live(),
    );
    let mut searcher = Searcher::new(store.clone(), git.clone())
        .with_index(catalog, site.live())
        .with_max_file_size(max_file_size);
    if let Some(ownership) = owned {
        indexer = indexer.owning(ownership.clone());
        searcher = searcher.owning(ownership);
    }
    Ok((searcher, indexer))
}

/// Clients of gitserver shards, routed by rendezvous hashing.
pub fn remote_gitservers(
    addresses: &[String],
    secret: Option<String>,
) -> anyhow::Result<Arc<dyn GitService>> {
    let clients = addresses
        .iter()
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
        .map(|address| {
            let client: Box<dyn GitService> = Box::new(HttpGitClient::new(address, secret.clone()));
            (address.to_string(), client)
        })
        .collect();
    Ok(Arc::new(ShardedGitService::new(clients)?))
}

/// Creates the connection for a `quarry serve` target unless an identical one exists.
async fn ensure_connection(store: &Store, connection: &ConnectionConfig) -> anyhow::Result<()> {
    for existing in store.list_external_services().await? {
        if existing.kind == connection.kind()
            && ConnectionConfig::parse(existing.kind, &existing.config)
                .ok()
                .as_ref()
                == Some(connection)
        {
            return Ok(());
        }
    }
    let display_name = match connection {
        ConnectionConfig::Local(local) => format!("Local: {}", local.root.display()),
        ConnectionConfig::Other(other) => format!("Git: {}", other.url),
    };
    store
        .create_external_service(connection.kind(), &display_name, &connection.to_json())
        .await?;
    Ok(())
}
