//! A headless Chromium driven over WebDriver (`chromedriver`), with the console's server
//! in this process: screenshots, axe-core checks and a record of every request URL.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use logline_core::engine::{WorkerOptions, WorkerPool};
use logline_server::demo::register_demo;
use logline_server::deploy::{deploy, Environment};
use logline_server::routes::auth::create_user;
use logline_server::store::Role;
use logline_server::{Server, ServerConfig};
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// The first admin of the zero-configuration server.
pub const ADMIN_EMAIL: &str = "admin@logline.local";
/// Its password in these tests.
pub const ADMIN_PASSWORD: &str = "console-test-password";

/// How long a wait for the page lasts before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// What the server saw: every request target and every bearer credential.
#[derive(Debug, Default)]
pub struct Seen {
    /// Paths with their query strings.
    pub targets: Vec<String>,
    /// `Authorization: Bearer` values.
    pub bearers: Vec<String>,
}

/// The zero-configuration server on an ephemeral port, recording its requests.
pub struct ConsoleServer {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// Requests seen.
    pub seen: Arc<Mutex<Seen>>,
    /// The HTTP client of the test's own calls.
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    workers: Option<WorkerPool>,
}

async fn record(seen: Arc<Mutex<Seen>>, req: Request, next: Next) -> Response {
    {
        let mut s = seen.lock().unwrap();
        s.targets.push(
            req.uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
        );
        if let Some(token) = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            s.bearers.push(token.to_string());
        }
    }
    next.run(req).await
}

impl ConsoleServer {
    /// Starts the server as `logline-server serve` does without configuration (memory
    /// store, demo model, local tools, the demo workflow), with a first admin.
    pub async fn start() -> Self {
        Self::with(ServerConfig {
            rate_limit_per_minute: 0,
            ..ServerConfig::default()
        })
        .await
    }

    /// [`ConsoleServer::start`] with `config`.
    pub async fn with(config: ServerConfig) -> Self {
        let d = deploy(&Environment::default(), &config).await.unwrap();
        let server = Server::with_store(d.engine.clone(), config, d.store.clone())
            .with_chat(d.chat.clone(), d.chat_parts.artifacts.clone());
        register_demo(&d.engine, &server).await.unwrap();
        create_user(
            server.state(),
            ADMIN_EMAIL,
            ADMIN_PASSWORD,
            Some("Admin".into()),
            Role::Admin,
            "default".into(),
        )
        .await
        .unwrap();
        let workers = d.engine.spawn_workers(WorkerOptions::default());
        let shutdown = server.shutdown_token();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let recorder = seen.clone();
        let app = server
            .router()
            .layer(axum::middleware::from_fn(move |req, next| {
                record(recorder.clone(), req, next)
            }))
            .into_make_service_with_connect_info::<SocketAddr>();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .unwrap();
        });
        ConsoleServer {
            base: format!("http://{addr}"),
            seen,
            http: reqwest::Client::new(),
            shutdown,
            workers: Some(workers),
        }
    }

    /// Signs in over the API (for the test's own setup calls).
    pub async fn token(&self, email: &str, password: &str) -> String {
        let body: Value = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().expect("a token").to_string()
    }

    /// A JSON call with `token`; panics unless it succeeds.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Stops the server and its workers.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(w) = self.workers.take() {
            w.shutdown().await;
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn program(var: &str, candidates: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    for c in candidates {
        let p = Path::new(c);
        if p.exists() {
            return p.to_path_buf();
        }
    }
    panic!(
        "the console browser tests need Chromium and its WebDriver: install the Debian \
         packages `chromium` and `chromium-driver` (scripts/test does), or set {var}; \
         looked in {candidates:?}"
    );
}

fn axe_source() -> String {
    let path = std::env::var_os("AXE_CORE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/npm/node_modules/axe-core/axe.min.js"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is missing at {} ({e}): run `npm install --prefix target/npm axe-core` \
             (scripts/test does) or set AXE_CORE_JS",
            path.display()
        )
    })
}

