//! An interactive terminal chat on the chat pipeline: each message is a task (a run of the
//! built-in chat workflow) whose progress is shown live — the router's decision, the tools
//! selected, tool calls, streamed text — and a call that sends or writes asks `y/n` with a
//! preview of exactly what it will do.
//!
//! - No configuration: a scripted model that understands "note", "list notes" and "email",
//!   and local demo tools (notes kept in memory, an email tool that only prints).
//! - `OPENAI_API_KEY`: OpenAI (`OPENAI_MODEL` for the executor, default `gpt-4o`;
//!   `OPENAI_CHEAP_MODEL` for router and summary, default `gpt-4o-mini`).
//! - `COMPOSIO_API_KEY`: Composio's catalog is synced and searched too (the user is
//!   `COMPOSIO_USER`, default `demo:dan`; only toolkits connected there are offered).
//!
//! Reads one message per stdin line and ends at end of input, so
//! `echo "take a note: buy milk" | cargo run --example chat` works unattended; at a
//! confirmation the next line is the answer (`y` confirms; anything else, or end of input,
//! refuses).

use std::error::Error;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use logline_core::agent::ModelProfile;
use logline_core::chat::{ChatConfig, ChatEvent, ChatService, MemoryChatStore};
use logline_core::engine::{Engine, EngineBuilder, Principal, WorkerOptions};
use logline_core::llm::{LlmRequest, LlmResponse, Message, ToolCallRequest};
use logline_core::search::{GateRules, SearchToolSource, ToolIndex, ToolSearch};
use logline_core::testing::ScriptedLlm;
use logline_core::tool::{handler, RiskLevel, ToolSpec};
use serde_json::{json, Value};

