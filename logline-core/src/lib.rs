#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod agent;
pub mod app;
pub mod artifact;
pub mod chat;
#[cfg(feature = "testing")]
#[allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]
pub mod conformance;
pub mod engine;
pub mod error;
pub mod event;
mod forward;
mod json;
pub mod layer;
pub mod llm;
pub mod mapping;
pub mod memory;
pub mod notes;
pub mod nul;
pub mod owner;
pub mod policy;
pub mod queue;
pub mod recall;
pub mod redact;
pub mod retention;
pub mod retry;
pub mod run;
pub mod schema;
pub mod search;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod tool;
pub mod workflow;

pub use error::{BudgetKind, Error, ErrorKind, Result};
