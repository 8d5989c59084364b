//! The skills used from chat, end to end: the chat pipeline (router → search → executor →
//! tool → answer) over a `SkillsHub`, with the demo model playing every model call. Each
//! skill's output belongs to the chatting user and is linked to the task; nobody else sees it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use logline_core::artifact::{
    ArtifactFilter, ArtifactStore, ArtifactStoreExt, NewArtifact, ObjectArtifactStore,
};
use logline_core::chat::{
    Attachment, ChatConfig, ChatEvent, ChatService, MemoryChatStore, ScopedChat, TaskId, TaskView,
};
use logline_core::engine::{Engine, Principal, WorkerOptions, WorkerPool};
use logline_core::notes::MemoryNoteStore;
use logline_core::owner::Owner;
use logline_core::run::RunStatus;
use logline_core::search::{GateRules, SearchToolSource, ToolIndex, ToolSearch};
use logline_core::tool::{RiskLevel, ToolHub};
use logline_skills::{DemoModel, SkillsHub};
use support::{multi_page_pdf, pdf_pages};

struct Chat {
    service: ChatService,
    artifacts: Arc<dyn ArtifactStore>,
    workers: WorkerPool,
}

async fn chat() -> Chat {
    let artifacts: Arc<dyn ArtifactStore> = Arc::new(ObjectArtifactStore::in_memory());
    let model = Arc::new(DemoModel);
    let hub = Arc::new(
        SkillsHub::builder()
            .artifacts(artifacts.clone())
            .notes(Arc::new(MemoryNoteStore::new()))
            .llm(model.clone(), "demo")
            .build()
            .unwrap(),
    );
    let hub_dyn: Arc<dyn ToolHub> = hub.clone();
    let search = ToolSearch::new(ToolIndex::from_tools(SkillsHub::specs())).with_hub(hub_dyn);
    let source = SearchToolSource::new(Arc::new(search))
        .gate(GateRules::default().max_risk(RiskLevel::High));
    let store = Arc::new(MemoryChatStore::new());
    let engine = Engine::builder()
        .default_llm(model)
        .tool_hub(hub)
        .tool_source("default", Arc::new(source))
        .chat_store(store.clone())
        .build()
        .await
        .unwrap();
    engine.register_tools(&SkillsHub::specs()).await.unwrap();
    let service = ChatService::install(engine.clone(), store, ChatConfig::default())
        .await
        .unwrap();
    let workers = engine.spawn_workers(WorkerOptions {
        poll: Duration::from_millis(10),
        ..WorkerOptions::default()
    });
    Chat {
        service,
        artifacts,
        workers,
    }
}

fn alice() -> Principal {
    Principal::user("acme", "alice")
}

async fn ask(chat: &ScopedChat, text: &str, files: Vec<Attachment>) -> (TaskId, TaskView) {
    let conversation = chat.create_conversation("skills").await.unwrap();
    let task = chat.send(conversation.id, text, files).await.unwrap();
    let view = tokio::time::timeout(Duration::from_secs(30), chat.wait(task))
        .await
        .expect("the task settles in time")
        .unwrap();
    (task, view)
}

