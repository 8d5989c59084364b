//! Store checks.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::agent::{Agent, ModelProfile};
use crate::event::{EventKind, NewEvent};
use crate::policy::{Effect, Policy, PolicyScope, RuleExpr};
use crate::run::{Run, RunStatus, Step, StepStatus, Subject};
use crate::store::{Checkpoint, EffectRecord, EffectState, Page, RunFilter, Store, ToolQuery};
use crate::tool::ToolSpec;
use crate::workflow::{NodeType, Workflow, WorkflowDefinition};
use crate::ErrorKind;

mod nul;
pub use nul::nul_characters_are_stored_replaced;

/// What a store backend supports beyond the required contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreCapabilities {
    /// `purge_runs` deletes finished runs (retention).
    pub purge_runs: bool,
}

impl StoreCapabilities {
    /// Everything: every check runs.
    pub fn all() -> Self {
        StoreCapabilities { purge_runs: true }
    }
}

fn linear(n: usize) -> WorkflowDefinition {
    let nodes: Vec<_> = (0..n)
        .map(|i| json!({"id": format!("n{i}"), "type": "static"}))
        .collect();
    let edges: Vec<_> = (1..n)
        .map(|i| json!({"from": format!("n{}", i - 1), "to": format!("n{i}")}))
        .collect();
    serde_json::from_value(json!({"entry": "n0", "nodes": nodes, "edges": edges}))
        .expect("valid definition")
}

/// A pending run of `tenant` for `workflow_id`.
pub fn sample_run(tenant: &str, workflow_id: &str) -> Run {
    Run::new(
        workflow_id,
        "1.0.0",
        "n0",
        json!({"hotel_id": "VV-LISBON"}),
        Subject::tenant(tenant).with_user("u1"),
    )
}

fn ev(kind: EventKind, i: u64) -> NewEvent {
    NewEvent::run(kind, json!({"i": i}))
}

fn step(run: &Run, index: u32) -> Step {
    Step {
        id: crate::run::step_id(run.id, index),
        run_id: run.id,
        index,
        node_id: format!("n{index}"),
        node_type: NodeType::Static,
        status: StepStatus::Completed,
        input: json!({"in": index}),
        output: Some(json!({"out": index})),
        error: None,
        started_at: Utc::now(),
        finished_at: Some(Utc::now()),
    }
}

/// Versions are immutable; `None` reads the latest; deleting removes every version.
pub async fn workflows_are_versioned(store: Arc<dyn Store>) {
    let v1 = Workflow::new("wf", "WF", linear(2));
    let v2 = Workflow::new("wf", "WF", linear(3)).with_version("2.0.0");
    store.put_workflow(&v1).await.expect("put v1");
    store
        .put_workflow(&v1)
        .await
        .expect("identical re-put is a no-op");
    store.put_workflow(&v2).await.expect("put v2");
    let changed = Workflow::new("wf", "WF", linear(4));
    let err = store
        .put_workflow(&changed)
        .await
        .expect_err("changed v1 must conflict");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        store
            .get_workflow("wf", None)
            .await
            .expect("latest")
            .version,
        "2.0.0"
    );
    let got = store.get_workflow("wf", Some("1.0.0")).await.expect("v1");
    assert_eq!(got.definition, v1.definition);
    let other = Workflow::new("a_first", "A", linear(1));
    store.put_workflow(&other).await.expect("put other");
    let list = store.list_workflows(Page::default()).await.expect("list");
    let ids: Vec<_> = list
        .iter()
        .map(|w| (w.id.as_str(), w.version.as_str()))
        .collect();
    assert_eq!(ids, vec![("a_first", "1.0.0"), ("wf", "2.0.0")]);
    store.delete_workflow("wf").await.expect("delete");
    let err = store
        .get_workflow("wf", Some("1.0.0"))
        .await
        .expect_err("deleted");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// Tools upsert in batches, filter by toolkit and hub, page by id.
