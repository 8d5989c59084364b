//! The store suite on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use logline_server::store::{PgServerStore, ServerStore};

async fn fresh() -> Arc<dyn ServerStore> {
    let (backend, _) = support::pg::fresh_backend().await;
    Arc::new(PgServerStore::new(backend.pool().clone()))
}

store_suite!(fresh());
