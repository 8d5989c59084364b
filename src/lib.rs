//! LogLine: an embeddable agent OS.
//!
//! This facade re-exports the workspace's crates so a host can depend on one crate and pick
//! adapters by feature:
//!
//! | feature | module | crate |
//! |---|---|---|
//! | (always) | [`core`] | `logline-core`: types, traits, engine, in-memory backends, tool search |
//! | `postgres` | `postgres` | `logline-postgres`: `PgBackend`, `PgStore`, `PgQueue` |
//! | `openai` | `openai` | `logline-openai`: `OpenAiProvider`, `OpenAiEmbedder` |
//! | `composio` | `composio` | `logline-composio`: `ComposioToolHub` |
//! | `skills` | `skills` | `logline-skills`: `SkillsHub` (email drafts, PDF pipeline, scaffolds, notes) |
//! | `mcp` | `mcp` | `logline-mcp`: `McpToolHub` (MCP servers as a hub), `McpServer` (workflows as MCP tools) |

pub use logline_core as core;
pub use logline_core::engine::{Engine, EngineBuilder, StartRun, WorkerOptions};
pub use logline_core::{Error, ErrorKind, Result};

#[cfg(feature = "composio")]
pub use logline_composio as composio;
#[cfg(feature = "mcp")]
pub use logline_mcp as mcp;
#[cfg(feature = "openai")]
pub use logline_openai as openai;
#[cfg(feature = "postgres")]
pub use logline_postgres as postgres;
#[cfg(feature = "skills")]
pub use logline_skills as skills;
