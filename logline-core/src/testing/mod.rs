//! Test doubles and fixtures (feature `testing`): a scripted LLM, a fake tool hub and the
//! golden run. They are real implementations of the traits, driven by scripts.

pub mod golden;
mod hub;
mod llm;

pub use hub::FakeToolHub;
pub use llm::ScriptedLlm;
