//! Repositories, their mirrors and commits.

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use quarry_gitserver::{EntryKind, GitError};
use quarry_store::{CloneStatus, Repo, RepoFilter};

use super::SiteAdmin;
use super::{actor, bad_input, decode_id, encode_id, page_size, rfc3339, store_error};
use crate::AppState;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "CloneStatus")]
pub enum CloneStatusValue {
    NotCloned,
    Cloning,
    Cloned,
    Failed,
}

impl From<CloneStatusValue> for CloneStatus {
    fn from(value: CloneStatusValue) -> Self {
        match value {
            CloneStatusValue::NotCloned => CloneStatus::NotCloned,
            CloneStatusValue::Cloning => CloneStatus::Cloning,
            CloneStatusValue::Cloned => CloneStatus::Cloned,
            CloneStatusValue::Failed => CloneStatus::Failed,
        }
    }
}

impl From<CloneStatus> for CloneStatusValue {
    fn from(value: CloneStatus) -> Self {
        match value {
            CloneStatus::NotCloned => CloneStatusValue::NotCloned,
            CloneStatus::Cloning => CloneStatusValue::Cloning,
            CloneStatus::Cloned => CloneStatusValue::Cloned,
            CloneStatus::Failed => CloneStatusValue::Failed,
        }
    }
}

pub struct Repository(pub Repo);

