//! A local fake of the Composio v3 API (the documented shapes of `composio-wire.md`), with a
//! generated catalog, failure injection and a request log. Shared by the tests and the
//! `catalog_sync` bench (included with `#[path]`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

/// An injected failure: the next request whose path contains `path_contains` gets `status`.
#[derive(Debug, Clone)]
pub struct Failure {
    pub path_contains: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// How long the server stalls before answering.
    pub stall: Duration,
}

/// Everything the fake knows.
#[derive(Debug, Clone)]
pub struct FakeState {
    pub api_key: String,
    pub prefix: String,
    pub toolkits: BTreeMap<String, Value>,
    pub tools: BTreeMap<String, Value>,
    pub accounts: Vec<Value>,
    pub deprecated: HashSet<String>,
    pub failures: VecDeque<Failure>,
    pub requests: Vec<String>,
    pub executions: Vec<(String, Value)>,
    /// The `idempotency-key` header of every execution request, in order.
    pub idempotency_keys: Vec<Option<String>>,
    pub clock: u64,
    /// Check execution arguments against the tool's input schema (400 on a mismatch).
    pub validate_arguments: bool,
    /// List every user's connected accounts, whatever `user_ids` asks for.
    pub ignore_user_filter: bool,
}

impl FakeState {
    /// An empty catalog.
    pub fn empty() -> Self {
        FakeState {
            api_key: "test-key".into(),
            prefix: "/api/v3".into(),
            toolkits: BTreeMap::new(),
            tools: BTreeMap::new(),
            accounts: Vec::new(),
            deprecated: HashSet::new(),
            failures: VecDeque::new(),
            requests: Vec::new(),
            executions: Vec::new(),
            idempotency_keys: Vec::new(),
            clock: 0,
            validate_arguments: false,
            ignore_user_filter: false,
        }
    }

    /// `n_tools` tools spread over `n_toolkits` toolkits (every 10th toolkit needs no auth).
    pub fn generated(n_tools: usize, n_toolkits: usize) -> Self {
        let mut s = Self::empty();
        for k in 0..n_toolkits {
            let slug = toolkit_slug(k);
            s.toolkits
                .insert(slug.clone(), toolkit_json(&slug, k % 10 == 9, 0, 0));
        }
        for i in 0..n_tools {
            let kit = toolkit_slug(i % n_toolkits);
            let (verb, object) = (
                VERBS[(i / n_toolkits) % VERBS.len()],
                OBJECTS[(i / n_toolkits / VERBS.len()) % OBJECTS.len()],
            );
            let mut slug = format!("{}_{verb}_{object}", kit.to_uppercase());
            if s.tools.contains_key(&slug) {
                slug = format!("{slug}_{i}");
            }
            s.tools
                .insert(slug.clone(), tool_json(&slug, &kit, verb, object));
        }
        s.recount();
        s
    }

    /// Recomputes every toolkit's `tools_count`.
    pub fn recount(&mut self) {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for t in self.tools.values() {
            *counts
                .entry(t["toolkit"]["slug"].as_str().unwrap_or("").to_string())
                .or_default() += 1;
        }
        for (slug, kit) in self.toolkits.iter_mut() {
            kit["meta"]["tools_count"] = json!(counts.get(slug).copied().unwrap_or(0));
        }
    }

    /// Marks a toolkit changed (a new `updated_at`).
    pub fn touch(&mut self, toolkit: &str) {
        self.clock += 1;
        let at = format!(
            "2025-02-{:02}T00:00:{:02}Z",
            1 + self.clock / 60 % 27,
            self.clock % 60
        );
        if let Some(k) = self.toolkits.get_mut(toolkit) {
            k["meta"]["updated_at"] = json!(at);
        }
        self.recount();
    }

    /// Changes a tool's description (and touches its toolkit).
    pub fn change_tool(&mut self, slug: &str, description: &str) {
        let kit = {
            let t = self.tools.get_mut(slug).expect("tool exists");
            t["description"] = json!(description);
            t["toolkit"]["slug"].as_str().unwrap_or("").to_string()
        };
        self.touch(&kit);
    }

    /// Removes a tool (and touches its toolkit).
    pub fn remove_tool(&mut self, slug: &str) {
        let t = self.tools.remove(slug).expect("tool exists");
        self.touch(t["toolkit"]["slug"].as_str().unwrap_or(""));
    }

    /// Adds a tool to a toolkit (and touches it).
    pub fn add_tool(&mut self, toolkit: &str, slug: &str, verb: &str, object: &str) {
        self.tools
            .insert(slug.into(), tool_json(slug, toolkit, verb, object));
        self.touch(toolkit);
    }

    /// Adds a connected account.
    pub fn add_account(
        &mut self,
        id: &str,
        user: &str,
        toolkit: &str,
        status: &str,
        disabled: bool,
    ) {
        self.accounts.push(json!({
            "id": id, "status": status, "is_disabled": disabled, "user_id": user,
            "toolkit": {"slug": toolkit},
            "auth_config": {"id": "ac_1", "auth_scheme": "OAUTH2"},
            "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"
        }));
    }

