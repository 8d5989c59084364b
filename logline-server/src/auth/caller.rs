//! The [`authenticate`] middleware and the [`Caller`] extractor.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use logline_core::engine::{Principal, ScopedEngine};
use logline_core::ErrorKind;
use uuid::Uuid;

use super::tokens::{token_hash, API_KEY_PREFIX};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::Role;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerAuth {
    /// An access token of this session.
    Session(Uuid),
    /// An API key; `write` unless the key is read-only.
    ApiKey {
        /// Key id.
        id: Uuid,
        /// Whether the key may change things.
        write: bool,
    },
}

/// The authenticated caller of a request (from its token or API key, never from its body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// User.
    pub user_id: Uuid,
    /// Tenant.
    pub tenant_id: String,
    /// Role in the tenant.
    pub role: Role,
    /// Token or key.
    pub auth: CallerAuth,
}

impl Caller {
    /// The engine principal: the caller's tenant, user and role.
    pub fn principal(&self) -> Principal {
        Principal::user(self.tenant_id.clone(), self.user_id.to_string())
            .with_role(self.role.as_str())
    }

    /// The engine as this caller may use it.
    pub fn scoped(&self, state: &AppState) -> ScopedEngine {
        state.engine.scoped(self.principal())
    }

    /// `Forbidden` unless the caller holds one of `roles`.
    pub fn require(&self, roles: &[Role]) -> ApiResult<()> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(format!(
                "this needs the role {}",
                names.join(" or ")
            )))
        }
    }
}

/// Client address and agent, for audit rows and per-address limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// Address.
    pub ip: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("sign in: send `Authorization: Bearer <token>`"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientInfo>()
            .cloned()
            .unwrap_or_default())
    }
}

fn client_info(state: &AppState, req: &Request) -> ClientInfo {
    let forwarded = state
        .config
        .trust_forwarded_for
        .then(|| req.headers().get("x-forwarded-for")?.to_str().ok())
        .flatten()
        .and_then(|v| v.split(',').next())
        .map(|s| s.trim().to_string());
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    ClientInfo {
        ip: forwarded.or(peer),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
    }
}

/// The credential of a request: `Authorization: Bearer <token or key>` or `X-API-Key`.
fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// How fresh an API key's `last_used_at` is kept: a key in steady use is written once a
/// minute, not on every request.
const LAST_USED_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

async fn resolve(state: &AppState, credential: &str) -> ApiResult<Caller> {
    let rejected = || ApiError::unauthorized("the token or key is invalid, expired or revoked");
    if credential.starts_with(API_KEY_PREFIX) {
        let key = match state.store.api_key_by_hash(&token_hash(credential)).await {
            Ok(k) => k,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(rejected()),
            Err(e) => return Err(e.into()),
        };
        let now = Utc::now();
        if key.revoked_at.is_some() || key.expires_at.is_some_and(|t| t <= now) {
            return Err(rejected());
        }
        let user = state
            .store
            .user(key.user_id)
            .await
            .map_err(|_| rejected())?;
        if key
            .last_used_at
            .is_none_or(|t| now - t >= LAST_USED_RESOLUTION)
        {
            let store = state.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.touch_api_key(key.id, now).await {
                    tracing::warn!(error = %e, "could not record an API key's use");
                }
            });
        }
        return Ok(Caller {
            user_id: user.id,
            tenant_id: user.tenant_id,
            role: user.role,
            auth: CallerAuth::ApiKey {
                id: key.id,
                write: key.permissions.iter().any(|p| p == "write"),
            },
        });
    }
    let claims = state.keys.verify(credential).ok_or_else(rejected)?;
    match state.store.session(claims.sid).await {
        Ok(s) if s.revoked_at.is_none() && s.user_id == claims.sub => {}
        Ok(_) => return Err(rejected()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(rejected()),
        Err(e) => return Err(e.into()),
    }
    Ok(Caller {
        user_id: claims.sub,
        tenant_id: claims.tid,
        role: claims.role,
        auth: CallerAuth::Session(claims.sid),
    })
}

/// Resolves the caller of every request that carries a credential (a bad one is a 401 at
/// once), refuses writes with read-only keys, then applies the rate limits.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let client = client_info(&state, &req);
    let caller = match credential(req.headers()) {
        Some(c) => match resolve(&state, c).await {
            Ok(caller) => Some(caller),
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    if let Some(Caller {
        auth: CallerAuth::ApiKey { write: false, .. },
        ..
    }) = &caller
    {
        if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            return ApiError::forbidden("this API key is read-only").into_response();
        }
    }
    let limited = match &state.limits {
        Some(limits) => match limits.check(caller.as_ref(), client.ip.as_deref()) {
            Ok(headers) => Some(headers),
            Err(denied) => {
                state.metrics.rate_limited();
                return denied.into_response();
            }
        },
        None => None,
    };
    if let Some(c) = caller {
        req.extensions_mut().insert(c);
    }
    req.extensions_mut().insert(client);
    let mut res = next.run(req).await;
    if let Some(headers) = limited {
        headers.apply(res.headers_mut());
    }
    res
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned())
    }
}
