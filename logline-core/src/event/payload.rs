//! Typed event payloads: one type per [`EventKind`], stored as the JSON object of that
//! type's fields (the kind and the schema version are stored beside it, not inside it).
//!
//! Layout version 1 ([`super::EVENT_SCHEMA_VERSION`]) is the JSON the engine wrote before
//! these types existed, field for field, so every stored event of version 1 decodes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{EventKind, PayloadJson};
use crate::error::{Error, RecordedError, Result};
use crate::llm::{FinishReason, TokenUsage};
use crate::run::{Budget, GateSubject, NodeType, PendingGate, Run, RunMode, RunUsage, Subject};

mod chat;
mod policy_eval;

pub use chat::ChatStepPayload;
pub use policy_eval::{ApprovalDenied, BudgetDenied, PolicyDecided, PolicyEvalPayload};

/// Declares [`EventPayload`] with one variant per [`EventKind`] (same names) and the
/// conversions that must stay total over the kinds.
macro_rules! event_payloads {
    ($($(#[$doc:meta])* $kind:ident($ty:ident),)+) => {
        /// The payload of an event, typed by its kind.
        ///
        /// Serialized on its own (API bodies) it is `{"kind": ..., "payload": {...}}`; in the
        /// store the kind has its column and [`EventPayload::to_json`] is the payload.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum EventPayload {
            $($(#[$doc])* $kind($ty),)+
        }

        impl EventPayload {
            /// The kind of event this payload belongs to.
            pub fn kind(&self) -> EventKind {
                match self {
                    $(EventPayload::$kind(_) => EventKind::$kind,)+
                }
            }

            /// Reads the stored payload of a `kind` event of the current layout.
            /// Fails with [`Error::Internal`] when it does not have that layout.
            pub fn decode(kind: EventKind, payload: &Value) -> Result<EventPayload> {
                let decoded = match kind {
                    $(EventKind::$kind => $ty::deserialize(payload).map(EventPayload::$kind),)+
                };
                decoded.map_err(|e| {
                    Error::Internal(format!("stored `{kind}` event payload is unreadable: {e}"))
                })
            }

            /// The stored JSON payload (the fields of the kind's type).
            pub fn to_json(&self) -> Result<Value> {
                let json = match self {
                    $(EventPayload::$kind(p) => serde_json::to_value(p),)+
                };
                json.map_err(|e| {
                    Error::Internal(format!(
                        "`{}` event payload is not serializable: {e}",
                        self.kind()
                    ))
                })
            }

            /// The stored JSON payload as a store takes it: see [`PayloadJson::build`] for
            /// `keep` and `fix`.
            pub(crate) fn to_payload_json(
                &self,
                keep: impl FnOnce(&str) -> bool,
                fix: impl FnOnce(&mut Value),
            ) -> Result<PayloadJson> {
                let json = match self {
                    $(EventPayload::$kind(p) => PayloadJson::build(p, keep, fix),)+
                };
                json.map_err(|e| {
                    Error::Internal(format!(
                        "`{}` event payload is not serializable: {e}",
                        self.kind()
                    ))
                })
            }
        }

        $(
            impl From<$ty> for EventPayload {
                fn from(p: $ty) -> Self {
                    EventPayload::$kind(p)
                }
            }
        )+
    };
}

event_payloads! {
    /// `run_started`.
    RunStarted(RunStartedPayload),
    /// `step_started`.
    StepStarted(StepStartedPayload),
    /// `step_completed`.
    StepCompleted(StepCompletedPayload),
    /// `step_failed`.
    StepFailed(StepFailedPayload),
    /// `tool_call`.
    ToolCall(ToolCallPayload),
    /// `llm_call`.
    LlmCall(LlmCallPayload),
    /// `policy_eval`.
    PolicyEval(PolicyEvalPayload),
    /// `error`.
    Error(ErrorPayload),
    /// `run_paused`.
    RunPaused(RunPausedPayload),
    /// `run_resumed`.
    RunResumed(RunResumedPayload),
    /// `run_completed`.
    RunCompleted(RunCompletedPayload),
    /// `run_failed`.
    RunFailed(RunFailedPayload),
    /// `run_cancelled`.
    RunCancelled(RunCancelledPayload),
    /// `route_selected`.
    RouteSelected(RouteSelectedPayload),
    /// `chat_step`.
    ChatStep(ChatStepPayload),
}

/// `run_started`: the run was created (run-level; input and subject are redacted in the
/// stored event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStartedPayload {
    /// Workflow id.
    pub workflow_id: String,
    /// Exact workflow version.
    pub workflow_version: String,
    /// Mode after `run_start` policies.
    pub mode: RunMode,
    /// Input as given to `start_run`.
    pub input: Value,
    /// Who the run acts for.
    pub subject: Subject,
    /// Budget after `run_start` policies.
    pub budget: Budget,
}

impl RunStartedPayload {
    /// The payload describing `run` as created.
    pub fn of(run: &Run) -> Self {
        RunStartedPayload {
            workflow_id: run.workflow_id.clone(),
            workflow_version: run.workflow_version.clone(),
            mode: run.mode,
            input: run.input.clone(),
            subject: run.subject.clone(),
            budget: run.budget,
        }
    }
}

/// `step_started`: a node began (step-level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepStartedPayload {
    /// The node.
    pub node_id: String,
    /// Its type.
    pub node_type: NodeType,
    /// Step index in the run.
    pub index: u32,
}

/// `step_completed`: a node finished with output (step-level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepCompletedPayload {
    /// The node.
    pub node_id: String,
    /// The node chosen next; `null` when the graph is exhausted.
    pub next: Option<String>,
}