    /// Queues a failure.
    pub fn fail_next(&mut self, path_contains: &str, status: u16, headers: &[(&str, &str)]) {
        self.failures.push_back(Failure {
            path_contains: path_contains.into(),
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            stall: Duration::ZERO,
        });
    }

    /// Queues a failure answered only after `stall` (a client timeout cuts it short).
    pub fn stall_next(&mut self, path_contains: &str, status: u16, stall: Duration) {
        self.fail_next(path_contains, status, &[]);
        if let Some(f) = self.failures.back_mut() {
            f.stall = stall;
        }
    }

    /// Requests whose line contains `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.requests.iter().filter(|r| r.contains(needle)).count()
    }
}

const PREFIXES: [&str; 12] = [
    "acme", "nova", "zen", "blue", "pixel", "cloud", "swift", "terra", "lumen", "quanta", "orbit",
    "maple",
];
const KINDS: [&str; 20] = [
    "crm",
    "mail",
    "drive",
    "chat",
    "docs",
    "sheets",
    "tasks",
    "calendar",
    "billing",
    "notes",
    "photos",
    "tickets",
    "wiki",
    "forms",
    "analytics",
    "storage",
    "video",
    "music",
    "maps",
    "shop",
];
const VERBS: [&str; 12] = [
    "LIST",
    "GET",
    "CREATE",
    "UPDATE",
    "DELETE",
    "SEND",
    "SEARCH",
    "ARCHIVE",
    "EXPORT",
    "ADD_MEMBER",
    "CREATE_REFUND",
    "UPLOAD",
];
const OBJECTS: [&str; 10] = [
    "ITEM", "RECORD", "CONTACT", "MESSAGE", "FILE", "EVENT", "TASK", "COMMENT", "REPORT", "FOLDER",
];

pub fn toolkit_slug(k: usize) -> String {
    let base = format!(
        "{}{}",
        PREFIXES[k % PREFIXES.len()],
        KINDS[(k / PREFIXES.len()) % KINDS.len()]
    );
    let round = k / (PREFIXES.len() * KINDS.len());
    if round == 0 {
        base
    } else {
        format!("{base}{round}")
    }
}

pub fn toolkit_json(slug: &str, no_auth: bool, tools: u64, day: u32) -> Value {
    json!({
        "slug": slug, "name": slug.to_uppercase(), "auth_schemes": if no_auth { json!([]) } else { json!(["OAUTH2"]) },
        "no_auth": no_auth, "is_local_toolkit": false,
        "meta": {"description": format!("The {slug} app"), "categories": [{"id": "productivity", "name": "Productivity"}],
                 "logo": "", "tools_count": tools, "triggers_count": 0,
                 "created_at": "2025-01-01T00:00:00Z", "updated_at": format!("2025-01-{:02}T00:00:00Z", day % 28 + 1)}
    })
}

pub fn tool_json(slug: &str, toolkit: &str, verb: &str, object: &str) -> Value {
    let tags = match verb {
        "LIST" | "GET" | "SEARCH" | "EXPORT" => json!(["readOnlyHint", "idempotentHint"]),
        "DELETE" | "ARCHIVE" => json!(["destructiveHint"]),
        _ => json!(["openWorldHint"]),
    };
    let obj = object.to_lowercase();
    json!({
        "slug": slug,
        "name": format!("{} {}", title(verb), title(object)),
        "description": format!("{} a {obj} in {toolkit}.", title(verb)),
        "toolkit": {"slug": toolkit, "name": toolkit.to_uppercase(), "logo": ""},
        "input_parameters": {"type": "object", "title": format!("{verb}Request"),
            "properties": {format!("{obj}_id"): {"type": "string", "description": format!("Id of the {obj}")},
                           "limit": {"type": "integer", "default": 20}},
            "required": [format!("{obj}_id")]},
        "output_parameters": {"type": "object", "properties": {"data": {}, "error": {}, "successful": {"type": "boolean"}}},
        "scopes": [], "tags": tags, "no_auth": false,
        "version": "20250101_00", "available_versions": ["20250101_00"], "is_deprecated": false,
        "deprecated": {"is_deprecated": false}
    })
}

fn title(s: &str) -> String {
    s.split('_')
        .map(|w| {
            let lower = w.to_lowercase();
            let mut c = lower.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A running fake server.
pub struct FakeComposio {
    pub base_url: String,
    pub state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeComposio {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeComposio {
    /// Serves `state` on 127.0.0.1 (a free port).
    pub async fn start(state: FakeState) -> Self {
        let state = Arc::new(Mutex::new(state));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeComposio {
            base_url: format!("http://{addr}"),
            state,
            task,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn error(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"message": message, "code": status, "status": status,
        "request_id": "req_fake", "suggested_fix": "", "errors": []}});
    (code, axum::Json(body)).into_response()
}

fn query_map(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), percent_decoded(v)))
        })
        .collect()
}

