//! Cross-process wake-ups: coalesced `NOTIFY` from writers, one `LISTEN` connection per
//! process, and in-process waiters for run events and queue work.
//!
//! Notifications are hints. A writer commits first and notifies afterwards (batched by a
//! background task), so a waiter always re-reads the database after waking; a lost
//! notification (crash between commit and notify, listener reconnecting) costs at most the
//! polling interval because every wait is bounded by it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use logline_core::run::RunId;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::{mpsc, watch, Notify};
use uuid::Uuid;

use crate::config::PgConfig;
use crate::error::PgError;

/// Largest `NOTIFY` payload we build (PostgreSQL's limit is 8000 bytes).
const MAX_PAYLOAD: usize = 7_900;
/// Most signals merged into one round of notifications.
const MAX_BATCH: usize = 8_192;

/// A change another process may wait for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Signal {
    /// New events of a run.
    Run(RunId),
    /// New work on a queue.
    Queue(String),
}

/// Wake-up hub of one store/queue pair (one per schema and process).
pub(crate) struct Hub {
    config: PgConfig,
    run_channel: String,
    job_channel: String,
    runs: Mutex<HashMap<RunId, watch::Sender<u64>>>,
    queues: Mutex<HashMap<String, Arc<Notify>>>,
    ready: watch::Sender<bool>,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
    publisher: Mutex<Option<mpsc::UnboundedSender<Signal>>>,
    /// Backend pid of the publisher's connection (0 until known): its notifications come
    /// back to our own listener, but their waiters were already woken locally.
    publisher_pid: Arc<AtomicU32>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(h) = lock(&self.listener).take() {
            h.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short critical sections cannot leave the maps
    // inconsistent (single inserts/removes), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Channel names of a schema (identifiers of at most 63 bytes).
pub(crate) fn channels(schema: &str) -> (String, String) {
    (
        format!("logline_runs.{schema}"),
        format!("logline_jobs.{schema}"),
    )
}

impl Hub {
    pub(crate) fn new(config: PgConfig) -> Arc<Self> {
        let (run_channel, job_channel) = channels(&config.schema);
        let (ready, _) = watch::channel(false);
        Arc::new(Hub {
            config,
            run_channel,
            job_channel,
            runs: Mutex::new(HashMap::new()),
            queues: Mutex::new(HashMap::new()),
            ready,
            listener: Mutex::new(None),
            publisher: Mutex::new(None),
            publisher_pid: Arc::new(AtomicU32::new(0)),
        })
    }

    /// Name of the channel carrying queue names.
    pub(crate) fn job_channel(&self) -> &str {
        &self.job_channel
    }

    /// The polling fallback interval.
    pub(crate) fn poll_interval(&self) -> Duration {
        self.config.poll_interval
    }

    /// A run committed events: wake local waiters now, notify other processes soon.
    pub(crate) fn run_changed(&self, run_id: RunId) {
        self.wake_run(run_id);
        self.publish(Signal::Run(run_id));
    }

    /// A queue got work: wake local waiters now, notify other processes soon.
    pub(crate) fn queue_changed(&self, queue: &str) {
        self.wake_queue(queue);
        self.publish(Signal::Queue(queue.to_string()));
    }

    fn publish(&self, signal: Signal) {
        if !self.config.notify {
            return;
        }
        let mut slot = lock(&self.publisher);
        let signal = match slot.as_ref() {
            Some(tx) => match tx.send(signal) {
                Ok(()) => return,
                Err(mpsc::error::SendError(s)) => s,
            },
            None => signal,
        };
        // No publisher yet, or its runtime went away: start one on the current runtime.
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(signal);
        tokio::spawn(publisher(
            self.config.clone(),
            self.run_channel.clone(),
            self.job_channel.clone(),
            self.publisher_pid.clone(),
            rx,
        ));
        *slot = Some(tx);
    }

    fn wake_run(&self, run_id: RunId) {
        if let Some(tx) = lock(&self.runs).get(&run_id) {
            tx.send_modify(|g| *g = g.wrapping_add(1));
        }
    }

    fn wake_queue(&self, queue: &str) {
        let n = {
            let mut q = lock(&self.queues);
            match q.get(queue) {
                Some(n) => Arc::clone(n),
                None => {
                    let n = Arc::new(Notify::new());
                    q.insert(queue.to_string(), Arc::clone(&n));
                    n
                }
            }
        };
        n.notify_waiters();
        // Leave a permit for a waiter that registers just after this signal.
        n.notify_one();
    }

    fn wake_all(&self) {
        for tx in lock(&self.runs).values() {
            tx.send_modify(|g| *g = g.wrapping_add(1));
        }
        let queues: Vec<Arc<Notify>> = lock(&self.queues).values().cloned().collect();
        for n in queues {
            n.notify_waiters();
            n.notify_one();
        }
    }

    /// Registers interest in `run_id`; changes after this call wake the returned waiter.
    pub(crate) fn subscribe_run(self: &Arc<Self>, run_id: RunId) -> RunWaiter {
        let mut runs = lock(&self.runs);
        let rx = match runs.get(&run_id) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(0u64);
                runs.insert(run_id, tx);
                rx
            }
        };
        RunWaiter {
            hub: Arc::downgrade(self),
            run_id,
            rx,
        }
    }

