//! Code browsing at Sourcegraph's URLs: `/<repo>` (home: files and README),
//! `/<repo>@<rev>/-/tree/<path>`, `/<repo>@<rev>/-/blob/<path>` (highlighted, with line anchors
//! `#L10` and `#L10-20`), `/<repo>@<rev>/-/raw/<path>`, `/<repo>@<rev>/-/commits`,
//! `/<repo>/-/commit/<sha>`, `/<repo>/-/branches` and `/<repo>/-/tags`. An unknown repository,
//! revision or path gets a 404 page naming the part that was not found.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, PreEscaped, html};
use quarry_auth::Actor;
use quarry_gitserver::{Commit, EntryKind, GitError, GitRef, TreeEntry};
use quarry_store::{CloneStatus, Repo};

use super::{human_bytes, may_read, page, path_url, problem_page, render, sign_in_first};
use crate::AppState;
use crate::access::actor;
use crate::markdown;

/// Files larger than this are not shown in the page (the raw link still serves them).
pub const MAX_VIEW_BYTES: usize = 4 * 1024 * 1024;

/// Commits listed on a commits page and in the revision picker.
const COMMITS_PAGE: usize = 50;
const PICKER_COMMITS: usize = 10;

/// Diffs larger than this are cut, with a notice.
const MAX_DIFF_BYTES: usize = 2 * 1024 * 1024;

/// git's empty tree, the base to diff a root commit against.
const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// What a repository URL asks for.
#[derive(Debug, PartialEq, Eq)]
enum View {
    Home,
    Tree(String),
    Blob(String),
    Raw(String),
    Commits,
    Commit(String),
    Branches,
    Tags,
}

/// A parsed repository URL: the repository, the revision if one is named, and the view.
#[derive(Debug, PartialEq, Eq)]
struct Location {
    repo: String,
    rev: Option<String>,
    view: View,
}

/// Reads a decoded URL path of the form `/<repo>[@<rev>][/-/<view>[/<path>]]`.
fn parse_location(path: &str) -> Option<Location> {
    let path = path.strip_prefix('/')?;
    let (repo_part, rest) = match path.split_once("/-/") {
        Some((repo, rest)) => (repo, Some(rest)),
        None => (path.trim_end_matches('/'), None),
    };
    let (repo, rev) = match repo_part.split_once('@') {
        Some((repo, rev)) if !rev.is_empty() => (repo, Some(rev.to_string())),
        Some((repo, _)) => (repo, None),
        None => (repo_part, None),
    };
    if repo.is_empty() {
        return None;
    }
    let view = match rest {
        None => View::Home,
        Some(rest) => {
            let (kind, path) = rest.split_once('/').unwrap_or((rest, ""));
            let path = path.trim_matches('/').to_string();
            match kind {
                "tree" if path.is_empty() => View::Home,
                "tree" => View::Tree(path),
                "blob" if !path.is_empty() => View::Blob(path),
                "raw" if !path.is_empty() => View::Raw(path),
                "commits" => View::Commits,
                "commit" if !path.is_empty() => View::Commit(path),
                "branches" => View::Branches,
                "tags" => View::Tags,
                _ => return None,
            }
        }
    };
    Some(Location {
        repo: repo.to_string(),
        rev,
        view,
    })
}

/// A repository and the commit a page shows.
struct Context<'a> {
    state: &'a AppState,
    actor: &'a Actor,
    repo: Repo,
    /// The revision as the URL named it (`None`: the default branch).
    rev: Option<String>,
    commit: String,
}

impl Context<'_> {
    /// The URL of a view at this page's revision.
    fn url(&self, kind: &str, path: &str) -> String {
        let rev = self
            .rev
            .as_deref()
            .map(|r| format!("@{}", path_url(r)))
            .unwrap_or_default();
        let repo = path_url(&self.repo.name);
        match (kind, path) {
            ("", _) => format!("/{repo}{rev}"),
            (kind, "") => format!("/{repo}{rev}/-/{kind}"),
            (kind, path) => format!("/{repo}{rev}/-/{kind}/{}", path_url(path)),
        }
    }

    fn rev_label(&self) -> String {
        match &self.rev {
            Some(rev) => rev.clone(),
            None => self
                .repo
                .default_branch
                .clone()
                .unwrap_or_else(|| "HEAD".into()),
        }
    }
}

