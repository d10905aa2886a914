//! Prometheus metrics: HTTP requests, repository counts read from the store at scrape time, and
//! the metrics active executors sent in their heartbeats.

use std::sync::LazyLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntGaugeVec, Opts, TextEncoder};

use crate::AppState;

static REQUEST_DURATION: LazyLock<Option<HistogramVec>> = LazyLock::new(|| {
    let histogram = HistogramVec::new(
        HistogramOpts::new(
            "src_http_request_duration_seconds",
            "Time to answer HTTP requests, by route, method and status code.",
        ),
        &["route", "method", "code"],
    )
    .ok()?;
    prometheus::register(Box::new(histogram.clone())).ok()?;
    Some(histogram)
});

static REPOSITORIES: LazyLock<Option<IntGaugeVec>> = LazyLock::new(|| {
    let gauge = IntGaugeVec::new(
        Opts::new(
            "src_repos",
            "Repositories known to the instance, by clone status.",
        ),
        &["status"],
    )
    .ok()?;
    prometheus::register(Box::new(gauge.clone())).ok()?;
    Some(gauge)
});

/// How long an executor's last metrics are served after its last heartbeat.
const EXECUTOR_METRICS_TTL_SECONDS: i64 = 60;

/// Times every request under its route pattern (never the raw path, which would be unbounded).
pub async fn observe_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    if let Some(histogram) = REQUEST_DURATION.as_ref() {
        histogram
            .with_label_values(&[&route, &method, response.status().as_str()])
            .observe(elapsed.as_secs_f64());
    }
    tracing::debug!(%route, %method, status = response.status().as_u16(), duration_ms = elapsed.as_millis() as u64, "request");
    response
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    if let (Some(gauge), Ok(counts)) = (
        REPOSITORIES.as_ref(),
        state.store.repo_status_counts().await,
    ) {
        for (status, count) in counts {
            gauge.with_label_values(&[status.as_str()]).set(count);
        }
    }
    let families = prometheus::gather();
    let mut body = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&families, &mut body) {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
    }
    // Executors' metrics from their heartbeats, while they are active.
    let since = quarry_store::now() - EXECUTOR_METRICS_TTL_SECONDS;
    match state.store.executor_metrics(since).await {
        Ok(stored) if !stored.is_empty() => {
            let own = families.iter().map(|f| f.name().to_string()).collect();
            let texts: Vec<String> = stored.into_iter().map(|(_, text)| text).collect();
            body.extend_from_slice(crate::executor_metrics::merge(&texts, &own).as_bytes());
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the executors' metrics"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
