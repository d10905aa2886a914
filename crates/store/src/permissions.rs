//! Explicit repository permissions: a restricted repository is visible only to the users granted
//! it (and to site admins); every other repository is visible to every signed-in user.

use std::collections::HashSet;

use sqlx::Row;

use crate::{Result, Store, StoreError, now};

/// Whose view of the repositories a query takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Viewer {
    /// Every repository: the instance's own work and site admins.
    #[default]
    All,
    /// A signed-in user: unrestricted repositories and those granted to the user.
    User(i64),
    /// Nobody signed in: unrestricted repositories only.
    Anonymous,
}

impl Viewer {
    /// A SQL condition on a repository id column that holds when the viewer may see the
    /// repository, and the user id it binds (as parameter `$n`), if any.
    pub(crate) fn condition(self, id_column: &str, n: usize) -> Option<(String, Option<i64>)> {
        let unrestricted = format!("{id_column} NOT IN (SELECT repo_id FROM repo_restrictions)");
        match self {
            Viewer::All => None,
            Viewer::Anonymous => Some((unrestricted, None)),
            Viewer::User(user_id) => Some((
                format!(
                    "({unrestricted} OR {id_column} IN (SELECT repo_id FROM user_repo_permissions WHERE user_id = ${n}))"
                ),
                Some(user_id),
            )),
        }
    }
}

/// A repository's explicit permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPermissions {
    /// No explicit permissions: every signed-in user sees it.
    pub unrestricted: bool,
    /// When the permissions were last set.
    pub updated_at: Option<i64>,
    /// The users granted the repository.
    pub user_ids: Vec<i64>,
}

impl Store {
    /// Restricts a repository to exactly these users (replacing any earlier grant).
    pub async fn set_repo_permissions(&self, repo_id: i64, user_ids: &[i64]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT 1 AS one FROM repos WHERE id = $1")
            .bind(repo_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound(format!("repository {repo_id}")));
        }
        clear_permissions(&mut tx, repo_id).await?;
        sqlx::query("INSERT INTO repo_restrictions (repo_id, updated_at) VALUES ($1, $2)")
            .bind(repo_id)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        let unique: HashSet<i64> = user_ids.iter().copied().collect();
        for user_id in unique {
            sqlx::query("INSERT INTO user_repo_permissions (user_id, repo_id) VALUES ($1, $2)")
                .bind(user_id)
                .bind(repo_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::missing_reference(e, format!("user {user_id}")))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Lifts a repository's explicit permissions: every signed-in user sees it again.
    pub async fn set_repo_unrestricted(&self, repo_id: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        clear_permissions(&mut tx, repo_id).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn repo_permissions(&self, repo_id: i64) -> Result<RepoPermissions> {
        let restriction =
            sqlx::query("SELECT updated_at FROM repo_restrictions WHERE repo_id = $1")
                .bind(repo_id)
                .fetch_optional(&self.pool)
                .await?;
        let user_ids = sqlx::query(
            "SELECT user_id FROM user_repo_permissions WHERE repo_id = $1 ORDER BY user_id",
        )
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>("user_id"))
        .collect::<Result<_, _>>()?;
        Ok(RepoPermissions {
            unrestricted: restriction.is_none(),
            updated_at: restriction
                .map(|row| row.try_get("updated_at"))
                .transpose()?,
            user_ids,
        })
    }

    /// The ids of the repositories a viewer may not see.
    pub async fn hidden_repo_ids(&self, viewer: Viewer) -> Result<HashSet<i64>> {
        let Some((visible, user_id)) = viewer.condition("repo_id", 1) else {
            return Ok(HashSet::new());
        };
        let sql = format!("SELECT repo_id FROM repo_restrictions WHERE NOT {visible}");
        let mut query = sqlx::query_scalar::<_, i64>(&sql);
        if let Some(user_id) = user_id {
            query = query.bind(user_id);
        }
        Ok(query.fetch_all(&self.pool).await?.into_iter().collect())
    }
}

/// Removes a repository's restriction and grants.
async fn clear_permissions(tx: &mut sqlx::Transaction<'_, sqlx::Any>, repo_id: i64) -> Result<()> {
    for table in ["repo_restrictions", "user_repo_permissions"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE repo_id = $1"))
            .bind(repo_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
