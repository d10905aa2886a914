/// Errors of code host connections and repository syncing.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("invalid code host connection: {0}")]
    InvalidConnection(String),
    #[error("{0}")]
    Discovery(String),
    #[error(transparent)]
    Store(#[from] quarry_store::StoreError),
    #[error(transparent)]
    Git(#[from] quarry_gitserver::GitError),
}
