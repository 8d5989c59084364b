//! Group commit: the checkpoints and ledger writes of many runs in one transaction and one
//! WAL flush.
//!
//! Writers ([`GroupCommit::writers`]) take turns gathering the writes that are queued (and,
//! with a [`GroupCommit::window`], those that arrive shortly after) into a batch of at most
//! [`GroupCommit::max_batch`], ordered by run id. A batch of one is executed on its own. In
//! a larger one the checkpoints of distinct runs form one statement; a batch of nothing
//! else is that statement alone (its own transaction), any other runs inside
//! `BEGIN … COMMIT`. Each write is conflict-tolerant (a stale version changes nothing and
//! reports so), so one run's conflict never fails the others. A statement error (a missing
//! run, a deadlock, a lost connection before `COMMIT`) rolls the batch back — nothing of it
//! was committed — and each write is then executed on its own, so every run still gets its
//! own answer. A caller is answered only after the commit returned, that is after the flush;
//! when the commit itself fails (`COMMIT`, or the lone statement without an answer from the
//! server) the outcome is unknown and every caller of the batch gets the error (a later
//! execution resumes from whatever was committed, as after any lost connection).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgPool};
use sqlx::Connection;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::time::{timeout_at, Instant};

use super::writes::{execute_checkpoints, CheckpointWrite, Write, Written};

/// Settings of group commit ([`crate::PgConfig::group_commit`]).
///
/// Defaults: no window (a batch holds what queued up while the previous one was being
/// flushed, so a lone write goes at once), batches of at most 64 writes, 2 ms latency cap, 2
/// writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    window: Duration,
    max_batch: usize,
    max_latency: Duration,
    writers: usize,
}

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit {
            window: Duration::ZERO,
            max_batch: 64,
            max_latency: Duration::from_millis(2),
            writers: 2,
        }
    }
}

impl GroupCommit {
    /// How long a writer waits for a further write after the last one arrived, while the
    /// batch is not full and the latency cap allows (default zero: no waiting).
    pub fn window(mut self, d: Duration) -> Self {
        self.window = d;
        self
    }

    /// Most writes in one transaction (default 64; at least 1).
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }

    /// Longest a write waits in the queue for its batch to close, counted from its arrival
    /// (default 2 ms); bounds what the window adds to a step's latency.
    pub fn max_latency(mut self, d: Duration) -> Self {
        self.max_latency = d;
        self
    }

    /// Batches in flight at once, each on its own pooled connection (default 2; at least
    /// 1): while one is flushed the next gathers.
    pub fn writers(mut self, n: usize) -> Self {
        self.writers = n.max(1);
        self
    }

    /// The window.
    pub fn window_of(&self) -> Duration {
        self.window
    }

    /// The batch size.
    pub fn max_batch_of(&self) -> usize {
        self.max_batch
    }

    /// The latency cap.
    pub fn max_latency_of(&self) -> Duration {
        self.max_latency
    }

    /// The number of writers.
    pub fn writers_of(&self) -> usize {
        self.writers
    }
}

/// What group commit did so far ([`crate::PgStore::group_commit_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupCommitStats {
    /// Writes executed on their own (a batch of one, or after a rollback).
    pub alone: u64,
    /// Transactions of two or more writes that committed.
    pub batches: u64,
    /// Writes in those transactions.
    pub batched_writes: u64,
    /// Transactions rolled back by a failing statement (their writes then went alone).
    pub rolled_back: u64,
    /// Transactions whose commit failed with the outcome unknown (their callers got the
    /// error).
    pub commit_failures: u64,
}

#[derive(Default)]
struct Counters {
    alone: AtomicU64,
    batches: AtomicU64,
    batched_writes: AtomicU64,
    rolled_back: AtomicU64,
    commit_failures: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> GroupCommitStats {
        GroupCommitStats {
            alone: self.alone.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            batched_writes: self.batched_writes.load(Ordering::Relaxed),
            rolled_back: self.rolled_back.load(Ordering::Relaxed),
            commit_failures: self.commit_failures.load(Ordering::Relaxed),
        }
    }
}

