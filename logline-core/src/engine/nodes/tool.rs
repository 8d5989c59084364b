//! `tool_node`: one tool call with the node input as arguments; any failure fails the step.

use serde_json::Value;

use crate::engine::step::{NodeResult, StepCtx};
use crate::engine::tool_runtime;
use crate::workflow::ToolNode;

/// Calls the node's tool.
pub(super) async fn run(sc: &mut StepCtx<'_>, node: &ToolNode, input: &Value) -> NodeResult<Value> {
    tool_runtime::call_one(sc, &node.tool_id, input.clone(), node.timeout_ms).await
}
