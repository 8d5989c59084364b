//! `logline-server`: the LogLine HTTP API (`serve`) and run workers (`worker`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use logline_core::engine::{SweepPolicy, WorkerOptions};
use logline_core::queue::WorkerPool;
use logline_core::retention::RetentionPolicy;

use logline_server::auth::new_secret;
use logline_server::demo::register_demo;
use logline_server::deploy::{deploy, Deployment, Environment};
use logline_server::listen::no_delay;
use logline_server::metrics::{exporter_router, Metrics};
use logline_server::routes::auth::create_user;
use logline_server::store::Role;
use logline_server::{Server, ServerConfig};

/// LogLine: an embeddable agent OS, served over HTTP.
///
/// With no configuration everything runs in this process (memory store and queue, a demo
/// model, local tools) and a first admin is printed once. DATABASE_URL switches to
/// PostgreSQL (then any number of `worker` processes share the work), OPENAI_API_KEY to
/// OpenAI, COMPOSIO_API_KEY to Composio. Every setting of the config file can be overridden
/// by `LOGLINE_<SETTING>` (e.g. LOGLINE_LISTEN=0.0.0.0:8080, LOGLINE_JWT_SECRET=...,
/// LOGLINE_CORS_ORIGINS=https://a.example,https://b.example).
#[derive(Debug, Parser)]
#[command(name = "logline-server", version)]
struct Cli {
    /// TOML config file (settings: listen, jwt_secret, access_ttl_secs, refresh_ttl_secs,
    /// open_registration, cors_origins, max_body_bytes, rate_limit_per_minute,
    /// rate_limit_burst, max_concurrent_runs_per_tenant, shutdown_grace_secs,
    /// sse_keep_alive_secs, agent_test_timeout_secs, trust_forwarded_for,
    /// alert_check_interval_secs, alert_webhooks_allow_http, audit_retention_days,
    /// run_retention_days, upload_max_bytes,
    /// upload_allowed_types, artifacts_url, console, metrics_addr, otlp_endpoint).
    /// OTEL_EXPORTER_OTLP_ENDPOINT also enables trace export (with the `otlp` feature).
    #[arg(long, short, env = "LOGLINE_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves the HTTP API (and runs workers in this process unless --no-workers).
    Serve {
        /// Address to listen on (overrides `listen`).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Do not execute runs in this process (leave them to `worker` processes).
        #[arg(long)]
        no_workers: bool,
        /// Runs executed at once by this process's workers.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Seconds a worker holds a run without renewing its lease; a run of a crashed
        /// worker is taken over after this long.
        #[arg(long, default_value_t = 10)]
        lease_secs: u64,
    },
    /// Executes runs from the shared PostgreSQL queue (needs DATABASE_URL). With
    /// `metrics_addr` set it serves GET /metrics (Prometheus text) and /healthz there.
    Worker {
        /// Runs executed at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Seconds a worker holds a run without renewing its lease; a run of a crashed
        /// worker is taken over after this long.
        #[arg(long, default_value_t = 10)]
        lease_secs: u64,
    },
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("logline-server: {e}");
        std::process::exit(1);
    }
}

/// What stops the trace export at exit (the export itself with the `otlp` feature).
#[cfg(feature = "otlp")]
type TraceExport = logline_server::otlp::OtlpExport;
#[cfg(not(feature = "otlp"))]
type TraceExport = ();

/// Logs to stderr (`RUST_LOG` filters) and, when a collector is configured, exports traces.
fn init_tracing(config: &ServerConfig) -> logline_core::Result<Option<TraceExport>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=warn".into());
    let logs = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer());
    let collector = config.otlp_collector(|name| std::env::var(name).ok());
    #[cfg(feature = "otlp")]
    if let Some(endpoint) = collector {
        let (layer, export) = logline_server::otlp::layer(&endpoint, "logline-server")?;
        logs.with(layer).init();
        tracing::info!(collector = %endpoint, "exporting traces over OTLP/HTTP");
        return Ok(Some(export));
    }
    logs.init();
    #[cfg(not(feature = "otlp"))]
    if collector.is_some() {
        tracing::warn!(
            "an OTLP endpoint is set but this binary was built without the `otlp` feature"
        );
    }
    Ok(None)
}

/// Sends the last buffered spans.
async fn stop_tracing(export: Option<TraceExport>) {
    #[cfg(feature = "otlp")]
    if let Some(export) = export {
        let stopped = tokio::task::spawn_blocking(move || export.shutdown()).await;
        if let Ok(Err(e)) = stopped {
            eprintln!("logline-server: {e}");
        }
    }
    #[cfg(not(feature = "otlp"))]
    let _ = export;
}

async fn run(cli: Cli) -> logline_core::Result<()> {
    let config = match &cli.config {
        Some(path) => ServerConfig::from_toml_file(path)?,
        None => ServerConfig::default(),
    }
    .with_env()?;
    let export = init_tracing(&config)?;
    let result = run_command(cli, config).await;
    stop_tracing(export).await;
    result
}

async fn run_command(cli: Cli, config: ServerConfig) -> logline_core::Result<()> {
    let env = Environment::from_env();
    let deployment = deploy(&env, &config).await?;
    tracing::info!(
        backend = deployment.backend,
        model = deployment.model,
        "engine ready"
    );
    match cli.command {
        Command::Serve {
            listen,
            no_workers,
            concurrency,
            lease_secs,
        } => {
            let workers = (!no_workers).then(|| worker_options(concurrency, lease_secs));
            serve(deployment, config, listen, workers).await
        }
        Command::Worker {
            concurrency,
            lease_secs,
        } => {
            if deployment.backend != "postgres" {
                return Err(logline_core::Error::InvalidInput(
                    "`worker` shares work through PostgreSQL: set DATABASE_URL".into(),
                ));
            }
            let metrics_addr = config.metrics_socket()?;
            work(
                deployment,
                worker_options(concurrency, lease_secs),
                metrics_addr,
                config.run_retention(),
            )
            .await
        }
    }
}

