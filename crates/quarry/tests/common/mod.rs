//! Running the real `quarry` binary on loopback ports, and talking to it as a client would.

#![allow(dead_code)] // Each test binary uses its own part of these helpers.

pub mod browser;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use quarry_store::testing::PostgresTestDatabase;
use serde_json::{Value, json};

/// How long a test waits for a condition before it fails.
pub const DEADLINE: Duration = Duration::from_secs(90);

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_quarry")
}

/// A free loopback port (bound, then released for the process under test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until a Quarry process answers `/-/healthz` at `host:port`.
pub async fn wait_until_healthy(address: &str) {
    let started = Instant::now();
    while reqwest::get(format!("http://{address}/-/healthz"))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < DEADLINE,
            "{address} never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The databases every end-to-end scenario runs on: the embedded default, and PostgreSQL when
/// `QUARRY_TEST_DATABASE_URL` names a server.
pub enum Database {
    Embedded,
    Postgres(PostgresTestDatabase),
}

impl Database {
    pub async fn all() -> Vec<Database> {
        let mut all = vec![Database::Embedded];
        if let Some(postgres) = PostgresTestDatabase::create().await {
            all.push(Database::Postgres(
                postgres.expect("create PostgreSQL test database"),
            ));
        }
        all
    }

    pub fn args(&self) -> Vec<String> {
        match self {
            Database::Embedded => Vec::new(),
            Database::Postgres(db) => vec!["--database-url".into(), db.url.clone()],
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Database::Embedded => "SQLite",
            Database::Postgres(_) => "PostgreSQL",
        }
    }

    pub async fn cleanup(self) {
        if let Database::Postgres(db) = self {
            db.drop().await.expect("drop PostgreSQL test database");
        }
    }
}

/// The runtime executors in tests use: the sandbox where bubblewrap is installed and the tests
/// run as root (for step cgroups), else the shell; CI (`QUARRY_REQUIRE_TOOLS`) must have the
/// sandbox.
pub fn executor_runtime() -> &'static str {
    let bwrap = Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    // SAFETY: geteuid has no preconditions.
    if bwrap && unsafe { libc::geteuid() } == 0 {
        return "bubblewrap";
    }
    assert!(
        std::env::var_os("QUARRY_REQUIRE_TOOLS").is_none(),
        "bubblewrap and root are required (QUARRY_REQUIRE_TOOLS is set)"
    );
    "shell"
}

