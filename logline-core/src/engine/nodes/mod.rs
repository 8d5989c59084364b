//! One module per node kind; each returns the node's output, and this module asks the
//! edges for the next node.

mod agent;
mod chat;
mod human_gate;
mod router;
mod static_node;
mod tool;

use serde_json::Value;

use super::edges;
use super::step::{NodeResult, StepCtx};
use crate::mapping::Scope;
use crate::run::Run;
use crate::workflow::{NodeKind, Workflow, WorkflowNode};

/// What a node produced.
pub(crate) struct NodeOutput {
    /// Stored on the step.
    pub output: Value,
    /// Input of the next node.
    pub carry: Value,
    /// Next node; `None` ends the run.
    pub next: Option<String>,
}

/// Executes `node` on `input` (its `visit`-th execution in this run) and picks the next node.
pub(crate) async fn execute(
    sc: &mut StepCtx<'_>,
    wf: &Workflow,
    node: &WorkflowNode,
    input: &Value,
    visit: u32,
) -> NodeResult<NodeOutput> {
    let output = match &node.kind {
        NodeKind::Static(s) => static_node::run(sc, s, input)?,
        NodeKind::Tool(t) => tool::run(sc, t, input).await?,
        NodeKind::Agent(a) => agent::run(sc, a, input).await?,
        NodeKind::Router(r) => return router::run(sc, &node.id, r, input).await,
        NodeKind::HumanGate(g) => human_gate::run(sc, &node.id, g, input, visit)?,
        NodeKind::Chat(c) => chat::run(sc, c, input).await?,
    };
    let next = edges::next(sc, &wf.definition, node, &output).await?;
    Ok(NodeOutput {
        carry: output.clone(),
        output,
        next,
    })
}

/// Resolves a template against the run: `$input` (run input), `$prev` (`prev`, the previous
/// node's output) and `$nodes.<id>` (latest outputs the cursor keeps, read in place).
pub(crate) fn resolve(template: &Value, run: &Run, prev: &Value) -> Value {
    crate::mapping::resolve_scoped(template, &|name| match name {
        "input" => Some(Scope::Value(&run.input)),
        "prev" => Some(Scope::Value(prev)),
        "nodes" => Some(Scope::Map(&run.cursor.outputs)),
        _ => None,
    })
}
