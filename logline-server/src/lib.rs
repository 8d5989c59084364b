//! The LogLine HTTP API: an axum [`Router`](axum::Router) a host mounts ([`router`],
//! [`Server`]), with authentication (argon2 passwords, JWT access and rotating refresh
//! tokens, hashed API keys), roles, tenant isolation through the engine's scoped handles,
//! rate limits, audit rows, metrics and a generated OpenAPI 3.1 document; chat with tools,
//! file uploads and artifacts, apps, and a web console.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod chat;
pub mod config;
pub mod console;
pub mod demo;
pub mod deploy;
pub mod error;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod openapi;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod routes;
mod server;
pub mod state;
pub mod store;

pub use config::ServerConfig;
pub use error::{ApiError, Problem};
pub use server::{kinds, router, Server, OPENAPI_PATH};
