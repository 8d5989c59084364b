//! Group commit: many runs' writes in one transaction, each run still all-or-nothing, and a
//! crash inside a batch loses no acknowledged step and repeats no effect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use logline_core::conformance::store::sample_run;
use logline_core::event::{EventKind, NewEvent};
use logline_core::run::{step_id, Run, RunStatus, Step, StepStatus};
use logline_core::store::{Checkpoint, EffectRecord, EffectState, RunStore};
use logline_core::workflow::NodeType;
use logline_core::ErrorKind;
use logline_postgres::{GroupCommit, PgBackend, PgStore};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// A store in a fresh schema whose connections carry `app` as application name.
async fn store_with(settings: GroupCommit, app: &str) -> (PgStore, support::SchemaGuard) {
    let schema = support::unique_schema();
    support::sweep_stale_schemas().await;
    let config = support::config(&schema)
        .application_name(app)
        .group_commit(Some(settings));
    let backend = PgBackend::connect(&config).await.expect("connect");
    backend.migrate().await.expect("migrate");
    (backend.store(), support::SchemaGuard(schema))
}

fn step(run: &Run, index: u32, output: Value) -> Step {
    Step {
        id: step_id(run.id, index),
        run_id: run.id,
        index,
        node_id: format!("n{index}"),
        node_type: NodeType::ToolNode,
        status: StepStatus::Completed,
        input: json!({"in": index}),
        output: Some(output),
        error: None,
        started_at: Utc::now(),
        finished_at: Some(Utc::now()),
    }
}

fn checkpoint(run: &Run, index: u32) -> Checkpoint<'_> {
    Checkpoint {
        run,
        step: Some(step(run, index, json!({"out": index}))),
        events: vec![NewEvent::run(
            EventKind::StepCompleted,
            json!({"idx": index}),
        )],
    }
}

async fn running_runs(store: &PgStore, n: usize) -> Vec<Run> {
    let mut runs = Vec::new();
    for _ in 0..n {
        let mut run = sample_run("acme", "wf");
        run.version = store.create_run(&run, &[]).await.expect("create").version;
        run.status = RunStatus::Running;
        runs.push(run);
    }
    runs
}

/// One transaction holds many runs' checkpoints; a stale version fails only its own run,
/// and a write that breaks the transaction (an effect of a missing run) is answered alone
/// while the others still commit.
#[tokio::test]
async fn a_conflict_or_a_failing_write_in_a_batch_fails_only_its_own_run() {
    let settings = GroupCommit::default()
        .window(Duration::from_millis(200))
        .max_latency(Duration::from_secs(2))
        .writers(1);
    let (store, _guard) = store_with(settings, "logline_gc_batch").await;
    let mut runs = running_runs(&store, 8).await;
    runs[0].version = 7; // stale: built on a version the run never had
    let results = join_all(runs.iter().map(|r| store.commit(checkpoint(r, 0)))).await;
    assert_eq!(
        results[0].as_ref().expect_err("stale").kind(),
        ErrorKind::Conflict
    );
    for r in &results[1..] {
        assert_eq!(r.as_ref().expect("commit").version, 2);
    }
    let stats = store.group_commit_stats().expect("group commit is on");
    assert_eq!((stats.batches, stats.batched_writes), (1, 8), "{stats:?}");
    assert!(store.steps(runs[0].id).await.unwrap().is_empty());
    assert_eq!(store.events(runs[1].id, 0, 10).await.unwrap().len(), 1);

    // Second round: the committed runs go on, and an effect of a run that does not exist
    // (a foreign-key violation, which aborts a transaction) rides in the same batch.
    let live = &mut runs[1..];
    for r in live.iter_mut() {
        r.version = 2;
        r.cursor.step_index = 1;
    }
    let missing = EffectRecord::intent(Uuid::new_v4(), 0, 0, "tool", "mail.send");
    let mut done = missing.clone();
    done.state = EffectState::Completed;
    let (commits, orphan) = tokio::join!(
        join_all(live.iter().map(|r| store.commit(checkpoint(r, 1)))),
        store.record_effect(&done)
    );
    assert_eq!(orphan.expect_err("no such run").kind(), ErrorKind::NotFound);
    for c in commits {
        assert_eq!(c.expect("commit").version, 3);
    }
    let stats = store.group_commit_stats().unwrap();
    assert_eq!(stats.rolled_back, 1, "{stats:?}");
    for r in live.iter() {
        let seqs: Vec<u64> = store
            .events(r.id, 0, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![1, 2], "one run's writes land once, in order");
    }
}

