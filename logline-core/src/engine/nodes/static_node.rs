//! `static`: a deterministic transform (an output template or a host handler).

use serde_json::Value;

use crate::engine::step::StepCtx;
use crate::error::{Error, Result};
use crate::workflow::StaticNode;

/// The node's output for `input`.
pub(super) fn run(sc: &StepCtx<'_>, node: &StaticNode, input: &Value) -> Result<Value> {
    if let Some(name) = &node.handler {
        let h = sc.exec.statics.get(name).ok_or_else(|| {
            Error::InvalidInput(format!("static handler `{name}` is not registered"))
        })?;
        return h(input, &sc.run.input);
    }
    Ok(match &node.output {
        Some(t) => super::resolve(t, sc.run, input),
        None => input.clone(),
    })
}
