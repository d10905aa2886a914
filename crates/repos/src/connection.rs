//! Code host connection configurations and the repositories each one lists.
//!
//! `LOCAL`: `{"root": "/abs/dir", "maxDepth": 6}` — the directory is scanned for git repositories
//! (work trees and bare repositories; nested ones too; `.git` internals and symlinks skipped).
//! `OTHER`: `{"url": "https://git.example.com", "repos": ["team/a", "team/b.git"]}` — Sourcegraph's
//! generic git host; each repository is cloned from the URL joined with its path.

use std::path::{Path, PathBuf};

use quarry_gitserver::validate_repo_name;
use quarry_store::ExternalServiceKind;
use serde::{Deserialize, Serialize};

use crate::RepoError;

/// How deep a local scan descends unless the connection says otherwise.
pub const DEFAULT_MAX_DEPTH: usize = 6;
const MAX_MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    pub root: PathBuf,
    #[serde(rename = "maxDepth", default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtherConfig {
    pub url: String,
    pub repos: Vec<String>,
}

/// A parsed, validated connection configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionConfig {
    Local(LocalConfig),
    Other(OtherConfig),
}

/// A repository a connection lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredRepo {
    pub name: String,
    pub clone_url: String,
}

/// What a connection lists, and the problems met on the way. `complete` is false when part of the
/// listing could not be read; then repositories missing from it must not be deleted.
#[derive(Debug, Default)]
pub struct Discovery {
    pub repos: Vec<DiscoveredRepo>,
    pub problems: Vec<String>,
    pub complete: bool,
}

impl ConnectionConfig {
    /// Parses and checks a connection's JSON configuration.
    pub fn parse(kind: ExternalServiceKind, config: &str) -> Result<Self, RepoError> {
        let invalid = |e: String| RepoError::InvalidConnection(e);
        match kind {
            ExternalServiceKind::Local => {
                let local: LocalConfig =
                    serde_json::from_str(config).map_err(|e| invalid(e.to_string()))?;
                if !local.root.is_absolute() {
                    return Err(invalid(format!(
                        "root: must be an absolute path, got {:?}",
                        local.root
                    )));
                }
                if local.max_depth.is_some_and(|d| d > MAX_MAX_DEPTH) {
                    return Err(invalid(format!(
                        "maxDepth: must be at most {MAX_MAX_DEPTH}"
                    )));
                }
                Ok(ConnectionConfig::Local(local))
            }
            ExternalServiceKind::Other => {
                let other: OtherConfig =
                    serde_json::from_str(config).map_err(|e| invalid(e.to_string()))?;
                if !is_git_url(&other.url) {
                    return Err(invalid(format!(
                        "url: {:?} is not a URL git understands (http(s)://, ssh://, git://, file:// or user@host:)",
                        other.url
                    )));
                }
                if other.repos.is_empty() {
                    return Err(invalid("repos: list at least one repository".into()));
                }
                for (i, repo) in other.repos.iter().enumerate() {
                    if repo.trim().is_empty()
                        || repo.starts_with('-')
                        || repo.chars().any(char::is_control)
                    {
                        return Err(invalid(format!(
                            "repos[{i}]: {repo:?} is not a repository path"
                        )));
                    }
                }
                Ok(ConnectionConfig::Other(other))
            }
        }
    }

    pub fn kind(&self) -> ExternalServiceKind {
        match self {
            ConnectionConfig::Local(_) => ExternalServiceKind::Local,
            ConnectionConfig::Other(_) => ExternalServiceKind::Other,
        }
    }

    /// The JSON document stored for this configuration.
    pub fn to_json(&self) -> String {
        let value = match self {
            ConnectionConfig::Local(c) => serde_json::to_string_pretty(c),
            ConnectionConfig::Other(c) => serde_json::to_string_pretty(c),
        };
        value.unwrap_or_default()
    }