/// The handler for every GET path that no other route took: repository pages, or a 404.
pub async fn repository_page(State(state): State<AppState>, request: Request) -> Response {
    let actor = actor(&request);
    let decoded = percent_decode(request.uri().path());
    let Some(location) = decoded.as_deref().and_then(parse_location) else {
        return not_found(
            &actor,
            "Page not found",
            "There is no page at this address.",
        );
    };
    if !may_read(&state, &actor) {
        return sign_in_first(request.uri());
    }
    let repo = match state
        .store
        .visible_repo_by_name(&location.repo, actor.viewer())
        .await
    {
        Ok(Some(repo)) => repo,
        Ok(None) => {
            return not_found(
                &actor,
                "Repository not found",
                &format!("Repository {} was not found.", location.repo),
            );
        }
        Err(e) => return failure(&actor, &e.to_string()),
    };
    if repo.clone_status != CloneStatus::Cloned {
        let message = match (&repo.clone_status, &repo.last_error) {
            (CloneStatus::Failed, Some(error)) => format!("Cloning failed: {error}"),
            _ => "This repository is being cloned. Try again in a moment.".into(),
        };
        return problem_page(
            StatusCode::NOT_FOUND,
            &actor,
            &repo.name,
            html! { p { (message) } },
        );
    }
    let rev = match &location.view {
        View::Commit(sha) => sha.clone(),
        _ => location.rev.clone().unwrap_or_else(|| "HEAD".into()),
    };
    let commit = match state.git.resolve_revision(&repo.name, &rev).await {
        Ok(commit) => commit,
        Err(GitError::RevisionNotFound { .. } | GitError::InvalidArgument(_)) => {
            return not_found(
                &actor,
                "Revision not found",
                &format!("Revision {rev} was not found in repository {}.", repo.name),
            );
        }
        Err(e) => return failure(&actor, &e.to_string()),
    };
    let context = Context {
        state: &state,
        actor: &actor,
        repo,
        rev: location.rev,
        commit,
    };
    let outcome = match location.view {
        View::Home => tree_page(&context, "").await,
        View::Tree(path) => tree_page(&context, &path).await,
        View::Blob(path) => blob_page(&context, &path).await,
        View::Raw(path) => raw_file(&context, &path).await,
        View::Commits => commits_page(&context).await,
        View::Commit(_) => commit_page(&context).await,
        View::Branches => refs_page(&context, false).await,
        View::Tags => refs_page(&context, true).await,
    };
    outcome.unwrap_or_else(|e| match e {
        GitError::PathNotFound { path, .. } => not_found(
            &actor,
            "Path not found",
            &format!("{path} was not found at revision {}.", context.rev_label()),
        ),
        GitError::InvalidArgument(message) => problem_page(
            StatusCode::BAD_REQUEST,
            &actor,
            "Bad request",
            html! { p { (message) } },
        ),
        other => failure(&actor, &other.to_string()),
    })
}

fn not_found(actor: &Actor, title: &str, message: &str) -> Response {
    problem_page(
        StatusCode::NOT_FOUND,
        actor,
        title,
        html! { p { (message) } },
    )
}

fn failure(actor: &Actor, message: &str) -> Response {
    tracing::error!(error = %message, "repository page failed");
    problem_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        actor,
        "Something went wrong",
        html! { p { (message) } },
    )
}

