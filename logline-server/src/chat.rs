//! The chat's parts on a server ([`ChatParts`]): where conversations, artifacts and notes
//! live, and the tools the chat searches — the skills hub (`logline-skills`) and the demo
//! `email.send` tool — behind a gated tool search.

use std::sync::Arc;

use logline_core::agent::DEFAULT_TOOL_SOURCE;
use logline_core::artifact::{ArtifactStore, ObjectArtifactStore, UploadLimits};
use logline_core::chat::{ChatConfig, ChatService, ChatStore, MemoryChatStore};
use logline_core::engine::{Engine, EngineBuilder};
use logline_core::llm::LlmProvider;
use logline_core::notes::{MemoryNoteStore, NoteStore};
use logline_core::search::{GateRules, SearchToolSource, ToolIndex, ToolSearch};
use logline_core::tool::{RiskLevel, ToolSpec};
use logline_core::Result;
use logline_skills::SkillsHub;

use crate::demo::{chat::email_send_spec, with_demo_email};

/// Stores the chat works with.
#[derive(Clone)]
pub struct ChatParts {
    /// Conversations, messages and tasks.
    pub store: Arc<dyn ChatStore>,
    /// Uploads and tool outputs.
    pub artifacts: Arc<dyn ArtifactStore>,
    /// Notes and to-dos of the skills.
    pub notes: Arc<dyn NoteStore>,
}

impl std::fmt::Debug for ChatParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatParts").finish_non_exhaustive()
    }
}

impl ChatParts {
    /// Everything in memory; uploads capped by `limits`.
    pub fn in_memory(limits: UploadLimits) -> Self {
        ChatParts {
            store: Arc::new(MemoryChatStore::new()),
            artifacts: Arc::new(ObjectArtifactStore::in_memory().with_limits(limits)),
            notes: Arc::new(MemoryNoteStore::new()),
        }
    }

    /// The tools the chat searches: every skill and the demo `email.send`.
    pub fn catalog() -> Vec<ToolSpec> {
        let mut tools = SkillsHub::specs();
        tools.push(email_send_spec());
        tools
    }

    /// Adds to `builder`: the chat store, the skills hub (drafting and proofreading with
    /// `llm`'s `model`), the demo email tool, and the default tool source — a search over
    /// [`ChatParts::catalog`] whose gate passes tools up to high risk (the chat confirms
    /// those before they run).
    pub fn wire(
        &self,
        builder: EngineBuilder,
        llm: Arc<dyn LlmProvider>,
        model: &str,
    ) -> Result<EngineBuilder> {
        let skills = SkillsHub::builder()
            .artifacts(self.artifacts.clone())
            .notes(self.notes.clone())
            .llm(llm, model)
            .build()?;
        let search = Arc::new(ToolSearch::new(ToolIndex::from_tools(Self::catalog())));
        let source =
            SearchToolSource::new(search).gate(GateRules::default().max_risk(RiskLevel::High));
        Ok(with_demo_email(builder)
            .tool_hub(Arc::new(skills))
            .tool_source(DEFAULT_TOOL_SOURCE, Arc::new(source))
            .chat_store(self.store.clone()))
    }

    /// On the engine built from [`ChatParts::wire`]: registers the catalog and installs
    /// the chat (its agents and workflow).
    pub async fn install(&self, engine: &Engine, config: ChatConfig) -> Result<ChatService> {
        engine.register_tools(&Self::catalog()).await?;
        ChatService::install(engine.clone(), self.store.clone(), config).await
    }
}