    /// Lists the connection's repositories. Blocking (reads directories): call from a blocking task.
    pub fn discover(&self) -> Result<Discovery, RepoError> {
        let mut discovery = match self {
            ConnectionConfig::Local(local) => scan_local(local)?,
            ConnectionConfig::Other(other) => Discovery {
                repos: other
                    .repos
                    .iter()
                    .map(|repo| DiscoveredRepo {
                        name: other_repo_name(&other.url, repo),
                        clone_url: join_url(&other.url, repo),
                    })
                    .collect(),
                problems: Vec::new(),
                complete: true,
            },
        };
        check_names(&mut discovery);
        Ok(discovery)
    }
}

/// Drops repositories with unsafe names or names listed twice, saying why.
fn check_names(discovery: &mut Discovery) {
    let mut kept: Vec<DiscoveredRepo> = Vec::with_capacity(discovery.repos.len());
    for repo in std::mem::take(&mut discovery.repos) {
        if let Err(e) = validate_repo_name(&repo.name) {
            discovery
                .problems
                .push(format!("{} (from {}): {e}", repo.name, repo.clone_url));
        } else if let Some(first) = kept.iter().find(|k| k.name == repo.name) {
            discovery.problems.push(format!(
                "two repositories would be named {}: {} and {}; only the first is kept",
                repo.name, first.clone_url, repo.clone_url
            ));
        } else {
            kept.push(repo);
        }
    }
    discovery.repos = kept;
}

/// Whether git would take this as a remote URL.
pub fn is_git_url(url: &str) -> bool {
    if let Some((scheme, rest)) = url.split_once("://") {
        return matches!(
            scheme,
            "http" | "https" | "ssh" | "git" | "file" | "git+ssh"
        ) && !rest.is_empty();
    }
    scp_like(url).is_some()
}

/// `user@host:path` (git's scp-like syntax): returns (host, path).
fn scp_like(url: &str) -> Option<(&str, &str)> {
    let (before, path) = url.split_once(':')?;
    if before.contains('/') || url.starts_with('-') {
        return None;
    }
    let host = before.rsplit('@').next()?;
    (!host.is_empty() && before.contains('@')).then_some((host, path))
}

fn join_url(base: &str, repo: &str) -> String {
    if base.ends_with('/') || base.ends_with(':') {
        format!("{base}{}", repo.trim_start_matches('/'))
    } else {
        format!("{base}/{}", repo.trim_start_matches('/'))
    }
}

fn strip_git_suffix(path: &str) -> &str {
    path.strip_suffix(".git").unwrap_or(path)
}

/// The host part of a URL, without user and port; `None` for `file://`.
fn url_host(url: &str) -> Option<&str> {
    if let Some((scheme, rest)) = url.split_once("://") {
        if scheme == "file" {
            return None;
        }
        let authority = rest.split('/').next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let host = host.split(':').next().unwrap_or(host);
        return (!host.is_empty()).then_some(host);
    }
    scp_like(url).map(|(host, _)| host)
}

/// Names follow Sourcegraph's habit of `host/path` (`github.com/org/repo`).
fn other_repo_name(url: &str, repo: &str) -> String {
    let path = strip_git_suffix(repo.trim_matches('/'));
    let path = path.trim_matches('/');
    match url_host(url) {
        Some(host) => {
            let base_path = url
                .split_once("://")
                .map(|(_, rest)| rest.split_once('/').map_or("", |(_, p)| p))
                .or_else(|| scp_like(url).map(|(_, p)| p))
                .unwrap_or("")
                .trim_matches('/');
            if base_path.is_empty() {
                format!("{host}/{path}")
            } else {
                format!("{host}/{base_path}/{path}")
            }
        }
        None => path.rsplit('/').next().unwrap_or(path).to_string(),
    }
}

