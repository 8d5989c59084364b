//! [`RunStore`] for [`PgStore`]: runs, checkpoints, events, steps, effect ledger, retention.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use logline_core::event::{Event, NewEvent, EVENT_SCHEMA_VERSION};
use logline_core::run::{Run, RunId, Step};
use logline_core::store::{Checkpoint, Committed, EffectRecord, RunFilter, RunStore};
use logline_core::{Error, Result};
use serde_json::Value;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Postgres, Row, ValueRef};
use tokio::time::Instant;
use uuid::Uuid;

use super::PgStore;
use crate::codec::{
    bigint, int, join, join_object, join_ts, non_null, page_args, parse_enum, split, split_object,
    split_ts, storable, to_json, unsigned,
};
use crate::error::{db, is_foreign_key_violation};

/// Statuses that end a run (kept in sync with `RunStatus::is_terminal`).
const TERMINAL: &str = "('completed', 'failed', 'cancelled')";

/// The run's columns, in the order of `$1..$16` in [`INSERT_RUN`].
struct RunCols {
    id: Uuid,
    workflow_id: String,
    workflow_version: String,
    status: String,
    mode: String,
    tenant_id: String,
    user_id: Option<String>,
    app_id: Option<String>,
    app_action_id: Option<String>,
    input: Value,
    result: Option<Value>,
    error: Option<Value>,
    state: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
}

impl RunCols {
    fn new(run: &Run) -> Result<Self> {
        // `state` keeps the layout version of the stored run (`Run::to_stored_json`).
        let ([input, result, error, _version], state) = split_object(
            run.to_stored_json()?,
            ["input", "result", "error", "version"],
        )?;
        Ok(RunCols {
            id: run.id,
            workflow_id: run.workflow_id.clone(),
            workflow_version: run.workflow_version.clone(),
            status: run.status.as_str().to_string(),
            mode: run.mode.as_str().to_string(),
            tenant_id: run.subject.tenant_id.clone(),
            user_id: run.subject.user_id.clone(),
            app_id: run.subject.app_id.clone(),
            app_action_id: run.app_action_id.clone(),
            input,
            result: non_null(result),
            error: non_null(error),
            state,
            created_at: run.created_at,
            updated_at: run.updated_at,
            started_at: run.started_at,
        })
    }

    fn bind<'q>(
        self,
        q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
        q.bind(self.id)
            .bind(self.workflow_id)
            .bind(self.workflow_version)
            .bind(self.status)
            .bind(self.mode)
            .bind(self.tenant_id)
            .bind(self.user_id)
            .bind(self.app_id)
            .bind(self.app_action_id)
            .bind(self.input)
            .bind(self.result)
            .bind(self.error)
            .bind(self.state)
            .bind(self.created_at)
            .bind(self.updated_at)
            .bind(self.started_at)
    }
}

/// Events as parallel arrays for `unnest`.
#[derive(Default)]
struct EventCols {
    step_ids: Vec<Option<Uuid>>,
    kinds: Vec<String>,
    payloads: Vec<Value>,
    ts: Vec<DateTime<Utc>>,
    ts_ns: Vec<i16>,
}

impl EventCols {
    fn new(events: &[NewEvent]) -> Self {
        let mut c = EventCols {
            step_ids: Vec::with_capacity(events.len()),
            kinds: Vec::with_capacity(events.len()),
            payloads: Vec::with_capacity(events.len()),
            ts: Vec::with_capacity(events.len()),
            ts_ns: Vec::with_capacity(events.len()),
        };
        for e in events {
            let (ts, ns) = split_ts(e.ts);
            c.step_ids.push(e.step_id);
            c.kinds.push(e.kind.as_str().to_string());
            c.payloads.push(storable(e.payload.clone()));
            c.ts.push(ts);
            c.ts_ns.push(ns);
        }
        c
    }

    fn len(&self) -> i64 {
        i64::try_from(self.kinds.len()).unwrap_or(i64::MAX)
    }
}

