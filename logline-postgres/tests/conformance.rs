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

async fn artifact_index() -> Arc<dyn logline_core::artifact::ArtifactIndex> {
    let backend = support::fresh_backend_in(&support::unique_schema()).await;
    Arc::new(logline_postgres::PgArtifactIndex::new(
        backend.pool().clone(),
    ))
}

mod artifact_checks {
    use super::*;
    logline_core::artifact_conformance_tests!(artifact_index());
}

async fn note_store() -> Arc<dyn logline_core::notes::NoteStore> {
    let backend = support::fresh_backend_in(&support::unique_schema()).await;
    Arc::new(logline_postgres::PgNoteStore::new(backend.pool().clone()))
}

mod note_checks {
    use super::*;
    logline_core::notes_conformance_tests!(note_store());
}