/// A queued write and where its answer goes.
struct Request {
    write: Write,
    arrived: Instant,
    reply: oneshot::Sender<std::result::Result<Written, sqlx::Error>>,
}

/// The queue in front of the writers; dropping it (with the store) stops them.
pub(crate) struct GroupWriter {
    queue: mpsc::Sender<Request>,
    counters: Arc<Counters>,
}

impl GroupWriter {
    /// Starts the writers on the current tokio runtime.
    pub(crate) fn spawn(pool: PgPool, settings: GroupCommit) -> Self {
        let (queue, rx) = mpsc::channel(settings.max_batch * settings.writers * 4);
        let rx = Arc::new(Mutex::new(rx));
        let counters = Arc::new(Counters::default());
        for _ in 0..settings.writers {
            let writer = Writer {
                pool: pool.clone(),
                counters: counters.clone(),
            };
            tokio::spawn(writer.run(rx.clone(), settings));
        }
        GroupWriter { queue, counters }
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> GroupCommitStats {
        self.counters.snapshot()
    }

    /// Queues `write` and waits until its batch is committed. `Ok(Err(write))` hands the
    /// write back when the writers are gone (the runtime that ran them ended), so the caller
    /// executes it itself.
    pub(crate) async fn submit(
        &self,
        write: Write,
    ) -> std::result::Result<std::result::Result<Written, sqlx::Error>, Write> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            write,
            arrived: Instant::now(),
            reply,
        };
        if let Err(refused) = self.queue.send(request).await {
            return Err(refused.0.write);
        }
        Ok(match answer.await {
            Ok(result) => result,
            // The writer was dropped with the write in hand: it may or may not be committed.
            Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "group commit stopped before answering; the write may or may not be committed",
            ))),
        })
    }
}

/// One writer: gathers a batch, executes it, answers, repeats until the queue closes.
struct Writer {
    pool: PgPool,
    counters: Arc<Counters>,
}

impl Writer {
    async fn run(self, queue: Arc<Mutex<mpsc::Receiver<Request>>>, settings: GroupCommit) {
        loop {
            let batch = {
                let mut rx = queue.lock().await;
                match gather(&mut rx, &settings).await {
                    Some(batch) => batch,
                    None => return,
                }
            };
            self.execute(batch).await;
        }
    }

    /// Executes a batch and answers every request in it.
    async fn execute(&self, mut batch: Vec<Request>) {
        let c = &self.counters;
        if batch.len() == 1 {
            let r = batch.remove(0);
            Counters::add(&c.alone, 1);
            let _ = r.reply.send(execute_alone(&self.pool, &r.write).await);
            return;
        }
        batch.sort_by_key(|r| r.write.run_id());
        match execute_together(&self.pool, &batch).await {
            Together::Committed(results) => {
                Counters::add(&c.batches, 1);
                Counters::add(&c.batched_writes, batch.len());
                for (r, w) in batch.into_iter().zip(results) {
                    let _ = r.reply.send(Ok(w));
                }
            }
            Together::CommitFailed(e) => {
                Counters::add(&c.commit_failures, 1);
                let e = Arc::new(e);
                for r in batch {
                    let _ = r.reply.send(Err(shared_error(&e)));
                }
            }
            Together::RolledBack => {
                Counters::add(&c.rolled_back, 1);
                Counters::add(&c.alone, batch.len());
                for r in batch {
                    let _ = r.reply.send(execute_alone(&self.pool, &r.write).await);
                }
            }
        }
    }
}

