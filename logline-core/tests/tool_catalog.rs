//! Catalog reconciliation against the in-memory store: a hub's listing, page by page, into
//! the store's tool catalog.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use logline_core::memory::MemoryStore;
use logline_core::store::{DefinitionStore, Page, ToolQuery};
use logline_core::tool::{
    handler, CatalogPages, CatalogReconciler, CatalogScope, HubCatalog, LocalToolHub, ToolPage,
    ToolSpec, LOCAL_HUB,
};
use logline_core::{Error, ErrorKind, Result};
use serde_json::json;

const HUB: &str = "mcp";

fn tool(id: &str, toolkit: &str, description: &str) -> ToolSpec {
    ToolSpec::new(id, description, json!({"type": "object"}))
        .in_toolkit(toolkit)
        .on_hub(HUB)
}

/// A listing in pages with cursors `p1`, `p2`, ...; can fail a page once, and records the
/// cursors asked for.
struct ScriptedPages {
    pages: Vec<Vec<ToolSpec>>,
    fail_once_at: Option<usize>,
    asked: Vec<Option<String>>,
}

impl ScriptedPages {
    fn new(pages: Vec<Vec<ToolSpec>>) -> Self {
        ScriptedPages {
            pages,
            fail_once_at: None,
            asked: Vec::new(),
        }
    }
}

#[async_trait]
impl CatalogPages for ScriptedPages {
    async fn list_page(&mut self, cursor: Option<String>) -> Result<ToolPage> {
        self.asked.push(cursor.clone());
        let at = match &cursor {
            None => 0,
            Some(c) => c.trim_start_matches('p').parse().unwrap(),
        };
        if self.fail_once_at == Some(at) {
            self.fail_once_at = None;
            return Err(Error::backend(
                HUB,
                ErrorKind::Unavailable,
                "page lost",
                None,
            ));
        }
        Ok(ToolPage {
            tools: self.pages[at].clone(),
            next_cursor: (at + 1 < self.pages.len()).then(|| format!("p{}", at + 1)),
        })
    }
}

