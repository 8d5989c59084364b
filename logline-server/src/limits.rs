//! Rate limits per client address, user, tenant and API key (GCRA from `governor`), with
//! `RateLimit-*` and `Retry-After` headers, and the per-tenant cap on concurrent runs.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use logline_core::engine::ScopedEngine;
use logline_core::run::RunStatus;
use logline_core::store::{Page, RunFilter};

use crate::auth::{Caller, CallerAuth};
use crate::error::{ApiError, ApiResult};

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// How often (in checked requests) idle keys are dropped from memory.
const RETAIN_EVERY: u64 = 4096;

/// One quota applied to every key kind.
pub struct RateLimits {
    limiter: Keyed,
    burst: u32,
    per_cell: Duration,
    checks: AtomicU64,
}

/// A request over a limit: answered with a 429 problem, `Retry-After` and the headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    kind: String,
    headers: LimitHeaders,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let mut res = ApiError::too_many(
            format!("rate limit of this {} reached; retry later", self.kind),
            self.headers.reset_secs,
        )
        .into_response();
        self.headers.apply(res.headers_mut());
        res
    }
}

/// The `RateLimit-*` headers of an allowed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitHeaders {
    limit: u32,
    remaining: u32,
    reset_secs: u64,
}

impl LimitHeaders {
    /// Adds `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.
    pub fn apply(&self, h: &mut HeaderMap) {
        h.insert("ratelimit-limit", HeaderValue::from(self.limit));
        h.insert("ratelimit-remaining", HeaderValue::from(self.remaining));
        h.insert("ratelimit-reset", HeaderValue::from(self.reset_secs));
    }
}

impl RateLimits {
    /// `per_minute` requests a minute with bursts of `burst`; `None` when `per_minute` is 0.
    pub fn new(per_minute: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_minute)?;
        let burst_nz = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(rate).allow_burst(burst_nz);
        Some(RateLimits {
            per_cell: quota.replenish_interval(),
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            burst: burst_nz.get(),
            checks: AtomicU64::new(0),
        })
    }

    /// Counts the request against the address, user, tenant and API key it comes from. The
    /// headers describe the tightest of those limits; a denial is a 429 problem with
    /// `Retry-After`.
    pub fn check(&self, caller: Option<&Caller>, ip: Option<&str>) -> Result<LimitHeaders, Denied> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            self.limiter.retain_recent();
        }
        let mut keys = Vec::with_capacity(4);
        if let Some(ip) = ip {
            keys.push(format!("ip:{ip}"));
        }
        if let Some(c) = caller {
            keys.push(format!("user:{}", c.user_id));
            keys.push(format!("tenant:{}", c.tenant_id));
            if let CallerAuth::ApiKey { id, .. } = c.auth {
                keys.push(format!("key:{id}"));
            }
        }
        let mut remaining = self.burst;
        for key in &keys {
            match self.limiter.check_key(key) {
                Ok(snapshot) => remaining = remaining.min(snapshot.remaining_burst_capacity()),
                Err(not_until) => {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                    let headers = LimitHeaders {
                        limit: self.burst,
                        remaining: 0,
                        reset_secs: secs.max(1),
                    };
                    let kind = key.split(':').next().unwrap_or("client").to_string();
                    return Err(Denied { kind, headers });
                }
            }
        }
        let used = u64::from(self.burst - remaining);
        let reset = Duration::from_nanos(
            u64::try_from(self.per_cell.as_nanos())
                .unwrap_or(u64::MAX)
                .saturating_mul(used),
        );
        Ok(LimitHeaders {
            limit: self.burst,
            remaining,
            reset_secs: reset.as_secs() + u64::from(reset.subsec_nanos() > 0),
        })
    }
}

/// `TooManyRequests` when the tenant already has `cap` runs pending or running (0 = no cap).
/// Counted in the store, so every process sees the same runs.
pub async fn check_run_cap(scoped: &ScopedEngine, cap: u32) -> ApiResult<()> {
    if cap == 0 {
        return Ok(());
    }
    let mut active = 0u64;
    for status in [RunStatus::Pending, RunStatus::Running] {
        let filter = RunFilter {
            status: Some(status),
            page: Page::first(u64::from(cap)),
            ..Default::default()
        };
        active += scoped.list_runs(filter).await?.len() as u64;
    }
    if active >= u64::from(cap) {
        return Err(ApiError::too_many(
            format!("the tenant already has {cap} runs in progress"),
            1,
        ));
    }
    Ok(())
}
