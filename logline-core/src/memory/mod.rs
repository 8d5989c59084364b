//! In-memory backends with the same semantics as the durable ones: embedded use, tests, benches.

mod apps;
mod compact;
mod queue;
mod recall;
mod store;

pub use apps::MemoryAppStore;
pub use queue::MemoryQueue;
pub use recall::MemoryRecallStore;
pub use store::MemoryStore;