#[Object]
impl Repository {
    async fn id(&self) -> ID {
        encode_id("Repository", self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The repository's path in the web app.
    async fn url(&self) -> String {
        format!("/{}", self.0.name)
    }

    /// Who may see the repository (site admins only).
    #[graphql(guard = "SiteAdmin")]
    async fn permissions_info(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<super::users::PermissionsInfo> {
        super::users::repository_permissions(ctx, self).await
    }

    async fn mirror_info(&self) -> MirrorRepositoryInfo {
        let repo = &self.0;
        MirrorRepositoryInfo {
            cloned: repo.clone_status == CloneStatus::Cloned,
            clone_in_progress: repo.clone_status == CloneStatus::Cloning,
            clone_status: repo.clone_status.into(),
            last_error: repo.last_error.clone(),
            updated_at: repo.last_fetched_at.map(rfc3339),
            last_changed_at: repo.last_changed_at.map(rfc3339),
            next_sync_at: (repo.next_fetch_at > 0).then(|| rfc3339(repo.next_fetch_at)),
            remote_url: quarry_gitserver::redact_credentials(&repo.clone_url),
        }
    }

    async fn default_branch(&self) -> Option<GitRef> {
        let branch = self.0.default_branch.as_ref()?;
        Some(GitRef {
            name: format!("refs/heads/{branch}"),
            display_name: branch.clone(),
            abbrev_name: branch.clone(),
            target: self.0.head_commit.clone().map(|oid| GitObject { oid }),
        })
    }

    /// Branches, sorted by name.
    async fn branches(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: i32,
    ) -> async_graphql::Result<GitRefConnection> {
        self.refs(ctx, false, first).await
    }

    /// Tags, sorted by name.
    async fn tags(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: i32,
    ) -> async_graphql::Result<GitRefConnection> {
        self.refs(ctx, true, first).await
    }

    /// The newest commits reachable from `rev` (the default branch by default).
    async fn commits(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        rev: Option<String>,
    ) -> async_graphql::Result<Vec<GitCommit>> {
        let state = ctx.data::<AppState>()?;
        let rev = rev.unwrap_or_else(|| "HEAD".into());
        let commits = state
            .git
            .commit_log(&self.0.name, &rev, page_size(first)? as usize)
            .await
            .map_err(git_error)?;
        Ok(commits
            .into_iter()
            .map(|commit| GitCommit {
                repo: self.0.name.clone(),
                commit,
            })
            .collect())
    }

    /// The commit a revision names, or null when there is no such revision.
    async fn commit(
        &self,
        ctx: &Context<'_>,
        rev: String,
    ) -> async_graphql::Result<Option<GitCommit>> {
        let state = ctx.data::<AppState>()?;
        match state.git.commit(&self.0.name, &rev).await {
            Ok(commit) => Ok(Some(GitCommit {
                repo: self.0.name.clone(),
                commit,
            })),
            Err(GitError::RevisionNotFound { .. }) => Ok(None),
            Err(e) => Err(git_error(e)),
        }
    }
}

impl Repository {
    async fn refs(
        &self,
        ctx: &Context<'_>,
        tags: bool,
        first: i32,
    ) -> async_graphql::Result<GitRefConnection> {
        let state = ctx.data::<AppState>()?;
        let refs: Vec<quarry_gitserver::GitRef> = state
            .git
            .list_refs(&self.0.name)
            .await
            .map_err(git_error)?
            .into_iter()
            .filter(|r| r.is_tag() == tags)
            .collect();
        let total_count = refs.len() as i64;
        Ok(GitRefConnection {
            nodes: refs
                .into_iter()
                .take(page_size(first)? as usize)
                .map(|r| GitRef {
                    display_name: r.short_name().to_string(),
                    abbrev_name: r.short_name().to_string(),
                    target: Some(GitObject { oid: r.commit }),
                    name: r.name,
                })
                .collect(),
            total_count,
        })
    }
}

#[derive(SimpleObject)]
pub struct MirrorRepositoryInfo {
    cloned: bool,
    clone_in_progress: bool,
    clone_status: CloneStatusValue,
    /// The last clone or fetch error, cleared by the next success.
    last_error: Option<String>,
    /// When the mirror was last fetched.
    updated_at: Option<String>,
    last_changed_at: Option<String>,
    next_sync_at: Option<String>,
    #[graphql(name = "remoteURL")]
    remote_url: String,
}

#[derive(SimpleObject)]
pub struct GitObject {
    oid: String,
}

#[derive(SimpleObject)]
pub struct GitRef {
    name: String,
    display_name: String,
    abbrev_name: String,
    target: Option<GitObject>,
}

#[derive(SimpleObject)]
pub struct Person {
    name: String,
    email: String,
    display_name: String,
}

#[derive(SimpleObject)]
pub struct Signature {
    person: Person,
    date: String,
}

impl From<&quarry_gitserver::Signature> for Signature {
    fn from(s: &quarry_gitserver::Signature) -> Self {
        Signature {
            person: Person {
                name: s.name.clone(),
                email: s.email.clone(),
                display_name: s.name.clone(),
            },
            date: s.date.clone(),
        }
    }
}

pub struct GitCommit {
    repo: String,
    commit: quarry_gitserver::Commit,
}

#[Object]
impl GitCommit {
    async fn oid(&self) -> &str {
        &self.commit.oid
    }

    #[graphql(name = "abbreviatedOID")]
    async fn abbreviated_oid(&self) -> &str {
        &self.commit.oid[..self.commit.oid.len().min(7)]
    }

    async fn message(&self) -> &str {
        &self.commit.message
    }

    async fn subject(&self) -> &str {
        self.commit.message.lines().next().unwrap_or("")
    }

    async fn body(&self) -> Option<String> {
        let body = self
            .commit
            .message
            .split_once("\n\n")
            .map(|(_, body)| body.trim().to_string())?;
        (!body.is_empty()).then_some(body)
    }

    async fn author(&self) -> Signature {
        (&self.commit.author).into()
    }

    async fn committer(&self) -> Signature {
        (&self.commit.committer).into()
    }

    async fn parents(&self) -> Vec<GitObject> {
        self.commit
            .parents
            .iter()
            .map(|oid| GitObject { oid: oid.clone() })
            .collect()
    }

    async fn url(&self) -> String {
        format!("/{}/-/commit/{}", self.repo, self.commit.oid)
    }

    /// The directory at `path` (the root by default), or null when there is none.
    async fn tree(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] path: String,
    ) -> async_graphql::Result<Option<GitTree>> {
        let state = ctx.data::<AppState>()?;
        match state
            .git
            .list_tree(&self.repo, &self.commit.oid, &path)
            .await
        {
            Ok(entries) => Ok(Some(GitTree {
                path: path.trim_end_matches('/').to_string(),
                entries: entries
                    .into_iter()
                    .map(|e| TreeEntry {
                        is_directory: e.kind == EntryKind::Directory,
                        path: e.path,
                        name: e.name,
                        byte_size: e.size.map(|s| s as i64),
                    })
                    .collect(),
            })),
            Err(GitError::PathNotFound { .. }) => Ok(None),
            Err(e) => Err(git_error(e)),
        }
    }

    /// The file at `path`, or null when there is none.
    async fn blob(
        &self,
        ctx: &Context<'_>,
        path: String,
    ) -> async_graphql::Result<Option<GitBlob>> {
        let state = ctx.data::<AppState>()?;
        match state
            .git
            .read_file(&self.repo, &self.commit.oid, &path)
            .await
        {
            Ok(bytes) => {
                let probe = &bytes[..bytes.len().min(8000)];
                Ok(Some(GitBlob {
                    name: path.rsplit('/').next().unwrap_or(&path).to_string(),
                    path,
                    byte_size: bytes.len() as i64,
                    binary: probe.contains(&0),
                    content: String::from_utf8_lossy(&bytes).into_owned(),
                }))
            }
            Err(GitError::PathNotFound { .. }) => Ok(None),
            Err(e) => Err(git_error(e)),
        }
    }
}

fn git_error(error: GitError) -> async_graphql::Error {
    match error {
        GitError::InvalidArgument(_) | GitError::InvalidName { .. } => bad_input(error.to_string()),
        other => async_graphql::Error::new(other.to_string()),
    }
}

#[derive(SimpleObject)]
pub struct GitTree {
    path: String,
    entries: Vec<TreeEntry>,
}

#[derive(SimpleObject)]
pub struct TreeEntry {
    path: String,
    name: String,
    is_directory: bool,
    byte_size: Option<i64>,
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct GitBlob {
    path: String,
    name: String,
    content: String,
    byte_size: i64,
    binary: bool,
}

/// A file's highlighted HTML (Sourcegraph's `HighlightedFile`).
#[derive(SimpleObject)]
pub struct HighlightedFile {
    /// Whether highlighting stopped early (time or size limit); the rest is plain text.
    aborted: bool,
    /// A table with a row per line, in the shape of Sourcegraph's syntect_server.
    html: String,
    /// The grammar used, if any.
    language: Option<String>,
}

#[async_graphql::ComplexObject]
impl GitBlob {
    async fn highlight(&self, ctx: &Context<'_>) -> async_graphql::Result<HighlightedFile> {
        let state = ctx.data::<AppState>()?;
        let highlighter = std::sync::Arc::clone(&state.highlighter);
        let (path, content) = (self.path.clone(), self.content.clone());
        let highlighted =
            tokio::task::spawn_blocking(move || highlighter.highlight(&path, &content))
                .await
                .map_err(|e| async_graphql::Error::new(format!("highlighting failed: {e}")))?;
        Ok(HighlightedFile {
            aborted: matches!(
                highlighted.plain,
                Some(
                    quarry_highlight::PlainReason::TimedOut { .. }
                        | quarry_highlight::PlainReason::TooLarge { .. }
                        | quarry_highlight::PlainReason::GrammarError { .. }
                )
            ),
            html: quarry_highlight::table_html(&highlighted.lines),
            language: highlighted.language,
        })
    }
}

#[derive(SimpleObject)]
pub struct GitRefConnection {
    nodes: Vec<GitRef>,
    total_count: i64,
}

#[derive(SimpleObject)]
pub struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

#[derive(SimpleObject)]
pub struct RepositoryConnection {
    nodes: Vec<Repository>,
    total_count: i64,
    page_info: PageInfo,
}

#[derive(Default)]
pub struct RepoQuery;

#[Object]
impl RepoQuery {
    /// Repositories ordered by id; `query` matches a substring of the name, case-insensitively.
    async fn repositories(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
        query: Option<String>,
        clone_status: Option<CloneStatusValue>,
    ) -> async_graphql::Result<RepositoryConnection> {
        let state = ctx.data::<AppState>()?;
        let viewer = actor(ctx)?.viewer();
        list_repositories(state, viewer, first, after, query, clone_status).await
    }

    async fn repository(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<Repository>> {
        let state = ctx.data::<AppState>()?;
        Ok(state
            .store
            .visible_repo_by_name(&name, actor(ctx)?.viewer())
            .await
            .map_err(store_error)?
            .map(Repository))
    }
}

#[derive(SimpleObject)]
pub struct EmptyResponse {
    always_nil: Option<String>,
}

impl EmptyResponse {
    pub fn new() -> Self {
        EmptyResponse { always_nil: None }
    }
}

#[derive(Default)]
pub struct RepoMutation;

#[Object]
impl RepoMutation {
    /// Schedules a fetch of the repository right away (Sourcegraph's name).
    #[graphql(guard = "SiteAdmin")]
    async fn update_mirror_repository(
        &self,
        ctx: &Context<'_>,
        repository: ID,
    ) -> async_graphql::Result<EmptyResponse> {
        let state = ctx.data::<AppState>()?;
        let id = decode_id("Repository", &repository)?;
        crate::operations::fetch_repository_now(state, id)
            .await
            .map_err(|e| match e {
                crate::operations::OperationError::Store(e) => store_error(e),
                other => async_graphql::Error::new(other.to_string()),
            })?;
        Ok(EmptyResponse::new())
    }
}

/// One page of the repositories a viewer may see.
pub(crate) async fn list_repositories(
    state: &AppState,
    viewer: quarry_store::Viewer,
    first: i32,
    after: Option<String>,
    query: Option<String>,
    clone_status: Option<CloneStatusValue>,
) -> async_graphql::Result<RepositoryConnection> {
    let limit = page_size(first)?;
    let after_id = match after {
        Some(cursor) => Some(decode_id("Repository", &ID(cursor))?),
        None => None,
    };
    let filter = RepoFilter {
        after_id,
        // One more than asked tells whether another page follows.
        limit: Some(limit + 1),
        name_contains: query.filter(|q| !q.is_empty()),
        status: clone_status.map(Into::into),
        external_service_id: None,
        viewer,
    };
    let mut repos = state.store.list_repos(&filter).await.map_err(store_error)?;
    let has_next_page = repos.len() as i64 > limit;
    repos.truncate(limit as usize);
    let total_count = state
        .store
        .count_repos(&filter)
        .await
        .map_err(store_error)?;
    let end_cursor = repos
        .last()
        .map(|r| encode_id("Repository", r.id).to_string());
    Ok(RepositoryConnection {
        nodes: repos.into_iter().map(Repository).collect(),
        total_count,
        page_info: PageInfo {
            has_next_page,
            end_cursor,
        },
    })
}