/// The next batch: the first write, what is already queued, then what arrives within the
/// window (each arrival opens a new window), until the batch is full or the first write
/// reaches the latency cap. `None` when the queue is closed and empty.
async fn gather(rx: &mut mpsc::Receiver<Request>, s: &GroupCommit) -> Option<Vec<Request>> {
    let first = rx.recv().await?;
    let cap = first.arrived + s.max_latency;
    let mut batch = vec![first];
    loop {
        while batch.len() < s.max_batch {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        if batch.len() >= s.max_batch || s.window.is_zero() {
            break;
        }
        let until = (Instant::now() + s.window).min(cap);
        match timeout_at(until, rx.recv()).await {
            Ok(Some(r)) => batch.push(r),
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
}

enum Together {
    /// Every write applied (or reported that it could not) and the transaction committed.
    Committed(Vec<Written>),
    /// `COMMIT` failed: whether the batch is durable is unknown.
    CommitFailed(sqlx::Error),
    /// A statement failed before `COMMIT`: nothing of the batch was committed.
    RolledBack,
}

async fn execute_alone(pool: &PgPool, write: &Write) -> std::result::Result<Written, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    write.execute(&mut conn).await
}

/// A batch as statements: the checkpoints of distinct runs share one statement (a run with
/// two checkpoints in the batch puts its second in the next such statement), every other
/// write is a statement of its own.
fn plan(batch: &[Request]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut others = Vec::new();
    let mut previous_run = None;
    let mut round = 0;
    for (i, r) in batch.iter().enumerate() {
        let Write::Checkpoint(c) = &r.write else {
            others.push(vec![i]);
            continue;
        };
        round = if previous_run == Some(c.run_id()) {
            round + 1
        } else {
            0
        };
        previous_run = Some(c.run_id());
        if rounds.len() == round {
            rounds.push(Vec::new());
        }
        rounds[round].push(i);
    }
    rounds.extend(others);
    rounds
}

/// Executes one statement of the plan, putting each answer at its write's position.
async fn execute_statement(
    conn: &mut PgConnection,
    batch: &[Request],
    statement: &[usize],
    results: &mut [Option<Written>],
) -> std::result::Result<(), sqlx::Error> {
    if let [i] = statement {
        results[*i] = Some(batch[*i].write.execute(conn).await?);
        return Ok(());
    }
    let checkpoints: Vec<&CheckpointWrite> = statement
        .iter()
        .filter_map(|&i| match &batch[i].write {
            Write::Checkpoint(c) => Some(&**c),
            _ => None,
        })
        .collect();
    let written = execute_checkpoints(conn, &checkpoints).await?;
    for (&i, w) in statement.iter().zip(written) {
        results[i] = Some(w);
    }
    Ok(())
}

async fn execute_together(pool: &PgPool, batch: &[Request]) -> Together {
    let statements = plan(batch);
    let Ok(mut conn) = pool.acquire().await else {
        return Together::RolledBack;
    };
    let mut results = vec![None; batch.len()];
    if let [only] = statements.as_slice() {
        // One statement is its own transaction: an error the server reports means nothing
        // of it was committed; any other (a lost connection) leaves the outcome unknown.
        return match execute_statement(&mut conn, batch, only, &mut results).await {
            Ok(()) => Together::Committed(results.into_iter().flatten().collect()),
            Err(e @ sqlx::Error::Database(_)) => {
                tracing::debug!(error = %e, "group commit batch rolled back");
                Together::RolledBack
            }
            Err(e) => Together::CommitFailed(e),
        };
    }
    let Ok(mut tx) = conn.begin().await else {
        return Together::RolledBack;
    };
    for statement in &statements {
        if let Err(e) = execute_statement(&mut tx, batch, statement, &mut results).await {
            tracing::debug!(error = %e, "group commit batch rolled back");
            // Dropping the transaction rolls it back (or the connection is gone).
            drop(tx);
            return Together::RolledBack;
        }
    }
    match tx.commit().await {
        Ok(()) => Together::Committed(results.into_iter().flatten().collect()),
        Err(e) => Together::CommitFailed(e),
    }
}

/// The same failure for every caller of a batch (`sqlx::Error` is not `Clone`).
fn shared_error(e: &Arc<sqlx::Error>) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        format!("group commit failed at COMMIT, outcome unknown: {e}"),
    ))
}
