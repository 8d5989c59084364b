//! The tenant boundary on PostgreSQL: the core tenancy checks (tenant B gets `NotFound` for
//! every run operation on tenant A's runs; lists filtered by tenant in SQL; starts act for
//! the principal; gate roles and self-approval) on a fresh schema each.

mod support;

use logline_core::engine::EngineBuilder;

async fn builder() -> EngineBuilder {
    support::fresh_backend_in(&support::unique_schema())
        .await
        .engine_builder()
}

mod tenancy_checks {
    use super::*;
    logline_core::tenancy_conformance_tests!(builder());
}

mod call_gate_checks {
    use super::*;
    logline_core::call_gate_conformance_tests!(builder());
}
