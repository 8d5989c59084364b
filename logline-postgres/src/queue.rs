//! [`PgQueue`]: a work queue shared by workers in many processes on many machines.
//!
//! Claims take batches with `FOR UPDATE SKIP LOCKED`, so concurrent workers never block
//! each other or take the same job. A claim stamps a fresh `lease_token` and a lease expiry
//! computed on the database clock (`now()`), never the worker's; a job whose lease expired
//! is claimable again, and every later heartbeat, completion or failure of the old claim is
//! rejected with `Conflict` because its token no longer matches.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use logline_core::queue::{
    Backoff, FailOutcome, Job, JobId, JobRecord, JobState, NewJob, Queue, QueueStats,
};
use logline_core::{Error, ErrorKind, Result};
use serde_json::Value;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::Row;
use uuid::Uuid;

use crate::codec::{bigint, parse_enum, storable, unsigned};
use crate::config::PgConfig;
use crate::db::Db;
use crate::error::{db, is_unique_violation};
use crate::store::writes::{Write, Written};
use logline_core::nul::replace_nul_str;

/// Rows per statement in [`Queue::enqueue_batch`].
const ENQUEUE_CHUNK: usize = 5_000;
/// Attempts at an idempotent enqueue whose live twin finishes under our feet.
const ENQUEUE_TRIES: usize = 5;

/// A [`Queue`] on PostgreSQL. Cheap to clone; share one per process (it owns the
/// process's notification listener for its schema).
///
/// A store and a queue on the same database are best made from one
/// [`PgBackend`](crate::PgBackend), which shares the pool and the notification listener.
#[derive(Clone)]
pub struct PgQueue {
    pub(crate) db: Arc<Db>,
}

impl std::fmt::Debug for PgQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgQueue")
            .field("config", &self.db.config)
            .finish_non_exhaustive()
    }
}

const LIVE: &str = "state IN ('queued', 'running')";

const INSERT_ONE: &str = "
WITH ins AS (
    INSERT INTO jobs (id, queue, payload, priority, run_at, max_attempts, idempotency_key,
                      tenant_id)
    VALUES ($1, $2, $3, $4, COALESCE($5, now()), $6, $7, $8)
    ON CONFLICT (queue, idempotency_key)
        WHERE idempotency_key IS NOT NULL AND state IN ('queued', 'running')
        DO NOTHING
    RETURNING id
)
SELECT id, CASE WHEN $9::text IS NULL THEN NULL ELSE pg_notify($9, $2)::text END AS n
FROM ins";

const INSERT_BATCH: &str = "
INSERT INTO jobs (id, queue, payload, priority, run_at, max_attempts, idempotency_key, tenant_id)
SELECT t.id, t.queue, t.payload, t.priority, COALESCE(t.run_at, now()), t.max_attempts, t.key,
       t.tenant_id
FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::int[], $5::timestamptz[], $6::int[],
            $7::text[], $8::text[])
     WITH ORDINALITY AS t(id, queue, payload, priority, run_at, max_attempts, key, tenant_id, ord)
