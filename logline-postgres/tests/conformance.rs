//! The core conformance suites on PgStore, PgQueue, PgRecallStore and PgAppStore, each check in
//! its own schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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

mod vector_checks {
    use logline_core::search::VectorStore;
    use std::sync::Arc;

    async fn vector_store() -> Arc<dyn VectorStore> {
        Arc::new(super::support::fresh_backend().await.store())
    }
    logline_core::vector_conformance_tests!(vector_store());
}

mod recall_checks {
    use logline_core::recall::RecallStore;
    use std::sync::Arc;

    async fn recall_store() -> Arc<dyn RecallStore> {
        Arc::new(super::support::fresh_backend().await.recall_store())
    }
    logline_core::recall_conformance_tests!(recall_store());
}

/// The same checks through the inverted-file index: trained beforehand on another tenant's
/// vectors, so every item written by a check is assigned a list and searched through it.
mod recall_ivf_checks {
    use logline_core::recall::{MemoryItem, Owner, OwnerKind, RecallStore};
    use logline_postgres::IvfOptions;
    use std::sync::Arc;

    async fn trained_store() -> Arc<dyn RecallStore> {
        let store = super::support::fresh_backend()
            .await
            .recall_store()
            .with_options(IvfOptions {
                lists: Some(4),
                probes: 4,
                ..IvfOptions::default()
            });
        for i in 0..40 {
            let mut item = MemoryItem::new("seed", Owner::new(OwnerKind::Tenant, "seed"), "seed");
            let a = i as f32 * 0.37;
            item.embedding = vec![a.cos(), a.sin(), (i % 3) as f32 - 1.0];
            store.put(&item).await.unwrap();
        }
        let report = store.train_index().await.unwrap().unwrap();
        assert_eq!((report.dims, report.lists, report.assigned), (3, 4, 40));
        Arc::new(store)
    }
    logline_core::recall_conformance_tests!(trained_store());
}

mod app_checks {
    use logline_core::app::AppStore;
    use std::sync::Arc;

    async fn app_store() -> Arc<dyn AppStore> {
        Arc::new(super::support::fresh_backend().await.apps())
    }
    logline_core::app_conformance_tests!(app_store());
}
