//! Whole chat tasks on a backend (engine store, queue and chat store of one backend), with
//! the scripted model and a fake hub: a chat-only answer, a note through router → search →
//! executor → tool, an email that waits for confirmation, the tool-call cap, a crash-resumed
//! task, bounded prompts on a long conversation, and the tenant boundary.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::chat::ChatFixture;
use crate::chat::{ChatConfig, ChatEvent, ChatService, NewUserMessage, ScopedChat, TaskView};
use crate::engine::{Engine, Principal, WorkerOptions, WorkerPool};
use crate::error::ErrorKind;
use crate::llm::{LlmProvider, LlmRequest, LlmResponse};
use crate::run::RunStatus;
use crate::search::{GateRules, SearchToolSource, ToolIndex, ToolSearch};
use crate::testing::{FakeToolHub, ScriptedLlm};
use crate::tool::{RiskLevel, ToolSpec};

/// A chat engine on the fixture's backends, with workers.
pub struct ChatSetup {
    /// The engine.
    pub engine: Engine,
    /// The chat.
    pub chat: ChatService,
    /// The hub (`notes.create`, `GMAIL_SEND_EMAIL`, `GMAIL_DELETE_EMAIL`).
    pub hub: Arc<FakeToolHub>,
    /// Workers of the engine.
    pub pool: WorkerPool,
}

/// The fake hub of the checks; alice has connected gmail.
pub fn chat_hub() -> FakeToolHub {
    let object = |props: Value| json!({"type": "object", "properties": props});
    FakeToolHub::new("fakehub")
        .tool(
            ToolSpec::new(
                "notes.create",
                "Create a note with a title and a body",
                object(json!({"title": {"type": "string"}, "body": {"type": "string"}})),
            )
            .in_toolkit("notes")
            .with_tags(["create", "notes"]),
            |args| Ok(json!({"id": "note_1", "title": args["title"]})),
        )
        .tool(
            {
                let mut t = ToolSpec::new(
                    "GMAIL_SEND_EMAIL",
                    "Send an email to a recipient",
                    object(
                        json!({"to": {"type": "string"}, "subject": {"type": "string"},
                                  "body": {"type": "string"}}),
                    ),
                )
                .in_toolkit("gmail")
                .with_risk(RiskLevel::High)
                .with_tags(["send", "email"]);
                t.requires_connection = true;
                t
            },
            |_| Ok(json!({"message_id": "m_1", "status": "sent"})),
        )
        .tool(
            {
                let mut t = ToolSpec::new(
                    "GMAIL_DELETE_EMAIL",
                    "Delete an email",
                    object(json!({"id": {"type": "string"}})),
                )
                .in_toolkit("gmail")
                .with_tags(["delete", "email"]);
                t.requires_connection = true;
                t
            },
            |_| Ok(json!({"deleted": true})),
        )
        .connect("alice", "gmail")
}

/// Builds the engine on the fixture with `llm`, installs the chat with `config`, starts
/// workers.
pub async fn chat_setup(
    f: &ChatFixture,
    llm: Arc<dyn LlmProvider>,
    hub: Arc<FakeToolHub>,
    config: ChatConfig,
) -> ChatSetup {
    let workers = WorkerOptions {
        poll: Duration::from_millis(10),
        ..WorkerOptions::default()
    };
    chat_setup_with(f, llm, hub, config, workers).await
}

/// [`chat_setup`] with these worker options.
pub async fn chat_setup_with(
    f: &ChatFixture,
    llm: Arc<dyn LlmProvider>,
    hub: Arc<FakeToolHub>,
    config: ChatConfig,
    workers: WorkerOptions,
) -> ChatSetup {
    let search = ToolSearch::new(ToolIndex::from_tools(hub.specs())).with_hub(hub.clone());
    let source = SearchToolSource::new(Arc::new(search))
        .gate(GateRules::default().max_risk(RiskLevel::High));
    let engine = Engine::builder()
        .store(f.store.clone())
        .queue(f.queue.clone())
        .default_llm(llm)
        .tool_hub(hub.clone())
        .tool_source("default", Arc::new(source))
        .chat_store(f.chat.clone())
        .build()
        .await
        .expect("engine");
    engine.register_tools(&hub.specs()).await.expect("tools");
    let chat = ChatService::install(engine.clone(), f.chat.clone(), config)
        .await
        .expect("install");
    let pool = engine.spawn_workers(workers);
    ChatSetup {
        engine,
        chat,
        hub,
        pool,
    }
}

