//! The columns of a run, a step and a batch of events, as the write statements bind them.

use chrono::{DateTime, Utc};
use logline_core::event::NewEvent;
use logline_core::run::{Run, Step};
use logline_core::Result;
use serde_json::Value;
use sqlx::Postgres;
use uuid::Uuid;

use crate::codec::{int, non_null, split, split_object, split_ts};

/// The run's columns, in the order of `$1..$16` in the run insert.
pub(super) struct RunCols {
    pub(super) id: Uuid,
    pub(super) workflow_id: String,
    pub(super) workflow_version: String,
    pub(super) status: String,
    pub(super) mode: String,
    pub(super) tenant_id: String,
    pub(super) user_id: Option<String>,
    pub(super) app_id: Option<String>,
    pub(super) app_action_id: Option<String>,
    pub(super) input: Value,
    pub(super) result: Option<Value>,
    pub(super) error: Option<Value>,
    pub(super) state: Value,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    pub(super) started_at: Option<DateTime<Utc>>,
}

impl RunCols {
    pub(super) fn new(run: &Run) -> Result<Self> {
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

    pub(super) fn bind<'q>(
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
pub(super) struct EventCols {
    pub(super) step_ids: Vec<Option<Uuid>>,
    pub(super) kinds: Vec<String>,
    /// JSON texts, bound as `text[]` and cast to `jsonb[]` by the statement.
    pub(super) payloads: Vec<String>,
    pub(super) ts: Vec<DateTime<Utc>>,
    pub(super) ts_ns: Vec<i16>,
}

impl EventCols {
    pub(super) fn new(events: &[NewEvent]) -> Self {
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
            c.payloads.push(e.payload.text_without_nul().into_owned());
            c.ts.push(ts);
            c.ts_ns.push(ns);
        }
        c
    }

    pub(super) fn len(&self) -> i64 {
        i64::try_from(self.kinds.len()).unwrap_or(i64::MAX)
    }
}

/// The step's columns (`None` when the checkpoint has no step).
#[derive(Default)]
pub(super) struct StepCols {
    pub(super) idx: Option<i32>,
    pub(super) id: Option<Uuid>,
    pub(super) node_id: Option<String>,
    pub(super) node_type: Option<String>,
    pub(super) status: Option<String>,
    pub(super) input: Option<Value>,
    pub(super) output: Option<Value>,
    pub(super) error: Option<Value>,
    pub(super) extra: Option<Value>,
    pub(super) started_at: Option<DateTime<Utc>>,
    pub(super) finished_at: Option<DateTime<Utc>>,
}

impl StepCols {
    pub(super) fn new(step: Option<&Step>) -> Result<Self> {
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