/// Decodes `%XX` escapes; `None` when the result is not UTF-8.
fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(byte) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The repository header: name, revision picker, and the repository's sections.
async fn repo_header(context: &Context<'_>, path: &str, kind: &str) -> Markup {
    let git = &context.state.git;
    let name = &context.repo.name;
    let (refs, commits) = tokio::join!(
        git.list_refs(name),
        git.commit_log(name, &context.commit, PICKER_COMMITS)
    );
    let refs = refs.unwrap_or_default();
    let commits = commits.unwrap_or_default();
    // The picker keeps the view and path, changing only the revision.
    let at = |rev: &str| {
        let repo = path_url(name);
        let rev = path_url(rev);
        match (kind, path) {
            ("", _) => format!("/{repo}@{rev}"),
            (kind, "") => format!("/{repo}@{rev}/-/{kind}"),
            (kind, path) => format!("/{repo}@{rev}/-/{kind}/{}", path_url(path)),
        }
    };
    let branches: Vec<&GitRef> = refs.iter().filter(|r| !r.is_tag()).collect();
    let tags: Vec<&GitRef> = refs.iter().filter(|r| r.is_tag()).collect();
    html! {
        nav.repo-header aria-label="Repository" {
            a.repo-name href=(context.url("", "")) { (name) }
            details.rev-picker {
                summary aria-label="Switch revision" { span.rev { (context.rev_label()) } " ▾" }
                div.rev-menu {
                    h3 { "Branches" }
                    ul.branches { @for r in &branches { li { a href=(at(r.short_name())) { (r.short_name()) } } } }
                    @if !tags.is_empty() {
                        h3 { "Tags" }
                        ul.tags { @for r in &tags { li { a href=(at(r.short_name())) { (r.short_name()) } } } }
                    }
                    h3 { "Commits" }
                    ul.commits {
                        @for c in &commits {
                            li { a href=(at(&c.oid)) { code { (short(&c.oid)) } " " (subject(c)) } }
                        }
                    }
                }
            }
            a href=(context.url("", "")) { "Files" }
            a href=(context.url("commits", "")) { "Commits" }
            a href=(context.url("branches", "")) { "Branches" }
            a href=(context.url("tags", "")) { "Tags" }
        }
    }
}

/// Links to each directory on the way to a path.
fn breadcrumbs(context: &Context<'_>, path: &str, last_is_file: bool) -> Markup {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    html! {
        nav.breadcrumbs aria-label="Path" {
            a href=(context.url("", "")) { (context.repo.name.rsplit('/').next().unwrap_or(&context.repo.name)) }
            @for (i, part) in parts.iter().enumerate() {
                " / "
                @let prefix = parts[..=i].join("/");
                @if i + 1 == parts.len() {
                    span aria-current="page" { (part) }
                } @else {
                    a href=(context.url("tree", &prefix)) { (part) }
                }
            }
            @if last_is_file {
                " " a.raw href=(context.url("raw", path)) { "Raw" }
            }
        }
    }
}

fn short(oid: &str) -> &str {
    &oid[..oid.len().min(7)]
}

fn subject(commit: &Commit) -> &str {
    commit.message.lines().next().unwrap_or("")
}

async fn tree_page(context: &Context<'_>, path: &str) -> Result<Response, GitError> {
    let git = &context.state.git;
    let mut entries = git
        .list_tree(&context.repo.name, &context.commit, path)
        .await?;
    if entries.is_empty() && !path.is_empty() {
        // A file, not a directory: its page is elsewhere.
        return Err(GitError::PathNotFound {
            path: path.to_string(),
            commit: context.commit.clone(),
        });
    }
    entries.sort_by(|a, b| {
        (a.kind != EntryKind::Directory)
            .cmp(&(b.kind != EntryKind::Directory))
            .then(a.name.cmp(&b.name))
    });
    let readme = entries
        .iter()
        .find(|e| e.kind == EntryKind::File && is_readme(&e.name));
    let readme_html = match readme {
        Some(entry) => git
            .read_file(&context.repo.name, &context.commit, &entry.path)
            .await
            .ok()
            .map(|bytes| readme_markup(context, entry, &bytes)),
        None => None,
    };
    let header = repo_header(context, path, if path.is_empty() { "" } else { "tree" }).await;
    let title = if path.is_empty() {
        context.repo.name.clone()
    } else {
        format!("{path} - {}", context.repo.name)
    };
    let body = html! {
        (header)
        (breadcrumbs(context, path, false))
        table.tree {
            thead { tr { th { "Name" } th.size { "Size" } } }
            tbody {
                @for entry in &entries { (tree_row(context, entry)) }
            }
        }
        @if let Some(readme) = readme_html {
            article.readme aria-label="README" { (readme) }
        }
    };
    Ok(render(StatusCode::OK, page(&title, context.actor, body)))
}

