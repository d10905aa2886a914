//! The audit log: security events, append-only, readable by site admins. Entries never carry a
//! secret (callers describe events, never the passwords or tokens involved).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, now};

/// One security event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub created_at: i64,
    /// The account that acted, if one was signed in.
    pub actor_user_id: Option<i64>,
    /// The actor's name as shown: a username, or `anonymous` / `quarry` (the instance itself).
    pub actor: String,
    /// What happened, such as `sign_in.failed` or `access_token.created`.
    pub action: String,
    /// What it happened to, such as a username or repository name.
    pub subject: String,
    /// The caller's network address, when the event came over HTTP.
    pub address: Option<String>,
    /// Free-form context (JSON text).
    pub details: String,
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewAuditEntry<'a> {
    pub actor_user_id: Option<i64>,
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: &'a str,
    pub address: Option<&'a str>,
    pub details: String,
}

fn entry(row: &AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
        actor_user_id: row.try_get("actor_user_id")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        subject: row.try_get("subject")?,
        address: row.try_get("address")?,
        details: row.try_get("details")?,
    })
}

impl Store {
    pub async fn append_audit(&self, event: NewAuditEntry<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (created_at, actor_user_id, actor, action, subject, address, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(now())
        .bind(event.actor_user_id)
        .bind(event.actor)
        .bind(event.action)
        .bind(event.subject)
        .bind(event.address)
        .bind(event.details)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest entries first, optionally of one action only, before `before_id` (paging).
    pub async fn audit_entries(
        &self,
        action: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        sqlx::query(
            "SELECT id, created_at, actor_user_id, actor, action, subject, address, details \
             FROM audit_log WHERE ($1 = '' OR action = $1) AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(action.unwrap_or(""))
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry)
        .collect()
    }
}
