//! Alerts: per-tenant rules (error rate, budget exceeded, policy denials) over a window,
//! checked on request and periodically, each firing recorded once per cooldown and POSTed
//! to the alert's webhook.

use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use logline_core::run::RunStatus;
use logline_core::store::{Page, RunFilter};
use logline_core::{ErrorKind, Result};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::state::AppState;
use crate::store::{AlertConfig, AlertEvent, AlertRule, AuditFilter};

/// Most runs or audit rows read to compute one value.
const MAX_SAMPLE: u64 = 10_000;
/// Deadline of one webhook delivery.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of checking one alert.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckResult {
    /// The alert.
    pub alert_config_id: Uuid,
    /// Its value over the window.
    pub value: f64,
    /// Whether the value crossed the threshold.
    pub triggered: bool,
    /// The firing recorded now (none inside the cooldown).
    pub event: Option<AlertEvent>,
}

/// Whether `value <op> threshold`.
pub fn compare(value: f64, op: &str, threshold: f64) -> bool {
    match op {
        ">" => value > threshold,
        "<" => value < threshold,
        ">=" => value >= threshold,
        "<=" => value <= threshold,
        "==" => (value - threshold).abs() < f64::EPSILON,
        _ => false,
    }
}

/// The alert's value over its window for its tenant.
pub async fn value(state: &AppState, alert: &AlertConfig) -> Result<f64> {
    let since = Utc::now()
        - ChronoDuration::seconds(i64::try_from(alert.window_secs).unwrap_or(i64::MAX / 2));
    if alert.rule_type == AlertRule::PolicyDenials {
        let filter = AuditFilter {
            action: Some("policy_deny".into()),
            start: Some(since),
            limit: MAX_SAMPLE,
            ..Default::default()
        };
        return Ok(state.store.audit(&alert.tenant_id, &filter).await?.len() as f64);
    }
    let scoped = state
        .engine
        .scoped(logline_core::engine::Principal::service(
            alert.tenant_id.clone(),
        ));
    let mut finished = 0u64;
    let mut failed = 0u64;
    let mut budget = 0u64;
    for status in [
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ] {
        let filter = RunFilter {
            status: Some(status),
            page: Page::first(MAX_SAMPLE),
            ..Default::default()
        };
        for run in scoped.list_runs(filter).await? {
            if run.updated_at < since {
                continue;
            }
            finished += 1;
            if status == RunStatus::Failed {
                failed += 1;
                let kind = run
                    .error
                    .as_ref()
                    .and_then(|e| e.get("kind"))
                    .and_then(Value::as_str);
                if kind == Some(ErrorKind::BudgetExceeded.as_str()) {
                    budget += 1;
                }
            }
        }
    }
    Ok(match alert.rule_type {
        AlertRule::ErrorRate if finished == 0 => 0.0,
        AlertRule::ErrorRate => failed as f64 / finished as f64,
        AlertRule::BudgetExceeded => budget as f64,
        AlertRule::PolicyDenials => 0.0,
    })
}

/// Checks one alert: computes its value and, past the threshold and outside the cooldown,
/// records a firing and delivers it to the webhook.
pub async fn check(state: &AppState, alert: &AlertConfig) -> Result<CheckResult> {
    let value = value(state, alert).await?;
    let triggered = compare(value, &alert.comparison_operator, alert.threshold);
    let mut result = CheckResult {
        alert_config_id: alert.id,
        value,
        triggered,
        event: None,
    };
    if !triggered {
        return Ok(result);
    }
    let mut event = AlertEvent {
        id: Uuid::now_v7(),
        alert_config_id: alert.id,
        tenant_id: alert.tenant_id.clone(),
        triggered_at: Utc::now(),
        resolved_at: None,
        message: format!(
            "{}: {:?} is {value} ({} {})",
            alert.name, alert.rule_type, alert.comparison_operator, alert.threshold
        ),
        metadata: json!({"value": value, "threshold": alert.threshold, "rule_type": alert.rule_type}),
    };
    if let Some(url) = &alert.webhook_url {
        let delivered = deliver(url, alert, &event).await;
        event.metadata["webhook_delivered"] = json!(delivered);
    }
    if state.store.fire_alert(&event, alert.cooldown_secs).await? {
        result.event = Some(event);
    }
    Ok(result)
}

/// POSTs a firing; whether the hook answered 2xx. Failures are logged, never raised.
async fn deliver(url: &str, alert: &AlertConfig, event: &AlertEvent) -> bool {
    let client = reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build();
    let body = json!({"alert": alert.name, "alert_config_id": alert.id, "event": event});
    match client {
        Ok(c) => match c.post(url).json(&body).send().await {
            Ok(r) if r.status().is_success() => true,
            Ok(r) => {
                tracing::warn!(status = %r.status(), alert = %alert.id, "alert webhook refused the firing");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, alert = %alert.id, "alert webhook unreachable");
                false
            }
        },
        Err(_) => false,
    }
}

/// Checks every enabled alert every `interval` until `state.shutdown` fires.
pub fn spawn_checker(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let alerts = match state.store.enabled_alerts().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read alerts");
                    continue;
                }
            };
            for alert in alerts {
                if let Err(e) = check(&state, &alert).await {
                    tracing::warn!(error = %e, alert = %alert.id, "alert check failed");
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::compare;

    #[test]
    fn operators_compare() {
        assert!(compare(0.2, ">", 0.1) && !compare(0.1, ">", 0.1));
        assert!(compare(0.1, ">=", 0.1) && compare(1.0, "<", 2.0) && compare(2.0, "<=", 2.0));
        assert!(compare(3.0, "==", 3.0) && !compare(3.0, "!=", 1.0));
    }
}
