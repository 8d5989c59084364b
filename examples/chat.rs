//! An interactive terminal chat on the chat pipeline: each message is a task (a run of the
//! built-in chat workflow) whose progress is shown live — the router's decision, the tools
//! selected, tool calls, streamed text — and a call that sends asks `y/n` with a preview of
//! exactly what it will do. The skills (`logline-skills`) are the tools: email drafts, PDF
//! correction, a Telegram bot scaffold, notes and to-dos; a demo `email.send` shows the
//! confirmation. Files the skills make are saved to a folder (`LOGLINE_CHAT_DIR`, default
//! `chat-artifacts`).
//!
//! - No configuration: the demo model (`logline_skills::DemoModel`), which understands
//!   "take a note: …", "what notes do I have?", "draft an email …", "send an email to
//!   a@b.c saying …", "make me a telegram bot …" and "proofread the attached pdf".
//! - `OPENAI_API_KEY`: OpenAI (`OPENAI_MODEL` for the executor and the skills, default
//!   `gpt-4o`; `OPENAI_CHEAP_MODEL` for router and summary, default `gpt-4o-mini`).
//! - `COMPOSIO_API_KEY`: Composio's catalog is synced and searched too (the user is
//!   `COMPOSIO_USER`, default `demo:dan`; only toolkits connected there are offered).
//!
//! Reads one message per stdin line and ends at end of input, so
//! `echo "take a note: buy milk" | cargo run --example chat` works unattended; at a
//! confirmation the next line is the answer (`y` confirms; anything else, or end of input,
//! refuses). `/attach <path>` uploads a file and attaches it to the next message.

use std::error::Error;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use logline_core::agent::ModelProfile;
use logline_core::artifact::{
    ArtifactFilter, ArtifactStore, ArtifactStoreExt, NewArtifact, ObjectArtifactStore,
};
use logline_core::chat::{
    Attachment, ChatConfig, ChatEvent, ChatService, MemoryChatStore, ScopedChat, TaskId,
};
use logline_core::engine::{Engine, Principal, WorkerOptions};
use logline_core::llm::LlmProvider;
use logline_core::notes::MemoryNoteStore;
use logline_core::owner::Owner;
use logline_core::search::{GateRules, SearchToolSource, ToolIndex, ToolSearch};
use logline_core::tool::{handler, RiskLevel, ToolHub, ToolSpec};
use logline_skills::{DemoModel, SkillsHub};
use serde_json::json;

type Lines = std::io::Lines<std::io::StdinLock<'static>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let store = Arc::new(MemoryChatStore::new());
    let artifacts: Arc<dyn ArtifactStore> = Arc::new(ObjectArtifactStore::in_memory());
    let folder = PathBuf::from(env_or("LOGLINE_CHAT_DIR", "chat-artifacts"));
    let mut builder = Engine::builder();
    let mut config = ChatConfig::default();
    let (model, skills_model): (Arc<dyn LlmProvider>, String) =
        if std::env::var_os("OPENAI_API_KEY").is_some() {
            let p = logline_openai::OpenAiProvider::from_env()?;
            let secrets = p.config().clone();
            builder = builder.redact_with(move |r| secrets.redact_secrets(r));
            config.main_model = ModelProfile::new(env_or("OPENAI_MODEL", "gpt-4o"));
            config.cheap_model = ModelProfile::new(env_or("OPENAI_CHEAP_MODEL", "gpt-4o-mini"));
            println!("(model: OpenAI {})", config.main_model.model);
            (Arc::new(p), config.main_model.model.clone())
        } else {
            println!("(model: the demo model; set OPENAI_API_KEY for OpenAI)");
            (Arc::new(DemoModel), "demo".into())
        };
    let skills = Arc::new(
        SkillsHub::builder()
            .artifacts(artifacts.clone())
            .notes(Arc::new(MemoryNoteStore::new()))
            .llm(model.clone(), skills_model)
            .build()?,
    );
    let send = email_send();
    let mut catalog = SkillsHub::specs();
    catalog.push(send.clone());
    let skills_hub: Arc<dyn ToolHub> = skills.clone();
    let mut search = ToolSearch::new(ToolIndex::from_tools(catalog.clone())).with_hub(skills_hub);
    builder = builder.default_llm(model).tool_hub(skills).tool(
        send,
        handler(|args, _| async move { Ok(json!({"sent": true, "to": args["to"]})) }),
    );
    let composio = match std::env::var_os("COMPOSIO_API_KEY") {
        Some(_) => Some(logline_composio::ComposioToolHub::from_env()?),
        None => None,
    };
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
    engine.register_tools(&catalog).await?;
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
    let principal = Principal::user(tenant, name);
    let owner = Owner::from(&principal);
    let chat = service.scoped(principal)?;
    let conversation = chat.create_conversation("terminal").await?;
    let mut attached: Vec<Attachment> = Vec::new();

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
        if let Some(path) = text.strip_prefix("/attach ") {
            match upload(artifacts.as_ref(), &owner, Path::new(path.trim())).await {
                Ok(file) => {
                    println!(
                        "  · attached {} ({}, {} bytes)",
                        file.name, file.content_type, file.size_bytes
                    );
                    attached.push(file);
                }
                Err(e) => println!("  ! not attached: {e}"),
            }
            continue;
        }
        let task = chat
            .send(conversation.id, text, std::mem::take(&mut attached))
            .await?;
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
        for path in save_artifacts(&chat, artifacts.as_ref(), &owner, task, &folder).await? {
            println!("  · saved {}", path.display());
        }
    }
    workers.shutdown().await;
    Ok(())
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

/// A demo email tool: it only prints, but it is tagged `send`, so every call is confirmed.
fn email_send() -> ToolSpec {
    ToolSpec::new(
        "email.send",
        "Send an email to a recipient.",
        json!({"type": "object", "properties": {"to": {"type": "string"},
               "subject": {"type": "string"}, "body": {"type": "string"}},
               "required": ["to", "subject", "body"]}),
    )
    .in_toolkit("email")
    .with_risk(RiskLevel::High)
    .with_tags(["send", "email"])
}

/// Uploads the file at `path` for `owner` (type sniffed, size checked by the store).
async fn upload(
    artifacts: &dyn ArtifactStore,
    owner: &Owner,
    path: &Path,
) -> Result<Attachment, Box<dyn Error>> {
    let bytes = std::fs::read(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "upload".into());
    let artifact = artifacts
        .put(owner, NewArtifact::named(name), bytes)
        .await?;
    Ok(Attachment::from(&artifact))
}

/// Writes the files the task made into `folder`; returns their paths.
async fn save_artifacts(
    chat: &ScopedChat,
    artifacts: &dyn ArtifactStore,
    owner: &Owner,
    task: TaskId,
    folder: &Path,
) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    chat.task(task).await?; // the task is the caller's own
    let made = artifacts
        .list(owner, &ArtifactFilter::default().for_task(task))
        .await?;
    let mut saved = Vec::new();
    for artifact in made {
        let (_, bytes) = artifacts.get(owner, artifact.id).await?;
        std::fs::create_dir_all(folder)?;
        let path = folder.join(&artifact.name);
        std::fs::write(&path, bytes)?;
        saved.push(path);
    }
    Ok(saved)
}
