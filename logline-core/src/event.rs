//! The append-only event trace of a run: what happened, in order, numbered per run.
//!
//! Every event has a kind and a payload whose layout the kind fixes ([`EventPayload`]);
//! the layout version is stored with every event ([`Event::schema_version`]).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::run::RunId;

mod json;
mod payload;

pub use json::PayloadJson;
pub use payload::{
    ApprovalDenied, BudgetDenied, ChatStepPayload, ErrorPayload, EventPayload, GateDecision,
    LlmCallPayload, LlmPurpose, PolicyDecided, PolicyEvalPayload, RouteSelectedPayload,
    RouteSelection, RunCancelledPayload, RunCompletedPayload, RunFailedPayload, RunPausedPayload,
    RunResumedPayload, RunStartedPayload, StepCompletedPayload, StepFailedPayload,
    StepStartedPayload, ToolCallPayload,
};

/// Version of the event payload layout, stored with every event. Version 1 is the layout
/// of [`EventPayload`]'s types (and of every event written before they existed).
pub const EVENT_SCHEMA_VERSION: u16 = 1;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The run was created and accepted.
    RunStarted,
    /// A node began.
    StepStarted,
    /// A node finished with output.
    StepCompleted,
    /// A node failed.
    StepFailed,
    /// A tool was executed.
    ToolCall,
    /// An LLM was called.
    LlmCall,
    /// A policy decision was taken.
    PolicyEval,
    /// An error happened.
    Error,
    /// The run paused at a human gate.
    RunPaused,
    /// The run resumed after approval.
    RunResumed,
    /// The run finished with a result.
    RunCompleted,
    /// The run failed.
    RunFailed,
    /// The run was cancelled.
    RunCancelled,
    /// A router or edge condition chose the next node.
    RouteSelected,
    /// A stage of a chat turn (router decision, tools selected, confirmation, answer).
    ChatStep,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 15] = [
        EventKind::RunStarted,
        EventKind::StepStarted,
        EventKind::StepCompleted,
        EventKind::StepFailed,
        EventKind::ToolCall,
        EventKind::LlmCall,
        EventKind::PolicyEval,
        EventKind::Error,
        EventKind::RunPaused,
        EventKind::RunResumed,
        EventKind::RunCompleted,
        EventKind::RunFailed,
        EventKind::RunCancelled,
        EventKind::RouteSelected,
        EventKind::ChatStep,
    ];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RunStarted => "run_started",
            EventKind::StepStarted => "step_started",
            EventKind::StepCompleted => "step_completed",
            EventKind::StepFailed => "step_failed",
            EventKind::ToolCall => "tool_call",
            EventKind::LlmCall => "llm_call",
            EventKind::PolicyEval => "policy_eval",
            EventKind::Error => "error",
            EventKind::RunPaused => "run_paused",
            EventKind::RunResumed => "run_resumed",
            EventKind::RunCompleted => "run_completed",
            EventKind::RunFailed => "run_failed",
            EventKind::RunCancelled => "run_cancelled",
            EventKind::RouteSelected => "route_selected",
            EventKind::ChatStep => "chat_step",
        }
    }

    /// Parses [`EventKind::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "run_started" => EventKind::RunStarted,
            "step_started" => EventKind::StepStarted,
            "step_completed" => EventKind::StepCompleted,
            "step_failed" => EventKind::StepFailed,
            "tool_call" => EventKind::ToolCall,
            "llm_call" => EventKind::LlmCall,
            "policy_eval" => EventKind::PolicyEval,
            "error" => EventKind::Error,
            "run_paused" => EventKind::RunPaused,
            "run_resumed" => EventKind::RunResumed,
            "run_completed" => EventKind::RunCompleted,
            "run_failed" => EventKind::RunFailed,
            "run_cancelled" => EventKind::RunCancelled,
            "route_selected" => EventKind::RouteSelected,
            "chat_step" => EventKind::ChatStep,
            _ => return None,
        })
    }

    /// Whether this event ends the run's trace.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            EventKind::RunCompleted | EventKind::RunFailed | EventKind::RunCancelled
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event not yet appended (the store assigns its sequence number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Step it belongs to, if any.
    pub step_id: Option<Uuid>,
    /// Kind.
    pub kind: EventKind,
    /// JSON payload (already redacted).
    pub payload: PayloadJson,
    /// When it happened.
    pub ts: DateTime<Utc>,
}

