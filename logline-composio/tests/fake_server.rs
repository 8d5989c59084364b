//! `ComposioToolHub` against a local fake server that speaks the documented wire formats.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/fake_server.rs"]
mod fake_server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fake_server::{FakeComposio, FakeState};
use logline_composio::{
    sync_job, CatalogSync, CatalogSyncJob, ComposioConfig, ComposioConfigBuilder, ComposioToolHub,
    ComposioUserIds, ExecuteRetry, SyncMode, CATALOG_SYNC_QUEUE,
};
use logline_core::memory::{MemoryQueue, MemoryStore};
use logline_core::queue::{Backoff, FailOutcome, Job, JobHandler, JobId, JobRecord, NewJob, Queue};
use logline_core::run::Subject;
use logline_core::search::{SearchRequest, ToolIndex, ToolSearch};
use logline_core::store::{DefinitionStore, Page, ToolQuery};
use logline_core::testing::RecordingSleep;
use logline_core::tool::{PageRequest, RiskLevel, ToolContext, ToolHub};
use logline_core::{Error, ErrorKind, Result};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn config(fake: &FakeComposio) -> ComposioConfigBuilder {
    ComposioConfig::builder("test-key")
        .base_url(&fake.base_url)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
}

fn hub(
    fake: &FakeComposio,
    f: impl FnOnce(ComposioConfigBuilder) -> ComposioConfigBuilder,
) -> ComposioToolHub {
    ComposioToolHub::new(f(config(fake)).build().unwrap()).unwrap()
}

async fn stored(store: &MemoryStore) -> Vec<logline_core::tool::ToolSpec> {
    store
        .list_tools(&ToolQuery {
            page: Page::first(1_000_000),
            ..Default::default()
        })
        .await
        .unwrap()
}

fn ctx(user: &str) -> ToolContext {
    ToolContext::for_subject(Subject::tenant("t").with_user(user))
}

#[tokio::test]
async fn full_sync_reads_every_page_and_tags_risk() {
    let fake = FakeComposio::start(FakeState::generated(3600, 300)).await;
    let hub = hub(&fake, |b| b.page_limit(100));
    let store = Arc::new(MemoryStore::new());
    let search = Arc::new(ToolSearch::new(ToolIndex::new()));
    let sync = CatalogSync::new(hub.clone(), store.clone()).with_observer(search.clone());
    let report = sync.run(SyncMode::Full).await.unwrap();

    assert_eq!(report.mode, SyncMode::Full);
    assert_eq!(
        (report.toolkits, report.tools_fetched, report.tools_written),
        (300, 3600, 3600)
    );
    assert_eq!(report.pages, 3 + 36, "3 toolkit pages + 36 tool pages");
    assert_eq!(fake.lock().count("GET /api/v3/tools?"), 36);
    let tools = stored(&store).await;
    assert_eq!(tools.len(), 3600);
    assert!(tools.iter().all(|t| t.hub == "composio"));
    assert_eq!(search.read().len(), 3600, "the observer indexed every tool");
    assert_eq!(hub.catalog().len(), 3600);

    let get = |id: &str| tools.iter().find(|t| t.id == id).unwrap().clone();
    let del = get("ACMECRM_DELETE_ITEM");
    assert_eq!(del.risk_level, RiskLevel::High);
    assert!(del.requires_confirmation && del.tags.contains(&"delete".to_string()));
    let list = get("ACMECRM_LIST_ITEM");
    assert_eq!(
        (list.risk_level, list.requires_confirmation),
        (RiskLevel::Low, false)
    );
    assert_eq!(list.tags[0], "read");
    let send = get("ACMECRM_SEND_ITEM");
    assert_eq!(send.risk_level, RiskLevel::High);
    assert!(send.side_effects.contains(&"message_send".to_string()));
    let refund = get("ACMECRM_CREATE_REFUND_ITEM");
    assert!(refund.tags.contains(&"money".to_string()));
    assert!(get("ACMECRM_ADD_MEMBER_ITEM")
        .tags
        .contains(&"admin".to_string()));
    // Every 10th toolkit is no-auth: its tools need no connection.
    let no_auth = fake_server::toolkit_slug(9).to_uppercase();
    assert!(!get(&format!("{no_auth}_LIST_ITEM")).requires_connection);
    assert!(list.requires_connection);
    assert_eq!(list.input_schema["required"][0], "item_id");
}

