//! `human_gate`: the run pauses until a person approves this visit of the gate.

use serde_json::Value;

use crate::engine::gate;
use crate::engine::step::{Interrupt, NodeResult, StepCtx};
use crate::run::GateSubject;
use crate::workflow::HumanGateNode;

/// Passes `input` on once the gate of this visit is approved; pauses the run before.
pub(super) fn run(
    sc: &StepCtx<'_>,
    node_id: &str,
    node: &HumanGateNode,
    input: &Value,
    visit: u32,
) -> NodeResult<Value> {
    let gate_id = format!("node:{node_id}:{visit}");
    if gate::approved(sc.run, &gate_id, None) {
        return Ok(input.clone());
    }
    let reason = node
        .message
        .clone()
        .unwrap_or_else(|| format!("approval required at `{node_id}`"));
    let mut pending = gate::pending(
        gate_id,
        GateSubject::Node {
            node_id: node_id.to_string(),
        },
        reason,
        None,
    );
    pending.required_role.clone_from(&node.required_role);
    pending.forbid_self_approval = node.forbid_self_approval;
    Err(Interrupt::Pause(Box::new(pending)))
}
