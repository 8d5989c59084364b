//! Test doubles and fixtures (feature `testing`): a scripted LLM, a fake tool hub, a fake
//! embedder, a sleeper that records retry waits, the golden run and fuzzing support. They are real
//! implementations of the traits, driven by scripts.

mod embedder;
pub mod fuzz;
pub mod golden;
mod hub;
mod llm;
mod sleep;

pub use embedder::FakeEmbedder;
pub use hub::FakeToolHub;
pub use llm::ScriptedLlm;
pub use sleep::RecordingSleep;

/// Locks a double's script or record. Each holds plain lists changed by single pushes and
/// pops, so after a panic on another thread (a failing test) they are still whole: a
/// poisoned lock is used as is, and the double keeps answering and reporting.
fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
