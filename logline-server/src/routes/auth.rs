//! `/api/v1/auth/*` and `/api/v1/users`: register, login, refresh (rotation with reuse
//! detection), logout, me, API keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use logline_core::ErrorKind;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, Action};
use crate::auth::{self, Caller, CallerAuth, ClientInfo};
use crate::error::{ApiError, ApiResult, Problem};
use crate::routes::{Body, OptBody};
use crate::state::AppState;
use crate::store::{RefreshToken, Role, Session, User};

/// Longest accepted email.
const MAX_EMAIL_LEN: usize = 254;

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Email.
    pub email: String,
    /// Name.
    pub name: Option<String>,
    /// Role.
    pub role: Role,
    /// Tenant.
    pub tenant_id: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id,
            email: u.email.clone(),
            name: u.name.clone(),
            role: u.role,
            tenant_id: u.tenant_id.clone(),
            created_at: u.created_at,
        }
    }
}

/// `POST /auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Email.
    pub email: String,
    /// Password (8 to 256 characters).
    pub password: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// `POST /auth/refresh` and (optionally) `POST /auth/logout`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token.
    pub refresh_token: String,
}

/// Tokens of a session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The user.
    pub user: UserView,
    /// Access token (JWT) for `Authorization: Bearer`.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
    /// Refresh token: exchange it once at `/auth/refresh` for new tokens.
    pub refresh_token: String,
}

/// `POST /users`: an admin adds a user to their tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Role.
    pub role: Role,
}

fn check_email(email: &str) -> ApiResult<String> {
    let email = email.trim();
    let ok = email.len() <= MAX_EMAIL_LEN
        && email.split_once('@').is_some_and(|(a, d)| {
            !a.is_empty()
                && d.contains('.')
                && !email.contains(|c: char| c.is_whitespace() || c.is_control())
        });
    if ok {
        Ok(email.to_string())
    } else {
        Err(ApiError::bad_request("`email` is not an email address"))
    }
}

/// Creates a user (hashing the password); a taken email is a 409.
pub async fn create_user(
    state: &AppState,
    email: &str,
    password: &str,
    name: Option<String>,
    role: Role,
    tenant_id: String,
) -> ApiResult<User> {
    let email = check_email(email)?;
    let user = User {
        id: Uuid::now_v7(),
        email,
        password_hash: auth::hash_password(password)?,
        name: name.map(|n| n.chars().filter(|c| !c.is_control()).take(200).collect()),
        role,
        tenant_id,
        created_at: Utc::now(),
    };
    state.store.create_user(&user).await?;
    Ok(user)
}

fn refresh_record(state: &AppState, session_id: Uuid, user_id: Uuid) -> (String, RefreshToken) {
    let token = auth::new_secret(auth::REFRESH_PREFIX);
    let ttl = ChronoDuration::seconds(
        i64::try_from(state.config.refresh_ttl_secs).unwrap_or(i64::MAX / 2),
    );
    let record = RefreshToken {
        token_hash: auth::token_hash(&token),
        session_id,
        user_id,
        expires_at: Utc::now() + ttl,
        used_at: None,
    };
    (token, record)
}

/// Opens a session for `user` and returns its tokens.
async fn open_session(state: &AppState, user: &User) -> ApiResult<TokenResponse> {
    let session = Session {
        id: Uuid::now_v7(),
        user_id: user.id,
        revoked_at: None,
        created_at: Utc::now(),
    };
    let (refresh_token, record) = refresh_record(state, session.id, user.id);
    state.store.create_session(&session, &record).await?;
    tokens(state, user, session.id, refresh_token)
}

fn tokens(
    state: &AppState,
    user: &User,
    sid: Uuid,
    refresh_token: String,
) -> ApiResult<TokenResponse> {
    let (access_token, expires_in) = state.keys.issue(user, sid)?;
    Ok(TokenResponse {
        user: user.into(),
        access_token,
        token_type: "Bearer".into(),
        expires_in,
        refresh_token,
    })
}

/// Registers a user in a new tenant, as its admin.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = TokenResponse), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    client: ClientInfo,
    Body(req): Body<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    if !state.config.open_registration {
        return Err(ApiError::forbidden(
            "registration is closed: ask an admin for an account",
        ));
    }
    let tenant = Uuid::now_v7().to_string();
    let user = create_user(
        &state,
        &req.email,
        &req.password,
        req.name,
        Role::Admin,
        tenant,
    )
    .await?;
    audit::record_for(
        &state,
        &user.tenant_id,
        Some(user.id.to_string()),
        &client,
        Action::new("register", "user", user.id),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(open_session(&state, &user).await?),
    ))
}