async fn stored(store: &MemoryStore) -> Vec<ToolSpec> {
    store
        .list_tools(&ToolQuery {
            page: Page::first(10_000),
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn ids(store: &MemoryStore) -> BTreeSet<String> {
    stored(store).await.into_iter().map(|t| t.id).collect()
}

fn catalog() -> Vec<Vec<ToolSpec>> {
    vec![
        vec![tool("a.list", "a", "List a"), tool("a.get", "a", "Get a")],
        vec![tool("b.list", "b", "List b"), tool("b.send", "b", "Send b")],
        vec![tool("c.list", "c", "List c")],
    ]
}

async fn reconcile(
    store: &MemoryStore,
    scope: CatalogScope,
    pages: Vec<Vec<ToolSpec>>,
) -> logline_core::tool::CatalogReport {
    let mut reconciler = CatalogReconciler::begin(store, scope).await.unwrap();
    reconciler
        .run(&mut ScriptedPages::new(pages))
        .await
        .unwrap()
}

#[tokio::test]
async fn first_sync_adds_every_tool_page_by_page() {
    let store = MemoryStore::new();
    let mut reconciler = CatalogReconciler::begin(&store, CatalogScope::hub(HUB))
        .await
        .unwrap()
        .write_batch(1);
    let mut pages = ScriptedPages::new(catalog());
    let report = reconciler.run(&mut pages).await.unwrap();
    assert_eq!((report.pages, report.listed), (3, 5));
    assert_eq!(
        report.added,
        ["a.list", "a.get", "b.list", "b.send", "c.list"],
        "in listing order"
    );
    assert!(report.changed.is_empty() && report.removed.is_empty());
    assert_eq!(report.written(), 5);
    assert_eq!(pages.asked, [None, Some("p1".into()), Some("p2".into())]);
    assert_eq!(ids(&store).await.len(), 5);
    let changes = reconciler.take_changes();
    assert_eq!(changes.upserted.len(), 5);
    assert!(reconciler.take_changes().is_empty(), "taken once");
}

#[tokio::test]
async fn changed_tools_are_written_and_vanished_ones_removed() {
    let store = MemoryStore::new();
    reconcile(&store, CatalogScope::hub(HUB), catalog()).await;
    // Another hub's tool stays, whatever this hub's listing says.
    store
        .put_tools(&[ToolSpec::new("z.other", "", json!({})).on_hub("elsewhere")])
        .await
        .unwrap();

    let mut next = catalog();
    next[0][1].description = "Get one a, by id".into();
    next[1].retain(|t| t.id != "b.send");
    next[2].push(tool("c.create", "c", "Create c"));
    let mut reconciler = CatalogReconciler::begin(&store, CatalogScope::hub(HUB))
        .await
        .unwrap();
    let report = reconciler.run(&mut ScriptedPages::new(next)).await.unwrap();
    assert_eq!(report.added, ["c.create"]);
    assert_eq!(report.changed, ["a.get"]);
    assert_eq!(report.removed, ["b.send"]);
    let changes = reconciler.take_changes();
    let upserted: Vec<&str> = changes.upserted.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(upserted, ["a.get", "c.create"]);
    assert_eq!(changes.removed, ["b.send"]);

    let now = stored(&store).await;
    let get = now.iter().find(|t| t.id == "a.get").unwrap();
    assert_eq!(get.description, "Get one a, by id");
    assert!(
        now.iter().any(|t| t.id == "z.other"),
        "other hubs untouched"
    );
    assert!(!now.iter().any(|t| t.id == "b.send"));
}

#[tokio::test]
async fn resync_of_the_same_listing_writes_nothing() {
    let store = MemoryStore::new();
    let mut first = catalog();
    let stamp = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    for t in first.iter_mut().flatten() {
        t.updated_at = stamp;
    }
    reconcile(&store, CatalogScope::hub(HUB), first).await;

    // Same content, new `updated_at` (it is not part of the fingerprint).
    let mut reconciler = CatalogReconciler::begin(&store, CatalogScope::hub(HUB))
        .await
        .unwrap();
    let report = reconciler
        .run(&mut ScriptedPages::new(catalog()))
        .await
        .unwrap();
    assert_eq!((report.pages, report.listed, report.written()), (3, 5, 0));
    assert!(report.removed.is_empty());
    assert!(reconciler.take_changes().is_empty());
    assert!(
        stored(&store).await.iter().all(|t| t.updated_at == stamp),
        "no tool was rewritten"
    );
}

#[tokio::test]
async fn a_failing_page_keeps_the_earlier_pages_and_a_rerun_resumes_there() {
    let store = MemoryStore::new();
    store
        .put_tools(&[tool("old.tool", "a", "Gone soon")])
        .await
        .unwrap();
    let mut reconciler = CatalogReconciler::begin(&store, CatalogScope::hub(HUB))
        .await
        .unwrap();
    let mut pages = ScriptedPages::new(catalog());
    pages.fail_once_at = Some(1);

    let err = reconciler.run(&mut pages).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(
        ids(&store).await,
        BTreeSet::from(["a.get".into(), "a.list".into(), "old.tool".into()]),
        "page one is written; nothing is removed from a partial listing"
    );
    let partial = reconciler.take_changes();
    assert_eq!(partial.upserted.len(), 2);
    assert!(partial.removed.is_empty());
    assert_eq!(reconciler.report().pages, 1);

    let report = reconciler.run(&mut pages).await.unwrap();
    assert_eq!(
        pages.asked,
        [
            None,
            Some("p1".into()),
            Some("p1".into()),
            Some("p2".into())
        ],
        "the rerun starts at the page that failed"
    );
    assert_eq!((report.pages, report.listed), (3, 5));
    assert_eq!(report.removed, ["old.tool"]);
    assert_eq!(ids(&store).await.len(), 5);
    assert_eq!(reconciler.take_changes().upserted.len(), 3);
}

#[tokio::test]
async fn toolkit_scope_only_removes_within_its_toolkits() {
    let store = MemoryStore::new();
    reconcile(&store, CatalogScope::hub(HUB), catalog()).await;

    // An incremental refresh of toolkit `b`: `b.send` is gone; `a` and `c` are not listed.
    let report = reconcile(
        &store,
        CatalogScope::hub(HUB).toolkits(["b"]),
        vec![vec![tool("b.list", "b", "List b")]],
    )
    .await;
    assert_eq!(report.removed, ["b.send"]);
    assert_eq!(report.written(), 0);
    assert_eq!(
        ids(&store).await,
        BTreeSet::from(["a.get", "a.list", "b.list", "c.list"].map(String::from))
    );
}

#[tokio::test]
async fn a_changes_only_listing_never_removes() {
    let store = MemoryStore::new();
    reconcile(&store, CatalogScope::hub(HUB), catalog()).await;
    let report = reconcile(
        &store,
        CatalogScope::hub(HUB).changes_only(),
        vec![vec![tool("a.get", "a", "Get a, changed")]],
    )
    .await;
    assert_eq!((report.changed.len(), report.removed.len()), (1, 0));
    assert_eq!(ids(&store).await.len(), 5);
}

#[tokio::test]
async fn a_tool_of_another_hub_is_refused() {
    let store = MemoryStore::new();
    let mut reconciler = CatalogReconciler::begin(&store, CatalogScope::hub(HUB))
        .await
        .unwrap();
    let stray = ToolSpec::new("x", "", json!({})).on_hub("elsewhere");
    let err = reconciler.apply_page(&[stray]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(stored(&store).await.is_empty());
}

/// Page 0 → `p1` → `p0`... a listing that never ends.
struct Circular;

#[async_trait]
impl CatalogPages for Circular {
    async fn list_page(&mut self, cursor: Option<String>) -> Result<ToolPage> {
        let next = match cursor.as_deref() {
            None | Some("p0") => "p1",
            _ => "p0",
        };
        Ok(ToolPage {
            tools: vec![tool("a.list", "a", "List a")],
            next_cursor: Some(next.into()),
        })
    }
}

#[tokio::test]
async fn a_listing_that_comes_back_to_a_cursor_fails_without_removing() {
    let store = MemoryStore::new();
    reconcile(&store, CatalogScope::hub(HUB), catalog()).await;
    let mut reconciler = CatalogReconciler::begin(&store, CatalogScope::hub(HUB))
        .await
        .unwrap();
    let err = reconciler.run(&mut Circular).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains("cursor `p1`"), "{err}");
    assert_eq!(ids(&store).await.len(), 5);
    assert!(
        reconciler.run(&mut Circular).await.is_err(),
        "a rerun fails too"
    );
    assert_eq!(ids(&store).await.len(), 5);
}

#[tokio::test]
async fn any_tool_hub_can_be_reconciled() {
    let mut local = LocalToolHub::new();
    for id in ["notes.create", "notes.read"] {
        local.register(
            ToolSpec::new(id, "Notes", json!({"type": "object"})),
            handler(|_, _| async { Ok(json!({})) }),
        );
    }
    let store = MemoryStore::new();
    let mut reconciler = CatalogReconciler::begin(&store, CatalogScope::hub(LOCAL_HUB))
        .await
        .unwrap();
    let report = reconciler
        .run(&mut HubCatalog::new(&local).limit(10))
        .await
        .unwrap();
    assert_eq!(report.added, ["notes.create", "notes.read"]);
    assert_eq!(ids(&store).await.len(), 2);
}
