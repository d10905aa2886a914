//! A server killed with SIGKILL during a clone or while writing its index recovers when started
//! again: it never reports a half-made mirror as cloned, and never serves a half-written index.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Instance, matches, repo, wait_indexed};
use quarry_gitserver::testing::TestRepo;
use quarry_gitserver::{GitService, LocalGitService};
use serde_json::json;

/// Accepts connections and never answers, so a clone from it hangs mid-way.
async fn hanging_server(
    listener: tokio::net::TcpListener,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut held = Vec::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => {
                if let Ok((socket, _)) = accepted {
                    held.push(socket);
                }
            }
        }
    }
}

#[tokio::test]
async fn sigkill_mid_clone_then_restart_recovers() {
    let work = tempfile::tempdir().unwrap();
    let quick = TestRepo::init(&work.path().join("code/quick")).unwrap();
    quick.commit(&[("q", "q")], "q").unwrap();

    // The slow repository is served over HTTP from a port that first hangs, and later serves
    // the repository for real.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop_hanging = tokio_util::sync::CancellationToken::new();
    let hang = tokio::spawn(hanging_server(listener, stop_hanging.clone()));
    let slow_url = format!("http://{address}/git/slow");

    let data_dir = work.path().join("data");
    let args = [
        work.path().join("code").display().to_string(),
        slow_url.clone(),
    ];
    let mut first = Instance::serve(&data_dir, &args, &[]).await;
    first
        .wait_for(common::REPOSITORIES, json!({}), |data| {
            let nodes = data["repositories"]["nodes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            nodes.len() == 2
                && nodes.iter().any(|n| {
                    n["name"] == "127.0.0.1/git/slow" && n["mirrorInfo"]["cloneInProgress"] == true
                })
                && nodes
                    .iter()
                    .any(|n| n["name"] == "quick" && n["mirrorInfo"]["cloned"] == true)
        })
        .await;
    let tmp = data_dir.join("repos/.tmp");
    let started = std::time::Instant::now();
    while std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(
            started.elapsed() < common::DEADLINE,
            "git never started the clone"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.crash();
    assert!(!data_dir.join("repos/127.0.0.1/git/slow.git").exists());

    // The origin comes back for real, as a gitserver holding the repository.
    stop_hanging.cancel();
    hang.await.unwrap();
    let origin = TestRepo::init(&work.path().join("slow-origin")).unwrap();
    let head = origin.commit(&[("s", "s")], "slow").unwrap();
    let serving = Arc::new(LocalGitService::open(&work.path().join("origin-server")).unwrap());
    serving
        .sync(
            "slow",
            &origin.path.display().to_string(),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    tokio::spawn(quarry_gitserver::http::serve(
        listener,
        serving,
        None,
        std::future::pending(),
    ));

    let second = Instance::serve(&data_dir, &args, &[]).await;
    let early = second.repositories().await;
    let slow = repo(&early, "127.0.0.1/git/slow");
    if slow["mirrorInfo"]["cloneStatus"] == "CLONED" {
        // Only a clone finished by this run may be reported, and then it is complete.
        assert_eq!(
            slow["defaultBranch"]["target"]["oid"],
            head.as_str(),
            "{slow}"
        );
    }
    let nodes = second.wait_settled(2).await;
    let slow = repo(&nodes, "127.0.0.1/git/slow");
    assert_eq!(
        slow["mirrorInfo"]["cloned"],
        true,
        "{slow}\n{}",
        second.log_text()
    );
    assert_eq!(slow["defaultBranch"]["target"]["oid"], head.as_str());
    assert_eq!(repo(&nodes, "quick")["mirrorInfo"]["cloned"], true);
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "the half-made clone was cleared"
    );
}

/// The files under `dir` that are being written (a temporary name, renamed once complete).
fn files_being_written(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_being_written(&path));
        } else if path
            .extension()
            .is_some_and(|e| e.to_string_lossy().starts_with("tmp"))
        {
            found.push(path);
        }
    }
    found
}

/// The paths of a search's matches.
async fn found_paths(instance: &Instance, query: &str) -> Vec<String> {
    let mut paths: Vec<String> = matches(instance, query)
        .await
        .iter()
        .map(|m| m["path"].as_str().unwrap_or_default().to_string())
        .collect();
    paths.sort();
    paths
}

#[tokio::test]
async fn sigkill_while_writing_the_index_then_restart_serves_an_intact_index() {
    let work = tempfile::tempdir().unwrap();
    let code = work.path().join("code");
    let big = TestRepo::init(&code.join("big")).unwrap();
    big.commit(&[("kept.rs", "fn kept_marker() {}\n")], "first")
        .unwrap();
    let data_dir = work.path().join("data");
    let args = [code.display().to_string()];
    let mut first = Instance::serve(&data_dir, &args, &[]).await;
    first.wait_settled(1).await;
    wait_indexed(&first).await;
    assert_eq!(found_paths(&first, "kept_marker").await, ["kept.rs"]);

    // A commit large enough that its shard takes a while to write; the server is killed as soon
    // as a file of the index is being written.
    let files: Vec<(String, String)> = (0..150)
        .map(|i| {
            let text: String = (0..1500)
                .map(|j| {
                    format!(
                        "fn later_{i}_{j}(x: u64) -> u64 {{ x ^ {} }}\n",
                        i * 7919 + j
                    )
                })
                .collect();
            (format!("src/later_{i}.rs"), text)
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let head = big.commit(&refs, "later").unwrap();
    let index_dir = data_dir.join("index");
    let pid = first.pid() as i32;
    let watcher = std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < common::DEADLINE {
            let writing = files_being_written(&index_dir);
            if !writing.is_empty() {
                // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                return writing;
            }
        }
        Vec::new()
    });
    let id = first
        .data("{ repository(name: \"big\") { id } }", json!({}))
        .await["repository"]["id"]
        .clone();
    first
        .data(
            "mutation($id: ID!) { updateMirrorRepository(repository: $id) { alwaysNil } }",
            json!({"id": id}),
        )
        .await;
    let caught = watcher.join().unwrap();
    assert!(
        !caught.is_empty(),
        "no index file was ever seen being written:\n{}",
        first.log_text()
    );
    first.crash();

    // Started again, it serves what it had (or the new commit), never a damaged index, and
    // finishes indexing the new commit.
    let second = Instance::serve(&data_dir, &args, &[]).await;
    let events = common::stream(&second, "kept_marker").await;
    assert!(events.iter().all(|(name, _)| name != "error"), "{events:?}");
    assert_eq!(found_paths(&second, "kept_marker").await, ["kept.rs"]);
    let started = Instant::now();
    while found_paths(&second, "case:yes later_149_1499").await != ["src/later_149.rs"] {
        assert!(
            started.elapsed() < common::DEADLINE,
            "the new commit was never searched:\n{}",
            second.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_indexed(&second).await;
    let indexed = second
        .data(
            "{ repository(name: \"big\") { defaultBranch { target { oid } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        indexed["repository"]["defaultBranch"]["target"]["oid"],
        head.as_str()
    );
    assert_eq!(
        found_paths(&second, "case:yes later_0_0").await,
        ["src/later_0.rs"]
    );
    assert_eq!(found_paths(&second, "kept_marker").await, ["kept.rs"]);
    assert!(
        files_being_written(&data_dir.join("index")).is_empty(),
        "what the killed server was writing is cleared"
    );
}
