//! The gitserver that owns mirrors on this machine's disk.
//!
//! Layout under the root: `<name>.git` is the bare mirror of repository `<name>`; `.tmp/` holds
//! clones in progress; `.trash/` holds mirrors being deleted. A clone is made in `.tmp/` and renamed
//! into place only when git finished, so a mirror at its final path is always complete: a crash
//! mid-clone leaves only debris in `.tmp/`, which is removed at start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};

use crate::command::Git;
use crate::service::{
    Commit, EntryKind, GitRef, GitService, Signature, SyncResult, TreeEntry, validate_git_protocol,
    validate_oid, validate_path, validate_revision,
};
use crate::{ByteStream, GitError, validate_repo_name};

/// Time allowed for quick, local operations (reads, ref listings).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// Messages after which a mirror is treated as damaged and cloned again.
const DAMAGE_SIGNS: &[&str] = &[
    "not a git repository",
    "corrupt",
    "bad object",
    "missing blob",
    "missing tree",
    "missing commit",
    "did not send all necessary objects",
    "unable to read",
];

pub struct LocalGitService {
    root: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl LocalGitService {
    /// Opens (creating) the mirror directory and clears what an earlier crash left behind.
    pub fn open(root: &Path) -> Result<Self, GitError> {
        std::fs::create_dir_all(root)?;
        for scratch in [".tmp", ".trash"] {
            let dir = root.join(scratch);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
        }
        Ok(LocalGitService {
            root: root.to_path_buf(),
            locks: Mutex::new(HashMap::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a repository's mirror lives.
    pub fn mirror_path(&self, repo: &str) -> Result<PathBuf, GitError> {
        validate_repo_name(repo)?;
        Ok(self.root.join(format!("{repo}.git")))
    }

    fn lock_for(&self, repo: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = match self.locks.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        locks.entry(repo.to_string()).or_default().clone()
    }

    fn scratch_path(&self, dir: &str) -> PathBuf {
        self.root
            .join(dir)
            .join(format!("{:016x}", fastrand::u64(..)))
    }

    /// A git command on a mirror. GIT_DIR is explicit so git never wanders into a parent
    /// repository when the mirror is damaged.
    fn git<'a>(path: &Path, args: &[&'a str], timeout: Duration) -> Git<'a> {
        Git::new(args, timeout)
            .in_dir(Path::new("/"))
            .env("GIT_DIR", path.display().to_string())
    }

    async fn healthy(path: &Path) -> bool {
        match Self::git(
            path,
            &["rev-parse", "--is-bare-repository"],
            OPERATION_TIMEOUT,
        )
        .run()
        .await
        {
            Ok(out) => out.stdout.starts_with(b"true"),
            Err(_) => false,
        }
    }

    /// The mirror of a repository, or `NotCloned`.
    async fn cloned_path(&self, repo: &str) -> Result<PathBuf, GitError> {
        let path = self.mirror_path(repo)?;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            Ok(path)
        } else {
            Err(GitError::NotCloned(repo.to_string()))
        }
    }

    async fn discard(&self, path: &Path) -> Result<(), GitError> {
        let trash = self.scratch_path(".trash");
        tokio::fs::rename(path, &trash).await?;
        tokio::spawn(async move {
            if let Err(e) = tokio::fs::remove_dir_all(&trash).await {
                tracing::warn!(path = %trash.display(), error = %e, "could not delete discarded mirror");
            }
        });
        Ok(())
    }

    async fn clone_into_place(
        &self,
        path: &Path,
        url: &str,
        timeout: Duration,
    ) -> Result<(), GitError> {
        let tmp = self.scratch_path(".tmp");
        let tmp_arg = tmp.display().to_string();
        let result = Git::new(
            &["clone", "--mirror", "--quiet", "--", url, &tmp_arg],
            timeout,
        )
        .in_dir(&self.root)
        .run()
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            return Err(e);
        }
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(&tmp, path).await?;
        Ok(())
    }

    async fn refs_snapshot(path: &Path) -> Result<Vec<u8>, GitError> {
        Ok(Self::git(
            path,
            &["for-each-ref", "--format=%(objectname) %(refname)"],
            OPERATION_TIMEOUT,
        )
        .run()
        .await?
        .stdout)
    }

