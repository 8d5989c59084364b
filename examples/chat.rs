//! Chat with tools: a conversation with an agent that can take notes and send email, with the
//! confirm flow for anything that sends (the run pauses until the user approves the exact call).
//!
//! - No configuration: a scripted model that understands "note", "list notes" and "email".
//! - `OPENAI_API_KEY` set: OpenAI (`OPENAI_MODEL`, default `gpt-4o-mini`).
//!
//! `cargo run --example chat` plays a short demo conversation;
//! `cargo run --example chat -- "take a note: buy milk" "list my notes"` sends your messages;
//! `cargo run --example chat -- --interactive` reads messages from stdin.

use std::error::Error;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::{Engine, StartRun, WorkerOptions};
use logline_core::llm::{LlmRequest, LlmResponse, Message, ToolCallRequest};
use logline_core::run::{GateSubject, RunStatus, Subject};
use logline_core::testing::ScriptedLlm;
use logline_core::tool::{handler, RiskLevel, ToolSpec};
use logline_core::workflow::{Workflow, WorkflowDefinition};
use serde_json::{json, Value};

const INSTRUCTIONS: &str = "You are a helpful assistant in a chat. The input holds the \
conversation so far (`history`) and the user's new `message`. Use the tools to take and list \
notes and to send email; answer briefly in plain text.";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let interactive = args.iter().any(|a| a == "--interactive");
    let mut messages: Vec<String> = args.into_iter().filter(|a| !a.starts_with("--")).collect();
    if messages.is_empty() && !interactive {
        messages = vec![
            "Take a note: call the plumber about room 305".into(),
            "What notes do I have?".into(),
            "Email ops@example.com that the plumber is booked".into(),
        ];
    }

    let notes: Arc<Mutex<Vec<Value>>> = Arc::default();
    let mut builder = with_tools(Engine::builder(), notes.clone());
    let model = if std::env::var_os("OPENAI_API_KEY").is_some() {
        let p = logline_openai::OpenAiProvider::from_env()?;
        // The API key is redacted wherever the engine redacts (events, rows, job errors).
        let config = p.config().clone();
        builder = builder
            .redact_with(move |r| config.redact_secrets(r))
            .default_llm(Arc::new(p));
        std::env::var("OPENAI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into())
    } else {
        builder = builder.default_llm(Arc::new(scripted_model()));
        "scripted-assistant".into()
    };
    let engine = builder.build().await?;
    engine
        .register_agent(
            &Agent::new("agent.assistant", INSTRUCTIONS, ModelProfile::new(model)).with_tools([
                "notes.create",
                "notes.list",
                "email.send",
            ]),
        )
        .await?;
    let def = WorkflowDefinition::from_json(json!({
        "entry": "reply",
        "nodes": [{"id": "reply", "type": "agent_node", "config": {"agent_id": "agent.assistant"}}]
    }))?;
    engine
        .register_workflow(&Workflow::new("chat", "Chat with tools", def))
        .await?;
    let workers = engine.spawn_workers(WorkerOptions::default());

    let subject = Subject::tenant("demo").with_user("dan");
    let mut history: Vec<Value> = Vec::new();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut scripted = messages.into_iter();
    loop {
        let message = if interactive {
            print!("you> ");
            std::io::stdout().flush()?;
            match lines.next() {
                Some(line) => line?,
                None => break,
            }
        } else {
            match scripted.next() {
                Some(m) => {
                    println!("you> {m}");
                    m
                }
                None => break,
            }
        };
        let input = json!({ "history": history, "message": message });
        let mut run = engine
            .run_to_completion(StartRun::new("chat", input, subject.clone()))
            .await?;
        while run.status == RunStatus::Paused {
            let Some(gate) = run.pending_gate.clone() else {
                break;
            };
            let approve = match &gate.subject {
                GateSubject::ToolCall {
                    tool_id, arguments, ..
                } => {
                    println!("confirm> {tool_id} {arguments}  [{}]", gate.reason);
                    if interactive {
                        print!("approve? [y/N] ");
                        std::io::stdout().flush()?;
                        matches!(lines.next().transpose()?.as_deref(), Some("y") | Some("Y"))
                    } else {
                        println!("approve? [y/N] y");
                        true
                    }
                }
                other => {
                    println!("confirm> {other:?}");
                    true
                }
            };
            run = if approve {
                engine.approve(run.id, &gate.gate_id, "dan", None).await?;
                engine.wait(run.id).await?
            } else {
                engine
                    .deny(run.id, &gate.gate_id, "dan", "declined in chat")
                    .await?
            };
        }
        let reply = match run.status {
            RunStatus::Completed => run
                .result
                .as_ref()
                .and_then(|r| r["text"].as_str())
                .unwrap_or_default()
                .to_string(),
            _ => format!(
                "(run {}: {})",
                run.status.as_str(),
                run.error
                    .as_ref()
                    .map(|e| e["message"].to_string())
                    .unwrap_or_default()
            ),
        };
        println!("assistant> {reply}");
        history.push(json!({"role": "user", "content": message}));
        history.push(json!({"role": "assistant", "content": reply}));
    }
    workers.shutdown().await;
    println!(
        "notes kept: {}",
        serde_json::to_string(&*notes.lock().map_err(|_| "poisoned")?)?
    );
    Ok(())
}

