//! `executors(query, active, first)`: executors as their heartbeats describe them (Sourcegraph's
//! Site admin > Executors).

use async_graphql::{Context, ID, Object, SimpleObject};

use super::SiteAdmin;
use super::{encode_id, page_size, rfc3339, store_error};
use crate::AppState;
use crate::executors::ACTIVE_WITHIN_SECS;

#[derive(SimpleObject)]
pub struct Executor {
    id: ID,
    hostname: String,
    queue_name: Option<String>,
    queue_names: Vec<String>,
    os: String,
    architecture: String,
    executor_version: String,
    git_version: String,
    docker_version: String,
    src_cli_version: String,
    first_seen_at: String,
    last_seen_at: String,
    /// Seen in the last 15 minutes.
    active: bool,
}

#[derive(SimpleObject)]
pub struct ExecutorConnection {
    nodes: Vec<Executor>,
    total_count: i64,
}

#[derive(Default)]
pub struct ExecutorQuery;

#[Object]
impl ExecutorQuery {
    /// Executors, most recently seen first; `active` keeps only those seen in the last 15
    /// minutes; `query` matches hostnames.
    #[graphql(guard = "SiteAdmin")]
    async fn executors(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        #[graphql(default)] active: bool,
        #[graphql(default = 50)] first: i32,
    ) -> async_graphql::Result<ExecutorConnection> {
        let state = ctx.data::<AppState>()?;
        let now = quarry_store::now();
        let since = active.then_some(now - ACTIVE_WITHIN_SECS);
        let found = state
            .store
            .list_executors(query.as_deref(), since, page_size(first)?)
            .await
            .map_err(store_error)?;
        let nodes: Vec<Executor> = found
            .into_iter()
            .map(|e| Executor {
                id: encode_id("Executor", e.id),
                queue_name: (e.heartbeat.queue_names.len() == 1)
                    .then(|| e.heartbeat.queue_names[0].clone()),
                hostname: e.heartbeat.hostname,
                queue_names: e.heartbeat.queue_names,
                os: e.heartbeat.os,
                architecture: e.heartbeat.architecture,
                executor_version: e.heartbeat.executor_version,
                git_version: e.heartbeat.git_version,
                docker_version: e.heartbeat.docker_version,
                src_cli_version: e.heartbeat.src_cli_version,
                first_seen_at: rfc3339(e.first_seen_at),
                last_seen_at: rfc3339(e.last_seen_at),
                active: now - e.last_seen_at <= ACTIVE_WITHIN_SECS,
            })
            .collect();
        Ok(ExecutorConnection {
            total_count: nodes.len() as i64,
            nodes,
        })
    }
}
