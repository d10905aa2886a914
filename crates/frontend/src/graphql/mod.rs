//! The GraphQL API at `/.api/graphql`, with Sourcegraph's names where one exists.

mod codeintel;
mod executors;
mod repos;
mod search;
mod services;
mod site;
mod users;

use async_graphql::{Context, EmptySubscription, ErrorExtensions, Guard, ID, MergedObject, Schema};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use quarry_auth::{Actor, AuthError};
use quarry_store::StoreError;

use crate::AppState;

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    repos::RepoQuery,
    site::SiteQuery,
    services::ServiceQuery,
    search::SearchQuery,
    users::UserQuery,
    executors::ExecutorQuery,
    codeintel::CodeIntelQuery,
);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    repos::RepoMutation,
    site::SiteMutation,
    services::ServiceMutation,
    users::UserMutation,
    codeintel::CodeIntelMutation,
);

pub type QuarrySchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Builds the schema over the application state.
pub fn schema(state: AppState) -> QuarrySchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .data(state)
    .limit_depth(16)
    .limit_complexity(5_000)
    .finish()
}

/// The schema in GraphQL's schema language, for clients and documentation.
pub fn sdl() -> String {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .finish()
    .sdl()
}

pub async fn handler(
    State(schema): State<QuarrySchema>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let origin = users::RequestOrigin(format!("http://{host}"));
    schema
        .execute(request.into_inner().data(actor).data(origin))
        .await
        .into()
}

/// The caller of the request being answered.
pub(crate) fn actor<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Actor> {
    ctx.data::<Actor>()
}

/// Lets only site admins through a field.
pub(crate) struct SiteAdmin;

impl Guard for SiteAdmin {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        quarry_auth::require_site_admin(actor(ctx)?).map_err(auth_error)
    }
}

/// Lets only signed-in users through a field.
pub(crate) struct SignedIn;

impl Guard for SignedIn {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        match actor(ctx)?.user {
            Some(_) => Ok(()),
            None => Err(auth_error(AuthError::Unauthenticated)),
        }
    }
}

/// An account error with Sourcegraph-style `extensions.code`.
pub(crate) fn auth_error(error: AuthError) -> async_graphql::Error {
    let code = match error.status() {
        401 => "UNAUTHENTICATED",
        403 => "FORBIDDEN",
        429 => "TOO_MANY_REQUESTS",
        400 => "BAD_USER_INPUT",
        409 => "CONFLICT",
        404 => "NOT_FOUND",
        _ => {
            tracing::error!(error = %error, "account operation failed in GraphQL request");
            "INTERNAL"
        }
    };
    async_graphql::Error::new(error.to_string()).extend_with(|_, e| e.set("code", code))
}

/// Sourcegraph's opaque node IDs: base64 of `<Type>:<id>`.
pub(crate) fn encode_id(kind: &str, id: i64) -> ID {
    ID(STANDARD.encode(format!("{kind}:{id}")))
}

pub(crate) fn decode_id(kind: &str, id: &ID) -> async_graphql::Result<i64> {
    STANDARD
        .decode(id.as_bytes())
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|text| {
            text.strip_prefix(kind)
                .and_then(|rest| rest.strip_prefix(':'))
                .and_then(|n| n.parse().ok())
        })
        .ok_or_else(|| bad_input(format!("{:?} is not a {kind} ID", id.as_str())))
}

/// An error the caller caused, with Sourcegraph-style `extensions.code`.
pub(crate) fn bad_input(message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", "BAD_USER_INPUT"))
}

pub(crate) fn not_found(message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", "NOT_FOUND"))
}

pub(crate) fn store_error(error: StoreError) -> async_graphql::Error {
    match error {
        StoreError::NotFound(what) => not_found(format!("{what} not found")),
        StoreError::Conflict(message) => {
            async_graphql::Error::new(message).extend_with(|_, e| e.set("code", "CONFLICT"))
        }
        other => {
            tracing::error!(error = %other, "database error in GraphQL request");
            async_graphql::Error::new(format!("internal error: {other}"))
        }
    }
}

/// RFC 3339 (UTC, seconds) for a Unix time.
pub(crate) fn rfc3339(secs: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The page size of a connection: Sourcegraph's `first`, within bounds.
pub(crate) fn page_size(first: i32) -> async_graphql::Result<i64> {
    if !(0..=1000).contains(&first) {
        return Err(bad_input("first must be between 0 and 1000"));
    }
    Ok(i64::from(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_typed() {
        let id = encode_id("Repository", 42);
        assert_eq!(id.as_str(), "UmVwb3NpdG9yeTo0Mg==");
        assert_eq!(decode_id("Repository", &id).unwrap(), 42);
        assert!(decode_id("ExternalService", &id).is_err());
        assert!(decode_id("Repository", &ID("!!".into())).is_err());
    }

    #[test]
    fn schema_has_sourcegraphs_names() {
        let sdl = sdl();
        for name in [
            "repositories(",
            "mirrorInfo: MirrorRepositoryInfo!",
            "cloneInProgress: Boolean!",
            "effectiveContents: String!",
            "updateSiteConfiguration(lastID: Int!, input: String!): Boolean!",
            "addExternalService(input: AddExternalServiceInput!): ExternalService!",
            "deleteExternalService(externalService: ID!): EmptyResponse!",
            "updateMirrorRepository(repository: ID!): EmptyResponse!",
        ] {
            assert!(sdl.contains(name), "{name} missing from\n{sdl}");
        }
    }
}