/// Two executions of one run checkpoint in the same batch (a worker that lost its lease
/// beside the one that took over): exactly one wins, the other gets `Conflict`, and the runs
/// in the batch beside them commit.
#[tokio::test]
async fn two_checkpoints_of_one_run_in_a_batch_commit_once() {
    let settings = GroupCommit::default()
        .window(Duration::from_millis(200))
        .max_latency(Duration::from_secs(2))
        .writers(1);
    let (store, _guard) = store_with(settings, "logline_gc_twins").await;
    let runs = running_runs(&store, 3).await;
    let twin = runs[0].clone();
    let all = [&runs[0], &twin, &runs[1], &runs[2]];
    let results = join_all(all.iter().map(|r| store.commit(checkpoint(r, 0)))).await;
    let won = results[..2].iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    let lost = results[..2].iter().find_map(|r| r.as_ref().err()).unwrap();
    assert_eq!(lost.kind(), ErrorKind::Conflict);
    for r in &results[2..] {
        assert_eq!(r.as_ref().expect("commit").version, 2);
    }
    let stats = store.group_commit_stats().unwrap();
    assert_eq!((stats.batches, stats.batched_writes), (1, 4), "{stats:?}");
    assert_eq!(store.get_run(runs[0].id).await.unwrap().version, 2);
    assert_eq!(store.events(runs[0].id, 0, 10).await.unwrap().len(), 1);
    assert_eq!(store.steps(runs[0].id).await.unwrap().len(), 1);
}

/// A connection whose open transaction holds the row lock of `run` (in `schema`): writes of
/// the run block until it rolls back.
async fn lock_run_row(schema: &str, run: &Run) -> PgConnection {
    let mut conn = PgConnection::connect(&support::database_url())
        .await
        .unwrap();
    let lock = format!(
        "BEGIN; SELECT 1 FROM \"{schema}\".runs WHERE id = '{}' FOR UPDATE",
        run.id
    );
    sqlx::raw_sql(&lock).execute(&mut conn).await.unwrap();
    conn
}

