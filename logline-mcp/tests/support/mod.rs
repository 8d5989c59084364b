//! Peers of the tests: the fixture server of this crate, the reference server
//! `@modelcontextprotocol/server-everything` (installed by `scripts/test` into
//! `target/npm`, or at `MCP_SERVER_EVERYTHING`), and HTTP child processes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use logline_core::run::Subject;
use logline_core::tool::{PageRequest, ToolContext, ToolHub, ToolSpec};
use logline_mcp::McpServerConfig;

pub const FIXTURE: &str = env!("CARGO_BIN_EXE_logline-mcp-fixture");

/// The entry script of server-everything.
pub fn everything_js() -> PathBuf {
    if let Some(p) = std::env::var_os("MCP_SERVER_EVERYTHING") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test (it installs @modelcontextprotocol/server-everything)",
        p.display()
    );
    p
}

pub fn everything_stdio() -> McpServerConfig {
    McpServerConfig::stdio(
        "everything",
        "node",
        [everything_js().display().to_string(), "stdio".to_string()],
    )
}

pub fn fixture_stdio(name: &str) -> McpServerConfig {
    McpServerConfig::stdio(name, FIXTURE, Vec::<String>::new())
}

pub fn ctx() -> ToolContext {
    ToolContext::for_subject(Subject::tenant("t1").with_user("u1"))
}

/// Every tool of the hub, through its pages.
pub async fn list_all(hub: &dyn ToolHub) -> Vec<ToolSpec> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = hub
            .list_tools(PageRequest {
                cursor: cursor.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        out.extend(page.tools);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// A free local port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop.
pub struct Child(pub tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Spawns `cmd` and waits until `port` accepts connections.
pub async fn spawn_http(mut cmd: tokio::process::Command, port: u16) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let child = Child(cmd.spawn().unwrap());
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server on port {port} did not start");
}

/// server-everything over streamable HTTP.
pub async fn everything_http() -> (Child, McpServerConfig) {
    let port = free_port();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(everything_js())
        .arg("streamableHttp")
        .env("PORT", port.to_string());
    let child = spawn_http(cmd, port).await;
    let config = McpServerConfig::http("everything", format!("http://127.0.0.1:{port}/mcp"));
    (child, config)
}

/// The fixture over streamable HTTP.
pub async fn fixture_http(name: &str) -> (Child, McpServerConfig) {
    let port = free_port();
    let mut cmd = tokio::process::Command::new(FIXTURE);
    cmd.arg("--http").arg(format!("127.0.0.1:{port}"));
    let child = spawn_http(cmd, port).await;
    let config = McpServerConfig::http(name, format!("http://127.0.0.1:{port}/mcp"));
    (child, config)
}
