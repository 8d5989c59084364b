//! MCP hub figures against this crate's fixture server on stdio:
//! - calls/s and p50/p99 latency of `McpToolHub::execute` next to the bare rmcp client
//!   (the same server and tool), so the difference is the hub's overhead per call
//!   (schema validation, progress bookkeeping, result mapping and cap);
//! - catalog sync of a server with 1,000 tools (pages of 100) into the in-memory store:
//!   a first sync (every tool written) and a second (nothing changed).
//!
//! `cargo bench -p logline-mcp --bench mcp` (`MCP_BENCH_CALLS`, default 2000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use logline_core::run::Subject;
use logline_core::tool::{ToolContext, ToolHub};
use logline_mcp::{McpCatalogSync, McpServerConfig, McpToolHub};
use rmcp::model::CallToolRequestParams;
use rmcp::ServiceExt;
use serde_json::json;

const FIXTURE: &str = env!("CARGO_BIN_EXE_logline-mcp-fixture");

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(label: &str, mut samples: Vec<Duration>, total: Duration) -> (Duration, Duration) {
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!(
        "{label:<28} {:>8.0} calls/s   p50 {:>7.1} µs   p99 {:>7.1} µs",
        samples.len() as f64 / total.as_secs_f64(),
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
    );
    (p50, p99)
}

async fn bare_client(n: usize) -> (Duration, Duration) {
    let cmd = tokio::process::Command::new(FIXTURE);
    let transport = rmcp::transport::TokioChildProcess::new(cmd).expect("spawn");
    let client = ().serve(transport).await.expect("handshake");
    let args = json!({"message": "hi"})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let call = || CallToolRequestParams::new("echo").with_arguments(args.clone());
    for _ in 0..100 {
        client.call_tool(call()).await.expect("warm-up");
    }
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        client.call_tool(call()).await.expect("call");
        samples.push(t.elapsed());
    }
    let total = start.elapsed();
    let _ = client.cancel().await;
    report("rmcp client (baseline)", samples, total)
}

async fn hub_calls(n: usize) -> (Duration, Duration) {
    let hub = McpToolHub::new([McpServerConfig::stdio("fx", FIXTURE, Vec::<String>::new())])
        .expect("hub");
    let ctx = ToolContext::for_subject(Subject::tenant("t").with_user("u"));
    for _ in 0..100 {
        hub.execute("fx.echo", json!({"message": "hi"}), &ctx)
            .await
            .expect("warm-up");
    }
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        hub.execute("fx.echo", json!({"message": "hi"}), &ctx)
            .await
            .expect("call");
        samples.push(t.elapsed());
    }
    report("McpToolHub::execute", samples, start.elapsed())
}

async fn catalog_sync() {
    let config = McpServerConfig::stdio("big", FIXTURE, Vec::<String>::new())
        .with_secret("FIXTURE_TOOLS", "1000")
        .with_secret("FIXTURE_PAGE", "100");
    let hub = McpToolHub::new([config]).expect("hub");
    let store = Arc::new(logline_core::memory::MemoryStore::new());
    let sync = McpCatalogSync::new(hub.clone(), store);
    // Connects first, so the figures are the sync alone.
    hub.execute(
        "big.stats",
        json!({}),
        &ToolContext::for_subject(Subject::tenant("t")),
    )
    .await
    .expect("connect");
    for label in ["first sync (all written)", "second sync (unchanged)"] {
        let t = Instant::now();
        let r = sync.sync_server("big").await.expect("sync");
        println!(
            "catalog {label:<26} {:>7.1} ms   {} tools listed in {} pages, {} written",
            t.elapsed().as_secs_f64() * 1e3,
            r.report.listed,
            r.report.pages,
            r.report.written(),
        );
    }
}

fn main() {
    let n: usize = std::env::var("MCP_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!("stdio echo calls, {n} sequential calls each:");
        let (b50, b99) = bare_client(n).await;
        let (h50, h99) = hub_calls(n).await;
        println!(
            "hub overhead per call: p50 {:+.1} µs, p99 {:+.1} µs",
            (h50.as_secs_f64() - b50.as_secs_f64()) * 1e6,
            (h99.as_secs_f64() - b99.as_secs_f64()) * 1e6
        );
        catalog_sync().await;
    });
}
