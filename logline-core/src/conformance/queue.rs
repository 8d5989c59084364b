//! Queue checks.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use crate::queue::{Backoff, FailOutcome, JobState, NewJob, Queue};
use crate::ErrorKind;

mod faults;
pub use faults::{
    exhausted_leases_are_dead_lettered, live_key_prefixes_find_live_jobs,
    panicking_handler_fails_the_job,
};

const Q: &str = "conformance";
const LONG: Duration = Duration::from_secs(60);

/// What a queue backend supports beyond the required contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCapabilities {
    /// `purge_completed` deletes old completed jobs (retention).
    pub purge_completed: bool,
    /// `withdraw` removes queued jobs (without it, it keeps every job).
    pub withdraw: bool,
}

impl QueueCapabilities {
    /// Everything: every check runs.
    pub fn all() -> Self {
        QueueCapabilities {
            purge_completed: true,
            withdraw: true,
        }
    }
}

fn job(n: i64) -> NewJob {
    NewJob::new(Q, json!({ "n": n }))
}

fn quick_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_millis(100))
}

/// `stats` counts queued jobs (scheduled ones too) and dates the oldest due one; claimed
/// jobs and other queues are not counted.
pub async fn stats_count_queued_jobs(queue: Arc<dyn Queue>) {
    let empty = queue.stats(Q).await.expect("stats");
    assert_eq!((empty.queued, empty.oldest_due_at), (0, None));
    let before = Utc::now() - chrono::Duration::seconds(1);
    queue.enqueue(job(1)).await.expect("enqueue");
    queue.enqueue(job(2)).await.expect("enqueue");
    let later = Utc::now() + chrono::Duration::hours(1);
    queue.enqueue(job(3).run_at(later)).await.expect("enqueue");
    let stats = queue.stats(Q).await.expect("stats");
    assert_eq!(stats.queued, 3);
    let oldest = stats.oldest_due_at.expect("a due job");
    assert!(oldest >= before && oldest <= Utc::now(), "{oldest}");
    let claimed = queue.claim(Q, "w1", 10, LONG).await.expect("claim");
    assert_eq!(claimed.len(), 2, "the scheduled job waits");
    let stats = queue.stats(Q).await.expect("stats");
    assert_eq!((stats.queued, stats.oldest_due_at), (1, None));
    assert_eq!(queue.stats("other-queue").await.expect("stats").queued, 0);
}

/// Claim, complete, nothing left.
pub async fn enqueue_claim_complete(queue: Arc<dyn Queue>) {
    let id = queue.enqueue(job(1)).await.expect("enqueue");
    assert_eq!(queue.job(id).await.expect("record").state, JobState::Queued);
    let jobs = queue.claim(Q, "w1", 10, LONG).await.expect("claim");
    assert_eq!(jobs.len(), 1);
    let j = &jobs[0];
    assert_eq!(
        (j.id, j.attempt, j.payload.clone()),
        (id, 1, json!({"n": 1}))
    );
    assert!(j.lease_until > Utc::now());
    assert_eq!(
        queue.job(id).await.expect("record").state,
        JobState::Running
    );
    assert!(
        queue
            .claim(Q, "w2", 10, LONG)
            .await
            .expect("claim")
            .is_empty(),
        "a leased job is not claimable"
    );
    queue.complete(j).await.expect("complete");
    assert_eq!(
        queue.job(id).await.expect("record").state,
        JobState::Completed
    );
    assert_eq!(
        queue.complete(j).await.expect_err("twice").kind(),
        ErrorKind::Conflict
    );
    assert!(queue
        .claim(Q, "w1", 10, LONG)
        .await
        .expect("claim")
        .is_empty());
    assert!(queue
        .claim("other-queue", "w1", 10, LONG)
        .await
        .expect("claim")
        .is_empty());
}

