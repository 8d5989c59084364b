//! Group commit: the checkpoints and ledger writes of many runs in one transaction and one
//! WAL flush.
//!
//! Leaders and followers: at most [`GroupCommit::writers`] writes or batches are in flight.
//! A write that finds a free slot (and no window set) leads itself: it executes on its own
//! connection at once, in the caller's task, as without group commit. A write that finds
//! every slot taken queues; when a leader finishes, a task takes over its slot and executes
//! what queued meanwhile (and, with a [`GroupCommit::window`], what arrives shortly after) as
//! batches of at most [`GroupCommit::max_batch`], ordered by run id, until the queue is
//! empty. So a lone write pays nothing for group commit and the writes that wait behind a
//! flush share the next one. A slot is never lost: a caller that gives up mid-write hands it
//! to a batch task, and a batch task dropped with its runtime hands it to a queued caller.
//!
//! In a batch the checkpoints of distinct runs form one statement; a batch of nothing else
//! is that statement alone (its own transaction), any other runs inside `BEGIN … COMMIT`.
//! Each write is conflict-tolerant (a stale version changes nothing and reports so), so one
//! run's conflict never fails the others. A statement error (a missing run, a deadlock, a
//! lost connection before `COMMIT`) rolls the batch back — nothing of it was committed — and
//! each write is then executed on its own, so every run still gets its own answer. A caller
//! is answered only after the commit returned, that is after the flush; when the commit
//! itself fails (`COMMIT`, or the lone statement without an answer from the server) the
//! outcome is unknown and every caller of the batch gets the error (a later execution
//! resumes from whatever was committed, as after any lost connection).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgPool};
use sqlx::Connection;
use tokio::sync::{oneshot, Notify};
use tokio::time::{timeout_at, Instant};

use super::writes::{execute_checkpoints, CheckpointWrite, Write, Written};

/// Settings of group commit ([`crate::PgConfig::group_commit`]).
///
/// Defaults: no window (a batch holds what queued up while the previous writes were being
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
    /// How long a batch waits for a further write after the last one arrived, while it is
    /// not full and the latency cap allows (default zero: no waiting). With a window every
    /// write goes through a batch; none is executed alone at once.
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

    /// Lone writes or batches in flight at once, each on its own connection (default 2; at
    /// least 1): the writes that arrive while they are flushed form the next batch.
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
    reply: oneshot::Sender<Reply>,
}

/// What a queued write's caller is told.
enum Reply {
    /// The outcome of its write.
    Done(std::result::Result<Written, sqlx::Error>),
    /// The task that held a slot is gone (its runtime shut down) with writes still queued:
    /// start a batch task with this slot on your own runtime, then wait for the answer here.
    Lead(BatchSlot, oneshot::Receiver<Reply>),
}

/// Group commit of one store; cheap to share.
pub(crate) struct GroupWriter {
    shared: Arc<Shared>,
}

struct Shared {
    settings: GroupCommit,
    /// Connections for lone writes (the store's pool).
    pool: PgPool,
    /// Connections for batches (generic plans, so a batch statement is not planned anew).
    batch_pool: PgPool,
    state: Mutex<State>,
    /// Wakes a leader that waits out the window.
    arrived: Notify,
    counters: Counters,
}

#[derive(Default)]
struct State {
    /// Slots taken: lone writes and batch tasks in flight.
    leading: usize,
    queue: VecDeque<Request>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent at every unlock, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the next batch off the queue, or gives up the slot when it is empty.
    fn take(&self) -> Option<Vec<Request>> {
        let mut state = self.state();
        if state.queue.is_empty() {
            state.leading -= 1;
            return None;
        }
        let n = state.queue.len().min(self.settings.max_batch);
        Some(state.queue.drain(..n).collect())
    }

    /// Tops `batch` up with writes arriving within the window (each arrival opens a new
    /// window) until it is full or its first write reaches the latency cap.
    async fn wait_out_window(&self, batch: &mut Vec<Request>) {
        let s = &self.settings;
        if s.window.is_zero() {
            return;
        }
        let cap = batch[0].arrived + s.max_latency;
        while batch.len() < s.max_batch {
            let until = (Instant::now() + s.window).min(cap);
            let arrived = timeout_at(until, self.arrived.notified()).await.is_ok();
            let mut state = self.state();
            let n = state.queue.len().min(s.max_batch - batch.len());
            batch.extend(state.queue.drain(..n));
            if !arrived || Instant::now() >= cap {
                return;
            }
        }
    }