fn tree_row(context: &Context<'_>, entry: &TreeEntry) -> Markup {
    let (href, icon) = match entry.kind {
        EntryKind::Directory => (Some(context.url("tree", &entry.path)), "📁"),
        EntryKind::File | EntryKind::Symlink => (Some(context.url("blob", &entry.path)), "📄"),
        EntryKind::Submodule => (None, "📦"),
    };
    html! {
        tr {
            td {
                span aria-hidden="true" { (icon) " " }
                @if let Some(href) = href {
                    a href=(href) { (entry.name) @if entry.kind == EntryKind::Directory { "/" } }
                } @else {
                    (entry.name) " " span.muted { "(submodule)" }
                }
            }
            td.size { @if let Some(size) = entry.size { (human_bytes(size)) } }
        }
    }
}

fn is_readme(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "readme" | "readme.md" | "readme.markdown" | "readme.txt" | "readme.rst"
    )
}

fn readme_markup(context: &Context<'_>, entry: &TreeEntry, bytes: &[u8]) -> Markup {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_VIEW_BYTES)]);
    let lower = entry.name.to_ascii_lowercase();
    if lower.ends_with(".md") || lower.ends_with(".markdown") {
        let directory = entry.path.rsplit_once('/').map_or("", |(d, _)| d);
        let blob_base = context.url("blob", directory);
        let raw_base = context.url("raw", directory);
        html! { (PreEscaped(markdown::to_html(&text, &blob_base, &raw_base))) }
    } else {
        html! { pre { (text) } }
    }
}

