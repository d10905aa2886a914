//! The site and its configuration.

use async_graphql::{Context, ErrorExtensions, ID, Object, SimpleObject};
use quarry_config::{ConfigError, SiteConfig};

use super::SiteAdmin;
use super::{page_size, rfc3339, store_error};
use crate::AppState;
use crate::operations;

pub struct Site;

#[derive(SimpleObject)]
pub struct SiteConfigurationVersion {
    id: i64,
    contents: String,
    created_at: String,
}

pub struct SiteConfiguration {
    version: quarry_store::SiteConfigVersion,
}

#[Object]
impl SiteConfiguration {
    /// The version id; pass it as `lastID` when saving an edit of this version.
    async fn id(&self) -> i64 {
        self.version.id
    }

    async fn effective_contents(&self) -> &str {
        &self.version.contents
    }

    /// Problems with the stored document (empty, since only valid documents are saved, unless
    /// a newer schema refuses what an older one allowed).
    async fn validation_messages(&self) -> Vec<String> {
        SiteConfig::parse(&self.version.contents)
            .err()
            .map(|e| e.messages())
            .unwrap_or_default()
    }

    /// Saved versions, newest first.
    async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> async_graphql::Result<Vec<SiteConfigurationVersion>> {
        let state = ctx.data::<AppState>()?;
        let versions = state
            .site
            .history(page_size(first)?)
            .await
            .map_err(config_error)?;
        Ok(versions
            .into_iter()
            .map(|v| SiteConfigurationVersion {
                id: v.id,
                contents: v.contents,
                created_at: rfc3339(v.created_at),
            })
            .collect())
    }
}

#[Object]
impl Site {
    async fn id(&self) -> ID {
        ID("U2l0ZTpzaXRl".into())
    }

    #[graphql(guard = "SiteAdmin")]
    async fn configuration(&self, ctx: &Context<'_>) -> async_graphql::Result<SiteConfiguration> {
        let state = ctx.data::<AppState>()?;
        let version = state.site.current().await.map_err(config_error)?;
        Ok(SiteConfiguration { version })
    }
}

fn config_error(error: ConfigError) -> async_graphql::Error {
    match error {
        ConfigError::Invalid(invalid) => {
            let messages = invalid.messages();
            async_graphql::Error::new(invalid.to_string()).extend_with(|_, e| {
                e.set("code", "BAD_USER_INPUT");
                e.set("validationMessages", messages.clone());
            })
        }
        ConfigError::Store(e) => store_error(e),
    }
}

#[derive(Default)]
pub struct SiteQuery;

#[Object]
impl SiteQuery {
    async fn site(&self) -> Site {
        Site
    }
}

#[derive(Default)]
pub struct SiteMutation;

#[Object]
impl SiteMutation {
    /// Validates and saves a new version of the site configuration, applied at once. Returns
    /// whether a restart is needed (never, in Quarry). A refused document changes nothing.
    #[graphql(guard = "SiteAdmin")]
    async fn update_site_configuration(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "lastID")] last_id: i64,
        input: String,
    ) -> async_graphql::Result<bool> {
        let state = ctx.data::<AppState>()?;
        operations::save_site_configuration(state, super::actor(ctx)?, last_id, &input)
            .await
            .map_err(config_error)?;
        Ok(false)
    }
}
