//! The OCI distribution protocol, read side: manifests and blobs by name, with registries'
//! token authentication (anonymous, or with credentials from a Docker config's `auths`).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::ImageError;

/// What a manifest request accepts: OCI and Docker manifests and their multi-platform lists.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest or index read.
pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;

pub struct Client {
    http: reqwest::Client,
    /// Registry host → base64 `user:password`, from a Docker config.
    credentials: HashMap<String, String>,
    /// (registry URL, repository) → bearer token.
    tokens: Mutex<HashMap<(String, String), String>>,
}

/// Reads a Docker config's `auths` (`{"auths": {"host": {"auth": "<base64 user:password>"}}}`).
pub fn parse_auth_config(text: &str) -> Result<HashMap<String, String>, ImageError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        auth: String,
        #[serde(default)]
        username: String,
        #[serde(default)]
        password: String,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        auths: HashMap<String, Entry>,
    }
    let config: Config = serde_json::from_str(text)
        .map_err(|e| ImageError::Registry(format!("the Docker auth config is not valid: {e}")))?;
    Ok(config
        .auths
        .into_iter()
        .map(|(host, entry)| {
            let host = host
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let auth = if entry.auth.is_empty() {
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", entry.username, entry.password))
            } else {
                entry.auth
            };
            (host, auth)
        })
        .collect())
}

/// The `key="value"` parameters of a `WWW-Authenticate` challenge.
fn challenge_parameters(header: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = header.split_once(' ').map_or("", |(_, rest)| rest);
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((value, remaining)) => (value, remaining),
                None => (quoted, ""),
            },
            None => after.split_once(',').unwrap_or((after, "")),
        };
        out.insert(key, value.to_string());
        rest = remaining;
    }
    out
}

fn host_of(url: &str) -> &str {
    url.split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default()
}

impl Client {
    pub fn new(credentials: HashMap<String, String>) -> Result<Client, ImageError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("quarry-executor/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| ImageError::Registry(e.to_string()))?;
        Ok(Client {
            http,
            credentials,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    fn credential_for(&self, base: &str) -> Option<&String> {
        let host = host_of(base);
        self.credentials.get(host).or_else(|| {
            (host == "registry-1.docker.io")
                .then(|| {
                    self.credentials
                        .get("index.docker.io")
                        .or_else(|| self.credentials.get("docker.io"))
                })
                .flatten()
        })
    }

    /// A token for pulling `repository`, as the challenge asks.
    async fn token(&self, challenge: &str, repository: &str) -> Result<String, ImageError> {
        let parameters = challenge_parameters(challenge);
        let realm = parameters.get("realm").ok_or_else(|| {
            ImageError::Registry(format!(
                "the registry's challenge names no realm: {challenge}"
            ))
        })?;
        let scope = parameters
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{repository}:pull"));
        let mut request = self.http.get(realm).query(&[("scope", scope.as_str())]);
        if let Some(service) = parameters.get("service") {
            request = request.query(&[("service", service.as_str())]);
        }
        if let Some(credential) = self.credential_for(realm) {
            request = request.header("authorization", format!("Basic {credential}"));
        }
        let response = request
            .send()
            .await
            .map_err(|e| ImageError::Registry(format!("{realm}: {e}")))?;
        if !response.status().is_success() {
            return Err(ImageError::Registry(format!(
                "{realm}: the registry refused a pull token for {repository}: {}",
                response.status()
            )));
        }
        #[derive(serde::Deserialize)]
        struct Token {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let token: Token = response
            .json()
            .await
            .map_err(|e| ImageError::Registry(format!("{realm}: {e}")))?;
        Ok(if token.token.is_empty() {
            token.access_token
        } else {
            token.token
        })
    }

    /// GET `<base>/v2/<repository>/<path>`, authenticating when the registry asks.
    pub async fn get(
        &self,
        base: &str,
        repository: &str,
        path: &str,
        accept: &str,
    ) -> Result<reqwest::Response, ImageError> {
        let url = format!("{base}/v2/{repository}/{path}");
        let key = (base.to_string(), repository.to_string());
        let mut authorization = self
            .tokens
            .lock()
            .ok()
            .and_then(|tokens| tokens.get(&key).map(|t| format!("Bearer {t}")));
        for attempt in 0..2 {
            let mut request = self.http.get(&url).header("accept", accept);
            if let Some(value) = &authorization {
                request = request.header("authorization", value);
            }
            let response = request
                .send()
                .await
                .map_err(|e| ImageError::Registry(format!("{url}: {e}")))?;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                let challenge = response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                if challenge.to_ascii_lowercase().starts_with("bearer") {
                    let token = self.token(&challenge, repository).await?;
                    if let Ok(mut tokens) = self.tokens.lock() {
                        tokens.insert(key.clone(), token.clone());
                    }
                    authorization = Some(format!("Bearer {token}"));
                    continue;
                }
                if let Some(credential) = self.credential_for(base) {
                    authorization = Some(format!("Basic {credential}"));
                    continue;
                }
            }
            if !response.status().is_success() {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                let body: String = body.chars().take(300).collect();
                return Err(ImageError::Registry(format!("{url}: {status}: {body}")));
            }
            return Ok(response);
        }
        Err(ImageError::Registry(format!(
            "{url}: the registry refused the credentials it asked for"
        )))
    }

    /// A manifest or index and the digest of its bytes.
    pub async fn manifest(
        &self,
        base: &str,
        repository: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String), ImageError> {
        let mut response = self
            .get(
                base,
                repository,
                &format!("manifests/{reference}"),
                MANIFEST_TYPES,
            )
            .await?;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ImageError::Registry(e.to_string()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_MANIFEST {
                return Err(ImageError::Registry(format!(
                    "{repository}:{reference}: the manifest is larger than {MAX_MANIFEST} bytes"
                )));
            }
        }
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        Ok((body, digest))
    }

    /// Downloads a blob to `target`, checking its size and digest.
    pub async fn blob(
        &self,
        base: &str,
        repository: &str,
        digest: &str,
        size: u64,
        target: &Path,
    ) -> Result<(), ImageError> {
        let mut response = self
            .get(
                base,
                repository,
                &format!("blobs/{digest}"),
                "application/octet-stream",
            )
            .await?;
        let mut file = std::fs::File::create(target)
            .map_err(|e| ImageError::Cache(format!("{}: {e}", target.display())))?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ImageError::Registry(format!("{digest}: {e}")))?
        {
            written += chunk.len() as u64;
            if written > size {
                return Err(ImageError::Registry(format!(
                    "{digest}: the registry sent more than the {size} bytes the manifest names"
                )));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .map_err(|e| ImageError::Cache(format!("{}: {e}", target.display())))?;
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest {
            return Err(ImageError::Registry(format!(
                "{digest}: the registry sent a blob whose digest is {actual}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_auth_configs_are_read() {
        let parameters = challenge_parameters(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(parameters["realm"], "https://auth.docker.io/token");
        assert_eq!(parameters["service"], "registry.docker.io");
        assert_eq!(parameters["scope"], "repository:library/alpine:pull");
        let auths = parse_auth_config(
            r#"{"auths": {"https://index.docker.io/v1/": {"auth": "dTpw"}, "ghcr.io": {"username": "u", "password": "p"}}}"#,
        )
        .expect("config");
        assert_eq!(auths["index.docker.io"], "dTpw");
        assert_eq!(auths["ghcr.io"], "dTpw");
        assert!(parse_auth_config("{").is_err());
    }
}