async fn blob_page(context: &Context<'_>, path: &str) -> Result<Response, GitError> {
    let git = &context.state.git;
    let (bytes, header) = tokio::join!(
        git.read_file(&context.repo.name, &context.commit, path),
        repo_header(context, path, "blob")
    );
    let bytes = bytes?;
    let title = format!("{path} - {}", context.repo.name);
    let raw = context.url("raw", path);
    let probe = &bytes[..bytes.len().min(8000)];
    let notice = if probe.contains(&0) {
        Some(format!(
            "Binary file ({}).",
            human_bytes(bytes.len() as u64)
        ))
    } else if bytes.len() > MAX_VIEW_BYTES {
        Some(format!(
            "This file is too large to show ({}; the limit is {}).",
            human_bytes(bytes.len() as u64),
            human_bytes(MAX_VIEW_BYTES as u64)
        ))
    } else {
        None
    };
    let content = match notice {
        Some(notice) => html! {
            p.notice role="note" { (notice) " " a href=(raw) { "View the raw file" } }
        },
        None => {
            let highlighter = Arc::clone(&context.state.highlighter);
            let name = path.to_string();
            let highlighted = tokio::task::spawn_blocking(move || {
                let text = String::from_utf8_lossy(&bytes);
                highlighter.highlight(&name, &text)
            })
            .await
            .map_err(|e| GitError::Io(format!("highlighting failed: {e}")))?;
            html! {
                @if let Some(reason) = &highlighted.plain {
                    @if !matches!(reason, quarry_highlight::PlainReason::UnknownLanguage) {
                        p.notice.muted role="note" { (reason.to_string()) }
                    }
                }
                div.blob data-language=[highlighted.language.as_deref()] {
                    table.hl.lines {
                        tbody {
                            @for (i, line) in highlighted.lines.iter().enumerate() {
                                tr #{ "L" (i + 1) } {
                                    td.line { a href={ "#L" (i + 1) } data-line=(i + 1) { (i + 1) } }
                                    td.code { (PreEscaped(line)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        (header)
        (breadcrumbs(context, path, true))
        (content)
    };
    Ok(render(StatusCode::OK, page(&title, context.actor, body)))
}

async fn raw_file(context: &Context<'_>, path: &str) -> Result<Response, GitError> {
    let bytes = context
        .state
        .git
        .read_file(&context.repo.name, &context.commit, path)
        .await?;
    let binary = bytes[..bytes.len().min(8000)].contains(&0);
    let content_type = if binary {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // A file from a repository must never run as a page of this site.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    let name = path.rsplit('/').next().unwrap_or(path).replace('"', "");
    let disposition = if binary { "attachment" } else { "inline" };
    if let Ok(value) = HeaderValue::from_str(&format!("{disposition}; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

async fn commits_page(context: &Context<'_>) -> Result<Response, GitError> {
    let (commits, header) = tokio::join!(
        context
            .state
            .git
            .commit_log(&context.repo.name, &context.commit, COMMITS_PAGE),
        repo_header(context, "", "commits")
    );
    let commits = commits?;
    let repo = path_url(&context.repo.name);
    let body = html! {
        (header)
        h1 { "Commits" }
        ol.commit-list {
            @for c in &commits {
                li {
                    a href={ "/" (repo) "/-/commit/" (c.oid) } { (subject(c)) }
                    div.muted {
                        code { (short(&c.oid)) } " · " (c.author.name) " · " time datetime=(c.author.date) { (c.author.date) }
                    }
                }
            }
        }
    };
    let title = format!("Commits - {}", context.repo.name);
    Ok(render(StatusCode::OK, page(&title, context.actor, body)))
}

async fn commit_page(context: &Context<'_>) -> Result<Response, GitError> {
    let git = &context.state.git;
    let commit = git.commit(&context.repo.name, &context.commit).await?;
    let base = commit
        .parents
        .first()
        .cloned()
        .unwrap_or_else(|| EMPTY_TREE.to_string());
    let (diff, header) = tokio::join!(
        git.diff(&context.repo.name, &base, &commit.oid),
        repo_header(context, "", "commits")
    );
    let mut diff = diff?;
    let cut = diff.len() > MAX_DIFF_BYTES;
    if cut {
        let mut end = MAX_DIFF_BYTES;
        while !diff.is_char_boundary(end) {
            end -= 1;
        }
        diff.truncate(end);
    }
    let repo = path_url(&context.repo.name);
    let body_text = commit.message.split_once('\n').map(|(_, b)| b.trim());
    let body = html! {
        (header)
        h1 { (subject(&commit)) }
        @if let Some(text) = body_text.filter(|t| !t.is_empty()) { pre.commit-body { (text) } }
        p.muted {
            (commit.author.name) " committed " time datetime=(commit.committer.date) { (commit.committer.date) }
            " · " code { (commit.oid) }
            @for parent in &commit.parents {
                " · parent " a href={ "/" (repo) "/-/commit/" (parent) } { code { (short(parent)) } }
            }
            " · " a href={ "/" (repo) "@" (commit.oid) } { "Browse files" }
        }
        (diff_markup(&diff))
        @if cut { p.notice role="note" { "The diff is too large to show in full." } }
    };
    let title = format!("{} - {}", subject(&commit), context.repo.name);
    Ok(render(StatusCode::OK, page(&title, context.actor, body)))
}

/// A unified diff, a table per file with added and deleted lines marked.
fn diff_markup(diff: &str) -> Markup {
    let mut files: Vec<(String, Vec<&str>)> = Vec::new();
    for line in diff.lines() {
        if let Some(rest) = line.strip_prefix("diff --git ") {
            let name = rest.split_once(" b/").map_or(rest, |(_, b)| b).to_string();
            files.push((name, Vec::new()));
        } else if let Some((_, lines)) = files.last_mut() {
            lines.push(line);
        }
    }
    html! {
        p.muted { (files.len()) " changed files" }
        @for (name, lines) in &files {
            section.diff-file {
                h3 { (name) }
                table.hl.diff {
                    tbody {
                        @for line in lines {
                            @let class = if line.starts_with("+++") || line.starts_with("---") || line.starts_with("index ") || line.starts_with("new file") || line.starts_with("deleted file") {
                                "meta"
                            } else if line.starts_with('+') {
                                "i"
                            } else if line.starts_with('-') {
                                "d"
                            } else if line.starts_with("@@") {
                                "hunk"
                            } else {
                                ""
                            };
                            tr { td.code { span class=(class) { (line) } } }
                        }
                    }
                }
            }
        }
    }
}

async fn refs_page(context: &Context<'_>, tags: bool) -> Result<Response, GitError> {
    let (refs, header) = tokio::join!(
        context.state.git.list_refs(&context.repo.name),
        repo_header(context, "", if tags { "tags" } else { "branches" })
    );
    let refs: Vec<GitRef> = refs?.into_iter().filter(|r| r.is_tag() == tags).collect();
    let repo = path_url(&context.repo.name);
    let what = if tags { "Tags" } else { "Branches" };
    let body = html! {
        (header)
        h1 { (what) }
        @if refs.is_empty() { p.muted { "None." } }
        ul.ref-list {
            @for r in &refs {
                li {
                    a href={ "/" (repo) "@" (path_url(r.short_name())) } { (r.short_name()) }
                    " " a.muted href={ "/" (repo) "/-/commit/" (r.commit) } { code { (short(&r.commit)) } }
                }
            }
        }
    };
    let title = format!("{what} - {}", context.repo.name);
    Ok(render(StatusCode::OK, page(&title, context.actor, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(repo: &str, rev: Option<&str>, view: View) -> Option<Location> {
        Some(Location {
            repo: repo.into(),
            rev: rev.map(Into::into),
            view,
        })
    }

    #[test]
    fn urls_follow_sourcegraphs_scheme() {
        assert_eq!(
            parse_location("/github.com/a/b"),
            at("github.com/a/b", None, View::Home)
        );
        assert_eq!(
            parse_location("/a/b@v1.0"),
            at("a/b", Some("v1.0"), View::Home)
        );
        assert_eq!(
            parse_location("/a/b@feature/x/-/tree/src/lib"),
            at("a/b", Some("feature/x"), View::Tree("src/lib".into()))
        );
        assert_eq!(
            parse_location("/a/b/-/blob/src/main.rs"),
            at("a/b", None, View::Blob("src/main.rs".into()))
        );
        assert_eq!(
            parse_location("/a/b@abc/-/raw/x.bin"),
            at("a/b", Some("abc"), View::Raw("x.bin".into()))
        );
        assert_eq!(
            parse_location("/a/b/-/commit/0123"),
            at("a/b", None, View::Commit("0123".into()))
        );
        assert_eq!(
            parse_location("/a/b/-/commits"),
            at("a/b", None, View::Commits)
        );
        assert_eq!(parse_location("/a/b/-/tags"), at("a/b", None, View::Tags));
        assert_eq!(parse_location("/a/b/-/nonsense/x"), None);
        assert_eq!(parse_location("/a/b/-/blob/"), None);
        assert_eq!(parse_location("/"), None);
    }

    #[test]
    fn paths_are_percent_decoded() {
        assert_eq!(percent_decode("/a%20b/%C3%A9").as_deref(), Some("/a b/é"));
        assert_eq!(percent_decode("/100%").as_deref(), Some("/100%"));
        assert_eq!(percent_decode("/%FF"), None);
    }

    #[test]
    fn diffs_are_split_by_file() {
        let diff = "diff --git a/x b/x\nindex 1..2\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n";
        let html = diff_markup(diff).into_string();
        assert!(html.contains("<h3>x</h3>"));
        assert!(html.contains("<span class=\"d\">-old</span>"));
        assert!(html.contains("<span class=\"i\">+new</span>"));
        assert!(html.contains("1 changed files"));
    }
}
