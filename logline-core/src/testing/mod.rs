//! Test doubles and fixtures (feature `testing`): a scripted LLM, a fake tool hub, a sleeper
//! that records retry waits, and the golden run. They are real implementations of the traits,
//! driven by scripts.

pub mod golden;
mod hub;
mod llm;
mod sleep;

pub use hub::FakeToolHub;
pub use llm::ScriptedLlm;
pub use sleep::RecordingSleep;
