use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::queue::{
    Backoff, FailOutcome, Job, JobId, JobRecord, JobState, NewJob, Queue, QueueStats,
};

/// A [`Queue`] in process memory: leases expire and are reclaimed, failures back off,
/// exhausted jobs are dead-lettered. Cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct MemoryQueue {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
}

/// Ordering key of a claimable job: priority (high first), then run_at, then insertion.
type ReadyKey = (Reverse<i32>, DateTime<Utc>, u64, JobId);

#[derive(Default)]
struct State {
    jobs: HashMap<JobId, Entry>,
    ready: HashMap<String, BTreeSet<ReadyKey>>,
    leased: BTreeSet<(DateTime<Utc>, JobId)>,
    live_keys: HashMap<(String, String), JobId>,
    next_seq: u64,
}

struct Entry {
    record: JobRecord,
    priority: i32,
    seq: u64,
    lease_token: Option<Uuid>,
    lease_until: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl Entry {
    fn ready_key(&self) -> ReadyKey {
        (
            Reverse(self.priority),
            self.record.run_at,
            self.seq,
            self.record.id,
        )
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl State {
    fn push_ready(&mut self, id: JobId) {
        if let Some(e) = self.jobs.get(&id) {
            let key = e.ready_key();
            self.ready
                .entry(e.record.queue.clone())
                .or_default()
                .insert(key);
        }
    }

    /// Moves expired leases back to the ready set.
    fn reclaim_expired(&mut self, now: DateTime<Utc>) {
        while let Some(&(until, id)) = self.leased.first() {
            if until > now {
                break;
            }
            self.leased.pop_first();
            if let Some(e) = self.jobs.get_mut(&id) {
                if e.record.state == JobState::Running && e.lease_until == until {
                    e.record.state = JobState::Queued;
                    e.lease_token = None;
                    e.record.last_error = Some("lease expired".into());
                    self.push_ready(id);
                }
            }
        }
    }

    fn owned(&mut self, job: &Job, now: DateTime<Utc>) -> Result<&mut Entry> {
        self.reclaim_expired(now);
        let e = self
            .jobs
            .get_mut(&job.id)
            .ok_or_else(|| Error::not_found("job", job.id))?;
        if e.record.state != JobState::Running || e.lease_token != Some(job.lease_token) {
            return Err(Error::Conflict(format!("lease on job {} was lost", job.id)));
        }
        Ok(e)
    }

    fn finish(&mut self, id: JobId, state: JobState, now: DateTime<Utc>) {
        if let Some(e) = self.jobs.get_mut(&id) {
            self.leased.remove(&(e.lease_until, id));
            e.record.state = state;
            e.lease_token = None;
            e.finished_at = Some(now);
            if let Some(k) = e.record.idempotency_key.clone() {
                let key = (e.record.queue.clone(), k);
                if self.live_keys.get(&key) == Some(&id) {
                    self.live_keys.remove(&key);
                }
            }
        }
    }
}

impl MemoryQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> Result<MutexGuard<'_, State>> {
        self.inner
            .state
            .lock()
            .map_err(|_| Error::Internal("memory queue lock poisoned".into()))
    }

    fn waker(&self, queue: &str) -> Arc<Notify> {
        let mut w = match self.inner.wakers.lock() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        w.entry(queue.to_string()).or_default().clone()
    }

    fn insert(&self, st: &mut State, job: NewJob, now: DateTime<Utc>) -> JobId {
        if let Some(k) = &job.idempotency_key {
            if let Some(id) = st.live_keys.get(&(job.queue.clone(), k.clone())) {
                return *id;
            }
        }
        let id = Uuid::now_v7();
        st.next_seq += 1;
        let entry = Entry {
            record: JobRecord {
                id,
                queue: job.queue.clone(),
                payload: {
                    let mut payload = job.payload;
                    crate::nul::replace_nul(&mut payload);
                    payload
                },
                state: JobState::Queued,
                attempts: 0,
                max_attempts: job.max_attempts.max(1),
                last_error: None,
                idempotency_key: job.idempotency_key.clone(),
                run_at: job.run_at.unwrap_or(now),
            },
            priority: job.priority,
            seq: st.next_seq,
            lease_token: None,
            lease_until: now,
            finished_at: None,
        };
        st.jobs.insert(id, entry);
        if let Some(k) = job.idempotency_key {
            st.live_keys.insert((job.queue, k), id);
        }
        st.push_ready(id);
        id
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn enqueue(&self, job: NewJob) -> Result<JobId> {
        let queue = job.queue.clone();
        let id = {
            let mut st = self.state()?;
            self.insert(&mut st, job, Utc::now())
        };
        self.waker(&queue).notify_one();
        Ok(id)
    }

    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>> {
        let now = Utc::now();
        let mut queues: Vec<String> = Vec::new();
        let ids = {
            let mut st = self.state()?;
            jobs.into_iter()
                .map(|j| {
                    if !queues.contains(&j.queue) {
                        queues.push(j.queue.clone());
                    }
                    self.insert(&mut st, j, now)
                })
                .collect()
        };
        for q in queues {
            self.waker(&q).notify_waiters();
            self.waker(&q).notify_one();
        }
        Ok(ids)
    }

    async fn claim(
        &self,
        queue: &str,
        _worker: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Job>> {
        let now = Utc::now();
        let lease_until = now + to_chrono(lease);
        let mut st = self.state()?;
        st.reclaim_expired(now);
        let Some(ready) = st.ready.get_mut(queue) else {
            return Ok(Vec::new());
        };
        let picked: Vec<ReadyKey> = ready
            .iter()
            .filter(|k| k.1 <= now)
            .take(max)
            .copied()
            .collect();
        for k in &picked {
            ready.remove(k);
        }
        let mut out = Vec::with_capacity(picked.len());
        for (_, _, _, id) in picked {
            let Some(e) = st.jobs.get_mut(&id) else {
                continue;
            };
            let token = Uuid::new_v4();
            e.record.state = JobState::Running;
            e.record.attempts += 1;
            e.lease_token = Some(token);
            e.lease_until = lease_until;
            out.push(Job {
                id,
                queue: e.record.queue.clone(),
                payload: e.record.payload.clone(),
                attempt: e.record.attempts,
                max_attempts: e.record.max_attempts,
                priority: e.priority,
                lease_token: token,
                lease_until,
                last_error: e.record.last_error.clone(),
            });
            st.leased.insert((lease_until, id));
        }
        Ok(out)
    }

    async fn heartbeat(&self, job: &Job, lease: Duration) -> Result<DateTime<Utc>> {
        let now = Utc::now();
        let mut st = self.state()?;
        let e = st.owned(job, now)?;
        let old = e.lease_until;
        let until = now + to_chrono(lease);
        e.lease_until = until;
        st.leased.remove(&(old, job.id));
        st.leased.insert((until, job.id));
        Ok(until)
    }

    async fn complete(&self, job: &Job) -> Result<()> {
        let now = Utc::now();
        let mut st = self.state()?;
        st.owned(job, now)?;
        st.finish(job.id, JobState::Completed, now);
        Ok(())
    }

    async fn fail(
        &self,
        job: &Job,
        error: &str,
        retryable: bool,
        backoff: Backoff,
    ) -> Result<FailOutcome> {
        let now = Utc::now();
        let outcome = {
            let mut st = self.state()?;
            let e = st.owned(job, now)?;
            e.record.last_error = Some(crate::nul::replace_nul_str(error).into_owned());
            if retryable && e.record.attempts < e.record.max_attempts {
                let at = now + to_chrono(backoff.delay(e.record.attempts));
                let old = e.lease_until;
                e.record.state = JobState::Queued;
                e.record.run_at = at;
                e.lease_token = None;
                st.leased.remove(&(old, job.id));
                st.push_ready(job.id);
                FailOutcome::Retrying { at }
            } else {
                st.finish(job.id, JobState::DeadLettered, now);
                FailOutcome::DeadLettered
            }
        };
        Ok(outcome)
    }

    async fn live_key_prefixes(&self, queue: &str, prefixes: &[String]) -> Result<Vec<String>> {
        let wanted: HashSet<&str> = prefixes.iter().map(String::as_str).collect();
        let lengths: BTreeSet<usize> = wanted.iter().map(|p| p.len()).collect();
        let mut found: BTreeSet<String> = BTreeSet::new();
        let mut st = self.state()?;
        st.reclaim_expired(Utc::now());
        for (q, key) in st.live_keys.keys() {
            if q != queue {
                continue;
            }
            for len in &lengths {
                if let Some(p) = key.get(..*len).filter(|p| wanted.contains(p)) {
                    found.insert(p.to_string());
                }
            }
        }
        Ok(found.into_iter().collect())
    }

    async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let now = Utc::now();
        let mut st = self.state()?;
        st.reclaim_expired(now);
        let Some(ready) = st.ready.get(queue) else {
            return Ok(QueueStats::default());
        };
        Ok(QueueStats {
            queued: ready.len() as u64,
            oldest_due_at: ready.iter().map(|k| k.1).filter(|at| *at <= now).min(),
        })
    }

    async fn withdraw(&self, queue: &str, key: &str) -> Result<bool> {
        let mut st = self.state()?;
        let live = (queue.to_string(), key.to_string());
        let Some(&id) = st.live_keys.get(&live) else {
            return Ok(false);
        };
        let ready = match st.jobs.get(&id) {
            Some(e) if e.record.state == JobState::Queued => e.ready_key(),
            _ => return Ok(false),
        };
        if let Some(r) = st.ready.get_mut(queue) {
            r.remove(&ready);
        }
        st.jobs.remove(&id);
        st.live_keys.remove(&live);
        Ok(true)
    }

    async fn purge_completed(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
        let mut st = self.state()?;
        let mut done: Vec<(DateTime<Utc>, JobId)> = st
            .jobs
            .iter()
            .filter(|(_, e)| e.record.state == JobState::Completed)
            .filter_map(|(id, e)| e.finished_at.filter(|at| *at < cutoff).map(|at| (at, *id)))
            .collect();
        done.sort_unstable();
        done.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        for (_, id) in &done {
            st.jobs.remove(id);
        }
        Ok(done.len() as u64)
    }

    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<JobRecord>> {
        let st = self.state()?;
        let mut v: Vec<(&Entry, DateTime<Utc>)> = st
            .jobs
            .values()
            .filter(|e| e.record.queue == queue && e.record.state == JobState::DeadLettered)
            .map(|e| (e, e.finished_at.unwrap_or(e.record.run_at)))
            .collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        Ok(v.into_iter()
            .take(limit)
            .map(|(e, _)| e.record.clone())
            .collect())
    }

    async fn retry_dead_letter(&self, id: JobId) -> Result<()> {
        let now = Utc::now();
        let queue = {
            let mut st = self.state()?;
            let e = st
                .jobs
                .get_mut(&id)
                .ok_or_else(|| Error::not_found("job", id))?;
            if e.record.state != JobState::DeadLettered {
                return Err(Error::Conflict(format!("job {id} is not dead-lettered")));
            }
            e.record.state = JobState::Queued;
            e.record.attempts = 0;
            e.record.run_at = now;
            e.finished_at = None;
            let queue = e.record.queue.clone();
            if let Some(k) = e.record.idempotency_key.clone() {
                st.live_keys.entry((queue.clone(), k)).or_insert(id);
            }
            st.push_ready(id);
            queue
        };
        self.waker(&queue).notify_one();
        Ok(())
    }

    async fn job(&self, id: JobId) -> Result<JobRecord> {
        let now = Utc::now();
        let mut st = self.state()?;
        st.reclaim_expired(now);
        st.jobs
            .get(&id)
            .map(|e| e.record.clone())
            .ok_or_else(|| Error::not_found("job", id))
    }

    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> Result<()> {
        let now = Utc::now();
        // Wake no later than the next scheduled job or lease expiry.
        let next_due = {
            let st = self.state()?;
            let ready = st
                .ready
                .get(queue)
                .and_then(|r| r.iter().map(|k| k.1).min());
            if ready.is_some_and(|at| at <= now) {
                return Ok(());
            }
            let lease = st.leased.first().map(|(at, _)| *at);
            [ready, lease].into_iter().flatten().min()
        };
        let timeout = match next_due {
            Some(at) => (at - now).to_std().unwrap_or_default().min(timeout),
            None => timeout,
        };
        let notify = self.waker(queue);
        let _ = tokio::time::timeout(timeout, notify.notified()).await;
        Ok(())
    }
}
