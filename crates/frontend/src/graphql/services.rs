//! Code host connections (Sourcegraph's external services).

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use quarry_repos::{ConnectionConfig, RepoError};
use quarry_store::{ExternalService as Stored, ExternalServiceKind as Kind, RepoFilter};

use super::SiteAdmin;
use super::repos::EmptyResponse;
use super::{bad_input, decode_id, encode_id, page_size, rfc3339, store_error};
use crate::AppState;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ExternalServiceKind {
    Local,
    Other,
}

impl From<ExternalServiceKind> for Kind {
    fn from(kind: ExternalServiceKind) -> Self {
        match kind {
            ExternalServiceKind::Local => Kind::Local,
            ExternalServiceKind::Other => Kind::Other,
        }
    }
}

impl From<Kind> for ExternalServiceKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Local => ExternalServiceKind::Local,
            Kind::Other => ExternalServiceKind::Other,
        }
    }
}

pub struct ExternalService(Stored);

#[Object]
impl ExternalService {
    async fn id(&self) -> ID {
        encode_id("ExternalService", self.0.id)
    }

    async fn kind(&self) -> ExternalServiceKind {
        self.0.kind.into()
    }

    async fn display_name(&self) -> &str {
        &self.0.display_name
    }

    async fn config(&self) -> &str {
        &self.0.config
    }

    async fn created_at(&self) -> String {
        rfc3339(self.0.created_at)
    }

    async fn updated_at(&self) -> String {
        rfc3339(self.0.updated_at)
    }

    async fn last_sync_at(&self) -> Option<String> {
        self.0.last_sync_at.map(rfc3339)
    }

    /// Problems met by the last sync, one per line.
    async fn last_sync_error(&self) -> Option<&str> {
        self.0.last_sync_error.as_deref()
    }

    async fn next_sync_at(&self) -> Option<String> {
        (self.0.next_sync_at < i64::MAX).then(|| rfc3339(self.0.next_sync_at))
    }

    /// How many repositories this connection provides.
    async fn repo_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let state = ctx.data::<AppState>()?;
        let filter = RepoFilter {
            external_service_id: Some(self.0.id),
            ..Default::default()
        };
        state.store.count_repos(&filter).await.map_err(store_error)
    }
}

#[derive(SimpleObject)]
pub struct ExternalServiceConnection {
    nodes: Vec<ExternalService>,
    total_count: i64,
}

#[derive(InputObject)]
pub struct AddExternalServiceInput {
    kind: ExternalServiceKind,
    display_name: String,
    config: String,
}

#[derive(InputObject)]
pub struct UpdateExternalServiceInput {
    id: ID,
    display_name: Option<String>,
    config: Option<String>,
}

/// Checks a configuration as it would be used, including that a local root can be read.
fn validate_config(kind: Kind, config: &str) -> async_graphql::Result<ConnectionConfig> {
    let parsed = ConnectionConfig::parse(kind, config).map_err(|e| bad_input(e.to_string()))?;
    if let ConnectionConfig::Local(local) = &parsed {
        match std::fs::metadata(&local.root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(bad_input(format!(
                    "root: {} is not a directory",
                    local.root.display()
                )));
            }
            Err(e) => {
                return Err(bad_input(format!(
                    "root: cannot read {}: {e}",
                    local.root.display()
                )));
            }
        }
    }
    Ok(parsed)
}

/// Syncs a connection right after it changed. Problems are recorded on the connection (and shown
/// as `lastSyncError`); only a database failure fails the request.
async fn sync_now(state: &AppState, id: i64) -> async_graphql::Result<Stored> {
    let service = load(state, id).await?;
    match state.updater.sync_connection(&service).await {
        Ok(_) | Err(RepoError::InvalidConnection(_) | RepoError::Discovery(_)) => {}
        Err(e) => return Err(async_graphql::Error::new(e.to_string())),
    }
    load(state, id).await
}

async fn load(state: &AppState, id: i64) -> async_graphql::Result<Stored> {
    state
        .store
        .external_service(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| super::not_found(format!("external service {id} not found")))
}

#[derive(Default)]
pub struct ServiceQuery;

#[Object]
impl ServiceQuery {
    #[graphql(guard = "SiteAdmin")]
    async fn external_services(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
    ) -> async_graphql::Result<ExternalServiceConnection> {
        let state = ctx.data::<AppState>()?;
        let all = state
            .store
            .list_external_services()
            .await
            .map_err(store_error)?;
        let total_count = all.len() as i64;
        Ok(ExternalServiceConnection {
            nodes: all
                .into_iter()
                .take(page_size(first)? as usize)
                .map(ExternalService)
                .collect(),
            total_count,
        })
    }
}

#[derive(Default)]
pub struct ServiceMutation;

#[Object]
impl ServiceMutation {
    #[graphql(guard = "SiteAdmin")]
    async fn add_external_service(
        &self,
        ctx: &Context<'_>,
        input: AddExternalServiceInput,
    ) -> async_graphql::Result<ExternalService> {
        let state = ctx.data::<AppState>()?;
        if input.display_name.trim().is_empty() {
            return Err(bad_input("displayName: must not be empty"));
        }
        let kind: Kind = input.kind.into();
        let config = validate_config(kind, &input.config)?;
        let created = state
            .store
            .create_external_service(kind, input.display_name.trim(), &config.to_json())
            .await
            .map_err(store_error)?;
        Ok(ExternalService(sync_now(state, created.id).await?))
    }

    #[graphql(guard = "SiteAdmin")]
    async fn update_external_service(
        &self,
        ctx: &Context<'_>,
        input: UpdateExternalServiceInput,
    ) -> async_graphql::Result<ExternalService> {
        let state = ctx.data::<AppState>()?;
        let id = decode_id("ExternalService", &input.id)?;
        let existing = load(state, id).await?;
        let config = match &input.config {
            Some(config) => Some(validate_config(existing.kind, config)?.to_json()),
            None => None,
        };
        if input
            .display_name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            return Err(bad_input("displayName: must not be empty"));
        }
        state
            .store
            .update_external_service(
                id,
                input.display_name.as_deref().map(str::trim),
                config.as_deref(),
            )
            .await
            .map_err(store_error)?;
        Ok(ExternalService(sync_now(state, id).await?))
    }

    /// Deletes a connection, the repositories it provides and their mirrors.
    #[graphql(guard = "SiteAdmin")]
    async fn delete_external_service(
        &self,
        ctx: &Context<'_>,
        external_service: ID,
    ) -> async_graphql::Result<EmptyResponse> {
        let state = ctx.data::<AppState>()?;
        let id = decode_id("ExternalService", &external_service)?;
        let removed = state
            .store
            .delete_external_service(id)
            .await
            .map_err(store_error)?;
        for name in removed {
            if let Err(e) = state.git.remove(&name).await {
                tracing::warn!(repo = %name, error = %e, "could not remove mirror");
            }
        }
        Ok(EmptyResponse::new())
    }

    /// Lists the connection's repositories again now.
    #[graphql(guard = "SiteAdmin")]
    async fn sync_external_service(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<EmptyResponse> {
        let state = ctx.data::<AppState>()?;
        sync_now(state, decode_id("ExternalService", &id)?).await?;
        Ok(EmptyResponse::new())
    }
}