ORDER BY t.ord
ON CONFLICT (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND state IN ('queued', 'running')
    DO NOTHING
RETURNING id";

const CLAIM: &str = "
WITH ready AS (
    SELECT id FROM jobs
    WHERE queue = $1 AND state = 'queued' AND run_at <= now()
    ORDER BY priority DESC, run_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), expired AS (
    SELECT id FROM jobs
    WHERE queue = $1 AND state = 'running' AND lease_until < now()
    ORDER BY lease_until
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT j.id FROM jobs j
    WHERE j.id IN (SELECT id FROM ready UNION ALL SELECT id FROM expired)
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT $2
)
UPDATE jobs j SET state = 'running', attempts = j.attempts + 1,
    last_error = CASE WHEN j.state = 'running' THEN 'lease expired' ELSE j.last_error END,
    lease_token = gen_random_uuid(), lease_until = now() + make_interval(secs => $3),
    worker = $4, updated_at = now()
FROM picked WHERE j.id = picked.id
RETURNING j.id, j.queue, j.payload, j.attempts, j.max_attempts, j.priority, j.lease_token,
          j.lease_until, j.last_error, j.run_at";

/// A job's record; a running job whose lease expired reads as queued (it is claimable).
const RECORD_COLUMNS: &str = "id, queue, payload, \
     CASE WHEN state = 'running' AND lease_until < now() THEN 'queued' ELSE state END AS state, \
     attempts, max_attempts, \
     CASE WHEN state = 'running' AND lease_until < now() THEN 'lease expired' \
          ELSE last_error END AS last_error, \
     idempotency_key, run_at";

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn lease_lost(job: &Job) -> Error {
    Error::Conflict(format!(
        "lease of job {} (attempt {}) was lost",
        job.id, job.attempt
    ))
}

/// Column vectors of a batch of jobs, for `unnest`.
#[derive(Default)]
struct JobCols {
    ids: Vec<Uuid>,
    queues: Vec<String>,
    payloads: Vec<Value>,
    priorities: Vec<i32>,
    run_ats: Vec<Option<DateTime<Utc>>>,
    max_attempts: Vec<i32>,
    keys: Vec<Option<String>>,
    tenants: Vec<Option<String>>,
}

fn max_attempts(job: &NewJob) -> i32 {
    i32::try_from(job.max_attempts.max(1)).unwrap_or(i32::MAX)
}

/// Binds a job as id, queue, payload, priority, run_at, max_attempts, idempotency key,
/// tenant and the channel to notify (the job columns of the insert statements).
pub(crate) fn bind_job<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    id: Uuid,
    job: &'q NewJob,
    channel: Option<&'q str>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    q.bind(id)
        .bind(&job.queue)
        .bind(&job.payload)
        .bind(job.priority)
        .bind(job.run_at)
        .bind(max_attempts(job))
        .bind(&job.idempotency_key)
        .bind(&job.tenant_id)
        .bind(channel)
}

/// Inserts one job on `conn`; with `notify_in_tx` the `NOTIFY` is part of the statement (so
/// it is delivered when the caller's transaction commits). Returns the job id (the live
/// twin's id when the idempotency key is taken) and whether a new job was inserted.
async fn enqueue_on(
    conn: &mut PgConnection,
    job_channel: &str,
    mut job: NewJob,
    notify_in_tx: bool,
) -> Result<(JobId, bool)> {
    let channel = notify_in_tx.then_some(job_channel);
    job.payload = storable(std::mem::take(&mut job.payload));
    for _ in 0..ENQUEUE_TRIES {
        let id = Uuid::now_v7();
        let row = bind_job(sqlx::query(INSERT_ONE), id, &job, channel)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
        if row.is_some() {
            return Ok((id, true));
        }
        let Some(key) = &job.idempotency_key else {
            return Err(Error::Internal("job insert returned no row".into()));
        };
        let twin: Option<Uuid> = sqlx::query_scalar(&format!(
            "SELECT id FROM jobs WHERE queue = $1 AND idempotency_key = $2 AND {LIVE}"
        ))
        .bind(&job.queue)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        if let Some(twin) = twin {
            return Ok((twin, false));
        }
        // The live twin finished between the two statements: try again.
    }
    Err(Error::backend(
        crate::error::BACKEND,
        ErrorKind::Conflict,
        format!(
            "idempotency key of a job on `{}` kept changing hands; retry",
            job.queue
        ),
        None,
    ))
}

fn decode_job(row: &PgRow) -> Result<(Job, DateTime<Utc>)> {
    let attempts: i32 = row.try_get("attempts").map_err(db)?;
    let max: i32 = row.try_get("max_attempts").map_err(db)?;
    let job = Job {
        id: row.try_get("id").map_err(db)?,
        queue: row.try_get("queue").map_err(db)?,
        payload: row.try_get("payload").map_err(db)?,
        attempt: unsigned("attempts", i64::from(attempts))?,
        max_attempts: unsigned("max_attempts", i64::from(max))?,
        priority: row.try_get("priority").map_err(db)?,
        lease_token: row.try_get("lease_token").map_err(db)?,
        lease_until: row.try_get("lease_until").map_err(db)?,
        last_error: row.try_get("last_error").map_err(db)?,
    };
    let run_at: DateTime<Utc> = row.try_get("run_at").map_err(db)?;
    Ok((job, run_at))
}

