//! The chat suite on the memory backends: store checks and whole chat tasks (scripted
//! model, fake hub).

use std::sync::Arc;

use logline_core::chat::MemoryChatStore;
use logline_core::conformance::chat::ChatFixture;
use logline_core::memory::{MemoryQueue, MemoryStore};

async fn fixture() -> ChatFixture {
    ChatFixture {
        store: Arc::new(MemoryStore::new()),
        queue: Arc::new(MemoryQueue::new()),
        chat: Arc::new(MemoryChatStore::new()),
    }
}

mod memory_chat {
    use super::*;
    logline_core::chat_conformance_tests!(fixture());
}