/// Alice of tenant A.
pub fn alice() -> Principal {
    Principal::user("tenant-a", "alice")
}

/// A router answer.
pub fn router(intent: &str, tools: bool, apps: &[&str], risk: &str, answer: Option<&str>) -> Value {
    json!({"intent": intent, "needs_tools": tools, "candidate_apps": apps, "risk_level": risk,
           "needs_files": false, "requires_confirmation": risk == "high", "answer": answer})
}

/// Waits (bounded) for the task to finish or pause.
pub async fn settle(chat: &ScopedChat, task: crate::chat::TaskId) -> TaskView {
    tokio::time::timeout(Duration::from_secs(20), chat.wait(task))
        .await
        .expect("the task settles in time")
        .expect("wait")
}

async fn one_message_task(s: &ChatSetup, text: &str) -> (ScopedChat, crate::chat::TaskId) {
    let chat = s.chat.scoped(alice()).expect("scoped");
    let c = chat.create_conversation("t").await.expect("conversation");
    let task = chat.send(c.id, text, Vec::new()).await.expect("send");
    (chat, task)
}

/// A question that needs no tools: one model call (the router answers), no tool search.
pub async fn chat_only_question_takes_one_model_call(f: ChatFixture) {
    let llm = Arc::new(ScriptedLlm::new().reply_json(router(
        "greet",
        false,
        &[],
        "low",
        Some("Hello, Alice!"),
    )));
    let s = chat_setup(&f, llm.clone(), Arc::new(chat_hub()), ChatConfig::default()).await;
    let (chat, task) = one_message_task(&s, "hi there").await;
    let view = settle(&chat, task).await;
    assert_eq!(view.status, RunStatus::Completed, "{:?}", view.error);
    assert_eq!(view.answer.as_deref(), Some("Hello, Alice!"));
    assert_eq!(llm.calls(), 1, "the router's answer is the reply");
    assert!(llm.requests()[0].tools.is_empty());
    let history = chat.history(task).await.expect("history");
    assert!(
        matches!(history[0], ChatEvent::Router { .. }),
        "{history:?}"
    );
    assert!(!history
        .iter()
        .any(|e| matches!(e, ChatEvent::ToolsSelected { .. })));
    assert_eq!(view.task.router.expect("stored")["intent"], "greet");
    let msgs = chat
        .messages(view.task.conversation_id, 0, 10)
        .await
        .expect("messages");
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].content, "Hello, Alice!");
    assert_eq!(s.hub.executions(), 0);
    s.pool.shutdown().await;
}

