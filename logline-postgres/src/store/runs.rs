//! [`RunStore`] for [`PgStore`]: runs, checkpoints, events, steps, effect ledger, retention.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use logline_core::event::{Event, NewEvent, EVENT_SCHEMA_VERSION};
use logline_core::queue::NewJob;
use logline_core::run::{Run, RunId, Step};
use logline_core::store::{Checkpoint, Committed, EffectRecord, RunFilter, RunStore};
use logline_core::{Error, Result};
use serde_json::Value;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Row, ValueRef};
use tokio::time::Instant;
use uuid::Uuid;

use super::cols::{EventCols, RunCols};
use super::writes::{CheckpointWrite, EffectWrite, Write, Written};
use super::PgStore;
use crate::codec::{bigint, int, join, join_object, join_ts, page_args, parse_enum, unsigned};
use crate::error::{db, is_foreign_key_violation};
use crate::queue::bind_job;

/// Statuses that end a run (kept in sync with `RunStatus::is_terminal`).
const TERMINAL: &str = "('completed', 'failed', 'cancelled')";

/// The CTEs that insert a run at version 1 with its first events (seq 1..n); `ins` is empty
/// when the id is taken.
macro_rules! insert_run_ctes {
    () => {
        "
WITH ins AS (
    INSERT INTO runs (id, workflow_id, workflow_version, status, mode, tenant_id, user_id,
                      app_id, app_action_id, input, result, error, state, created_at,
                      updated_at, started_at, version, last_seq, finished_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 1, $17,
            CASE WHEN $4 IN ('completed', 'failed', 'cancelled') THEN $15::timestamptz END)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), ev AS (
    INSERT INTO events (run_id, seq, step_id, kind, payload, ts, ts_ns, schema_version)
    SELECT ins.id, e.ord, e.step_id, e.kind, e.payload, e.ts, e.ts_ns, $23
    FROM ins, unnest($18::uuid[], $19::text[], $20::text[]::jsonb[], $21::timestamptz[], $22::int2[])
              WITH ORDINALITY AS e(step_id, kind, payload, ts, ts_ns, ord)
)"
    };
}

/// Insert a run with its first events; returns nothing on conflict.
const INSERT_RUN: &str = concat!(insert_run_ctes!(), "\nSELECT count(*) FROM ins");

/// A run, its first events and its first job in one statement (one round trip, one
/// transaction). The job is inserted only with the run; it is missing from the answer when a
/// live job holds its idempotency key. The `NOTIFY` for the job's queue is part of the
/// statement, delivered at its commit.
const INSERT_RUN_WITH_JOB: &str = concat!(
    insert_run_ctes!(),
    ", job AS (
    INSERT INTO jobs (id, queue, payload, priority, run_at, max_attempts, idempotency_key,
                      tenant_id)
    SELECT $24::uuid, $25::text, $26::jsonb, $27::int4, COALESCE($28::timestamptz, now()),
           $29::int4, $30::text, $31::text
    FROM ins
    ON CONFLICT (queue, idempotency_key)
        WHERE idempotency_key IS NOT NULL AND state IN ('queued', 'running')
        DO NOTHING
    RETURNING id
)
SELECT (SELECT count(*) FROM ins) AS created, (SELECT id FROM job) AS job_id,
       (SELECT pg_notify($32, $25)::text FROM job) AS notified"
);

/// Binds a run and its events as `$1..$23` of the statements above.
fn bind_run<'q>(
    sql: &'q str,
    run: &Run,
    events: &[NewEvent],
) -> Result<(
    sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    i64,
)> {
    let ev = EventCols::new(events);
    let n = ev.len();
    let q = RunCols::new(run)?
        .bind(sqlx::query(sql))
        .bind(n)
        .bind(ev.step_ids)
        .bind(ev.kinds)
        .bind(ev.payloads)
        .bind(ev.ts)
        .bind(ev.ts_ns)
        .bind(EVENT_SCHEMA_VERSION as i16);
    Ok((q, n))
}