/// A running `quarry serve`.
pub struct Instance {
    child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// An access token of the site admin `admin`, which every request of `client` carries.
    pub token: String,
    client: reqwest::Client,
    /// What it was started with, to start it again on the same port.
    port: u16,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// The site admin every test instance is initialised with.
pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "a long test password";

/// A client that carries this access token.
pub fn client_with_token(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("token {token}").parse().expect("a header value"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("an HTTP client")
}

/// Signs in through a browser's routes: (session cookie header value, CSRF token, user id).
pub async fn browser_sign_in(url: &str, name: &str, password: &str) -> (String, String, String) {
    let response = reqwest::Client::new()
        .post(format!("{url}/-/sign-in"))
        .json(&json!({ "email": name, "password": password }))
        .send()
        .await
        .expect("POST /-/sign-in");
    session_of(response).await
}

/// The session a sign-in, sign-up or site-init answer started.
pub async fn session_of(response: reqwest::Response) -> (String, String, String) {
    let status = response.status();
    let cookie = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    let body: Value = response.json().await.unwrap_or_default();
    let cookie = cookie.unwrap_or_else(|| panic!("no session ({status}): {body}"));
    (
        cookie,
        body["csrfToken"].as_str().unwrap_or_default().to_string(),
        body["user"]["id"].as_str().unwrap_or_default().to_string(),
    )
}

/// Creates an access token through GraphQL with a browser session.
pub async fn token_for_session(url: &str, session: &(String, String, String)) -> String {
    let (cookie, csrf, user_id) = session;
    let answer: Value = reqwest::Client::new()
        .post(format!("{url}/.api/graphql"))
        .header(reqwest::header::COOKIE, cookie)
        .header("X-Csrf-Token", csrf)
        .json(&json!({
            "query": "mutation($user: ID!) { createAccessToken(user: $user, scopes: [\"user:all\"], note: \"tests\") { token } }",
            "variables": { "user": user_id },
        }))
        .send()
        .await
        .expect("POST /.api/graphql")
        .json()
        .await
        .expect("GraphQL answers JSON");
    answer["data"]["createAccessToken"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {answer}"))
        .to_string()
}

/// Initialises a fresh instance with the site admin `admin` (or signs in on one that already has
/// it) and returns an access token of that admin.
pub async fn admin_token(url: &str) -> String {
    let init = reqwest::Client::new()
        .post(format!("{url}/-/site-init"))
        .json(
            &json!({ "username": ADMIN, "email": "admin@example.com", "password": ADMIN_PASSWORD }),
        )
        .send()
        .await
        .expect("POST /-/site-init");
    let session = if init.status() == 409 {
        browser_sign_in(url, ADMIN, ADMIN_PASSWORD).await
    } else {
        session_of(init).await
    };
    token_for_session(url, &session).await
}

impl Instance {
    /// Starts `quarry serve` with these extra arguments and waits until it answers.
    pub async fn serve(data_dir: &Path, args: &[String], env: &[(&str, &str)]) -> Instance {
        let port = free_port();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let mut instance = Instance {
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_path_buf(),
            log: data_dir.with_extension(format!("{port}.log")),
            token: String::new(),
            client: reqwest::Client::new(),
            port,
            args: args.to_vec(),
            env,
        };
        instance.start();
        instance.wait_healthy().await;
        instance.token = admin_token(&instance.url).await;
        instance.client = client_with_token(&instance.token);
        instance
    }

    fn start(&mut self) {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open log file");
        let stdout =
            std::fs::File::create(self.log.with_extension("out")).expect("create output file");
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .env_remove("QUARRY_DATABASE_URL")
            .env_remove("QUARRY_GITSERVERS")
            .stdout(stdout)
            .stderr(stderr);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        self.child = Some(command.spawn().expect("start quarry serve"));
    }

    /// Stops the process (SIGTERM) and starts it again on the same port and data.
    pub async fn restart(&mut self) {
        assert!(
            self.terminate(),
            "quarry did not stop cleanly; log:\n{}",
            self.log_text()
        );
        self.start();
        self.wait_healthy().await;
    }

    /// The site admin's client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The instance's git URL of a repository, with the admin's token as the password.
    pub fn git_url(&self, repo: &str) -> String {
        let authority = self.url.trim_start_matches("http://");
        format!(
            "http://{ADMIN}:{}@{authority}/.internal/git/{repo}",
            self.token
        )
    }

    async fn wait_healthy(&self) {
        let started = Instant::now();
        loop {
            let health = self.client.get(format!("{}/-/healthz", self.url)).send();
            if health.await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "quarry did not become healthy; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the process printed on its standard output.
    pub fn output_text(&self) -> String {
        std::fs::read_to_string(self.log.with_extension("out")).unwrap_or_default()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("GET")
    }

    /// The Prometheus exposition at `/metrics`.
    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.expect("metrics")
    }

    /// Runs a GraphQL request and returns the whole response (`data` and `errors`).
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        graphql_as(&self.client, &self.url, query, variables).await
    }

    /// Runs a GraphQL request that must succeed, and returns its `data`.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let response = self.graphql(query, variables).await;
        assert!(
            response.get("errors").is_none(),
            "GraphQL errors: {response}"
        );
        response["data"].clone()
    }

    /// Polls a query until `done` holds for its data.
    pub async fn wait_for(
        &self,
        query: &str,
        variables: Value,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let data = self.data(query, variables.clone()).await;
            if done(&data) {
                return data;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "condition not reached; last answer {data}\nlog:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The repositories as the API lists them, by name.
    pub async fn repositories(&self) -> Vec<Value> {
        let data = self.data(REPOSITORIES, json!({})).await;
        data["repositories"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until no repository is cloning or waiting for its first clone.
    pub async fn wait_settled(&self, expected: usize) -> Vec<Value> {
        let data = self
            .wait_for(REPOSITORIES, json!({}), |data| {
                let nodes = data["repositories"]["nodes"].as_array();
                nodes.is_some_and(|nodes| {
                    nodes.len() == expected
                        && nodes.iter().all(|n| {
                            let status = n["mirrorInfo"]["cloneStatus"].as_str().unwrap_or("");
                            status == "CLONED" || status == "FAILED"
                        })
                })
            })
            .await;
        data["repositories"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        // SAFETY: kill(2) on the pid of a child this test started and has not yet reaped.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.crash();
    }
}

pub const REPOSITORIES: &str = r#"{
  repositories(first: 100) {
    totalCount
    nodes {
      id name url
      mirrorInfo { cloned cloneInProgress cloneStatus lastError updatedAt }
      defaultBranch { name displayName target { oid } }
    }
  }
}"#;

/// The node of a repository in a listing.
pub fn repo<'a>(nodes: &'a [Value], name: &str) -> &'a Value {
    nodes
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("repository {name} not listed in {nodes:?}"))
}

/// Runs git in a directory and returns its trimmed output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Runs a search through the stream API and returns every event as (name, data).
pub async fn stream(instance: &Instance, query: &str) -> Vec<(String, Value)> {
    let response = stream_response(&instance.client, &instance.url, query).await;
    assert_eq!(
        response.status(),
        200,
        "{query}: {}",
        response.text().await.unwrap_or_default()
    );
    let body = response.text().await.expect("stream body");
    let mut parser = quarry_client::SseParser::default();
    parser
        .push(body.as_bytes())
        .into_iter()
        .map(|(name, data)| {
            let value =
                serde_json::from_str(&data).unwrap_or_else(|e| panic!("{name}: {e}: {data}"));
            (name, value)
        })
        .collect()
}

/// Waits until searches no longer report repositories searched without their index.
pub async fn wait_indexed(instance: &Instance) {
    let started = std::time::Instant::now();
    loop {
        let events = stream(instance, "count:1 needle").await;
        let unindexed = events.iter().any(|(name, data)| {
            name == "progress"
                && data["skipped"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["reason"] == "repository-unindexed"))
        });
        if !unindexed {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "repositories were never indexed:\n{}",
            instance.log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The matches of a search, flattened.
pub async fn matches(instance: &Instance, query: &str) -> Vec<Value> {
    stream(instance, query)
        .await
        .into_iter()
        .filter(|(name, _)| name == "matches")
        .flat_map(|(_, data)| data.as_array().cloned().unwrap_or_default())
        .collect()
}

/// (repository, path, 0-based line) of every content match.
pub fn matched_lines(matches: &[Value]) -> std::collections::BTreeSet<(String, String, u64)> {
    let mut lines = std::collections::BTreeSet::new();
    for found in matches.iter().filter(|m| m["type"] == "content") {
        for chunk in found["chunkMatches"].as_array().into_iter().flatten() {
            lines.insert((
                found["repository"].as_str().unwrap_or("").to_string(),
                found["path"].as_str().unwrap_or("").to_string(),
                chunk["contentStart"]["line"].as_u64().unwrap_or(0),
            ));
        }
    }
    lines
}

/// Runs a GraphQL request as this client and returns the whole answer (`data` and `errors`).
pub async fn graphql_as(
    client: &reqwest::Client,
    url: &str,
    query: &str,
    variables: Value,
) -> Value {
    client
        .post(format!("{url}/.api/graphql"))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("POST /.api/graphql")
        .json()
        .await
        .expect("GraphQL answers JSON")
}

/// The whole answer of the stream API to a query with `cl` lines of context, as this client.
pub async fn stream_with_context(
    client: &reqwest::Client,
    url: &str,
    query: &str,
    context: &str,
) -> String {
    client
        .get(format!("{url}/.api/search/stream"))
        .query(&[("q", query), ("cl", context)])
        .send()
        .await
        .expect("GET /.api/search/stream")
        .text()
        .await
        .expect("events")
}

/// Starts a search through the stream API as this client.
pub async fn stream_response(
    client: &reqwest::Client,
    url: &str,
    query: &str,
) -> reqwest::Response {
    client
        .get(format!("{url}/.api/search/stream"))
        .query(&[("q", query)])
        .send()
        .await
        .expect("GET /.api/search/stream")
}

/// Runs `promtool check metrics` (Debian's `prometheus` package). `.ci/run` installs it and sets
/// QUARRY_REQUIRE_TOOLS so that CI never passes without it.
pub fn check_with_promtool(metrics: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var_os("QUARRY_REQUIRE_TOOLS").is_none(),
                "promtool is required here: {e}"
            );
            eprintln!(
                "promtool not installed ({e}); install Debian's prometheus package to check the exposition format"
            );
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(metrics.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool ends");
    // Sourcegraph names two queue gauges with `_total`; dashboards expect those names, so the
    // linter's one remark about them is accepted, and nothing else.
    const SOURCEGRAPH_NAMES: [&str; 2] = [
        "src_executor_total non-counter metrics should not have \"_total\" suffix",
        "src_executor_queued_duration_seconds_total non-counter metrics should not have \"_total\" suffix",
    ];
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let problems: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !SOURCEGRAPH_NAMES.contains(&line.trim()))
        .collect();
    assert!(
        problems.is_empty() && (output.status.success() || text.contains("_total")),
        "promtool: {text}"
    );
}

/// `quarry executor run` against `url` with the executors' shared secret, taking `codeintel`
/// jobs into workspaces under `workspaces`, in the sandbox when this host has one; callers add
/// their own settings and output.
pub fn executor_command(url: &str, secret: &str, workspaces: &Path) -> Command {
    let mut command = Command::new(binary());
    command
        .args(["executor", "run"])
        .env("EXECUTOR_FRONTEND_URL", url)
        .env("EXECUTOR_FRONTEND_PASSWORD", secret)
        .env("EXECUTOR_QUEUE_NAME", "codeintel")
        .env("EXECUTOR_MAXIMUM_NUM_JOBS", "2")
        .env("EXECUTOR_WORKSPACE_ROOT", workspaces)
        .env("EXECUTOR_SANDBOX", executor_runtime());
    command
}

/// The instance's index jobs, newest first, with the latest attempt's step logs.
pub async fn precise_indexes(instance: &Instance) -> Vec<Value> {
    let data = instance
        .data(
            "{ preciseIndexes(first: 1000) { nodes { id state failure inputCommit inputIndexer steps { key exitCode out } } } }",
            json!({}),
        )
        .await;
    data["preciseIndexes"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
