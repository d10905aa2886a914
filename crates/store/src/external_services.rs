//! Code host connections (Sourcegraph's "external services").

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, StoreError, now};

/// The kinds of code host connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExternalServiceKind {
    /// A directory on the instance's machine, scanned for git repositories.
    Local,
    /// Sourcegraph's generic git host: a URL prefix and a list of repository paths.
    Other,
}

impl ExternalServiceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExternalServiceKind::Local => "LOCAL",
            ExternalServiceKind::Other => "OTHER",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "LOCAL" => Some(ExternalServiceKind::Local),
            "OTHER" => Some(ExternalServiceKind::Other),
            _ => None,
        }
    }
}

/// A stored code host connection. `config` is its JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalService {
    pub id: i64,
    pub kind: ExternalServiceKind,
    pub display_name: String,
    pub config: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_sync_at: Option<i64>,
    pub last_sync_error: Option<String>,
    pub next_sync_at: i64,
}

const COLUMNS: &str = "id, kind, display_name, config, created_at, updated_at, last_sync_at, last_sync_error, next_sync_at";

fn service(row: &AnyRow) -> Result<ExternalService> {
    let kind: String = row.try_get("kind")?;
    Ok(ExternalService {
        id: row.try_get("id")?,
        kind: ExternalServiceKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown external service kind {kind}")))?,
        display_name: row.try_get("display_name")?,
        config: row.try_get("config")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_sync_at: row.try_get("last_sync_at")?,
        last_sync_error: row.try_get("last_sync_error")?,
        next_sync_at: row.try_get("next_sync_at")?,
    })
}

impl Store {
    pub async fn create_external_service(
        &self,
        kind: ExternalServiceKind,
        display_name: &str,
        config: &str,
    ) -> Result<ExternalService> {
        let now = now();
        let row = sqlx::query(&format!(
            "INSERT INTO external_services (kind, display_name, config, created_at, updated_at, next_sync_at) \
             VALUES ($1, $2, $3, $4, $4, 0) RETURNING {COLUMNS}"
        ))
        .bind(kind.as_str())
        .bind(display_name)
        .bind(config)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        service(&row)
    }

    /// Changes the name and/or configuration, and schedules a sync right away.
    pub async fn update_external_service(
        &self,
        id: i64,
        display_name: Option<&str>,
        config: Option<&str>,
    ) -> Result<ExternalService> {
        let row = sqlx::query(&format!(
            "UPDATE external_services SET display_name = COALESCE($2, display_name), \
             config = COALESCE($3, config), updated_at = $4, next_sync_at = 0 WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(display_name)
        .bind(config)
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => service(&row),
            None => Err(StoreError::NotFound(format!("external service {id}"))),
        }
    }

    /// Deletes a connection and the repositories it owns; returns the names of those repositories
    /// so that their mirrors can be removed.
    pub async fn delete_external_service(&self, id: i64) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let names = sqlx::query("SELECT name FROM repos WHERE external_service_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>("name"))
            .collect::<Result<Vec<_>, _>>()?;
        sqlx::query("DELETE FROM repos WHERE external_service_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM external_services WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound(format!("external service {id}")));
        }
        tx.commit().await?;
        Ok(names)
    }

    pub async fn external_service(&self, id: i64) -> Result<Option<ExternalService>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM external_services WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(service)
        .transpose()
    }

    pub async fn list_external_services(&self) -> Result<Vec<ExternalService>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM external_services ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(service)
        .collect()
    }

    /// Records the outcome of a sync and when the next one is due.
    pub async fn record_external_service_sync(
        &self,
        id: i64,
        error: Option<&str>,
        next_sync_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE external_services SET last_sync_at = $2, last_sync_error = $3, next_sync_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(now())
        .bind(error)
        .bind(next_sync_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