/// The same key while the job is live gives the same job; after it finishes, a new one.
pub async fn idempotency_key_dedupes_live_jobs(queue: Arc<dyn Queue>) {
    let a = queue
        .enqueue(job(1).idempotency_key("k"))
        .await
        .expect("enqueue");
    let b = queue
        .enqueue(job(2).idempotency_key("k"))
        .await
        .expect("enqueue");
    assert_eq!(a, b);
    let jobs = queue.claim(Q, "w", 10, LONG).await.expect("claim");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].payload, json!({"n": 1}));
    let c = queue
        .enqueue(job(3).idempotency_key("k"))
        .await
        .expect("enqueue while running");
    assert_eq!(c, a, "a running job is live too");
    queue.complete(&jobs[0]).await.expect("complete");
    let d = queue
        .enqueue(job(4).idempotency_key("k"))
        .await
        .expect("enqueue after completion");
    assert_ne!(d, a);
    let other = queue
        .enqueue(job(5).idempotency_key("k2"))
        .await
        .expect("enqueue");
    assert_ne!(other, d);
}

/// `withdraw` removes a job no worker has claimed, by its key, and nothing else: not a
/// claimed job, not another key's, not twice; the key is free again afterwards.
pub async fn withdraw_removes_only_unclaimed_jobs(queue: Arc<dyn Queue>) {
    let later = Utc::now() + chrono::Duration::hours(1);
    let queued = queue
        .enqueue(job(1).idempotency_key("a"))
        .await
        .expect("enqueue");
    queue
        .enqueue(job(2).idempotency_key("b").run_at(later))
        .await
        .expect("enqueue");
    queue
        .enqueue(job(3).idempotency_key("c"))
        .await
        .expect("enqueue");
    assert!(
        queue.withdraw(Q, "b").await.expect("withdraw"),
        "a scheduled job"
    );
    assert!(queue.withdraw(Q, "a").await.expect("withdraw"));
    assert!(!queue.withdraw(Q, "a").await.expect("withdraw again"));
    assert!(!queue.withdraw(Q, "none").await.expect("withdraw unknown"));
    assert!(!queue
        .withdraw("other", "c")
        .await
        .expect("withdraw in another queue"));
    assert_eq!(queue.stats(Q).await.expect("stats").queued, 1);
    let claimed = queue.claim(Q, "w", 10, LONG).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].payload, json!({"n": 3}));
    assert!(
        !queue.withdraw(Q, "c").await.expect("withdraw claimed"),
        "a claimed job stays with its worker"
    );
    queue.complete(&claimed[0]).await.expect("complete");
    assert!(!queue.withdraw(Q, "c").await.expect("withdraw completed"));
    let again = queue
        .enqueue(job(4).idempotency_key("a"))
        .await
        .expect("enqueue");
    assert_ne!(again, queued, "the key is free after a withdrawal");
    let claimed = queue.claim(Q, "w", 10, LONG).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].payload, json!({"n": 4}));
}

/// Higher priority first, then the earlier `run_at`.
pub async fn priority_then_run_at(queue: Arc<dyn Queue>) {
    let now = Utc::now();
    let low = queue
        .enqueue(
            job(1)
                .priority(0)
                .run_at(now - chrono::Duration::seconds(10)),
        )
        .await
        .expect("enqueue");
    let high_late = queue
        .enqueue(
            job(2)
                .priority(5)
                .run_at(now - chrono::Duration::seconds(1)),
        )
        .await
        .expect("enqueue");
    let high_early = queue
        .enqueue(
            job(3)
                .priority(5)
                .run_at(now - chrono::Duration::seconds(5)),
        )
        .await
        .expect("enqueue");
    let order: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let j = queue.claim(Q, "w", 1, LONG).await.expect("claim");
            v.push(j[0].id);
        }
        v
    };
    assert_eq!(order, vec![high_early, high_late, low]);
}

/// A job scheduled in the future is not claimable before its time.
pub async fn scheduled_jobs_wait(queue: Arc<dyn Queue>) {
    let later = Utc::now() + chrono::Duration::milliseconds(1500);
    let id = queue.enqueue(job(1).run_at(later)).await.expect("enqueue");
    assert!(queue
        .claim(Q, "w", 10, LONG)
        .await
        .expect("claim")
        .is_empty());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let jobs = queue.claim(Q, "w", 10, LONG).await.expect("claim");
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
}