type Lines = std::io::Lines<std::io::StdinLock<'static>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let notes: Arc<Mutex<Vec<Value>>> = Arc::default();
    let store = Arc::new(MemoryChatStore::new());
    let tools = demo_tools();
    let mut builder = with_handlers(Engine::builder(), &tools, notes.clone());
    let mut config = ChatConfig::default();
    if std::env::var_os("OPENAI_API_KEY").is_some() {
        let p = logline_openai::OpenAiProvider::from_env()?;
        let secrets = p.config().clone();
        builder = builder
            .redact_with(move |r| secrets.redact_secrets(r))
            .default_llm(Arc::new(p));
        config.main_model = ModelProfile::new(env_or("OPENAI_MODEL", "gpt-4o"));
        config.cheap_model = ModelProfile::new(env_or("OPENAI_CHEAP_MODEL", "gpt-4o-mini"));
        println!("(model: OpenAI {})", config.main_model.model);
    } else {
        builder = builder.default_llm(Arc::new(scripted_model()));
        println!("(model: scripted; set OPENAI_API_KEY for OpenAI)");
    }
    let composio = match std::env::var_os("COMPOSIO_API_KEY") {
        Some(_) => Some(logline_composio::ComposioToolHub::from_env()?),
        None => None,
    };
    let mut search = ToolSearch::new(ToolIndex::from_tools(tools.clone()));
    if let Some(hub) = &composio {
        search = search.with_hub(Arc::new(hub.clone()));
        builder = builder.tool_hub(Arc::new(hub.clone()));
    }
    let search = Arc::new(search);
    let source =
        SearchToolSource::new(search.clone()).gate(GateRules::default().max_risk(RiskLevel::High));
    let engine = builder
        .tool_source("default", Arc::new(source))
        .chat_store(store.clone())
        .build()
        .await?;
    engine.register_tools(&tools).await?;
    if let Some(hub) = composio {
        let sync = logline_composio::CatalogSync::new(hub, engine.store().clone());
        let report = sync.run(logline_composio::SyncMode::Full).await?;
        let refreshed = search.refresh_from_store(engine.store().as_ref()).await?;
        println!(
            "(Composio: {} tools written, {} in the search index)",
            report.tools_written, refreshed.total
        );
    }
    let service = ChatService::install(engine.clone(), store, config).await?;
    let workers = engine.spawn_workers(WorkerOptions::default());
    let user = env_or("COMPOSIO_USER", "demo:dan");
    let (tenant, name) = user.split_once(':').unwrap_or(("demo", "dan"));
    let chat = service.scoped(Principal::user(tenant, name))?;
    let conversation = chat.create_conversation("terminal").await?;

    let echo = !std::io::stdin().is_terminal();
    let mut lines: Lines = std::io::stdin().lock().lines();
    loop {
        print!("you> ");
        std::io::stdout().flush()?;
        let Some(line) = lines.next().transpose()? else {
            println!();
            break;
        };
        let text = line.trim();
        if echo {
            println!("{text}");
        }
        if text.is_empty() {
            continue;
        }
        let task = chat.send(conversation.id, text, Vec::new()).await?;
        let mut events = chat.events(task).await?;
        // Whether text was streamed, and whether the cursor is still on its line.
        let (mut streamed, mut midline) = (false, false);
        while let Some(event) = events.next().await {
            let event = event?;
            if midline && !matches!(event, ChatEvent::Delta { .. }) {
                println!();
                midline = false;
            }
            match event {
                ChatEvent::Router { decision } => println!(
                    "  · router: intent={} needs_tools={} apps={} risk={}",
                    decision["intent"],
                    decision["needs_tools"],
                    decision["candidate_apps"],
                    decision["risk_level"]
                ),
                ChatEvent::ToolsSelected { tools } => {
                    println!("  · tools selected: {}", tools.join(", "))
                }
                ChatEvent::ToolCall {
                    tool_id,
                    ok,
                    output,
                    error,
                } => match ok {
                    true => println!("  · tool {tool_id} → {output}"),
                    false => println!("  · tool {tool_id} ✗ {}", error.unwrap_or_default()),
                },
                ChatEvent::AwaitingConfirm(c) => {
                    println!(
                        "  ? confirm this action:\n    {}",
                        c.preview.replace('\n', "\n    ")
                    );
                    print!("  run it? [y/N] ");
                    std::io::stdout().flush()?;
                    let answer = lines.next().transpose()?.unwrap_or_default();
                    if echo {
                        println!(
                            "{}",
                            if answer.is_empty() {
                                "(no answer)"
                            } else {
                                &answer
                            }
                        );
                    }
                    if answer.trim().eq_ignore_ascii_case("y") {
                        chat.confirm(task, &c.gate_id).await?;
                    } else {
                        chat.deny(task, &c.gate_id, Some("declined in chat"))
                            .await?;
                    }
                }
                ChatEvent::Delta { text } => {
                    if !midline {
                        print!("assistant> ");
                        (streamed, midline) = (true, true);
                    }
                    print!("{text}");
                    std::io::stdout().flush()?;
                }
                ChatEvent::Final { text, limit } => {
                    if !streamed {
                        println!("assistant> {text}");
                    }
                    if let Some(limit) = limit {
                        println!("  · (ended by the {limit} cap)");
                    }
                }
                ChatEvent::Error { kind, message } => {
                    println!("  ! task failed ({kind}): {message}")
                }
            }
        }
    }
    workers.shutdown().await;
    let kept = notes.lock().map_err(|_| "notes lock")?.len();
    println!("notes kept: {kept}");
    Ok(())
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

/// Local demo tools: notes (low risk) and an email tool that sends (confirmed).
fn demo_tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec::new(
            "notes.create",
            "Create a note with a title and an optional body.",
            json!({"type": "object", "properties": {"title": {"type": "string"},
                   "body": {"type": "string"}}, "required": ["title"]}),
        )
        .in_toolkit("notes")
        .with_tags(["create", "notes"]),
        ToolSpec::new(
            "notes.list",
            "List the user's notes.",
            json!({"type": "object", "properties": {}}),
        )
        .in_toolkit("notes")
        .with_tags(["read"]),
        ToolSpec::new(
            "email.send",
            "Send an email to a recipient.",
            json!({"type": "object", "properties": {"to": {"type": "string"},
                   "subject": {"type": "string"}, "body": {"type": "string"}},
                   "required": ["to", "subject", "body"]}),
        )
        .in_toolkit("email")
        .with_risk(RiskLevel::High)
        .with_tags(["send", "email"]),
    ]
}