fn decode_record(row: &PgRow) -> Result<JobRecord> {
    let state: String = row.try_get("state").map_err(db)?;
    let attempts: i32 = row.try_get("attempts").map_err(db)?;
    let max: i32 = row.try_get("max_attempts").map_err(db)?;
    Ok(JobRecord {
        id: row.try_get("id").map_err(db)?,
        queue: row.try_get("queue").map_err(db)?,
        payload: row.try_get("payload").map_err(db)?,
        state: parse_enum::<JobState>("job state", &state)?,
        attempts: unsigned("attempts", i64::from(attempts))?,
        max_attempts: unsigned("max_attempts", i64::from(max))?,
        last_error: row.try_get("last_error").map_err(db)?,
        idempotency_key: row.try_get("idempotency_key").map_err(db)?,
        run_at: row.try_get("run_at").map_err(db)?,
    })
}

impl PgQueue {
    /// A queue on an open connection pool.
    pub(crate) fn on(db: Arc<Db>) -> Self {
        PgQueue { db }
    }

    /// Opens a pool with `config`. Does not create tables: call [`PgQueue::migrate`] once
    /// (with a role allowed to create them) before use.
    pub async fn connect(config: &PgConfig) -> Result<Self> {
        Ok(Self::on(Db::connect(config).await?))
    }

    /// Creates the schema if missing and applies the embedded migrations.
    pub async fn migrate(&self) -> Result<()> {
        self.db.migrate().await
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// [`Queue::enqueue`] inside the caller's transaction: the job (and its `NOTIFY`) exist
    /// only if the transaction commits, e.g. together with the run it executes.
    pub async fn enqueue_in(&self, conn: &mut PgConnection, job: NewJob) -> Result<JobId> {
        let (id, _) = self.enqueue_in_tx(conn, job).await?;
        Ok(id)
    }

    /// [`PgQueue::enqueue_in`] that also says whether a new job was inserted (false when a
    /// live job holds the idempotency key); after the commit, pass an inserted job's queue to
    /// [`PgQueue::wake`].
    pub(crate) async fn enqueue_in_tx(
        &self,
        conn: &mut PgConnection,
        job: NewJob,
    ) -> Result<(JobId, bool)> {
        enqueue_on(conn, self.db.hub.job_channel(), job, true).await
    }

    /// Wakes this process's workers waiting on `queue` (and signals other processes).
    pub(crate) fn wake(&self, queue: &str) {
        self.db.hub.queue_changed(queue);
    }

    /// Gives a claimed job back without counting the attempt (a worker draining on
    /// shutdown releases what it has not started). `Conflict` when the lease was lost.
    pub async fn release(&self, job: &Job) -> Result<()> {
        let n = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = GREATEST(attempts - 1, 0),
                 lease_token = NULL, lease_until = NULL, worker = NULL, run_at = now(),
                 updated_at = now()
             WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .bind(job.id)
        .bind(job.lease_token)
        .execute(&self.db.pool)
        .await
        .map_err(db)?
        .rows_affected();
        if n == 0 {
            return Err(lease_lost(job));
        }
        self.db.hub.queue_changed(&job.queue);
        Ok(())
    }

    /// Seconds until the next job of `queue` becomes claimable (a scheduled `run_at` or an
    /// expiring lease), on the database clock; `None` when the queue is empty.
    async fn next_due(&self, queue: &str) -> Result<Option<f64>> {
        sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM (LEAST(
                 (SELECT min(run_at) FROM jobs WHERE queue = $1 AND state = 'queued'),
                 (SELECT min(lease_until) FROM jobs WHERE queue = $1 AND state = 'running')
             ) - now()))::float8",
        )
        .bind(queue)
        .fetch_one(&self.db.pool)
        .await
        .map_err(db)
    }

    async fn insert_chunk(&self, jobs: &[NewJob]) -> Result<Vec<JobId>> {
        let mut c = JobCols::default();
        for j in jobs {
            c.ids.push(Uuid::now_v7());
            c.queues.push(j.queue.clone());
            c.payloads.push(storable(j.payload.clone()));
            c.priorities.push(j.priority);
            c.run_ats.push(j.run_at);
            c.max_attempts.push(max_attempts(j));
            c.keys.push(j.idempotency_key.clone());
            c.tenants.push(j.tenant_id.clone());
        }
        let inserted: Vec<Uuid> = sqlx::query_scalar(INSERT_BATCH)
            .bind(&c.ids)
            .bind(&c.queues)
            .bind(&c.payloads)
            .bind(&c.priorities)
            .bind(&c.run_ats)
            .bind(&c.max_attempts)
            .bind(&c.keys)
            .bind(&c.tenants)
            .fetch_all(&self.db.pool)
            .await
            .map_err(db)?;
        if inserted.len() == jobs.len() {
            return Ok(c.ids);
        }
        // Some keys were taken (by live jobs or earlier rows of this batch): map them.
        let inserted: HashSet<Uuid> = inserted.into_iter().collect();
        let mut missing: Vec<usize> = Vec::new();
        let (mut mq, mut mk) = (Vec::new(), Vec::new());
        for (i, id) in c.ids.iter().enumerate() {
            if !inserted.contains(id) {
                if let Some(k) = &c.keys[i] {
                    missing.push(i);
                    mq.push(c.queues[i].clone());
                    mk.push(k.clone());
                }
            }
        }
        let rows = sqlx::query(&format!(
            "SELECT j.queue, j.idempotency_key, j.id FROM jobs j
             JOIN unnest($1::text[], $2::text[]) AS t(queue, key)
               ON j.queue = t.queue AND j.idempotency_key = t.key
             WHERE j.{LIVE}"
        ))
        .bind(&mq)
        .bind(&mk)
        .fetch_all(&self.db.pool)
        .await
        .map_err(db)?;
        let mut live: HashMap<(String, String), Uuid> = HashMap::with_capacity(rows.len());
        for r in rows {
            let q: String = r.try_get(0).map_err(db)?;
            let k: String = r.try_get(1).map_err(db)?;
            let id: Uuid = r.try_get(2).map_err(db)?;
            live.insert((q, k), id);
        }
        let mut ids = c.ids;
        for i in missing {
            let key = (c.queues[i].clone(), c.keys[i].clone().unwrap_or_default());
            ids[i] = match live.get(&key) {
                Some(id) => *id,
                // Finished meanwhile: enqueue this one on its own.
                None => self.enqueue(jobs[i].clone()).await?,
            };
        }
        Ok(ids)
    }
}

