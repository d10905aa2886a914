//! Executors as their heartbeats describe them. A heartbeat inserts the executor's row or
//! refreshes it; `first_seen_at` never moves once set.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, now};

/// What an executor reports about itself in a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutorHeartbeat {
    pub hostname: String,
    pub queue_names: Vec<String>,
    pub os: String,
    pub architecture: String,
    pub executor_version: String,
    pub git_version: String,
    pub docker_version: String,
    pub src_cli_version: String,
}

/// An executor that has sent at least one heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executor {
    pub id: i64,
    pub heartbeat: ExecutorHeartbeat,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
}

const COLUMNS: &str = "id, hostname, queue_names, os, architecture, executor_version, git_version, \
    docker_version, src_cli_version, first_seen_at, last_seen_at";

fn executor(row: &AnyRow) -> Result<Executor> {
    let queues: String = row.try_get("queue_names")?;
    Ok(Executor {
        id: row.try_get("id")?,
        heartbeat: ExecutorHeartbeat {
            hostname: row.try_get("hostname")?,
            queue_names: queues
                .split(',')
                .filter(|q| !q.is_empty())
                .map(str::to_string)
                .collect(),
            os: row.try_get("os")?,
            architecture: row.try_get("architecture")?,
            executor_version: row.try_get("executor_version")?,
            git_version: row.try_get("git_version")?,
            docker_version: row.try_get("docker_version")?,
            src_cli_version: row.try_get("src_cli_version")?,
        },
        first_seen_at: row.try_get("first_seen_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
    })
}

impl Store {
    /// Records a heartbeat: the executor's row is created or brought up to date, with the
    /// metrics it sent (Prometheus text, labelled with its name).
    pub async fn record_executor_heartbeat(
        &self,
        beat: &ExecutorHeartbeat,
        metrics: &str,
    ) -> Result<()> {
        let at = now();
        sqlx::query(
            "INSERT INTO executor_heartbeats (hostname, queue_names, os, architecture, \
             executor_version, git_version, docker_version, src_cli_version, metrics, \
             first_seen_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             ON CONFLICT (hostname) DO UPDATE SET queue_names = excluded.queue_names, \
             os = excluded.os, architecture = excluded.architecture, \
             executor_version = excluded.executor_version, git_version = excluded.git_version, \
             docker_version = excluded.docker_version, src_cli_version = excluded.src_cli_version, \
             metrics = excluded.metrics, last_seen_at = excluded.last_seen_at",
        )
        .bind(&beat.hostname)
        .bind(beat.queue_names.join(","))
        .bind(&beat.os)
        .bind(&beat.architecture)
        .bind(&beat.executor_version)
        .bind(&beat.git_version)
        .bind(&beat.docker_version)
        .bind(&beat.src_cli_version)
        .bind(metrics)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The metrics of the executors seen since `seen_since`, by hostname.
    pub async fn executor_metrics(&self, seen_since: i64) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT hostname, metrics FROM executor_heartbeats WHERE last_seen_at >= $1 \
             AND metrics <> '' ORDER BY hostname",
        )
        .bind(seen_since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("hostname")?, row.try_get("metrics")?)))
            .collect()
    }

    /// Whether an executor of this name has sent a heartbeat.
    pub async fn executor_known(&self, hostname: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 AS known FROM executor_heartbeats WHERE hostname = $1")
            .bind(hostname)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Executors, most recently seen first, optionally only those whose hostname contains
    /// `query`, and only those seen since `seen_since` when given.
    pub async fn list_executors(
        &self,
        query: Option<&str>,
        seen_since: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Executor>> {
        let pattern = format!(
            "%{}%",
            query
                .unwrap_or("")
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM executor_heartbeats WHERE LOWER(hostname) LIKE $1 ESCAPE '\\' \
             AND last_seen_at >= $2 ORDER BY last_seen_at DESC, id DESC LIMIT $3"
        ))
        .bind(pattern)
        .bind(seen_since.unwrap_or(i64::MIN))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(executor)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_each_store;

    #[tokio::test]
    async fn heartbeats_create_then_refresh_an_executor() {
        with_each_store(|store| async move {
            let mut beat = ExecutorHeartbeat {
                hostname: "host-1_a".into(),
                queue_names: vec!["codeintel".into(), "batches".into()],
                os: "linux".into(),
                architecture: "amd64".into(),
                executor_version: "0.1.0".into(),
                git_version: "2.47".into(),
                ..Default::default()
            };
            store
                .record_executor_heartbeat(&beat, "")
                .await
                .expect("first");
            assert!(store.executor_metrics(0).await.expect("none").is_empty());
            let first = store.list_executors(None, None, 10).await.expect("list");
            assert_eq!(first.len(), 1);
            assert_eq!(first[0].heartbeat, beat);
            assert!(store.executor_known("host-1_a").await.expect("known"));
            assert!(!store.executor_known("host-1").await.expect("known"));
            beat.executor_version = "0.2.0".into();
            store
                .record_executor_heartbeat(&beat, "up 1\n")
                .await
                .expect("again");
            assert_eq!(
                store.executor_metrics(0).await.expect("metrics"),
                [("host-1_a".to_string(), "up 1\n".to_string())]
            );
            assert!(
                store
                    .executor_metrics(now() + 100)
                    .await
                    .expect("old")
                    .is_empty()
            );
            let second = store.list_executors(None, None, 10).await.expect("list");
            assert_eq!(second.len(), 1);
            assert_eq!(second[0].heartbeat.executor_version, "0.2.0");
            assert_eq!(second[0].first_seen_at, first[0].first_seen_at);
            assert!(second[0].last_seen_at >= first[0].last_seen_at);
            // `_` is a literal in the query, not a wildcard.
            assert_eq!(
                store
                    .list_executors(Some("T-1_"), None, 10)
                    .await
                    .expect("q")
                    .len(),
                1
            );
            assert!(
                store
                    .list_executors(Some("t-1x"), None, 10)
                    .await
                    .expect("q")
                    .is_empty()
            );
            assert!(
                store
                    .list_executors(None, Some(now() + 100), 10)
                    .await
                    .expect("seen since")
                    .is_empty()
            );
        })
        .await;
    }
}
