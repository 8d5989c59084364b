#![doc = include_str!("../README.md")]

mod client;
mod config;
mod error;

pub use client::{McpCatalogSync, McpToolHub, ServerSyncReport, ToolProgress};
pub use config::{
    Backoff, McpServerConfig, Secret, Transport, DEFAULT_CALL_TIMEOUT, DEFAULT_HUB_NAME,
    DEFAULT_MAX_RESULT_BYTES,
};
mod server;

pub use server::{
    HttpAuth, McpServer, McpServerBuilder, McpService, Published, DEFAULT_MAX_WAIT, MCP_PATH,
    RUN_STATUS_TOOL,
};