#[async_trait]
impl Queue for PgQueue {
    async fn enqueue(&self, job: NewJob) -> Result<JobId> {
        let queue = job.queue.clone();
        let mut conn = self.db.pool.acquire().await.map_err(db)?;
        let (id, inserted) = enqueue_on(&mut conn, self.db.hub.job_channel(), job, false).await?;
        drop(conn);
        if inserted {
            self.db.hub.queue_changed(&queue);
        }
        Ok(id)
    }

    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>> {
        let mut ids = Vec::with_capacity(jobs.len());
        let mut queues: HashSet<String> = HashSet::new();
        for chunk in jobs.chunks(ENQUEUE_CHUNK) {
            ids.extend(self.insert_chunk(chunk).await?);
            queues.extend(chunk.iter().map(|j| j.queue.clone()));
        }
        for q in queues {
            self.db.hub.queue_changed(&q);
        }
        Ok(ids)
    }

    async fn claim(
        &self,
        queue: &str,
        worker: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Job>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(CLAIM)
            .bind(queue)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .bind(seconds(lease))
            .bind(worker)
            .fetch_all(&self.db.pool)
            .await
            .map_err(db)?;
        let mut jobs = rows
            .iter()
            .map(decode_job)
            .collect::<Result<Vec<(Job, DateTime<Utc>)>>>()?;
        jobs.sort_by(|(a, ra), (b, rb)| {
            b.priority
                .cmp(&a.priority)
                .then(ra.cmp(rb))
                .then(a.id.cmp(&b.id))
        });
        Ok(jobs.into_iter().map(|(j, _)| j).collect())
    }