fn worker_options(concurrency: usize, lease_secs: u64) -> WorkerOptions {
    let lease = Duration::from_secs(lease_secs.max(1));
    let mut options = WorkerOptions::default()
        .concurrency(concurrency.max(1))
        .lease(lease);
    options.heartbeat = lease / 3;
    options
}

async fn work(
    d: Deployment,
    options: WorkerOptions,
    metrics_addr: Option<SocketAddr>,
    run_retention: Option<Duration>,
) -> logline_core::Result<()> {
    let concurrency = options.concurrency;
    let exporter = match metrics_addr {
        Some(addr) => Some(serve_metrics(addr).await?),
        None => None,
    };
    let pools = Background::spawn(&d, options, run_retention).await?;
    tracing::info!(
        concurrency,
        "worker running; Ctrl-C or SIGTERM stops it after its runs"
    );
    shutdown_signal().await;
    pools.shutdown().await;
    if let Some(exporter) = exporter {
        exporter.abort();
    }
    Ok(())
}

/// Serves this process's metrics at `addr` (GET /metrics, /healthz) until aborted.
async fn serve_metrics(addr: SocketAddr) -> logline_core::Result<tokio::task::JoinHandle<()>> {
    let metrics = Metrics::global();
    if !metrics.is_available() {
        tracing::warn!("metrics_addr is set but another metrics recorder is installed");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| logline_core::Error::InvalidInput(format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(%addr, "serving worker metrics at /metrics");
    let app = exporter_router(metrics);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(no_delay(listener), app).await {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    }))
}

async fn serve(
    d: Deployment,
    mut config: ServerConfig,
    listen: Option<SocketAddr>,
    workers: Option<WorkerOptions>,
) -> logline_core::Result<()> {
    if let Some(addr) = listen {
        config.listen = addr;
    }
    if config.jwt_secret.is_empty() && d.backend == "postgres" {
        tracing::warn!("no jwt_secret: tokens are signed with a per-process key and not shared between processes");
    }
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let addr = config.listen;
    let server = Server::with_store(d.engine.clone(), config, d.store.clone())
        .with_chat(d.chat.clone(), d.chat_parts.artifacts.clone());
    register_demo(&d.engine, &server).await?;
    first_admin(&server).await?;
    if server.state().config.alert_check_interval_secs > 0 {
        let every = Duration::from_secs(server.state().config.alert_check_interval_secs);
        logline_server::alerts::spawn_checker(server.state().clone(), every);
    }
    if let Some(keep) = server.state().config.audit_retention() {
        logline_server::audit::spawn_retention(server.state().clone(), keep, RETENTION_EVERY);
    }
    let run_retention = server.state().config.run_retention();
    let pools = match workers {
        Some(options) => Some(Background::spawn(&d, options, run_retention).await?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| logline_core::Error::InvalidInput(format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(%addr, "serving the LogLine API (OpenAPI at /api/v1/openapi.json)");
    let token = server.shutdown_token();
    let app = server
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    let stop = token.clone();
    let serving = axum::serve(no_delay(listener), app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining requests and streams");
        stop.cancel();
    });
    let serving = tokio::spawn(async move { serving.await });
    token.cancelled().await;
    if tokio::time::timeout(grace, serving).await.is_err() {
        tracing::warn!("requests still open after the grace period; stopping anyway");
    }
    if let Some(pools) = pools {
        pools.shutdown().await;
    }
    Ok(())
}

/// Time between retention passes (audit rows; runs and jobs).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// What executes in the background of a process: run workers, the sweeper that takes over
/// runs of crashed workers, and run retention when it is on.
struct Background {
    workers: WorkerPool,
    sweeper: WorkerPool,
    retention: Option<WorkerPool>,
}

impl Background {
    async fn spawn(
        d: &Deployment,
        options: WorkerOptions,
        run_retention: Option<Duration>,
    ) -> logline_core::Result<Self> {
        let one = worker_options(1, options.lease.as_secs());
        let retention = match run_retention {
            Some(keep) => {
                let policy = RetentionPolicy {
                    runs: Some(keep),
                    jobs: Some(keep),
                    every: RETENTION_EVERY,
                    ..RetentionPolicy::default()
                };
                Some(d.engine.spawn_retention(policy, one.clone()).await?)
            }
            None => None,
        };
        Ok(Background {
            workers: d.engine.spawn_workers(options),
            sweeper: d.engine.spawn_sweeper(SweepPolicy::default(), one).await?,
            retention,
        })
    }

    /// Lets in-flight work finish, then stops.
    async fn shutdown(self) {
        self.workers.shutdown().await;
        self.sweeper.shutdown().await;
        if let Some(retention) = self.retention {
            retention.shutdown().await;
        }
    }
}

/// Creates and prints the first admin when there are no users yet.
async fn first_admin(server: &Server) -> logline_core::Result<()> {
    let state = server.state();
    if state.store.count_users().await? > 0 {
        return Ok(());
    }
    let password = new_secret("");
    let email = "admin@logline.local";
    match create_user(
        state,
        email,
        &password,
        Some("Admin".into()),
        Role::Admin,
        "default".into(),
    )
    .await
    {
        Ok(_) => {
            println!("First admin (shown once): email {email} password {password}");
            Ok(())
        }
        // Another process created it first.
        Err(e) if e.status() == axum::http::StatusCode::CONFLICT => Ok(()),
        Err(e) => Err(logline_core::Error::Internal(e.problem().detail)),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
