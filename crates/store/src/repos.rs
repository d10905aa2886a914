//! Repositories: their identity (name, clone URL, owning connection) and their mirror's state.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, StoreError, Viewer, now};

/// Where a repository's mirror stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloneStatus {
    NotCloned,
    Cloning,
    Cloned,
    /// Never cloned successfully; `last_error` says why.
    Failed,
}

impl CloneStatus {
    pub const ALL: [CloneStatus; 4] = [
        CloneStatus::NotCloned,
        CloneStatus::Cloning,
        CloneStatus::Cloned,
        CloneStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CloneStatus::NotCloned => "not_cloned",
            CloneStatus::Cloning => "cloning",
            CloneStatus::Cloned => "cloned",
            CloneStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        CloneStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A stored repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub id: i64,
    pub name: String,
    pub clone_url: String,
    pub external_service_id: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub clone_status: CloneStatus,
    /// The last clone or fetch error; cleared by the next success.
    pub last_error: Option<String>,
    pub last_fetched_at: Option<i64>,
    /// When a fetch last moved a ref.
    pub last_changed_at: Option<i64>,
    pub default_branch: Option<String>,
    pub head_commit: Option<String>,
    pub fetch_interval_secs: i64,
    pub next_fetch_at: i64,
    pub failure_count: i64,
}

const COLUMNS: &str = "id, name, clone_url, external_service_id, created_at, updated_at, clone_status, \
    last_error, last_fetched_at, last_changed_at, default_branch, head_commit, fetch_interval_secs, \
    next_fetch_at, failure_count";

fn repo(row: &AnyRow) -> Result<Repo> {
    let status: String = row.try_get("clone_status")?;
    Ok(Repo {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        clone_url: row.try_get("clone_url")?,
        external_service_id: row.try_get("external_service_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        clone_status: CloneStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown clone status {status}")))?,
        last_error: row.try_get("last_error")?,
        last_fetched_at: row.try_get("last_fetched_at")?,
        last_changed_at: row.try_get("last_changed_at")?,
        default_branch: row.try_get("default_branch")?,
        head_commit: row.try_get("head_commit")?,
        fetch_interval_secs: row.try_get("fetch_interval_secs")?,
        next_fetch_at: row.try_get("next_fetch_at")?,
        failure_count: row.try_get("failure_count")?,
    })
}

/// What a listing selects. Results are ordered by id; `after_id` pages through them.
#[derive(Debug, Clone, Default)]
pub struct RepoFilter {
    pub after_id: Option<i64>,
    pub limit: Option<i64>,
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    pub status: Option<CloneStatus>,
    /// Only the repositories this code host connection provides.
    pub external_service_id: Option<i64>,
    /// Only the repositories this viewer may see (default: all, for the instance's own work).
    pub viewer: Viewer,
}

/// One repository as a code host connection lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoUpsert<'a> {
    pub external_service_id: i64,
    pub name: &'a str,
    pub clone_url: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoUpsertOutcome {
    Created,
    /// The clone URL changed; a fetch is scheduled at once.
    Updated,
    Unchanged,
    /// Another connection already provides the same repository from the same URL.
    ProvidedElsewhere,
}

/// The outcome of a successful clone or fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSuccess {
    /// When the repository last changed, as the fetch found it.
    pub last_changed_at: i64,
    pub default_branch: Option<String>,
    pub head_commit: Option<String>,
    pub fetch_interval_secs: i64,
    pub next_fetch_at: i64,
}

/// The outcome of a failed clone or fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchFailure {
    pub error: String,
    pub next_fetch_at: i64,
}

