//! Scaled mode: gitserver shards in their own processes, repositories placed by rendezvous hashing.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Instance, git, repo, stream};
use quarry_gitserver::rendezvous_owner;
use quarry_gitserver::testing::TestRepo;

const SECRET: &str = "shared-internal-secret-for-tests";

struct Gitserver {
    child: Child,
    address: String,
    data_dir: std::path::PathBuf,
}

impl Gitserver {
    async fn start(data_dir: std::path::PathBuf) -> Gitserver {
        let address = format!("127.0.0.1:{}", common::free_port());
        let child = Command::new(common::binary())
            .args(["gitserver", "--listen", &address])
            .arg("--data-dir")
            .arg(&data_dir)
            .env("QUARRY_INTERNAL_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        common::wait_until_healthy(&address).await;
        Gitserver {
            child,
            address,
            data_dir,
        }
    }

    fn holds(&self, repo: &str) -> bool {
        self.data_dir.join(format!("repos/{repo}.git")).exists()
    }
}

struct Indexserver {
    child: Child,
}

impl Indexserver {
    async fn start(
        address: &str,
        all: &str,
        gitserver: &str,
        database: &str,
        data_dir: std::path::PathBuf,
    ) -> Indexserver {
        let child = Command::new(common::binary())
            .args([
                "indexserver",
                "--listen",
                address,
                "--indexservers",
                all,
                "--gitservers",
                gitserver,
            ])
            .args(["--database-url", database])
            .arg("--data-dir")
            .arg(&data_dir)
            .env("QUARRY_INTERNAL_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        common::wait_until_healthy(address).await;
        Indexserver { child }
    }
}

impl Drop for Indexserver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gitserver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn repositories_spread_over_gitserver_shards() {
    let work = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("repo{i}")).collect();
    for name in &names {
        TestRepo::init(&work.path().join("code").join(name))
            .unwrap()
            .commit(&[("README", name)], name)
            .unwrap();
    }
    let shards = [
        Gitserver::start(work.path().join("shard-a")).await,
        Gitserver::start(work.path().join("shard-b")).await,
    ];
    let addresses: Vec<String> = shards.iter().map(|s| s.address.clone()).collect();
    let list = addresses.join(",");
    let instance = Instance::serve(
        &work.path().join("frontend"),
        &[work.path().join("code").display().to_string()],
        &[
            ("QUARRY_GITSERVERS", &list),
            ("QUARRY_INTERNAL_SECRET", SECRET),
        ],
    )
    .await;
    let nodes = instance.wait_settled(names.len()).await;
    for name in &names {
        assert_eq!(repo(&nodes, name)["mirrorInfo"]["cloned"], true, "{name}");
        let owner = rendezvous_owner(&addresses, name).unwrap();
        assert!(shards[owner].holds(name), "{name} is on its owner");
        assert!(
            !shards[1 - owner].holds(name),
            "{name} is on one shard only"
        );
    }
    assert!(
        names
            .iter()
            .any(|n| rendezvous_owner(&addresses, n) == Some(0))
    );
    assert!(
        names
            .iter()
            .any(|n| rendezvous_owner(&addresses, n) == Some(1))
    );
    assert!(
        !work.path().join("frontend/repos").exists()
            || std::fs::read_dir(work.path().join("frontend/repos"))
                .unwrap()
                .count()
                == 0,
        "the frontend holds no mirrors of its own"
    );

    // Reads and git clone go through the owning shard.
    for name in &names {
        let clone = work.path().join("clones").join(name);
        git(
            work.path(),
            &[
                "clone",
                "--quiet",
                &instance.git_url(name),
                &clone.display().to_string(),
            ],
        );
        assert_eq!(
            std::fs::read_to_string(clone.join("README")).unwrap(),
            *name
        );
    }

    // A shard that is down makes the instance not ready, and says which.
    let [a, _b] = shards;
    let down = a.address.clone();
    drop(a);
    let ready = instance.get("/-/readyz").await;
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains(&down));
}