fn with_tools(
    b: logline_core::engine::EngineBuilder,
    notes: Arc<Mutex<Vec<Value>>>,
) -> logline_core::engine::EngineBuilder {
    let create = ToolSpec::new(
        "notes.create",
        "Create a note with a title and an optional body.",
        json!({"type": "object", "properties": {"title": {"type": "string"}, "body": {"type": "string"}}, "required": ["title"]}),
    )
    .with_risk(RiskLevel::Medium)
    .with_tags(["write"]);
    let list = ToolSpec::new(
        "notes.list",
        "List the user's notes.",
        json!({"type": "object", "properties": {}}),
    )
    .with_tags(["read"]);
    let send = ToolSpec::new(
        "email.send",
        "Send an email.",
        json!({"type": "object", "properties": {"to": {"type": "string"}, "subject": {"type": "string"}, "body": {"type": "string"}},
               "required": ["to", "subject", "body"]}),
    )
    .with_risk(RiskLevel::High)
    .with_tags(["send"])
    .confirmed();
    let (n1, n2) = (notes.clone(), notes);
    b.tool(
        create,
        handler(move |args, _| {
            let notes = n1.clone();
            async move {
                let mut n = notes
                    .lock()
                    .map_err(|_| logline_core::Error::Internal("notes lock".into()))?;
                n.push(args.clone());
                Ok(json!({"created": args["title"], "count": n.len()}))
            }
        }),
    )
    .tool(
        list,
        handler(move |_, _| {
            let notes = n2.clone();
            async move {
                let n = notes
                    .lock()
                    .map_err(|_| logline_core::Error::Internal("notes lock".into()))?;
                Ok(json!({"notes": *n}))
            }
        }),
    )
    .tool(
        send,
        handler(|args, _| async move { Ok(json!({"sent": true, "to": args["to"]})) }),
    )
}

/// A rule-based stand-in for a model: enough to show tool calls and the confirm flow offline.
fn scripted_model() -> ScriptedLlm {
    ScriptedLlm::from_fn(|req: &LlmRequest| {
        if let Some(Message::Tool { content, .. }) = req.messages.last() {
            // The engine frames tool output as data: `{"tool_result": ..., "note": ...}`.
            let framed: Value = serde_json::from_str(content).unwrap_or_default();
            let v = &framed["tool_result"];
            let text = if let Some(notes) = v["notes"].as_array() {
                let titles: Vec<&str> = notes.iter().filter_map(|n| n["title"].as_str()).collect();
                format!("You have {} note(s): {}", titles.len(), titles.join("; "))
            } else if v["sent"] == true {
                format!("Email sent to {}.", v["to"].as_str().unwrap_or("them"))
            } else if v.get("created").is_some() {
                format!("Noted: {}.", v["created"].as_str().unwrap_or_default())
            } else {
                format!("Something went wrong: {content}")
            };
            return Ok(LlmResponse::text(text));
        }
        let message = req
            .messages
            .iter()
            .rev()
            .find_map(|m| match m {
                Message::User { content } => serde_json::from_str::<Value>(content).ok(),
                _ => None,
            })
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or_default();
        let lower = message.to_lowercase();
        let call = |name: &str, arguments: Value| LlmResponse {
            tool_calls: vec![ToolCallRequest {
                id: "call_1".into(),
                name: name.into(),
                arguments,
            }],
            ..Default::default()
        };
        Ok(if lower.contains("email") {
            let to = message
                .split_whitespace()
                .find(|w| w.contains('@'))
                .unwrap_or("team@example.com");
            let body = message
                .split_once(" that ")
                .map(|(_, b)| b)
                .unwrap_or(&message);
            call(
                "email_send",
                json!({"to": to, "subject": "Update", "body": body}),
            )
        } else if lower.contains("note")
            && (lower.contains("what") || lower.contains("list") || lower.contains("show"))
        {
            call("notes_list", json!({}))
        } else if lower.contains("note") {
            let title = message
                .split_once(':')
                .map(|(_, t)| t.trim())
                .unwrap_or(&message);
            call("notes_create", json!({"title": title}))
        } else {
            LlmResponse::text(format!("You said: {message}"))
        })
    })
}
