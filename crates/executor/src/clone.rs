//! A job's repository in its workspace. Fetches go through a local proxy: git talks to a
//! loopback port of this process, which adds the job's token on the way to the instance's
//! `/.executors/git/` route, so no credential is ever on git's command line, in its config or in
//! the workspace.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use crate::ExecutorError;
use crate::api::{Client, Job};

/// The largest request git sends through the proxy (a fetch's list of wants and haves).
const MAX_GIT_REQUEST: usize = 64 * 1024 * 1024;

/// How long a clone may take.
const CLONE_TIMEOUT: Duration = Duration::from_secs(600);

/// Clones tried before the job fails (the instance may be restarting).
const CLONE_TRIES: u32 = 5;

/// Headers passed through in each direction.
const PASSED: [&str; 4] = ["content-type", "git-protocol", "accept", "content-encoding"];

#[derive(Clone)]
struct ProxyState {
    http: reqwest::Client,
    upstream: String,
    token: String,
    job_id: String,
    executor: String,
}

async fn forward(State(proxy): State<ProxyState>, request: Request) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let method = request.method().clone();
    let mut outgoing = proxy
        .http
        .request(method, format!("{}{path}", proxy.upstream))
        .bearer_auth(&proxy.token)
        .header("X-Sourcegraph-Job-ID", &proxy.job_id)
        .header("X-Sourcegraph-Executor-Name", &proxy.executor);
    for name in PASSED {
        if let Some(value) = request.headers().get(name) {
            outgoing = outgoing.header(name, value);
        }
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_GIT_REQUEST).await {
        Ok(body) => body,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request too large").into_response(),
    };
    let answer = match outgoing.body(body).send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for name in PASSED {
        if let Some(value) = answer.headers().get(name) {
            response = response.header(HeaderName::from_static(name), value.as_bytes());
        }
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// Runs git with a timeout, failing with its message.
async fn git(args: &[&str], dir: &Path) -> Result<(), ExecutorError> {
    let run = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(CLONE_TIMEOUT, run)
        .await
        .map_err(|_| ExecutorError::Workspace(format!("git {} timed out", args[0])))?
        .map_err(|e| ExecutorError::Workspace(format!("cannot run git: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(ExecutorError::Workspace(format!(
            "git {} failed: {}",
            args[0],
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Holds an exclusive `flock` on a file while alive (other executors of the host wait on it).
struct FileLock {
    _file: std::fs::File,
}

async fn lock_file(path: PathBuf) -> Result<FileLock, ExecutorError> {
    tokio::task::spawn_blocking(move || {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ExecutorError::Workspace(format!("{}: {e}", path.display())))?;
        // SAFETY: flock on a descriptor this function owns; released when the file closes.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(ExecutorError::Workspace(format!(
                "cannot lock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            )));
        }
        Ok(FileLock { _file: file })
    })
    .await
    .map_err(|e| ExecutorError::Workspace(e.to_string()))?
}

/// Bare mirrors of the repositories jobs name, one per instance and repository, shared by the
/// executors of a host. A job's commit is fetched through its proxy only when the mirror lacks
/// it; the workspace borrows the mirror's objects (git's alternates), so making it costs one
/// local `git read-tree`. Mirrors only ever gain objects, so a workspace's objects stay valid.
pub struct Mirrors {
    root: PathBuf,
    /// Which instance the mirrors are of: repositories of two instances may share names.
    instance: String,
    /// One fetch per mirror at a time within this process (a file lock orders processes).
    fetching: std::sync::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    /// Commits known to be in their mirror, which spares asking git again.
    present: std::sync::Mutex<HashSet<(PathBuf, String)>>,
}

impl Mirrors {
    pub fn new(root: PathBuf, instance: &str) -> Result<Mirrors, ExecutorError> {
        std::fs::create_dir_all(&root)
            .map_err(|e| ExecutorError::Workspace(format!("{}: {e}", root.display())))?;
        Ok(Mirrors {
            root,
            instance: instance.to_string(),
            fetching: std::sync::Mutex::new(HashMap::new()),
            present: std::sync::Mutex::new(HashSet::new()),
        })
    }

    /// The mirror of a repository: a readable name and a digest that tells instances apart.
    fn mirror_of(&self, repository: &str) -> PathBuf {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{}\n{repository}", self.instance));
        let readable: String = repository
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .take(40)
            .collect();
        self.root
            .join(format!("{readable}-{}.git", hex::encode(&digest[..8])))
    }

    /// Makes `target` a work tree of the job's commit; answers the mirror holding its objects,
    /// which steps must be able to read.
    pub async fn checkout(
        &self,
        client: &Client,
        executor: &str,
        job: &Job,
        target: &Path,
    ) -> Result<PathBuf, ExecutorError> {
        let full_hash = matches!(job.commit.len(), 40 | 64)
            && job.commit.chars().all(|c| c.is_ascii_hexdigit());
        if !full_hash {
            return Err(ExecutorError::Workspace(format!(
                "the job's commit {:?} is not a full commit hash",
                job.commit
            )));
        }
        let mirror = self.mirror_of(&job.repository_name);
        let key = (mirror.clone(), job.commit.clone());
        let known = self.present.lock().is_ok_and(|p| p.contains(&key));
        if !known {
            self.fetch_if_missing(client, executor, job, &mirror)
                .await?;
            if let Ok(mut present) = self.present.lock() {
                present.insert(key.clone());
            }
        }
        let git_dir = target.join(".git");
        let objects = mirror.join("objects");
        let files: [(&str, String); 3] = [
            ("HEAD", format!("{}\n", job.commit)),
            (
                "config",
                "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n".into(),
            ),
            (
                "objects/info/alternates",
                format!("{}\n", objects.to_string_lossy()),
            ),
        ];
        for dir in ["objects/info", "refs/heads", "refs/tags"] {
            std::fs::create_dir_all(git_dir.join(dir))
                .map_err(|e| ExecutorError::Workspace(format!("{}: {e}", git_dir.display())))?;
        }
        for (name, content) in files {
            std::fs::write(git_dir.join(name), content)
                .map_err(|e| ExecutorError::Workspace(format!("{}: {e}", git_dir.display())))?;
        }
        if let Err(e) = git(&["read-tree", "-u", "--reset", &job.commit], target).await {
            // The mirror may have been removed under us: look again next time.
            if let Ok(mut present) = self.present.lock() {
                present.remove(&key);
            }
            return Err(e);
        }
        Ok(mirror)
    }

    /// Fetches the repository into its mirror unless the mirror has the job's commit already.
    async fn fetch_if_missing(
        &self,
        client: &Client,
        executor: &str,
        job: &Job,
        mirror: &Path,
    ) -> Result<(), ExecutorError> {
        if has_commit(mirror, &job.commit).await {
            return Ok(());
        }
        let lock = self
            .fetching
            .lock()
            .map(|mut locks| locks.entry(mirror.to_path_buf()).or_default().clone())
            .map_err(|_| ExecutorError::Workspace("the mirror lock is poisoned".into()))?;
        let _in_process = lock.lock().await;
        let _across_processes = lock_file(mirror.with_extension("lock")).await?;
        if !has_commit(mirror, &job.commit).await {
            if !mirror.join("HEAD").exists() {
                let text = mirror.to_string_lossy().into_owned();
                git(&["init", "--quiet", "--bare", &text], &self.root).await?;
            }
            fetch(client, executor, job, mirror).await?;
            if !has_commit(mirror, &job.commit).await {
                return Err(ExecutorError::Workspace(format!(
                    "commit {} is not in {}",
                    job.commit, job.repository_name
                )));
            }
        }
        Ok(())
    }
}

async fn has_commit(mirror: &Path, commit: &str) -> bool {
    if !mirror.join("HEAD").exists() {
        return false;
    }
    let object = format!("{commit}^{{commit}}");
    git(&["cat-file", "-e", &object], mirror).await.is_ok()
}

/// Fetches the repository's branches and tags into its mirror through a proxy that adds the
/// job's token.
async fn fetch(
    client: &Client,
    executor: &str,
    job: &Job,
    mirror: &Path,
) -> Result<(), ExecutorError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| ExecutorError::Workspace(format!("cannot start the git proxy: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| ExecutorError::Workspace(e.to_string()))?;
    let state = ProxyState {
        http: reqwest::Client::new(),
        upstream: format!("{}/.executors/git", client.base()),
        token: job.token.clone(),
        job_id: job.id.to_string(),
        executor: executor.to_string(),
    };
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let server = tokio::spawn(async move {
        let app = Router::new().fallback(forward).with_state(state);
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await;
    });
    let url = format!("http://{address}/{}", job.repository_name);
    let arguments = [
        "fetch",
        "--quiet",
        "--no-tags",
        "--force",
        &url,
        "+refs/heads/*:refs/heads/*",
        "+refs/tags/*:refs/tags/*",
    ];
    let mut tries = 0;
    let fetched = loop {
        tries += 1;
        match git(&arguments, mirror).await {
            Ok(()) => break Ok(()),
            Err(e) if tries >= CLONE_TRIES => break Err(e),
            Err(e) => {
                tracing::warn!(job = job.id, error = %e, "fetch failed; trying again");
                tokio::time::sleep(Duration::from_secs(u64::from(tries))).await;
            }
        }
    };
    stop.cancel();
    let _ = server.await;
    fetched
}
