//! Agent memory search over 100,000 items (384 dimensions, like multilingual-e5-small):
//! latency p50/p95 of a top-10 search on the in-memory store (quantized scan, exact re-rank)
//! and on PostgreSQL without pgvector (the inverted-file fallback, quantized candidates, exact
//! re-rank), and the recall@10 of each against an exact scan. The vectors are synthetic:
//! 2,000 topics, items scattered around them.
//!
//! `cargo bench --bench recall` (PostgreSQL at `DATABASE_URL`, default the local server;
//! the schema `llbench_recall` is dropped and recreated). `RECALL_BENCH_ITEMS` changes the
//! item count, `RECALL_BENCH_PROBES` the lists probed.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use logline_core::memory::MemoryRecallStore;
use logline_core::recall::vector::{dot, normalized, top_k};
use logline_core::recall::{
    MemoryFilter, MemoryItem, Owner, OwnerKind, ReadScope, RecallStore, ScoredItem,
};
use logline_postgres::{IvfOptions, PgBackend, PgConfig, PgRecallStore};
use uuid::Uuid;

const SCHEMA: &str = "llbench_recall";
const DIMS: usize = 384;
const TOPICS: usize = 2_000;
const QUERIES: usize = 200;
const K: usize = 10;

/// A small deterministic generator (xorshift64*), uniform in [-1, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        x as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn vector(&mut self) -> Vec<f32> {
        (0..DIMS).map(|_| self.next()).collect()
    }

    fn near(&mut self, center: &[f32], spread: f32) -> Vec<f32> {
        normalized(
            &center
                .iter()
                .map(|c| c + spread * self.next())
                .collect::<Vec<_>>(),
        )
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn scope() -> ReadScope {
    ReadScope {
        tenant_id: "bench".into(),
        owners: vec![Owner::new(OwnerKind::Tenant, "bench")],
        shared: true,
    }
}

/// Times `search` over the queries; returns the results too.
async fn timed<F, Fut>(label: &str, queries: &[Vec<f32>], search: F) -> Vec<Vec<Uuid>>
where
    F: Fn(Vec<f32>) -> Fut,
    Fut: std::future::Future<Output = Vec<ScoredItem>>,
{
    let mut times = Vec::with_capacity(queries.len());
    let mut results = Vec::with_capacity(queries.len());
    for q in queries {
        let t = Instant::now();
        let found = search(q.clone()).await;
        times.push(t.elapsed());
        results.push(found.into_iter().map(|s| s.item.id).collect());
    }
    times.sort();
    println!(
        "{label:<48} p50 {:>7.2} ms   p95 {:>7.2} ms   ({} queries, top {K})",
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        queries.len()
    );
    results
}

/// The reference: every item scored on its `f32` vector.
fn exact_top_k(units: &[(Vec<f32>, Uuid)], q: &[f32]) -> Vec<ScoredItem> {
    let q = normalized(q);
    let scored = units.iter().map(|(v, id)| (dot(v, &q), *id)).collect();
    top_k(scored, K)
        .into_iter()
        .map(|(score, id)| {
            let mut item = MemoryItem::new("bench", Owner::new(OwnerKind::Tenant, "bench"), "");
            item.id = id;
            ScoredItem { item, score }
        })
        .collect()
}

fn recall_at_k(approx: &[Vec<Uuid>], exact: &[Vec<Uuid>]) -> f64 {
    let hits: usize = approx
        .iter()
        .zip(exact)
        .map(|(a, e)| a.iter().filter(|id| e.contains(id)).count())
        .sum();
    hits as f64 / exact.iter().map(Vec::len).sum::<usize>() as f64
}

async fn pg_store(probes: usize) -> (PgBackend, PgRecallStore) {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let backend = PgBackend::connect(&PgConfig::new(url).schema(SCHEMA).max_connections(16))
        .await
        .expect("connect (is PostgreSQL running?)");
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .execute(backend.pool())
        .await
        .expect("drop schema");
    backend.migrate().await.expect("migrate");
    let store = backend.recall_store().with_options(IvfOptions {
        probes,
        ..IvfOptions::default()
    });
    (backend, store)
}

fn main() {
    let n: usize = std::env::var("RECALL_BENCH_ITEMS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let probes: usize = std::env::var("RECALL_BENCH_PROBES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(IvfOptions::default().probes);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let topics: Vec<Vec<f32>> = (0..TOPICS).map(|_| normalized(&rng.vector())).collect();
        let owner = Owner::new(OwnerKind::Tenant, "bench");
        let items: Vec<MemoryItem> = (0..n)
            .map(|i| {
                let mut item = MemoryItem::new("bench", owner.clone(), format!("item {i}"));
                item.embedding = rng.near(&topics[i % TOPICS], 0.08);
                item
            })
            .collect();
        let queries: Vec<Vec<f32>> = (0..QUERIES)
            .map(|i| rng.near(&topics[(i * 7) % TOPICS], 0.08))
            .collect();
        let filter = MemoryFilter::default();

        let units: Arc<Vec<(Vec<f32>, Uuid)>> =
            Arc::new(items.iter().map(|i| (normalized(&i.embedding), i.id)).collect());
        let exact = timed(&format!("exact scan (reference), {n} items"), &queries, |q| {
            let units = units.clone();
            async move { exact_top_k(&units, &q) }
        })
        .await;

        let memory = Arc::new(MemoryRecallStore::new());
        let t = Instant::now();
        for item in &items {
            memory.put(item).await.expect("put");
        }
        println!("memory store: {n} items written in {:.1} s", t.elapsed().as_secs_f64());
        let in_memory = timed(&format!("memory store, quantized scan + re-rank, {n} items"), &queries, |q| {
            let (m, f) = (memory.clone(), filter.clone());
            async move { m.search(&scope(), &q, &f, K).await.expect("search") }
        })
        .await;
        println!(
            "recall@{K} of the memory store against exact search: {:.3}",
            recall_at_k(&in_memory, &exact)
        );
        drop(memory);

        let (backend, pg) = pg_store(probes).await;
        let t = Instant::now();
        stream::iter(items.iter())
            .for_each_concurrent(16, |item| {
                let pg = pg.clone();
                async move { pg.put(item).await.expect("put") }
            })
            .await;
        println!("postgres: {n} items written in {:.1} s", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let report = pg.train_index().await.expect("train").expect("items");
        println!(
            "postgres: inverted file trained in {:.1} s: {} lists, {} items assigned, {probes} probed",
            t.elapsed().as_secs_f64(),
            report.lists,
            report.assigned
        );
        let approx = timed(&format!("postgres, inverted-file fallback, {n} items"), &queries, |q| {
            let (pg, f) = (pg.clone(), filter.clone());
            async move { pg.search(&scope(), &q, &f, K).await.expect("search") }
        })
        .await;
        println!(
            "recall@{K} of the inverted-file fallback against exact search: {:.3}",
            recall_at_k(&approx, &exact)
        );
        // What autovacuum does in time: the visibility map lets the candidate pass read the
        // list index alone.
        let t = Instant::now();
        sqlx::query("VACUUM (ANALYZE) memory_items")
            .execute(backend.pool())
            .await
            .expect("vacuum");
        println!("postgres: VACUUM (ANALYZE) in {:.1} s", t.elapsed().as_secs_f64());
        let approx = timed(&format!("postgres, fallback after VACUUM, {n} items"), &queries, |q| {
            let (pg, f) = (pg.clone(), filter.clone());
            async move { pg.search(&scope(), &q, &f, K).await.expect("search") }
        })
        .await;
        let pg_exact = timed(&format!("postgres, exact scan, {n} items"), &queries[..20], |q| {
            let (pg, f) = (pg.clone(), filter.clone());
            async move { pg.search_exact(&scope(), &q, &f, K).await.expect("search") }
        })
        .await;
        println!(
            "recall@{K} of the fallback after VACUUM against exact search: {:.3}",
            recall_at_k(&approx, &exact)
        );
        println!(
            "postgres exact vs exact scan (same ranking): {:.3}",
            recall_at_k(&pg_exact, &exact[..20])
        );
    });
}
