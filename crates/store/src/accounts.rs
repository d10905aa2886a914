//! User accounts, their sessions, access tokens and one-time links. Secrets are stored only as
//! SHA-256 digests (hex), computed by the caller; passwords only as the caller's password hashes.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Dialect, Result, Store, StoreError, now};

/// Serialises changes that must keep at least one site admin (PostgreSQL; SQLite writes are serial).
const ACCOUNTS_LOCK: i64 = 0x5155_4152_5261;

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: Option<String>,
    pub site_admin: bool,
    pub created_at: i64,
}

/// A signed-in browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    pub user_id: i64,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_active_at: i64,
}

/// An access token's record (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub id: i64,
    pub user_id: i64,
    pub note: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// What a one-time link is good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Signs its user in (or, without a user, creates the first site admin).
    SignIn,
    /// Lets its user choose a new password.
    ResetPassword,
}

impl LinkPurpose {
    fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::SignIn => "sign-in",
            LinkPurpose::ResetPassword => "reset-password",
        }
    }
}

/// A new account.
#[derive(Debug, Clone, Copy)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub password_hash: Option<&'a str>,
}

const USER_COLUMNS: &str = "id, username, email, site_admin, created_at";

fn user(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        site_admin: row.try_get::<i64, _>("site_admin")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

fn session(row: &AnyRow) -> Result<Session> {
    Ok(Session {
        id: row.try_get("session_id")?,
        user_id: row.try_get("session_user_id")?,
        csrf_token: row.try_get("csrf_token")?,
        created_at: row.try_get("session_created_at")?,
        last_active_at: row.try_get("last_active_at")?,
    })
}

fn access_token(row: &AnyRow) -> Result<AccessToken> {
    let scopes: String = row.try_get("scopes")?;
    Ok(AccessToken {
        id: row.try_get("token_id")?,
        user_id: row.try_get("user_id")?,
        note: row.try_get("note")?,
        scopes: scopes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        created_at: row.try_get("token_created_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

/// A unique index refusing a row becomes a `Conflict` with this message.
fn conflict_on_duplicate(error: sqlx::Error, message: &str) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(message.to_string())
        }
        _ => StoreError::Database(error),
    }
}

const TOKEN_COLUMNS: &str =
    "id AS token_id, user_id, note, scopes, created_at AS token_created_at, last_used_at";

impl Store {
    async fn lock_accounts(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(ACCOUNTS_LOCK)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Creates an account. The instance's first account is a site admin. With `only_if_first`,
    /// the account is created only when no account exists yet (`Conflict` otherwise).
    pub async fn create_user(&self, new: NewUser<'_>, only_if_first: bool) -> Result<User> {
        let mut tx = self.pool.begin().await?;
        self.lock_accounts(&mut tx).await?;
        let guard = if only_if_first {
            " WHERE NOT EXISTS (SELECT 1 FROM users)"
        } else {
            ""
        };
        let row = sqlx::query(&format!(
            "INSERT INTO users (username, email, password_hash, site_admin, created_at) \
             SELECT $1, $2, $3, CASE WHEN EXISTS (SELECT 1 FROM users) THEN 0 ELSE 1 END, $4{guard} \
             RETURNING {USER_COLUMNS}"
        ))
        .bind(new.username)
        .bind(new.email)
        .bind(new.password_hash)
        .bind(now())
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| conflict_on_duplicate(e, "the username or email is already taken"))?;
        let Some(row) = row else {
            return Err(StoreError::Conflict(
                "the site is already initialized: an account exists".into(),
            ));
        };
        let created = user(&row)?;
        tx.commit().await?;
        Ok(created)
    }

    /// Whether any account exists.
    pub async fn has_users(&self) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 AS one FROM users LIMIT 1")
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user)
            .transpose()
    }

    /// The account a sign-in names (by username or email, case-insensitively), with its password
    /// hash if it has one.
    pub async fn user_for_sign_in(&self, name: &str) -> Result<Option<(User, Option<String>)>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users \
             WHERE LOWER(username) = LOWER($1) OR LOWER(email) = LOWER($1) ORDER BY id LIMIT 1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((user(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }

    /// Accounts ordered by id, optionally those whose username or email contains `query`.
    pub async fn list_users(
        &self,
        query: Option<&str>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<User>> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id > $1 AND ($2 = '' OR LOWER(username) LIKE $3 \
             OR LOWER(COALESCE(email, '')) LIKE $3) ORDER BY id LIMIT $4"
        ))
        .bind(after_id)
        .bind(query.unwrap_or(""))
        .bind(format!("%{}%", query.unwrap_or("").to_lowercase()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(user)
        .collect()
    }

    pub async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// The first site admin, if any.
    pub async fn first_site_admin(&self) -> Result<Option<User>> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE site_admin = 1 ORDER BY id LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(user)
        .transpose()
    }

    /// Sets a new password hash and ends every session of the account.
    pub async fn set_password_hash(&self, user_id: i64, hash: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Promotes or demotes a site admin. Demoting the last site admin is a `Conflict`.
    pub async fn set_site_admin(&self, user_id: i64, site_admin: bool) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.lock_accounts(&mut tx).await?;
        if self.user_by_id_in(&mut tx, user_id).await?.is_none() {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        }
        if !site_admin {
            self.refuse_removing_last_admin(&mut tx, user_id).await?;
        }
        sqlx::query("UPDATE users SET site_admin = $1 WHERE id = $2")
            .bind(i64::from(site_admin))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes an account with its sessions, tokens and permissions. Deleting the last site
    /// admin is a `Conflict`.
    pub async fn delete_user(&self, user_id: i64) -> Result<User> {
        let mut tx = self.pool.begin().await?;
        self.lock_accounts(&mut tx).await?;
        let Some(existing) = self.user_by_id_in(&mut tx, user_id).await? else {
            return Err(StoreError::NotFound(format!("user {user_id}")));
        };
        self.refuse_removing_last_admin(&mut tx, user_id).await?;
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(existing)
    }

    async fn user_by_id_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        user_id: i64,
    ) -> Result<Option<User>> {
        sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?
            .as_ref()
            .map(user)
            .transpose()
    }

    async fn refuse_removing_last_admin(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        user_id: i64,
    ) -> Result<()> {
        let others: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM users WHERE site_admin = 1 AND id <> $1")
                .bind(user_id)
                .fetch_one(&mut **tx)
                .await?
                .try_get("n")?;
        let is_admin = self
            .user_by_id_in(tx, user_id)
            .await?
            .is_some_and(|u| u.site_admin);
        if is_admin && others == 0 {
            return Err(StoreError::Conflict(
                "this is the last site admin: promote another user first".into(),
            ));
        }
        Ok(())
    }

    /// Starts a session for a user.
    pub async fn create_session(
        &self,
        user_id: i64,
        token_sha256: &str,
        csrf_token: &str,
    ) -> Result<Session> {
        let at = now();
        let row = sqlx::query(
            "INSERT INTO sessions (token_sha256, csrf_token, user_id, created_at, last_active_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING id AS session_id, user_id AS session_user_id, csrf_token, \
             created_at AS session_created_at, last_active_at",
        )
        .bind(token_sha256)
        .bind(csrf_token)
        .bind(user_id)
        .bind(at)
        .fetch_one(&self.pool)
        .await?;
        session(&row)
    }

    /// The session with this token digest and its user.
    pub async fn session_by_token(&self, token_sha256: &str) -> Result<Option<(Session, User)>> {
        let row = sqlx::query(&format!(
            "SELECT s.id AS session_id, s.user_id AS session_user_id, s.csrf_token, s.created_at AS session_created_at, \
             s.last_active_at, {} FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_sha256 = $1",
            prefixed_user_columns("u")
        ))
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((session(&row)?, user(&row)?))).transpose()
    }

    pub async fn touch_session(&self, session_id: i64, at: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_active_at = $1 WHERE id = $2")
            .bind(at)
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, session_id: i64) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends every session of a user; returns how many there were.
    pub async fn delete_sessions_of(&self, user_id: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Removes sessions last active before `idle_before` or started before `started_before`.
    pub async fn delete_expired_sessions(
        &self,
        idle_before: i64,
        started_before: i64,
    ) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM sessions WHERE last_active_at < $1 OR created_at < $2")
                .bind(idle_before)
                .bind(started_before)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    pub async fn create_access_token(
        &self,
        user_id: i64,
        token_sha256: &str,
        note: &str,
        scopes: &[String],
    ) -> Result<AccessToken> {
        let row = sqlx::query(&format!(
            "INSERT INTO access_tokens (user_id, token_sha256, note, scopes, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(user_id)
        .bind(token_sha256)
        .bind(note)
        .bind(scopes.join(","))
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::missing_reference(e, format!("user {user_id}")))?;
        access_token(&row)
    }

    /// The token with this digest and its user.
    pub async fn access_token_by_digest(
        &self,
        token_sha256: &str,
    ) -> Result<Option<(AccessToken, User)>> {
        let row = sqlx::query(&format!(
            "SELECT t.id AS token_id, t.user_id, t.note, t.scopes, t.created_at AS token_created_at, \
             t.last_used_at, {} FROM access_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_sha256 = $1",
            prefixed_user_columns("u")
        ))
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((access_token(&row)?, user(&row)?)))
            .transpose()
    }

    pub async fn access_token_by_id(&self, id: i64) -> Result<Option<AccessToken>> {
        sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(access_token)
        .transpose()
    }

    pub async fn access_tokens_of(&self, user_id: i64) -> Result<Vec<AccessToken>> {
        sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE user_id = $1 ORDER BY id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(access_token)
        .collect()
    }

    /// Revokes a token; `NotFound` if it does not exist.
    pub async fn delete_access_token(&self, id: i64) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM access_tokens WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound(format!("access token {id}")));
        }
        Ok(())
    }

    pub async fn touch_access_token(&self, id: i64, at: i64) -> Result<()> {
        sqlx::query("UPDATE access_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a one-time link. `user_id` None is a link that creates the first site admin.
    pub async fn create_one_time_link(
        &self,
        token_sha256: &str,
        purpose: LinkPurpose,
        user_id: Option<i64>,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO one_time_links (token_sha256, purpose, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_sha256)
        .bind(purpose.as_str())
        .bind(user_id)
        .bind(now())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Uses up a one-time link: it is deleted whatever the outcome. Returns `Some(user_id)` when
    /// it existed for this purpose and had not expired at `at`.
    pub async fn take_one_time_link(
        &self,
        token_sha256: &str,
        purpose: LinkPurpose,
        at: i64,
    ) -> Result<Option<Option<i64>>> {
        let row = sqlx::query(
            "DELETE FROM one_time_links WHERE token_sha256 = $1 RETURNING purpose, user_id, expires_at",
        )
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get("purpose")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        if stored != purpose.as_str() || expires_at < at {
            return Ok(None);
        }
        Ok(Some(row.try_get("user_id")?))
    }
}

fn prefixed_user_columns(alias: &str) -> String {
    USER_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}
