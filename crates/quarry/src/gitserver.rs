//! `quarry gitserver`: one gitserver shard over HTTP.

use std::sync::Arc;

use anyhow::Context;
use quarry_gitserver::LocalGitService;

use crate::cli::{GitserverArgs, data_dir};
use crate::shutdown;

pub async fn run(args: GitserverArgs) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() && args.shared.internal_secret.is_none() {
        anyhow::bail!(
            "refusing to serve mirrors on {} without QUARRY_INTERNAL_SECRET: anyone who can reach it could read every repository",
            args.listen
        );
    }
    let data_dir = data_dir(args.shared.data_dir)?;
    let git = LocalGitService::open(&data_dir.join("repos"))
        .with_context(|| format!("cannot use data directory {}", data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let shutdown = shutdown::on_signal();
    println!("quarry gitserver listening on http://{}", args.listen);
    println!("  mirrors: {}", git.root().display());
    quarry_gitserver::http::serve(
        listener,
        Arc::new(git),
        args.shared.internal_secret,
        shutdown.cancelled_owned(),
    )
    .await
    .context("gitserver stopped")
}