/// The step's columns (`None` when the checkpoint has no step).
#[derive(Default)]
struct StepCols {
    idx: Option<i32>,
    id: Option<Uuid>,
    node_id: Option<String>,
    node_type: Option<String>,
    status: Option<String>,
    input: Option<Value>,
    output: Option<Value>,
    error: Option<Value>,
    extra: Option<Value>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl StepCols {
    fn new(step: Option<&Step>) -> Result<Self> {
        let Some(s) = step else {
            return Ok(StepCols::default());
        };
        let ([input, output, error], extra) = split(s, ["input", "output", "error"])?;
        Ok(StepCols {
            idx: Some(int("step index", s.index)?),
            id: Some(s.id),
            node_id: Some(s.node_id.clone()),
            node_type: Some(s.node_type.as_str().to_string()),
            status: Some(s.status.as_str().to_string()),
            input: Some(input),
            output: non_null(output),
            error: non_null(error),
            extra: Some(extra),
            started_at: Some(s.started_at),
            finished_at: s.finished_at,
        })
    }
}

/// Insert a run at version 1 with its first events (seq 1..n); returns nothing on conflict.
const INSERT_RUN: &str = "
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
    FROM ins, unnest($18::uuid[], $19::text[], $20::jsonb[], $21::timestamptz[], $22::int2[])
              WITH ORDINALITY AS e(step_id, kind, payload, ts, ts_ns, ord)
)
SELECT count(*) FROM ins";

/// A checkpoint in one statement: the run update (only at the expected version, which also
/// locks the row), the step upsert and the events numbered after the run's `last_seq`.
/// Identity fields (workflow, input, subject, creation time) are fixed at creation and not
/// rewritten; between the first and the last step no indexed column changes, so the update
/// is HOT.
const COMMIT: &str = "
WITH upd AS (
    UPDATE runs SET status = $2, mode = $3, result = $4, error = $5, state = $6,
        updated_at = $7, started_at = $8, version = version + 1, last_seq = last_seq + $10,
        finished_at = CASE WHEN $2 IN ('completed', 'failed', 'cancelled')
                           THEN $7::timestamptz END
    WHERE id = $1 AND version = $9
    RETURNING id, version, last_seq
), st AS (
    INSERT INTO steps (run_id, idx, id, node_id, node_type, status, input, output, error,
                       extra, started_at, finished_at)
    SELECT upd.id, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21
    FROM upd WHERE $11::int IS NOT NULL
    ON CONFLICT (run_id, idx) DO UPDATE SET id = EXCLUDED.id, node_id = EXCLUDED.node_id,
        node_type = EXCLUDED.node_type, status = EXCLUDED.status, input = EXCLUDED.input,
        output = EXCLUDED.output, error = EXCLUDED.error, extra = EXCLUDED.extra,
        started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at
), ev AS (
    INSERT INTO events (run_id, seq, step_id, kind, payload, ts, ts_ns, schema_version)
    SELECT upd.id, upd.last_seq - $10 + e.ord, e.step_id, e.kind, e.payload, e.ts, e.ts_ns, $27
    FROM upd, unnest($22::uuid[], $23::text[], $24::jsonb[], $25::timestamptz[], $26::int2[])
              WITH ORDINALITY AS e(step_id, kind, payload, ts, ts_ns, ord)
)
SELECT version, last_seq FROM upd";