fn like_pattern(needle: &str) -> String {
    let mut escaped = String::with_capacity(needle.len() + 2);
    escaped.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

/// The WHERE clause and its text arguments for a filter; integer arguments follow in order.
fn filter_clause(filter: &RepoFilter) -> (String, Vec<String>, Vec<i64>) {
    let mut conditions = Vec::new();
    let mut texts = Vec::new();
    if let Some(needle) = &filter.name_contains {
        texts.push(like_pattern(needle));
        conditions.push(format!("LOWER(name) LIKE ${} ESCAPE '\\'", texts.len()));
    }
    if let Some(status) = filter.status {
        texts.push(status.as_str().to_string());
        conditions.push(format!("clone_status = ${}", texts.len()));
    }
    let mut ints = Vec::new();
    if let Some(service) = filter.external_service_id {
        ints.push(service);
        conditions.push(format!(
            "external_service_id = ${}",
            texts.len() + ints.len()
        ));
    }
    if let Some(after) = filter.after_id {
        ints.push(after);
        conditions.push(format!("id > ${}", texts.len() + ints.len()));
    }
    if let Some((visible, user_id)) = filter.viewer.condition("id", texts.len() + ints.len() + 1) {
        ints.extend(user_id);
        conditions.push(visible);
    }
    let clause = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    (clause, texts, ints)
}

impl Store {
    /// Inserts or updates a repository listed by a connection. A name already taken by another
    /// connection with a different URL is a `Conflict`: two repositories may never share a name.
    pub async fn upsert_repo(&self, upsert: RepoUpsert<'_>) -> Result<RepoUpsertOutcome> {
        let mut tx = self.pool.begin().await?;
        let existing =
            sqlx::query("SELECT external_service_id, clone_url FROM repos WHERE name = $1")
                .bind(upsert.name)
                .fetch_optional(&mut *tx)
                .await?;
        let now = now();
        let outcome = match existing {
            None => {
                sqlx::query(
                    "INSERT INTO repos (name, clone_url, external_service_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4)",
                )
                .bind(upsert.name)
                .bind(upsert.clone_url)
                .bind(upsert.external_service_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                RepoUpsertOutcome::Created
            }
            Some(row) => {
                let owner: i64 = row.try_get("external_service_id")?;
                let url: String = row.try_get("clone_url")?;
                if owner != upsert.external_service_id {
                    if url == upsert.clone_url {
                        RepoUpsertOutcome::ProvidedElsewhere
                    } else {
                        return Err(StoreError::Conflict(format!(
                            "repository name {} is already taken by code host connection {owner} (from {url})",
                            upsert.name
                        )));
                    }
                } else if url == upsert.clone_url {
                    RepoUpsertOutcome::Unchanged
                } else {
                    sqlx::query(
                        "UPDATE repos SET clone_url = $2, updated_at = $3, next_fetch_at = 0 WHERE name = $1",
                    )
                    .bind(upsert.name)
                    .bind(upsert.clone_url)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    RepoUpsertOutcome::Updated
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Deletes the repositories of a connection that it no longer lists; returns their names.
    pub async fn remove_unlisted_repos(
        &self,
        external_service_id: i64,
        listed: &[String],
    ) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let owned = sqlx::query("SELECT name FROM repos WHERE external_service_id = $1")
            .bind(external_service_id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>("name"))
            .collect::<Result<Vec<_>, _>>()?;
        let gone: Vec<String> = owned
            .into_iter()
            .filter(|name| !listed.contains(name))
            .collect();
        for name in &gone {
            sqlx::query("DELETE FROM repos WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    pub async fn list_repos(&self, filter: &RepoFilter) -> Result<Vec<Repo>> {
        let (clause, texts, mut ints) = filter_clause(filter);
        let mut sql = format!("SELECT {COLUMNS} FROM repos{clause} ORDER BY id");
        if let Some(limit) = filter.limit {
            ints.push(limit);
            sql.push_str(&format!(" LIMIT ${}", texts.len() + ints.len()));
        }
        let mut query = sqlx::query(&sql);
        for text in texts {
            query = query.bind(text);
        }
        for int in ints {
            query = query.bind(int);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(repo)
            .collect()
    }

    /// How many repositories match, ignoring paging.
    pub async fn count_repos(&self, filter: &RepoFilter) -> Result<i64> {
        let unpaged = RepoFilter {
            after_id: None,
            limit: None,
            ..filter.clone()
        };
        let (clause, texts, ints) = filter_clause(&unpaged);
        let sql = format!("SELECT COUNT(*) AS n FROM repos{clause}");
        let mut query = sqlx::query(&sql);
        for text in texts {
            query = query.bind(text);
        }
        for int in ints {
            query = query.bind(int);
        }
        Ok(query.fetch_one(&self.pool).await?.try_get("n")?)
    }

    pub async fn repo_by_name(&self, name: &str) -> Result<Option<Repo>> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM repos WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(repo)
            .transpose()
    }

    /// The repository of this name if the viewer may see it (one they may not see is as absent
    /// as one that does not exist).
    pub async fn visible_repo_by_name(&self, name: &str, viewer: Viewer) -> Result<Option<Repo>> {
        let (condition, user_id) = viewer
            .condition("id", 2)
            .map_or((String::new(), None), |(c, u)| (format!(" AND {c}"), u));
        let sql = format!("SELECT {COLUMNS} FROM repos WHERE name = $1{condition}");
        let mut query = sqlx::query(&sql).bind(name);
        if let Some(user_id) = user_id {
            query = query.bind(user_id);
        }
        query
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(repo)
            .transpose()
    }

    pub async fn repo_by_id(&self, id: i64) -> Result<Option<Repo>> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM repos WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(repo)
            .transpose()
    }

    /// Repositories whose next fetch is due, most overdue first.
    pub async fn repos_due_for_fetch(&self, at: i64, limit: i64) -> Result<Vec<Repo>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM repos WHERE next_fetch_at <= $1 ORDER BY next_fetch_at, id LIMIT $2"
        ))
        .bind(at)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(repo)
        .collect()
    }

    /// The earliest time any repository is due, if there are any.
    pub async fn next_fetch_due(&self) -> Result<Option<i64>> {
        Ok(sqlx::query("SELECT MIN(next_fetch_at) AS due FROM repos")
            .fetch_one(&self.pool)
            .await?
            .try_get("due")?)
    }

    /// Marks a repository that has no mirror yet as being cloned.
    pub async fn mark_repo_cloning(&self, id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE repos SET clone_status = 'cloning', updated_at = $2 WHERE id = $1 AND clone_status <> 'cloned'",
        )
        .bind(id)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn record_fetch_success(&self, id: i64, outcome: &FetchSuccess) -> Result<()> {
        let now = now();
        sqlx::query(
            "UPDATE repos SET clone_status = 'cloned', last_error = NULL, last_fetched_at = $2, \
             last_changed_at = $3, \
             default_branch = $4, head_commit = $5, fetch_interval_secs = $6, next_fetch_at = $7, \
             failure_count = 0, updated_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .bind(outcome.last_changed_at)
        .bind(outcome.default_branch.as_deref())
        .bind(outcome.head_commit.as_deref())
        .bind(outcome.fetch_interval_secs)
        .bind(outcome.next_fetch_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records an error. A repository that has a mirror stays `cloned` (its last good state is
    /// still served); one that never cloned becomes `failed`.
    pub async fn record_fetch_failure(&self, id: i64, failure: &FetchFailure) -> Result<()> {
        sqlx::query(
            "UPDATE repos SET clone_status = CASE WHEN clone_status = 'cloned' THEN 'cloned' ELSE 'failed' END, \
             last_error = $2, next_fetch_at = $3, failure_count = failure_count + 1, updated_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(&failure.error)
        .bind(failure.next_fetch_at)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a repository whose mirror vanished or was found damaged as not cloned.
    pub async fn mark_repo_not_cloned(&self, id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE repos SET clone_status = 'not_cloned', next_fetch_at = 0, updated_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Makes a repository due for a fetch now.
    pub async fn request_repo_fetch(&self, id: i64) -> Result<()> {
        let changed = sqlx::query("UPDATE repos SET next_fetch_at = 0 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound(format!("repository {id}")));
        }
        Ok(())
    }

    /// After a crash, clones that were running are not running any more: they become due again.
    pub async fn reset_interrupted_clones(&self) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE repos SET clone_status = 'not_cloned', next_fetch_at = 0 WHERE clone_status = 'cloning'",
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// How many repositories are in each state.
    pub async fn repo_status_counts(&self) -> Result<Vec<(CloneStatus, i64)>> {
        let rows =
            sqlx::query("SELECT clone_status, COUNT(*) AS n FROM repos GROUP BY clone_status")
                .fetch_all(&self.pool)
                .await?;
        let mut counts: Vec<(CloneStatus, i64)> =
            CloneStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for row in rows {
            let status: String = row.try_get("clone_status")?;
            let n: i64 = row.try_get("n")?;
            if let Some(slot) = counts.iter_mut().find(|(s, _)| s.as_str() == status) {
                slot.1 = n;
            }
        }
        Ok(counts)
    }
}