#[tokio::test]
async fn incremental_refresh_reads_only_changed_toolkits() {
    let fake = FakeComposio::start(FakeState::generated(2400, 240)).await;
    let hub = hub(&fake, |b| b.page_limit(500));
    let store = Arc::new(MemoryStore::new());
    let search = Arc::new(ToolSearch::new(ToolIndex::new()));
    let sync = CatalogSync::new(hub.clone(), store.clone()).with_observer(search.clone());
    sync.run(SyncMode::Full).await.unwrap();

    let (kit_a, kit_b, kit_c, kit_gone) = (
        fake_server::toolkit_slug(1),
        fake_server::toolkit_slug(2),
        fake_server::toolkit_slug(3),
        fake_server::toolkit_slug(4),
    );
    {
        let mut s = fake.lock();
        s.change_tool(
            &format!("{}_LIST_ITEM", kit_a.to_uppercase()),
            "Enumerate zeppelin hangars",
        );
        s.remove_tool(&format!("{}_GET_ITEM", kit_b.to_uppercase()));
        s.add_tool(&kit_c, "BRAND_NEW_TOOL", "LIST", "WIDGET");
        s.toolkits.remove(&kit_gone);
        s.tools
            .retain(|_, t| t["toolkit"]["slug"] != kit_gone.as_str());
        s.requests.clear();
    }
    let report = sync.run(SyncMode::Incremental).await.unwrap();
    assert_eq!(report.mode, SyncMode::Incremental);
    assert_eq!(report.toolkits_refreshed, 4, "three changed + one vanished");
    assert_eq!(report.tools_written, 2, "the changed and the new tool");
    assert_eq!(
        report.tools_removed,
        1 + 10,
        "the removed tool and the vanished toolkit's 10"
    );
    {
        let s = fake.lock();
        let tool_reqs: Vec<&String> = s
            .requests
            .iter()
            .filter(|r| r.contains("/tools?"))
            .collect();
        assert_eq!(tool_reqs.len(), 1, "one filtered listing: {tool_reqs:?}");
        assert!(tool_reqs[0].contains("toolkit_slug="));
    }
    let tools = stored(&store).await;
    assert_eq!(tools.len(), 2400 - 1 + 1 - 10);
    assert!(tools.iter().any(|t| t.id == "BRAND_NEW_TOOL"));
    assert!(!tools
        .iter()
        .any(|t| t.toolkit.as_deref() == Some(kit_gone.as_str())));
    assert_eq!(hub.catalog().len(), tools.len());

    // The index followed: the new description is searchable, removed tools are gone.
    let hits = search
        .search(
            &SearchRequest::new("zeppelin hangars", Subject::tenant("t"))
                .unrestricted_connections(),
        )
        .await
        .unwrap();
    let ids = hits.tool_ids();
    assert_eq!(ids[0], format!("{}_LIST_ITEM", kit_a.to_uppercase()));
    // Siblings follow on toolkit evidence only.
    assert!(hits
        .hits
        .iter()
        .all(|h| h.tool.toolkit.as_deref() == Some(kit_a.as_str())));
    assert!(hits.hits[1..]
        .iter()
        .all(|h| h.lexical < hits.hits[0].lexical));
    assert_eq!(search.read().len(), tools.len());

    // Nothing changed: no tool listing at all, nothing written.
    fake.lock().requests.clear();
    let idle = sync.run(SyncMode::Incremental).await.unwrap();
    assert_eq!(
        (
            idle.tools_written,
            idle.tools_removed,
            idle.toolkits_refreshed
        ),
        (0, 0, 0)
    );
    assert_eq!(fake.lock().count("/tools?"), 0);

    // A full refresh finds nothing new either, and writes nothing.
    let full = sync.run(SyncMode::Full).await.unwrap();
    assert_eq!((full.tools_written, full.tools_removed), (0, 0));
}

