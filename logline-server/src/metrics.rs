//! Request and run counters of this process, as JSON or Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// Upper bounds (seconds) of the request-latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
struct Histogram {
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS`].
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct State_ {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    counters: BTreeMap<&'static str, u64>,
}

/// Counters and histograms of the HTTP API.
#[derive(Default)]
pub struct Metrics {
    state: Mutex<State_>,
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
    /// Named counters: `runs_started`, `policy_denials`, `rate_limited`, `logins_failed`,
    /// `approvals`, `denials`.
    pub counters: BTreeMap<String, u64>,
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, State_> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds one to a named counter.
    pub fn count(&self, name: &'static str) {
        *self.lock().counters.entry(name).or_default() += 1;
    }

    /// A request refused by a rate limit.
    pub fn rate_limited(&self) {
        self.count("rate_limited");
    }

    fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        let mut s = self.lock();
        *s.requests
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
        let h = s
            .latency
            .entry(route.to_string())
            .or_insert_with(|| Histogram {
                buckets: vec![0; LATENCY_BUCKETS.len()],
                ..Default::default()
            });
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// The JSON snapshot.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let s = self.lock();
        MetricsSnapshot {
            requests: s
                .requests
                .iter()
                .map(|((m, r, st), c)| RequestCount {
                    method: m.clone(),
                    route: r.clone(),
                    status: *st,
                    count: *c,
                })
                .collect(),
            counters: s
                .counters
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }

    /// Prometheus text exposition (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let s = self.lock();
        let mut out = String::new();
        out.push_str(
            "# HELP logline_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE logline_http_requests_total counter\n");
        for ((m, r, st), c) in &s.requests {
            let _ = writeln!(
                out,
                "logline_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{st}\"}} {c}",
                escape(m),
                escape(r)
            );
        }
        out.push_str("# HELP logline_http_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE logline_http_request_duration_seconds histogram\n");
        for (r, h) in &s.latency {
            let r = escape(r);
            for (bound, n) in LATENCY_BUCKETS.iter().zip(&h.buckets) {
                let _ = writeln!(
                    out,
                    "logline_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "logline_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "logline_http_request_duration_seconds_sum{{route=\"{r}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "logline_http_request_duration_seconds_count{{route=\"{r}\"}} {}",
                h.count
            );
        }
        for (name, v) in &s.counters {
            let _ = writeln!(out, "# TYPE logline_{name}_total counter");
            let _ = writeln!(out, "logline_{name}_total {v}");
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Records every request's route template, status and latency.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    state.metrics.observe(
        &method,
        &route,
        res.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    res
}
