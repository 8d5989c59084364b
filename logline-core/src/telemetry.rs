//! Engine metrics through the [`metrics`] facade.
//!
//! The engine records its metrics with the `metrics` crate's macros; they cost next to nothing
//! until the host installs a recorder (for example `metrics-exporter-prometheus`, as
//! `logline-server` does). [`describe`] gives the recorder each metric's help text and unit.
//!
//! Runs started and finished by status, step latency by node kind, model calls, tokens and
//! cost by model, tool calls and errors by tool, policy denials, budgets exceeded, and queue
//! depth and age; the constants below name them, and the design notes (`docs/design.md`,
//! "Observability") list them in one table with their labels.
//!
//! Labels never carry arguments, outputs, user ids or run ids, so their number stays bounded by
//! the numbers of node kinds, models, tools and queues.

use metrics::Unit;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use crate::error::{BudgetKind, Error};
use crate::llm::TokenUsage;
use crate::run::RunStatus;
use crate::workflow::NodeType;

/// `logline_runs_started_total`.
pub const RUNS_STARTED: &str = "logline_runs_started_total";
/// `logline_runs_total{status}`.
pub const RUNS: &str = "logline_runs_total";
/// `logline_step_duration_seconds{kind}`.
pub const STEP_DURATION: &str = "logline_step_duration_seconds";
/// `logline_llm_calls_total{provider, model, outcome}`.
pub const LLM_CALLS: &str = "logline_llm_calls_total";
/// `logline_llm_tokens_total{model, type}`.
pub const LLM_TOKENS: &str = "logline_llm_tokens_total";
/// `logline_llm_cost_cents{model}`.
pub const LLM_COST: &str = "logline_llm_cost_cents";
/// `logline_tool_calls_total{tool}`.
pub const TOOL_CALLS: &str = "logline_tool_calls_total";
/// `logline_tool_errors_total{tool, error}`.
pub const TOOL_ERRORS: &str = "logline_tool_errors_total";
/// `logline_policy_denials_total{action}`.
pub const POLICY_DENIALS: &str = "logline_policy_denials_total";
/// `logline_budget_exceeded_total{kind}`.
pub const BUDGET_EXCEEDED: &str = "logline_budget_exceeded_total";
/// `logline_queue_depth{queue}`.
pub const QUEUE_DEPTH: &str = "logline_queue_depth";
/// `logline_queue_oldest_job_age_seconds{queue}`.
pub const QUEUE_OLDEST_AGE: &str = "logline_queue_oldest_job_age_seconds";

/// Gives the installed recorder the help text and unit of every engine metric. Call it once
/// after installing a recorder; metrics work without it.
pub fn describe() {
    describe_counter!(RUNS_STARTED, Unit::Count, "Runs created.");
    describe_counter!(
        RUNS,
        Unit::Count,
        "Runs that reached a final status, by status."
    );
    describe_histogram!(
        STEP_DURATION,
        Unit::Seconds,
        "Wall time of a step, by node kind."
    );
    describe_counter!(
        LLM_CALLS,
        Unit::Count,
        "Model calls sent, by provider, model and outcome."
    );
    describe_counter!(
        LLM_TOKENS,
        Unit::Count,
        "Tokens of sent model calls, by model and type (input, output)."
    );
    describe_gauge!(
        LLM_COST,
        "Cost of sent model calls since start, in cents, by model."
    );
    describe_counter!(TOOL_CALLS, Unit::Count, "Tool executions sent, by tool.");
    describe_counter!(
        TOOL_ERRORS,
        Unit::Count,
        "Tool executions that failed, by tool and error kind."
    );
    describe_counter!(
        POLICY_DENIALS,
        Unit::Count,
        "Runs and calls refused by a policy or the tool gate, by action."
    );
    describe_counter!(
        BUDGET_EXCEEDED,
        Unit::Count,
        "Runs failed on a budget, by budget kind."
    );
    describe_gauge!(QUEUE_DEPTH, Unit::Count, "Queued jobs, by queue.");
    describe_gauge!(
        QUEUE_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest due job, by queue."
    );
}

pub(crate) fn run_started() {
    counter!(RUNS_STARTED).increment(1);
}

/// A run reached `status` (counted only for final statuses).
pub(crate) fn run_finished(status: RunStatus) {
    // Literal labels make static keys: nothing is allocated per run.
    let runs = match status {
        RunStatus::Completed => counter!(RUNS, "status" => "completed"),
        RunStatus::Failed => counter!(RUNS, "status" => "failed"),
        RunStatus::Cancelled => counter!(RUNS, "status" => "cancelled"),
        RunStatus::Pending | RunStatus::Running | RunStatus::Paused => return,
    };
    runs.increment(1);
}

