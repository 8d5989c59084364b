//! [`Server`]: the router with its layers, and [`router`] for hosts that mount it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::{Json, Router};
use logline_core::artifact::ArtifactStore;
use logline_core::chat::ChatService;
use logline_core::engine::Engine;
use logline_core::Result;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{authenticate, JwtKeys};
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::limits::RateLimits;
use crate::metrics::{track, Metrics};
use crate::openapi::ApiDoc;
use crate::routes::{
    agents, alerts, apps, audit_logs, auth, chat, files, health, keys, metrics, policies, runs,
    stream, tools, workflows,
};
use crate::state::{AppState, Shared};
use crate::store::{MemoryServerStore, ServerStore};

/// Path of the served OpenAPI document.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// Kinds of definitions a host can share with every tenant ([`Server::share`]).
pub mod kinds {
    /// Workflows.
    pub const WORKFLOW: &str = crate::routes::workflows::KIND;
    /// Agents.
    pub const AGENT: &str = crate::routes::agents::KIND;
    /// Tools.
    pub const TOOL: &str = crate::routes::tools::KIND;
    /// Policies.
    pub const POLICY: &str = crate::routes::policies::KIND;
}

/// The HTTP API over one engine.
pub struct Server {
    state: AppState,
    extra: Vec<OpenApiRouter<AppState>>,
}

/// The API's router over `engine` with the server's records in memory (see [`Server`] to
/// keep them in PostgreSQL).
pub fn router(engine: Engine, config: ServerConfig) -> Router {
    Server::new(engine, config).router()
}

impl Server {
    /// A server keeping its records in memory.
    pub fn new(engine: Engine, config: ServerConfig) -> Self {
        Self::with_store(engine, config, Arc::new(MemoryServerStore::new()))
    }

    /// A server keeping its records in `store`.
    pub fn with_store(engine: Engine, config: ServerConfig, store: Arc<dyn ServerStore>) -> Self {
        let keys = JwtKeys::new(&config.jwt_secret, config.access_ttl());
        let limits = RateLimits::new(config.rate_limit_per_minute, config.rate_limit_burst);
        Server {
            state: Arc::new(Shared {
                engine,
                store,
                config,
                keys,
                metrics: Metrics::default(),
                limits,
                shutdown: CancellationToken::new(),
                chat: OnceLock::new(),
                artifacts: OnceLock::new(),
            }),
            extra: Vec::new(),
        }
    }

    /// Serves `chat` (the chat routes) and `artifacts` (the file and artifact routes; give
    /// the store the chat's tools write to). Set once: a later call changes nothing.
    pub fn with_chat(self, chat: ChatService, artifacts: Arc<dyn ArtifactStore>) -> Self {
        let _ = self.state.chat.set(chat);
        let _ = self.state.artifacts.set(artifacts);
        self
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Fires at shutdown: cancel it to end open event streams (`serve` does it on a signal).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Makes a definition the host registered on the engine visible to every tenant
    /// (read and use only). `kind` is one of [`kinds`].
    pub async fn share(&self, kind: &str, id: &str) -> Result<()> {
        self.state.store.claim(kind, id, None).await
    }

    /// Adds routes (with their `utoipa` annotations) to the API: they share the state, the
    /// layers (authentication, limits, metrics) and the OpenAPI document. Handlers take
    /// [`crate::auth::Caller`] and act through `Caller::scoped`, like the built-in ones.
    pub fn with_routes(mut self, routes: OpenApiRouter<AppState>) -> Self {
        self.extra.push(routes);
        self
    }

    /// The routes and their OpenAPI document.
    pub fn api(&self) -> (Router<AppState>, utoipa::openapi::OpenApi) {
        let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi());
        for extra in &self.extra {
            api = api.merge(extra.clone());
        }
        let (router, doc) = api
            .routes(routes!(health::health))
            .routes(routes!(auth::register))
            .routes(routes!(auth::login))
            .routes(routes!(auth::refresh))
            .routes(routes!(auth::logout))
            .routes(routes!(auth::me))
            .routes(routes!(auth::add_user))
            .routes(routes!(keys::create_key, keys::list_keys))
            .routes(routes!(keys::revoke_key))
            .routes(routes!(workflows::create, workflows::list))
            .routes(routes!(
                workflows::get,
                workflows::update,
                workflows::delete
            ))
            .routes(routes!(runs::start))
            .routes(routes!(runs::list))
            .routes(routes!(runs::get))
            .routes(routes!(runs::events))
            .routes(routes!(stream::stream))
            .routes(routes!(runs::approve))
            .routes(routes!(runs::deny))
            .routes(routes!(runs::cancel))
            .routes(routes!(tools::list, tools::upsert))
            .routes(routes!(agents::list, agents::upsert))
            .routes(routes!(agents::get))
            .routes(routes!(agents::test))
            .routes(routes!(policies::list, policies::create))
            .routes(routes!(policies::get, policies::update, policies::delete))
            .routes(routes!(audit_logs::logs))
            .routes(routes!(metrics::metrics))
            .routes(routes!(alerts::list, alerts::create))
            .routes(routes!(alerts::update, alerts::delete))
            .routes(routes!(alerts::check))
            .routes(routes!(alerts::history))
            .routes(routes!(alerts::resolve))
            .routes(routes!(chat::create_conversation, chat::list_conversations))
            .routes(routes!(chat::messages))
            .routes(routes!(chat::send))
            .routes(routes!(chat::stream))
            .routes(routes!(chat::task))
            .routes(routes!(chat::confirm))
            .merge(files::upload_routes(self.state.config.upload_max_bytes))
            .routes(routes!(files::list))
            .routes(routes!(files::get))
            .routes(routes!(files::content))
            .routes(routes!(apps::import))
            .routes(routes!(apps::list))
            .routes(routes!(apps::get))
            .routes(routes!(apps::run))
            .split_for_parts();
        let (router, mut doc) = (router, doc);
        crate::openapi::document_problems(&mut doc);
        (router, doc)
    }

    /// The router with every layer: metrics, authentication and rate limits, body limit,
    /// security headers, CORS (only when origins are configured), tracing.
    pub fn router(&self) -> Router {
        let (api, doc) = self.api();
        let doc = Arc::new(doc);
        let state = self.state.clone();
        let mut router = api
            .route(
                OPENAPI_PATH,
                axum::routing::get(move || {
                    let doc = doc.clone();
                    async move { Json(doc.as_ref().clone()) }
                }),
            )
            .route_layer(from_fn_with_state(state.clone(), track));
        if state.config.console {
            router = router.merge(crate::console::routes());
        }
        let mut router = router
            .fallback(|| async {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route").into_response()
            })
            .method_not_allowed_fallback(|| async {
                ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "method not allowed on this route",
                )
                .into_response()
            })
            .layer(from_fn_with_state(state.clone(), authenticate))
            .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
            .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
            .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
            .layer(security_header(
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; frame-ancestors 'none'",
            ))
            .layer(security_header(header::CACHE_CONTROL, "no-store"));
        if !state.config.cors_origins.is_empty() {
            let origins: Vec<HeaderValue> = state
                .config
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect();
            router = router.layer(
                CorsLayer::new()
                    .allow_origin(AllowOrigin::list(origins))
                    .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
                    .allow_headers([
                        header::AUTHORIZATION,
                        header::CONTENT_TYPE,
                        HeaderName::from_static("idempotency-key"),
                        HeaderName::from_static("last-event-id"),
                        HeaderName::from_static("x-api-key"),
                    ])
                    .max_age(Duration::from_secs(600)),
            );
        }
        router.layer(TraceLayer::new_for_http()).with_state(state)
    }
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}