/// The first commit of a run with `n` events.
fn first_commit(n: i64) -> Result<Committed> {
    Ok(Committed {
        version: 1,
        last_seq: unsigned("last_seq", n)?,
    })
}

/// Creates a run on `conn` (a pooled connection or an open transaction).
async fn create_run(conn: &mut PgConnection, run: &Run, events: &[NewEvent]) -> Result<Committed> {
    let (q, n) = bind_run(INSERT_RUN, run, events)?;
    let created: i64 = q
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)?;
    if created == 0 {
        return Err(Error::Conflict(format!("run {} already exists", run.id)));
    }
    first_commit(n)
}

/// Creates a run and inserts its job (`job_id`, payload already storable) in one statement
/// on `conn`, notifying `job_channel`. Returns the first commit and whether the job was
/// inserted (false: a live job holds its idempotency key; the run exists regardless).
pub(crate) async fn create_run_with_job(
    conn: &mut PgConnection,
    run: &Run,
    events: &[NewEvent],
    job: &NewJob,
    job_id: Uuid,
    job_channel: &str,
) -> Result<(Committed, bool)> {
    let (q, n) = bind_run(INSERT_RUN_WITH_JOB, run, events)?;
    let row = bind_job(q, job_id, job, Some(job_channel))
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    let created: i64 = row.try_get("created").map_err(db)?;
    if created == 0 {
        return Err(Error::Conflict(format!("run {} already exists", run.id)));
    }
    let inserted: Option<Uuid> = row.try_get("job_id").map_err(db)?;
    Ok((first_commit(n)?, inserted.is_some()))
}

fn decode_run(row: &PgRow) -> Result<Run> {
    let input: Value = row.try_get("input").map_err(db)?;
    let result: Option<Value> = row.try_get("result").map_err(db)?;
    let error: Option<Value> = row.try_get("error").map_err(db)?;
    let state: Value = row.try_get("state").map_err(db)?;
    let version: i64 = row.try_get("version").map_err(db)?;
    let stored = join_object(
        "run",
        state,
        [
            ("input", input),
            ("result", result.unwrap_or(Value::Null)),
            ("error", error.unwrap_or(Value::Null)),
            ("version", Value::from(version)),
        ],
    )?;
    // Upgrades rows written by earlier releases.
    Run::from_stored_json(stored)
}

fn decode_step(row: &PgRow) -> Result<Step> {
    let input: Value = row.try_get("input").map_err(db)?;
    let output: Option<Value> = row.try_get("output").map_err(db)?;
    let error: Option<Value> = row.try_get("error").map_err(db)?;
    let extra: Value = row.try_get("extra").map_err(db)?;
    join(
        "step",
        extra,
        [
            ("input", input),
            ("output", output.unwrap_or(Value::Null)),
            ("error", error.unwrap_or(Value::Null)),
        ],
    )
}

fn decode_event(row: &PgRow) -> Result<Event> {
    let kind: String = row.try_get("kind").map_err(db)?;
    let seq: i64 = row.try_get("seq").map_err(db)?;
    let ts: DateTime<Utc> = row.try_get("ts").map_err(db)?;
    let ts_ns: i16 = row.try_get("ts_ns").map_err(db)?;
    let schema_version: i16 = row.try_get("schema_version").map_err(db)?;
    Ok(Event {
        run_id: row.try_get("run_id").map_err(db)?,
        seq: unsigned("seq", seq)?,
        step_id: row.try_get("step_id").map_err(db)?,
        kind: parse_enum("event kind", &kind)?,
        payload: row.try_get("payload").map_err(db)?,
        ts: join_ts(ts, ts_ns),
        schema_version: unsigned("schema_version", i64::from(schema_version))?,
    })
}

impl PgStore {
    /// The effect recorded at a position, if any.
    async fn effect_at(
        &self,
        run_id: RunId,
        step_index: i32,
        seq: i32,
    ) -> Result<Option<EffectRecord>> {
        let row = sqlx::query(
            "SELECT output, error, extra FROM effects
             WHERE run_id = $1 AND step_index = $2 AND seq = $3",
        )
        .bind(run_id)
        .bind(step_index)
        .bind(seq)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(decode_effect).transpose()
    }
}