/// The tool calls of a task, as `(tool, ok)`.
async fn tool_calls(chat: &ScopedChat, task: TaskId) -> Vec<(String, bool)> {
    chat.history(task)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            ChatEvent::ToolCall { tool_id, ok, .. } => Some((tool_id, ok)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_draft_is_written_and_never_sent() {
    let c = chat().await;
    let chat = c.service.scoped(alice()).unwrap();
    let (task, view) = ask(
        &chat,
        "draft an email to Ann: the review moves to Friday at 10",
        Vec::new(),
    )
    .await;
    assert_eq!(view.status, RunStatus::Completed, "{:?}", view.error);
    assert!(view.confirmation.is_none(), "a draft needs no confirmation");
    assert_eq!(
        tool_calls(&chat, task).await,
        [("email.draft".to_string(), true)]
    );
    let answer = view.answer.unwrap();
    assert!(answer.contains("not sent"), "{answer}");
    assert!(
        answer.contains("the review moves to Friday at 10"),
        "{answer}"
    );
    c.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_pdf_comes_back_corrected_as_an_artifact_of_the_task() {
    let c = chat().await;
    let chat = c.service.scoped(alice()).unwrap();
    let owner = Owner::from(&alice());
    let pdf = multi_page_pdf(&[
        &["Teh report wich we wrote"],
        &["Second page untill the end"],
    ]);
    let upload = c
        .artifacts
        .put(&owner, NewArtifact::named("report.pdf"), pdf)
        .await
        .unwrap();
    let (task, view) = ask(
        &chat,
        "please proofread the attached pdf",
        vec![Attachment::from(&upload)],
    )
    .await;
    assert_eq!(view.status, RunStatus::Completed, "{:?}", view.error);
    assert_eq!(
        tool_calls(&chat, task).await,
        [("pdf.correct".to_string(), true)]
    );
    let of_task = c
        .artifacts
        .list(&owner, &ArtifactFilter::default().for_task(task))
        .await
        .unwrap();
    assert_eq!(of_task.len(), 1, "{of_task:?}");
    assert_eq!(of_task[0].name, "report-corrected.pdf");
    let (_, bytes) = c.artifacts.get(&owner, of_task[0].id).await.unwrap();
    let pages = pdf_pages(&bytes);
    assert_eq!(pages.len(), 2);
    assert!(pages[0].contains("report which we wrote"), "{pages:?}");
    assert!(pages[1].contains("until the end"), "{pages:?}");
    assert!(view.answer.unwrap().contains("report-corrected.pdf"));

    let bob = Owner::user("acme", "bob");
    assert!(c.artifacts.get(&bob, of_task[0].id).await.is_err());
    c.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_file_cannot_be_attached_by_id() {
    let c = chat().await;
    let bob = Owner::user("acme", "bob");
    let theirs = c
        .artifacts
        .put(
            &bob,
            NewArtifact::named("secret.pdf"),
            multi_page_pdf(&[&["private"]]),
        )
        .await
        .unwrap();
    let chat = c.service.scoped(alice()).unwrap();
    let (task, view) = ask(&chat, "proofread this pdf", vec![Attachment::from(&theirs)]).await;
    assert_eq!(view.status, RunStatus::Completed, "{:?}", view.error);
    assert_eq!(
        tool_calls(&chat, task).await,
        [("pdf.correct".to_string(), false)],
        "the skill reads artifacts as the chatting user only"
    );
    let owner = Owner::from(&alice());
    let made = c
        .artifacts
        .list(&owner, &ArtifactFilter::default())
        .await
        .unwrap();
    assert!(made.is_empty(), "{made:?}");
    c.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telegram_bot_scaffold_is_a_zip_of_the_task() {
    let c = chat().await;
    let chat = c.service.scoped(alice()).unwrap();
    let (task, view) = ask(&chat, "make me a telegram bot for my bakery", Vec::new()).await;
    assert_eq!(view.status, RunStatus::Completed, "{:?}", view.error);
    assert_eq!(
        tool_calls(&chat, task).await,
        [("scaffold.telegram_bot".to_string(), true)]
    );
    let owner = Owner::from(&alice());
    let of_task = c
        .artifacts
        .list(&owner, &ArtifactFilter::default().for_task(task))
        .await
        .unwrap();
    assert_eq!(of_task.len(), 1);
    assert_eq!(of_task[0].content_type, "application/zip");
    c.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_taken_in_chat_are_listed_in_chat() {
    let c = chat().await;
    let chat = c.service.scoped(alice()).unwrap();
    let (_, first) = ask(&chat, "take a note: buy oat milk", Vec::new()).await;
    assert_eq!(first.answer.as_deref(), Some("Saved: buy oat milk."));
    let (_, listed) = ask(&chat, "what notes do I have?", Vec::new()).await;
    let answer = listed.answer.unwrap();
    assert!(answer.contains("buy oat milk"), "{answer}");

    let bob = c.service.scoped(Principal::user("acme", "bob")).unwrap();
    let (_, theirs) = ask(&bob, "what notes do I have?", Vec::new()).await;
    assert_eq!(theirs.answer.as_deref(), Some("You have none yet."));
    c.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_question_is_answered_without_tools() {
    let c = chat().await;
    let chat = c.service.scoped(alice()).unwrap();
    let (task, view) = ask(&chat, "hello, who are you?", Vec::new()).await;
    assert_eq!(view.status, RunStatus::Completed);
    assert!(tool_calls(&chat, task).await.is_empty());
    assert_eq!(
        view.answer.as_deref(),
        Some("You said: hello, who are you?")
    );
    c.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_answer_streams_never_the_routers_json() {
    let c = chat().await;
    let chat = c.service.scoped(alice()).unwrap();
    let conversation = chat.create_conversation("stream").await.unwrap();
    let mut streamed = String::new();
    let mut answer = None;
    for text in ["take a note: call the plumber", "hello there"] {
        let task = chat.send(conversation.id, text, Vec::new()).await.unwrap();
        let mut events = chat.events(task).await.unwrap();
        while let Some(event) = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("the task settles in time")
        {
            match event.unwrap() {
                ChatEvent::Delta { text } => streamed.push_str(&text),
                ChatEvent::Final { text, .. } => answer = Some(text),
                _ => {}
            }
        }
        let answer = answer.take().expect("a final event");
        assert!(
            answer.starts_with(&streamed),
            "deltas {streamed:?} are not the answer {answer:?}"
        );
        streamed.clear();
    }
    c.workers.shutdown().await;
}
