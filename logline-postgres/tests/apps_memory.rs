//! Apps and agent memory on PostgreSQL: the blueprint's manifest imported and run, its rows
//! written, scopes held by a second engine on the same database; memory through the tools
//! across tenants; the inverted-file index against exact search.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use logline_core::app::ImportOutcome;
use logline_core::engine::{Engine, Principal, StartRun};
use logline_core::llm::{FinishReason, LlmResponse, Message, ToolCallRequest};
use logline_core::recall::{
    MemoryFilter, MemoryItem, Owner, OwnerKind, ReadScope, Recall, RecallStore,
};
use logline_core::run::{RunStatus, Subject};
use logline_core::testing::{golden, FakeEmbedder, ScriptedLlm};
use logline_core::workflow::{Workflow, WorkflowDefinition};
use logline_postgres::{IvfOptions, PgBackend};
use serde_json::{json, Value};

const BLUEPRINT: &str = include_str!("../../examples/manifests/guest_support_console.json");

async fn golden_engine(pg: &PgBackend) -> Engine {
    let engine = golden::with_tool(pg.engine_builder())
        .default_llm(Arc::new(golden::scripted_llm()))
        .build()
        .await
        .unwrap();
    golden::install(&engine, "m").await.unwrap();
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blueprint_app_imports_runs_and_keeps_its_rows() {
    let (pg, _g) = support::guarded_backend().await;
    let engine = golden_engine(&pg).await;
    assert_eq!(
        engine.import_app_text(BLUEPRINT).await.unwrap().outcome,
        ImportOutcome::Created
    );
    assert_eq!(
        engine.import_app_text(BLUEPRINT).await.unwrap().outcome,
        ImportOutcome::Unchanged
    );
    let ctx =
        json!({"tenant_id": "tenant:voulezvous", "user_id": "user:dan", "hotel_id": "VV-LISBON"});
    let out = engine
        .run_action(
            "guest_support_console",
            "triage_ticket",
            json!({}),
            ctx.clone(),
        )
        .await
        .unwrap();
    assert_eq!(out.status, RunStatus::Completed);
    assert_eq!(out.result.unwrap()["summary"], "4 tickets triaged");
    let run = engine.get_run(out.run_id).await.unwrap();
    assert_eq!(run.subject.app_id.as_deref(), Some("guest_support_console"));
    assert_eq!(run.app_action_id.as_deref(), Some("triage_ticket"));

    let pool = pg.pool();
    let scopes: Vec<(String, String)> = sqlx::query_as(
        "SELECT scope_type, scope_value FROM app_scopes WHERE app_id = $1 ORDER BY scope_value",
    )
    .bind("guest_support_console")
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        scopes,
        vec![
            ("tool".into(), "natural_language_db_read".into()),
            ("tool".into(), "ticketing.list_open".into())
        ]
    );
    let (alias, workflow, mapping): (String, String, Value) = sqlx::query_as(
        "SELECT w.alias, w.workflow_id, a.input_mapping FROM app_actions a
         JOIN app_workflows w ON w.id = a.app_workflow_id WHERE a.action_id = 'triage_ticket'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        (alias.as_str(), workflow.as_str()),
        ("ticket_flow", golden::WORKFLOW_ID)
    );
    assert_eq!(mapping, json!({"hotel_id": "$context.hotel_id"}));
    let (version, digest): (String, String) =
        sqlx::query_as("SELECT version, digest FROM apps WHERE id = 'guest_support_console'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(version, "1.0.0");
    assert_eq!(digest.len(), 64);

    // Version 1.0.1 drops the ticketing tool; another engine on the same database (another
    // process) holds the app's runs to it.
    let narrowed = BLUEPRINT
        .replace("\"1.0.0\"", "\"1.0.1\"")
        .replace("\"ticketing.list_open\",", "");
    assert_eq!(
        engine.import_app_text(&narrowed).await.unwrap().outcome,
        ImportOutcome::Updated
    );
    let other = golden_engine(&pg).await;
    let out = other
        .run_action("guest_support_console", "triage_ticket", json!({}), ctx)
        .await
        .unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    let error = other.get_run(out.run_id).await.unwrap().error.unwrap();
    assert_eq!(error["kind"], "policy_denied", "{error}");
}

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

/// Runs one agent turn with `calls` for `principal`; what the model was shown per call.
async fn turn(
    engine: &Engine,
    llm: &ScriptedLlm,
    principal: Principal,
    calls: &[(&str, Value)],
) -> Vec<Value> {
    script(llm, calls);
    let run = engine
        .scoped(principal)
        .start_run(StartRun::new("mem_flow", json!({}), Subject::default()))
        .await
        .unwrap();
    let run = engine.execute(run.id).await.unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let requests = llm.requests();
    requests
        .last()
        .unwrap()
        .messages
        .iter()
        .filter_map(|m| match m {
            Message::Tool { content, .. } => {
                let v: Value = serde_json::from_str(content).unwrap();
                Some(
                    v.get("error")
                        .map_or_else(|| v["tool_result"].clone(), |e| json!({"error": e})),
                )
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_tools_never_cross_tenants_on_postgres() {
    let (pg, _g) = support::guarded_backend().await;
    let store = Arc::new(pg.recall_store());
    let llm = Arc::new(ScriptedLlm::new());
    let engine = pg
        .engine_builder()
        .default_llm(llm.clone())
        .recall(Recall::new(store.clone(), Arc::new(FakeEmbedder::new(64))))
        .build()
        .await
        .unwrap();
    engine
        .register_agent(
            &logline_core::agent::Agent::new(
                "agent.mem",
                "Remember.",
                logline_core::agent::ModelProfile::new("m"),
            )
            .with_tools([
                "memory.store",
                "memory.retrieve",
                "memory.search",
                "memory.delete",
            ]),
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

    let alice = || Principal::user("tenant-a", "alice");
    let out = turn(&engine, &llm, alice(), &[
        ("memory_store", json!({"content": "Guest in 305 wants a quiet room"})),
        ("memory_store", json!({"content": "Staff wifi rotates monthly", "owner": "tenant", "visibility": "tenant"})),
    ]).await;
    let id = out[0]["stored"]["id"].as_str().unwrap().to_string();
    let shared = out[1]["stored"]["id"].as_str().unwrap().to_string();

    let mallory = Principal::user("tenant-b", "mallory");
    let out = turn(
        &engine,
        &llm,
        mallory,
        &[
            ("memory_search", json!({"query": "guest quiet room 305"})),
            ("memory_search", json!({"query": "wifi", "owner": "tenant"})),
            ("memory_retrieve", json!({"id": id})),
            ("memory_retrieve", json!({"id": shared})),
            ("memory_delete", json!({"id": id})),
            ("memory_delete", json!({"id": shared, "owner": "tenant"})),
            ("memory_retrieve", json!({"id": id, "owner_id": "alice"})),
            ("memory_delete", json!({"id": id, "tenant_id": "tenant-a"})),
        ],
    )
    .await;
    for o in &out[..4] {
        assert_eq!(o["items"], json!([]), "{o}");
    }
    assert_eq!(
        (out[4]["deleted"].clone(), out[5]["deleted"].clone()),
        (json!(0), json!(0))
    );
    assert!(out[6].get("error").is_some() && out[7].get("error").is_some());

    let scope = ReadScope {
        tenant_id: "tenant-a".into(),
        owners: vec![
            Owner::new(OwnerKind::User, "alice"),
            Owner::new(OwnerKind::Tenant, "tenant-a"),
        ],
        shared: true,
    };
    assert_eq!(
        store
            .list(&scope, &MemoryFilter::default(), 10)
            .await
            .unwrap()
            .len(),
        2
    );
    let out = turn(
        &engine,
        &llm,
        alice(),
        &[(
            "memory_search",
            json!({"query": "which guest wants quiet", "limit": 1}),
        )],
    )
    .await;
    assert_eq!(out[0]["items"][0]["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inverted_file_index_finds_what_exact_search_finds_within_the_tenant() {
    let (pg, _g) = support::guarded_backend().await;
    let store = pg.recall_store().with_options(IvfOptions {
        lists: Some(16),
        probes: 4,
        ..IvfOptions::default()
    });
    // 20 topics on distinct axes, 60 items each, spread around them; a near copy of every
    // item lives in another tenant.
    let dims = 32;
    let vector = |topic: usize, j: usize| -> Vec<f32> {
        (0..dims)
            .map(|d| {
                let base = if d == topic % dims { 1.0 } else { 0.0 };
                let wobble = (((j * 31 + d * 17 + topic * 7) % 23) as f32 - 11.0) / 60.0;
                base + wobble
                    + if d == (topic + 5) % dims {
                        0.5 * (topic / dims) as f32
                    } else {
                        0.0
                    }
            })
            .collect()
    };
    let owner = Owner::new(OwnerKind::Tenant, "t1");
    for topic in 0..20 {
        for j in 0..60 {
            let mut item = MemoryItem::new("t1", owner.clone(), format!("{topic}/{j}"));
            item.embedding = vector(topic, j);
            store.put(&item).await.unwrap();
            let mut twin = MemoryItem::new("t2", Owner::new(OwnerKind::Tenant, "t2"), "twin");
            twin.embedding = vector(topic, j);
            store.put(&twin).await.unwrap();
        }
    }
    let report = store.train_index().await.unwrap().unwrap();
    assert_eq!(
        (report.dims, report.lists, report.assigned),
        (dims, 16, 2400)
    );
    let scope = ReadScope {
        tenant_id: "t1".into(),
        owners: vec![owner],
        shared: false,
    };
    let any = MemoryFilter::default();
    let (mut hits, mut total) = (0, 0);
    for topic in 0..20 {
        let q = vector(topic, 1000 + topic);
        let approx = store.search(&scope, &q, &any, 10).await.unwrap();
        let exact = store.search_exact(&scope, &q, &any, 10).await.unwrap();
        assert!(approx.iter().all(|s| s.item.tenant_id == "t1"));
        assert_eq!(approx.len(), 10);
        total += exact.len();
        hits += approx
            .iter()
            .filter(|a| exact.iter().any(|e| e.item.id == a.item.id))
            .count();
    }
    let recall = hits as f64 / total as f64;
    assert!(recall >= 0.9, "recall@10 against exact search: {recall:.2}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_stored_before_quantization_are_backfilled_and_always_found() {
    use logline_core::recall::vector::Quantized;
    let (pg, _g) = support::guarded_backend().await;
    let store = pg.recall_store();
    let owner = Owner::new(OwnerKind::Tenant, "t1");
    let mut ids = Vec::new();
    for i in 0..80 {
        let mut item = MemoryItem::new("t1", owner.clone(), format!("item {i}"));
        item.embedding = (0..24)
            .map(|d| ((i * 24 + d) as f32 * 0.37).sin())
            .collect();
        store.put(&item).await.unwrap();
        ids.push(item);
    }
    // As rows written before the migration: no quantized vector.
    sqlx::query("UPDATE memory_items SET embedding_q = NULL, embedding_scale = NULL")
        .execute(pg.pool())
        .await
        .unwrap();
    let scope = ReadScope {
        tenant_id: "t1".into(),
        owners: vec![owner],
        shared: false,
    };
    let any = MemoryFilter::default();
    for item in ids.iter().step_by(9) {
        let found = store
            .search(&scope, &item.embedding, &any, 1)
            .await
            .unwrap();
        assert_eq!(
            found[0].item.id, item.id,
            "an unquantized item is ranked exactly"
        );
    }

    // The migration's backfill computes what the store computes.
    sqlx::query(
        "UPDATE memory_items SET (embedding_q, embedding_scale) = (
             SELECT memory_embedding_codes(f), memory_embedding_scale(f)
             FROM (SELECT memory_embedding_floats(embedding) AS f) AS x)",
    )
    .execute(pg.pool())
    .await
    .unwrap();
    let rows: Vec<(uuid::Uuid, Vec<u8>, f32)> =
        sqlx::query_as("SELECT id, embedding_q, embedding_scale FROM memory_items")
            .fetch_all(pg.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), ids.len());
    for (id, codes, scale) in rows {
        let item = ids.iter().find(|i| i.id == id).unwrap();
        let want = Quantized::new(&item.embedding);
        let got = Quantized::from_parts(&codes, scale);
        assert_eq!(got.codes.len(), want.codes.len());
        assert!(
            got.codes
                .iter()
                .zip(&want.codes)
                .all(|(a, b)| (i16::from(*a) - i16::from(*b)).abs() <= 1),
            "{got:?} vs {want:?}"
        );
        assert!((got.scale - want.scale).abs() <= want.scale * 1e-5);
    }
    for item in ids.iter().step_by(9) {
        let found = store
            .search(&scope, &item.embedding, &any, 1)
            .await
            .unwrap();
        assert_eq!(found[0].item.id, item.id);
    }
}