/// A command-line argument of `quarry serve` turned into a connection: a GIT-URL becomes an
/// `OTHER` connection for that one repository, a path a `LOCAL` connection rooted there.
pub fn connection_for_argument(argument: &str, cwd: &Path) -> Result<ConnectionConfig, RepoError> {
    if is_git_url(argument) {
        let (base, repo) = split_repo_url(argument);
        return Ok(ConnectionConfig::Other(OtherConfig {
            url: base,
            repos: vec![repo],
        }));
    }
    let path = cwd.join(argument);
    let root = std::fs::canonicalize(&path)
        .map_err(|e| RepoError::Discovery(format!("cannot use {}: {e}", path.display())))?;
    if !root.is_dir() {
        return Err(RepoError::Discovery(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    std::fs::read_dir(&root)
        .map_err(|e| RepoError::Discovery(format!("cannot read {}: {e}", root.display())))?;
    Ok(ConnectionConfig::Local(LocalConfig {
        root,
        max_depth: None,
    }))
}

/// Splits a repository URL into the connection's base URL and the repository's path below it.
fn split_repo_url(url: &str) -> (String, String) {
    if let Some((scheme, rest)) = url.split_once("://") {
        if scheme == "file" {
            let trimmed = rest.trim_end_matches('/');
            return match trimmed.rsplit_once('/') {
                Some((dir, last)) => (format!("file://{dir}"), last.to_string()),
                None => (format!("file://{trimmed}"), String::new()),
            };
        }
        return match rest.split_once('/') {
            Some((authority, path)) => (format!("{scheme}://{authority}"), path.to_string()),
            None => (url.to_string(), String::new()),
        };
    }
    match url.split_once(':') {
        Some((host, path)) => (format!("{host}:"), path.to_string()),
        None => (url.to_string(), String::new()),
    }
}

fn is_bare_repository(dir: &Path) -> bool {
    dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir()
}

fn has_work_tree_git(dir: &Path) -> bool {
    dir.join(".git").exists()
}

fn scan_local(config: &LocalConfig) -> Result<Discovery, RepoError> {
    let root = &config.root;
    let max_depth = config.max_depth.unwrap_or(DEFAULT_MAX_DEPTH);
    let metadata = std::fs::metadata(root)
        .map_err(|e| RepoError::Discovery(format!("cannot read {}: {e}", root.display())))?;
    if !metadata.is_dir() {
        return Err(RepoError::Discovery(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    let root_name = root
        .file_name()
        .map(|n| strip_git_suffix(&n.to_string_lossy()).to_string())
        .unwrap_or_default();
    // A root that is itself a repository is named after its directory; what lies below it is
    // named under that name.
    let prefix = if has_work_tree_git(root) || is_bare_repository(root) {
        Some(root_name)
    } else {
        None
    };
    let mut discovery = Discovery {
        complete: true,
        ..Default::default()
    };
    let mut stack = vec![(root.clone(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let relative = dir.strip_prefix(root).unwrap_or(&dir);
        let name = match (&prefix, relative.as_os_str().is_empty()) {
            (Some(prefix), true) => prefix.clone(),
            (Some(prefix), false) => format!("{prefix}/{}", relative.to_string_lossy()),
            (None, _) => relative.to_string_lossy().into_owned(),
        };
        let bare = is_bare_repository(&dir);
        if bare || has_work_tree_git(&dir) {
            discovery.repos.push(DiscoveredRepo {
                name: strip_git_suffix(&name).to_string(),
                clone_url: dir.display().to_string(),
            });
        }
        if bare || depth >= max_depth {
            continue;
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                discovery
                    .problems
                    .push(format!("cannot read {}: {e}", dir.display()));
                discovery.complete = false;
                continue;
            }
        };
        let mut children = Vec::new();
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            if file_name == ".git" {
                continue;
            }
            // file_type does not follow symlinks, so links (and loops through them) are skipped.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                children.push(entry.path());
            }
        }
        children.sort();
        stack.extend(children.into_iter().rev().map(|c| (c, depth + 1)));
    }
    discovery.repos.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(discovery)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_gitserver::testing::TestRepo;

    #[test]
    fn urls_split_into_connections_and_names() {
        let cwd = Path::new("/");
        let cases = [
            (
                "https://github.com/org/repo",
                "https://github.com",
                "org/repo",
                "github.com/org/repo",
            ),
            (
                "https://github.com/org/repo.git",
                "https://github.com",
                "org/repo.git",
                "github.com/org/repo",
            ),
            (
                "git@github.com:org/repo.git",
                "git@github.com:",
                "org/repo.git",
                "github.com/org/repo",
            ),
            (
                "ssh://git@host:2222/a/b.git",
                "ssh://git@host:2222",
                "a/b.git",
                "host/a/b",
            ),
            (
                "file:///srv/git/foo.git",
                "file:///srv/git",
                "foo.git",
                "foo",
            ),
        ];
        for (argument, url, repo, name) in cases {
            let ConnectionConfig::Other(other) = connection_for_argument(argument, cwd).unwrap()
            else {
                panic!("{argument} is a URL");
            };
            assert_eq!(
                (other.url.as_str(), other.repos[0].as_str()),
                (url, repo),
                "{argument}"
            );
            let found = ConnectionConfig::Other(other).discover().unwrap();
            assert_eq!(found.repos[0].name, name, "{argument}");
            assert_eq!(found.repos[0].clone_url, argument, "{argument}");
        }
    }

    #[test]
    fn other_connections_are_validated() {
        for bad in [
            r#"{"url": "ftp://x", "repos": ["a"]}"#,
            r#"{"url": "https://x", "repos": []}"#,
            r#"{"url": "https://x", "repos": ["-oops"]}"#,
            r#"{"url": "https://x", "repos": ["a"], "extra": 1}"#,
            r#"not json"#,
        ] {
            assert!(
                ConnectionConfig::parse(ExternalServiceKind::Other, bad).is_err(),
                "{bad}"
            );
        }
        assert!(ConnectionConfig::parse(ExternalServiceKind::Local, r#"{"root": "rel"}"#).is_err());
    }

    #[test]
    fn hostile_names_from_a_host_are_reported_not_used() {
        let config = ConnectionConfig::parse(
            ExternalServiceKind::Other,
            r#"{"url": "file:///srv", "repos": ["ok", "..", "ok.git"]}"#,
        )
        .unwrap();
        let found = config.discover().unwrap();
        let names: Vec<_> = found.repos.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["ok"]);
        assert_eq!(found.problems.len(), 2, "{:?}", found.problems);
        assert!(
            found
                .problems
                .iter()
                .any(|p| p.contains("two repositories would be named ok"))
        );
    }

    #[test]
    fn local_scan_finds_nested_and_bare_repositories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        TestRepo::init(&root.join("alpha"))
            .unwrap()
            .commit(&[("a", "a")], "a")
            .unwrap();
        TestRepo::init(&root.join("group/beta"))
            .unwrap()
            .commit(&[("b", "b")], "b")
            .unwrap();
        TestRepo::init(&root.join("alpha/vendor/gamma"))
            .unwrap()
            .commit(&[("c", "c")], "c")
            .unwrap();
        std::process::Command::new("git")
            .args(["init", "--bare", "--quiet"])
            .arg(root.join("delta.git"))
            .status()
            .unwrap();
        std::fs::create_dir_all(root.join("empty/dir")).unwrap();
        std::os::unix::fs::symlink(root, root.join("group/loop")).unwrap();

        let config = ConnectionConfig::Local(LocalConfig {
            root: root.to_path_buf(),
            max_depth: None,
        });
        let found = config.discover().unwrap();
        let names: Vec<_> = found.repos.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["alpha", "alpha/vendor/gamma", "delta", "group/beta"]
        );
        assert!(
            found.complete && found.problems.is_empty(),
            "{:?}",
            found.problems
        );

        let shallow = ConnectionConfig::Local(LocalConfig {
            root: root.to_path_buf(),
            max_depth: Some(1),
        });
        let names: Vec<_> = shallow
            .discover()
            .unwrap()
            .repos
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["alpha", "delta"]);

        let inside = ConnectionConfig::Local(LocalConfig {
            root: root.join("alpha"),
            max_depth: None,
        });
        let names: Vec<_> = inside
            .discover()
            .unwrap()
            .repos
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["alpha", "alpha/vendor/gamma"]);
    }

    #[test]
    fn missing_paths_are_clear_errors() {
        let err = connection_for_argument("/definitely/not/here", Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("/definitely/not/here"), "{err}");
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = connection_for_argument(&file.path().display().to_string(), Path::new("/"))
            .unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }
}