    async fn fetch(path: &Path, url: &str, timeout: Duration) -> Result<bool, GitError> {
        let current = Self::output_line(path, &["config", "--get", "remote.origin.url"]).await;
        if current.as_deref() != Some(url) {
            Self::git(
                path,
                &["remote", "set-url", "origin", url],
                OPERATION_TIMEOUT,
            )
            .run()
            .await?;
        }
        let before = Self::refs_snapshot(path).await?;
        Self::git(path, &["fetch", "--prune", "--quiet", "origin"], timeout)
            .run()
            .await?;
        let after = Self::refs_snapshot(path).await?;
        Ok(before != after)
    }

    /// The first line git prints, or None when it fails or prints nothing.
    async fn output_line(path: &Path, args: &[&str]) -> Option<String> {
        let out = Self::git(path, args, OPERATION_TIMEOUT).run().await.ok()?;
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!line.is_empty()).then_some(line)
    }

    /// The mirror's state after a sync: its default branch, and its head commit with the commit's
    /// time.
    async fn synced(path: &Path, changed: bool, recloned: bool) -> SyncResult {
        let default_branch =
            Self::output_line(path, &["symbolic-ref", "--quiet", "--short", "HEAD"]).await;
        let head = Self::output_line(path, &["log", "-1", "--format=%H %ct", "HEAD", "--"]).await;
        let (head_commit, head_committed_at) = match head.as_deref().and_then(|l| l.split_once(' '))
        {
            Some((commit, time)) => (Some(commit.to_string()), time.parse().ok()),
            None => (None, None),
        };
        SyncResult {
            changed,
            recloned,
            default_branch,
            head_commit,
            head_committed_at,
        }
    }
}

/// Git failing on a revision means the revision is not there.
fn revision_not_found(error: GitError, repo: &str, rev: &str) -> GitError {
    match error {
        GitError::Command(_) => GitError::RevisionNotFound {
            repo: repo.to_string(),
            rev: rev.to_string(),
        },
        other => other,
    }
}

fn validate_remote_url(url: &str) -> Result<(), GitError> {
    if url.is_empty() || url.starts_with('-') || url.chars().any(char::is_control) {
        return Err(GitError::InvalidArgument(format!(
            "{url:?} is not a valid remote URL"
        )));
    }
    Ok(())
}

const LOG_FORMAT: &str = "--format=%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B%x00";

fn parse_commits(stdout: &[u8]) -> Vec<Commit> {
    let text = String::from_utf8_lossy(stdout);
    let fields: Vec<&str> = text.split('\0').collect();
    fields
        .chunks(10)
        .filter(|chunk| chunk.len() >= 9)
        .map(|f| Commit {
            oid: f[0].trim_start_matches('\n').to_string(),
            parents: f[1].split_whitespace().map(str::to_string).collect(),
            author: Signature {
                name: f[2].to_string(),
                email: f[3].to_string(),
                date: f[4].to_string(),
            },
            committer: Signature {
                name: f[5].to_string(),
                email: f[6].to_string(),
                date: f[7].to_string(),
            },
            message: f[8].trim_end().to_string(),
        })
        .collect()
}

fn parse_tree(stdout: &[u8]) -> Vec<TreeEntry> {
    stdout
        .split(|b| *b == 0)
        .filter(|record| !record.is_empty())
        .filter_map(|record| {
            let record = String::from_utf8_lossy(record);
            let (meta, path) = record.split_once('\t')?;
            let mut parts = meta.split_whitespace();
            let mode = parts.next()?;
            let kind = parts.next()?;
            let oid = parts.next()?.to_string();
            let size = parts.next().and_then(|s| s.parse().ok());
            let kind = match (kind, mode) {
                ("tree", _) => EntryKind::Directory,
                ("commit", _) => EntryKind::Submodule,
                (_, "120000") => EntryKind::Symlink,
                _ => EntryKind::File,
            };
            Some(TreeEntry {
                name: path.rsplit('/').next().unwrap_or(path).to_string(),
                path: path.to_string(),
                kind,
                oid,
                size,
            })
        })
        .collect()
}

/// The pkt-line header git's smart HTTP puts before a ref advertisement.
fn service_header() -> Bytes {
    let line = "# service=git-upload-pack\n";
    let mut out = BytesMut::new();
    out.put_slice(format!("{:04x}", line.len() + 4).as_bytes());
    out.put_slice(line.as_bytes());
    out.put_slice(b"0000");
    out.freeze()
}

