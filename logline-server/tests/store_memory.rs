//! The store suite on the memory backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use logline_server::store::{MemoryServerStore, ServerStore};

async fn fresh() -> Arc<dyn ServerStore> {
    Arc::new(MemoryServerStore::new())
}

store_suite!(fresh());