/// A lone write whose caller gives up while it is in flight (here: blocked by a row lock)
/// hands its slot over: the writes queued behind it are committed as a batch all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_writer_that_gives_up_hands_its_slot_to_the_queued_writes() {
    let (store, guard) = store_with(GroupCommit::default().writers(1), "logline_gc_handover").await;
    let runs = running_runs(&store, 4).await;
    let mut blocker = lock_run_row(&guard.0, &runs[0]).await;

    let lone = {
        let (store, run) = (store.clone(), runs[0].clone());
        tokio::spawn(async move { store.commit(checkpoint(&run, 0)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let queued: Vec<_> = runs[1..]
        .iter()
        .map(|r| {
            let (store, run) = (store.clone(), r.clone());
            tokio::spawn(async move { store.commit(checkpoint(&run, 0)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        queued.iter().all(|t| !t.is_finished()),
        "queued behind the lone write"
    );
    lone.abort();
    for t in queued {
        let written = tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("the queued writes are executed after the hand-over")
            .unwrap();
        assert_eq!(written.expect("commit").version, 2);
    }
    let stats = store.group_commit_stats().unwrap();
    assert_eq!((stats.batches, stats.batched_writes), (1, 3), "{stats:?}");
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut blocker)
        .await
        .unwrap();
}

/// A runtime that shuts down while one of its tasks holds a slot (here a lone write blocked
/// by a row lock) passes the slot on: a write queued behind it from another runtime is
/// executed, and the store goes on working (a slot kept forever would stall every write).
#[test]
fn a_runtime_shut_down_mid_write_passes_its_slot_on() {
    let main = tokio::runtime::Runtime::new().unwrap();
    let settings = GroupCommit::default().writers(1);
    let (store, guard, runs, mut blocker) = main.block_on(async {
        let (store, guard) = store_with(settings, "logline_gc_runtime").await;
        let runs = running_runs(&store, 3).await;
        let blocker = lock_run_row(&guard.0, &runs[0]).await;
        (store, guard, runs, blocker)
    });
    // A write from another runtime takes the only slot and blocks ...
    let doomed = tokio::runtime::Runtime::new().unwrap();
    {
        let (store, run) = (store.clone(), runs[0].clone());
        doomed.spawn(async move { store.commit(checkpoint(&run, 0)).await });
    }
    doomed.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
    // ... a second queues behind it, then that runtime goes.
    let queued = {
        let (store, run) = (store.clone(), runs[1].clone());
        main.spawn(async move { store.commit(checkpoint(&run, 0)).await })
    };
    main.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
    assert!(!queued.is_finished(), "queued behind the blocked write");
    doomed.shutdown_background();

    main.block_on(async {
        let written = tokio::time::timeout(Duration::from_secs(10), queued)
            .await
            .expect("the queued write is executed after the shutdown")
            .unwrap()
            .expect("commit");
        assert_eq!(written.version, 2);
        let later = tokio::time::timeout(
            Duration::from_secs(10),
            store.commit(checkpoint(&runs[2], 0)),
        )
        .await
        .expect("a later write is executed")
        .expect("commit");
        assert_eq!(later.version, 2);
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut blocker)
            .await
            .unwrap();
    });
    drop(guard);
}

/// Retries a store read until it answers (connections are being terminated).
async fn reread<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = logline_core::Result<T>>,
{
    for _ in 0..500 {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    panic!("the store did not answer");
}

/// What the executions did, for the checks after the crash loop.
#[derive(Default)]
struct Ledger {
    /// Tool executions per (run, step).
    executions: HashMap<(Uuid, u32), u32>,
    /// Acknowledged checkpoints: (run, step, version, last event seq).
    acked: Vec<(Uuid, u32, i64, u64)>,
    /// Steps that found an intent without an outcome (not sent again).
    unknown: u32,
}

/// One run driven the way the engine drives it: reload, record the intent (fenced by the
/// version held), execute the tool only on a fresh intent, record its outcome (retried),
/// commit the step; any error means "reload and go on from what is committed".
async fn drive(store: PgStore, mut run: Run, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) {
    for _ in 0..400 {
        let idx = reread(|| store.steps(run.id)).await.len() as u32;
        if stop.load(Ordering::Relaxed) && idx >= 5 {
            return;
        }
        run = reread(|| store.get_run(run.id)).await;
        let intent = EffectRecord::intent(run.id, idx, 0, "tool", "mail.send");
        let output = match store.record_intent(&intent, run.version).await {
            Ok(None) => {
                *ledger
                    .lock()
                    .unwrap()
                    .executions
                    .entry((run.id, idx))
                    .or_default() += 1;
                let mut done = intent.clone();
                done.state = EffectState::Completed;
                done.output = json!({"sent": idx});
                reread(|| store.record_effect(&done)).await.output
            }
            Ok(Some(rec)) if rec.state == EffectState::Completed => rec.output,
            Ok(Some(_)) => {
                ledger.lock().unwrap().unknown += 1;
                json!("outcome unknown")
            }
            Err(e) => {
                assert!(e.is_retryable() || e.kind() == ErrorKind::Conflict, "{e}");
                continue;
            }
        };
        run.cursor.step_index = idx + 1;
        let cp = Checkpoint {
            run: &run,
            step: Some(step(&run, idx, output)),
            events: vec![NewEvent::run(EventKind::StepCompleted, json!({"idx": idx}))],
        };
        match store.commit(cp).await {
            Ok(c) => ledger
                .lock()
                .unwrap()
                .acked
                .push((run.id, idx, c.version, c.last_seq)),
            Err(e) => assert!(e.is_retryable() || e.kind() == ErrorKind::Conflict, "{e}"),
        }
    }
}

/// Terminates the store's connections that are inside a transaction, every few ms, until
/// `enough` batches were rolled back and one failed at COMMIT, or the time is up. Returns
/// how many connections it terminated.
async fn terminate_in_transaction(app: &str, store: &PgStore, enough: u64) -> i64 {
    let mut conn = PgConnection::connect(&support::database_url())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut terminated = 0;
    while Instant::now() < deadline {
        let stats = store.group_commit_stats().unwrap();
        if stats.rolled_back >= enough && stats.commit_failures > 0 {
            break;
        }
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = $1 AND xact_start IS NOT NULL
               AND pid <> pg_backend_pid()",
        )
        .bind(app)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        terminated += n;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    terminated
}

/// Connections terminated while batches are in flight (between statements and at COMMIT):
/// every acknowledged step is there afterwards, each run's steps and events are gap-free,
/// and no tool call ran twice (an intent whose outcome was lost is not sent again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_inside_a_batch_loses_no_acknowledged_step_and_repeats_no_effect() {
    let settings = GroupCommit::default()
        .window(Duration::from_millis(2))
        .max_latency(Duration::from_millis(10));
    crash_inside_batches(settings, "logline_gc_crash").await;
}

/// The same with the defaults: lone writes executed by their callers, batches by the tasks
/// that take over their slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_lone_writes_and_batches_loses_nothing_and_repeats_no_effect() {
    crash_inside_batches(GroupCommit::default(), "logline_gc_crash_lone").await;
}

async fn crash_inside_batches(settings: GroupCommit, app: &str) {
    let (store, _guard) = store_with(settings, app).await;
    let runs = running_runs(&store, 12).await;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = runs
        .iter()
        .map(|r| {
            tokio::spawn(drive(
                store.clone(),
                r.clone(),
                ledger.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let terminated = terminate_in_transaction(app, &store, 5).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("run task");
    }
    let stats = store.group_commit_stats().unwrap();
    assert!(terminated > 0, "no connection was terminated");
    assert!(stats.batches > 0, "no batch committed: {stats:?}");
    assert!(stats.rolled_back > 0, "no batch was hit: {stats:?}");

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let mut total_steps = 0;
    for run in &runs {
        let steps = store.steps(run.id).await.unwrap();
        let n = steps.len() as u32;
        total_steps += n;
        assert!(n >= 5, "run {} made {n} steps", run.id);
        let stored = store.get_run(run.id).await.unwrap();
        assert_eq!(stored.version, 1 + i64::from(n), "one commit per step");
        let events = store.events(run.id, 0, 10_000).await.unwrap();
        let idxs: Vec<Value> = events.iter().map(|e| e.payload["idx"].clone()).collect();
        let expected: Vec<Value> = (0..n).map(Value::from).collect();
        assert_eq!(idxs, expected, "events once each, gap-free, in step order");
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1);
        }
        for s in &steps {
            let ran = ledger
                .executions
                .get(&(run.id, s.index))
                .copied()
                .unwrap_or(0);
            assert!(
                ran <= 1,
                "step {} of {} ran its tool {ran} times",
                s.index,
                run.id
            );
            let effects = store.effects(run.id, s.index).await.unwrap();
            assert_eq!(effects.len(), 1);
            if effects[0].state == EffectState::Completed {
                assert_eq!(ran, 1, "a completed record comes from one execution");
                assert_eq!(s.output, Some(json!({"sent": s.index})));
            } else {
                assert_eq!(s.output, Some(json!("outcome unknown")));
            }
        }
    }
    for (run_id, idx, version, last_seq) in &ledger.acked {
        let steps = store.steps(*run_id).await.unwrap();
        assert!(
            steps.iter().any(|s| s.index == *idx),
            "acknowledged step lost"
        );
        assert_eq!(*version, i64::from(*idx) + 2);
        assert_eq!(*last_seq, u64::from(*idx) + 1);
    }
    println!(
        "{total_steps} steps in {} runs; {} acknowledged; {terminated} connections \
         terminated; {stats:?}; {} intents left without outcome (not re-sent)",
        runs.len(),
        ledger.acked.len(),
        ledger.unknown
    );
}
