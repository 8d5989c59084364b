//! Assembling a deployment from the environment: PostgreSQL when `DATABASE_URL` is set
//! (else memory), OpenAI when `OPENAI_API_KEY` is set (else the demo model), Composio when
//! `COMPOSIO_API_KEY` is set.

use std::sync::Arc;

use logline_core::engine::{Engine, EngineBuilder};
use logline_core::Result;

use crate::demo::{with_local_tools, DemoModel};
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
}

/// Builds the deployment `env` describes (migrating PostgreSQL when used).
pub async fn deploy(env: &Environment) -> Result<Deployment> {
    let (builder, store, backend): (EngineBuilder, Arc<dyn ServerStore>, _) =
        match &env.database_url {
            Some(url) => postgres(url).await?,
            None => (
                Engine::builder(),
                Arc::new(MemoryServerStore::new()),
                "memory",
            ),
        };
    let (builder, model) = model(builder, env)?;
    let builder = tools(with_local_tools(builder), env)?;
    Ok(Deployment {
        engine: builder.build().await?,
        store,
        backend,
        model,
    })
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> Result<(EngineBuilder, Arc<dyn ServerStore>, &'static str)> {
    let config = logline_postgres::PgConfig::from_env()
        .unwrap_or_else(|_| logline_postgres::PgConfig::new(url));
    let pg = logline_postgres::PgBackend::connect(&config).await?;
    pg.migrate().await?;
    let store = Arc::new(crate::store::PgServerStore::new(pg.pool().clone()));
    Ok((pg.engine_builder(), store, "postgres"))
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_url: &str) -> Result<(EngineBuilder, Arc<dyn ServerStore>, &'static str)> {
    Err(logline_core::Error::InvalidInput(
        "DATABASE_URL is set but this build has no `postgres` feature".into(),
    ))
}

fn model(builder: EngineBuilder, env: &Environment) -> Result<(EngineBuilder, &'static str)> {
    if env.openai {
        #[cfg(feature = "openai")]
        {
            let provider = logline_openai::OpenAiProvider::from_env()?;
            return Ok((builder.default_llm(Arc::new(provider)), "openai"));
        }
        #[cfg(not(feature = "openai"))]
        return Err(logline_core::Error::InvalidInput(
            "OPENAI_API_KEY is set but this build has no `openai` feature".into(),
        ));
    }
    Ok((builder.default_llm(Arc::new(DemoModel)), "demo"))
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
