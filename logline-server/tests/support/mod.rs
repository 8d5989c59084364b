//! An in-process server on a real socket, and HTTP helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod pg;
pub mod sse;
pub mod suite;

use std::net::SocketAddr;
use std::sync::Arc;

use logline_core::artifact::ArtifactStore;
use logline_core::chat::ChatService;
use logline_core::engine::{Engine, EngineBuilder, WorkerOptions, WorkerPool};
use logline_core::llm::LlmProvider;
use logline_server::chat::ChatParts;
use logline_server::demo::{demo_chat_config, register_demo, with_local_tools, DemoModel};
use logline_server::listen::no_delay;
use logline_server::store::{MemoryServerStore, ServerStore};
use logline_server::Server;
pub use logline_server::ServerConfig;
use reqwest::{header::HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// A running server.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub engine: Engine,
    pub store: Arc<dyn ServerStore>,
    pub shutdown: CancellationToken,
    pub workers: Option<WorkerPool>,
    pub served: tokio::task::JoinHandle<()>,
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Login {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
    pub tenant_id: String,
    pub email: String,
}

/// An answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn id(&self) -> String {
        self.body["id"].as_str().expect("an id").to_string()
    }
}

/// A config without rate limits (tests of limits set their own).
pub fn config() -> ServerConfig {
    ServerConfig {
        rate_limit_per_minute: 0,
        jwt_secret: "test-secret".into(),
        ..Default::default()
    }
}

impl TestApp {
    /// A memory engine with the demo model and tools, workers running.
    pub async fn start() -> Self {
        Self::with(config()).await
    }

    pub async fn with(config: ServerConfig) -> Self {
        let engine = with_local_tools(Engine::builder().default_llm(Arc::new(DemoModel)))
            .build()
            .await
            .unwrap();
        let workers = engine.spawn_workers(WorkerOptions::default());
        Self::on(
            engine,
            Arc::new(MemoryServerStore::new()),
            config,
            Some(workers),
        )
        .await
    }

    /// A memory engine with the demo model, the chat (memory stores, skills, demo email
    /// tool) and workers.
    pub async fn with_chat(config: ServerConfig) -> Self {
        let parts = ChatParts::in_memory(config.upload_limits());
        Self::chat_on(
            Engine::builder(),
            parts,
            Arc::new(MemoryServerStore::new()),
            config,
        )
        .await
    }

    /// The chat on `builder`'s backend with `parts`, workers running.
    pub async fn chat_on(
        builder: EngineBuilder,
        parts: ChatParts,
        store: Arc<dyn ServerStore>,
        config: ServerConfig,
    ) -> Self {
        let llm: Arc<dyn LlmProvider> = Arc::new(DemoModel);
        let builder = parts
            .wire(
                with_local_tools(builder.default_llm(llm.clone())),
                llm,
                "demo",
            )
            .unwrap();
        let engine = builder.build().await.unwrap();
        let chat = parts.install(&engine, demo_chat_config()).await.unwrap();
        let workers = engine.spawn_workers(WorkerOptions {
            poll: std::time::Duration::from_millis(50),
            ..WorkerOptions::default()
        });
        Self::serve(
            engine,
            store,
            config,
            Some(workers),
            Some((chat, parts.artifacts.clone())),
        )
        .await
    }

    /// A server over `engine` and `store`.
    pub async fn on(
        engine: Engine,
        store: Arc<dyn ServerStore>,
        config: ServerConfig,
        workers: Option<WorkerPool>,
    ) -> Self {
        Self::serve(engine, store, config, workers, None).await
    }

    /// A server over `engine` and `store`, with the chat when given.
    pub async fn serve(
        engine: Engine,
        store: Arc<dyn ServerStore>,
        config: ServerConfig,
        workers: Option<WorkerPool>,
        chat: Option<(ChatService, Arc<dyn ArtifactStore>)>,
    ) -> Self {
        let mut server = Server::with_store(engine.clone(), config, store.clone());
        if let Some((chat, artifacts)) = chat {
            server = server.with_chat(chat, artifacts);
        }
        register_demo(&engine, &server).await.unwrap();
        let shutdown = server.shutdown_token();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = server
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let stop = shutdown.clone();
        let served = tokio::spawn(async move {
            axum::serve(no_delay(listener), app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .unwrap();
        });
        TestApp {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            engine,
            store,
            shutdown,
            workers,
            served,
        }
    }

    /// Sends a request; `token` as a bearer credential; a JSON body when given.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Registers a new tenant's admin.
    pub async fn register(&self, email: &str) -> Login {
        let a = self
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({"email": email, "password": "password-123"})),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        login_of(email, &a.body)
    }

    /// Signs in.
    pub async fn login(&self, email: &str) -> Login {
        let a = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": "password-123"})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        login_of(email, &a.body)
    }

    /// An admin adds a user with `role` to their tenant and the user signs in.
    pub async fn add_user(&self, admin: &Login, email: &str, role: &str) -> Login {
        let a = self
            .post(
                "/api/v1/users",
                &admin.access,
                json!({"email": email, "password": "password-123", "role": role}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        self.login(email).await
    }

    /// Creates a workflow over HTTP and returns its id.
    pub async fn workflow(&self, token: &str, definition: Value) -> String {
        let a = self
            .post(
                "/api/v1/workflows",
                token,
                json!({"name": "wf", "definition": definition}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        a.id()
    }

    /// Starts a run and waits until it is terminal or paused.
    pub async fn run_to_rest(&self, token: &str, workflow: &str, input: Value) -> Value {
        let a = self
            .post(
                &format!("/api/v1/workflows/{workflow}/runs"),
                token,
                json!({"input": input}),
            )
            .await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
        let id = a.id();
        let run = self.engine.wait(id.parse().unwrap()).await.unwrap();
        serde_json::to_value(run).unwrap()
    }
}

fn login_of(email: &str, body: &Value) -> Login {
    Login {
        access: body["access_token"].as_str().unwrap().to_string(),
        refresh: body["refresh_token"].as_str().unwrap().to_string(),
        user_id: body["user"]["id"].as_str().unwrap().to_string(),
        tenant_id: body["user"]["tenant_id"].as_str().unwrap().to_string(),
        email: email.to_string(),
    }
}

/// A workflow that pauses at a human gate, then answers with the demo agent.
pub fn gated_definition() -> Value {
    json!({
        "entry": "gate",
        "nodes": [
            {"id": "gate", "type": "human_gate", "config": {"message": "ok?"}},
            {"id": "answer", "type": "agent_node", "config": {"agent_id": "demo-assistant"}}
        ],
        "edges": [{"from": "gate", "to": "answer"}]
    })
}

/// A one-node workflow with the demo agent.
pub fn agent_definition() -> Value {
    json!({
        "entry": "answer",
        "nodes": [{"id": "answer", "type": "agent_node", "config": {"agent_id": "demo-assistant"}}]
    })
}

/// Asserts an RFC 9457 problem with `status`.
pub fn assert_problem(a: &Answer, status: StatusCode) {
    assert_eq!(a.status, status, "{:?}", a.body);
    assert_eq!(
        a.headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/problem+json"),
        "{:?}",
        a.body
    );
    assert_eq!(a.body["status"], status.as_u16(), "{:?}", a.body);
    assert!(a.body["type"]
        .as_str()
        .unwrap()
        .starts_with("urn:logline:problem:"));
    assert!(a.body["title"].is_string() && a.body["detail"].is_string());
}
