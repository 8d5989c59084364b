//! The core conformance suite on PgStore and PgQueue, each check in its own schema.

mod support;

use std::sync::Arc;

use logline_core::queue::Queue;
use logline_core::store::Store;

async fn store() -> Arc<dyn Store> {
    Arc::new(support::fresh_store().await)
}

async fn queue() -> Arc<dyn Queue> {
    Arc::new(support::fresh_queue().await)
}

mod store_checks {
    use super::*;
    logline_core::store_conformance_tests!(store());
}

mod queue_checks {
    use super::*;
    logline_core::queue_conformance_tests!(queue());
}
