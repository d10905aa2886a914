//! Site admin operations shared by the GraphQL API and the site admin pages, so both check the
//! same things and leave the same trail.

use quarry_auth::Actor;
use quarry_config::ConfigError;
use quarry_repos::{ConnectionConfig, RepoError};
use quarry_store::{ExternalService, ExternalServiceKind, SiteConfigVersion, StoreError};

use crate::AppState;

#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    /// The input is wrong; the message starts with the field it concerns.
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Failed(String),
}

/// Checks a connection's configuration as it would be used, including that a local root can be
/// read.
fn validate_connection(
    kind: ExternalServiceKind,
    config: &str,
) -> Result<ConnectionConfig, OperationError> {
    let parsed = ConnectionConfig::parse(kind, config)
        .map_err(|e| OperationError::BadInput(e.to_string()))?;
    if let ConnectionConfig::Local(local) = &parsed {
        match std::fs::metadata(&local.root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(OperationError::BadInput(format!(
                    "root: {} is not a directory",
                    local.root.display()
                )));
            }
            Err(e) => {
                return Err(OperationError::BadInput(format!(
                    "root: cannot read {}: {e}",
                    local.root.display()
                )));
            }
        }
    }
    Ok(parsed)
}

fn check_display_name(name: &str) -> Result<(), OperationError> {
    if name.trim().is_empty() {
        return Err(OperationError::BadInput(
            "displayName: must not be empty".into(),
        ));
    }
    Ok(())
}

/// Loads a connection, or `NotFound`.
pub async fn external_service(
    state: &AppState,
    id: i64,
) -> Result<ExternalService, OperationError> {
    state.store.external_service(id).await?.ok_or_else(|| {
        OperationError::Store(StoreError::NotFound(format!("external service {id}")))
    })
}

/// Syncs a connection right after it changed. Problems are recorded on the connection (shown as
/// its last sync error); only a database failure fails the operation.
pub async fn sync_external_service(
    state: &AppState,
    id: i64,
) -> Result<ExternalService, OperationError> {
    let service = external_service(state, id).await?;
    match state.updater.sync_connection(&service).await {
        Ok(_) | Err(RepoError::InvalidConnection(_) | RepoError::Discovery(_)) => {}
        Err(e) => return Err(OperationError::Failed(e.to_string())),
    }
    external_service(state, id).await
}

pub async fn add_external_service(
    state: &AppState,
    kind: ExternalServiceKind,
    display_name: &str,
    config: &str,
) -> Result<ExternalService, OperationError> {
    check_display_name(display_name)?;
    let config = validate_connection(kind, config)?;
    let created = state
        .store
        .create_external_service(kind, display_name.trim(), &config.to_json())
        .await?;
    sync_external_service(state, created.id).await
}

pub async fn update_external_service(
    state: &AppState,
    id: i64,
    display_name: Option<&str>,
    config: Option<&str>,
) -> Result<ExternalService, OperationError> {
    let existing = external_service(state, id).await?;
    let config = match config {
        Some(config) => Some(validate_connection(existing.kind, config)?.to_json()),
        None => None,
    };
    if let Some(name) = display_name {
        check_display_name(name)?;
    }
    state
        .store
        .update_external_service(id, display_name.map(str::trim), config.as_deref())
        .await?;
    sync_external_service(state, id).await
}

/// Deletes a connection, the repositories it provides and their mirrors.
pub async fn delete_external_service(state: &AppState, id: i64) -> Result<(), OperationError> {
    let removed = state.store.delete_external_service(id).await?;
    for name in removed {
        if let Err(e) = state.git.remove(&name).await {
            tracing::warn!(repo = %name, error = %e, "could not remove mirror");
        }
    }
    Ok(())
}

/// Validates and saves a new version of the site configuration, put in force at once, and
/// records it in the audit log. A refused document changes nothing.
pub async fn save_site_configuration(
    state: &AppState,
    actor: &Actor,
    last_id: i64,
    text: &str,
) -> Result<SiteConfigVersion, ConfigError> {
    let saved = state.site.update(last_id, text).await?;
    state
        .accounts
        .audit(
            actor,
            "site_config.changed",
            "site configuration",
            serde_json::json!({ "version": saved.id, "previous": last_id }),
        )
        .await;
    Ok(saved)
}

/// Schedules a fetch of a repository right away.
pub async fn fetch_repository_now(state: &AppState, id: i64) -> Result<(), OperationError> {
    state.store.request_repo_fetch(id).await?;
    state.updater.wake();
    Ok(())
}