/// Signs in with email and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem)))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    Body(req): Body<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let email = check_email(&req.email).unwrap_or_default();
    let user = match state.store.user_by_email(&email).await {
        Ok(_) if email.is_empty() => None,
        Ok(u) => Some(u),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let hash = user
        .as_ref()
        .map_or(auth::decoy_hash(), |u| u.password_hash.as_str());
    let ok = auth::verify_password(&req.password, hash);
    let failed_user = user.clone().filter(|_| !ok);
    let Some(user) = user.filter(|_| ok) else {
        state.metrics.count("logins_failed");
        if let Some(u) = failed_user {
            audit::record_for(
                &state,
                &u.tenant_id,
                Some(u.id.to_string()),
                &client,
                Action::new("login_failed", "user", u.id),
            )
            .await?;
        }
        return Err(ApiError::unauthorized("wrong email or password"));
    };
    audit::record_for(
        &state,
        &user.tenant_id,
        Some(user.id.to_string()),
        &client,
        Action::new("login", "user", user.id),
    )
    .await?;
    Ok(Json(open_session(&state, &user).await?))
}

/// Exchanges a refresh token for new tokens. A token is good once: presenting a rotated
/// token again revokes its whole session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem)))]
pub async fn refresh(
    State(state): State<AppState>,
    client: ClientInfo,
    Body(req): Body<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let rejected = || ApiError::unauthorized("the refresh token is invalid, expired or revoked");
    let hash = auth::token_hash(&req.refresh_token);
    let old = match state.store.refresh_token(&hash).await {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(rejected()),
        Err(e) => return Err(e.into()),
    };
    let session = state.store.session(old.session_id).await?;
    let user = state.store.user(old.user_id).await?;
    if session.revoked_at.is_some() || old.expires_at <= Utc::now() {
        return Err(rejected());
    }
    let (token, next) = refresh_record(&state, old.session_id, old.user_id);
    let before = if old.used_at.is_some() {
        old
    } else {
        state.store.rotate_refresh(&hash, &next).await?
    };
    if before.used_at.is_some() {
        // A rotated token came back: someone holds a copy. End the session for everyone.
        state.store.revoke_session(before.session_id).await?;
        audit::record_for(
            &state,
            &user.tenant_id,
            Some(user.id.to_string()),
            &client,
            Action::new("refresh_reuse", "session", before.session_id),
        )
        .await?;
        return Err(rejected());
    }
    Ok(Json(tokens(&state, &user, before.session_id, token)?))
}

/// Ends a session: the caller's (access token), or the one of the refresh token given.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body(content = Option<RefreshRequest>),
    responses((status = 204), (status = 401, body = Problem)), security((), ("bearer" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    caller: Option<Caller>,
    client: ClientInfo,
    OptBody(body): OptBody<Option<RefreshRequest>>,
) -> ApiResult<StatusCode> {
    let session_id = match (body, &caller) {
        (Some(req), _) => {
            let t = state
                .store
                .refresh_token(&auth::token_hash(&req.refresh_token))
                .await
                .map_err(|_| ApiError::unauthorized("the refresh token is invalid"))?;
            t.session_id
        }
        (
            None,
            Some(Caller {
                auth: CallerAuth::Session(sid),
                ..
            }),
        ) => *sid,
        _ => {
            return Err(ApiError::unauthorized(
                "send the refresh token or an access token",
            ))
        }
    };
    let session = state.store.session(session_id).await?;
    state.store.revoke_session(session_id).await?;
    let user = state.store.user(session.user_id).await?;
    audit::record_for(
        &state,
        &user.tenant_id,
        Some(user.id.to_string()),
        &client,
        Action::new("logout", "session", session_id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = UserView), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<UserView>> {
    Ok(Json((&state.store.user(caller.user_id).await?).into()))
}

/// Adds a user to the admin's tenant.
#[utoipa::path(post, path = "/api/v1/users", tag = "auth", request_body = CreateUserRequest,
    responses((status = 201, body = UserView), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn add_user(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Body(req): Body<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    caller.require(&[Role::Admin])?;
    let user = create_user(
        &state,
        &req.email,
        &req.password,
        req.name,
        req.role,
        caller.tenant_id.clone(),
    )
    .await?;
    audit::record(
        &state,
        &caller,
        &client,
        Action::new("create", "user", user.id)
            .changes(json!({"role": user.role, "email": user.email})),
    )
    .await?;
    Ok((StatusCode::CREATED, Json((&user).into())))
}