/// A note: router → gate + Top-N → executor (only those tools) → tool → final.
pub async fn note_creation_goes_through_search_and_executor(f: ChatFixture) {
    let llm = Arc::new(
        ScriptedLlm::new()
            .reply_json(router("create_note", true, &["notes"], "low", None))
            .reply_tool_calls(&[("notes_create", json!({"title": "Milk", "body": "Buy milk"}))])
            .reply_text("Saved the note “Milk”."),
    );
    let s = chat_setup(&f, llm.clone(), Arc::new(chat_hub()), ChatConfig::default()).await;
    let (chat, task) = one_message_task(&s, "make a note: buy milk").await;
    let mut events = chat.events(task).await.expect("events");
    let view = settle(&chat, task).await;
    assert_eq!(view.status, RunStatus::Completed, "{:?}", view.error);
    assert_eq!(view.answer.as_deref(), Some("Saved the note “Milk”."));
    assert_eq!(s.hub.executions_of("notes.create"), 1);
    assert_eq!(llm.calls(), 3);
    let mut seen = Vec::new();
    while let Some(e) = futures::StreamExt::next(&mut events).await {
        seen.push(e.expect("event"));
    }
    let kinds: Vec<&str> = seen
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Router { .. } => Some("router"),
            ChatEvent::ToolsSelected { .. } => Some("tools_selected"),
            ChatEvent::ToolCall { ok: true, .. } => Some("tool_call"),
            ChatEvent::Final { .. } => Some("final"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["router", "tools_selected", "tool_call", "final"]);
    let Some(ChatEvent::ToolsSelected { tools }) = seen
        .iter()
        .find(|e| matches!(e, ChatEvent::ToolsSelected { .. }))
    else {
        unreachable!("checked above")
    };
    assert!(tools.contains(&"notes.create".to_string()));
    assert!(
        !tools.contains(&"GMAIL_DELETE_EMAIL".to_string()),
        "blocked tag"
    );
    let requests = llm.requests();
    assert!(requests[0].tools.is_empty(), "the router sees no tools");
    assert!(requests[0].output_schema.as_ref().is_some_and(|s| s.strict));
    let offered: Vec<&str> = requests[1].tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        offered.len(),
        tools.len(),
        "the executor sees only the Top-N"
    );
    s.pool.shutdown().await;
}

fn email_llm(after: &str) -> Arc<ScriptedLlm> {
    Arc::new(
        ScriptedLlm::new()
            .reply_json(router("send_email", true, &["gmail"], "high", None))
            .reply_tool_calls(&[(
                "GMAIL_SEND_EMAIL",
                json!({"to": "bob@example.com", "subject": "Lunch", "body": "Noon?"}),
            )])
            .reply_text(after),
    )
}

/// An email send stops at `awaiting_confirm` with a preview; confirm runs exactly the
/// previewed call.
pub async fn email_send_runs_only_after_confirm(f: ChatFixture) {
    let llm = email_llm("Sent.");
    let s = chat_setup(&f, llm.clone(), Arc::new(chat_hub()), ChatConfig::default()).await;
    let (chat, task) = one_message_task(&s, "email bob: lunch at noon?").await;
    let view = settle(&chat, task).await;
    assert_eq!(view.status, RunStatus::Paused, "{:?}", view.error);
    assert_eq!(s.hub.executions(), 0, "nothing is sent before confirmation");
    let c = view.confirmation.expect("awaiting confirmation");
    assert!(c.preview.contains("to: bob@example.com"), "{}", c.preview);
    assert!(c.preview.contains("body: Noon?"), "{}", c.preview);
    let args = json!({"to": "bob@example.com", "subject": "Lunch", "body": "Noon?"});
    assert_eq!(c.args_digest, crate::engine::args_digest(&args));
    let history = chat.history(task).await.expect("history");
    assert!(history
        .iter()
        .any(|e| matches!(e, ChatEvent::AwaitingConfirm(x) if x.gate_id == c.gate_id)));
    let wrong = chat.confirm(task, "tool:0:9:GMAIL_SEND_EMAIL").await;
    assert!(wrong.is_err(), "only the pending gate opens");
    chat.confirm(task, &c.gate_id).await.expect("confirm");
    let done = settle(&chat, task).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(done.answer.as_deref(), Some("Sent."));
    let calls = s.hub.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1, args, "exactly the previewed arguments");
    assert_eq!(
        llm.calls(),
        3,
        "the confirmed task replays, never repeats, its model calls"
    );
    s.pool.shutdown().await;
}

/// Denying tells the model the call was refused; it never runs.
pub async fn denied_email_is_never_sent(f: ChatFixture) {
    let llm = email_llm("OK, I did not send it.");
    let s = chat_setup(&f, llm.clone(), Arc::new(chat_hub()), ChatConfig::default()).await;
    let (chat, task) = one_message_task(&s, "email bob: lunch at noon?").await;
    let c = settle(&chat, task).await.confirmation.expect("paused");
    chat.deny(task, &c.gate_id, Some("not now"))
        .await
        .expect("deny");
    let done = settle(&chat, task).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(done.answer.as_deref(), Some("OK, I did not send it."));
    assert_eq!(s.hub.executions(), 0);
    let last = llm
        .requests()
        .pop()
        .expect("the model was asked after the refusal");
    let told = last.messages.iter().any(
        |m| matches!(m, crate::llm::Message::Tool { content, .. } if content.contains("refused")),
    );
    assert!(told, "the model is told the call was refused");
    s.pool.shutdown().await;
}

