//! Append-only migrations, one list per dialect with the same versions (`both/` holds those
//! written once for the two dialects).

use sqlx::Row;

use crate::{Dialect, Result, Store, StoreError, now};

const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_spine.sql")),
    (2, include_str!("../migrations/sqlite/0002_accounts.sql")),
    (3, include_str!("../migrations/sqlite/0003_executors.sql")),
    (4, include_str!("../migrations/sqlite/0004_jobs.sql")),
    (5, include_str!("../migrations/sqlite/0005_uploads.sql")),
    (
        6,
        include_str!("../migrations/both/0006_executor_metrics.sql"),
    ),
];
const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_spine.sql")),
    (2, include_str!("../migrations/postgres/0002_accounts.sql")),
    (3, include_str!("../migrations/postgres/0003_executors.sql")),
    (4, include_str!("../migrations/postgres/0004_jobs.sql")),
    (5, include_str!("../migrations/postgres/0005_uploads.sql")),
    (
        6,
        include_str!("../migrations/both/0006_executor_metrics.sql"),
    ),
];

/// An arbitrary constant that serialises migrations of several processes starting at once.
const POSTGRES_MIGRATION_LOCK: i64 = 0x5155_4152_5259;

pub(crate) async fn run(store: &Store) -> Result<()> {
    let migrations = match store.dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    };
    let mut tx = store.pool.begin().await?;
    if store.dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(POSTGRES_MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS quarry_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM quarry_migrations")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    for (version, sql) in migrations {
        if applied.contains(version) {
            continue;
        }
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::Migration {
                version: *version,
                message: e.to_string(),
            })?;
        sqlx::query("INSERT INTO quarry_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(*version)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        tracing::info!(version, "applied database migration");
    }
    tx.commit().await?;
    Ok(())
}