fn decode_effect(row: &PgRow) -> Result<EffectRecord> {
    let output: Value = row.try_get("output").map_err(db)?;
    let error: Option<Value> = row.try_get("error").map_err(db)?;
    let extra: Value = row.try_get("extra").map_err(db)?;
    join(
        "effect",
        extra,
        [("output", output), ("error", error.unwrap_or(Value::Null))],
    )
}

/// Rows of a `runs r LEFT JOIN <child>` query: none means no such run; one row whose `key`
/// column is NULL means the run has no children.
fn of_run(run_id: RunId, rows: Vec<PgRow>, key: &str) -> Result<Vec<PgRow>> {
    let Some(first) = rows.first() else {
        return Err(Error::not_found("run", run_id));
    };
    let empty = rows.len() == 1 && first.try_get_raw(key).map_err(db)?.is_null();
    Ok(if empty { Vec::new() } else { rows })
}

impl PgStore {
    /// [`RunStore::create_run`] inside the caller's transaction (e.g. one from
    /// [`PgStore::begin`]): the run exists only if the transaction commits.
    pub async fn create_run_in(
        &self,
        conn: &mut PgConnection,
        run: &Run,
        events: &[NewEvent],
    ) -> Result<Committed> {
        create_run(conn, run, events).await
    }

    /// Removes up to `limit` terminal runs finished before `cutoff` with their events and
    /// steps, in one statement; `extra` is a further CTE over `victims` run before the runs
    /// go (the archive copy), or empty. Returns the runs removed.
    async fn retire_runs(&self, extra: &str, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
        let limit = bigint("limit", limit)?;
        let sql = format!(
            "WITH victims AS (
                 SELECT id FROM runs WHERE finished_at < $1 AND status IN {TERMINAL}
                 ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED
             ), de AS (
                 DELETE FROM events e USING victims v WHERE e.run_id = v.id
             ), ds AS (
                 DELETE FROM steps s USING victims v WHERE s.run_id = v.id
             ){extra}
             DELETE FROM runs r USING victims v WHERE r.id = v.id"
        );
        Ok(sqlx::query(&sql)
            .bind(cutoff)
            .bind(limit)
            .execute(&self.db.pool)
            .await
            .map_err(db)?
            .rows_affected())
    }

    /// Moves up to `limit` terminal runs last updated before `cutoff` into `runs_archive`
    /// (one JSON document per run with its steps, events and effects) and deletes them from
    /// the live tables, in one statement. Returns how many runs were archived; call again
    /// until 0.
    pub async fn archive_runs(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
        const ARCHIVE: &str = ", arch AS (
                 INSERT INTO runs_archive (id, workflow_id, tenant_id, status, created_at,
                                           updated_at, run, steps, events, effects)
                 SELECT r.id, r.workflow_id, r.tenant_id, r.status, r.created_at, r.updated_at,
                     to_jsonb(r.*) - 'id',
                     COALESCE((SELECT jsonb_agg(to_jsonb(s.*) - 'run_id' ORDER BY s.idx)
                               FROM steps s WHERE s.run_id = r.id), '[]'),
                     COALESCE((SELECT jsonb_agg(to_jsonb(e.*) - 'run_id' ORDER BY e.seq)
                               FROM events e WHERE e.run_id = r.id), '[]'),
                     COALESCE((SELECT jsonb_agg(to_jsonb(f.*) - 'run_id'
                                                ORDER BY f.step_index, f.seq)
                               FROM effects f WHERE f.run_id = r.id), '[]')
                 FROM runs r JOIN victims v ON v.id = r.id
                 ON CONFLICT (id) DO NOTHING
             )";
        self.retire_runs(ARCHIVE, cutoff, limit).await
    }
}

#[async_trait]
impl RunStore for PgStore {
    async fn create_run(&self, run: &Run, events: &[NewEvent]) -> Result<Committed> {
        let mut conn = self.db.pool.acquire().await.map_err(db)?;
        create_run(&mut conn, run, events).await
    }

