//! Assembling a deployment from the environment: PostgreSQL when `DATABASE_URL` is set
//! (else memory), OpenAI when `OPENAI_API_KEY` is set (else the demo model), Composio when
//! `COMPOSIO_API_KEY` is set — and the chat on top (its stores on the same backend).

use std::sync::Arc;

use logline_core::artifact::{ArtifactIndex, MemoryArtifactIndex, ObjectArtifactStore};
use logline_core::chat::{ChatConfig, ChatService, ChatStore, MemoryChatStore};
use logline_core::engine::{Engine, EngineBuilder};
use logline_core::llm::LlmProvider;
use logline_core::notes::{MemoryNoteStore, NoteStore};
use logline_core::Result;

use crate::chat::ChatParts;
use crate::config::ServerConfig;
use crate::demo::{demo_chat_config, with_local_tools, DemoModel};
use crate::store::{MemoryServerStore, ServerStore};

/// Where state lives and which model and tools run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `DATABASE_URL`.
    pub database_url: Option<String>,
    /// `OPENAI_API_KEY` is set.
    pub openai: bool,
    /// `COMPOSIO_API_KEY` is set.
    pub composio: bool,
}

impl Environment {
    /// Read from the process environment (empty values count as unset).
    pub fn from_env() -> Self {
        let set = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Environment {
            database_url: set("DATABASE_URL"),
            openai: set("OPENAI_API_KEY").is_some(),
            composio: set("COMPOSIO_API_KEY").is_some(),
        }
    }
}

/// An engine and the server's store, ready to serve or work.
pub struct Deployment {
    /// The engine.
    pub engine: Engine,
    /// Users, keys, audit rows, ownership.
    pub store: Arc<dyn ServerStore>,
    /// `memory` or `postgres`.
    pub backend: &'static str,
    /// `demo` or `openai`.
    pub model: &'static str,
    /// The chat, installed on the engine.
    pub chat: ChatService,
    /// Its stores (artifacts are served by the file routes).
    pub chat_parts: ChatParts,
}

/// The backend's stores before the engine is built.
struct Backend {
    builder: EngineBuilder,
    store: Arc<dyn ServerStore>,
    name: &'static str,
    chat: Arc<dyn ChatStore>,
    artifact_index: Arc<dyn ArtifactIndex>,
    notes: Arc<dyn NoteStore>,
}

/// Builds the deployment `env` describes (migrating PostgreSQL when used); artifact bytes
/// go where `config.artifacts_url` says, capped by its upload limits.
pub async fn deploy(env: &Environment, config: &ServerConfig) -> Result<Deployment> {
    let backend = match &env.database_url {
        Some(url) => postgres(url).await?,
        None => Backend {
            builder: Engine::builder(),
            store: Arc::new(MemoryServerStore::new()),
            name: "memory",
            chat: Arc::new(MemoryChatStore::new()),
            artifact_index: Arc::new(MemoryArtifactIndex::new()),
            notes: Arc::new(MemoryNoteStore::new()),
        },
    };
    let artifacts = ObjectArtifactStore::from_url(
        &config.artifacts_url,
        Vec::<(String, String)>::new(),
        backend.artifact_index,
    )?
    .with_limits(config.upload_limits());
    let parts = ChatParts {
        store: backend.chat,
        artifacts: Arc::new(artifacts),
        notes: backend.notes,
    };
    let (llm, model, chat_config) = model(env)?;
    let builder = backend.builder.default_llm(llm.clone());
    let builder = parts.wire(builder, llm, &chat_config.cheap_model.model)?;
    let builder = tools(with_local_tools(builder), env)?;
    let engine = builder.build().await?;
    let chat = parts.install(&engine, chat_config).await?;
    Ok(Deployment {
        engine,
        store: backend.store,
        backend: backend.name,
        model,
        chat,
        chat_parts: parts,
    })
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> Result<Backend> {
    let config = logline_postgres::PgConfig::from_env()
        .unwrap_or_else(|_| logline_postgres::PgConfig::new(url));
    let pg = logline_postgres::PgBackend::connect(&config).await?;
    pg.migrate().await?;
    let pool = pg.pool().clone();
    Ok(Backend {
        builder: pg.engine_builder(),
        store: Arc::new(crate::store::PgServerStore::new(pool.clone())),
        name: "postgres",
        chat: Arc::new(pg.chat_store()),
        artifact_index: Arc::new(logline_postgres::PgArtifactIndex::new(pool.clone())),
        notes: Arc::new(logline_postgres::PgNoteStore::new(pool)),
    })
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_url: &str) -> Result<Backend> {
    Err(logline_core::Error::InvalidInput(
        "DATABASE_URL is set but this build has no `postgres` feature".into(),
    ))
}

/// The default model, its name, and the chat's models on it.
fn model(env: &Environment) -> Result<(Arc<dyn LlmProvider>, &'static str, ChatConfig)> {
    if env.openai {
        #[cfg(feature = "openai")]
        {
            let provider = logline_openai::OpenAiProvider::from_env()?;
            return Ok((Arc::new(provider), "openai", ChatConfig::default()));
        }
        #[cfg(not(feature = "openai"))]
        return Err(logline_core::Error::InvalidInput(
            "OPENAI_API_KEY is set but this build has no `openai` feature".into(),
        ));
    }
    Ok((Arc::new(DemoModel), "demo", demo_chat_config()))
}

fn tools(builder: EngineBuilder, env: &Environment) -> Result<EngineBuilder> {
    if env.composio {
        #[cfg(feature = "composio")]
        {
            let config = logline_composio::ComposioConfig::from_env()?;
            let hub = logline_composio::ComposioToolHub::new(config)?;
            return Ok(builder.tool_hub(Arc::new(hub)));
        }
        #[cfg(not(feature = "composio"))]
        return Err(logline_core::Error::InvalidInput(
            "COMPOSIO_API_KEY is set but this build has no `composio` feature".into(),
        ));
    }
    Ok(builder)
}