/// `step_failed`: a node failed, and with it the run (step-level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepFailedPayload {
    /// The node.
    pub node_id: String,
    /// Why.
    pub error: RecordedError,
}

/// `tool_call`: a tool call finished, executed or replayed from the ledger (step-level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallPayload {
    /// The tool.
    pub tool_id: String,
    /// The hub that executed it.
    pub hub: String,
    /// The arguments (redacted in the stored event).
    pub input: Value,
    /// The result; `null` when the call failed.
    pub output: Value,
    /// The failure; `null` when the call succeeded.
    pub error: Option<RecordedError>,
    /// Wall time of the execution; `null` when replayed.
    pub duration_ms: Option<u64>,
    /// Whether the result came from the effect ledger instead of the hub.
    pub replayed: bool,
}

/// Why the engine called a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LlmPurpose {
    /// An agent node's tool loop.
    Agent,
    /// A router node choosing a route.
    Router,
    /// Natural-language edge conditions.
    EdgeCondition,
    /// A chat's rolling summary of older messages.
    Summary,
}

/// `llm_call`: a model answered, or its recorded answer was replayed (step-level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmCallPayload {
    /// The calling agent (`builtin.condition_evaluator` for the built-in evaluator).
    pub agent_id: String,
    /// Why the model was called.
    pub purpose: LlmPurpose,
    /// Provider name.
    pub provider: String,
    /// The model that answered (the requested one when the provider does not say).
    pub model: String,
    /// Tokens of the call.
    pub usage: TokenUsage,
    /// Cost in US cents.
    pub cost_cents: f64,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// Names of the tools the model asked for.
    pub tool_calls: Vec<String>,
    /// Text output, if any.
    pub text: Option<String>,
    /// Whether the answer came from the effect ledger instead of the provider.
    pub replayed: bool,
}

/// `error`: a failure worth tracing; at run level just before `run_failed`, at step level
/// for a denied or invalid tool call (`tool_id`) or an unusable model answer that is asked
/// again (`agent_id`, `retrying`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorPayload {
    /// The error.
    pub error: RecordedError,
    /// The agent whose answer was unusable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The tool whose call was denied or invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_id: Option<String>,
    /// Whether the model is asked again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retrying: bool,
}