    async fn get_run(&self, id: RunId) -> Result<Run> {
        let sql = "SELECT input, result, error, state, version FROM runs WHERE id = $1";
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("run", id))?;
        decode_run(&row)
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        let (offset, limit) = page_args(filter.page);
        let mut sql =
            String::from("SELECT input, result, error, state, version FROM runs WHERE TRUE");
        let mut n = 2;
        let mut next = |col: &str, sql: &mut String| {
            n += 1;
            sql.push_str(&format!(" AND {col} = ${n}"));
        };
        if filter.tenant_id.is_some() {
            next("tenant_id", &mut sql);
        }
        if filter.workflow_id.is_some() {
            next("workflow_id", &mut sql);
        }
        if filter.status.is_some() {
            next("status", &mut sql);
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT $2");
        let mut q = sqlx::query(&sql).bind(offset).bind(limit);
        if let Some(t) = &filter.tenant_id {
            q = q.bind(t);
        }
        if let Some(w) = &filter.workflow_id {
            q = q.bind(w);
        }
        if let Some(s) = filter.status {
            q = q.bind(s.as_str());
        }
        let rows = q.fetch_all(&self.db.pool).await.map_err(db)?;
        rows.iter().map(decode_run).collect()
    }

    async fn commit(&self, checkpoint: Checkpoint<'_>) -> Result<Committed> {
        let write = CheckpointWrite::new(checkpoint)?;
        let (run_id, expected, notify) = (write.run_id(), write.expected(), write.has_events());
        let written = self.write(Write::Checkpoint(Box::new(write))).await;
        let Written::Checkpoint(committed) = written.map_err(db)? else {
            return Err(mismatched());
        };
        let Some((version, last_seq)) = committed else {
            let current: Option<i64> = sqlx::query_scalar("SELECT version FROM runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(&self.db.pool)
                .await
                .map_err(db)?;
            return Err(match current {
                None => Error::not_found("run", run_id),
                Some(v) => Error::Conflict(format!(
                    "run {run_id} is at version {v}, checkpoint was built on {expected}"
                )),
            });
        };
        if notify {
            self.db.hub.run_changed(run_id);
        }
        Ok(Committed {
            version,
            last_seq: unsigned("last_seq", last_seq)?,
        })
    }

    async fn events(&self, run_id: RunId, after_seq: u64, limit: usize) -> Result<Vec<Event>> {
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT e.run_id, e.seq, e.step_id, e.kind, e.payload, e.ts, e.ts_ns, e.schema_version
             FROM runs r LEFT JOIN LATERAL (
                 SELECT * FROM events WHERE run_id = r.id AND seq > $2 ORDER BY seq LIMIT $3
             ) e ON TRUE
             WHERE r.id = $1 ORDER BY e.seq",
        )
        .bind(run_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.db.pool)
        .await
        .map_err(db)?;
        of_run(run_id, rows, "seq")?
            .iter()
            .map(decode_event)
            .collect()
    }

