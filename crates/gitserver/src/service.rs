//! The interface every caller uses, whether the gitserver runs in process or on another machine.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{ByteStream, GitError};

/// The state of a mirror after a clone or fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResult {
    /// Whether any ref moved (always true for a fresh clone).
    pub changed: bool,
    /// Whether an existing mirror was found damaged and cloned again.
    pub recloned: bool,
    pub default_branch: Option<String>,
    pub head_commit: Option<String>,
    /// When the head commit was committed (Unix seconds): how long the repository has been quiet.
    #[serde(default)]
    pub head_committed_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub name: String,
    pub email: String,
    /// ISO 8601, as git prints it.
    pub date: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub oid: String,
    pub author: Signature,
    pub committer: Signature,
    pub parents: Vec<String>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Directory,
    Submodule,
    Symlink,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    /// Full path from the repository root.
    pub path: String,
    pub name: String,
    pub kind: EntryKind,
    pub oid: String,
    /// Size in bytes, for files.
    pub size: Option<u64>,
}

/// A branch or tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitRef {
    /// The full name, such as `refs/heads/main` or `refs/tags/v1.0`.
    pub name: String,
    /// The commit it points to (an annotated tag is peeled to its commit).
    pub commit: String,
}

impl GitRef {
    /// The name without `refs/heads/` or `refs/tags/`.
    pub fn short_name(&self) -> &str {
        self.name
            .strip_prefix("refs/heads/")
            .or_else(|| self.name.strip_prefix("refs/tags/"))
            .unwrap_or(&self.name)
    }

    pub fn is_tag(&self) -> bool {
        self.name.starts_with("refs/tags/")
    }
}

/// Git operations on mirrors. Revisions given to `resolve_revision`, `commit` and `commit_log` may
/// be any git revision; the other operations take a full commit id (resolve first), so that a
/// result names exactly what was read.
#[async_trait]
pub trait GitService: Send + Sync + 'static {
    /// Clones the repository if it has no mirror (or a damaged one), otherwise fetches.
    async fn sync(
        &self,
        repo: &str,
        remote_url: &str,
        timeout: Duration,
    ) -> Result<SyncResult, GitError>;

    /// Whether a usable mirror exists.
    async fn is_cloned(&self, repo: &str) -> Result<bool, GitError>;

    /// Deletes the mirror, if any.
    async fn remove(&self, repo: &str) -> Result<(), GitError>;

    async fn resolve_revision(&self, repo: &str, rev: &str) -> Result<String, GitError>;

    async fn commit(&self, repo: &str, rev: &str) -> Result<Commit, GitError>;

    /// The branches and tags, branches first, each sorted by name.
    async fn list_refs(&self, repo: &str) -> Result<Vec<GitRef>, GitError>;

    /// The newest `limit` commits reachable from `rev`.
    async fn commit_log(
        &self,
        repo: &str,
        rev: &str,
        limit: usize,
    ) -> Result<Vec<Commit>, GitError>;

    /// The entries of a directory (`""` for the root) at a commit.
    async fn list_tree(
        &self,
        repo: &str,
        commit: &str,
        path: &str,
    ) -> Result<Vec<TreeEntry>, GitError>;

    async fn read_file(&self, repo: &str, commit: &str, path: &str) -> Result<Bytes, GitError>;

    /// Every file (not directories, submodules or symlinks) in the tree of a commit, recursively.
    async fn list_files(&self, repo: &str, commit: &str) -> Result<Vec<TreeEntry>, GitError>;

    /// The contents of blobs, in git's `cat-file --batch` format: for each object a header line
    /// `<oid> blob <size>`, the bytes, and a newline (`<oid> missing` for an unknown object).
    async fn read_blobs(&self, repo: &str, oids: Vec<String>) -> Result<ByteStream, GitError>;

    /// A tar archive of the tree at a commit.
    async fn archive(&self, repo: &str, commit: &str) -> Result<ByteStream, GitError>;

    /// The unified diff between two commits.
    async fn diff(&self, repo: &str, base: &str, head: &str) -> Result<String, GitError>;

    /// The ref advertisement of git's smart HTTP protocol (`info/refs?service=git-upload-pack`).
    async fn upload_pack_advertisement(
        &self,
        repo: &str,
        git_protocol: Option<&str>,
    ) -> Result<Bytes, GitError>;

    /// Answers one `git-upload-pack` request of git's smart HTTP protocol.
    async fn upload_pack(
        &self,
        repo: &str,
        git_protocol: Option<&str>,
        request: Bytes,
    ) -> Result<ByteStream, GitError>;

    /// Succeeds when the gitserver (every shard, when sharded) answers.
    async fn ping(&self) -> Result<(), GitError>;
}

/// Checks that a commit argument is a full object id.
pub fn validate_oid(oid: &str) -> Result<(), GitError> {
    if is_full_oid(oid) {
        Ok(())
    } else {
        Err(GitError::InvalidArgument(format!(
            "{oid:?} is not a full commit id"
        )))
    }
}

/// Checks that an object id is a full hexadecimal id.
fn is_full_oid(oid: &str) -> bool {
    matches!(oid.len(), 40 | 64) && oid.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks a revision expression before it reaches git's command line.
pub fn validate_revision(rev: &str) -> Result<(), GitError> {
    if rev.is_empty()
        || rev.starts_with('-')
        || rev.len() > 1024
        || rev.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(GitError::InvalidArgument(format!(
            "{rev:?} is not a valid revision"
        )));
    }
    Ok(())
}

/// Checks a path inside a repository.
pub fn validate_path(path: &str) -> Result<(), GitError> {
    if path.starts_with('/')
        || path.contains('\0')
        || path.split('/').any(|c| c == ".." || c == ".")
    {
        return Err(GitError::InvalidArgument(format!(
            "{path:?} is not a valid path in a repository"
        )));
    }
    Ok(())
}

/// Checks the value of a `Git-Protocol` header before it becomes `GIT_PROTOCOL`.
pub fn validate_git_protocol(value: &str) -> Result<(), GitError> {
    if value.len() <= 256
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '=' | ':' | '.' | '-' | '_'))
    {
        Ok(())
    } else {
        Err(GitError::InvalidArgument(
            "invalid Git-Protocol header".into(),
        ))
    }
}