fn with_handlers(
    b: EngineBuilder,
    tools: &[ToolSpec],
    notes: Arc<Mutex<Vec<Value>>>,
) -> EngineBuilder {
    let (n1, n2) = (notes.clone(), notes);
    let lock_err = || logline_core::Error::Internal("notes lock".into());
    b.tool(
        tools[0].clone(),
        handler(move |args, _| {
            let notes = n1.clone();
            async move {
                let mut n = notes.lock().map_err(|_| lock_err())?;
                n.push(args.clone());
                Ok(json!({"created": args["title"], "count": n.len()}))
            }
        }),
    )
    .tool(
        tools[1].clone(),
        handler(move |_, _| {
            let notes = n2.clone();
            async move {
                let n = notes.lock().map_err(|_| lock_err())?;
                Ok(json!({"notes": *n}))
            }
        }),
    )
    .tool(
        tools[2].clone(),
        handler(|args, _| async move { Ok(json!({"sent": true, "to": args["to"]})) }),
    )
}

/// The user's latest words in a request.
fn latest_user_text(req: &LlmRequest) -> String {
    req.messages
        .iter()
        .rev()
        .find_map(|m| match m {
            Message::User { content } => Some(content.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// A rule-based stand-in for the models: router (strict JSON), summary and executor.
fn scripted_model() -> ScriptedLlm {
    ScriptedLlm::from_fn(|req: &LlmRequest| {
        let text = latest_user_text(req);
        let lower = text.to_lowercase();
        if req.output_schema.is_some() {
            let (intent, apps, risk) = if lower.contains("email") {
                ("send_email", vec!["email"], "high")
            } else if lower.contains("notes") && (lower.contains("list") || lower.contains("what"))
            {
                ("list_notes", vec!["notes"], "low")
            } else if lower.contains("note") {
                ("create_note", vec!["notes"], "low")
            } else {
                ("chat", vec![], "low")
            };
            let tools = intent != "chat";
            let answer = (!tools).then(|| format!("You said: {text}"));
            return Ok(LlmResponse::text(
                json!({"intent": intent, "needs_tools": tools, "candidate_apps": apps,
                       "risk_level": risk, "needs_files": false,
                       "requires_confirmation": risk == "high", "answer": answer})
                .to_string(),
            ));
        }
        if req.tools.is_empty() {
            return Ok(LlmResponse::text("A conversation about notes and email."));
        }
        if let Some(Message::Tool { content, .. }) = req.messages.last() {
            let framed: Value = serde_json::from_str(content).unwrap_or_default();
            let v = &framed["tool_result"];
            let reply = if let Some(notes) = v["notes"].as_array() {
                let titles: Vec<&str> = notes.iter().filter_map(|n| n["title"].as_str()).collect();
                format!("You have {} note(s): {}", titles.len(), titles.join("; "))
            } else if v["sent"] == true {
                format!("Email sent to {}.", v["to"].as_str().unwrap_or("them"))
            } else if v.get("created").is_some() {
                format!("Noted: {}.", v["created"].as_str().unwrap_or_default())
            } else {
                "I did not do it: the action was refused or failed.".to_string()
            };
            return Ok(LlmResponse::text(reply));
        }
        let pick = |id: &str| {
            req.tools
                .iter()
                .find(|t| t.name.starts_with(id))
                .map(|t| t.name.clone())
        };
        let call = |name: String, arguments: Value| LlmResponse {
            tool_calls: vec![ToolCallRequest {
                id: "call_1".into(),
                name,
                arguments,
            }],
            ..Default::default()
        };
        let chosen = if lower.contains("email") {
            let to = text
                .split_whitespace()
                .find(|w| w.contains('@'))
                .unwrap_or("team@example.com");
            pick("email").map(|n| {
                call(
                    n,
                    json!({"to": to, "subject": "Message from chat", "body": text}),
                )
            })
        } else if lower.contains("list") || lower.contains("what") {
            pick("notes_list").map(|n| call(n, json!({})))
        } else {
            let title = text
                .split_once(':')
                .map_or(text.as_str(), |(_, t)| t)
                .trim()
                .to_string();
            pick("notes_create").map(|n| call(n, json!({"title": title})))
        };
        Ok(chosen.unwrap_or_else(|| LlmResponse::text("No suitable tool is available.")))
    })
}