    async fn last_seq(&self, id: RunId) -> Result<u64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(db)?;
        match seq {
            Some(s) => unsigned("last_seq", s),
            None => Err(Error::not_found("run", id)),
        }
    }

    async fn steps(&self, run_id: RunId) -> Result<Vec<Step>> {
        let rows = sqlx::query(
            "SELECT s.idx, s.input, s.output, s.error, s.extra
             FROM runs r LEFT JOIN steps s ON s.run_id = r.id
             WHERE r.id = $1 ORDER BY s.idx",
        )
        .bind(run_id)
        .fetch_all(&self.db.pool)
        .await
        .map_err(db)?;
        of_run(run_id, rows, "idx")?
            .iter()
            .map(decode_step)
            .collect()
    }

    async fn record_effect(&self, effect: &EffectRecord) -> Result<EffectRecord> {
        let write = EffectWrite::new(effect)?;
        let (step_index, seq) = (write.step_index, write.seq);
        match self.write(Write::Effect(Box::new(write))).await {
            Ok(Written::Effect { stored: true }) => return Ok(effect.clone()),
            Ok(Written::Effect { stored: false }) => {}
            Ok(_) => return Err(mismatched()),
            Err(e) if is_foreign_key_violation(&e) => {
                return Err(Error::not_found("run", effect.run_id))
            }
            Err(e) => return Err(db(e)),
        }
        // Another writer recorded it first (and has committed: ON CONFLICT waited for it).
        self.effect_at(effect.run_id, step_index, seq)
            .await?
            .ok_or_else(|| Error::not_found("run", effect.run_id))
    }

    async fn record_intent(
        &self,
        intent: &EffectRecord,
        fence: i64,
    ) -> Result<Option<EffectRecord>> {
        let write = EffectWrite::new(intent)?;
        let (step_index, seq) = (write.step_index, write.seq);
        let written = self.write(Write::Intent(Box::new(write), fence)).await;
        let Written::Intent { version, inserted } = written.map_err(db)? else {
            return Err(mismatched());
        };
        match version {
            None => Err(Error::not_found("run", intent.run_id)),
            Some(v) if v != fence => Err(Error::Conflict(format!(
                "run {} moved to version {v} (this execution holds {fence})",
                intent.run_id
            ))),
            Some(_) if inserted => Ok(None),
            Some(_) => self.effect_at(intent.run_id, step_index, seq).await,
        }
    }

    async fn release_intent(&self, run_id: RunId, step_index: u32, seq: u32) -> Result<()> {
        sqlx::query(
            "DELETE FROM effects WHERE run_id = $1 AND step_index = $2 AND seq = $3
               AND extra->>'state' = 'intended'",
        )
        .bind(run_id)
        .bind(int("step index", step_index)?)
        .bind(int("effect seq", seq)?)
        .execute(&self.db.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn effects(&self, run_id: RunId, step_index: u32) -> Result<Vec<EffectRecord>> {
        let rows = sqlx::query(
            "SELECT f.seq, f.output, f.error, f.extra
             FROM runs r LEFT JOIN effects f ON f.run_id = r.id AND f.step_index = $2
             WHERE r.id = $1 ORDER BY f.seq",
        )
        .bind(run_id)
        .bind(int("step index", step_index)?)
        .fetch_all(&self.db.pool)
        .await
        .map_err(db)?;
        of_run(run_id, rows, "seq")?
            .iter()
            .map(decode_effect)
            .collect()
    }

    async fn wait_for_events(
        &self,
        run_id: RunId,
        after_seq: u64,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let hub = &self.db.hub;
        // Register first, then listen, then read: a commit after the read wakes us.
        let mut waiter = hub.subscribe_run(run_id);
        hub.ensure_listening(timeout.min(Duration::from_secs(2)))
            .await;
        loop {
            if self.last_seq(run_id).await? > after_seq {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            // Bounded by the polling interval: a lost notification costs at most that.
            let slice = (deadline - now).min(hub.poll_interval());
            if waiter.changed(slice).await {
                // Woken by a notification (or a reconnect): the caller reads what is new.
                return Ok(());
            }
        }
    }

    async fn purge_runs(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
        self.retire_runs("", cutoff, limit).await
    }
}

/// A write answered with another write's outcome (a bug in the batch bookkeeping).
fn mismatched() -> Error {
    Error::Internal("group commit answered a write with another kind of outcome".into())
}

/// Retention that archives: finished runs move to `runs_archive` (with their steps and
/// events) instead of being deleted. Give it to
/// [`RetentionJob::retiring_runs_with`](logline_core::retention::RetentionJob::retiring_runs_with).
#[derive(Debug, Clone)]
pub struct ArchiveRuns(pub PgStore);

#[async_trait]
impl logline_core::retention::RunRetirement for ArchiveRuns {
    async fn retire_runs(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
        self.0.archive_runs(cutoff, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses_match_core() {
        use logline_core::run::RunStatus::*;
        for s in [Pending, Running, Paused, Completed, Failed, Cancelled] {
            let quoted = format!("'{}'", s.as_str());
            assert_eq!(TERMINAL.contains(&quoted), s.is_terminal(), "{s:?}");
        }
    }
}
