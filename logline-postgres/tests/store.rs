//! PgStore behaviour beyond the shared conformance suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use logline_core::conformance::store::sample_run;
use logline_core::event::{EventKind, NewEvent};
use logline_core::policy::{Effect, Policy, PolicyScope, PolicySource, RuleExpr};
use logline_core::queue::{JobState, NewJob, Queue};
use logline_core::run::{step_id, Run, RunStatus, Step, StepStatus};
use logline_core::store::{Checkpoint, DefinitionStore, EffectRecord, EffectState, RunStore};
use logline_core::workflow::{NodeType, Workflow, WorkflowDefinition};
use logline_core::ErrorKind;
use logline_postgres::{PgConfig, PgStore};
use serde_json::json;

fn ev(kind: EventKind, i: u64) -> NewEvent {
    NewEvent::run(kind, json!({ "i": i }))
}

/// Commits one event per checkpoint, re-reading the run after a lost race.
async fn append(store: &PgStore, run_id: uuid::Uuid, i: u64) {
    loop {
        let run = store.get_run(run_id).await.unwrap();
        let events = [ev(EventKind::LlmCall, i)];
        match store
            .commit(Checkpoint {
                run: &run,
                step: None,
                events: events.to_vec(),
            })
            .await
        {
            Ok(_) => return,
            Err(e) if e.kind() == ErrorKind::Conflict => continue,
            Err(e) => panic!("commit: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_read_back_exactly() {
    let (store, _g) = support::guarded_store().await;
    let mut run = sample_run("t", "wf");
    run.started_at = Some(Utc::now());
    let first = [ev(EventKind::RunStarted, 1)];
    store.create_run(&run, &first).await.unwrap();
    let mut expected = run.clone();
    expected.version = 1;
    assert_eq!(
        store.get_run(run.id).await.unwrap(),
        expected,
        "nanosecond timestamps survive"
    );
    let events = store.events(run.id, 0, 10).await.unwrap();
    assert_eq!(events[0].ts, first[0].ts);
    assert_eq!(events[0].step_id, None);

    let wf = Workflow::new(
        "demo_ticket_triage_v1",
        "Demo",
        WorkflowDefinition::from_json(
            json!({"entry": "a", "nodes": [{"id": "a", "type": "static"}]}),
        )
        .unwrap(),
    );
    store.put_workflow(&wf).await.unwrap();
    assert_eq!(store.get_workflow(&wf.id, None).await.unwrap(), wf);

    let effect = EffectRecord {
        run_id: run.id,
        step_index: 0,
        seq: 0,
        kind: "tool".into(),
        key: "ticketing.list_open".into(),
        output: json!({"n": 1.5, "s": "ü"}),
        error: None,
        state: EffectState::Completed,
        recorded_at: Utc::now(),
    };
    assert_eq!(store.record_effect(&effect).await.unwrap(), effect);
    assert_eq!(store.effects(run.id, 0).await.unwrap(), vec![effect]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_runs_are_not_found_everywhere() {
    let (store, _g) = support::guarded_store().await;
    let id = uuid::Uuid::new_v4();
    assert_eq!(
        store.events(id, 0, 10).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.steps(id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.effects(id, 0).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let rec = EffectRecord {
        run_id: id,
        step_index: 0,
        seq: 0,
        kind: "llm".into(),
        key: "a".into(),
        output: json!(null),
        error: None,
        state: EffectState::Completed,
        recorded_at: Utc::now(),
    };
    assert_eq!(
        store.record_effect(&rec).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let err = store
        .wait_for_events(id, 0, Duration::from_millis(10))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let run = sample_run("t", "wf");
    let err = store
        .commit(Checkpoint {
            run: &run,
            step: None,
            events: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_keep_events_gap_free() {
    let (store, _g) = support::guarded_store().await;
    let run = sample_run("t", "wf");
    store
        .create_run(&run, &[ev(EventKind::RunStarted, 0)])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..6u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20u64 {
                append(&store, run.id, w * 100 + i).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let events = store.events(run.id, 0, 1000).await.unwrap();
    assert_eq!(events.len(), 121);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
    }
    let payloads: HashSet<i64> = events[1..]
        .iter()
        .map(|e| e.payload["i"].as_i64().unwrap())
        .collect();
    assert_eq!(payloads.len(), 120, "every committed event is stored once");
    assert_eq!(store.get_run(run.id).await.unwrap().version, 121);
}

/// A subscriber on one pool (its own LISTEN connection, as in another process) follows a
/// writer on another pool: every event once, in order, woken by NOTIFY rather than polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_in_another_process_sees_every_event_once() {
    let schema = support::unique_schema();
    let _g = support::SchemaGuard(schema.clone());
    let writer = support::fresh_store_in(&schema).await;
    // Polling every 30 s: finishing well before that proves notifications arrive.
    let reader = PgStore::connect(&support::config(&schema).poll_interval(Duration::from_secs(30)))
        .await
        .unwrap();
    let run = sample_run("t", "wf");
    writer
        .create_run(&run, &[ev(EventKind::RunStarted, 0)])
        .await
        .unwrap();
    const N: u64 = 150;
    let follower = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut after = 0;
        while seen.len() < (N + 1) as usize {
            reader
                .wait_for_events(run.id, after, Duration::from_secs(60))
                .await
                .unwrap();
            for e in reader.events(run.id, after, 1000).await.unwrap() {
                after = e.seq;
                seen.push(e.seq);
            }
        }
        seen
    });
    let w = writer.clone();
    let producer = tokio::spawn(async move {
        for i in 1..=N {
            append(&w, run.id, i).await;
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    producer.await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(20), follower)
        .await
        .expect("the follower must be woken by notifications, not the 30 s poll")
        .unwrap();
    assert_eq!(
        seen,
        (1..=N + 1).collect::<Vec<_>>(),
        "no gaps, no duplicates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_and_job_are_created_atomically() {
    let (pg, _g) = support::guarded_backend().await;
    let (store, queue) = (pg.store(), pg.queue());
    let run = sample_run("t", "wf");
    let job = NewJob::new("runs", json!({ "run_id": run.id })).idempotency_key(run.id.to_string());
    let (c, job_id) = pg
        .create_run_with_job(&run, &[ev(EventKind::RunStarted, 1)], job.clone())
        .await
        .unwrap();
    assert_eq!((c.version, c.last_seq), (1, 1));
    assert_eq!(queue.job(job_id).await.unwrap().state, JobState::Queued);

    // The run exists: the second attempt fails and must leave no job behind.
    let other = NewJob::new("runs-2", json!({ "run_id": run.id }));
    let err = pg.create_run_with_job(&run, &[], other).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let claimed = queue
        .claim("runs-2", "w", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        claimed.is_empty(),
        "the job of a failed run creation was rolled back"
    );

    // Caller-managed transaction: rolled back, neither exists.
    let run2 = sample_run("t", "wf");
    let mut tx = pg.begin().await.unwrap();
    store.create_run_in(&mut tx, &run2, &[]).await.unwrap();
    let id2 = queue
        .enqueue_in(&mut tx, NewJob::new("runs", json!({ "run_id": run2.id })))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        store.get_run(run2.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        queue.job(id2).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_keeps_a_document_per_run() {
    let (store, _g) = support::guarded_store().await;
    let mut run: Run = sample_run("t", "wf");
    store
        .create_run(&run, &[ev(EventKind::RunStarted, 1)])
        .await
        .unwrap();
    run.version = 1;
    run.status = RunStatus::Completed;
    let step = Step {
        id: step_id(run.id, 0),
        run_id: run.id,
        index: 0,
        node_id: "n0".into(),
        node_type: NodeType::Static,
        status: StepStatus::Completed,
        input: json!({}),
        output: Some(json!({"ok": true})),
        error: None,
        started_at: Utc::now(),
        finished_at: Some(Utc::now()),
    };
    store
        .commit(Checkpoint {
            run: &run,
            step: Some(step),
            events: vec![ev(EventKind::RunCompleted, 2)],
        })
        .await
        .unwrap();
    let live = sample_run("t", "wf");
    store.create_run(&live, &[]).await.unwrap();
    let cutoff = Utc::now() + chrono::Duration::seconds(5);
    assert_eq!(store.archive_runs(cutoff, 10).await.unwrap(), 1);
    assert_eq!(store.archive_runs(cutoff, 10).await.unwrap(), 0);
    assert_eq!(
        store.get_run(run.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(store.get_run(live.id).await.is_ok());
    let (events, steps): (serde_json::Value, serde_json::Value) =
        sqlx::query_as("SELECT events, steps FROM runs_archive WHERE id = $1")
            .bind(run.id)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(events.as_array().unwrap().len(), 2);
    assert_eq!(events[1]["kind"], "run_completed");
    assert_eq!(steps[0]["output"], json!({"ok": true}));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE run_id = $1")
        .bind(run.id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0, "the live tables no longer hold the run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_cache_sees_writes_at_once() {
    let (store, _g) = support::guarded_store().await;
    assert!(store.policies().await.unwrap().is_empty());
    let mut p = Policy {
        id: "deny-all".into(),
        name: "deny".into(),
        description: String::new(),
        scope: PolicyScope::Global,
        scope_id: None,
        actions: vec![],
        rule_expr: RuleExpr::default(),
        effect: Effect::Deny,
        modify: None,
        priority: 1,
        enabled: true,
    };
    store.put_policy(&p).await.unwrap();
    assert_eq!(*store.policies().await.unwrap(), vec![p.clone()]);
    p.enabled = false;
    store.put_policy(&p).await.unwrap();
    assert!(
        store.policies().await.unwrap().is_empty(),
        "disabled policies are not served"
    );
    assert_eq!(store.list_policies().await.unwrap(), vec![p]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent_and_concurrent_safe() {
    let schema = support::unique_schema();
    let _g = support::SchemaGuard(schema.clone());
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let schema = schema.clone();
        tasks.push(tokio::spawn(async move {
            let s = PgStore::connect(&support::config(&schema)).await.unwrap();
            s.migrate().await.unwrap();
            s.migrate().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let store = PgStore::connect(&support::config(&schema)).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(&schema)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert!(tables >= 15, "{tables} tables");
}

#[tokio::test]
async fn bad_settings_are_rejected_without_leaking_secrets() {
    let err = PgStore::connect(&PgConfig::new(support::database_url()).schema("Robert'); DROP"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = PgStore::connect(
        &PgConfig::new("postgres://u:topsecret@127.0.0.1:1/db")
            .acquire_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap_err();
    assert!(
        err.is_retryable(),
        "an unreachable server is retryable: {err}"
    );
    assert!(!err.to_string().contains("topsecret"));
    let shared: Arc<dyn logline_core::store::Store> = Arc::new(support::fresh_store().await);
    assert!(shared
        .list_workflows(Default::default())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_job_archives_runs_and_purges_jobs() {
    use logline_core::engine::{StartRun, WorkerOptions};
    use logline_core::retention::{RetentionJob, RetentionPolicy};
    use logline_core::run::Subject;
    use logline_postgres::ArchiveRuns;
    use tokio_util::sync::CancellationToken;

    let pg = support::fresh_backend_in(&support::unique_schema()).await;
    let store = pg.store();
    let engine = pg.engine_builder().build().await.unwrap();
    let definition: WorkflowDefinition = serde_json::from_value(json!({
        "entry": "a",
        "nodes": [ { "id": "a", "type": "static", "config": { "output": { "n": 1 } } } ],
        "edges": []
    }))
    .unwrap();
    engine
        .register_workflow(&Workflow::new("simple", "simple", definition))
        .await
        .unwrap();
    let workers = engine.spawn_workers(WorkerOptions::default());
    let mut runs = Vec::new();
    for _ in 0..3 {
        let req = StartRun::new("simple", json!({}), Subject::tenant("t"));
        runs.push(engine.run_to_completion(req).await.unwrap());
    }
    workers.shutdown().await;
    assert!(runs.iter().all(|r| r.status == RunStatus::Completed));
    tokio::time::sleep(Duration::from_millis(50)).await;

    let queue: Arc<dyn Queue> = Arc::new(pg.queue());
    let job = RetentionJob::new(
        Arc::new(store.clone()),
        queue,
        RetentionPolicy {
            runs: Some(Duration::ZERO),
            jobs: Some(Duration::ZERO),
            batch: 2,
            ..RetentionPolicy::default()
        },
    )
    .retiring_runs_with(Arc::new(ArchiveRuns(store.clone())));
    // The database clock decides "finished before"; give it a moment past the test's clock.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let report = job.run_once(&CancellationToken::new()).await.unwrap();
    assert_eq!((report.runs, report.jobs), (3, 3));
    for r in &runs {
        assert_eq!(
            store.get_run(r.id).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
    let (archived,): (i64,) = sqlx::query_as("SELECT count(*) FROM runs_archive")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(archived, 3);
    let (jobs,): (i64,) = sqlx::query_as("SELECT count(*) FROM jobs")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(jobs, 0);
}
