//! Code host connections (Sourcegraph's external services).

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use quarry_store::{ExternalService as Stored, ExternalServiceKind as Kind, RepoFilter};

use super::SiteAdmin;
use super::repos::EmptyResponse;
use super::{bad_input, decode_id, encode_id, page_size, rfc3339, store_error};
use crate::AppState;
use crate::operations::{self, OperationError};

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

fn operation_error(error: OperationError) -> async_graphql::Error {
    match error {
        OperationError::BadInput(message) => bad_input(message),
        OperationError::Store(e) => store_error(e),
        OperationError::Failed(message) => async_graphql::Error::new(message),
    }
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
        operations::add_external_service(
            state,
            input.kind.into(),
            &input.display_name,
            &input.config,
        )
        .await
        .map(ExternalService)
        .map_err(operation_error)
    }

    #[graphql(guard = "SiteAdmin")]
    async fn update_external_service(
        &self,
        ctx: &Context<'_>,
        input: UpdateExternalServiceInput,
    ) -> async_graphql::Result<ExternalService> {
        let state = ctx.data::<AppState>()?;
        let id = decode_id("ExternalService", &input.id)?;
        operations::update_external_service(
            state,
            id,
            input.display_name.as_deref(),
            input.config.as_deref(),
        )
        .await
        .map(ExternalService)
        .map_err(operation_error)
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
        operations::delete_external_service(state, id)
            .await
            .map_err(operation_error)?;
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
        let id = decode_id("ExternalService", &id)?;
        operations::sync_external_service(state, id)
            .await
            .map_err(operation_error)?;
        Ok(EmptyResponse::new())
    }
}
