//! Agent memory through the tools: ownership from the run, never from the model; nothing
//! crosses tenants; apps reach only the memory their manifests grant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::{Engine, Principal, StartRun};
use logline_core::llm::{FinishReason, LlmResponse, Message, ToolCallRequest};
use logline_core::memory::MemoryRecallStore;
use logline_core::recall::{MemoryFilter, Owner, OwnerKind, ReadScope, Recall, RecallStore};
use logline_core::run::{RunId, RunStatus, Subject};
use logline_core::testing::{FakeEmbedder, ScriptedLlm};
use logline_core::workflow::{Workflow, WorkflowDefinition};
use serde_json::{json, Value};

const TOOLS: [&str; 4] = [
    "memory.store",
    "memory.retrieve",
    "memory.search",
    "memory.delete",
];

struct Fixture {
    engine: Engine,
    llm: Arc<ScriptedLlm>,
    store: Arc<MemoryRecallStore>,
}

async fn fixture() -> Fixture {
    let llm = Arc::new(ScriptedLlm::new());
    let store = Arc::new(MemoryRecallStore::new());
    let recall = Recall::new(store.clone(), Arc::new(FakeEmbedder::new(64)));
    let engine = Engine::builder()
        .default_llm(llm.clone())
        .recall(recall)
        .build()
        .await
        .unwrap();
    engine
        .register_agent(
            &Agent::new("agent.mem", "Use your memory.", ModelProfile::new("m")).with_tools(TOOLS),
        )
        .await
        .unwrap();
    let def = WorkflowDefinition::from_json(json!({
        "entry": "a",
        "nodes": [{"id": "a", "type": "agent_node", "config": {"agent_id": "agent.mem"}}]
    }))
    .unwrap();
    engine
        .register_workflow(&Workflow::new("mem_flow", "Memory", def))
        .await
        .unwrap();
    Fixture { engine, llm, store }
}

impl Fixture {
    /// Runs the agent once for `principal`: the model makes `calls` in one turn, then answers.
    async fn turn(&self, principal: Principal, calls: &[(&str, Value)]) -> (RunId, Vec<Value>) {
        script(&self.llm, calls);
        let run = self
            .engine
            .scoped(principal)
            .start_run(StartRun::new("mem_flow", json!({}), Subject::default()))
            .await
            .unwrap();
        let run = self.engine.execute(run.id).await.unwrap();
        assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
        (run.id, self.tool_results(run.id).await)
    }

    /// What the model was shown for each tool call of the last run, in order: the result, or
    /// `{"error": <recorded error>}`.
    async fn tool_results(&self, _run: RunId) -> Vec<Value> {
        let requests = self.llm.requests();
        let last = requests.last().expect("the model was asked");
        last.messages
            .iter()
            .filter_map(|m| match m {
                Message::Tool { content, .. } => {
                    let v: Value = serde_json::from_str(content).unwrap();
                    Some(match v.get("error") {
                        Some(e) => json!({"error": e}),
                        None => v["tool_result"].clone(),
                    })
                }
                _ => None,
            })
            .collect()
    }
}

/// Queues one turn of tool calls, then a final answer.
fn script(llm: &ScriptedLlm, calls: &[(&str, Value)]) {
    let tool_calls = calls
        .iter()
        .enumerate()
        .map(|(i, (name, args))| ToolCallRequest {
            id: format!("call_{i}"),
            name: name.to_string(),
            arguments: args.clone(),
        })
        .collect();
    llm.push(Ok(LlmResponse {
        tool_calls,
        finish_reason: FinishReason::ToolCalls,
        ..Default::default()
    }));
    llm.push(Ok(LlmResponse::text("done")));
}

fn alice() -> Principal {
    Principal::user("tenant-a", "alice")
}

fn mallory() -> Principal {
    Principal::user("tenant-b", "mallory")
}

