/// Errors of git operations. Each has a stable kind so that the HTTP client of a remote gitserver
/// can rebuild the same error on its side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum GitError {
    #[error("invalid repository name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("repository {0} is not cloned")]
    NotCloned(String),
    #[error("revision {rev:?} not found in {repo}")]
    RevisionNotFound { repo: String, rev: String },
    #[error("path {path:?} not found at {commit}")]
    PathNotFound { path: String, commit: String },
    #[error("{0}")]
    Command(String),
    #[error("git {0} timed out after {1}s")]
    Timeout(String, u64),
    #[error("gitserver unavailable: {0}")]
    Unavailable(String),
    #[error("i/o error: {0}")]
    Io(String),
}

impl GitError {
    /// A short, stable name of the variant.
    pub fn kind(&self) -> &'static str {
        match self {
            GitError::InvalidName { .. } => "invalid_name",
            GitError::InvalidArgument(_) => "invalid_argument",
            GitError::NotCloned(_) => "not_cloned",
            GitError::RevisionNotFound { .. } => "revision_not_found",
            GitError::PathNotFound { .. } => "path_not_found",
            GitError::Command(_) => "command",
            GitError::Timeout(..) => "timeout",
            GitError::Unavailable(_) => "unavailable",
            GitError::Io(_) => "io",
        }
    }

    /// The HTTP status that reports this error.
    pub fn http_status(&self) -> u16 {
        match self {
            GitError::InvalidName { .. } | GitError::InvalidArgument(_) => 400,
            GitError::NotCloned(_)
            | GitError::RevisionNotFound { .. }
            | GitError::PathNotFound { .. } => 404,
            GitError::Timeout(..) => 504,
            GitError::Unavailable(_) => 503,
            GitError::Command(_) | GitError::Io(_) => 500,
        }
    }
}

impl From<std::io::Error> for GitError {
    fn from(e: std::io::Error) -> Self {
        GitError::Io(e.to_string())
    }
}
