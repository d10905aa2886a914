//! Every saved version of the site configuration; the newest is the one in force.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Dialect, Result, Store, StoreError, now};

/// One saved version of the site configuration document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfigVersion {
    pub id: i64,
    pub contents: String,
    pub created_at: i64,
}

const SITE_CONFIG_LOCK: i64 = 0x5155_4152_5260;

fn version(row: &AnyRow) -> Result<SiteConfigVersion> {
    Ok(SiteConfigVersion {
        id: row.try_get("id")?,
        contents: row.try_get("contents")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// The version in force, if any was ever saved.
    pub async fn latest_site_config(&self) -> Result<Option<SiteConfigVersion>> {
        sqlx::query(
            "SELECT id, contents, created_at FROM site_config_versions ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(version)
        .transpose()
    }

    /// Saves a new version. `expected_latest` is the id the caller edited (None for a first
    /// version); if another version was saved since, nothing is written and `Conflict` is returned,
    /// so concurrent editors never overwrite each other unseen.
    pub async fn save_site_config(
        &self,
        expected_latest: Option<i64>,
        contents: &str,
    ) -> Result<SiteConfigVersion> {
        let mut tx = self.pool.begin().await?;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SITE_CONFIG_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let latest: Option<i64> = sqlx::query("SELECT MAX(id) AS id FROM site_config_versions")
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?;
        if latest != expected_latest {
            return Err(StoreError::Conflict(format!(
                "the site configuration was changed by someone else (latest version {}, edited version {}); reload and edit again",
                latest.unwrap_or(0),
                expected_latest.unwrap_or(0)
            )));
        }
        let row = sqlx::query(
            "INSERT INTO site_config_versions (contents, created_at) VALUES ($1, $2) RETURNING id, contents, created_at",
        )
        .bind(contents)
        .bind(now())
        .fetch_one(&mut *tx)
        .await?;
        let saved = version(&row)?;
        tx.commit().await?;
        Ok(saved)
    }

    /// The newest versions first.
    pub async fn site_config_history(&self, limit: i64) -> Result<Vec<SiteConfigVersion>> {
        sqlx::query(
            "SELECT id, contents, created_at FROM site_config_versions ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(version)
        .collect()
    }
}
