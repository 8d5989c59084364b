//! Test doubles and fixtures (feature `testing`): a scripted LLM, a fake tool hub, a fake
//! embedder and the golden run. They are real implementations of the traits, driven by scripts.

mod embedder;
pub mod golden;
mod hub;
mod llm;

pub use embedder::FakeEmbedder;
pub use hub::FakeToolHub;
pub use llm::ScriptedLlm;
