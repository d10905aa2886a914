/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0}: use sqlite:// or postgres://")]
    UnsupportedUrl(String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("database migration {version} failed: {message}")]
    Migration { version: i64, message: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Blob storage failed.
    #[error("blob storage: {0}")]
    Backend(String),
}

impl StoreError {
    /// A row that names something absent (a foreign key refused) is `NotFound(what)`.
    pub(crate) fn missing_reference(error: sqlx::Error, what: String) -> StoreError {
        match &error {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound(what)
            }
            _ => StoreError::Database(error),
        }
    }
}