pub async fn tool_catalog_round_trips(store: Arc<dyn Store>) {
    let tools: Vec<ToolSpec> = (0..25)
        .map(|i| {
            ToolSpec::new(
                format!("kit{}.tool{i:02}", i % 3),
                format!("tool {i}"),
                json!({"type": "object"}),
            )
            .in_toolkit(format!("kit{}", i % 3))
            .on_hub(if i % 2 == 0 { "local" } else { "remote" })
            .with_tags(["read"])
        })
        .collect();
    store.put_tools(&tools).await.expect("put tools");
    let mut changed = tools[0].clone();
    changed.description = "changed".into();
    store.put_tools(&[changed]).await.expect("upsert");
    assert_eq!(
        store.get_tool(&tools[0].id).await.expect("get").description,
        "changed"
    );
    assert_eq!(
        *store.get_tool_spec(&tools[0].id).await.expect("get spec"),
        store.get_tool(&tools[0].id).await.expect("get")
    );
    let kit1 = store
        .list_tools(&ToolQuery {
            toolkit: Some("kit1".into()),
            ..Default::default()
        })
        .await
        .expect("by toolkit");
    assert_eq!(kit1.len(), 8);
    assert!(kit1.iter().all(|t| t.toolkit.as_deref() == Some("kit1")));
    let remote = store
        .list_tools(&ToolQuery {
            hub: Some("remote".into()),
            ..Default::default()
        })
        .await
        .expect("by hub");
    assert_eq!(remote.len(), 12);
    let page = store
        .list_tools(&ToolQuery {
            page: Page {
                offset: 5,
                limit: 5,
            },
            ..Default::default()
        })
        .await
        .expect("page");
    let mut all: Vec<_> = tools.iter().map(|t| t.id.clone()).collect();
    all.sort();
    assert_eq!(
        page.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        all[5..10].to_vec()
    );
    store.delete_tool(&tools[1].id).await.expect("delete");
    assert_eq!(
        store.get_tool(&tools[1].id).await.expect_err("gone").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store
            .get_tool_spec(&tools[1].id)
            .await
            .expect_err("gone")
            .kind(),
        ErrorKind::NotFound
    );
}

/// Agents and policies upsert, list and delete.
pub async fn agents_and_policies_round_trip(store: Arc<dyn Store>) {
    let agent = Agent::new("agent.a", "be useful", ModelProfile::new("m")).with_tools(["t1"]);
    store.put_agent(&agent).await.expect("put agent");
    assert_eq!(store.get_agent("agent.a").await.expect("get agent"), agent);
    assert_eq!(
        store
            .list_agents(Page::default())
            .await
            .expect("list")
            .len(),
        1
    );
    assert_eq!(
        store.get_agent("nope").await.expect_err("missing").kind(),
        ErrorKind::NotFound
    );
    let p = Policy {
        id: "p1".into(),
        name: "deny".into(),
        description: String::new(),
        scope: PolicyScope::Tenant,
        scope_id: Some("t".into()),
        actions: vec![],
        rule_expr: RuleExpr::default(),
        effect: Effect::Deny,
        modify: None,
        priority: 7,
        enabled: true,
    };
    store.put_policy(&p).await.expect("put policy");
    assert_eq!(store.list_policies().await.expect("list"), vec![p.clone()]);
    store.delete_policy("p1").await.expect("delete");
    assert!(store.list_policies().await.expect("list").is_empty());
}

/// A run is created once, at version 1, with its first events numbered from 1.
pub async fn runs_are_created_once(store: Arc<dyn Store>) {
    let run = sample_run("t", "wf");
    let c = store
        .create_run(
            &run,
            &[ev(EventKind::RunStarted, 1), ev(EventKind::PolicyEval, 2)],
        )
        .await
        .expect("create");
    assert_eq!((c.version, c.last_seq), (1, 2));
    let got = store.get_run(run.id).await.expect("get");
    assert_eq!(got.version, 1);
    assert_eq!(got.input, run.input);
    assert_eq!(got.subject, run.subject);
    let err = store.create_run(&run, &[]).await.expect_err("duplicate");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        store
            .get_run(Uuid::new_v4())
            .await
            .expect_err("missing")
            .kind(),
        ErrorKind::NotFound
    );
}

