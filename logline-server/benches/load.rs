//! End-to-end load on `logline-server` processes: golden-shaped runs (static → tool → agent
//! on the demo model) started over HTTP and followed to completion over SSE, then `GET` of
//! finished runs. The server runs in its own process, as users deploy it; this process is
//! the client.
//!
//! ```text
//! cargo bench -p logline-server --bench load                        # embedded server
//! cargo bench -p logline-server --bench load -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//! cargo bench -p logline-server --bench load -- --postgres URL --worker-processes 2
//! ```
//!
//! With `--postgres` everything lives in the schema `--schema` (default `logline_load`),
//! dropped and made anew at the start. Prints runs/s and latency percentiles of each phase.
#![allow(clippy::expect_used, clippy::panic, missing_docs)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
struct Args {
    /// Seconds of each measured phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients (each one run or request at a time).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Runs executed at once by each process's workers.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// PostgreSQL URL: the server and workers keep everything there.
    #[arg(long)]
    postgres: Option<String>,
    /// PostgreSQL schema of the load run (dropped first).
    #[arg(long, default_value = "logline_load")]
    schema: String,
    /// `worker` processes beside a `serve --no-workers` (PostgreSQL only; 0 = workers in
    /// the serving process).
    #[arg(long, default_value_t = 0)]
    worker_processes: usize,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Server processes, killed on drop.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn spawn(args: &[&str], listen: Option<&str>, postgres: Option<(&str, &str)>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logline-server"));
    if let Some(listen) = listen {
        cmd.env("LOGLINE_LISTEN", listen);
    }
    cmd.args(args)
        .env("LOGLINE_RATE_LIMIT_PER_MINUTE", "0")
        .env("RUST_LOG", "warn")
        .env_remove("OPENAI_API_KEY")
        .env_remove("COMPOSIO_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    match postgres {
        Some((url, schema)) => cmd
            .env("DATABASE_URL", url)
            .env("LOGLINE_PG_SCHEMA", schema),
        None => cmd.env_remove("DATABASE_URL"),
    };
    cmd.spawn().expect("start logline-server")
}

/// Drops the load run's schema, so that each run starts from empty tables.
fn reset_schema(url: &str, schema: &str) {
    assert!(
        schema.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
        "--schema: lowercase letters and `_`"
    );
    let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    let status = Command::new("psql")
        .args([url, "-q", "-c", &sql])
        .stdout(Stdio::null())
        .status()
        .expect("psql (to reset the load database)");
    assert!(status.success(), "resetting {url} failed");
}

struct Client {
    http: reqwest::Client,
    base: String,
    bearer: String,
}

impl Client {
    async fn post(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.bearer)
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = resp.status();
        let body: Value = resp.json().await.expect("JSON answer");
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }

    /// Starts a run and returns its id and the time the start took.
    async fn start_run(&self, workflow: &str, n: usize) -> (String, Duration) {
        let t = Instant::now();
        let run = self
            .post(
                &format!("/api/v1/workflows/{workflow}/runs"),
                json!({"input": {"hotel_id": format!("H-{n}")}, "mode": "auto"}),
            )
            .await;
        (run["id"].as_str().expect("run id").to_string(), t.elapsed())
    }

    /// `GET path`'s body; fails unless the answer is a success.
    async fn get(&self, path: &str) -> String {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.bearer)
            .send()
            .await
            .expect("GET");
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.text().await.expect("body")
    }

    /// Reads the run's event stream to its end; fails unless the run completed.
    async fn follow(&self, run: &str) {
        let body = self.get(&format!("/api/v1/runs/{run}/stream")).await;
        assert!(
            body.contains("event: run_completed"),
            "run {run} did not complete:\n{body}"
        );
    }

    async fn get_run(&self, run: &str) {
        self.get(&format!("/api/v1/runs/{run}")).await;
    }
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    for _ in 0..600 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server at {base} did not become healthy");
}

/// Registers a user (a tenant of its own), makes an API key and the golden-shaped workflow.
async fn setup(http: reqwest::Client, base: String) -> (Client, String) {
    let email = format!("load-{}@example.com", std::process::id());
    let session: Value = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": email, "password": "load-password-1"}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("session");
    let access = session["access_token"].as_str().expect("access token");
    let client = Client {
        http,
        base,
        bearer: access.to_string(),
    };
    let key = client
        .post("/api/v1/auth/api-keys", json!({"name": "load"}))
        .await;
    let client = Client {
        bearer: key["key"].as_str().expect("key").to_string(),
        ..client
    };
    let wf = client
        .post(
            "/api/v1/workflows",
            json!({"name": "Golden load", "definition": {
                "entry": "start",
                "nodes": [
                    {"id": "start", "type": "static"},
                    {"id": "fetch", "type": "tool_node", "config": {"tool_id": "echo"}},
                    {"id": "answer", "type": "agent_node", "config": {"agent_id": "demo-assistant"}}
                ],
                "edges": [{"from": "start", "to": "fetch"}, {"from": "fetch", "to": "answer"}]
            }}),
        )
        .await;
    let id = wf["id"].as_str().expect("workflow id").to_string();
    (client, id)
}