/// An expired lease makes the job claimable again with a new token; the old holder is out.
pub async fn expired_lease_is_reclaimed(queue: Arc<dyn Queue>) {
    let id = queue.enqueue(job(1)).await.expect("enqueue");
    let first = queue
        .claim(Q, "w1", 1, Duration::from_millis(300))
        .await
        .expect("claim")
        .remove(0);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let second = queue.claim(Q, "w2", 1, LONG).await.expect("claim");
    assert_eq!(second.len(), 1, "the expired job is reclaimed");
    let second = &second[0];
    assert_eq!((second.id, second.attempt), (id, 2));
    assert_ne!(second.lease_token, first.lease_token);
    assert_eq!(
        queue
            .heartbeat(&first, LONG)
            .await
            .expect_err("stale heartbeat")
            .kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        queue
            .complete(&first)
            .await
            .expect_err("stale complete")
            .kind(),
        ErrorKind::Conflict
    );
    queue.complete(second).await.expect("owner completes");
}

/// Heartbeats extend the lease so nobody else can claim the job.
pub async fn heartbeat_keeps_the_lease(queue: Arc<dyn Queue>) {
    queue.enqueue(job(1)).await.expect("enqueue");
    let j = queue
        .claim(Q, "w1", 1, Duration::from_millis(1200))
        .await
        .expect("claim")
        .remove(0);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let until = queue
            .heartbeat(&j, Duration::from_millis(1200))
            .await
            .expect("heartbeat");
        assert!(until > Utc::now());
    }
    assert!(queue
        .claim(Q, "w2", 1, LONG)
        .await
        .expect("claim")
        .is_empty());
    queue.complete(&j).await.expect("complete");
}

/// Retryable failures come back after a backoff until attempts run out, then dead-letter
/// with the last error; a dead letter can be retried.
pub async fn failures_back_off_then_dead_letter(queue: Arc<dyn Queue>) {
    let id = queue
        .enqueue(job(1).max_attempts(2))
        .await
        .expect("enqueue");
    let j = queue.claim(Q, "w", 1, LONG).await.expect("claim").remove(0);
    let out = queue
        .fail(&j, "boom 1", true, quick_backoff())
        .await
        .expect("fail");
    let FailOutcome::Retrying { at } = out else {
        panic!("expected a retry, got {out:?}")
    };
    assert!(at > Utc::now() - chrono::Duration::seconds(1));
    assert_eq!(
        queue.job(id).await.expect("record").last_error.as_deref(),
        Some("boom 1")
    );
    let mut again = Vec::new();
    for _ in 0..50 {
        again = queue.claim(Q, "w", 1, LONG).await.expect("claim");
        if !again.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let j2 = again
        .pop()
        .expect("retried job is claimable after its backoff");
    assert_eq!(j2.attempt, 2);
    assert_eq!(j2.last_error.as_deref(), Some("boom 1"));
    assert_eq!(
        queue
            .fail(&j2, "boom 2", true, quick_backoff())
            .await
            .expect("fail"),
        FailOutcome::DeadLettered
    );
    let dead = queue.dead_letters(Q, 10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].id, dead[0].state, dead[0].last_error.as_deref()),
        (id, JobState::DeadLettered, Some("boom 2"))
    );
    assert!(queue
        .claim(Q, "w", 1, LONG)
        .await
        .expect("claim")
        .is_empty());
    queue
        .retry_dead_letter(id)
        .await
        .expect("retry dead letter");
    let j3 = queue.claim(Q, "w", 1, LONG).await.expect("claim");
    assert_eq!(j3.len(), 1);
    assert!(queue
        .dead_letters(Q, 10)
        .await
        .expect("dead letters")
        .is_empty());
}

/// A non-retryable failure dead-letters at once.
pub async fn non_retryable_failure_dead_letters(queue: Arc<dyn Queue>) {
    let id = queue
        .enqueue(job(1).max_attempts(5))
        .await
        .expect("enqueue");
    let j = queue.claim(Q, "w", 1, LONG).await.expect("claim").remove(0);
    assert_eq!(
        queue
            .fail(&j, "bad input", false, quick_backoff())
            .await
            .expect("fail"),
        FailOutcome::DeadLettered
    );
    let rec = queue.job(id).await.expect("record");
    assert_eq!((rec.state, rec.attempts), (JobState::DeadLettered, 1));
    assert_eq!(
        queue
            .retry_dead_letter(uuid::Uuid::new_v4())
            .await
            .expect_err("unknown")
            .kind(),
        ErrorKind::NotFound
    );
}