pub(crate) fn step_finished(kind: NodeType, seconds: f64) {
    // Literal labels make static keys: nothing is allocated per step.
    let duration = match kind {
        NodeType::Static => histogram!(STEP_DURATION, "kind" => "static"),
        NodeType::ToolNode => histogram!(STEP_DURATION, "kind" => "tool_node"),
        NodeType::AgentNode => histogram!(STEP_DURATION, "kind" => "agent_node"),
        NodeType::Router => histogram!(STEP_DURATION, "kind" => "router"),
        NodeType::HumanGate => histogram!(STEP_DURATION, "kind" => "human_gate"),
        NodeType::Chat => histogram!(STEP_DURATION, "kind" => "chat"),
    };
    duration.record(seconds);
}

/// A model call sent to `provider` (not a replay): its outcome, and on success its tokens and
/// cost under the model that answered.
pub(crate) fn llm_call(provider: &str, model: &str, outcome: Result<(&TokenUsage, f64), &Error>) {
    let outcome_label = match outcome {
        Ok(_) => "ok",
        Err(e) => e.kind().as_str(),
    };
    counter!(LLM_CALLS, "provider" => provider.to_string(), "model" => model.to_string(),
        "outcome" => outcome_label)
    .increment(1);
    if let Ok((usage, cost_cents)) = outcome {
        counter!(LLM_TOKENS, "model" => model.to_string(), "type" => "input")
            .increment(usage.input_tokens);
        counter!(LLM_TOKENS, "model" => model.to_string(), "type" => "output")
            .increment(usage.output_tokens);
        if cost_cents > 0.0 {
            gauge!(LLM_COST, "model" => model.to_string()).increment(cost_cents);
        }
    }
}

/// A tool execution sent to a hub (not a replay) and its outcome.
pub(crate) fn tool_call(tool: &str, outcome: Option<&Error>) {
    counter!(TOOL_CALLS, "tool" => tool.to_string()).increment(1);
    if let Some(e) = outcome {
        counter!(TOOL_ERRORS, "tool" => tool.to_string(), "error" => e.kind().as_str())
            .increment(1);
    }
}

/// A run or call refused by a policy or the tool gate; `action` is the policy action
/// (`run_start`, `agent_call`, `tool_call`).
pub(crate) fn policy_denied(action: &'static str) {
    counter!(POLICY_DENIALS, "action" => action).increment(1);
}

pub(crate) fn budget_exceeded(kind: BudgetKind) {
    let kind = match kind {
        BudgetKind::Cost => "cost",
        BudgetKind::LlmCalls => "llm_calls",
        BudgetKind::Latency => "latency",
    };
    counter!(BUDGET_EXCEEDED, "kind" => kind).increment(1);
}

/// A sample of a queue: queued jobs and the age of the oldest due one.
pub(crate) fn queue_sampled(queue: &str, depth: u64, oldest_age_seconds: f64) {
    gauge!(QUEUE_DEPTH, "queue" => queue.to_string()).set(depth as f64);
    gauge!(QUEUE_OLDEST_AGE, "queue" => queue.to_string()).set(oldest_age_seconds);
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::DebuggingRecorder;

    use super::*;

    /// The literal labels are the names the rest of the system uses for kinds and statuses.
    #[test]
    fn labels_are_the_kind_and_status_names() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let kinds = [
            NodeType::Static,
            NodeType::ToolNode,
            NodeType::AgentNode,
            NodeType::Router,
            NodeType::HumanGate,
            NodeType::Chat,
        ];
        let statuses = [
            RunStatus::Pending,
            RunStatus::Running,
            RunStatus::Paused,
            RunStatus::Completed,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ];
        metrics::with_local_recorder(&recorder, || {
            kinds.iter().for_each(|k| step_finished(*k, 0.5));
            statuses.iter().for_each(|s| run_finished(*s));
        });
        let mut seen: Vec<(String, String)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, _)| {
                let key = key.key();
                let labels: Vec<String> = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                (key.name().to_string(), labels.join(","))
            })
            .collect();
        seen.sort();
        let mut expected: Vec<(String, String)> = kinds
            .iter()
            .map(|k| (STEP_DURATION.to_string(), format!("kind={}", k.as_str())))
            .chain(
                statuses
                    .iter()
                    .filter(|s| s.is_terminal())
                    .map(|s| (RUNS.to_string(), format!("status={}", s.as_str()))),
            )
            .collect();
        expected.sort();
        assert_eq!(seen, expected);
    }
}
