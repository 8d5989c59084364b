//! Queue checks under faults: crashed workers, panicking handlers, orphan lookups.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{job, Q};
use crate::queue::{spawn_worker, Job, JobHandler, JobId, JobRecord, JobState, Queue};
use crate::queue::{NewJob, WorkerOptions};
use crate::{Error, Result};

/// A handler that counts its calls and dead-letter hooks; panics when told to.
#[derive(Default)]
struct Counting {
    panics: bool,
    calls: AtomicUsize,
    dead_lettered: AtomicUsize,
}

#[async_trait]
impl JobHandler for Counting {
    async fn handle(&self, _job: &Job, _cancel: CancellationToken) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.panics {
            panic!("handler bug");
        }
        Ok(())
    }

    async fn dead_lettered(&self, _job: &Job, _error: &Error) -> Result<()> {
        self.dead_lettered.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn quick_worker() -> WorkerOptions {
    WorkerOptions {
        poll: Duration::from_millis(50),
        ..WorkerOptions::default()
    }
    .lease(Duration::from_secs(5))
}

/// Waits (up to 20 s) until the job is dead-lettered; returns its record.
async fn dead_lettered(queue: &dyn Queue, id: JobId) -> JobRecord {
    for _ in 0..400 {
        let rec = queue.job(id).await.expect("record");
        if rec.state == JobState::DeadLettered {
            return rec;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} was never dead-lettered");
}

/// A job whose lease expired `max_attempts` times (its workers crashed) is dead-lettered by
/// the next worker, which runs the dead-letter hook instead of the handler: it is not
/// reclaimed forever.
pub async fn exhausted_leases_are_dead_lettered(queue: Arc<dyn Queue>) {
    let id = queue
        .enqueue(job(1).max_attempts(2))
        .await
        .expect("enqueue");
    for attempt in 1..=2 {
        let crashed = queue
            .claim(Q, "crashing", 1, Duration::from_millis(200))
            .await
            .expect("claim");
        assert_eq!(crashed.len(), 1);
        assert_eq!(crashed[0].attempt, attempt);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let handler = Arc::new(Counting::default());
    let pool = spawn_worker(queue.clone(), Q, handler.clone(), quick_worker());
    let rec = dead_lettered(queue.as_ref(), id).await;
    pool.shutdown().await;
    assert_eq!(handler.calls.load(Ordering::SeqCst), 0, "not run again");
    assert_eq!(handler.dead_lettered.load(Ordering::SeqCst), 1, "hook ran");
    assert!(
        rec.last_error.as_deref().unwrap_or("").contains("lease"),
        "{rec:?}"
    );
    assert!(queue
        .claim(Q, "w", 10, Duration::from_secs(60))
        .await
        .expect("claim")
        .is_empty());
    let dead = queue.dead_letters(Q, 10).await.expect("dead letters");
    assert_eq!(dead.iter().map(|d| d.id).collect::<Vec<_>>(), vec![id]);
}

/// A handler that panics fails its job (dead-lettered with the panic, hook called) instead
/// of leaving it leased until the lease expires and a worker runs it again.
pub async fn panicking_handler_fails_the_job(queue: Arc<dyn Queue>) {
    let id = queue
        .enqueue(job(1).max_attempts(5))
        .await
        .expect("enqueue");
    let handler = Arc::new(Counting {
        panics: true,
        ..Counting::default()
    });
    let pool = spawn_worker(queue.clone(), Q, handler.clone(), quick_worker());
    let rec = dead_lettered(queue.as_ref(), id).await;
    pool.shutdown().await;
    assert_eq!(handler.calls.load(Ordering::SeqCst), 1, "not retried");
    assert_eq!(handler.dead_lettered.load(Ordering::SeqCst), 1);
    assert!(
        rec.last_error
            .as_deref()
            .unwrap_or("")
            .contains("handler bug"),
        "{rec:?}"
    );
}

/// `live_key_prefixes` names the prefixes that begin the key of a queued or running job,
/// and only those.
pub async fn live_key_prefixes_find_live_jobs(queue: Arc<dyn Queue>) {
    let keyed = |k: &str| job(1).idempotency_key(k);
    let lease = Duration::from_secs(60);
    // c completes, a is running, b stays queued, d lives on another queue.
    queue.enqueue(keyed("run:c:2")).await.expect("enqueue");
    let c = queue.claim(Q, "w", 1, lease).await.expect("claim");
    queue.complete(&c[0]).await.expect("complete");
    queue.enqueue(keyed("run:a:1")).await.expect("enqueue");
    queue.claim(Q, "w", 1, lease).await.expect("claim");
    queue.enqueue(keyed("run:b:7")).await.expect("enqueue");
    queue
        .enqueue(NewJob::new("other", serde_json::json!({})).idempotency_key("run:d:1"))
        .await
        .expect("enqueue");
    let prefixes: Vec<String> = ["run:a:", "run:b:", "run:c:", "run:d:", "run:e:", "run:"]
        .iter()
        .map(|p| p.to_string())
        .collect();
    let mut live = queue
        .live_key_prefixes(Q, &prefixes)
        .await
        .expect("live key prefixes");
    live.sort();
    assert_eq!(live, vec!["run:", "run:a:", "run:b:"]);
    assert!(queue
        .live_key_prefixes(Q, &[])
        .await
        .expect("empty")
        .is_empty());
}
