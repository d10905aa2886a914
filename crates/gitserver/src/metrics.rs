//! Prometheus metrics of git commands, registered in the process-wide default registry.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec};

static EXEC_DURATION: LazyLock<Option<HistogramVec>> = LazyLock::new(|| {
    let histogram = HistogramVec::new(
        HistogramOpts::new(
            "src_gitserver_exec_duration_seconds",
            "Time spent running git commands, by subcommand and outcome.",
        )
        .buckets(vec![
            0.005, 0.02, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0,
        ]),
        &["cmd", "status"],
    )
    .ok()?;
    prometheus::register(Box::new(histogram.clone())).ok()?;
    Some(histogram)
});

pub(crate) fn observe_exec(subcommand: &str, ok: bool, elapsed: Duration) {
    if let Some(histogram) = EXEC_DURATION.as_ref() {
        histogram
            .with_label_values(&[subcommand, if ok { "success" } else { "error" }])
            .observe(elapsed.as_secs_f64());
    }
}