/// Latencies of one phase, in microseconds.
#[derive(Default)]
struct Samples(Vec<u64>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros() as u64);
    }

    fn report(&mut self, what: &str, elapsed: Duration) {
        self.0.sort_unstable();
        let pct = |p: f64| {
            let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
            self.0.get(i).copied().unwrap_or(0) as f64 / 1000.0
        };
        println!(
            "{what:<28} {:>9.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  (n = {})",
            self.0.len() as f64 / elapsed.as_secs_f64(),
            pct(0.5),
            pct(0.99),
            pct(1.0),
            self.0.len()
        );
    }
}

/// Runs `clients` loops of `one` for `seconds`; returns the samples of each kind `one`
/// reports (its `(kind, latency)` pairs) and the time taken.
async fn phase<F, Fut>(clients: usize, seconds: u64, one: F) -> (Vec<Samples>, Duration)
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Vec<(usize, Duration)>> + Send,
{
    let one = Arc::new(one);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let one = one.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                let mut n = 0;
                while Instant::now() < deadline {
                    out.extend(one(c, n).await);
                    n += 1;
                }
                out
            })
        })
        .collect();
    let mut all: Vec<Samples> = Vec::new();
    for t in tasks {
        for (kind, d) in t.await.expect("client") {
            if all.len() <= kind {
                all.resize_with(kind + 1, Samples::default);
            }
            all[kind].push(d);
        }
    }
    (all, started.elapsed())
}

/// The GET phase again with `wrk` (a load generator written in C, when it is installed):
/// its requests/s and latency percentiles, as a check on this client's figures.
fn wrk(client: &Client, run: &str, clients: usize, seconds: u64) -> Option<String> {
    let out = Command::new("wrk")
        .args(["-t1", "--latency"])
        .arg(format!("-c{clients}"))
        .arg(format!("-d{seconds}s"))
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", client.bearer))
        .arg(format!("{}/api/v1/runs/{run}", client.base))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let pick = |label: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or("?")
            .to_string()
    };
    let non_2xx = text.lines().find(|l| l.contains("Non-2xx"));
    Some(format!(
        "{}/s  p50 {}  p99 {}{}",
        pick("Requests/sec:"),
        pick("50%"),
        pick("99%"),
        non_2xx
            .map(|l| format!("  ({})", l.trim()))
            .unwrap_or_default()
    ))
}

fn main() {
    let args = Args::parse();
    if let Some(url) = &args.postgres {
        reset_schema(url, &args.schema);
    }
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let concurrency = args.concurrency.to_string();
    let pg = args
        .postgres
        .as_deref()
        .map(|url| (url, args.schema.as_str()));
    let mut procs = Processes(Vec::new());
    if args.worker_processes > 0 {
        assert!(pg.is_some(), "--worker-processes needs --postgres");
        procs
            .0
            .push(spawn(&["serve", "--no-workers"], Some(&listen), pg));
    } else {
        procs.0.push(spawn(
            &["serve", "--concurrency", &concurrency],
            Some(&listen),
            pg,
        ));
    }
    // The client side: one thread, so the server keeps the rest of the machine.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(args.clients * 2)
            .build()
            .expect("client");
        let base = format!("http://{listen}");
        wait_healthy(&http, &base).await;
        for _ in 0..args.worker_processes {
            procs
                .0
                .push(spawn(&["worker", "--concurrency", &concurrency], None, pg));
        }
        let (client, workflow) = setup(http, base).await;
        let client = Arc::new(client);
        let workflow = Arc::new(workflow);
        println!(
            "logline-server ({}{}), {} clients, {} s per phase",
            if pg.is_some() {
                "PostgreSQL"
            } else {
                "embedded"
            },
            match args.worker_processes {
                0 => String::new(),
                n => format!(", {n} worker processes"),
            },
            args.clients,
            args.seconds
        );

        // Warm-up: connections, caches, the first runs.
        let c = client.clone();
        let w = workflow.clone();
        phase(args.clients, 1, move |_, n| {
            let (c, w) = (c.clone(), w.clone());
            async move {
                let (run, _) = c.start_run(&w, n).await;
                c.follow(&run).await;
                Vec::new()
            }
        })
        .await;

        let c = client.clone();
        let w = workflow.clone();
        let (mut runs, elapsed) = phase(args.clients, args.seconds, move |_, n| {
            let (c, w) = (c.clone(), w.clone());
            async move {
                let t = Instant::now();
                let (run, start) = c.start_run(&w, n).await;
                c.follow(&run).await;
                vec![(0, start), (1, t.elapsed())]
            }
        })
        .await;
        runs[1].report("golden run, start→completed", elapsed);
        runs[0].report("  of which POST start", elapsed);

        let finished: Arc<Vec<String>> = Arc::new(
            futures::future::join_all((0..args.clients).map(|n| {
                let (c, w) = (client.clone(), workflow.clone());
                async move {
                    let (run, _) = c.start_run(&w, n).await;
                    c.follow(&run).await;
                    run
                }
            }))
            .await,
        );
        let finished_one = finished[0].clone();
        let c = client.clone();
        let (mut gets, elapsed) = phase(args.clients, args.seconds, move |client, _| {
            let (c, f) = (c.clone(), finished.clone());
            async move {
                let t = Instant::now();
                c.get_run(&f[client % f.len()]).await;
                vec![(0, t.elapsed())]
            }
        })
        .await;
        gets[0].report("GET run", elapsed);
        if let Some(summary) = wrk(&client, &finished_one, args.clients, args.seconds) {
            println!("GET run, by wrk: {summary}");
        }
    });
}
