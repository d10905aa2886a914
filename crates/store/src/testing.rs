//! Databases for tests: a fresh PostgreSQL database per test when `QUARRY_TEST_DATABASE_URL` names a
//! server, so the same store tests run on SQLite and on PostgreSQL.

use std::future::Future;

use sqlx::{Connection, Executor};

use crate::{Result, Store, StoreError};

/// Runs a scenario on a fresh SQLite database and, when `QUARRY_TEST_DATABASE_URL` is set, on a
/// fresh PostgreSQL database. Panics (failing the test) when a database cannot be set up.
pub async fn with_each_store<F, Fut>(scenario: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(format!(
        "quarry-store-test-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("create a directory for the SQLite test database");
    let sqlite = Store::open_sqlite(&dir.join("quarry.db"))
        .await
        .expect("open SQLite test database");
    scenario(sqlite.clone()).await;
    sqlite.close().await;
    let _ = std::fs::remove_dir_all(&dir);

    if let Some(database) = PostgresTestDatabase::create().await {
        let database = database.expect("create PostgreSQL test database");
        let postgres = Store::open(&database.url)
            .await
            .expect("open PostgreSQL test database");
        scenario(postgres.clone()).await;
        postgres.close().await;
        database
            .drop()
            .await
            .expect("drop PostgreSQL test database");
    }
}

/// The variable that names a PostgreSQL server (any database on it) for tests.
pub const TEST_DATABASE_URL_VAR: &str = "QUARRY_TEST_DATABASE_URL";

/// A PostgreSQL database created for one test; `drop` it when the test is done.
#[derive(Debug)]
pub struct PostgresTestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl PostgresTestDatabase {
    /// Creates a new empty database on the server named by `QUARRY_TEST_DATABASE_URL`, or returns
    /// `None` when the variable is unset.
    pub async fn create() -> Option<Result<PostgresTestDatabase>> {
        let admin_url = std::env::var(TEST_DATABASE_URL_VAR).ok()?;
        Some(Self::create_on(admin_url).await)
    }

    async fn create_on(admin_url: String) -> Result<PostgresTestDatabase> {
        sqlx::any::install_default_drivers();
        let name = format!(
            "quarry_test_{}_{}",
            std::process::id(),
            fastrand::u64(..) % 1_000_000_000_000
        );
        let mut admin = sqlx::AnyConnection::connect(&admin_url)
            .await
            .map_err(|e| StoreError::Connect(crate::redact_url(&admin_url), e.to_string()))?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        admin.close().await?;
        let url = with_database(&admin_url, &name);
        Ok(PostgresTestDatabase {
            url,
            admin_url,
            name,
        })
    }

    /// Drops the database; connections to it must be closed first.
    pub async fn drop(self) -> Result<()> {
        let mut admin = sqlx::AnyConnection::connect(&self.admin_url).await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await?;
        admin.close().await?;
        Ok(())
    }
}

/// The same server URL with another database name.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "t1"), "postgres://u@h/t1");
    }
}
