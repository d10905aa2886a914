//! The database: connection pools for SQLite (embedded) and PostgreSQL (scaled), migrations for
//! both, and typed queries for everything Quarry stores: site configuration, code host connections,
//! repositories, accounts (users, sessions, access tokens, one-time links), explicit repository
//! permissions and the audit log.
//!
//! Invariants: callers never write SQL and never learn which database they talk to; where the two
//! dialects differ, the difference lives in this crate only. Migrations are append-only and run at
//! start, in one transaction each. Timestamps are Unix seconds. Secrets are stored only as digests or
//! password hashes made by the caller; a listing for a `Viewer` never includes a repository the
//! viewer may not see; the last site admin can be neither demoted nor deleted.

mod accounts;
mod audit;
mod blobs;
mod error;
mod executors;
mod external_services;
mod jobs;
mod migrate;
mod permissions;
mod repos;
mod site_config;
pub mod testing;
mod uploads;

use std::path::Path;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions};

pub use accounts::{AccessToken, LinkPurpose, NewUser, Session, User};
pub use audit::{AuditEntry, NewAuditEntry};
pub use blobs::BlobStore;
pub use error::StoreError;
pub use executors::{Executor, ExecutorHeartbeat};
pub use external_services::{ExternalService, ExternalServiceKind};
pub use jobs::{JobLogEntry, JobOutcome, JobRecord, JobState, NewJob, QueueStats, StalledReset};
pub use permissions::{RepoPermissions, Viewer};
pub use repos::{
    CloneStatus, FetchFailure, FetchSuccess, Repo, RepoFilter, RepoUpsert, RepoUpsertOutcome,
};
pub use site_config::SiteConfigVersion;
pub use uploads::{NewUpload, Upload};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SQLite (embedded)",
            Dialect::Postgres => "PostgreSQL",
        }
    }
}

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
}

impl Store {
    /// Opens (creating if needed) the embedded SQLite database at `path` and migrates it.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Store::open(&url).await
    }

    /// Opens a `sqlite:` or `postgres:` URL and migrates the database.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::Connect(redact_url(url), e.to_string()))?
            .disable_statement_logging();
        let max_connections = match dialect {
            // SQLite has one writer at a time; a few connections serve concurrent readers.
            Dialect::Sqlite => 4,
            Dialect::Postgres => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // In WAL mode this never corrupts the database and survives the process
                        // crashing; only an OS crash or power cut can undo the latest commits,
                        // and commits no longer wait on a disk flush each.
                        sqlx::Executor::execute(connection, "PRAGMA synchronous=NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Connect(redact_url(url), e.to_string()))?;
        let store = Store { pool, dialect };
        if dialect == Dialect::Sqlite {
            // WAL lets readers proceed during a write; the setting persists in the file.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&store.pool)
                .await?;
        }
        migrate::run(&store).await?;
        Ok(store)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Succeeds when the database answers a query.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A database URL with its password replaced, fit for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{}://{masked}{}", &url[..scheme_end], &rest[at..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://alice:s3cret@db:5432/quarry"),
            "postgres://alice:***@db:5432/quarry"
        );
        assert_eq!(
            redact_url("postgres://alice@db/quarry"),
            "postgres://alice@db/quarry"
        );
        assert_eq!(redact_url("sqlite:///x.db"), "sqlite:///x.db");
    }
}
