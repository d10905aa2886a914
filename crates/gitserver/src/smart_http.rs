//! Read-only git smart HTTP (`info/refs` and `git-upload-pack`) over any [`GitService`], so that
//! `git clone` works from a mirror wherever it lives.

use std::io::Read;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, RawQuery, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::{GitError, GitService};

/// The largest (decompressed) negotiation request accepted.
pub const MAX_UPLOAD_PACK_REQUEST: usize = 64 * 1024 * 1024;

/// A smart HTTP request as a route mounted with a `{*tail}` wildcard receives it.
pub struct SmartHttpRequest {
    /// The path below the mount point: `<repo>/info/refs` or `<repo>/git-upload-pack`.
    pub tail: String,
    query: Option<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for SmartHttpRequest {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let Path(tail) = Path::<String>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let RawQuery(query) = RawQuery::from_request_parts(&mut parts, state)
            .await
            .map_err(|never| match never {})?;
        let method = parts.method.clone();
        let headers = parts.headers.clone();
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(SmartHttpRequest {
            tail,
            query,
            method,
            headers,
            body,
        })
    }
}

impl SmartHttpRequest {
    /// The repository the request names, if it is a smart HTTP path at all.
    pub fn repo(&self) -> Option<&str> {
        split_repo(&self.tail)
    }

    /// Answers the request from `git`. Who may read which repository is the caller's decision,
    /// made before this is called.
    pub async fn answer(self, git: &dyn GitService) -> Response {
        serve(
            git,
            &self.tail,
            self.query.as_deref(),
            &self.method,
            &self.headers,
            self.body,
        )
        .await
    }
}

async fn serve(
    git: &dyn GitService,
    tail: &str,
    query: Option<&str>,
    method: &Method,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let protocol = headers
        .get("git-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(repo) = tail.strip_suffix("/info/refs") {
        if method != Method::GET {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "use GET for info/refs");
        }
        let service = query
            .unwrap_or("")
            .split('&')
            .find_map(|pair| pair.strip_prefix("service="));
        match service {
            Some("git-upload-pack") => {}
            Some("git-receive-pack") => {
                return plain(StatusCode::FORBIDDEN, "this git endpoint is read-only");
            }
            _ => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "only the smart protocol is served: add ?service=git-upload-pack",
                );
            }
        }
        return match git
            .upload_pack_advertisement(repo_name(repo), protocol.as_deref())
            .await
        {
            Ok(advertisement) => Response::builder()
                .header(
                    header::CONTENT_TYPE,
                    "application/x-git-upload-pack-advertisement",
                )
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::from(advertisement))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
            Err(e) => error_response(&e),
        };
    }
    if let Some(repo) = tail.strip_suffix("/git-upload-pack") {
        if method != Method::POST {
            return plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "use POST for git-upload-pack",
            );
        }
        let request = match decode_body(headers, body) {
            Ok(request) => request,
            Err(message) => return plain(StatusCode::BAD_REQUEST, &message),
        };
        return match git
            .upload_pack(repo_name(repo), protocol.as_deref(), request)
            .await
        {
            Ok(stream) => Response::builder()
                .header(header::CONTENT_TYPE, "application/x-git-upload-pack-result")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
            Err(e) => error_response(&e),
        };
    }
    if tail.ends_with("/git-receive-pack") {
        return plain(StatusCode::FORBIDDEN, "this git endpoint is read-only");
    }
    plain(StatusCode::NOT_FOUND, "not a git smart HTTP path")
}

/// The repository a smart HTTP path names; `name.git` is accepted for `name`.
pub fn repo_name(path: &str) -> &str {
    path.strip_suffix(".git").unwrap_or(path)
}

/// Splits a smart HTTP path below the mount point into the repository name and the git endpoint.
pub fn split_repo(tail: &str) -> Option<&str> {
    ["/info/refs", "/git-upload-pack", "/git-receive-pack"]
        .iter()
        .find_map(|suffix| tail.strip_suffix(suffix))
        .map(repo_name)
}

fn decode_body(headers: &HeaderMap, body: Bytes) -> Result<Bytes, String> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match encoding {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => {
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .take(MAX_UPLOAD_PACK_REQUEST as u64 + 1)
                .read_to_end(&mut decoded)
                .map_err(|e| format!("request body is not valid gzip: {e}"))?;
            if decoded.len() > MAX_UPLOAD_PACK_REQUEST {
                return Err("request body is too large".into());
            }
            Ok(Bytes::from(decoded))
        }
        other => Err(format!("unsupported Content-Encoding {other:?}")),
    }
}

fn plain(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

/// The HTTP response for a git error: its status and message as plain text.
pub fn error_response(error: &GitError) -> Response {
    let status =
        StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    plain(status, &error.to_string())
}