/// Batches enqueue in order and claims honour `max`.
pub async fn batch_enqueue_and_claim(queue: Arc<dyn Queue>) {
    let ids = queue
        .enqueue_batch((0..25).map(job).collect())
        .await
        .expect("batch");
    assert_eq!(ids.len(), 25);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 25);
    let first = queue.claim(Q, "w", 10, LONG).await.expect("claim");
    assert_eq!(first.len(), 10);
    assert_eq!(
        first.iter().map(|j| j.id).collect::<Vec<_>>(),
        ids[..10].to_vec(),
        "FIFO at equal priority"
    );
    queue.complete_batch(&first).await.expect("complete batch");
    let rest = queue.claim(Q, "w", 100, LONG).await.expect("claim");
    assert_eq!(rest.len(), 15);
}

/// A worker waiting for work wakes when a job arrives.
pub async fn wait_for_work_wakes_on_enqueue(queue: Arc<dyn Queue>) {
    let waiter = {
        let q = queue.clone();
        tokio::spawn(async move { q.wait_for_work(Q, LONG).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    queue.enqueue(job(1)).await.expect("enqueue");
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("wait_for_work must wake on enqueue, not sleep until its timeout")
        .expect("join")
        .expect("wait");
}

/// Concurrent claimers never receive the same job.
pub async fn concurrent_claims_are_exclusive(queue: Arc<dyn Queue>) {
    queue
        .enqueue_batch((0..200).map(job).collect())
        .await
        .expect("batch");
    let mut tasks = Vec::new();
    for w in 0..4 {
        let q = queue.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let jobs = q.claim(Q, &format!("w{w}"), 7, LONG).await.expect("claim");
                if jobs.is_empty() {
                    return got;
                }
                q.complete_batch(&jobs).await.expect("complete");
                got.extend(jobs.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("join"));
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 200);
    assert_eq!(unique.len(), 200);
}

/// `purge_completed` deletes old completed jobs in batches, oldest first, and nothing else:
/// queued, running and dead-lettered jobs stay.
pub async fn purge_drops_only_old_completed_jobs(queue: Arc<dyn Queue>) {
    let done: Vec<_> = queue
        .enqueue_batch((0..5).map(job).collect())
        .await
        .expect("enqueue");
    for j in queue.claim(Q, "w", 5, LONG).await.expect("claim") {
        queue.complete(&j).await.expect("complete");
    }
    let dead = queue
        .enqueue(job(10).max_attempts(1))
        .await
        .expect("enqueue");
    let j = queue.claim(Q, "w", 1, LONG).await.expect("claim").remove(0);
    queue
        .fail(&j, "bad", false, quick_backoff())
        .await
        .expect("fail");
    let running = queue.enqueue(job(11)).await.expect("enqueue");
    let leased = queue.claim(Q, "w", 1, LONG).await.expect("claim").remove(0);
    let queued = queue.enqueue(job(12)).await.expect("enqueue");

    let past = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(queue.purge_completed(past, 10).await.expect("purge"), 0);
    // The cutoff leaves room for clock skew between the test and a database server.
    let cutoff = Utc::now() + chrono::Duration::seconds(5);
    assert_eq!(queue.purge_completed(cutoff, 2).await.expect("purge"), 2);
    assert_eq!(queue.purge_completed(cutoff, 2).await.expect("purge"), 2);
    assert_eq!(queue.purge_completed(cutoff, 2).await.expect("purge"), 1);
    assert_eq!(queue.purge_completed(cutoff, 2).await.expect("purge"), 0);
    for id in done {
        assert_eq!(
            queue.job(id).await.expect_err("purged").kind(),
            ErrorKind::NotFound
        );
    }
    let state = |id| {
        let queue = queue.clone();
        async move { queue.job(id).await.expect("kept").state }
    };
    assert_eq!(state(dead).await, JobState::DeadLettered);
    assert_eq!(state(running).await, JobState::Running);
    assert_eq!(state(queued).await, JobState::Queued);
    assert_eq!(leased.id, running);
    queue.complete(&leased).await.expect("lease still held");
}