/// A checkpoint commits run, step and events together, or nothing on a stale version.
pub async fn commit_is_atomic_and_versioned(store: Arc<dyn Store>) {
    let mut run = sample_run("t", "wf");
    store
        .create_run(&run, &[ev(EventKind::RunStarted, 1)])
        .await
        .expect("create");
    run.version = 1;
    run.status = RunStatus::Running;
    run.cursor.step_index = 1;
    let s0 = step(&run, 0);
    let events = [
        ev(EventKind::StepStarted, 2),
        ev(EventKind::StepCompleted, 3),
    ];
    let c = store
        .commit(Checkpoint {
            run: &run,
            step: Some(s0.clone()),
            events: events.to_vec(),
        })
        .await
        .expect("commit");
    assert_eq!((c.version, c.last_seq), (2, 3));
    // Stale version: rejected, nothing written.
    let stale = Checkpoint {
        run: &run,
        step: Some(s0.clone()),
        events: events.to_vec(),
    };
    assert_eq!(
        store.commit(stale).await.expect_err("stale").kind(),
        ErrorKind::Conflict
    );
    assert_eq!(store.events(run.id, 0, 100).await.expect("events").len(), 3);
    let got = store.get_run(run.id).await.expect("get");
    assert_eq!(
        (got.version, got.status, got.cursor.step_index),
        (2, RunStatus::Running, 1)
    );
    let steps = store.steps(run.id).await.expect("steps");
    assert_eq!(steps, vec![s0]);
    // Replacing a step row by index.
    run.version = 2;
    let mut s0b = step(&run, 0);
    s0b.output = Some(json!({"replaced": true}));
    store
        .commit(Checkpoint {
            run: &run,
            step: Some(s0b),
            events: vec![],
        })
        .await
        .expect("commit without events");
    let steps = store.steps(run.id).await.expect("steps");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].output, Some(json!({"replaced": true})));
}

/// Events are gap-free from 1 and page by `after_seq` and `limit`.
pub async fn events_page_by_sequence(store: Arc<dyn Store>) {
    let mut run = sample_run("t", "wf");
    store
        .create_run(&run, &[ev(EventKind::RunStarted, 0)])
        .await
        .expect("create");
    assert_eq!(store.last_seq(run.id).await.expect("last seq"), 1);
    run.version = 1;
    for batch in 0..5u64 {
        let events: Vec<_> = (0..4)
            .map(|i| ev(EventKind::LlmCall, batch * 4 + i))
            .collect();
        let c = store
            .commit(Checkpoint {
                run: &run,
                step: None,
                events,
            })
            .await
            .expect("commit");
        run.version = c.version;
    }
    let all = store.events(run.id, 0, 1000).await.expect("all");
    assert_eq!(all.len(), 21);
    assert_eq!(store.last_seq(run.id).await.expect("last seq"), 21);
    let unknown = store.last_seq(Uuid::now_v7()).await;
    assert_eq!(
        unknown.expect_err("unknown run").kind(),
        ErrorKind::NotFound
    );
    assert!(all
        .iter()
        .enumerate()
        .all(|(i, e)| e.seq == i as u64 + 1 && e.run_id == run.id));
    assert_eq!(all[0].kind, EventKind::RunStarted);
    assert_eq!(all[20].payload, json!({"i": 19}));
    let page = store.events(run.id, 7, 5).await.expect("page");
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![8, 9, 10, 11, 12]
    );
    assert!(store
        .events(run.id, 21, 10)
        .await
        .expect("after end")
        .is_empty());
}