    /// Executes a batch and answers every request in it.
    async fn execute(&self, mut batch: Vec<Request>) {
        let c = &self.counters;
        if batch.len() == 1 {
            let r = batch.remove(0);
            Counters::add(&c.alone, 1);
            let _ = r
                .reply
                .send(Reply::Done(execute_alone(&self.pool, &r.write).await));
            return;
        }
        batch.sort_by_key(|r| r.write.run_id());
        match execute_together(&self.batch_pool, &batch).await {
            Together::Committed(results) => {
                Counters::add(&c.batches, 1);
                Counters::add(&c.batched_writes, batch.len());
                for (r, w) in batch.into_iter().zip(results) {
                    let _ = r.reply.send(Reply::Done(Ok(w)));
                }
            }
            Together::CommitFailed(e) => {
                Counters::add(&c.commit_failures, 1);
                let e = Arc::new(e);
                for r in batch {
                    let _ = r.reply.send(Reply::Done(Err(shared_error(&e))));
                }
            }
            Together::RolledBack => {
                Counters::add(&c.rolled_back, 1);
                Counters::add(&c.alone, batch.len());
                for r in batch {
                    let _ = r
                        .reply
                        .send(Reply::Done(execute_alone(&self.pool, &r.write).await));
                }
            }
        }
    }
}

/// Holds a slot: executes batches off the queue until it is empty.
async fn lead_batches(mut slot: BatchSlot) {
    let Some(shared) = slot.0.clone() else { return };
    while let Some(mut batch) = shared.take() {
        shared.wait_out_window(&mut batch).await;
        shared.execute(batch).await;
    }
    // `take` gave the slot up.
    slot.0 = None;
}

/// The slot of a batch task. Dropped before the queue is empty (its task's runtime shut
/// down), it passes to the first queued write whose caller still waits, which starts a batch
/// task on its own runtime; with no such caller the slot is given back.
struct BatchSlot(Option<Arc<Shared>>);

impl Drop for BatchSlot {
    fn drop(&mut self) {
        let Some(shared) = self.0.take() else { return };
        let mut state = shared.state();
        while let Some(mut r) = state.queue.pop_front() {
            let (reply, answer) = oneshot::channel();
            let waiting = std::mem::replace(&mut r.reply, reply);
            match waiting.send(Reply::Lead(BatchSlot(Some(shared.clone())), answer)) {
                Ok(()) => {
                    state.queue.push_front(r);
                    return;
                }
                // Its caller is gone, so is the slot offered to it (disarmed: still ours).
                Err(undelivered) => {
                    if let Reply::Lead(mut slot, _) = undelivered {
                        slot.0 = None;
                    }
                }
            }
        }
        state.leading -= 1;
    }
}

/// A lone write's slot; when the write is answered or its caller gives up, it goes to a
/// batch task if writes queued meanwhile, else back.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        let slot = BatchSlot(Some(self.0.clone()));
        if self.0.state().queue.is_empty() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            // A runtime that is shutting down drops the task, and with it the slot.
            drop(rt.spawn(lead_batches(slot)));
        }
    }
}

impl GroupWriter {
    /// Group commit over `pool` (lone writes) and `batch_pool` (batches).
    pub(crate) fn new(pool: PgPool, batch_pool: PgPool, settings: GroupCommit) -> Self {
        GroupWriter {
            shared: Arc::new(Shared {
                settings,
                pool,
                batch_pool,
                state: Mutex::new(State::default()),
                arrived: Notify::new(),
                counters: Counters::default(),
            }),
        }
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> GroupCommitStats {
        self.shared.counters.snapshot()
    }

    /// Executes `write`, alone when a slot is free, else in the next batch; returns once it
    /// is committed (or failed).
    pub(crate) async fn submit(&self, write: Write) -> std::result::Result<Written, sqlx::Error> {
        let shared = &self.shared;
        let (reply, mut answer) = oneshot::channel();
        let request = Request {
            write,
            arrived: Instant::now(),
            reply,
        };
        let (lone, lead) = {
            let mut state = shared.state();
            let free = state.leading < shared.settings.writers;
            if free {
                state.leading += 1;
            }
            if free && state.queue.is_empty() && shared.settings.window.is_zero() {
                (Some(request), false)
            } else {
                state.queue.push_back(request);
                (None, free)
            }
        };
        if let Some(request) = lone {
            let _slot = Slot(shared.clone());
            Counters::add(&shared.counters.alone, 1);
            return execute_alone(&shared.pool, &request.write).await;
        }
        if lead {
            tokio::spawn(lead_batches(BatchSlot(Some(shared.clone()))));
        }
        shared.arrived.notify_one();
        loop {
            match answer.await {
                Ok(Reply::Done(result)) => return result,
                Ok(Reply::Lead(slot, next)) => {
                    tokio::spawn(lead_batches(slot));
                    answer = next;
                }
                // Dropped with the write in hand (the runtime ended): it may or may not be
                // committed.
                Err(_) => {
                    return Err(sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "group commit stopped before answering; the write may or may not be \
                         committed",
                    )))
                }
            }
        }
    }
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
