//! Users, access tokens, sessions, explicit repository permissions and the audit log, with
//! Sourcegraph's names (`currentUser`, `createAccessToken`, `setRepositoryPermissionsForUsers`,
//! `authorizedUserRepositories`, ...).

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use quarry_store::{
    AccessToken as StoredToken, AuditEntry as StoredEntry, User as StoredUser, Viewer,
};
use serde_json::json;

use super::repos::{EmptyResponse, Repository, RepositoryConnection};
use super::{
    SignedIn, SiteAdmin, actor, auth_error, bad_input, decode_id, encode_id, page_size, rfc3339,
    store_error,
};
use crate::AppState;

/// Where links the API hands out point to: `externalURL`, else the address the caller used.
pub(crate) struct RequestOrigin(pub String);

fn link(ctx: &Context<'_>, path_and_query: String) -> async_graphql::Result<String> {
    let state = ctx.data::<AppState>()?;
    let base = match state.site.live().current().external_url() {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => ctx.data::<RequestOrigin>()?.0.clone(),
    };
    Ok(format!("{base}{path_and_query}"))
}

pub struct User(pub StoredUser);

#[Object]
impl User {
    async fn id(&self) -> ID {
        encode_id("User", self.0.id)
    }

    async fn username(&self) -> &str {
        &self.0.username
    }

    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }

    async fn site_admin(&self) -> bool {
        self.0.site_admin
    }

    async fn created_at(&self) -> String {
        rfc3339(self.0.created_at)
    }

    /// The user's access tokens (never the tokens themselves): the user and site admins only.
    async fn access_tokens(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<AccessTokenConnection> {
        quarry_auth::require_self_or_admin(actor(ctx)?, self.0.id).map_err(auth_error)?;
        let state = ctx.data::<AppState>()?;
        let tokens = state
            .store
            .access_tokens_of(self.0.id)
            .await
            .map_err(store_error)?;
        Ok(AccessTokenConnection {
            total_count: tokens.len() as i64,
            nodes: tokens.into_iter().map(AccessToken).collect(),
        })
    }
}

pub struct AccessToken(StoredToken);

#[Object]
impl AccessToken {
    async fn id(&self) -> ID {
        encode_id("AccessToken", self.0.id)
    }

    async fn scopes(&self) -> &[String] {
        &self.0.scopes
    }

    async fn note(&self) -> &str {
        &self.0.note
    }

    async fn created_at(&self) -> String {
        rfc3339(self.0.created_at)
    }

    async fn last_used_at(&self) -> Option<String> {
        self.0.last_used_at.map(rfc3339)
    }
}

#[derive(SimpleObject)]
pub struct AccessTokenConnection {
    nodes: Vec<AccessToken>,
    total_count: i64,
}

#[derive(SimpleObject)]
pub struct UserConnection {
    nodes: Vec<User>,
    total_count: i64,
}

/// A new token: shown once.
#[derive(SimpleObject)]
pub struct CreateAccessTokenResult {
    id: ID,
    token: String,
}

#[derive(SimpleObject)]
#[graphql(name = "CreateUserResult")]
pub struct CreateUserResult {
    user: User,
    /// A one-time link (15 minutes) where the new user sets a password.
    #[graphql(name = "resetPasswordURL")]
    reset_password_url: String,
}