    async fn heartbeat(&self, job: &Job, lease: Duration) -> Result<DateTime<Utc>> {
        let until: Option<DateTime<Utc>> = sqlx::query_scalar(
            "UPDATE jobs SET lease_until = now() + make_interval(secs => $3), updated_at = now()
             WHERE id = $1 AND lease_token = $2 AND state = 'running'
             RETURNING lease_until",
        )
        .bind(job.id)
        .bind(job.lease_token)
        .bind(seconds(lease))
        .fetch_optional(&self.db.pool)
        .await
        .map_err(db)?;
        until.ok_or_else(|| lease_lost(job))
    }

    async fn complete(&self, job: &Job) -> Result<()> {
        let n = sqlx::query(
            "UPDATE jobs SET state = 'completed', lease_token = NULL, lease_until = NULL,
                 worker = NULL, finished_at = now(), updated_at = now()
             WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .bind(job.id)
        .bind(job.lease_token)
        .execute(&self.db.pool)
        .await
        .map_err(db)?
        .rows_affected();
        if n == 0 {
            return Err(lease_lost(job));
        }
        Ok(())
    }

    async fn complete_batch(&self, jobs: &[Job]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
        let tokens: Vec<Uuid> = jobs.iter().map(|j| j.lease_token).collect();
        // Through group commit when it is on: completions share the flush of the runs'
        // checkpoints.
        let store = crate::PgStore::on(self.db.clone());
        let done = match store
            .write(Write::CompleteJobs(ids, tokens))
            .await
            .map_err(db)?
        {
            Written::CompletedJobs(done) => done,
            _ => {
                return Err(Error::Internal(
                    "group commit answered a job completion with another outcome".into(),
                ))
            }
        };
        if done.len() == jobs.len() {
            return Ok(());
        }
        let done: HashSet<Uuid> = done.into_iter().collect();
        let lost: Vec<String> = jobs
            .iter()
            .filter(|j| !done.contains(&j.id))
            .map(|j| j.id.to_string())
            .collect();
        Err(logline_core::queue::lost_leases(&lost))
    }

    async fn fail(
        &self,
        job: &Job,
        error: &str,
        retryable: bool,
        backoff: Backoff,
    ) -> Result<FailOutcome> {
        let delay = backoff.delay(job.attempt);
        let row = sqlx::query(
            "UPDATE jobs SET
                 state = CASE WHEN $3 AND attempts < max_attempts
                              THEN 'queued' ELSE 'dead_lettered' END,
                 run_at = CASE WHEN $3 AND attempts < max_attempts
                               THEN now() + make_interval(secs => $4) ELSE run_at END,
                 finished_at = CASE WHEN $3 AND attempts < max_attempts
                                    THEN NULL ELSE now() END,
                 last_error = $5, lease_token = NULL, lease_until = NULL, worker = NULL,
                 updated_at = now()
             WHERE id = $1 AND lease_token = $2 AND state = 'running'
             RETURNING state, run_at",
        )
        .bind(job.id)
        .bind(job.lease_token)
        .bind(retryable)
        .bind(seconds(delay))
        .bind(replace_nul_str(error).as_ref())
        .fetch_optional(&self.db.pool)
        .await
        .map_err(db)?
        .ok_or_else(|| lease_lost(job))?;
        let state: String = row.try_get(0).map_err(db)?;
        if state == "queued" {
            let at: DateTime<Utc> = row.try_get(1).map_err(db)?;
            if delay < self.db.hub.poll_interval() {
                self.db.hub.queue_changed(&job.queue);
            }
            Ok(FailOutcome::Retrying { at })
        } else {
            Ok(FailOutcome::DeadLettered)
        }
    }

    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM jobs WHERE queue = $1 AND state = 'dead_lettered'
             ORDER BY finished_at DESC, id DESC LIMIT $2"
        ))
        .bind(queue)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.db.pool)
        .await
        .map_err(db)?;
        rows.iter().map(decode_record).collect()
    }

    async fn retry_dead_letter(&self, id: JobId) -> Result<()> {
        let res = sqlx::query_scalar::<_, String>(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = now(), finished_at = NULL,
                 updated_at = now()
             WHERE id = $1 AND state = 'dead_lettered'
             RETURNING queue",
        )
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await;
        let queue = match res {
            Ok(Some(q)) => q,
            Ok(None) => {
                let rec = self.job(id).await?;
                return Err(Error::Conflict(format!(
                    "job {id} is {:?}, not dead-lettered",
                    rec.state
                )));
            }
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::Conflict(format!(
                    "job {id} cannot be retried: a live job holds its idempotency key"
                )))
            }
            Err(e) => return Err(db(e)),
        };
        self.db.hub.queue_changed(&queue);
        Ok(())
    }

    async fn job(&self, id: JobId) -> Result<JobRecord> {
        let row = sqlx::query(&format!("SELECT {RECORD_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("job", id))?;
        decode_record(&row)
    }

    async fn live_key_prefixes(&self, queue: &str, prefixes: &[String]) -> Result<Vec<String>> {
        // One hash-joinable lookup per prefix length (run prefixes share one length).
        let mut by_len: HashMap<i32, Vec<String>> = HashMap::new();
        for p in prefixes {
            let len = i32::try_from(p.chars().count()).unwrap_or(i32::MAX);
            by_len.entry(len).or_default().push(p.clone());
        }
        let mut found = Vec::new();
        for (len, group) in by_len {
            let hits: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT DISTINCT left(idempotency_key, $3) FROM jobs
                 WHERE queue = $1 AND {LIVE} AND idempotency_key IS NOT NULL
                   AND left(idempotency_key, $3) = ANY($2)"
            ))
            .bind(queue)
            .bind(&group)
            .bind(len)
            .fetch_all(&self.db.pool)
            .await
            .map_err(db)?;
            found.extend(hits);
        }
        found.sort();
        Ok(found)
    }

    async fn stats(&self, queue: &str) -> Result<QueueStats> {
        // Both read the partial index of queued jobs by (queue, run_at).
        let row = sqlx::query(
            "SELECT count(*) AS queued,
                    min(run_at) FILTER (WHERE run_at <= now()) AS oldest_due_at
             FROM jobs WHERE queue = $1 AND state = 'queued'",
        )
        .bind(queue)
        .fetch_one(&self.db.pool)
        .await
        .map_err(db)?;
        let queued: i64 = row.try_get("queued").map_err(db)?;
        Ok(QueueStats {
            queued: u64::try_from(queued).unwrap_or(0),
            oldest_due_at: row.try_get("oldest_due_at").map_err(db)?,
        })
    }

    async fn withdraw(&self, queue: &str, key: &str) -> Result<bool> {
        // A claim that locked the row first wins: the delete then sees it running.
        let n = sqlx::query(
            "DELETE FROM jobs WHERE queue = $1 AND idempotency_key = $2 AND state = 'queued'",
        )
        .bind(queue)
        .bind(key)
        .execute(&self.db.pool)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(n > 0)
    }

    async fn purge_completed(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
        let n = sqlx::query(
            "DELETE FROM jobs WHERE id IN (
                 SELECT id FROM jobs WHERE state = 'completed' AND finished_at < $1
                 ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(cutoff)
        .bind(bigint("limit", limit)?)
        .execute(&self.db.pool)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(n)
    }

    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> Result<()> {
        let hub = &self.db.hub;
        let notify = hub.queue_notify(queue);
        let notified = notify.notified();
        tokio::pin!(notified);
        // Register before looking, so a signal in between is not lost.
        notified.as_mut().enable();
        hub.ensure_listening(timeout.min(Duration::from_secs(2)))
            .await;
        let mut wait = timeout.min(hub.poll_interval());
        match self.next_due(queue).await {
            Ok(Some(secs)) if secs <= 0.0 => return Ok(()),
            Ok(Some(secs)) => {
                wait = wait.min(Duration::from_secs_f64(secs.min(86_400.0)));
            }
            Ok(None) => {}
            // Database unreachable: wait out the slice, the caller's next claim reports it.
            Err(e) if e.is_retryable() => {}
            Err(e) => return Err(e),
        }
        let _ = tokio::time::timeout(wait, notified).await;
        Ok(())
    }
}