#[tokio::test]
async fn a_failing_page_keeps_the_pages_before_it() {
    let fake = FakeComposio::start(FakeState::generated(300, 30)).await;
    let hub = hub(&fake, |b| b.page_limit(100));
    let store = Arc::new(MemoryStore::new());
    let search = Arc::new(ToolSearch::new(ToolIndex::new()));
    let sync = CatalogSync::new(hub.clone(), store.clone()).with_observer(search.clone());
    fake.lock()
        .fail_next("/tools?limit=100&cursor=c200", 400, &[]);

    let err = sync.run(SyncMode::Full).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(
        stored(&store).await.len(),
        200,
        "the first two pages are written"
    );
    assert_eq!(search.read().len(), 200, "and the observer heard them");
    assert!(
        hub.catalog().is_empty(),
        "the cached copy waits for a whole sync"
    );

    let again = sync.run(SyncMode::Full).await.unwrap();
    assert_eq!((again.tools_written, again.tools_removed), (100, 0));
    assert_eq!(stored(&store).await.len(), 300);
    assert_eq!(search.read().len(), 300);
    assert_eq!(hub.catalog().len(), 300);
}

#[tokio::test]
async fn refresh_runs_only_when_due_and_first_sync_is_full() {
    let fake = FakeComposio::start(FakeState::generated(200, 20)).await;
    let store = Arc::new(MemoryStore::new());
    let lazy = hub(&fake, |b| {
        b.refresh_intervals(Duration::from_secs(3600), Duration::from_secs(86400))
    });
    let sync = CatalogSync::new(lazy, store.clone());
    let first = sync.refresh_if_due().await.unwrap().unwrap();
    assert_eq!(first.mode, SyncMode::Full);
    assert!(
        sync.refresh_if_due().await.unwrap().is_none(),
        "the cached copy is used"
    );

    let eager = hub(&fake, |b| {
        b.refresh_intervals(Duration::ZERO, Duration::from_secs(86400))
    });
    let sync = CatalogSync::new(eager, store);
    let r = sync.run(SyncMode::Incremental).await.unwrap();
    assert_eq!(r.mode, SyncMode::Full, "no baseline yet");
    let r = sync.refresh_if_due().await.unwrap().unwrap();
    assert_eq!(r.mode, SyncMode::Incremental);
}

/// A queue that records what was enqueued.
struct Recording {
    inner: MemoryQueue,
    enqueued: Mutex<Vec<NewJob>>,
}

#[async_trait]
impl Queue for Recording {
    async fn enqueue(&self, job: NewJob) -> Result<JobId> {
        self.enqueued.lock().unwrap().push(job.clone());
        self.inner.enqueue(job).await
    }
    async fn claim(&self, q: &str, w: &str, max: usize, lease: Duration) -> Result<Vec<Job>> {
        self.inner.claim(q, w, max, lease).await
    }
    async fn heartbeat(&self, job: &Job, lease: Duration) -> Result<DateTime<Utc>> {
        self.inner.heartbeat(job, lease).await
    }
    async fn complete(&self, job: &Job) -> Result<()> {
        self.inner.complete(job).await
    }
    async fn fail(&self, job: &Job, e: &str, r: bool, b: Backoff) -> Result<FailOutcome> {
        self.inner.fail(job, e, r, b).await
    }
    async fn dead_letters(&self, q: &str, limit: usize) -> Result<Vec<JobRecord>> {
        self.inner.dead_letters(q, limit).await
    }
    async fn retry_dead_letter(&self, id: JobId) -> Result<()> {
        self.inner.retry_dead_letter(id).await
    }
    async fn job(&self, id: JobId) -> Result<JobRecord> {
        self.inner.job(id).await
    }
    async fn wait_for_work(&self, q: &str, t: Duration) -> Result<()> {
        self.inner.wait_for_work(q, t).await
    }
    async fn purge_completed(&self, cutoff: chrono::DateTime<Utc>, limit: u64) -> Result<u64> {
        self.inner.purge_completed(cutoff, limit).await
    }
}