/// The fourth tool call of a task (cap 3) is not executed; the task ends saying why.
pub async fn tool_call_cap_ends_the_task(f: ChatFixture) {
    let mut llm =
        ScriptedLlm::new().reply_json(router("create_note", true, &["notes"], "low", None));
    for i in 0..4 {
        llm = llm.reply_tool_calls(&[(
            "notes_create",
            json!({"title": format!("n{i}"), "body": "b"}),
        )]);
    }
    let llm = Arc::new(llm);
    let s = chat_setup(&f, llm.clone(), Arc::new(chat_hub()), ChatConfig::default()).await;
    let (chat, task) = one_message_task(&s, "make four notes").await;
    let view = settle(&chat, task).await;
    assert_eq!(view.status, RunStatus::Completed, "{:?}", view.error);
    assert_eq!(view.limit.as_deref(), Some("tool_calls"));
    assert!(view
        .answer
        .expect("answer")
        .contains("limit of 3 tool calls"));
    assert_eq!(s.hub.executions_of("notes.create"), 3);
    s.pool.shutdown().await;
}

/// Answers the router and the first executor turn, then hangs (a worker that stalls).
struct StallsAfterToolCall {
    calls: AtomicUsize,
}

#[async_trait]
impl LlmProvider for StallsAfterToolCall {
    fn name(&self) -> &str {
        "stalls"
    }
    async fn complete(&self, _r: &LlmRequest) -> crate::Result<LlmResponse> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let scripted = ScriptedLlm::new()
            .reply_json(router("create_note", true, &["notes"], "low", None))
            .reply_tool_calls(&[("notes_create", json!({"title": "Milk", "body": "b"}))]);
        for _ in 0..n {
            scripted.complete(_r).await?;
        }
        if n < 2 {
            return scripted.complete(_r).await;
        }
        futures::future::pending().await
    }
}

/// A task whose worker dies mid-turn is resumed by another engine without repeating a model
/// or tool call.
pub async fn crashed_chat_task_repeats_no_call(f: ChatFixture) {
    let stalls = Arc::new(StallsAfterToolCall {
        calls: AtomicUsize::new(0),
    });
    let hub = Arc::new(chat_hub());
    let lease = WorkerOptions {
        poll: Duration::from_millis(10),
        ..WorkerOptions::default()
    }
    .lease(Duration::from_millis(500));
    let config = ChatConfig::default();
    let first = chat_setup_with(&f, stalls.clone(), hub.clone(), config, lease.clone()).await;
    let (chat, task) = one_message_task(&first, "note: milk").await;
    for _ in 0..500 {
        if hub.executions_of("notes.create") == 1 && stalls.calls.load(Ordering::SeqCst) == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        hub.executions_of("notes.create"),
        1,
        "the turn reached its tool call"
    );
    let ChatSetup {
        engine,
        chat: service,
        pool,
        ..
    } = first;
    pool.abort();
    drop((engine, service));
    let llm = Arc::new(ScriptedLlm::new().reply_text("Saved."));
    let second = chat_setup_with(&f, llm.clone(), hub.clone(), ChatConfig::default(), lease).await;
    let chat2 = second.chat.scoped(alice()).expect("scoped");
    let view = settle(&chat2, task).await;
    assert_eq!(view.status, RunStatus::Completed, "{:?}", view.error);
    assert_eq!(view.answer.as_deref(), Some("Saved."));
    assert_eq!(
        hub.executions_of("notes.create"),
        1,
        "the tool call is replayed"
    );
    assert_eq!(
        llm.calls(),
        1,
        "router and first turn are replayed; only the last is asked"
    );
    let history = chat.history(task).await.expect("history");
    let routers = history
        .iter()
        .filter(|e| matches!(e, ChatEvent::Router { .. }))
        .count();
    assert_eq!(routers, 1, "one trace entry per stage");
    second.pool.shutdown().await;
}

