//! What every handler shares.

use std::sync::Arc;

use logline_core::engine::Engine;
use tokio_util::sync::CancellationToken;

use crate::auth::JwtKeys;
use crate::config::ServerConfig;
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
}

/// The handlers' state.
pub type AppState = Arc<Shared>;