/// The first record at (run, step, seq) wins; effects list by step in seq order.
pub async fn effect_ledger_keeps_first_record(store: Arc<dyn Store>) {
    let run = sample_run("t", "wf");
    store.create_run(&run, &[]).await.expect("create");
    let rec = |step_index: u32, seq: u32, out: i64| EffectRecord {
        run_id: run.id,
        step_index,
        seq,
        kind: "tool".into(),
        key: "t".into(),
        output: json!({"v": out}),
        error: None,
        state: EffectState::Completed,
        recorded_at: Utc::now(),
    };
    let first = store.record_effect(&rec(1, 0, 1)).await.expect("record");
    assert_eq!(first.output, json!({"v": 1}));
    let again = store
        .record_effect(&rec(1, 0, 2))
        .await
        .expect("record again");
    assert_eq!(again.output, json!({"v": 1}), "the first result is kept");
    store.record_effect(&rec(1, 2, 3)).await.expect("record");
    store.record_effect(&rec(1, 1, 4)).await.expect("record");
    store.record_effect(&rec(2, 0, 5)).await.expect("record");
    let mut failed = rec(3, 0, 0);
    failed.error = Some(json!({"kind": "tool_failed"}));
    store.record_effect(&failed).await.expect("record failure");
    let effects = store.effects(run.id, 1).await.expect("effects");
    assert_eq!(
        effects.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(
        store.effects(run.id, 3).await.expect("effects")[0].error,
        failed.error
    );
    assert!(store.effects(run.id, 9).await.expect("none").is_empty());
}

/// An intent is recorded once, fenced by the run version; a completed record replaces it;
/// a released intent can be recorded again.
pub async fn effect_intents_are_fenced_and_resolved(store: Arc<dyn Store>) {
    let run = sample_run("t", "wf");
    let version = store.create_run(&run, &[]).await.expect("create").version;
    let intent = EffectRecord::intent(run.id, 0, 0, "tool", "mail.send");
    assert_eq!(
        store.record_intent(&intent, version).await.expect("intent"),
        None
    );
    let existing = store.record_intent(&intent, version).await.expect("again");
    assert_eq!(existing.map(|e| e.state), Some(EffectState::Intended));
    let stale = EffectRecord::intent(run.id, 0, 1, "tool", "x");
    let fenced = store.record_intent(&stale, version - 1).await;
    assert_eq!(
        fenced.expect_err("fenced").kind(),
        crate::ErrorKind::Conflict
    );
    let listed = store.effects(run.id, 0).await.expect("effects");
    assert_eq!(listed.len(), 1, "a fenced-out intent is not recorded");
    assert_eq!(listed[0].state, EffectState::Intended);

    let mut done = intent.clone();
    done.state = EffectState::Completed;
    done.output = json!({"sent": true});
    let stored = store.record_effect(&done).await.expect("complete");
    assert_eq!(
        stored.output,
        json!({"sent": true}),
        "the result replaces the intent"
    );
    let after = store.record_intent(&intent, version).await.expect("after");
    assert_eq!(after.map(|e| e.output), Some(json!({"sent": true})));
    store.release_intent(run.id, 0, 0).await.expect("release");
    assert_eq!(
        store.effects(run.id, 0).await.expect("kept")[0].state,
        EffectState::Completed
    );

    let other = EffectRecord::intent(run.id, 0, 2, "tool", "mail.send");
    assert_eq!(
        store.record_intent(&other, version).await.expect("intent"),
        None
    );
    store.release_intent(run.id, 0, 2).await.expect("release");
    assert_eq!(
        store.record_intent(&other, version).await.expect("again"),
        None
    );
}

/// Runs filter by tenant, workflow and status, newest first.
pub async fn runs_list_by_filter(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..6 {
        let mut r = sample_run(
            if i % 2 == 0 { "even" } else { "odd" },
            if i < 3 { "wa" } else { "wb" },
        );
        r.created_at = Utc::now() + chrono::Duration::milliseconds(i);
        if i == 5 {
            r.status = RunStatus::Completed;
        }
        store.create_run(&r, &[]).await.expect("create");
        ids.push(r.id);
    }
    let even = store
        .list_runs(&RunFilter {
            tenant_id: Some("even".into()),
            ..Default::default()
        })
        .await
        .expect("even");
    assert_eq!(
        even.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[4], ids[2], ids[0]]
    );
    let wb = store
        .list_runs(&RunFilter {
            workflow_id: Some("wb".into()),
            ..Default::default()
        })
        .await
        .expect("wb");
    assert_eq!(wb.len(), 3);
    let done = store
        .list_runs(&RunFilter {
            status: Some(RunStatus::Completed),
            ..Default::default()
        })
        .await
        .expect("done");
    assert_eq!(done.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[5]]);
    let page = store
        .list_runs(&RunFilter {
            page: Page {
                offset: 1,
                limit: 2,
            },
            ..Default::default()
        })
        .await
        .expect("page");
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3]]
    );
}

/// A tenant filter is applied before paging: pages hold only the tenant's runs, newest
/// first, however the tenants' runs interleave.
pub async fn runs_list_pages_within_the_tenant(store: Arc<dyn Store>) {
    let mut mine = Vec::new();
    for i in 0..40 {
        let tenant = if i % 4 == 0 { "mine" } else { "theirs" };
        let mut r = sample_run(tenant, "wf");
        r.created_at = Utc::now() + chrono::Duration::milliseconds(i);
        store.create_run(&r, &[]).await.expect("create");
        if tenant == "mine" {
            mine.push(r.id);
        }
    }
    mine.reverse();
    let mut listed = Vec::new();
    for offset in (0..12).step_by(3) {
        let page = store
            .list_runs(&RunFilter {
                tenant_id: Some("mine".into()),
                page: Page { offset, limit: 3 },
                ..Default::default()
            })
            .await
            .expect("page");
        assert!(page.iter().all(|r| r.subject.tenant_id == "mine"));
        listed.extend(page.iter().map(|r| r.id));
    }
    assert_eq!(listed, mine, "every run of the tenant, once, newest first");
    let none = store
        .list_runs(&RunFilter {
            tenant_id: Some("nobody".into()),
            ..Default::default()
        })
        .await
        .expect("none");
    assert!(none.is_empty());
}

