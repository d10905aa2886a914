//! Health, Prometheus metrics, structured logs.

mod common;

use common::Instance;
use quarry_gitserver::testing::TestRepo;

#[tokio::test]
async fn metrics_pass_promtool_and_logs_are_json() {
    let work = tempfile::tempdir().unwrap();
    let origin = TestRepo::init(&work.path().join("solo")).unwrap();
    origin.commit(&[("f", "1")], "one").unwrap();
    let mut instance = Instance::serve(
        &work.path().join("data"),
        &[origin.path.display().to_string()],
        &[("QUARRY_LOG_FORMAT", "json")],
    )
    .await;
    instance.wait_settled(1).await;
    assert_eq!(instance.get("/-/healthz").await.status(), 200);
    assert_eq!(instance.get("/-/readyz").await.status(), 200);

    let metrics = instance.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("src_repos{status=\"cloned\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("src_gitserver_exec_duration_seconds_bucket{cmd=\"clone\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("src_http_request_duration_seconds"),
        "{metrics}"
    );
    assert!(
        metrics.contains("src_repoupdater_syncs_total{operation=\"clone\",outcome=\"success\"} 1"),
        "{metrics}"
    );
    check_with_promtool(&metrics);

    assert!(
        instance.terminate(),
        "SIGTERM ends the process with success"
    );
    let log = instance.log_text();
    let mut lines = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let entry: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(
            entry["level"].is_string() && entry["message"].is_string(),
            "{line}"
        );
        lines += 1;
    }
    assert!(lines >= 3, "{log}");
    assert!(
        log.contains("\"repo\":\"solo\""),
        "fields are structured: {log}"
    );
    assert!(log.contains("shutting down"), "{log}");
}

/// Runs `promtool check metrics` (Debian's `prometheus` package). `.ci/run` installs it and sets
/// QUARRY_REQUIRE_TOOLS so that CI never passes without it.
fn check_with_promtool(metrics: &str) {
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
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
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
