//! PgQueue behaviour beyond the shared conformance suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use logline_core::queue::{Backoff, JobState, NewJob, Queue};
use logline_core::ErrorKind;
use logline_postgres::PgQueue;
use serde_json::json;

const Q: &str = "q";
const LONG: Duration = Duration::from_secs(60);

fn job(n: i64) -> NewJob {
    NewJob::new(Q, json!({ "n": n }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_enqueue_dedupes_keys_within_and_across_batches() {
    let (pg, _g) = support::guarded_backend().await;
    let queue = pg.queue();
    let live = queue.enqueue(job(0).idempotency_key("a")).await.unwrap();
    let ids = queue
        .enqueue_batch(vec![
            job(1).idempotency_key("a"),
            job(2).idempotency_key("b"),
            job(3).idempotency_key("b"),
            job(4),
            NewJob::new("other", json!({})).idempotency_key("a"),
        ])
        .await
        .unwrap();
    assert_eq!(ids[0], live, "a live job holds the key");
    assert_eq!(ids[1], ids[2], "the first job of a batch holds its key");
    assert_ne!(ids[1], ids[3]);
    assert_ne!(ids[4], live, "keys are per queue");
    let claimed = queue.claim(Q, "w", 100, LONG).await.unwrap();
    assert_eq!(claimed.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_batch_reports_lost_leases_and_completes_the_rest() {
    let (pg, _g) = support::guarded_backend().await;
    let queue = pg.queue();
    queue
        .enqueue_batch((0..3).map(job).collect())
        .await
        .unwrap();
    let short = queue
        .claim(Q, "w1", 1, Duration::from_millis(200))
        .await
        .unwrap();
    let long = queue.claim(Q, "w1", 2, LONG).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stolen = queue.claim(Q, "w2", 10, LONG).await.unwrap();
    assert_eq!(stolen.len(), 1);
    assert_eq!(stolen[0].last_error.as_deref(), Some("lease expired"));
    let mut mine = short.clone();
    mine.extend(long.clone());
    let err = queue.complete_batch(&mine).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    for j in &long {
        assert_eq!(queue.job(j.id).await.unwrap().state, JobState::Completed);
    }
    assert_eq!(
        queue.job(short[0].id).await.unwrap().state,
        JobState::Running
    );
    queue.complete(&stolen[0]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_leases_read_as_queued_and_fail_rejects_stale_claims() {
    let (pg, _g) = support::guarded_backend().await;
    let queue = pg.queue();
    let id = queue.enqueue(job(1)).await.unwrap();
    let j = queue
        .claim(Q, "w", 1, Duration::from_millis(100))
        .await
        .unwrap()
        .remove(0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rec = queue.job(id).await.unwrap();
    assert_eq!(
        (rec.state, rec.last_error.as_deref()),
        (JobState::Queued, Some("lease expired"))
    );
    let again = queue.claim(Q, "w2", 1, LONG).await.unwrap().remove(0);
    let err = queue
        .fail(&j, "late", true, Backoff::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(again.attempt, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_returns_a_job_without_spending_an_attempt() {
    let (pg, _g) = support::guarded_backend().await;
    let queue = pg.queue();
    let id = queue.enqueue(job(1)).await.unwrap();
    let j = queue.claim(Q, "w", 1, LONG).await.unwrap().remove(0);
    queue.release(&j).await.unwrap();
    assert_eq!(
        queue.release(&j).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    let rec = queue.job(id).await.unwrap();
    assert_eq!((rec.state, rec.attempts), (JobState::Queued, 0));
    let j2 = queue.claim(Q, "w", 1, LONG).await.unwrap().remove(0);
    assert_eq!(j2.attempt, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_retry_conflicts_when_the_key_is_taken_again() {
    let (pg, _g) = support::guarded_backend().await;
    let queue = pg.queue();
    let id = queue.enqueue(job(1).idempotency_key("k")).await.unwrap();
    let j = queue.claim(Q, "w", 1, LONG).await.unwrap().remove(0);
    queue
        .fail(&j, "fatal", false, Backoff::default())
        .await
        .unwrap();
    let newer = queue.enqueue(job(2).idempotency_key("k")).await.unwrap();
    assert_ne!(newer, id, "a dead letter frees its key");
    let err = queue.retry_dead_letter(id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        queue.retry_dead_letter(newer).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        queue.dead_letters(Q, 10).await.unwrap()[0]
            .last_error
            .as_deref(),
        Some("fatal")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_completed_drops_completed_jobs_in_batches() {
    let (pg, _g) = support::guarded_backend().await;
    let queue = pg.queue();
    queue
        .enqueue_batch((0..5).map(job).collect())
        .await
        .unwrap();
    let jobs = queue.claim(Q, "w", 4, LONG).await.unwrap();
    queue.complete_batch(&jobs).await.unwrap();
    let cutoff = Utc::now() + chrono::Duration::seconds(5);
    assert_eq!(queue.purge_completed(cutoff, 3).await.unwrap(), 3);
    assert_eq!(queue.purge_completed(cutoff, 3).await.unwrap(), 1);
    assert_eq!(queue.purge_completed(cutoff, 3).await.unwrap(), 0);
    assert_eq!(
        queue.claim(Q, "w", 10, LONG).await.unwrap().len(),
        1,
        "queued jobs stay"
    );
}

/// A worker on another pool (another process) is woken by NOTIFY, and a scheduled job
/// wakes its waiter when due even without any notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_in_another_process_wake_on_notify_and_on_schedule() {
    let schema = support::unique_schema();
    let _g = support::SchemaGuard(schema.clone());
    let producer = support::fresh_backend_in(&schema).await.queue();
    let consumer =
        PgQueue::connect(&support::config(&schema).poll_interval(Duration::from_secs(30)))
            .await
            .unwrap();
    let waiter = {
        let c = consumer.clone();
        tokio::spawn(async move { c.wait_for_work(Q, LONG).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    producer.enqueue(job(1)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woken by NOTIFY from the other pool")
        .unwrap()
        .unwrap();
    let j = consumer.claim(Q, "w", 1, LONG).await.unwrap().remove(0);
    consumer.complete(&j).await.unwrap();

    producer
        .enqueue(job(2).run_at(Utc::now() + chrono::Duration::milliseconds(1500)))
        .await
        .unwrap();
    // Let the enqueue's notification arrive, drain the permit it left, then wait for the
    // scheduled time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = consumer.wait_for_work(Q, Duration::from_millis(10)).await;
    tokio::time::timeout(Duration::from_secs(10), consumer.wait_for_work(Q, LONG))
        .await
        .expect("woken when the scheduled job is due, not after the 30 s poll")
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..20 {
        got = consumer.claim(Q, "w", 1, LONG).await.unwrap();
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_claimers_on_separate_pools_share_the_work() {
    let schema = support::unique_schema();
    let _g = support::SchemaGuard(schema.clone());
    let producer = support::fresh_backend_in(&schema).await.queue();
    let ids: HashSet<_> = producer
        .enqueue_batch((0..500).map(job).collect())
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let q = PgQueue::connect(&support::config(&schema)).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let jobs = q.claim(Q, &format!("w{w}"), 16, LONG).await.unwrap();
                if jobs.is_empty() {
                    return got;
                }
                q.complete_batch(&jobs).await.unwrap();
                got.extend(jobs.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), 500);
    assert_eq!(all.into_iter().collect::<HashSet<_>>(), ids);
}

/// With notifications off (or lost), a waiter still finds new work within its polling
/// interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_notifications_waiters_fall_back_to_polling() {
    let schema = support::unique_schema();
    let _g = support::SchemaGuard(schema.clone());
    support::fresh_store_in(&schema).await;
    let producer = PgQueue::connect(&support::config(&schema).notify(false))
        .await
        .unwrap();
    let consumer =
        PgQueue::connect(&support::config(&schema).poll_interval(Duration::from_millis(300)))
            .await
            .unwrap();
    let waiter = {
        let c = consumer.clone();
        tokio::spawn(async move {
            loop {
                let jobs = c.claim(Q, "w", 1, LONG).await.unwrap();
                if let Some(j) = jobs.into_iter().next() {
                    return j;
                }
                c.wait_for_work(Q, LONG).await.unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = producer.enqueue(job(1)).await.unwrap();
    let j = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("found by polling, not after the 60 s wait")
        .unwrap();
    assert_eq!(j.id, id);
}
