//! In-memory backends with the same semantics as the durable ones: embedded use, tests, benches.

mod queue;
mod store;

pub use queue::MemoryQueue;
pub use store::MemoryStore;