/// Creates a run on `conn` (a pooled connection or an open transaction).
async fn create_run(conn: &mut PgConnection, run: &Run, events: &[NewEvent]) -> Result<Committed> {
    let cols = RunCols::new(run)?;
    let ev = EventCols::new(events);
    let n = ev.len();
    let created: i64 = cols
        .bind(sqlx::query(INSERT_RUN))
        .bind(n)
        .bind(ev.step_ids)
        .bind(ev.kinds)
        .bind(ev.payloads)
        .bind(ev.ts)
        .bind(ev.ts_ns)
        .bind(EVENT_SCHEMA_VERSION as i16)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)?;
    if created == 0 {
        return Err(Error::Conflict(format!("run {} already exists", run.id)));
    }
    Ok(Committed {
        version: 1,
        last_seq: unsigned("last_seq", n)?,
    })
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
        let Checkpoint { run, step, events } = checkpoint;
        let expected = run.version;
        let run_id = run.id;
        let mut cols = RunCols::new(run)?;
        // The store stamps the change (as the memory store does).
        let now = Utc::now();
        cols.updated_at = now;
        if let Value::Object(m) = &mut cols.state {
            m.insert("updated_at".into(), to_json(&now)?);
        }
        let st = StepCols::new(step.as_ref())?;
        let ev = EventCols::new(&events);
        let n = ev.len();
        let row = sqlx::query(COMMIT)
            .bind(run_id)
            .bind(cols.status)
            .bind(cols.mode)
            .bind(cols.result)
            .bind(cols.error)
            .bind(cols.state)
            .bind(cols.updated_at)
            .bind(cols.started_at)
            .bind(expected)
            .bind(n)
            .bind(st.idx)
            .bind(st.id)
            .bind(st.node_id)
            .bind(st.node_type)
            .bind(st.status)
            .bind(st.input)
            .bind(st.output)
            .bind(st.error)
            .bind(st.extra)
            .bind(st.started_at)
            .bind(st.finished_at)
            .bind(ev.step_ids)
            .bind(ev.kinds)
            .bind(ev.payloads)
            .bind(ev.ts)
            .bind(ev.ts_ns)
            .bind(EVENT_SCHEMA_VERSION as i16)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(db)?;
        let Some(row) = row else {
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
        let version: i64 = row.try_get(0).map_err(db)?;
        let last_seq: i64 = row.try_get(1).map_err(db)?;
        if n > 0 {
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
        let ([output, error], extra) = split(effect, ["output", "error"])?;
        let step_index = int("step index", effect.step_index)?;
        let seq = int("effect seq", effect.seq)?;
        // Insert, or replace an unresolved intent; a completed record stays as it is.
        let res = sqlx::query(
            "INSERT INTO effects (run_id, step_index, seq, kind, key, output, error, extra,
                                  recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (run_id, step_index, seq) DO UPDATE
               SET output = EXCLUDED.output, error = EXCLUDED.error, extra = EXCLUDED.extra,
                   recorded_at = EXCLUDED.recorded_at
               WHERE effects.extra->>'state' = 'intended'",
        )
        .bind(effect.run_id)
        .bind(step_index)
        .bind(seq)
        .bind(&effect.kind)
        .bind(&effect.key)
        .bind(&output)
        .bind(non_null(error))
        .bind(&extra)
        .bind(effect.recorded_at)
        .execute(&self.db.pool)
        .await;
        match res {
            Ok(r) if r.rows_affected() == 1 => return Ok(effect.clone()),
            Ok(_) => {}
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
        let ([output, error], extra) = split(intent, ["output", "error"])?;
        let step_index = int("step index", intent.step_index)?;
        let seq = int("effect seq", intent.seq)?;
        // The run row is share-locked for the statement, so a concurrent claim (a version
        // bump) either comes before this check or waits until the intent is committed.
        let row = sqlx::query(
            "WITH fence AS (SELECT version FROM runs WHERE id = $1 FOR SHARE),
                  ins AS (
                    INSERT INTO effects (run_id, step_index, seq, kind, key, output, error,
                                         extra, recorded_at)
                    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
                    WHERE (SELECT version FROM fence) = $10
                    ON CONFLICT (run_id, step_index, seq) DO NOTHING
                    RETURNING 1)
             SELECT (SELECT version FROM fence) AS version,
                    EXISTS (SELECT 1 FROM ins) AS inserted",
        )
        .bind(intent.run_id)
        .bind(step_index)
        .bind(seq)
        .bind(&intent.kind)
        .bind(&intent.key)
        .bind(&output)
        .bind(non_null(error))
        .bind(&extra)
        .bind(intent.recorded_at)
        .bind(fence)
        .fetch_one(&self.db.pool)
        .await
        .map_err(db)?;
        let version: Option<i64> = row.try_get("version").map_err(db)?;
        let inserted: bool = row.try_get("inserted").map_err(db)?;
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
                // Woken by a notification (or a reconnect): re-read to confirm.
                continue;
            }
        }
    }

    async fn purge_runs(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
        self.retire_runs("", cutoff, limit).await
    }
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
