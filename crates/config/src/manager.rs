//! Loading, saving and live-applying the site configuration through the store.

use std::sync::Arc;
use std::time::Duration;

use quarry_store::{SiteConfigVersion, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::{DEFAULT_SITE_CONFIG, LiveSiteConfig, SiteConfig, SiteConfigError};

/// How often a process looks for a version saved by another process.
const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Invalid(#[from] SiteConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The site configuration of an instance: the stored versions and the one in force.
pub struct SiteConfigManager {
    store: Store,
    live: LiveSiteConfig,
}

impl SiteConfigManager {
    /// Loads the version in force. A `seed` document (from `--site-config`) that differs from it
    /// is validated and saved as a new version; an invalid seed is an error and changes nothing.
    /// A new database gets the default document.
    pub async fn load(store: Store, seed: Option<&str>) -> Result<Self, ConfigError> {
        let latest = store.latest_site_config().await?;
        let version = match (latest, seed) {
            (latest, Some(seed)) => {
                SiteConfig::parse(seed)?;
                match latest {
                    Some(latest) if latest.contents == seed => latest,
                    latest => store.save_site_config(latest.map(|l| l.id), seed).await?,
                }
            }
            (Some(latest), None) => latest,
            (None, None) => store.save_site_config(None, DEFAULT_SITE_CONFIG).await?,
        };
        let config = SiteConfig::parse(&version.contents).unwrap_or_else(|e| {
            tracing::error!(error = %e, version = version.id, "stored site configuration is not valid any more; using defaults until it is fixed");
            SiteConfig::default()
        });
        Ok(SiteConfigManager {
            store,
            live: LiveSiteConfig::new(version.id, config),
        })
    }

    /// The handle services read the configuration in force through.
    pub fn live(&self) -> LiveSiteConfig {
        self.live.clone()
    }

    /// Validates and saves a new version, then puts it in force. `last_id` is the version the
    /// editor started from; if another was saved since, the edit is refused as a conflict. A
    /// refused document leaves the version in force untouched.
    pub async fn update(&self, last_id: i64, text: &str) -> Result<SiteConfigVersion, ConfigError> {
        let config = SiteConfig::parse(text)?;
        let saved = self.store.save_site_config(Some(last_id), text).await?;
        self.live.replace(saved.id, config);
        tracing::info!(version = saved.id, "site configuration updated");
        Ok(saved)
    }

    /// The version in force as stored.
    pub async fn current(&self) -> Result<SiteConfigVersion, ConfigError> {
        self.store
            .latest_site_config()
            .await?
            .ok_or_else(|| ConfigError::Store(StoreError::NotFound("site configuration".into())))
    }

    /// Saved versions, newest first.
    pub async fn history(&self, limit: i64) -> Result<Vec<SiteConfigVersion>, ConfigError> {
        Ok(self.store.site_config_history(limit).await?)
    }

    /// Puts in force a newer version saved by another process, if any.
    pub async fn refresh(&self) -> Result<bool, ConfigError> {
        let Some(latest) = self.store.latest_site_config().await? else {
            return Ok(false);
        };
        if latest.id <= self.live.version() {
            return Ok(false);
        }
        let config = SiteConfig::parse(&latest.contents)?;
        Ok(self.live.replace(latest.id, config))
    }

    /// Refreshes periodically until cancelled, so every process applies changes without restart.
    pub async fn watch(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(REFRESH_INTERVAL) => {}
            }
            match self.refresh().await {
                Ok(true) => tracing::info!(
                    version = self.live.version(),
                    "applied site configuration saved elsewhere"
                ),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not refresh site configuration"),
            }
        }
    }
}
