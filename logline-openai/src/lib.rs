#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod body;
mod chat;
mod client;
mod common;
mod config;
mod embedder;
mod error;
mod names;
pub mod pricing;
mod provider;
mod responses;
mod sse;
mod stream;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{
    ApiKey, ApiMode, OpenAiConfig, OpenAiConfigBuilder, DEFAULT_BASE_URL, DEFAULT_DEADLINE,
    DEFAULT_EMBEDDING_MODEL, DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_RESPONSE_BYTES,
    MAX_EMBEDDING_BATCH,
};
pub use embedder::OpenAiEmbedder;
/// Retry settings and the sleeper come from core; re-exported for convenience.
pub use logline_core::retry::{Backoff, Jitter, RetryPolicy, Sleep, TokioSleep};
pub use pricing::openai_prices;
pub use provider::OpenAiProvider;
