//! Metrics of this process: the `metrics` facade's Prometheus recorder (engine metrics from
//! `logline_core::telemetry` and the HTTP metrics recorded here), rendered as Prometheus text
//! or as JSON.
//!
//! Metrics are per process: every server built in a process shares the recorder, and a
//! `worker` process serves its own at `metrics_addr`.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics::{counter, describe_counter, describe_histogram, histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

mod exposition;

pub use exposition::{parse, Sample};

/// `logline_http_requests_total{method, route, status}`.
pub const HTTP_REQUESTS: &str = "logline_http_requests_total";
/// `logline_http_request_duration_seconds{route}`.
pub const HTTP_DURATION: &str = "logline_http_request_duration_seconds";
/// Prefix of the server's named counters (`logline_http_<name>_total`, see [`Metrics::count`]).
const NAMED_PREFIX: &str = "logline_http_";

/// Upper bounds (seconds) of the buckets of every `*_seconds` histogram.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Content type of the Prometheus text exposition.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's metrics, read through its Prometheus recorder.
#[derive(Clone)]
pub struct Metrics {
    handle: Option<PrometheusHandle>,
}

impl Default for Metrics {
    /// [`Metrics::global`].
    fn default() -> Self {
        Self::global()
    }
}

/// One request counter.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestCount {
    /// Method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// Status.
    pub status: u16,
    /// Requests.
    pub count: u64,
}

/// The JSON form of the metrics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetricsSnapshot {
    /// Requests by method, route and status.
    pub requests: Vec<RequestCount>,
    /// The server's named counters: `runs_started`, `policy_denials`, `rate_limited`,
    /// `logins_failed`.
    pub counters: BTreeMap<String, u64>,
    /// Every series of the Prometheus exposition (engine metrics included).
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// The process's Prometheus recorder: installed as the global `metrics` recorder on the
    /// first call (with the engine's and the server's metric descriptions). When the host
    /// installed another recorder first, metrics are recorded there and this one renders
    /// nothing ([`Metrics::is_available`] is false); pass its handle to
    /// [`Metrics::from_handle`] if it is a Prometheus recorder.
    pub fn global() -> Self {
        static GLOBAL: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
        let handle = GLOBAL.get_or_init(install).clone();
        Metrics { handle }
    }

    /// Metrics read through a Prometheus recorder the host installed itself.
    pub fn from_handle(handle: PrometheusHandle) -> Self {
        Metrics {
            handle: Some(handle),
        }
    }

    /// Whether this process's metrics can be rendered.
    pub fn is_available(&self) -> bool {
        self.handle.is_some()
    }

    /// Adds one to the server's counter `logline_http_<name>_total`.
    pub fn count(&self, name: &'static str) {
        counter!(format!("{NAMED_PREFIX}{name}_total")).increment(1);
    }

    /// A request refused by a rate limit.
    pub fn rate_limited(&self) {
        self.count("rate_limited");
    }

    /// Prometheus text exposition (version 0.0.4); `None` when not available.
    pub fn prometheus(&self) -> Option<String> {
        self.handle.as_ref().map(PrometheusHandle::render)
    }

    /// The JSON form; `None` when not available.
    pub fn snapshot(&self) -> Option<MetricsSnapshot> {
        let samples = parse(&self.prometheus()?);
        let mut requests = Vec::new();
        let mut counters = BTreeMap::new();
        for s in &samples {
            if s.name == HTTP_REQUESTS {
                requests.push(RequestCount {
                    method: s.labels.get("method").cloned().unwrap_or_default(),
                    route: s.labels.get("route").cloned().unwrap_or_default(),
                    status: s
                        .labels
                        .get("status")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_default(),
                    count: s.value as u64,
                });
            } else if let Some(name) = s
                .name
                .strip_prefix(NAMED_PREFIX)
                .and_then(|n| n.strip_suffix("_total"))
                .filter(|_| s.labels.is_empty())
            {
                counters.insert(name.to_string(), s.value as u64);
            }
        }
        Some(MetricsSnapshot {
            requests,
            counters,
            samples,
        })
    }
}

/// Installs the Prometheus recorder globally; `None` when another recorder is installed.
fn install() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS);
    let installed = builder.and_then(PrometheusBuilder::install_recorder);
    match installed {
        Ok(handle) => {
            logline_core::telemetry::describe();
            describe_counter!(
                HTTP_REQUESTS,
                Unit::Count,
                "HTTP requests by method, route template and status."
            );
            describe_histogram!(
                HTTP_DURATION,
                Unit::Seconds,
                "HTTP request latency by route."
            );
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("logline-metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "no metrics upkeep thread; histograms fold at scrapes");
            }
            Some(handle)
        }
        Err(e) => {
            tracing::warn!(error = %e, "another metrics recorder is installed; /metrics renders nothing");
            None
        }
    }
}

/// Records every request's route template, status and latency.
pub async fn track(State(_state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(),
        "status" => res.status().as_u16().to_string())
    .increment(1);
    histogram!(HTTP_DURATION, "route" => route).record(start.elapsed().as_secs_f64());
    res
}

/// The Prometheus text response, or 503 when metrics are not available.
pub fn prometheus_response(metrics: &Metrics) -> Response {
    match metrics.prometheus() {
        Some(text) => ([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], text).into_response(),
        None => unavailable().into_response(),
    }
}

/// The problem answered when another recorder owns the process's metrics.
pub fn unavailable() -> crate::ApiError {
    crate::ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "metrics_unavailable",
        "another metrics recorder is installed in this process; read the metrics from it",
    )
}

/// `GET /metrics` (Prometheus text, no authentication) and `GET /healthz`: what a `worker`
/// process serves at `metrics_addr`. Bind it to an address only the scraper reaches.
pub fn exporter_router(metrics: Metrics) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { prometheus_response(&metrics) }
            }),
        )
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
}
