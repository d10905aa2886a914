//! A gitserver as a separate process: the HTTP routes `quarry gitserver` serves, and the client
//! that implements [`GitService`] over them. Operations are `POST /git-api/<op>` with a JSON body;
//! errors travel as the serialized [`GitError`], so callers see the same error either way.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bytes::Bytes;
use futures_util::TryStreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::secret::{require_internal_secret, service_url};
use crate::service::{Commit, GitRef, SyncResult, TreeEntry};
use crate::{ByteStream, GitError, GitService, LocalGitService, smart_http};

#[derive(Serialize, Deserialize)]
struct SyncRequest {
    repo: String,
    url: String,
    timeout_secs: u64,
}

#[derive(Serialize, Deserialize)]
struct RepoRequest {
    repo: String,
}

#[derive(Serialize, Deserialize)]
struct RevRequest {
    repo: String,
    rev: String,
    #[serde(default)]
    limit: usize,
}

#[derive(Serialize, Deserialize)]
struct PathRequest {
    repo: String,
    commit: String,
    #[serde(default)]
    path: String,
}

#[derive(Serialize, Deserialize)]
struct BlobsRequest {
    repo: String,
    oids: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct DiffRequest {
    repo: String,
    base: String,
    head: String,
}

#[derive(Clone)]
struct ServerState {
    git: Arc<LocalGitService>,
    secret: Option<Arc<str>>,
}

/// The routes of a standalone gitserver. With a secret, every route but `/-/healthz` requires
/// `Authorization: Bearer <secret>`.
pub fn router(git: Arc<LocalGitService>, secret: Option<String>) -> axum::Router {
    let state = ServerState {
        git,
        secret: secret.map(Arc::from),
    };
    let protected = axum::Router::new()
        .route("/-/readyz", get(readyz))
        .route("/git-api/{op}", post(operation))
        .route("/git/{*tail}", any(smart_http_route))
        .layer(DefaultBodyLimit::max(smart_http::MAX_UPLOAD_PACK_REQUEST))
        .layer(middleware::from_fn_with_state(
            state.secret.clone(),
            require_internal_secret,
        ));
    axum::Router::new()
        .route("/-/healthz", get(|| async { "ok\n" }))
        .merge(protected)
        .with_state(state)
}

async fn readyz(State(state): State<ServerState>) -> Response {
    match state.git.ping().await {
        Ok(()) => "ok\n".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

async fn smart_http_route(
    State(state): State<ServerState>,
    request: smart_http::SmartHttpRequest,
) -> Response {
    request.answer(state.git.as_ref()).await
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, GitError> {
    serde_json::from_slice(body)
        .map_err(|e| GitError::InvalidArgument(format!("malformed request: {e}")))
}

fn json_result<T: Serialize>(result: Result<T, GitError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(e) => wire_error(&e),
    }
}

fn stream_result(result: Result<ByteStream, GitError>) -> Response {
    match result {
        Ok(stream) => Body::from_stream(stream).into_response(),
        Err(e) => wire_error(&e),
    }
}

fn wire_error(error: &GitError) -> Response {
    let status =
        StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(error)).into_response()
}

async fn operation(
    State(state): State<ServerState>,
    Path(op): Path<String>,
    body: Bytes,
) -> Response {
    let git = state.git.as_ref();
    let result = async {
        Ok::<Response, GitError>(match op.as_str() {
            "sync" => {
                let r: SyncRequest = parse(&body)?;
                json_result(
                    git.sync(&r.repo, &r.url, Duration::from_secs(r.timeout_secs))
                        .await,
                )
            }
            "is_cloned" => json_result(git.is_cloned(&parse::<RepoRequest>(&body)?.repo).await),
            "remove" => json_result(git.remove(&parse::<RepoRequest>(&body)?.repo).await),
            "resolve" => {
                let r: RevRequest = parse(&body)?;
                json_result(git.resolve_revision(&r.repo, &r.rev).await)
            }
            "commit" => {
                let r: RevRequest = parse(&body)?;
                json_result(git.commit(&r.repo, &r.rev).await)
            }
            "refs" => json_result(git.list_refs(&parse::<RepoRequest>(&body)?.repo).await),
            "log" => {
                let r: RevRequest = parse(&body)?;
                json_result(git.commit_log(&r.repo, &r.rev, r.limit).await)
            }
            "tree" => {
                let r: PathRequest = parse(&body)?;
                json_result(git.list_tree(&r.repo, &r.commit, &r.path).await)
            }
            "file" => {
                let r: PathRequest = parse(&body)?;
                match git.read_file(&r.repo, &r.commit, &r.path).await {
                    Ok(bytes) => bytes.into_response(),
                    Err(e) => wire_error(&e),
                }
            }
            "archive" => {
                let r: PathRequest = parse(&body)?;
                stream_result(git.archive(&r.repo, &r.commit).await)
            }
            "files" => {
                let r: PathRequest = parse(&body)?;
                json_result(git.list_files(&r.repo, &r.commit).await)
            }
            "blobs" => {
                let r: BlobsRequest = parse(&body)?;
                stream_result(git.read_blobs(&r.repo, r.oids).await)
            }
            "diff" => {
                let r: DiffRequest = parse(&body)?;
                json_result(git.diff(&r.repo, &r.base, &r.head).await)
            }
            other => wire_error(&GitError::InvalidArgument(format!(
                "unknown gitserver operation {other:?}"
            ))),
        })
    }
    .await;
    result.unwrap_or_else(|e| wire_error(&e))
}

/// A [`GitService`] on another process, reached over HTTP.
pub struct HttpGitClient {
    base: String,
    client: reqwest::Client,
    secret: Option<String>,
}

/// Time allowed for operations other than clone and fetch.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);

impl HttpGitClient {
    /// `address` is `host:port` or a full `http://` URL.
    pub fn new(address: &str, secret: Option<String>) -> Self {
        let base = service_url(address);
        HttpGitClient {
            base,
            client: reqwest::Client::new(),
            secret,
        }
    }

    pub fn address(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match &self.secret {
            Some(secret) => builder.bearer_auth(secret),
            None => builder,
        }
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<reqwest::Response, GitError> {
        let response = builder
            .send()
            .await
            .map_err(|e| GitError::Unavailable(format!("{}: {e}", self.base)))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        Err(
            serde_json::from_slice::<GitError>(&body).unwrap_or_else(|_| {
                GitError::Unavailable(format!(
                    "{} answered {status}: {}",
                    self.base,
                    String::from_utf8_lossy(&body).trim()
                ))
            }),
        )
    }

    async fn call_raw(
        &self,
        op: &str,
        body: &impl Serialize,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, GitError> {
        let mut builder = self
            .request(reqwest::Method::POST, &format!("/git-api/{op}"))
            .json(body);
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }
        self.send(builder).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        op: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<T, GitError> {
        self.call_raw(op, body, Some(timeout))
            .await?
            .json()
            .await
            .map_err(|e| GitError::Unavailable(format!("{}: bad answer: {e}", self.base)))
    }
}

fn into_stream(response: reqwest::Response) -> ByteStream {
    Box::pin(response.bytes_stream().map_err(std::io::Error::other))
}

fn rev(repo: &str, rev: &str, limit: usize) -> RevRequest {
    RevRequest {
        repo: repo.to_string(),
        rev: rev.to_string(),
        limit,
    }
}

fn at_path(repo: &str, commit: &str, path: &str) -> PathRequest {
    PathRequest {
        repo: repo.to_string(),
        commit: commit.to_string(),
        path: path.to_string(),
    }
}

#[async_trait]
impl GitService for HttpGitClient {
    async fn sync(
        &self,
        repo: &str,
        remote_url: &str,
        timeout: Duration,
    ) -> Result<SyncResult, GitError> {
        let request = SyncRequest {
            repo: repo.to_string(),
            url: remote_url.to_string(),
            timeout_secs: timeout.as_secs().max(1),
        };
        self.call("sync", &request, timeout + Duration::from_secs(30))
            .await
    }

    async fn is_cloned(&self, repo: &str) -> Result<bool, GitError> {
        let request = RepoRequest {
            repo: repo.to_string(),
        };
        self.call("is_cloned", &request, CLIENT_TIMEOUT).await
    }

    async fn remove(&self, repo: &str) -> Result<(), GitError> {
        let request = RepoRequest {
            repo: repo.to_string(),
        };
        self.call("remove", &request, CLIENT_TIMEOUT).await
    }

    async fn resolve_revision(&self, repo: &str, rev_: &str) -> Result<String, GitError> {
        self.call("resolve", &rev(repo, rev_, 0), CLIENT_TIMEOUT)
            .await
    }

    async fn commit(&self, repo: &str, rev_: &str) -> Result<Commit, GitError> {
        self.call("commit", &rev(repo, rev_, 0), CLIENT_TIMEOUT)
            .await
    }

    async fn list_refs(&self, repo: &str) -> Result<Vec<GitRef>, GitError> {
        let request = RepoRequest {
            repo: repo.to_string(),
        };
        self.call("refs", &request, CLIENT_TIMEOUT).await
    }

    async fn commit_log(
        &self,
        repo: &str,
        rev_: &str,
        limit: usize,
    ) -> Result<Vec<Commit>, GitError> {
        self.call("log", &rev(repo, rev_, limit), CLIENT_TIMEOUT)
            .await
    }

    async fn list_tree(
        &self,
        repo: &str,
        commit: &str,
        path: &str,
    ) -> Result<Vec<TreeEntry>, GitError> {
        self.call("tree", &at_path(repo, commit, path), CLIENT_TIMEOUT)
            .await
    }

    async fn read_file(&self, repo: &str, commit: &str, path: &str) -> Result<Bytes, GitError> {
        self.call_raw("file", &at_path(repo, commit, path), Some(CLIENT_TIMEOUT))
            .await?
            .bytes()
            .await
            .map_err(|e| GitError::Unavailable(format!("{}: {e}", self.base)))
    }

    async fn archive(&self, repo: &str, commit: &str) -> Result<ByteStream, GitError> {
        let response = self
            .call_raw("archive", &at_path(repo, commit, ""), None)
            .await?;
        Ok(into_stream(response))
    }

    async fn list_files(&self, repo: &str, commit: &str) -> Result<Vec<TreeEntry>, GitError> {
        self.call("files", &at_path(repo, commit, ""), CLIENT_TIMEOUT)
            .await
    }

    async fn read_blobs(&self, repo: &str, oids: Vec<String>) -> Result<ByteStream, GitError> {
        let request = BlobsRequest {
            repo: repo.to_string(),
            oids,
        };
        Ok(into_stream(self.call_raw("blobs", &request, None).await?))
    }

    async fn diff(&self, repo: &str, base: &str, head: &str) -> Result<String, GitError> {
        let request = DiffRequest {
            repo: repo.to_string(),
            base: base.to_string(),
            head: head.to_string(),
        };
        self.call("diff", &request, CLIENT_TIMEOUT).await
    }

    async fn upload_pack_advertisement(
        &self,
        repo: &str,
        git_protocol: Option<&str>,
    ) -> Result<Bytes, GitError> {
        let mut builder = self.request(
            reqwest::Method::GET,
            &format!("/git/{repo}/info/refs?service=git-upload-pack"),
        );
        if let Some(protocol) = git_protocol {
            builder = builder.header("git-protocol", protocol);
        }
        let response = self.send_smart(builder, repo).await?;
        response
            .bytes()
            .await
            .map_err(|e| GitError::Unavailable(format!("{}: {e}", self.base)))
    }

    async fn upload_pack(
        &self,
        repo: &str,
        git_protocol: Option<&str>,
        request: Bytes,
    ) -> Result<ByteStream, GitError> {
        let mut builder = self
            .request(
                reqwest::Method::POST,
                &format!("/git/{repo}/git-upload-pack"),
            )
            .header(
                header::CONTENT_TYPE.as_str(),
                "application/x-git-upload-pack-request",
            )
            .body(request);
        if let Some(protocol) = git_protocol {
            builder = builder.header("git-protocol", protocol);
        }
        Ok(into_stream(self.send_smart(builder, repo).await?))
    }

    async fn ping(&self) -> Result<(), GitError> {
        self.send(
            self.request(reqwest::Method::GET, "/-/readyz")
                .timeout(Duration::from_secs(5)),
        )
        .await
        .map(|_| ())
    }
}

impl HttpGitClient {
    /// Smart HTTP answers errors as plain text; a 404 means the repository is not cloned there.
    async fn send_smart(
        &self,
        builder: reqwest::RequestBuilder,
        repo: &str,
    ) -> Result<reqwest::Response, GitError> {
        let response = builder
            .send()
            .await
            .map_err(|e| GitError::Unavailable(format!("{}: {e}", self.base)))?;
        match response.status() {
            s if s.is_success() => Ok(response),
            StatusCode::NOT_FOUND => Err(GitError::NotCloned(repo.to_string())),
            StatusCode::BAD_REQUEST => Err(GitError::InvalidArgument(
                response.text().await.unwrap_or_default().trim().to_string(),
            )),
            s => Err(GitError::Unavailable(format!(
                "{} answered {s}: {}",
                self.base,
                response.text().await.unwrap_or_default().trim()
            ))),
        }
    }
}

/// A listener whose connections send small writes at once. Answers go out in pieces (server-sent
/// events, chunked bodies); with Nagle's algorithm on, a kept-alive connection waited for the
/// peer's delayed acknowledgement, 40 ms per answer.
pub fn without_nagle(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    fn no_delay(stream: &mut tokio::net::TcpStream) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot turn off Nagle's algorithm on a connection");
        }
    }
    axum::serve::ListenerExt::tap_io(listener, no_delay as fn(&mut tokio::net::TcpStream))
}

/// Serves a standalone gitserver until `shutdown` completes; requests in flight then finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    git: Arc<LocalGitService>,
    secret: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(without_nagle(listener), router(git, secret))
        .with_graceful_shutdown(shutdown)
        .await
}