    /// The wake-up handle of `queue`.
    pub(crate) fn queue_notify(&self, queue: &str) -> Arc<Notify> {
        let mut q = lock(&self.queues);
        Arc::clone(
            q.entry(queue.to_string())
                .or_insert_with(|| Arc::new(Notify::new())),
        )
    }

    /// Starts the listener if needed and waits (at most `max_wait`) until it listens, so a
    /// catch-up read after this call cannot miss a notification.
    pub(crate) async fn ensure_listening(self: &Arc<Self>, max_wait: Duration) {
        {
            let mut l = lock(&self.listener);
            let running = l.as_ref().is_some_and(|h| !h.is_finished());
            if !running {
                *l = Some(tokio::spawn(listen(
                    Arc::downgrade(self),
                    self.config.clone(),
                )));
            }
        }
        if *self.ready.borrow() {
            return;
        }
        let mut rx = self.ready.subscribe();
        let _ = tokio::time::timeout(max_wait, rx.wait_for(|r| *r)).await;
    }

    fn dispatch(&self, from_pid: u32, channel: &str, payload: &str) {
        if from_pid == self.publisher_pid.load(Ordering::Relaxed) {
            // Our own signal: run_changed / queue_changed woke the local waiters already.
            return;
        }
        if channel == self.run_channel {
            for id in payload.split(',') {
                if let Ok(id) = Uuid::parse_str(id) {
                    self.wake_run(id);
                }
            }
        } else if channel == self.job_channel {
            self.wake_queue(payload);
        }
    }
}

/// Interest in one run's events; unregisters on drop.
pub(crate) struct RunWaiter {
    hub: Weak<Hub>,
    run_id: RunId,
    rx: watch::Receiver<u64>,
}

impl RunWaiter {
    /// Waits for a change signalled after subscription (or since the last call), at most
    /// `timeout`. Returns whether a signal arrived.
    pub(crate) async fn changed(&mut self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.rx.changed()).await,
            Ok(Ok(()))
        )
    }
}

impl Drop for RunWaiter {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            let mut runs = lock(&hub.runs);
            // Our receiver is still alive here: remove the entry if nobody else waits.
            if runs
                .get(&self.run_id)
                .is_some_and(|tx| tx.receiver_count() <= 1)
            {
                runs.remove(&self.run_id);
            }
        }
    }
}

/// Sends coalesced notifications: each round merges every signal queued meanwhile into one
/// statement, so a burst of commits costs one `NOTIFY` round trip. Its own connection
/// commits with `synchronous_commit = off`: a notification is a hint, so it need not wait
/// for a disk flush (listeners get it at commit either way).
async fn publisher(
    config: PgConfig,
    run_channel: String,
    job_channel: String,
    own_pid: Arc<AtomicU32>,
    mut rx: mpsc::UnboundedReceiver<Signal>,
) {
    let pool = match config.connect_options() {
        Ok(o) => PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy_with(o.options([("synchronous_commit", "off")])),
        Err(e) => {
            tracing::warn!(error = %e, "logline-postgres: notifications disabled");
            return;
        }
    };
    while let Some(first) = rx.recv().await {
        let mut batch: HashSet<Signal> = HashSet::new();
        batch.insert(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(s) => {
                    batch.insert(s);
                }
                Err(_) => break,
            }
        }
        let (channels, payloads) = build_payloads(&run_channel, &job_channel, batch);
        let res: Result<(i32, i64), _> = sqlx::query_as(
            "SELECT pg_backend_pid(), count(pg_notify(c, p))
             FROM unnest($1::text[], $2::text[]) AS t(c, p)",
        )
        .bind(&channels)
        .bind(&payloads)
        .fetch_one(&pool)
        .await;
        match res {
            Ok((pid, _)) => own_pid.store(u32::try_from(pid).unwrap_or(0), Ordering::Relaxed),
            // Waiters fall back to polling; nothing else to do.
            Err(e) => tracing::debug!(error = %e, "logline-postgres: NOTIFY failed"),
        }
    }
}

