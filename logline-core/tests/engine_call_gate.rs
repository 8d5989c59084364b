//! The tool gate holds at call time on the memory backends: the shared call-gate checks (a
//! blocked tag or an unconnected toolkit is refused and the model told; a tool riskier than
//! the ceiling waits for a person).

use logline_core::engine::{Engine, EngineBuilder};

async fn builder() -> EngineBuilder {
    Engine::builder()
}

mod call_gate_checks {
    use super::*;
    logline_core::call_gate_conformance_tests!(builder());
}