/// A waiter for new events wakes when a commit appends some.
pub async fn wait_for_events_wakes_on_commit(store: Arc<dyn Store>) {
    let mut run = sample_run("t", "wf");
    let c = store
        .create_run(&run, &[ev(EventKind::RunStarted, 1)])
        .await
        .expect("create");
    run.version = c.version;
    let waiter = {
        let store = store.clone();
        let id = run.id;
        tokio::spawn(async move { store.wait_for_events(id, 1, Duration::from_secs(60)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    store
        .commit(Checkpoint {
            run: &run,
            step: None,
            events: vec![ev(EventKind::StepStarted, 2)],
        })
        .await
        .expect("commit");
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("waiter must wake on commit, not sleep until its timeout")
        .expect("join")
        .expect("wait");
    // Already-available events return at once.
    tokio::time::timeout(
        Duration::from_secs(10),
        store.wait_for_events(run.id, 0, Duration::from_secs(60)),
    )
    .await
    .expect("events after 0 exist")
    .expect("wait");
}

/// A waiter for a run's end wakes when a commit settles it, through steps that do not.
pub async fn wait_for_settled_wakes_when_the_run_ends(store: Arc<dyn Store>) {
    let mut run = sample_run("t", "wf");
    run.status = RunStatus::Running;
    let c = store
        .create_run(&run, &[ev(EventKind::RunStarted, 1)])
        .await
        .expect("create");
    run.version = c.version;
    let waiter = {
        let store = store.clone();
        let id = run.id;
        tokio::spawn(async move { store.wait_for_settled(id, 1, Duration::from_secs(60)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let c = store
        .commit(Checkpoint {
            run: &run,
            step: None,
            events: vec![ev(EventKind::StepStarted, 2)],
        })
        .await
        .expect("commit a step");
    run.version = c.version;
    run.status = RunStatus::Completed;
    store
        .commit(Checkpoint {
            run: &run,
            step: None,
            events: vec![ev(EventKind::RunCompleted, 3)],
        })
        .await
        .expect("commit the end");
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("waiter must wake when the run ends, not sleep until its timeout")
        .expect("join")
        .expect("wait");
}

/// Purge deletes terminal runs older than the cutoff, in bounded batches.
pub async fn purge_removes_old_terminal_runs(store: Arc<dyn Store>) {
    let mut old_done = Vec::new();
    for i in 0..5 {
        let mut r = sample_run("t", "wf");
        r.status = if i == 4 {
            RunStatus::Failed
        } else {
            RunStatus::Completed
        };
        store
            .create_run(&r, &[ev(EventKind::RunStarted, 1)])
            .await
            .expect("create");
        old_done.push(r.id);
    }
    let running = sample_run("t", "wf");
    store.create_run(&running, &[]).await.expect("create");
    let cutoff = Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(store.purge_runs(cutoff, 2).await.expect("purge"), 2);
    assert_eq!(store.purge_runs(cutoff, 2).await.expect("purge"), 2);
    assert_eq!(store.purge_runs(cutoff, 2).await.expect("purge"), 1);
    assert_eq!(store.purge_runs(cutoff, 2).await.expect("purge"), 0);
    for id in old_done {
        assert_eq!(
            store.get_run(id).await.expect_err("purged").kind(),
            ErrorKind::NotFound
        );
    }
    assert!(
        store.get_run(running.id).await.is_ok(),
        "non-terminal runs are kept"
    );
    let past = Utc::now() - chrono::Duration::days(1);
    let mut recent = sample_run("t", "wf");
    recent.status = RunStatus::Completed;
    store.create_run(&recent, &[]).await.expect("create");
    assert_eq!(
        store.purge_runs(past, 10).await.expect("purge"),
        0,
        "recent runs are kept"
    );
}

/// Of many commits built on the same version, exactly one wins.
pub async fn one_of_racing_commits_wins(store: Arc<dyn Store>) {
    let mut run = sample_run("t", "wf");
    store.create_run(&run, &[]).await.expect("create");
    run.version = 1;
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let store = store.clone();
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            store
                .commit(Checkpoint {
                    run: &run,
                    step: None,
                    events: vec![ev(EventKind::LlmCall, i)],
                })
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => wins += 1,
            Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.events(run.id, 0, 100).await.expect("events").len(), 1);
    assert_eq!(store.get_run(run.id).await.expect("get").version, 2);
}