/// `%XX` escapes and `+` of a query value decoded (invalid escapes kept as they are).
fn percent_decoded(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn page<'a>(items: impl Iterator<Item = &'a Value>, q: &BTreeMap<String, String>) -> Response {
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(20)
        .clamp(1, 1000);
    let offset: usize = q
        .get("cursor")
        .and_then(|c| c.strip_prefix('c'))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut total = 0;
    let mut slice: Vec<&Value> = Vec::with_capacity(limit);
    for (i, item) in items.enumerate() {
        if i >= offset && i < offset + limit {
            slice.push(item);
        }
        total += 1;
    }
    let next = (offset + limit < total).then(|| format!("c{}", offset + limit));
    axum::Json(json!({
        "items": slice, "next_cursor": next,
        "total_pages": total.div_ceil(limit).max(1), "current_page": offset / limit + 1, "total_items": total
    }))
    .into_response()
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let line = format!("{method} {uri}");
    let injected = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.requests.push(line.clone());
        if method == Method::POST && uri.path().contains("/tools/execute/") {
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            s.idempotency_keys.push(key);
        }
        if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(s.api_key.as_str()) {
            return error(401, "Invalid API key");
        }
        s.failures
            .iter()
            .position(|f| line.contains(&f.path_contains))
            .and_then(|pos| s.failures.remove(pos))
    };
    match injected {
        Some(failure) => inject(failure).await,
        None => answer(&state, method, uri, body),
    }
}

/// A queued failure, after its stall.
async fn inject(f: Failure) -> Response {
    if !f.stall.is_zero() {
        tokio::time::sleep(f.stall).await;
    }
    let mut resp = error(f.status, &format!("injected {}", f.status));
    for (k, v) in f.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

/// The documented answer to an authorised request.
fn answer(state: &Mutex<FakeState>, method: Method, uri: Uri, body: Bytes) -> Response {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let Some(path) = uri
        .path()
        .strip_prefix(s.prefix.as_str())
        .map(str::to_string)
    else {
        return error(404, "unknown path");
    };
    let q = query_map(&uri);
    match (method, path.as_str()) {
        (Method::GET, "/tools") => {
            let kits: Option<HashSet<&str>> = q.get("toolkit_slug").map(|v| v.split(',').collect());
            let slugs: Option<HashSet<&str>> = q.get("tool_slugs").map(|v| v.split(',').collect());
            let items = s.tools.values().filter(|t| match (&slugs, &kits) {
                (Some(sl), _) => sl.contains(t["slug"].as_str().unwrap_or("")),
                (None, Some(k)) => k.contains(t["toolkit"]["slug"].as_str().unwrap_or("")),
                (None, None) => true,
            });
            page(items, &q)
        }
        (Method::GET, "/toolkits") => page(s.toolkits.values(), &q),
        (Method::GET, "/connected_accounts") => {
            let users: Option<HashSet<&str>> = q
                .get("user_ids")
                .filter(|_| !s.ignore_user_filter)
                .map(|v| v.split(',').collect());
            let statuses: Option<HashSet<&str>> = q.get("statuses").map(|v| v.split(',').collect());
            let items = s
                .accounts
                .iter()
                .filter(|a| {
                    users
                        .as_ref()
                        .is_none_or(|u| u.contains(a["user_id"].as_str().unwrap_or("")))
                })
                .filter(|a| {
                    statuses
                        .as_ref()
                        .is_none_or(|st| st.contains(a["status"].as_str().unwrap_or("")))
                });
            page(items, &q)
        }
        (Method::GET, p) if p.starts_with("/tools/") => match s.tools.get(&p["/tools/".len()..]) {
            Some(t) => axum::Json(t.clone()).into_response(),
            None => error(404, "Tool not found"),
        },
        (Method::POST, p) if p.starts_with("/tools/execute/") => {
            let slug = p["/tools/execute/".len()..].to_string();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            s.executions.push((slug.clone(), body.clone()));
            if s.deprecated.contains(&slug) {
                return error(410, "Tool is deprecated");
            }
            if !s.tools.contains_key(&slug) {
                return error(404, "Tool not found");
            }
            if let Some(ca) = body["connected_account_id"].as_str() {
                let ok = s
                    .accounts
                    .iter()
                    .any(|a| a["id"] == ca && a["status"] == "ACTIVE");
                if !ok {
                    return error(422, "Connected account is in an invalid state");
                }
            }
            if s.validate_arguments {
                let schema = &s.tools[&slug]["input_parameters"];
                let violations = logline_core::schema::SchemaCache::new()
                    .violations(schema, &body["arguments"])
                    .unwrap_or_default();
                if let Some(v) = violations.first() {
                    return error(400, &format!("Invalid arguments: {}", v.message));
                }
            }
            if body["arguments"]["fail"] == json!(true) {
                return axum::Json(json!({"data": {}, "error": "Remote API said no", "successful": false, "log_id": "log_1"}))
                    .into_response();
            }
            axum::Json(json!({
                "data": {"tool": slug, "echo": body["arguments"], "user_id": body["user_id"],
                         "connected_account_id": body["connected_account_id"]},
                "error": null, "successful": true, "log_id": "log_2"
            }))
            .into_response()
        }
        _ => error(404, "unknown route"),
    }
}