fn build_payloads(
    run_channel: &str,
    job_channel: &str,
    batch: HashSet<Signal>,
) -> (Vec<String>, Vec<String>) {
    let mut channels = Vec::new();
    let mut payloads = Vec::new();
    let mut current = String::new();
    for s in batch {
        match s {
            Signal::Run(id) => {
                if current.len() + 37 > MAX_PAYLOAD {
                    channels.push(run_channel.to_string());
                    payloads.push(std::mem::take(&mut current));
                }
                if !current.is_empty() {
                    current.push(',');
                }
                current.push_str(&id.hyphenated().to_string());
            }
            Signal::Queue(q) => {
                if q.len() <= MAX_PAYLOAD {
                    channels.push(job_channel.to_string());
                    payloads.push(q);
                }
            }
        }
    }
    if !current.is_empty() {
        channels.push(run_channel.to_string());
        payloads.push(current);
    }
    (channels, payloads)
}

/// Keeps one `LISTEN` connection open, reconnecting with backoff, and dispatches
/// notifications to the hub's waiters. After every (re)connect all waiters are woken so
/// they catch up on anything missed while disconnected.
async fn listen(hub: Weak<Hub>, config: PgConfig) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(strong) = hub.upgrade() else { return };
        let (run_ch, job_ch) = (strong.run_channel.clone(), strong.job_channel.clone());
        drop(strong);
        match open_listener(&config, &run_ch, &job_ch).await {
            Ok(mut listener) => {
                backoff = Duration::from_millis(50);
                if let Some(h) = hub.upgrade() {
                    h.ready.send_replace(true);
                    h.wake_all();
                }
                loop {
                    match listener.try_recv().await {
                        Ok(Some(n)) => {
                            let Some(h) = hub.upgrade() else { return };
                            h.dispatch(n.process_id(), n.channel(), n.payload());
                            while let Some(n) = listener.next_buffered() {
                                h.dispatch(n.process_id(), n.channel(), n.payload());
                            }
                        }
                        Ok(None) => {
                            // Connection lost and re-established: catch up.
                            let Some(h) = hub.upgrade() else { return };
                            h.wake_all();
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "logline-postgres: listener lost its connection");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "logline-postgres: cannot open the listener");
            }
        }
        let Some(h) = hub.upgrade() else { return };
        h.ready.send_replace(false);
        h.wake_all();
        drop(h);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn open_listener(
    config: &PgConfig,
    run_channel: &str,
    job_channel: &str,
) -> Result<PgListener, PgError> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(config.connect_options()?)
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.ignore_pool_close_event(true);
    listener.listen_all([run_channel, job_channel]).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_chunked_and_queues_separate() {
        let mut batch = HashSet::new();
        for _ in 0..500 {
            batch.insert(Signal::Run(Uuid::new_v4()));
        }
        batch.insert(Signal::Queue("q1".into()));
        let (ch, pl) = build_payloads("r", "j", batch);
        assert_eq!(ch.len(), pl.len());
        assert!(pl.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let ids: usize = ch
            .iter()
            .zip(&pl)
            .filter(|(c, _)| c.as_str() == "r")
            .map(|(_, p)| p.split(',').count())
            .sum();
        assert_eq!(ids, 500);
        assert!(ch.iter().zip(&pl).any(|(c, p)| c == "j" && p == "q1"));
    }

    #[test]
    fn channel_names_fit_identifiers() {
        let (r, j) = channels(&"s".repeat(crate::config::MAX_SCHEMA_LEN));
        assert!(r.len() <= 63 && j.len() <= 63);
    }
}