#[async_trait]
impl GitService for LocalGitService {
    async fn sync(
        &self,
        repo: &str,
        remote_url: &str,
        timeout: Duration,
    ) -> Result<SyncResult, GitError> {
        let path = self.mirror_path(repo)?;
        validate_remote_url(remote_url)?;
        let lock = self.lock_for(repo);
        let _guard = lock.lock().await;
        let mut recloned = false;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            if Self::healthy(&path).await {
                match Self::fetch(&path, remote_url, timeout).await {
                    Ok(changed) => return Ok(Self::synced(&path, changed, recloned).await),
                    Err(GitError::Command(message))
                        if DAMAGE_SIGNS.iter().any(|s| message.contains(s)) =>
                    {
                        tracing::warn!(repo, error = %message, "mirror damaged; cloning it again");
                    }
                    Err(e) => return Err(e),
                }
            } else {
                tracing::warn!(
                    repo,
                    "mirror is not a usable git repository; cloning it again"
                );
            }
            self.discard(&path).await?;
            recloned = true;
        }
        self.clone_into_place(&path, remote_url, timeout).await?;
        Ok(Self::synced(&path, true, recloned).await)
    }

    async fn is_cloned(&self, repo: &str) -> Result<bool, GitError> {
        let path = self.mirror_path(repo)?;
        Ok(tokio::fs::try_exists(&path).await.unwrap_or(false) && Self::healthy(&path).await)
    }

    async fn remove(&self, repo: &str) -> Result<(), GitError> {
        let path = self.mirror_path(repo)?;
        let lock = self.lock_for(repo);
        let _guard = lock.lock().await;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            self.discard(&path).await?;
        }
        Ok(())
    }

    async fn resolve_revision(&self, repo: &str, rev: &str) -> Result<String, GitError> {
        validate_revision(rev)?;
        let path = self.cloned_path(repo).await?;
        let spec = format!("{rev}^{{commit}}");
        let out = Self::git(
            &path,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &spec,
            ],
            OPERATION_TIMEOUT,
        )
        .run()
        .await
        .map_err(|e| revision_not_found(e, repo, rev))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    async fn commit(&self, repo: &str, rev: &str) -> Result<Commit, GitError> {
        let mut commits = self.commit_log(repo, rev, 1).await?;
        commits.pop().ok_or_else(|| GitError::RevisionNotFound {
            repo: repo.to_string(),
            rev: rev.to_string(),
        })
    }

    async fn list_refs(&self, repo: &str) -> Result<Vec<GitRef>, GitError> {
        let path = self.cloned_path(repo).await?;
        let out = Self::git(
            &path,
            &[
                "for-each-ref",
                "--format=%(refname)%00%(objectname)%00%(*objectname)",
                "refs/heads",
                "refs/tags",
            ],
            OPERATION_TIMEOUT,
        )
        .run()
        .await?;
        Ok(parse_refs(&out.stdout))
    }

    async fn commit_log(
        &self,
        repo: &str,
        rev: &str,
        limit: usize,
    ) -> Result<Vec<Commit>, GitError> {
        let oid = self.resolve_revision(repo, rev).await?;
        let path = self.cloned_path(repo).await?;
        let limit = format!("--max-count={limit}");
        let out = Self::git(
            &path,
            &["log", "-z", LOG_FORMAT, &limit, &oid, "--"],
            OPERATION_TIMEOUT,
        )
        .run()
        .await?;
        Ok(parse_commits(&out.stdout))
    }

    async fn list_tree(
        &self,
        repo: &str,
        commit: &str,
        path: &str,
    ) -> Result<Vec<TreeEntry>, GitError> {
        validate_oid(commit)?;
        validate_path(path)?;
        let mirror = self.cloned_path(repo).await?;
        let dir = path.trim_end_matches('/');
        let pathspec = format!("{dir}/");
        let mut args = vec!["ls-tree", "-z", "--long", "--full-tree", commit];
        if !dir.is_empty() {
            args.extend(["--", &pathspec]);
        }
        let out = Self::git(&mirror, &args, OPERATION_TIMEOUT)
            .run()
            .await
            .map_err(|e| match e {
                GitError::Command(_) => GitError::RevisionNotFound {
                    repo: repo.to_string(),
                    rev: commit.to_string(),
                },
                other => other,
            })?;
        let entries = parse_tree(&out.stdout);
        if entries.is_empty() && !dir.is_empty() {
            return Err(GitError::PathNotFound {
                path: dir.to_string(),
                commit: commit.to_string(),
            });
        }
        Ok(entries)
    }

    async fn read_file(&self, repo: &str, commit: &str, path: &str) -> Result<Bytes, GitError> {
        validate_oid(commit)?;
        validate_path(path)?;
        let mirror = self.cloned_path(repo).await?;
        let object = format!("{commit}:{path}");
        let out = Self::git(&mirror, &["cat-file", "blob", &object], OPERATION_TIMEOUT)
            .run()
            .await
            .map_err(|e| match e {
                GitError::Command(_) => GitError::PathNotFound {
                    path: path.to_string(),
                    commit: commit.to_string(),
                },
                other => other,
            })?;
        Ok(Bytes::from(out.stdout))
    }

    async fn list_files(&self, repo: &str, commit: &str) -> Result<Vec<TreeEntry>, GitError> {
        validate_oid(commit)?;
        let mirror = self.cloned_path(repo).await?;
        let out = Self::git(
            &mirror,
            &["ls-tree", "-r", "-z", "--long", "--full-tree", commit],
            OPERATION_TIMEOUT,
        )
        .run()
        .await
        .map_err(|e| revision_not_found(e, repo, commit))?;
        Ok(parse_tree(&out.stdout)
            .into_iter()
            .filter(|e| e.kind == EntryKind::File)
            .collect())
    }

    async fn read_blobs(&self, repo: &str, oids: Vec<String>) -> Result<ByteStream, GitError> {
        for oid in &oids {
            validate_oid(oid)?;
        }
        let mirror = self.cloned_path(repo).await?;
        // SHA-256 repositories are left to git.
        if oids.iter().all(|oid| oid.len() == 40) {
            return Ok(crate::objects::read_blobs(mirror.join("objects"), oids));
        }
        let mut request = oids.join("\n");
        request.push('\n');
        Self::git(&mirror, &["cat-file", "--batch"], OPERATION_TIMEOUT)
            .stdin(Bytes::from(request))
            .stream()
    }

    async fn archive(&self, repo: &str, commit: &str) -> Result<ByteStream, GitError> {
        validate_oid(commit)?;
        let mirror = self.cloned_path(repo).await?;
        // Resolve first so that a missing commit is a clear error, not a truncated stream.
        self.resolve_revision(repo, commit).await?;
        Self::git(
            &mirror,
            &["archive", "--format=tar", commit],
            OPERATION_TIMEOUT,
        )
        .stream()
    }

    async fn diff(&self, repo: &str, base: &str, head: &str) -> Result<String, GitError> {
        validate_oid(base)?;
        validate_oid(head)?;
        let mirror = self.cloned_path(repo).await?;
        let out = Self::git(
            &mirror,
            &[
                "diff",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                base,
                head,
                "--",
            ],
            OPERATION_TIMEOUT,
        )
        .run()
        .await?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn upload_pack_advertisement(
        &self,
        repo: &str,
        git_protocol: Option<&str>,
    ) -> Result<Bytes, GitError> {
        let mirror = self.cloned_path(repo).await?;
        let mirror_arg = mirror.display().to_string();
        let mut git = Git::new(
            &[
                "upload-pack",
                "--stateless-rpc",
                "--advertise-refs",
                &mirror_arg,
            ],
            OPERATION_TIMEOUT,
        );
        if let Some(protocol) = git_protocol {
            validate_git_protocol(protocol)?;
            git = git.env("GIT_PROTOCOL", protocol.to_string());
        }
        let out = git.run().await?;
        let mut body = BytesMut::from(&service_header()[..]);
        body.put_slice(&out.stdout);
        Ok(body.freeze())
    }

    async fn upload_pack(
        &self,
        repo: &str,
        git_protocol: Option<&str>,
        request: Bytes,
    ) -> Result<ByteStream, GitError> {
        let mirror = self.cloned_path(repo).await?;
        let mirror_arg = mirror.display().to_string();
        let mut git = Git::new(
            &["upload-pack", "--stateless-rpc", &mirror_arg],
            OPERATION_TIMEOUT,
        )
        .stdin(request);
        if let Some(protocol) = git_protocol {
            validate_git_protocol(protocol)?;
            git = git.env("GIT_PROTOCOL", protocol.to_string());
        }
        git.stream()
    }

    async fn ping(&self) -> Result<(), GitError> {
        tokio::fs::metadata(self.root.join(".tmp")).await?;
        Ok(())
    }
}

/// Reads `for-each-ref` lines of `name NUL object NUL peeled-object`: branches first, then tags,
/// each sorted by name (git's order).
fn parse_refs(out: &[u8]) -> Vec<GitRef> {
    let mut refs: Vec<GitRef> = String::from_utf8_lossy(out)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\0');
            let name = fields.next()?;
            let object = fields.next()?;
            let peeled = fields.next().filter(|p| !p.is_empty());
            Some(GitRef {
                name: name.to_string(),
                commit: peeled.unwrap_or(object).to_string(),
            })
        })
        .collect();
    refs.sort_by_key(|r| r.is_tag());
    refs
}
