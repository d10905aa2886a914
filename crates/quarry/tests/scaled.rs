//! Scaled mode: gitserver shards in their own processes, repositories placed by rendezvous hashing.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Instance, git, repo};
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
        let started = Instant::now();
        while reqwest::get(format!("http://{address}/-/healthz"))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < common::DEADLINE,
                "gitserver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
                &format!("{}/.internal/git/{name}", instance.url),
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
