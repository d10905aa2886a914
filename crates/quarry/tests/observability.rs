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

    let metrics = instance.metrics().await;
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
    common::check_with_promtool(&metrics);

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