#[tokio::test]
async fn another_tenants_memory_cannot_be_read_searched_or_deleted_through_the_tools() {
    let f = fixture().await;
    let (_, out) = f
        .turn(
            alice(),
            &[
                ("memory_store", json!({"content": "Guest in 305 wants a quiet room", "type": "profile"})),
                ("memory_store", json!({"content": "Lobby wifi password rotates monthly", "owner": "tenant", "visibility": "tenant"})),
            ],
        )
        .await;
    let id = out[0]["stored"]["id"].as_str().unwrap().to_string();
    let shared_id = out[1]["stored"]["id"].as_str().unwrap().to_string();
    assert_eq!(out[0]["stored"]["owner"], "user");

    // Mallory's model knows the ids and the other owner's id, and tries everything.
    let (_, out) = f
        .turn(
            mallory(),
            &[
                (
                    "memory_search",
                    json!({"query": "quiet room for the guest in 305"}),
                ),
                (
                    "memory_search",
                    json!({"query": "wifi password", "owner": "tenant"}),
                ),
                ("memory_retrieve", json!({"id": id})),
                ("memory_retrieve", json!({"id": shared_id})),
                ("memory_retrieve", json!({})),
                ("memory_delete", json!({"id": id})),
                ("memory_delete", json!({"id": shared_id, "owner": "tenant"})),
                (
                    "memory_search",
                    json!({"query": "quiet room", "owner_id": "alice"}),
                ),
                (
                    "memory_retrieve",
                    json!({"id": id, "tenant_id": "tenant-a"}),
                ),
                (
                    "memory_delete",
                    json!({"id": id, "owner_id": "alice", "owner_type": "user"}),
                ),
            ],
        )
        .await;
    assert_eq!(out.len(), 10);
    for (i, o) in out.iter().enumerate().take(5) {
        assert_eq!(o["items"], json!([]), "call {i}: {o}");
    }
    assert_eq!(out[5]["deleted"], 0);
    assert_eq!(out[6]["deleted"], 0);
    for (i, o) in out.iter().enumerate().skip(7) {
        assert!(
            o.get("error").is_some(),
            "call {i} naming another owner is refused: {o}"
        );
        assert!(o.get("items").is_none() && o.get("deleted").is_none());
    }

    // Alice's memory is intact, and she finds it by meaning.
    let (_, out) = f
        .turn(
            alice(),
            &[(
                "memory_search",
                json!({"query": "which room is quiet", "limit": 1}),
            )],
        )
        .await;
    assert_eq!(out[0]["items"][0]["id"], id.as_str());
    let a = ReadScope {
        tenant_id: "tenant-a".into(),
        owners: vec![
            Owner::new(OwnerKind::User, "alice"),
            Owner::new(OwnerKind::Tenant, "tenant-a"),
        ],
        shared: true,
    };
    assert_eq!(
        f.store
            .list(&a, &MemoryFilter::default(), 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn owners_come_from_the_run_and_shared_items_stay_read_only_for_others() {
    let f = fixture().await;
    let (run_id, out) = f
        .turn(
            alice(),
            &[
                ("memory_store", json!({"content": "scratch", "owner": "run", "ttl_seconds": 60, "type": "short_term"})),
                ("memory_store", json!({"content": "agent habit", "owner": "agent"})),
                ("memory_store", json!({"content": "team rule", "owner": "tenant", "visibility": "tenant"})),
                ("memory_store", json!({"content": "no app here", "owner": "app"})),
            ],
        )
        .await;
    assert_eq!(out[0]["stored"]["owner"], "run");
    assert!(out[0]["stored"]["expires_at"].is_string());
    assert_eq!(out[1]["stored"]["owner"], "agent");
    assert!(
        out[3].get("error").is_some(),
        "a run of no app has no app memory: {}",
        out[3]
    );
    let run_owner = Owner::new(OwnerKind::Run, run_id.to_string());
    let agent_owner = Owner::new(OwnerKind::Agent, "agent.mem");
    let scope = ReadScope {
        tenant_id: "tenant-a".into(),
        owners: vec![run_owner, agent_owner],
        shared: false,
    };
    assert_eq!(
        f.store
            .list(&scope, &MemoryFilter::default(), 10)
            .await
            .unwrap()
            .len(),
        2
    );

    // Bob, same tenant: reads the tenant-visible rule and the agent's own memory (the same
    // agent runs for him), never Alice's run memory.
    let bob = Principal::user("tenant-a", "bob");
    let (_, out) = f
        .turn(
            bob,
            &[
                ("memory_retrieve", json!({"limit": 10})),
                (
                    "memory_search",
                    json!({"query": "scratch", "owner": "user"}),
                ),
            ],
        )
        .await;
    let contents: Vec<&str> = out[0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, vec!["team rule", "agent habit"]);
    assert_eq!(out[1]["items"], json!([]), "Bob has no memory of his own");
}

fn memory_app(memory: Value) -> String {
    json!({
        "version": "1.0.0",
        "app": {
            "id": "notes", "name": "Notes",
            "scopes": {"tools": [], "memory": memory},
            "workflows": [{"id": "flow", "workflow_ref": "mem_flow", "label": "Flow"}],
            "actions": [{"id": "go", "label": "Go", "workflow_id": "flow"}]
        }
    })
    .to_string()
}

async fn app_turn(f: &Fixture, calls: &[(&str, Value)]) -> Vec<Value> {
    script(&f.llm, calls);
    let out = f
        .engine
        .run_action(
            "notes",
            "go",
            json!({}),
            json!({"tenant_id": "tenant-a", "user_id": "alice"}),
        )
        .await
        .unwrap();
    assert_eq!(out.status, RunStatus::Completed);
    f.tool_results(out.run_id).await
}

#[tokio::test]
async fn an_app_reaches_only_the_memory_its_manifest_grants() {
    let f = fixture().await;
    f.engine
        .import_app_text(&memory_app(json!([])))
        .await
        .unwrap();
    let asked = f.llm.requests().len();
    let out = app_turn(&f, &[("memory_search", json!({"query": "anything"}))]).await;
    // Without a memory grant the memory tools are not even offered to the model.
    let offered: Vec<String> = f.llm.requests()[asked]
        .tools
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert!(offered.is_empty(), "offered {offered:?}");
    assert_eq!(out[0]["error"]["kind"], "invalid_input", "{}", out[0]);
    assert!(
        out[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not available"),
        "{}",
        out[0]
    );

    let v2 = memory_app(json!(["user", "tenant:read"])).replace("1.0.0", "1.0.1");
    f.engine.import_app_text(&v2).await.unwrap();
    let out = app_turn(
        &f,
        &[
            ("memory_store", json!({"content": "alice likes tea"})),
            (
                "memory_store",
                json!({"content": "tenant fact", "owner": "tenant"}),
            ),
            (
                "memory_store",
                json!({"content": "app fact", "owner": "app"}),
            ),
            ("memory_search", json!({"query": "tea", "owner": "app"})),
        ],
    )
    .await;
    assert_eq!(out[0]["stored"]["owner"], "user");
    assert_eq!(
        out[1]["error"]["kind"], "policy_denied",
        "tenant memory is read-only: {}",
        out[1]
    );
    assert_eq!(
        out[2]["error"]["kind"], "policy_denied",
        "app memory is not granted: {}",
        out[2]
    );
    assert_eq!(out[3]["error"]["kind"], "policy_denied", "{}", out[3]);
    let asked = f.llm.requests().len();
    let out = app_turn(&f, &[("memory_search", json!({"query": "tea"}))]).await;
    assert_eq!(out[0]["items"][0]["content"], "alice likes tea");
    let mut offered: Vec<String> = f.llm.requests()[asked]
        .tools
        .iter()
        .map(|t| t.name.clone())
        .collect();
    offered.sort();
    assert_eq!(
        offered,
        [
            "memory_delete",
            "memory_retrieve",
            "memory_search",
            "memory_store"
        ],
        "a memory grant offers the memory tools"
    );
}

#[tokio::test]
async fn resources_are_chunked_searchable_and_forgotten_as_a_whole() {
    use logline_core::recall::ChunkOptions;
    let store = Arc::new(MemoryRecallStore::new());
    let recall = Recall::new(store.clone(), Arc::new(FakeEmbedder::new(128)));
    let owner = Owner::new(OwnerKind::Tenant, "t1");
    let text = "House rules.\n\nThe pool closes at nine in winter. Towels are at the desk.\n\n\
                Breakfast runs from seven to ten in the garden. Late breakfast costs extra.\n\n\
                Parking is underground; electric cars charge on level minus one.";
    let meta = json!({"source": "handbook"}).as_object().cloned().unwrap();
    let opts = ChunkOptions {
        max_chars: 80,
        overlap: 10,
    };
    let ingested = recall
        .ingest("t1", owner.clone(), "handbook.md", text, opts, meta)
        .await
        .unwrap();
    assert!(ingested.chunks.len() >= 3, "{:?}", ingested.chunks);
    let scope = ReadScope {
        tenant_id: "t1".into(),
        owners: vec![owner.clone()],
        shared: false,
    };
    let found = recall
        .search(
            &scope,
            "when does breakfast run in the garden",
            &MemoryFilter::default(),
            1,
        )
        .await
        .unwrap();
    let best = &found[0].item;
    assert!(best.content.contains("Breakfast runs"), "{}", best.content);
    assert_eq!(best.metadata["resource"], "handbook.md");
    assert_eq!(best.metadata["source"], "handbook");
    assert!(best.metadata["chunk"].is_u64());
    // Another tenant reads none of it; forgetting the resource removes every chunk.
    let other = ReadScope {
        tenant_id: "t2".into(),
        owners: vec![Owner::new(OwnerKind::Tenant, "t2")],
        shared: true,
    };
    assert!(recall
        .search(&other, "breakfast", &MemoryFilter::default(), 5)
        .await
        .unwrap()
        .is_empty());
    let n = recall
        .forget_resource("t1", std::slice::from_ref(&owner), ingested.resource_id)
        .await
        .unwrap();
    assert_eq!(n as usize, ingested.chunks.len());
    assert!(store
        .list(&scope, &MemoryFilter::default(), 10)
        .await
        .unwrap()
        .is_empty());
    let err = recall
        .ingest(
            "t1",
            owner,
            "empty",
            "  \n ",
            ChunkOptions::default(),
            Default::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), logline_core::ErrorKind::InvalidInput);
}

/// `n` items of tenant `t`, `expired` of them already past their expiry.
async fn items_with_expiry(store: &MemoryRecallStore, n: usize, expired: usize) {
    use logline_core::recall::MemoryItem;
    for i in 0..n {
        let mut item = MemoryItem::new("t", Owner::new(OwnerKind::Tenant, "t"), format!("{i}"));
        item.embedding = vec![1.0, i as f32];
        if i < expired {
            item.expires_at = Some(chrono::Utc::now() - chrono::Duration::seconds(5));
        } else if i % 2 == 0 {
            item.expires_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
        }
        store.put(&item).await.unwrap();
    }
}

#[tokio::test]
async fn a_purge_pass_deletes_expired_items_in_bounded_batches() {
    use logline_core::recall::{MemoryPurge, PurgeOptions};
    use tokio_util::sync::CancellationToken;
    let store = Arc::new(MemoryRecallStore::new());
    items_with_expiry(&store, 12, 5).await;
    let purge = MemoryPurge::new(
        store.clone(),
        PurgeOptions {
            batch: 2,
            max_batches: 2,
            ..PurgeOptions::default()
        },
    );
    let cancel = CancellationToken::new();
    let first = purge.run_once(&cancel).await.unwrap();
    assert_eq!((first.purged, first.truncated), (4, true));
    let second = purge.run_once(&cancel).await.unwrap();
    assert_eq!((second.purged, second.truncated), (1, false));
    assert_eq!(purge.run_once(&cancel).await.unwrap().purged, 0);
    // The live items (with and without expiry) stay; nothing expired is left to purge.
    assert_eq!(store.len(), 7);
    assert_eq!(
        store.purge_expired(chrono::Utc::now(), 100).await.unwrap(),
        0
    );
    cancel.cancel();
    let after = purge.run_once(&cancel).await.unwrap();
    assert_eq!(
        (after.purged, after.truncated),
        (0, true),
        "a cancelled pass stops"
    );
}

#[tokio::test]
async fn the_purge_task_runs_until_cancelled() {
    use logline_core::recall::{MemoryPurge, PurgeOptions};
    use tokio_util::sync::CancellationToken;
    let store = Arc::new(MemoryRecallStore::new());
    items_with_expiry(&store, 10, 4).await;
    let stop = CancellationToken::new();
    let task = MemoryPurge::new(store.clone(), PurgeOptions::default()).spawn(stop.clone());
    // The first pass runs at once; wait for it (bounded, in case it never comes).
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while store.len() > 6 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the first pass ran");
    stop.cancel();
    task.await.unwrap();
    assert_eq!(store.len(), 6);
}

#[tokio::test]
async fn retention_passes_purge_expired_memory_too() {
    use logline_core::memory::{MemoryQueue, MemoryStore};
    use logline_core::retention::{RetentionJob, RetentionPolicy};
    use tokio_util::sync::CancellationToken;
    let store = Arc::new(MemoryRecallStore::new());
    items_with_expiry(&store, 9, 3).await;
    let job = RetentionJob::new(
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryQueue::new()),
        RetentionPolicy::default(),
    )
    .purging_memory(store.clone());
    let report = job.run_once(&CancellationToken::new()).await.unwrap();
    assert_eq!(report.memory, 3);
    assert_eq!(store.len(), 6);
}
