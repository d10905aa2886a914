//! 200 jobs, 3 executors killed with SIGKILL at random and started again, and the instance
//! restarted once, on SQLite and PostgreSQL: every job ends completed, none is lost, none stays
//! processing, and the log each shows is from its final attempt.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{Database, Instance};
use quarry_gitserver::testing::TestRepo;
use serde_json::{Value, json};

const SECRET: &str = "the shared secret of the executors in tests";
const JOBS: usize = 200;
const EXECUTORS: usize = 3;

/// How long the whole scenario may take before the test gives up.
const SCENARIO_LIMIT: Duration = Duration::from_secs(600);

fn executor(url: &str, workspaces: &std::path::Path, log: &std::path::Path) -> Child {
    common::executor_command(url, SECRET, workspaces)
        .env("EXECUTOR_QUEUE_POLL_INTERVAL", "200ms")
        .env("EXECUTOR_HEARTBEAT_INTERVAL", "300ms")
        .env("EXECUTOR_SANDBOX_ROOTFS", "host")
        .env("SRC_PROF_HTTP", "")
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("log"),
        )
        .spawn()
        .expect("start an executor")
}

#[tokio::test]
async fn every_job_completes_once_through_executor_crashes_and_a_restart() {
    for database in Database::all().await {
        let name = database.name();
        let work = tempfile::tempdir().expect("temp dir");
        let code = work.path().join("code");
        TestRepo::init(&code.join("app"))
            .expect("init")
            .commit(&[("README.md", "app\n")], "first")
            .expect("commit");
        let config = work.path().join("site.json");
        std::fs::write(
            &config,
            json!({ "executors.accessToken": SECRET }).to_string(),
        )
        .expect("config");
        let mut args = vec![
            code.display().to_string(),
            "--site-config".into(),
            config.display().to_string(),
            "--job-stall-after".into(),
            "2s".into(),
        ];
        args.extend(database.args());
        let mut instance = Instance::serve(&work.path().join("data"), &args, &[]).await;
        let repos = instance.wait_settled(1).await;
        let repo = repos[0]["id"].as_str().expect("id").to_string();
        let job = json!({ "index_jobs": [{
            "indexer": "host",
            // A tiny SCIP index (metadata naming the tool `t`), uploaded after the step.
            "indexer_args": ["sh", "-c", "sleep 0.2; echo done-$((1 + 1)); printf '\\012\\005\\022\\003\\012\\001t' > index.scip"],
        }]})
        .to_string();
        let queue = "mutation($repo: ID!, $config: String) { queueAutoIndexJobsForRepo(repository: $repo, configuration: $config) { id } }";
        for _ in 0..JOBS {
            instance
                .data(queue, json!({ "repo": repo, "config": job }))
                .await;
        }

        let workspaces = work.path().join("workspaces");
        let log = work.path().join("executors.log");
        let mut executors: Vec<Child> = (0..EXECUTORS)
            .map(|_| executor(&instance.url, &workspaces, &log))
            .collect();
        let started = Instant::now();
        let (mut kills, mut restarted) = (0, false);
        loop {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let nodes = common::precise_indexes(&instance).await;
            let completed = nodes
                .iter()
                .filter(|n| n["state"] == "QUEUED_FOR_PROCESSING")
                .count();
            let errored: Vec<&Value> = nodes
                .iter()
                .filter(|n| n["state"] == "INDEXING_ERRORED")
                .collect();
            assert!(errored.is_empty(), "{name}: jobs failed: {errored:?}");
            if completed == JOBS {
                break;
            }
            assert!(
                started.elapsed() < SCENARIO_LIMIT,
                "{name}: {completed} of {JOBS} completed; executors' log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            if !restarted && completed >= JOBS / 2 {
                instance.restart().await;
                restarted = true;
            } else if kills < 6 && fastrand::u8(..) < 100 {
                let victim = fastrand::usize(..executors.len());
                let _ = executors[victim].kill();
                let _ = executors[victim].wait();
                executors[victim] = executor(&instance.url, &workspaces, &log);
                kills += 1;
            }
        }
        assert!(restarted, "{name}: the instance was restarted once");
        assert!(
            instance
                .log_text()
                .contains("stalled jobs put back in the queue"),
            "{name}: crashes interrupted jobs, which went back to the queue"
        );

        let nodes = common::precise_indexes(&instance).await;
        assert_eq!(nodes.len(), JOBS, "{name}: no job lost and none added");
        for node in &nodes {
            assert_eq!(node["state"], "QUEUED_FOR_PROCESSING", "{name}: {node}");
            let steps = node["steps"].as_array().cloned().unwrap_or_default();
            assert_eq!(
                steps.len(),
                2,
                "{name}: the final attempt's log only (indexer, upload): {node}"
            );
            assert_eq!(steps[0]["exitCode"], json!(0), "{name}: {node}");
            assert!(
                steps[0]["out"].as_str().unwrap_or("").contains("done-2"),
                "{name}: {node}"
            );
        }
        for mut executor in executors {
            let _ = executor.kill();
            let _ = executor.wait();
        }
        eprintln!(
            "{name}: {JOBS} jobs, {kills} executor crashes, one restart, in {:?}",
            started.elapsed()
        );
        drop(instance);
        database.cleanup().await;
    }
}