/// Most bytes a router, summary or executor request may take, whatever the history.
pub const PROMPT_BOUND_BYTES: usize = 48 * 1024;

/// With a 500-message conversation every request stays under a fixed size.
pub async fn prompts_stay_bounded_on_long_conversations(f: ChatFixture) {
    let llm = Arc::new(ScriptedLlm::from_fn(|req: &LlmRequest| {
        Ok(if req.output_schema.is_some() {
            LlmResponse::text(router("create_note", true, &["notes"], "low", None).to_string())
        } else if req.tools.is_empty() {
            LlmResponse::text("Summary: a long chat about plans.")
        } else {
            LlmResponse::text("Done.")
        })
    }));
    let s = chat_setup(&f, llm.clone(), Arc::new(chat_hub()), ChatConfig::default()).await;
    let chat = s.chat.scoped(alice()).expect("scoped");
    let c = chat
        .create_conversation("long")
        .await
        .expect("conversation");
    let scope = crate::chat::ChatScope::new("tenant-a", "alice");
    let long = "words and more words ".repeat(150);
    for i in 0..250 {
        let task_id = uuid::Uuid::new_v4();
        let msg = NewUserMessage {
            conversation_id: c.id,
            message_id: uuid::Uuid::new_v4(),
            task_id,
            content: format!("{i}: {long}"),
            attachments: Vec::new(),
        };
        f.chat.add_user_message(&scope, msg).await.expect("user");
        f.chat
            .add_assistant_message(&scope, task_id, &format!("{i}: {long}"))
            .await
            .expect("assistant");
    }
    let task = chat
        .send(c.id, "note this", Vec::new())
        .await
        .expect("send");
    let view = settle(&chat, task).await;
    assert_eq!(view.status, RunStatus::Completed, "{:?}", view.error);
    let requests = llm.requests();
    assert_eq!(requests.len(), 3, "summary, router, executor");
    for r in &requests {
        let size = serde_json::to_string(r).expect("json").len();
        assert!(size < PROMPT_BOUND_BYTES, "a request of {size} bytes");
    }
    let conv = chat.conversation(c.id).await.expect("conversation");
    assert!(
        conv.summary_upto > 0 && conv.summary.is_some(),
        "the summary was kept up to date"
    );
    s.pool.shutdown().await;
}

/// Another tenant's (or user's) conversation and task are `NotFound`, for every operation.
pub async fn other_tenants_chats_are_not_found(f: ChatFixture) {
    let llm = email_llm("Sent.");
    let s = chat_setup(&f, llm, Arc::new(chat_hub()), ChatConfig::default()).await;
    let (chat, task) = one_message_task(&s, "email bob").await;
    let conv = chat
        .task(task)
        .await
        .expect("own task")
        .task
        .conversation_id;
    let gate = settle(&chat, task)
        .await
        .confirmation
        .expect("paused")
        .gate_id;
    for p in [
        Principal::user("tenant-b", "alice"),
        Principal::user("tenant-a", "carol"),
    ] {
        let other = s.chat.scoped(p).expect("scoped");
        let nf =
            |r: crate::Result<()>| assert_eq!(r.expect_err("foreign").kind(), ErrorKind::NotFound);
        nf(other.conversation(conv).await.map(|_| ()));
        nf(other.messages(conv, 0, 10).await.map(|_| ()));
        nf(other.send(conv, "hi", Vec::new()).await.map(|_| ()));
        nf(other.task(task).await.map(|_| ()));
        nf(other.history(task).await.map(|_| ()));
        nf(other.events(task).await.map(|_| ()));
        nf(other.confirm(task, &gate).await);
        nf(other.deny(task, &gate, None).await);
    }
    assert_eq!(s.hub.executions(), 0);
    s.pool.shutdown().await;
}