impl ErrorPayload {
    /// A run-level error.
    pub fn new(error: RecordedError) -> Self {
        ErrorPayload {
            error,
            agent_id: None,
            tool_id: None,
            retrying: false,
        }
    }

    /// A tool call that was denied or rejected by the tool's schema.
    pub fn tool(tool_id: impl Into<String>, error: RecordedError) -> Self {
        ErrorPayload {
            tool_id: Some(tool_id.into()),
            ..ErrorPayload::new(error)
        }
    }

    /// An unusable model answer of `agent_id`; the model is asked again.
    pub fn agent_retry(agent_id: impl Into<String>, error: RecordedError) -> Self {
        ErrorPayload {
            agent_id: Some(agent_id.into()),
            retrying: true,
            ..ErrorPayload::new(error)
        }
    }
}

/// `run_paused`: the run waits at a human gate (step-level at a node, run-level at
/// `run_start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPausedPayload {
    /// The gate; `approve`/`deny` name it.
    pub gate_id: String,
    /// What is being approved (tool arguments are redacted in the stored event).
    pub subject: GateSubject,
    /// Why approval is needed.
    pub reason: String,
    /// The policy that asked for it; `null` for gate nodes and confirmations.
    pub policy_id: Option<String>,
}

impl From<&PendingGate> for RunPausedPayload {
    fn from(g: &PendingGate) -> Self {
        RunPausedPayload {
            gate_id: g.gate_id.clone(),
            subject: g.subject.clone(),
            reason: g.reason.clone(),
            policy_id: g.policy_id.clone(),
        }
    }
}

/// A human's answer at a gate that lets the run go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateDecision {
    /// The gate was approved.
    Approved,
    /// The tool call was refused; the run goes on and the model is told.
    Refused,
}

/// `run_resumed`: a gate was approved (run-level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResumedPayload {
    /// The gate.
    pub gate_id: String,
    /// `approved`, or `refused` for a refused tool call (a denial fails the run).
    pub decision: GateDecision,
    /// Who approved.
    pub approver: String,
    /// Why, if given.
    pub reason: Option<String>,
}

impl RunResumedPayload {
    /// `approver` approved `gate_id`.
    pub fn approved(
        gate_id: impl Into<String>,
        approver: impl Into<String>,
        reason: Option<String>,
    ) -> Self {
        RunResumedPayload {
            gate_id: gate_id.into(),
            decision: GateDecision::Approved,
            approver: approver.into(),
            reason,
        }
    }
}

/// `run_completed`: the run finished with a result (run-level; redacted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCompletedPayload {
    /// The result (the last step's output).
    pub result: Value,
    /// Total consumption.
    pub usage: RunUsage,
}

/// `run_failed`: the run failed (run-level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFailedPayload {
    /// Why (the run's `error`).
    pub error: RecordedError,
}

/// `run_cancelled`: a caller cancelled the run (run-level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCancelledPayload {
    /// The caller's reason.
    pub reason: String,
}

/// How the next node was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RouteSelection {
    /// A router node's agent picked one of its routes.
    Route {
        /// The route id.
        route: String,
    },
    /// Natural-language edge conditions were evaluated.
    Condition {
        /// The evaluator's answer: a condition's index, or `none`.
        choice: String,
        /// The condition that holds; `null` when none does (the default edge is taken).
        condition: Option<String>,
    },
}

/// `route_selected`: a router or an edge condition chose the next node (step-level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteSelectedPayload {
    /// The node whose successor was chosen.
    pub node_id: String,
    /// Route or condition.
    #[serde(flatten)]
    pub selection: RouteSelection,
    /// The model's one-sentence reason.
    pub reason: String,
    /// The next node; `null` when no condition holds and there is no default edge.
    pub to: Option<String>,
}

#[cfg(test)]
mod tests;