/// One browser session with its own chromedriver and a fresh profile.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
    shots: PathBuf,
    axe: String,
    step: u32,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; screenshots go to
    /// `target/console-screenshots/<name>/`.
    pub async fn open(name: &str) -> Self {
        let chromium = program(
            "CHROMIUM",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
        );
        let chromedriver = program(
            "CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        );
        let axe = axe_source();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let profile = target_dir()
            .join("console-browser-profiles")
            .join(uuid::Uuid::new_v4().to_string());
        std::fs::create_dir_all(&profile).unwrap();
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": chromium.to_string_lossy(), "args": args}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if started.elapsed() < PATIENCE => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver at {url} did not take a session: {e}"),
            }
        };
        let shots = target_dir().join("console-screenshots").join(name);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            client,
            driver,
            shots,
            axe,
            step: 0,
            profile,
        }
    }

    /// Writes a file for an upload and returns its path.
    pub fn scratch_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.profile.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Goes to `url`.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Saves a numbered screenshot named `what`.
    pub async fn shot(&mut self, what: &str) {
        self.step += 1;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{:02}-{what}.png", self.step)), png).unwrap();
    }

    /// The element `css`, once it exists.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element `{css}`: {e}"))
    }

    /// Whether `css` matches something now.
    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    /// Waits until the text of `css` contains `text`; returns the whole text.
    pub async fn wait_text(&self, css: &str, text: &str) -> String {
        let started = Instant::now();
        loop {
            let now = self
                .client
                .execute(
                    "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                    vec![json!(css)],
                )
                .await
                .unwrap();
            if let Some(t) = now.as_str() {
                if t.contains(text) {
                    return t.to_string();
                }
            }
            if started.elapsed() > PATIENCE {
                self.dump().await;
                panic!("`{css}` never showed {text:?}; last: {now}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn dump(&self) {
        if let Ok(v) = self
            .client
            .execute("return document.body.innerText;", vec![])
            .await
        {
            eprintln!("page text:\n{}", v.as_str().unwrap_or_default());
        }
    }

    /// Types into the field `css` (after clearing it).
    pub async fn fill(&self, css: &str, text: &str) {
        let started = Instant::now();
        loop {
            let e = self.find(css).await;
            match async {
                e.clear().await?;
                e.send_keys(text).await
            }
            .await
            {
                Ok(()) => return,
                Err(err) if started.elapsed() < PATIENCE => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("cannot type into `{css}`: {err}"),
            }
        }
    }

    /// Clicks `css`, finding it again when the page redrew it in between.
    pub async fn click(&self, css: &str) {
        let started = Instant::now();
        loop {
            match self.find(css).await.click().await {
                Ok(()) => return,
                Err(e) if started.elapsed() < PATIENCE => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot click `{css}`: {e}"),
            }
        }
    }

    /// Runs axe-core on the page; panics on serious or critical violations.
    pub async fn assert_accessible(&self, page: &str) {
        let bad = self.serious_violations().await;
        assert!(bad.is_empty(), "{page}: accessibility violations {bad:#?}");
    }

    /// The serious and critical axe-core violations of the page.
    pub async fn serious_violations(&self) -> Vec<Value> {
        let loaded = self
            .client
            .execute(&format!("{}\n;return typeof window.axe;", self.axe), vec![])
            .await
            .unwrap();
        assert_eq!(loaded, json!("object"), "axe-core did not load");
        let violations = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']})
                   .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact,
                      help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))))
                   .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));",
                vec![],
            )
            .await
            .unwrap();
        violations
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .cloned()
            .collect()
    }

    /// The width the page needs against the width it has.
    pub async fn widths(&self) -> (i64, i64) {
        let v = self
            .client
            .execute(
                "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];",
                vec![],
            )
            .await
            .unwrap();
        (v[0].as_i64().unwrap(), v[1].as_i64().unwrap())
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
