//! A server killed with SIGKILL during a clone recovers when started again, and never reports a
//! half-made mirror as cloned.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Instance, repo};
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
