//! The core tool hub conformance suite on `McpToolHub`, against this crate's fixture server
//! (the echo tool `conformance_echo`; the server logs what it received).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use logline_core::conformance::hub::{HubCapabilities, HubFixture, SeenExecution};
use logline_core::tool::ToolHub;
use logline_mcp::McpToolHub;
use serde_json::{json, Value};

struct McpFixture {
    hub: McpToolHub,
    log: PathBuf,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl HubFixture for McpFixture {
    fn hub(&self) -> &dyn ToolHub {
        &self.hub
    }
    fn echo_tool(&self) -> String {
        "fixture.conformance_echo".into()
    }
    fn valid_arguments(&self) -> Value {
        json!({"text": "hello"})
    }
    fn invalid_arguments(&self) -> Value {
        json!({"text": 42})
    }
    fn seen(&self) -> Vec<SeenExecution> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| SeenExecution {
                tool_id: format!("fixture.{}", v["tool"].as_str().unwrap_or_default()),
                arguments: v["arguments"].clone(),
                user_id: v["meta"]["io.logline/subject"]["user_id"]
                    .as_str()
                    .map(str::to_string),
                idempotency_key: v["meta"]["io.logline/idempotency_key"]
                    .as_str()
                    .map(str::to_string),
            })
            .collect()
    }
}

async fn mcp() -> Arc<dyn HubFixture> {
    let dir = std::env::temp_dir().join(format!("logline-mcp-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("calls.jsonl");
    let config = support::fixture_stdio("fixture")
        .with_secret("FIXTURE_LOG", log.display().to_string())
        .with_secret("FIXTURE_PAGE", "3")
        .forwarding_subject();
    let hub = McpToolHub::new([config]).unwrap();
    Arc::new(McpFixture {
        hub,
        log,
        _dir: TempDir(dir),
    })
}

mod mcp_checks {
    use super::*;
    // MCP has no accounts.
    logline_core::hub_conformance_tests!(
        mcp(),
        HubCapabilities {
            connections: false,
            ..HubCapabilities::all()
        }
    );
}