#[tokio::test]
async fn sync_runs_as_a_queue_job_and_reschedules() {
    let fake = FakeComposio::start(FakeState::generated(300, 30)).await;
    let store = Arc::new(MemoryStore::new());
    let sync = Arc::new(CatalogSync::new(hub(&fake, |b| b), store.clone()));
    let queue = Arc::new(Recording {
        inner: MemoryQueue::new(),
        enqueued: Mutex::new(Vec::new()),
    });
    let handler = CatalogSyncJob::new(sync).rescheduling_on(queue.clone());

    queue.enqueue(sync_job(SyncMode::Full, None)).await.unwrap();
    let jobs = queue
        .claim(CATALOG_SYNC_QUEUE, "w1", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    handler
        .handle(&jobs[0], CancellationToken::new())
        .await
        .unwrap();
    queue.complete(&jobs[0]).await.unwrap();
    assert_eq!(stored(&store).await.len(), 300);

    let enqueued = queue.enqueued.lock().unwrap().clone();
    assert_eq!(enqueued.len(), 2);
    let next = &enqueued[1];
    assert_eq!(next.queue, CATALOG_SYNC_QUEUE);
    assert_eq!(next.payload, json!({"mode": "incremental"}));
    assert!(next
        .run_at
        .is_some_and(|at| at > Utc::now() + chrono::Duration::minutes(10)));
    assert!(next
        .idempotency_key
        .as_deref()
        .is_some_and(|k| k.starts_with("composio-catalog-sync:")));

    // A bad payload fails the job instead of syncing.
    let mut bad = jobs[0].clone();
    bad.payload = json!({"mode": "sideways"});
    assert!(handler
        .handle(&bad, CancellationToken::new())
        .await
        .is_err());
}

async fn synced(fake: &FakeComposio) -> ComposioToolHub {
    let h = hub(fake, |b| b);
    CatalogSync::new(h.clone(), Arc::new(MemoryStore::new()))
        .run(SyncMode::Full)
        .await
        .unwrap();
    h
}

#[tokio::test]
async fn execute_success_and_tool_failure() {
    let mut state = FakeState::generated(120, 12);
    let kit = fake_server::toolkit_slug(0);
    state.add_account("ca_disabled", "t:u1", &kit, "ACTIVE", true);
    state.add_account("ca_good", "t:u1", &kit, "ACTIVE", false);
    let fake = FakeComposio::start(state).await;
    let hub = synced(&fake).await;
    let slug = format!("{}_LIST_ITEM", kit.to_uppercase());

    let out = hub
        .execute(&slug, json!({"item_id": "42"}), &ctx("u1"))
        .await
        .unwrap();
    assert_eq!(out["echo"], json!({"item_id": "42"}));
    assert_eq!(out["user_id"], "t:u1", "tenant-qualified");
    assert_eq!(
        out["connected_account_id"], "ca_good",
        "the user's active, enabled account"
    );
    let (_, body) = fake.lock().executions.last().cloned().unwrap();
    assert_eq!(body["version"], "20250101_00");

    let mut explicit = ctx("u1");
    explicit.connected_account_id = Some("ca_good".into());
    hub.execute(&slug, json!({}), &explicit).await.unwrap();

    let err = hub
        .execute(&slug, json!({"fail": true}), &ctx("u1"))
        .await
        .unwrap_err();
    match &err {
        Error::ToolFailed {
            tool_id,
            message,
            retryable,
        } => {
            assert_eq!(tool_id, &slug);
            assert!(message.contains("Remote API said no"), "{message}");
            assert!(!retryable);
        }
        other => panic!("expected ToolFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn http_errors_map_to_clear_kinds() {
    let state = FakeState::generated(60, 6);
    let fake = FakeComposio::start(state).await;
    let hub = synced(&fake).await;
    let slug = format!("{}_GET_ITEM", fake_server::toolkit_slug(1).to_uppercase());

    let e = hub
        .execute("NOPE_NOT_A_TOOL", json!({}), &ctx("u1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("NOPE_NOT_A_TOOL") && e.to_string().contains("Tool not found"));

    fake.lock().deprecated.insert(slug.clone());
    let e = hub.execute(&slug, json!({}), &ctx("u1")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("deprecated"), "{e}");
    fake.lock().deprecated.clear();

    let mut bad = ctx("u1");
    bad.connected_account_id = Some("ca_expired".into());
    let e = hub.execute(&slug, json!({}), &bad).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(
        e.to_string().contains("reconnect") && !e.is_retryable(),
        "{e}"
    );

    fake.lock().fail_next("/tools/execute/", 400, &[]);
    let e = hub.execute(&slug, json!({}), &ctx("u1")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    let wrong_key = ComposioToolHub::new(
        ComposioConfig::builder("wrong")
            .base_url(&fake.base_url)
            .build()
            .unwrap(),
    )
    .unwrap();
    let e = wrong_key
        .list_tools(PageRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.to_string().contains("Invalid API key"));
}

#[tokio::test]
async fn retries_follow_the_official_rules() {
    let fake = FakeComposio::start(FakeState::generated(50, 5)).await;
    let hub = hub(&fake, |b| b.max_retries(2));
    let page = PageRequest {
        limit: Some(10),
        ..Default::default()
    };

    // 503 twice (with retry-after-ms), then success.
    {
        let mut s = fake.lock();
        s.fail_next("/tools?", 503, &[("retry-after-ms", "5")]);
        s.fail_next("/tools?", 503, &[("retry-after", "0")]);
        s.requests.clear();
    }
    assert_eq!(hub.list_tools(page.clone()).await.unwrap().tools.len(), 10);
    assert_eq!(fake.lock().count("/tools?"), 3);

    // 429 beyond the retry budget: three attempts, then a retryable RateLimited.
    {
        let mut s = fake.lock();
        for _ in 0..3 {
            s.fail_next("/tools?", 429, &[]);
        }
        s.requests.clear();
    }
    let e = hub.list_tools(page.clone()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.is_retryable());
    assert_eq!(fake.lock().count("/tools?"), 3);

    // x-should-retry overrides the status either way; 400 alone is not retried.
    {
        let mut s = fake.lock();
        s.fail_next("/tools?", 503, &[("x-should-retry", "false")]);
        s.requests.clear();
    }
    assert_eq!(
        hub.list_tools(page.clone()).await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    assert_eq!(fake.lock().count("/tools?"), 1);
    {
        let mut s = fake.lock();
        s.fail_next("/tools?", 400, &[("x-should-retry", "true")]);
        s.requests.clear();
    }
    assert!(hub.list_tools(page.clone()).await.is_ok());
    assert_eq!(fake.lock().count("/tools?"), 2);
    {
        let mut s = fake.lock();
        s.fail_next("/tools?", 400, &[]);
        s.requests.clear();
    }
    assert_eq!(
        hub.list_tools(page.clone()).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(fake.lock().count("/tools?"), 1);

    // A server wait beyond the cap is cut to the cap (the sleeper records it).
    let sleep = RecordingSleep::new();
    let capped = self::hub(&fake, |b| {
        b.sleeper(sleep.clone())
            .retry_after_cap(Duration::from_secs(30))
    });
    fake.lock()
        .fail_next("/tools?", 503, &[("retry-after", "3600")]);
    assert!(capped.list_tools(page.clone()).await.is_ok());
    assert_eq!(sleep.waits(), vec![Duration::from_secs(30)]);
}

#[tokio::test]
async fn hostile_retry_after_values_are_clamped() {
    let fake = FakeComposio::start(FakeState::generated(50, 5)).await;
    let sleep = RecordingSleep::new();
    let hub = hub(&fake, |b| b.max_retries(2).sleeper(sleep.clone()));
    {
        let mut s = fake.lock();
        s.fail_next("/tools?", 429, &[("retry-after", "1e20")]);
        s.fail_next("/tools?", 503, &[("retry-after-ms", "1e300")]);
        s.requests.clear();
    }
    let page = PageRequest {
        limit: Some(10),
        ..Default::default()
    };
    assert_eq!(hub.list_tools(page).await.unwrap().tools.len(), 10);
    assert_eq!(fake.lock().count("/tools?"), 3);
    assert_eq!(sleep.waits(), vec![Duration::from_secs(60); 2]);
}

fn execute_slug() -> String {
    format!("{}_GET_ITEM", fake_server::toolkit_slug(0).to_uppercase())
}

#[tokio::test]
async fn executions_are_resent_only_when_they_provably_did_not_run() {
    let fake = FakeComposio::start(FakeState::generated(50, 5)).await;
    let slug = execute_slug();
    let sleep = RecordingSleep::new();
    let hub = hub(&fake, |b| b.max_retries(2).sleeper(sleep.clone()));

    // Rate limited before processing: sent again after the server's wait.
    fake.lock()
        .fail_next("/tools/execute/", 429, &[("retry-after", "2")]);
    assert!(hub.execute(&slug, json!({}), &ctx("u1")).await.is_ok());
    assert_eq!(fake.lock().count("/tools/execute/"), 2);
    assert_eq!(sleep.waits(), vec![Duration::from_secs(2)]);

    // A server error leaves the outcome unknown: one request, a retryable error.
    for status in [500, 502, 503] {
        {
            let mut s = fake.lock();
            s.fail_next("/tools/execute/", status, &[]);
            s.requests.clear();
        }
        let e = hub.execute(&slug, json!({}), &ctx("u1")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{status}");
        assert!(!e.did_not_execute());
        assert_eq!(fake.lock().count("/tools/execute/"), 1, "{status}");
    }
    // Even when the server says a retry is fine.
    {
        let mut s = fake.lock();
        s.fail_next("/tools/execute/", 503, &[("x-should-retry", "true")]);
        s.requests.clear();
    }
    assert!(hub.execute(&slug, json!({}), &ctx("u1")).await.is_err());
    assert_eq!(fake.lock().count("/tools/execute/"), 1);

    // A timeout too.
    let impatient = self::hub(&fake, |b| {
        b.request_timeout(Duration::from_millis(200))
            .sleeper(sleep.clone())
    });
    {
        let mut s = fake.lock();
        s.stall_next("/tools/execute/", 502, Duration::from_secs(5));
        s.requests.clear();
    }
    let e = impatient
        .execute(&slug, json!({}), &ctx("u1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(fake.lock().count("/tools/execute/"), 1);

    // ExecuteRetry::Never sends once whatever happens, not even again after a 429.
    let no_retry = self::hub(&fake, |b| {
        b.execute_retry(ExecuteRetry::Never).sleeper(sleep.clone())
    });
    {
        let mut s = fake.lock();
        s.fail_next("/tools/execute/", 429, &[]);
        s.requests.clear();
    }
    let e = no_retry
        .execute(&slug, json!({}), &ctx("u1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.did_not_execute());
    assert_eq!(fake.lock().count("/tools/execute/"), 1);

    // ExecuteRetry::Always resends like reads (for servers honouring the idempotency key).
    let always = self::hub(&fake, |b| {
        b.execute_retry(ExecuteRetry::Always).sleeper(sleep.clone())
    });
    {
        let mut s = fake.lock();
        s.fail_next("/tools/execute/", 502, &[]);
        s.requests.clear();
    }
    assert!(always.execute(&slug, json!({}), &ctx("u1")).await.is_ok());
    assert_eq!(fake.lock().count("/tools/execute/"), 2);
}

#[tokio::test]
async fn the_engine_idempotency_key_is_sent_on_every_execution_attempt() {
    let fake = FakeComposio::start(FakeState::generated(50, 5)).await;
    let hub = hub(&fake, |b| b.max_retries(2).sleeper(RecordingSleep::new()));
    let slug = execute_slug();
    let mut keyed = ctx("u1");
    keyed.idempotency_key = Some("run-1/step-2/3".into());
    fake.lock().fail_next("/tools/execute/", 429, &[]);
    hub.execute(&slug, json!({}), &keyed).await.unwrap();
    hub.execute(&slug, json!({}), &ctx("u1")).await.unwrap();
    let keys = fake.lock().idempotency_keys.clone();
    assert_eq!(
        keys,
        vec![
            Some("run-1/step-2/3".to_string()),
            Some("run-1/step-2/3".to_string()),
            None
        ],
        "the retry after 429 carries the same key; no key, no header"
    );

    // A key no header can carry is refused before anything is sent.
    keyed.idempotency_key = Some("bad\nkey".into());
    let e = hub.execute(&slug, json!({}), &keyed).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(fake.lock().idempotency_keys.len(), 3);
}

#[tokio::test]
async fn refused_connections_are_resent_for_executions_too() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sleep = RecordingSleep::new();
    let hub = ComposioToolHub::new(
        ComposioConfig::builder("test-key")
            .base_url(format!("http://127.0.0.1:{port}"))
            .sleeper(sleep.clone())
            .build()
            .unwrap(),
    )
    .unwrap();
    let e = hub
        .execute("GITHUB_GET_ITEM", json!({}), &ctx("u1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.did_not_execute());
    assert_eq!(sleep.waits().len(), 2);
}

#[tokio::test]
async fn connections_are_active_enabled_and_cached() {
    let mut state = FakeState::generated(10, 2);
    state.add_account("ca_1", "t:u1", "github", "ACTIVE", false);
    state.add_account("ca_2", "t:u1", "slack", "ACTIVE", true);
    state.add_account("ca_3", "t:u1", "notion", "EXPIRED", false);
    state.add_account("ca_4", "t:u1", "jira", "INITIATED", false);
    state.add_account("ca_5", "t:u2", "gmail", "ACTIVE", false);
    for i in 0..150 {
        state.add_account(
            &format!("ca_many_{i}"),
            "t:u3",
            &format!("kit{i}"),
            "ACTIVE",
            false,
        );
    }
    let fake = FakeComposio::start(state).await;
    let hub = hub(&fake, |b| b.connections_ttl(Duration::from_secs(300)));
    let u1 = Subject::tenant("t").with_user("u1");

    let conns = hub.connections(&u1).await.unwrap();
    assert_eq!(conns.len(), 1);
    assert_eq!(
        (
            conns[0].toolkit.as_str(),
            conns[0].account_id.as_str(),
            conns[0].active
        ),
        ("github", "ca_1", true)
    );
    assert!(fake.lock().count("statuses=ACTIVE") >= 1);

    fake.lock().requests.clear();
    hub.connections(&u1).await.unwrap();
    assert_eq!(
        fake.lock().count("/connected_accounts"),
        0,
        "served from the cache"
    );
    hub.invalidate_connections("t:u1");
    hub.connections(&u1).await.unwrap();
    assert_eq!(fake.lock().count("/connected_accounts"), 1);

    let many = hub
        .connections(&Subject::tenant("t").with_user("u3"))
        .await
        .unwrap();
    assert_eq!(many.len(), 150, "every page");
    assert!(
        hub.connections(&Subject::tenant("t"))
            .await
            .unwrap()
            .is_empty(),
        "no user, no connections"
    );

    // The gate sees exactly these connections.
    let store = Arc::new(MemoryStore::new());
    let mut s = FakeState::generated(10, 2);
    s.accounts = fake.lock().accounts.clone();
    drop(fake);
    let fake = FakeComposio::start(s).await;
    let hub = self::hub(&fake, |b| b);
    let search = Arc::new(ToolSearch::new(ToolIndex::new()).with_hub(Arc::new(hub.clone())));
    CatalogSync::new(hub, store)
        .with_observer(search.clone())
        .run(SyncMode::Full)
        .await
        .unwrap();
    let res = search
        .search(&SearchRequest::new("list item", u1))
        .await
        .unwrap();
    assert!(
        res.hits.is_empty(),
        "u1 connected neither generated toolkit: {:?}",
        res.tool_ids()
    );
}

#[tokio::test]
async fn same_named_users_of_two_tenants_never_share_accounts() {
    let mut state = FakeState::generated(10, 2);
    let kit = fake_server::toolkit_slug(0);
    state.add_account("ca_acme", "acme:alice", &kit, "ACTIVE", false);
    state.add_account("ca_globex", "globex:alice", &kit, "ACTIVE", false);
    state.add_account("ca_bare", "alice", &kit, "ACTIVE", false);
    let fake = FakeComposio::start(state).await;
    let hub = synced(&fake).await;
    let acme = Subject::tenant("acme").with_user("alice");
    let globex = Subject::tenant("globex").with_user("alice");
    let ids = |c: Vec<logline_core::tool::Connection>| {
        c.into_iter().map(|c| c.account_id).collect::<Vec<_>>()
    };
    assert_eq!(ids(hub.connections(&acme).await.unwrap()), ["ca_acme"]);
    assert_eq!(ids(hub.connections(&globex).await.unwrap()), ["ca_globex"]);
    assert_eq!(hub.composio_user_id(&acme).as_deref(), Some("acme:alice"));

    let slug = format!("{}_LIST_ITEM", kit.to_uppercase());
    let out = hub
        .execute(&slug, json!({}), &ToolContext::for_subject(globex))
        .await
        .unwrap();
    assert_eq!(
        (
            out["user_id"].as_str(),
            out["connected_account_id"].as_str()
        ),
        (Some("globex:alice"), Some("ca_globex")),
        "executed as globex's alice with her account"
    );

    // Single-tenant hosts may keep bare user ids.
    let bare = self::hub(&fake, |b| b.user_ids(ComposioUserIds::UserOnly));
    assert_eq!(ids(bare.connections(&acme).await.unwrap()), ["ca_bare"]);
}

#[tokio::test]
async fn accounts_of_other_users_in_an_answer_are_dropped() {
    let mut state = FakeState::generated(10, 2);
    state.add_account("ca_mine", "t:u1", "github", "ACTIVE", false);
    state.add_account("ca_theirs", "t:u2", "slack", "ACTIVE", false);
    state.ignore_user_filter = true;
    let fake = FakeComposio::start(state).await;
    let hub = self::hub(&fake, |b| b);
    let u1 = Subject::tenant("t").with_user("u1");
    let conns = hub.connections(&u1).await.unwrap();
    assert_eq!(
        conns
            .iter()
            .map(|c| c.account_id.as_str())
            .collect::<Vec<_>>(),
        ["ca_mine"]
    );
    // A user id with a comma would name several users in the account listing.
    let comma = self::hub(&fake, |b| {
        b.user_ids(ComposioUserIds::Custom(Arc::new(|_| {
            Some("t:u1,t:u2".into())
        })))
    });
    let e = comma.connections(&u1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[tokio::test]
async fn list_tools_follows_cursors() {
    let fake = FakeComposio::start(FakeState::generated(250, 25)).await;
    let hub = hub(&fake, |b| b);
    let mut cursor = None;
    let mut all: Vec<Value> = Vec::new();
    loop {
        let page = hub
            .list_tools(PageRequest {
                cursor: cursor.clone(),
                limit: Some(40),
                updated_since: None,
            })
            .await
            .unwrap();
        all.extend(page.tools.iter().map(|t| json!(t.id)));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(all.len(), 250);
    let fetched = hub.fetch_tool("ACMECRM_LIST_ITEM").await.unwrap();
    assert_eq!(fetched.risk_level, RiskLevel::Low);
    assert_eq!(
        hub.fetch_tool("NOPE").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}
