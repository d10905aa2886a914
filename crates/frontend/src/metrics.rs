//! Prometheus metrics: HTTP requests, and repository counts read from the store at scrape time.

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
    let mut body = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&prometheus::gather(), &mut body) {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
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
