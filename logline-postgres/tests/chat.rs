//! The chat suite on PostgreSQL: the chat store checks and whole chat tasks (scripted model,
//! fake hub) with the engine store, queue and chat store of one fresh schema each.

mod support;

use std::sync::Arc;

use logline_core::conformance::chat::ChatFixture;

async fn fixture() -> ChatFixture {
    let backend = support::fresh_backend_in(&support::unique_schema()).await;
    ChatFixture {
        store: Arc::new(backend.store()),
        queue: Arc::new(backend.queue()),
        chat: Arc::new(backend.chat_store()),
    }
}

mod pg_chat {
    use super::*;
    logline_core::chat_conformance_tests!(fixture());
}
