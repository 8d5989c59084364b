//! The `policy_eval` payload: a decision of the policy engine, or a denial by budget or by
//! an approver.

use serde::{Deserialize, Serialize};

use crate::error::BudgetKind;
use crate::policy::{ControlChanges, Decision, Effect, PolicyAction, PolicyResource};
use crate::run::{Budget, RunUsage};

/// `policy_eval`: what was decided where, tagged by `action` (a [`PolicyAction`] name,
/// `budget` or `approval`). Step-level for tool and agent calls, run-level otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PolicyEvalPayload {
    /// The policy engine at `run_start`.
    RunStart(PolicyDecided),
    /// The policy engine before a tool call.
    ToolCall(PolicyDecided),
    /// The policy engine before an agent call.
    AgentCall(PolicyDecided),
    /// The policy engine before a tool is shown to a model.
    ToolExposure(PolicyDecided),
    /// A per-run budget ran out.
    Budget(BudgetDenied),
    /// An approver denied a gate.
    Approval(ApprovalDenied),
}

/// A decision of the policy engine at one of its [`PolicyAction`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyDecided {
    /// What was checked (`{"type": "tool", "id": ...}`).
    pub resource: PolicyResource,
    /// The effect (`modify` is reported as `allow` with `changes`).
    pub decision: Effect,
    /// The deciding policy; `null` when none matched.
    pub policy_id: Option<String>,
    /// Why.
    pub reason: String,
    /// Every matching policy.
    #[serde(default)]
    pub matched: Vec<String>,
    /// Control changes of matching `modify` policies; `null` when none.
    #[serde(default)]
    pub changes: Option<ControlChanges>,
}

/// A budget denial (the run fails with `budget_exceeded`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetDenied {
    /// Always `deny`.
    pub decision: Effect,
    /// [`BudgetKind::reason`], e.g. `budget_exceeded: cost`.
    pub reason: String,
    /// Consumption when the budget ran out.
    pub usage: RunUsage,
    /// The budget.
    pub budget: Budget,
}

/// An approver's denial of a gate (the run fails with `policy_denied`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalDenied {
    /// The gate.
    pub gate_id: String,
    /// Always `deny`.
    pub decision: Effect,
    /// Who denied.
    pub approver: String,
    /// Why.
    pub reason: String,
}

impl PolicyEvalPayload {
    /// The policy engine's `decision` at `action` about `resource`.
    pub fn decided(action: PolicyAction, resource: PolicyResource, decision: &Decision) -> Self {
        let d = PolicyDecided {
            resource,
            decision: decision.effect,
            policy_id: decision.policy_id.clone(),
            reason: decision.reason.clone(),
            matched: decision.matched.clone(),
            changes: decision.changes.clone(),
        };
        match action {
            PolicyAction::RunStart => PolicyEvalPayload::RunStart(d),
            PolicyAction::ToolCall => PolicyEvalPayload::ToolCall(d),
            PolicyAction::AgentCall => PolicyEvalPayload::AgentCall(d),
            PolicyAction::ToolExposure => PolicyEvalPayload::ToolExposure(d),
        }
    }

    /// The `kind` budget ran out at `usage`.
    pub fn budget_exceeded(kind: BudgetKind, usage: RunUsage, budget: Budget) -> Self {
        PolicyEvalPayload::Budget(BudgetDenied {
            decision: Effect::Deny,
            reason: kind.reason().to_string(),
            usage,
            budget,
        })
    }

    /// `approver` denied `gate_id`.
    pub fn approval_denied(
        gate_id: impl Into<String>,
        approver: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        PolicyEvalPayload::Approval(ApprovalDenied {
            gate_id: gate_id.into(),
            decision: Effect::Deny,
            approver: approver.into(),
            reason: reason.into(),
        })
    }

    /// The `action` field: a [`PolicyAction`] name, `budget` or `approval`.
    pub fn action(&self) -> &'static str {
        match self {
            PolicyEvalPayload::RunStart(_) => PolicyAction::RunStart.as_str(),
            PolicyEvalPayload::ToolCall(_) => PolicyAction::ToolCall.as_str(),
            PolicyEvalPayload::AgentCall(_) => PolicyAction::AgentCall.as_str(),
            PolicyEvalPayload::ToolExposure(_) => PolicyAction::ToolExposure.as_str(),
            PolicyEvalPayload::Budget(_) => "budget",
            PolicyEvalPayload::Approval(_) => "approval",
        }
    }

    /// The effect decided.
    pub fn decision(&self) -> Effect {
        match self {
            PolicyEvalPayload::RunStart(d)
            | PolicyEvalPayload::ToolCall(d)
            | PolicyEvalPayload::AgentCall(d)
            | PolicyEvalPayload::ToolExposure(d) => d.decision,
            PolicyEvalPayload::Budget(b) => b.decision,
            PolicyEvalPayload::Approval(a) => a.decision,
        }
    }
}
