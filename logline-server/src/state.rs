//! What every handler shares.

use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use logline_core::artifact::{ArtifactStore, ObjectArtifactStore};
use logline_core::chat::ChatService;
use logline_core::engine::Engine;
use tokio_util::sync::CancellationToken;

use crate::auth::JwtKeys;
use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult};
use crate::limits::RateLimits;
use crate::metrics::Metrics;
use crate::store::ServerStore;

/// State shared by the handlers of one router.
pub struct Shared {
    /// The engine (handlers use it only through `Engine::scoped`, except for definitions).
    pub engine: Engine,
    /// Users, sessions, keys, audit rows, ownership.
    pub store: Arc<dyn ServerStore>,
    /// Settings.
    pub config: ServerConfig,
    /// Access-token keys.
    pub keys: JwtKeys,
    /// Counters and histograms.
    pub metrics: Metrics,
    /// Rate limiters (none when disabled).
    pub limits: Option<RateLimits>,
    /// Fired at shutdown: open streams end so the server can drain.
    pub shutdown: CancellationToken,
    /// The chat, once set ([`crate::Server::with_chat`]).
    pub chat: OnceLock<ChatService>,
    /// Uploads and tool outputs, once set; else an in-memory store with the configured
    /// upload limits.
    pub artifacts: OnceLock<Arc<dyn ArtifactStore>>,
}

impl Shared {
    /// The chat; a 404 on a server without one.
    pub fn chat(&self) -> ApiResult<&ChatService> {
        self.chat.get().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "this server has no chat",
            )
        })
    }

    /// Where uploads and tool outputs are kept.
    pub fn artifacts(&self) -> &Arc<dyn ArtifactStore> {
        self.artifacts.get_or_init(|| {
            Arc::new(ObjectArtifactStore::in_memory().with_limits(self.config.upload_limits()))
        })
    }
}

/// The handlers' state.
pub type AppState = Arc<Shared>;