#[derive(SimpleObject)]
pub struct RandomizeUserPasswordResult {
    #[graphql(name = "resetPasswordURL")]
    reset_password_url: String,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum RepositoryPermission {
    #[default]
    Read,
}

#[derive(InputObject)]
pub struct UserPermissionInput {
    /// A username or an email address.
    #[graphql(name = "bindID")]
    bind_id: String,
    #[graphql(default)]
    permission: RepositoryPermission,
}

/// A repository's explicit permissions (site admins only).
#[derive(SimpleObject)]
pub struct PermissionsInfo {
    permissions: Vec<RepositoryPermission>,
    /// No explicit permissions: every signed-in user sees the repository.
    unrestricted: bool,
    updated_at: Option<String>,
    users: Vec<User>,
}

#[derive(SimpleObject)]
pub struct AuditLogEntry {
    id: i64,
    created_at: String,
    actor: String,
    action: String,
    subject: String,
    address: Option<String>,
    /// Context of the event, as JSON text.
    details: String,
}

impl From<StoredEntry> for AuditLogEntry {
    fn from(entry: StoredEntry) -> Self {
        AuditLogEntry {
            id: entry.id,
            created_at: rfc3339(entry.created_at),
            actor: entry.actor,
            action: entry.action,
            subject: entry.subject,
            address: entry.address,
            details: entry.details,
        }
    }
}

async fn user_by_bind_id(state: &AppState, bind_id: &str) -> async_graphql::Result<StoredUser> {
    state
        .accounts
        .user_named(bind_id)
        .await
        .map_err(|e| match e {
            quarry_auth::AuthError::NotFound(_) => {
                bad_input(format!("bindID: no user {bind_id:?}"))
            }
            other => auth_error(other),
        })
}

/// A repository's explicit permissions with the users granted it.
pub(crate) async fn permissions_info(
    state: &AppState,
    repo_id: i64,
) -> async_graphql::Result<PermissionsInfo> {
    let stored = state
        .store
        .repo_permissions(repo_id)
        .await
        .map_err(store_error)?;
    let mut users = Vec::new();
    for id in stored.user_ids {
        if let Some(user) = state.store.user_by_id(id).await.map_err(store_error)? {
            users.push(User(user));
        }
    }
    Ok(PermissionsInfo {
        permissions: vec![RepositoryPermission::Read],
        unrestricted: stored.unrestricted,
        updated_at: stored.updated_at.map(rfc3339),
        users,
    })
}

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user, or null.
    async fn current_user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(actor(ctx)?.user.clone().map(User))
    }

    /// A user by username: themself, or anyone for site admins.
    #[graphql(guard = "SignedIn")]
    async fn user(
        &self,
        ctx: &Context<'_>,
        username: String,
    ) -> async_graphql::Result<Option<User>> {
        let state = ctx.data::<AppState>()?;
        let caller = actor(ctx)?;
        let found = state
            .store
            .user_for_sign_in(&username)
            .await
            .map_err(store_error)?
            .map(|(user, _)| user)
            .filter(|user| caller.is_site_admin() || caller.user_id() == Some(user.id));
        Ok(found.map(User))
    }

    /// Every user, ordered by id; `query` matches part of a username or email.
    #[graphql(guard = "SiteAdmin")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
        query: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        let state = ctx.data::<AppState>()?;
        let after_id = match after {
            Some(cursor) => decode_id("User", &ID(cursor))?,
            None => 0,
        };
        let users = state
            .store
            .list_users(query.as_deref(), after_id, page_size(first)?)
            .await
            .map_err(store_error)?;
        Ok(UserConnection {
            total_count: state.store.count_users().await.map_err(store_error)?,
            nodes: users.into_iter().map(User).collect(),
        })
    }

    /// The repositories a user may see, restricted or not (Sourcegraph's name).
    #[graphql(guard = "SiteAdmin")]
    async fn authorized_user_repositories(
        &self,
        ctx: &Context<'_>,
        username: Option<String>,
        email: Option<String>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<RepositoryConnection> {
        let state = ctx.data::<AppState>()?;
        let bind_id = username
            .or(email)
            .ok_or_else(|| bad_input("give a username or an email"))?;
        let user = user_by_bind_id(state, &bind_id).await?;
        let viewer = if user.site_admin {
            Viewer::All
        } else {
            Viewer::User(user.id)
        };
        super::repos::list_repositories(state, viewer, first, after, None, None).await
    }

    /// Security events, newest first (site admins only).
    #[graphql(guard = "SiteAdmin")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
        action: Option<String>,
        before: Option<i64>,
    ) -> async_graphql::Result<Vec<AuditLogEntry>> {
        let state = ctx.data::<AppState>()?;
        let entries = state
            .store
            .audit_entries(action.as_deref(), before, page_size(first)?)
            .await
            .map_err(store_error)?;
        Ok(entries.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Creates an access token for a user (themself, or anyone for a site admin). The token is
    /// in the answer only.
    #[graphql(guard = "SignedIn")]
    async fn create_access_token(
        &self,
        ctx: &Context<'_>,
        user: ID,
        scopes: Vec<String>,
        note: String,
    ) -> async_graphql::Result<CreateAccessTokenResult> {
        let state = ctx.data::<AppState>()?;
        let user_id = decode_id("User", &user)?;
        let (record, token) = state
            .accounts
            .create_access_token(actor(ctx)?, user_id, &scopes, &note)
            .await
            .map_err(auth_error)?;
        Ok(CreateAccessTokenResult {
            id: encode_id("AccessToken", record.id),
            token,
        })
    }

    /// Revokes a token, named by its ID or by the token itself; effective on the next request.
    #[graphql(guard = "SignedIn")]
    async fn delete_access_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "byID")] by_id: Option<ID>,
        by_token: Option<String>,
    ) -> async_graphql::Result<EmptyResponse> {
        let state = ctx.data::<AppState>()?;
        let caller = actor(ctx)?;
        match (by_id, by_token) {
            (Some(id), None) => state
                .accounts
                .delete_access_token(caller, decode_id("AccessToken", &id)?)
                .await
                .map_err(auth_error)?,
            (None, Some(token)) => state
                .accounts
                .delete_access_token_by_value(caller, &token)
                .await
                .map_err(auth_error)?,
            _ => return Err(bad_input("give exactly one of byID and byToken")),
        }
        Ok(EmptyResponse::new())
    }

    /// Ends every session of a user (themself, or anyone for a site admin).
    #[graphql(name = "invalidateSessionsByID", guard = "SignedIn")]
    async fn invalidate_sessions_by_id(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "userID")] user_id: ID,
    ) -> async_graphql::Result<EmptyResponse> {
        let state = ctx.data::<AppState>()?;
        state
            .accounts
            .revoke_sessions(actor(ctx)?, decode_id("User", &user_id)?)
            .await
            .map_err(auth_error)?;
        Ok(EmptyResponse::new())
    }

    /// Creates an account with no password; the answer carries a one-time link to set one.
    #[graphql(guard = "SiteAdmin")]
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        username: String,
        email: Option<String>,
    ) -> async_graphql::Result<CreateUserResult> {
        let state = ctx.data::<AppState>()?;
        let (user, token) = state
            .accounts
            .create_user_by_admin(actor(ctx)?, &username, email.as_deref())
            .await
            .map_err(auth_error)?;
        Ok(CreateUserResult {
            user: User(user),
            reset_password_url: link(ctx, format!("/password-reset?token={token}"))?,
        })
    }

    /// Deletes an account (never the last site admin).
    #[graphql(guard = "SiteAdmin")]
    async fn delete_user(
        &self,
        ctx: &Context<'_>,
        user: ID,
    ) -> async_graphql::Result<EmptyResponse> {
        let state = ctx.data::<AppState>()?;
        state
            .accounts
            .delete_user(actor(ctx)?, decode_id("User", &user)?)
            .await
            .map_err(auth_error)?;
        Ok(EmptyResponse::new())
    }

    /// Promotes or demotes a site admin (never the last one).
    #[graphql(guard = "SiteAdmin")]
    async fn set_user_is_site_admin(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "userID")] user_id: ID,
        site_admin: bool,
    ) -> async_graphql::Result<EmptyResponse> {
        let state = ctx.data::<AppState>()?;
        state
            .accounts
            .set_site_admin(actor(ctx)?, decode_id("User", &user_id)?, site_admin)
            .await
            .map_err(auth_error)?;
        Ok(EmptyResponse::new())
    }

    /// A one-time link (15 minutes) where the user sets a new password.
    #[graphql(guard = "SiteAdmin")]
    async fn randomize_user_password(
        &self,
        ctx: &Context<'_>,
        user: ID,
    ) -> async_graphql::Result<RandomizeUserPasswordResult> {
        let state = ctx.data::<AppState>()?;
        let token = state
            .accounts
            .password_reset_link(actor(ctx)?, decode_id("User", &user)?)
            .await
            .map_err(auth_error)?;
        Ok(RandomizeUserPasswordResult {
            reset_password_url: link(ctx, format!("/password-reset?token={token}"))?,
        })
    }

    /// Restricts a repository to exactly these users (site admins always see it).
    #[graphql(guard = "SiteAdmin")]
    async fn set_repository_permissions_for_users(
        &self,
        ctx: &Context<'_>,
        repository: ID,
        user_permissions: Vec<UserPermissionInput>,
    ) -> async_graphql::Result<EmptyResponse> {
        let state = ctx.data::<AppState>()?;
        let repo_id = decode_id("Repository", &repository)?;
        let mut user_ids = Vec::new();
        for grant in &user_permissions {
            user_ids.push(user_by_bind_id(state, &grant.bind_id).await?.id);
        }
        state
            .store
            .set_repo_permissions(repo_id, &user_ids)
            .await
            .map_err(store_error)?;
        let bind_ids: Vec<&str> = user_permissions
            .iter()
            .map(|g| g.bind_id.as_str())
            .collect();
        audit_permissions(state, ctx, repo_id, json!({ "users": bind_ids })).await?;
        Ok(EmptyResponse::new())
    }

    /// Lifts (or sets, with an empty grant) explicit permissions on repositories.
    #[graphql(guard = "SiteAdmin")]
    async fn set_repository_permissions_unrestricted(
        &self,
        ctx: &Context<'_>,
        repositories: Vec<ID>,
        unrestricted: bool,
    ) -> async_graphql::Result<EmptyResponse> {
        let state = ctx.data::<AppState>()?;
        for repository in &repositories {
            let repo_id = decode_id("Repository", repository)?;
            let done = if unrestricted {
                state.store.set_repo_unrestricted(repo_id).await
            } else {
                state.store.set_repo_permissions(repo_id, &[]).await
            };
            done.map_err(store_error)?;
            audit_permissions(state, ctx, repo_id, json!({ "unrestricted": unrestricted })).await?;
        }
        Ok(EmptyResponse::new())
    }
}

async fn audit_permissions(
    state: &AppState,
    ctx: &Context<'_>,
    repo_id: i64,
    details: serde_json::Value,
) -> async_graphql::Result<()> {
    let name = state
        .store
        .repo_by_id(repo_id)
        .await
        .map_err(store_error)?
        .map_or_else(|| repo_id.to_string(), |r| r.name);
    state
        .accounts
        .audit(actor(ctx)?, "repo_permissions.changed", &name, details)
        .await;
    Ok(())
}

/// `Repository.permissionsInfo`, for site admins.
pub(crate) async fn repository_permissions(
    ctx: &Context<'_>,
    repository: &Repository,
) -> async_graphql::Result<PermissionsInfo> {
    permissions_info(ctx.data::<AppState>()?, repository.0.id).await
}
