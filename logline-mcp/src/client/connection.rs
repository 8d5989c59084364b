//! One server's connection, kept up by a supervisor task: connect, serve until the
//! connection ends (the process exited, the HTTP connection broke), then reconnect after a
//! backoff. Calls take the current peer; they never outlive the connection they were sent
//! on, and are never re-sent here.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use logline_core::{ErrorKind, Result};
use rmcp::service::{Peer, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::ServiceExt;
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::handler::{Handler, Shared};
use crate::config::{McpServerConfig, Transport};
use crate::error::{backend, not_sent, redact};

type Running = RunningService<RoleClient, Handler>;

/// A supervised connection to one server.
pub(crate) struct Connection {
    config: Arc<McpServerConfig>,
    live: watch::Receiver<Option<Peer<RoleClient>>>,
    shutdown: CancellationToken,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Connection {
    /// Starts the supervisor (it connects in the background).
    pub fn start(config: Arc<McpServerConfig>, shared: Arc<Shared>) -> Self {
        let (tx, live) = watch::channel(None);
        let shutdown = CancellationToken::new();
        tokio::spawn(supervise(config.clone(), shared, tx, shutdown.clone()));
        Connection {
            config,
            live,
            shutdown,
        }
    }

    /// The current peer, waiting up to the connect timeout for one.
    pub async fn peer(&self) -> Result<Peer<RoleClient>> {
        let mut live = self.live.clone();
        let waited = tokio::time::timeout(self.config.connect_timeout, async {
            live.wait_for(|p| p.as_ref().is_some_and(|p| !p.is_transport_closed()))
                .await
                .map(|p| p.clone())
        })
        .await;
        match waited {
            Ok(Ok(Some(p))) => Ok(p),
            Ok(Ok(None)) => Err(not_sent(&self.config.name, "not connected")),
            Ok(Err(_)) => Err(not_sent(&self.config.name, "the hub is shutting down")),
            Err(_) => Err(not_sent(
                &self.config.name,
                format!("not connected within {:?}", self.config.connect_timeout),
            )),
        }
    }
}

async fn supervise(
    config: Arc<McpServerConfig>,
    shared: Arc<Shared>,
    tx: watch::Sender<Option<Peer<RoleClient>>>,
    shutdown: CancellationToken,
) {
    let name = config.name.clone();
    let mut failures: u32 = 0;
    while !shutdown.is_cancelled() {
        let connected = tokio::select! {
            r = tokio::time::timeout(config.connect_timeout, connect(&config, &shared)) => r,
            _ = shutdown.cancelled() => return,
        };
        match connected {
            Ok(Ok(running)) => {
                let up = Instant::now();
                tracing::info!(server = %name, "mcp server connected");
                let _ = tx.send(Some(running.peer().clone()));
                shared.bump_list();
                let token = running.cancellation_token();
                tokio::select! {
                    r = running.waiting() => {
                        tracing::warn!(server = %name, reason = ?r.ok(), "mcp server connection ended");
                    }
                    _ = shutdown.cancelled() => {
                        token.cancel();
                        let _ = tx.send(None);
                        return;
                    }
                }
                let _ = tx.send(None);
                failures = if up.elapsed() >= config.backoff.stable_after {
                    1
                } else {
                    failures.saturating_add(1)
                };
            }
            Ok(Err(e)) => {
                tracing::warn!(server = %name, error = %e, "mcp server connection failed");
                failures = failures.saturating_add(1);
            }
            Err(_) => {
                tracing::warn!(server = %name, "mcp server did not connect in time");
                failures = failures.saturating_add(1);
            }
        }
        let delay = config.backoff.delay(failures);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Connects once and completes the MCP handshake.
async fn connect(config: &McpServerConfig, shared: &Arc<Shared>) -> Result<Running> {
    let handler = Handler {
        shared: shared.clone(),
    };
    let name = &config.name;
    let secrets = config.secrets();
    let failed = |e: String| backend(name, ErrorKind::Unavailable, redact(&e, &secrets, 1024));
    match &config.transport {
        Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args)
                .envs(env.iter().map(|(k, v)| (k, v.expose())))
                .kill_on_drop(true);
            if let Some(dir) = cwd {
                cmd.current_dir(dir);
            }
            let (transport, stderr) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| failed(format!("cannot start `{command}`: {e}")))?;
            if let Some(stderr) = stderr {
                let server = name.clone();
                let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
                        tracing::info!(server = %server, "stderr: {}", redact(&line, &refs, 2048));
                    }
                });
            }
            handler
                .serve(transport)
                .await
                .map_err(|e| failed(format!("handshake: {e}")))
        }
        Transport::Http {
            url,
            bearer,
            headers,
        } => {
            install_crypto_provider();
            let mut custom = HashMap::new();
            for (k, v) in headers {
                let key = axum::http::HeaderName::try_from(k.as_str())
                    .map_err(|_| failed(format!("invalid header name `{k}`")))?;
                let value = axum::http::HeaderValue::try_from(v.expose())
                    .map_err(|_| failed(format!("invalid value of header `{k}`")))?;
                custom.insert(key, value);
            }
            let mut cfg =
                StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(custom);
            if let Some(b) = bearer {
                cfg = cfg.auth_header(b.expose());
            }
            let transport = StreamableHttpClientTransport::from_config(cfg);
            handler
                .serve(transport)
                .await
                .map_err(|e| failed(format!("handshake with {url}: {e}")))
        }
    }
}

/// HTTPS needs a process-wide TLS crypto provider; installs ring's unless one is set.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