#[tokio::test]
async fn a_shard_refuses_callers_without_the_secret() {
    let work = tempfile::tempdir().unwrap();
    let shard = Gitserver::start(work.path().join("shard")).await;
    let client = reqwest::Client::new();
    let anonymous = client
        .post(format!("http://{}/git-api/resolve", shard.address))
        .json(&serde_json::json!({"repo": "x", "rev": "HEAD"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let health = client
        .get(format!("http://{}/-/healthz", shard.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// (repositories found, skipped reasons) of a search through the frontend.
async fn search_repos(instance: &Instance, query: &str) -> (Vec<String>, Vec<(String, String)>) {
    let events = stream(instance, query).await;
    let mut repos: Vec<String> = events
        .iter()
        .filter(|(name, _)| name == "matches")
        .flat_map(|(_, data)| data.as_array().cloned().unwrap_or_default())
        .map(|m| m["repository"].as_str().unwrap_or("").to_string())
        .collect();
    repos.sort();
    let (_, progress) = events.iter().rev().find(|(n, _)| n == "progress").unwrap();
    let skipped = progress["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["reason"].as_str().unwrap_or("").to_string(),
                s["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    (repos, skipped)
}

#[tokio::test]
async fn search_fans_out_to_index_servers_and_survives_one_down() {
    let work = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..6).map(|i| format!("svc{i}")).collect();
    for name in &names {
        TestRepo::init(&work.path().join("code").join(name))
            .unwrap()
            .commit(&[("main.rs", &format!("fn token_{name}() {{}}\n"))], name)
            .unwrap();
    }
    let gitserver = Gitserver::start(work.path().join("gitserver")).await;
    let index_addresses = [
        format!("127.0.0.1:{}", common::free_port()),
        format!("127.0.0.1:{}", common::free_port()),
    ];
    let all = index_addresses.join(",");
    let frontend_dir = work.path().join("frontend");
    let instance = Instance::serve(
        &frontend_dir,
        &[work.path().join("code").display().to_string()],
        &[
            ("QUARRY_GITSERVERS", &gitserver.address),
            ("QUARRY_INDEXSERVERS", &all),
            ("QUARRY_INTERNAL_SECRET", SECRET),
        ],
    )
    .await;
    instance.wait_settled(names.len()).await;
    let database = format!(
        "sqlite://{}?mode=rwc",
        frontend_dir.join("quarry.db").display()
    );
    let mut servers = Vec::new();
    for (address, dir) in index_addresses.iter().zip(["index-a", "index-b"]) {
        let data_dir = work.path().join(dir);
        servers
            .push(Indexserver::start(address, &all, &gitserver.address, &database, data_dir).await);
    }
    let second = servers.pop();

    let started = Instant::now();
    loop {
        let (repos, skipped) = search_repos(&instance, "token_ count:all").await;
        if repos == names
            && !skipped
                .iter()
                .any(|(reason, _)| reason == "repository-unindexed")
        {
            break;
        }
        assert!(
            started.elapsed() < common::DEADLINE,
            "index servers never answered for every repository: {repos:?} {skipped:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Each index server indexed only its own repositories.
    for (i, dir) in ["index-a", "index-b"].iter().enumerate() {
        let indexed = std::fs::read_dir(work.path().join(dir).join("index"))
            .unwrap()
            .count();
        let owned = names
            .iter()
            .filter(|n| rendezvous_owner(&index_addresses, n) == Some(i))
            .count();
        assert_eq!(indexed, owned, "{dir}");
    }

    // A repository restricted to nobody is absent from what a user's fanned-out search finds.
    let hidden = &names[0];
    let repo_id = common::repo(&instance.repositories().await, hidden)["id"].clone();
    instance
        .data(
            "mutation($r: ID!) { setRepositoryPermissionsUnrestricted(repositories: [$r], unrestricted: false) { alwaysNil } }",
            serde_json::json!({ "r": repo_id }),
        )
        .await;
    let signed_up = reqwest::Client::new()
        .post(format!("{}/-/sign-up", instance.url))
        .json(&serde_json::json!({ "username": "viewer", "email": "viewer@example.com", "password": "a long test password" }))
        .send()
        .await
        .unwrap();
    let session = common::session_of(signed_up).await;
    let user = common::client_with_token(&common::token_for_session(&instance.url, &session).await);
    let seen = common::stream_response(&user, &instance.url, "token_ count:all")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !seen.contains(&format!("token_{hidden}")),
        "{hidden} leaks: {seen}"
    );
    for visible in &names[1..] {
        assert!(
            seen.contains(&format!("token_{visible}")),
            "{visible} missing: {seen}"
        );
    }

    drop(second);
    let (repos, skipped) = search_repos(&instance, "token_ count:all").await;
    let expected: Vec<String> = names
        .iter()
        .filter(|n| rendezvous_owner(&index_addresses, n) == Some(0))
        .cloned()
        .collect();
    assert_eq!(
        repos, expected,
        "the query still answers from the server that is up"
    );
    let down = skipped
        .iter()
        .find(|(reason, _)| reason == "shard-unavailable")
        .expect("the server that is down is reported");
    assert!(down.1.contains(&index_addresses[1]), "{down:?}");
}
