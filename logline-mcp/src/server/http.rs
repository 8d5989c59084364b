//! The server over streamable HTTP, as an axum router the host mounts (e.g. at [`MCP_PATH`]).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use logline_core::engine::Principal;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::service::McpService;
use super::McpServer;

/// Where a LogLine server mounts MCP.
pub const MCP_PATH: &str = "/mcp";

/// Authenticates an HTTP request from its headers (a bearer token, a cookie):
/// the principal, or `None` for 401.
pub type HttpAuth = Arc<dyn Fn(&HeaderMap) -> Option<Principal> + Send + Sync>;

impl McpServer {
    /// The streamable HTTP service. Each request's principal is the [`Principal`] the
    /// host's authentication put in the request's extensions (a request without one is
    /// refused). `allowed_hosts` are the `Host` values accepted (DNS-rebinding protection);
    /// empty keeps the default (loopback only).
    pub fn http_service(
        &self,
        allowed_hosts: Vec<String>,
    ) -> StreamableHttpService<McpService, LocalSessionManager> {
        let inner = self.inner.clone();
        let mut config = StreamableHttpServerConfig::default();
        if !allowed_hosts.is_empty() {
            config = config.with_allowed_hosts(allowed_hosts);
        }
        StreamableHttpService::new(
            move || Ok(McpService::new(inner.clone(), None)),
            Arc::new(LocalSessionManager::default()),
            config,
        )
    }

    /// A router serving MCP at [`MCP_PATH`], authenticating every request with `auth`.
    /// Merge it into the host's router.
    pub fn router(&self, auth: HttpAuth, allowed_hosts: Vec<String>) -> axum::Router {
        axum::Router::new()
            .nest_service(MCP_PATH, self.http_service(allowed_hosts))
            .layer(axum::middleware::from_fn(move |req, next| {
                authenticate(auth.clone(), req, next)
            }))
    }
}

async fn authenticate(auth: HttpAuth, mut req: Request, next: Next) -> Response {
    match auth(req.headers()) {
        Some(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        None => (StatusCode::UNAUTHORIZED, "unauthenticated").into_response(),
    }
}
