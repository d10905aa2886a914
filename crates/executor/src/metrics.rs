//! The executor's own metrics (Sourcegraph's names), served at `SRC_PROF_HTTP`'s `/metrics`
//! (default `127.0.0.1:6060`) and sent in every heartbeat.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The buckets of Sourcegraph's `src_executor_processor_duration_seconds`.
const JOB_BUCKETS: &[f64] = &[
    30.0, 60.0, 150.0, 300.0, 450.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

pub struct Metrics {
    registry: Registry,
    pub jobs: IntCounterVec,
    pub job_errors: IntCounterVec,
    pub job_duration: HistogramVec,
    pub handlers: IntGaugeVec,
    pub api_calls: IntCounterVec,
    pub api_errors: IntCounterVec,
    pub api_duration: HistogramVec,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let jobs = IntCounterVec::new(
        Opts::new("src_executor_processor_total", "Jobs handled."),
        &["queue", "op"],
    )?;
    let job_errors = IntCounterVec::new(
        Opts::new("src_executor_processor_errors_total", "Jobs that failed."),
        &["queue", "op"],
    )?;
    let job_duration = HistogramVec::new(
        HistogramOpts::new(
            "src_executor_processor_duration_seconds",
            "Time to handle a job.",
        )
        .buckets(JOB_BUCKETS.to_vec()),
        &["queue", "op"],
    )?;
    let handlers = IntGaugeVec::new(
        Opts::new("src_executor_processor_handlers", "Jobs being handled now."),
        &["queue"],
    )?;
    let api_calls = IntCounterVec::new(
        Opts::new(
            "src_apiworker_apiclient_queue_total",
            "Calls to the queue API.",
        ),
        &["op"],
    )?;
    let api_errors = IntCounterVec::new(
        Opts::new(
            "src_apiworker_apiclient_queue_errors_total",
            "Failed calls to the queue API.",
        ),
        &["op"],
    )?;
    let api_duration = HistogramVec::new(
        HistogramOpts::new(
            "src_apiworker_apiclient_queue_duration_seconds",
            "Time of calls to the queue API.",
        ),
        &["op"],
    )?;
    registry.register(Box::new(jobs.clone()))?;
    registry.register(Box::new(job_errors.clone()))?;
    registry.register(Box::new(job_duration.clone()))?;
    registry.register(Box::new(handlers.clone()))?;
    registry.register(Box::new(api_calls.clone()))?;
    registry.register(Box::new(api_errors.clone()))?;
    registry.register(Box::new(api_duration.clone()))?;
    Ok(Metrics {
        registry,
        jobs,
        job_errors,
        job_duration,
        handlers,
        api_calls,
        api_errors,
        api_duration,
    })
}

pub static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| build().ok());

/// The metrics in Prometheus' text format.
pub fn text() -> String {
    let Some(metrics) = METRICS.as_ref() else {
        return String::new();
    };
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&metrics.registry.gather(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Records one call to the queue API.
pub fn api_call(op: &str, started: Instant, ok: bool) {
    if let Some(metrics) = METRICS.as_ref() {
        metrics.api_calls.with_label_values(&[op]).inc();
        metrics
            .api_duration
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        if !ok {
            metrics.api_errors.with_label_values(&[op]).inc();
        }
    }
}

/// Serves `/metrics` on `address` until the process ends; a busy port is logged, not fatal.
pub async fn serve(address: String) {
    let listener = match tokio::net::TcpListener::bind(&address).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(%address, error = %e, "cannot serve executor metrics");
            return;
        }
    };
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                text(),
            )
        }),
    );
    let _ = axum::serve(listener, app).await;
}
