//! The shared conformance suite on the in-memory backends.

use std::sync::Arc;

use logline_core::memory::{MemoryQueue, MemoryStore};
use logline_core::queue::Queue;
use logline_core::store::Store;

async fn store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

async fn queue() -> Arc<dyn Queue> {
    Arc::new(MemoryQueue::new())
}

mod store_checks {
    use super::*;
    logline_core::store_conformance_tests!(store());
}

mod queue_checks {
    use super::*;
    logline_core::queue_conformance_tests!(queue());
}
