//! Chat tasks end to end with the scripted model: `send` → worker → summary/router/executor
//! → tool → answer saved, on the memory backends and (with `DATABASE_URL`, or the local
//! server) PostgreSQL. Prints tasks/s and the share of task time spent outside model calls.
//!
//! `cargo bench --bench chat` (`CHAT_BENCH_TASKS` tasks per figure, default 400).

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use logline_core::chat::ChatConfig;
use logline_core::conformance::chat::ChatFixture;
use logline_core::conformance::chat_flow::{alice, chat_hub, chat_setup, router};
use logline_core::llm::{LlmProvider, LlmRequest, LlmResponse, Message, ToolCallRequest};
use logline_core::run::RunStatus;
use serde_json::json;

/// The scripted model of a note task, timing every call.
struct TimedModel {
    nanos: AtomicU64,
    calls: AtomicU64,
}

fn answer(req: &LlmRequest) -> LlmResponse {
    if req.output_schema.is_some() {
        return LlmResponse::text(router("create_note", true, &["notes"], "low", None).to_string());
    }
    if matches!(req.messages.last(), Some(Message::Tool { .. })) {
        return LlmResponse::text("Saved.");
    }
    LlmResponse {
        tool_calls: vec![ToolCallRequest {
            id: "c1".into(),
            name: "notes_create".into(),
            arguments: json!({"title": "milk", "body": "buy milk"}),
        }],
        ..Default::default()
    }
}

#[async_trait]
impl LlmProvider for TimedModel {
    fn name(&self) -> &str {
        "timed-scripted"
    }
    async fn complete(&self, req: &LlmRequest) -> logline_core::Result<LlmResponse> {
        let started = Instant::now();
        let r = answer(req);
        self.nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(r)
    }
}

async fn measure(label: &str, fixture: ChatFixture, tasks: usize, concurrency: usize) {
    let model = Arc::new(TimedModel {
        nanos: AtomicU64::new(0),
        calls: AtomicU64::new(0),
    });
    let s = chat_setup(
        &fixture,
        model.clone(),
        Arc::new(chat_hub()),
        ChatConfig::default(),
    )
    .await;
    let chat = s.chat.scoped(alice()).expect("scoped");
    let conversations: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..concurrency {
            v.push(
                chat.create_conversation("bench")
                    .await
                    .expect("conversation")
                    .id,
            );
        }
        v
    };
    let busy = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut lanes = Vec::new();
    for conv in conversations {
        let (chat, busy) = (chat.clone(), busy.clone());
        let per_lane = tasks / concurrency;
        lanes.push(tokio::spawn(async move {
            for _ in 0..per_lane {
                let t0 = Instant::now();
                let task = chat
                    .send(conv, "note: buy milk", Vec::new())
                    .await
                    .expect("send");
                let view = chat.wait(task).await.expect("wait");
                assert_eq!(view.status, RunStatus::Completed, "{:?}", view.error);
                busy.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
        }));
    }
    for lane in lanes {
        lane.await.expect("lane");
    }
    let wall = started.elapsed();
    let done = (tasks / concurrency) * concurrency;
    let model_ns = model.nanos.load(Ordering::Relaxed) as f64;
    let task_ns = busy.load(Ordering::Relaxed) as f64;
    println!(
        "{label:<12} {concurrency:>2} concurrent: {done} tasks in {:.2} s = {:.0} tasks/s, \
         {:.2} ms per task, {} model calls, {:.2}% of task time outside model calls",
        wall.as_secs_f64(),
        done as f64 / wall.as_secs_f64(),
        task_ns / done as f64 / 1e6,
        model.calls.load(Ordering::Relaxed),
        100.0 * (1.0 - model_ns / task_ns)
    );
    s.pool.shutdown().await;
}

fn memory() -> ChatFixture {
    ChatFixture {
        store: Arc::new(logline_core::memory::MemoryStore::new()),
        queue: Arc::new(logline_core::memory::MemoryQueue::new()),
        chat: Arc::new(logline_core::chat::MemoryChatStore::new()),
    }
}

async fn postgres(schema: &str) -> Option<(logline_postgres::PgBackend, ChatFixture)> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let config = logline_postgres::PgConfig::new(url)
        .schema(schema)
        .max_connections(16);
    let backend = logline_postgres::PgBackend::connect(&config).await.ok()?;
    backend.migrate().await.ok()?;
    let fixture = ChatFixture {
        store: Arc::new(backend.store()),
        queue: Arc::new(backend.queue()),
        chat: Arc::new(backend.chat_store()),
    };
    Some((backend, fixture))
}

fn main() {
    let tasks: usize = std::env::var("CHAT_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        measure("memory", memory(), tasks, 1).await;
        measure("memory", memory(), tasks, 8).await;
        for concurrency in [1, 8] {
            let schema = format!("llbench_chat_{}_{concurrency}", std::process::id());
            let Some((backend, fixture)) = postgres(&schema).await else {
                println!("postgresql: not reachable, skipped");
                return;
            };
            measure("postgresql", fixture, tasks / 4, concurrency).await;
            let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            let _ = sqlx::query(&drop).execute(backend.pool()).await;
        }
    });
}
