-- LogLine on PostgreSQL, schema v1: the tables behind logline-core's store and queue.
--
-- Every table lives in the schema named by `PgConfig::schema` (the connection's search_path),
-- so one database can hold several isolated LogLine installations (and parallel tests).
-- Definition ids are text (`demo_ticket_triage_v1`, `ticketing.list_open`); run, step and job
-- ids are UUIDs. Columns that queries filter or sort on are typed; each record's remaining
-- fields are kept as JSON (`extra`/`spec`/`state`) so a record reads back exactly as written
-- (including nanosecond timestamps) and new fields of the core types need no migration.

-- ── Definitions (control plane) ─────────────────────────────────────────────────────────────

CREATE TABLE workflows (
    id              TEXT        NOT NULL,
    version         TEXT        NOT NULL,
    name            TEXT        NOT NULL,
    definition      JSONB       NOT NULL,
    extra           JSONB       NOT NULL DEFAULT '{}',
    created_at      TIMESTAMPTZ NOT NULL,
    registered_seq  BIGINT      GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (id, version)
);
-- get_workflow(id, None) and list_workflows: latest registered version per id.
CREATE INDEX workflows_latest_idx ON workflows (id, registered_seq DESC);

CREATE TABLE tools (
    id                    TEXT        PRIMARY KEY,
    name                  TEXT        NOT NULL,
    toolkit               TEXT,
    hub                   TEXT        NOT NULL,
    risk_level            TEXT        NOT NULL CHECK (risk_level IN ('low', 'medium', 'high')),
    tags                  TEXT[]      NOT NULL DEFAULT '{}',
    side_effects          TEXT[]      NOT NULL DEFAULT '{}',
    requires_confirmation BOOLEAN     NOT NULL DEFAULT FALSE,
    spec                  JSONB       NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    stored_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX tools_toolkit_idx ON tools (toolkit, id);
CREATE INDEX tools_hub_idx ON tools (hub, id);
CREATE INDEX tools_risk_level_idx ON tools (risk_level);

CREATE TABLE agents (
    id            TEXT        PRIMARY KEY,
    name          TEXT        NOT NULL,
    allowed_tools TEXT[]      NOT NULL DEFAULT '{}',
    spec          JSONB       NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE policies (
    id         TEXT        PRIMARY KEY,
    name       TEXT        NOT NULL,
    scope      TEXT        NOT NULL,
    scope_id   TEXT,
    effect     TEXT        NOT NULL,
    priority   INTEGER     NOT NULL DEFAULT 0,
    enabled    BOOLEAN     NOT NULL DEFAULT TRUE,
    spec       JSONB       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX policies_enabled_idx ON policies (id) WHERE enabled;

-- Apps: a packaged set of workflows, actions and scopes, keyed by text ids like the rest of
-- the control plane.
CREATE TABLE apps (
    id              TEXT        PRIMARY KEY,
    name            TEXT        NOT NULL,
    icon            TEXT,
    description     TEXT,
    owner           TEXT,
    visibility      TEXT        NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'org', 'public')),
    default_view_id TEXT,
    manifest        JSONB       NOT NULL DEFAULT '{}',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE app_scopes (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    scope_type  TEXT NOT NULL CHECK (scope_type IN ('tool', 'memory', 'external')),
    scope_value TEXT NOT NULL,
    UNIQUE (app_id, scope_type, scope_value)
);

CREATE TABLE app_workflows (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    app_id       TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    alias        TEXT NOT NULL,
    workflow_id  TEXT NOT NULL,
    label        TEXT NOT NULL,
    default_mode TEXT NOT NULL DEFAULT 'draft' CHECK (default_mode IN ('draft', 'auto')),
    UNIQUE (app_id, alias)
);
CREATE INDEX app_workflows_workflow_idx ON app_workflows (workflow_id);

CREATE TABLE app_actions (
    id              UUID  PRIMARY KEY DEFAULT gen_random_uuid(),
    app_id          TEXT  NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    action_id       TEXT  NOT NULL,
    label           TEXT  NOT NULL,
    app_workflow_id UUID  NOT NULL REFERENCES app_workflows (id) ON DELETE CASCADE,
    input_mapping   JSONB NOT NULL DEFAULT '{}',
    UNIQUE (app_id, action_id)
);
CREATE INDEX app_actions_workflow_idx ON app_actions (app_workflow_id);

-- Audit trail of changes to definitions; user and tenant ids are text like run subjects.
CREATE TABLE audit_logs (
    id            UUID        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       TEXT,
    tenant_id     TEXT,
    action        TEXT        NOT NULL,
    resource_type TEXT        NOT NULL,
    resource_id   TEXT,
    changes       JSONB,
    ip_address    TEXT,
    user_agent    TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_user_idx ON audit_logs (user_id);
CREATE INDEX audit_logs_resource_idx ON audit_logs (resource_type, resource_id);
CREATE INDEX audit_logs_tenant_idx ON audit_logs (tenant_id);
CREATE INDEX audit_logs_created_idx ON audit_logs (created_at);

-- ── Execution (runs, steps, events, effect ledger) ─────────────────────────────────────────

CREATE TABLE runs (
    id               UUID        PRIMARY KEY,
    workflow_id      TEXT        NOT NULL,
    workflow_version TEXT        NOT NULL,
    status           TEXT        NOT NULL
        CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed', 'cancelled')),
    mode             TEXT        NOT NULL,
    tenant_id        TEXT        NOT NULL,
    user_id          TEXT,
    app_id           TEXT,
    app_action_id    TEXT,
    input            JSONB       NOT NULL,
    result           JSONB,
    error            JSONB,
    -- Every other field of the run (subject, budget, usage, cursor, gate, approvals, exact
    -- timestamps, ...).
    state            JSONB       NOT NULL,
    -- Optimistic concurrency: a checkpoint applies only at the version it was built on.
    version          BIGINT      NOT NULL,
    -- Sequence number of the run's last event; events get last_seq + 1, ... in the same
    -- statement that bumps `version`, so sequences are unique and gap-free.
    last_seq         BIGINT      NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    -- updated_at of a terminal run, NULL while it runs (retention reads it). Not indexing
    -- updated_at itself keeps the checkpoints between the first and the last step HOT
    -- updates: no index is touched, only the heap page (hence the fillfactor).
    finished_at      TIMESTAMPTZ
) WITH (fillfactor = 80);
-- list_runs: newest first, optionally by tenant / workflow / status.
CREATE INDEX runs_created_idx ON runs (created_at DESC, id DESC);
CREATE INDEX runs_tenant_idx ON runs (tenant_id, created_at DESC, id DESC);
CREATE INDEX runs_workflow_idx ON runs (workflow_id, created_at DESC, id DESC);
CREATE INDEX runs_status_idx ON runs (status, created_at DESC, id DESC);
-- purge_runs / archive_runs: terminal runs by last change.
CREATE INDEX runs_retention_idx ON runs (finished_at) WHERE finished_at IS NOT NULL;

-- Steps and events are written only by the statement that updates (or inserts) their run
-- row, joined to it, so they cannot outlive or precede their run; they carry no foreign
-- key to spare a lookup and a row lock per inserted row on the hot path. Retention deletes
-- them explicitly.
CREATE TABLE steps (
    run_id      UUID        NOT NULL,
    idx         INTEGER     NOT NULL CHECK (idx >= 0),
    -- Derived from (run_id, idx) (`logline_core::run::step_id`).
    id          UUID        NOT NULL,
    node_id     TEXT        NOT NULL,
    node_type   TEXT        NOT NULL,
    status      TEXT        NOT NULL,
    input       JSONB       NOT NULL,
    output      JSONB,
    error       JSONB,
    extra       JSONB       NOT NULL DEFAULT '{}',
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (run_id, idx)
);

CREATE TABLE events (
    run_id         UUID        NOT NULL,
    seq            BIGINT      NOT NULL CHECK (seq >= 1),
    step_id        UUID,
    kind           TEXT        NOT NULL,
    payload        JSONB       NOT NULL,
    ts             TIMESTAMPTZ NOT NULL,
    -- Nanoseconds below PostgreSQL's microsecond resolution, so `ts` reads back exactly.
    ts_ns          SMALLINT    NOT NULL DEFAULT 0,
    schema_version SMALLINT    NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Effect ledger: one row per LLM/tool effect inside a step; a replay reads instead of calling.
CREATE TABLE effects (
    run_id      UUID        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_index  INTEGER     NOT NULL CHECK (step_index >= 0),
    seq         INTEGER     NOT NULL CHECK (seq >= 0),
    kind        TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    output      JSONB       NOT NULL,
    error       JSONB,
    extra       JSONB       NOT NULL DEFAULT '{}',
    recorded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, step_index, seq)
);

-- ── Work queue ─────────────────────────────────────────────────────────────────────────────

CREATE TABLE jobs (
    id              UUID        PRIMARY KEY,
    queue           TEXT        NOT NULL,
    payload         JSONB       NOT NULL,
    state           TEXT        NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'completed', 'dead_lettered')),
    priority        INTEGER     NOT NULL DEFAULT 0,
    run_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    max_attempts    INTEGER     NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    idempotency_key TEXT,
    tenant_id       TEXT,
    -- The current claim: its token, expiry (database clock) and holder.
    lease_token     UUID,
    lease_until     TIMESTAMPTZ,
    worker          TEXT,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ
);
-- claim: eligible queued jobs, highest priority first, then oldest run_at.
CREATE INDEX jobs_claim_idx ON jobs (queue, priority DESC, run_at, id) WHERE state = 'queued';
-- wait_for_work: next scheduled job of a queue.
CREATE INDEX jobs_due_idx ON jobs (queue, run_at) WHERE state = 'queued';
-- claim (reclaim) and wait_for_work: expired leases.
CREATE INDEX jobs_lease_idx ON jobs (queue, lease_until) WHERE state = 'running';
-- Idempotent enqueue: one live job per (queue, key).
CREATE UNIQUE INDEX jobs_idempotency_idx ON jobs (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND state IN ('queued', 'running');
-- dead_letters: newest first.
CREATE INDEX jobs_dead_idx ON jobs (queue, finished_at DESC) WHERE state = 'dead_lettered';
-- purge_jobs: completed jobs by completion time.
CREATE INDEX jobs_done_idx ON jobs (finished_at) WHERE state = 'completed';

-- ── Retention ──────────────────────────────────────────────────────────────────────────────

-- PgStore::archive_runs moves finished runs here (one document per run) before deleting them.
CREATE TABLE runs_archive (
    id          UUID        PRIMARY KEY,
    workflow_id TEXT        NOT NULL,
    tenant_id   TEXT        NOT NULL,
    status      TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    archived_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    run         JSONB       NOT NULL,
    steps       JSONB       NOT NULL,
    events      JSONB       NOT NULL,
    effects     JSONB       NOT NULL
);
CREATE INDEX runs_archive_tenant_idx ON runs_archive (tenant_id, created_at DESC);
CREATE INDEX runs_archive_archived_idx ON runs_archive (archived_at);
