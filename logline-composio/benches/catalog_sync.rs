//! Catalog sync throughput: 20,000 tools in 500 toolkits from a local fake Composio server
//! into the in-memory store, with the tool-search index as observer.
//!
//! `cargo bench -p logline-composio --bench catalog_sync`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/support/fake_server.rs"]
mod fake_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_server::{FakeComposio, FakeState};
use logline_composio::{CatalogSync, ComposioConfig, ComposioToolHub, SyncMode, SyncReport};
use logline_core::memory::MemoryStore;
use logline_core::search::{ToolIndex, ToolSearch};

fn line(label: &str, r: &SyncReport, wall: Duration) {
    println!(
        "{label:<34} {:>7.0} ms  pages {:>3}  fetched {:>6}  written {:>6}  removed {:>3}  total {:>6}  ({:.0} tools/s fetched)",
        wall.as_secs_f64() * 1e3,
        r.pages,
        r.tools_fetched,
        r.tools_written,
        r.tools_removed,
        r.tools_total,
        r.tools_fetched as f64 / wall.as_secs_f64().max(1e-9)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let fake = FakeComposio::start(FakeState::generated(20_000, 500)).await;
        let config = ComposioConfig::builder("test-key")
            .base_url(&fake.base_url)
            .page_limit(1000)
            .build()
            .unwrap();
        let hub = ComposioToolHub::new(config).unwrap();
        let store = Arc::new(MemoryStore::new());
        let search = Arc::new(ToolSearch::new(ToolIndex::new()));
        let sync = CatalogSync::new(hub, store).with_observer(search.clone());

        println!("== catalog sync: fake Composio (20,000 tools, 500 toolkits) → MemoryStore + ToolSearch ==");
        let t = Instant::now();
        let full = sync.run(SyncMode::Full).await.unwrap();
        line("first full sync", &full, t.elapsed());
        assert_eq!(search.read().len(), 20_000);

        let t = Instant::now();
        let idle = sync.run(SyncMode::Incremental).await.unwrap();
        line("incremental, nothing changed", &idle, t.elapsed());

        {
            let mut s = fake.lock();
            for k in 0..10 {
                let kit = fake_server::toolkit_slug(k);
                let slug = format!("{}_LIST_ITEM", kit.to_uppercase());
                s.change_tool(&slug, "changed description");
            }
        }
        let t = Instant::now();
        let delta = sync.run(SyncMode::Incremental).await.unwrap();
        line("incremental, 10 toolkits changed", &delta, t.elapsed());

        let t = Instant::now();
        let again = sync.run(SyncMode::Full).await.unwrap();
        line("full refresh, nothing changed", &again, t.elapsed());
    });
}