impl NewEvent {
    /// An event with a typed payload: run-level when `step_id` is `None`. The payload is
    /// serialized here, once.
    pub fn new(step_id: Option<Uuid>, payload: impl Into<EventPayload>) -> Self {
        Self::new_at(step_id, payload, Utc::now())
    }

    /// [`NewEvent::new`] at a time the caller already read (a step's start or end).
    pub fn new_at(
        step_id: Option<Uuid>,
        payload: impl Into<EventPayload>,
        ts: DateTime<Utc>,
    ) -> Self {
        Self::typed_at(step_id, payload.into(), ts, |_| true, |_| {})
    }

    /// [`NewEvent::new_at`] with the payload's JSON text let through as it is when
    /// `keep(text)` holds, else built as a value and given to `fix` first (see
    /// [`PayloadJson::build`]).
    pub(crate) fn typed_at(
        step_id: Option<Uuid>,
        payload: EventPayload,
        ts: DateTime<Utc>,
        keep: impl FnOnce(&str) -> bool,
        fix: impl FnOnce(&mut Value),
    ) -> Self {
        let kind = payload.kind();
        let payload = payload.to_payload_json(keep, fix).unwrap_or_else(|e| {
            // Unreachable for the payload types (string-keyed maps only); the trace keeps
            // the failure instead of dropping the event.
            tracing::error!(error = %e, "event payload not serializable");
            PayloadJson::new(serde_json::json!({ "error": e.to_json() }))
        });
        NewEvent {
            step_id,
            kind,
            payload,
            ts,
        }
    }

    /// A run-level event with an untyped payload.
    pub fn run(kind: EventKind, payload: Value) -> Self {
        NewEvent {
            step_id: None,
            kind,
            payload: PayloadJson::new(payload),
            ts: Utc::now(),
        }
    }

    /// A step-level event with an untyped payload.
    pub fn step(step_id: Uuid, kind: EventKind, payload: Value) -> Self {
        NewEvent {
            step_id: Some(step_id),
            kind,
            payload: PayloadJson::new(payload),
            ts: Utc::now(),
        }
    }
}

/// An appended event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Run.
    pub run_id: RunId,
    /// Per-run sequence number: 1, 2, 3, ... without gaps.
    pub seq: u64,
    /// Step, if any.
    pub step_id: Option<Uuid>,
    /// Kind.
    pub kind: EventKind,
    /// Payload.
    pub payload: Value,
    /// When it happened.
    pub ts: DateTime<Utc>,
    /// Payload layout version ([`EVENT_SCHEMA_VERSION`]).
    pub schema_version: u16,
}

impl Event {
    /// Builds the stored form of `e` at `seq`.
    pub fn from_new(run_id: RunId, seq: u64, e: NewEvent) -> Self {
        Event {
            run_id,
            seq,
            step_id: e.step_id,
            kind: e.kind,
            payload: e.payload.into_value(),
            ts: e.ts,
            schema_version: EVENT_SCHEMA_VERSION,
        }
    }

    /// The typed payload. Fails with [`Error::Internal`] when the stored payload does not
    /// have its kind's layout, or was written by a newer release (a later schema version).
    pub fn decode(&self) -> Result<EventPayload> {
        match self.schema_version {
            1 => EventPayload::decode(self.kind, &self.payload).map_err(|e| {
                Error::Internal(format!("event {} of run {}: {e}", self.seq, self.run_id))
            }),
            v => Err(Error::Internal(format!(
                "event {} of run {} has payload schema version {v}; this release reads \
                 version {EVENT_SCHEMA_VERSION}",
                self.seq, self.run_id
            ))),
        }
    }
}
