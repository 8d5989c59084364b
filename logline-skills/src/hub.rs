//! [`SkillsHub`]: the skills as a [`ToolHub`], for chat (through tool search and the
//! executor) and for workflow tool nodes alike.

use std::sync::Arc;

use async_trait::async_trait;
use logline_core::artifact::ArtifactStore;
use logline_core::llm::LlmProvider;
use logline_core::notes::NoteStore;
use logline_core::tool::{PageRequest, ToolContext, ToolHub, ToolPage, ToolSpec};
use logline_core::{Error, Result};
use serde_json::Value;

use crate::{email, notes, pdf, scaffold};

/// Name of the hub; every skill's [`ToolSpec::hub`].
pub const SKILLS_HUB: &str = "skills";

/// When the skills' catalog entries last changed (Unix seconds); bump with any change.
const SPECS_RELEASED: i64 = 1_795_996_800;

/// Caps on what one skill call may process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillLimits {
    /// Most pages of a PDF the pipeline reads (default 20).
    pub pdf_max_pages: u32,
    /// Largest PDF the pipeline reads, in bytes (default 10 MiB).
    pub pdf_max_bytes: u64,
    /// Most characters of PDF text sent to the model (default 60 000).
    pub pdf_max_chars: usize,
}

impl Default for SkillLimits {
    fn default() -> Self {
        SkillLimits {
            pdf_max_pages: 20,
            pdf_max_bytes: 10 * 1024 * 1024,
            pdf_max_chars: 60_000,
        }
    }
}

/// The skills hub: `email.draft`, `pdf.correct`, `scaffold.telegram_bot`, `notes.create`,
/// `notes.list`, `tasks.create` and `tasks.list`. Every call acts for the run's subject
/// (the [`ToolContext`]), never for an owner named in the arguments.
pub struct SkillsHub {
    artifacts: Arc<dyn ArtifactStore>,
    notes: Arc<dyn NoteStore>,
    llm: Arc<dyn LlmProvider>,
    model: String,
    limits: SkillLimits,
}

impl std::fmt::Debug for SkillsHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkillsHub")
            .field("llm", &self.llm.name())
            .field("model", &self.model)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl SkillsHub {
    /// A builder; artifacts, notes and a model are required.
    pub fn builder() -> SkillsHubBuilder {
        SkillsHubBuilder::default()
    }

    /// Every skill's catalog entry, on [`SKILLS_HUB`]. They carry a fixed `updated_at` (the
    /// release of these definitions), so catalog refreshes see no change until they change.
    pub fn specs() -> Vec<ToolSpec> {
        let mut specs = vec![email::spec(), pdf::spec(), scaffold::spec()];
        specs.extend(notes::specs());
        let released = chrono::DateTime::from_timestamp(SPECS_RELEASED, 0).unwrap_or_default();
        specs
            .into_iter()
            .map(|mut s| {
                s.updated_at = released;
                s.on_hub(SKILLS_HUB)
            })
            .collect()
    }

    /// The caps in force.
    pub fn limits(&self) -> &SkillLimits {
        &self.limits
    }
}

/// Builds a [`SkillsHub`].
#[derive(Default)]
pub struct SkillsHubBuilder {
    artifacts: Option<Arc<dyn ArtifactStore>>,
    notes: Option<Arc<dyn NoteStore>>,
    llm: Option<(Arc<dyn LlmProvider>, String)>,
    limits: SkillLimits,
}

impl SkillsHubBuilder {
    /// Where uploads are read and outputs stored.
    pub fn artifacts(mut self, store: Arc<dyn ArtifactStore>) -> Self {
        self.artifacts = Some(store);
        self
    }

    /// Where notes and to-dos are kept.
    pub fn notes(mut self, store: Arc<dyn NoteStore>) -> Self {
        self.notes = Some(store);
        self
    }

    /// The model that drafts emails and corrects PDF text.
    pub fn llm(mut self, provider: Arc<dyn LlmProvider>, model: impl Into<String>) -> Self {
        self.llm = Some((provider, model.into()));
        self
    }

    /// Sets the caps.
    pub fn limits(mut self, limits: SkillLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The hub; fails when a required part is missing.
    pub fn build(self) -> Result<SkillsHub> {
        let missing = |what: &str| Error::InvalidInput(format!("SkillsHub needs {what}"));
        let (llm, model) = self.llm.ok_or_else(|| missing("a model (`llm`)"))?;
        Ok(SkillsHub {
            artifacts: self.artifacts.ok_or_else(|| missing("an artifact store"))?,
            notes: self.notes.ok_or_else(|| missing("a note store"))?,
            llm,
            model,
            limits: self.limits,
        })
    }
}

#[async_trait]
impl ToolHub for SkillsHub {
    fn name(&self) -> &str {
        SKILLS_HUB
    }

    async fn list_tools(&self, _page: PageRequest) -> Result<ToolPage> {
        Ok(ToolPage {
            tools: SkillsHub::specs(),
            next_cursor: None,
        })
    }

    async fn execute(&self, tool_id: &str, arguments: Value, ctx: &ToolContext) -> Result<Value> {
        match tool_id {
            email::EMAIL_DRAFT => email::draft(self.llm.as_ref(), &self.model, arguments).await,
            pdf::PDF_CORRECT => {
                pdf::correct(
                    self.artifacts.as_ref(),
                    self.llm.as_ref(),
                    &self.model,
                    &self.limits,
                    arguments,
                    ctx,
                )
                .await
            }
            scaffold::TELEGRAM_BOT => {
                scaffold::telegram_bot(self.artifacts.as_ref(), arguments, ctx).await
            }
            other => notes::execute(self.notes.as_ref(), other, arguments, ctx)
                .await
                .unwrap_or_else(|| Err(Error::not_found("tool", other))),
        }
    }
}
