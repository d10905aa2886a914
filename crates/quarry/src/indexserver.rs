//! `quarry indexserver`: indexes and searches the repositories hashed to it.

use std::sync::Arc;

use anyhow::Context;
use quarry_config::SiteConfigManager;
use quarry_search::Ownership;
use quarry_store::Store;

use crate::cli::{IndexserverArgs, data_dir};
use crate::serve::{indexed_search, remote_gitservers};
use crate::shutdown;

pub async fn run(args: IndexserverArgs) -> anyhow::Result<()> {
    let secret = args.shared.internal_secret.clone();
    if !args.listen.ip().is_loopback() && secret.is_none() {
        anyhow::bail!(
            "refusing to serve search on {} without QUARRY_INTERNAL_SECRET: anyone who can reach it could read every repository",
            args.listen
        );
    }
    let address = args
        .address
        .clone()
        .unwrap_or_else(|| args.listen.to_string());
    let shards: Vec<String> = args
        .indexservers
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let ownership = Ownership::new(shards, &address).map_err(anyhow::Error::msg)?;
    let data_dir = data_dir(args.shared.data_dir.clone())?;
    let store = Store::open(&args.database_url).await?;
    let site = Arc::new(SiteConfigManager::load(store.clone(), None).await?);
    let git = remote_gitservers(&args.gitservers, secret.clone())?;
    let (searcher, indexer) = indexed_search(
        &store,
        &git,
        &site,
        &data_dir,
        args.shared.search_max_file_size,
        Some(ownership),
    )?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!(
        "quarry indexserver {address} listening on http://{}",
        args.listen
    );
    println!("  index: {}", data_dir.join("index").display());

    let shutdown = shutdown::on_signal();
    let background = shutdown.child_token();
    let index_task = tokio::spawn(Arc::new(indexer).run(background.clone()));
    let watch_task = tokio::spawn(site.clone().watch(background.clone()));
    let served =
        quarry_search::http::serve(listener, searcher, secret, shutdown.cancelled_owned()).await;
    background.cancel();
    let _ = index_task.await;
    let _ = watch_task.await;
    store.close().await;
    served.context("index server stopped")
}
