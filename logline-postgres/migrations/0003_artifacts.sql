-- Artifacts (uploads and tool outputs: metadata only, the bytes live in object storage),
-- notes and to-dos. Every row is owned by a tenant and a user (`''` for none); every read
-- filters on both.

CREATE TABLE artifacts (
    id            UUID        PRIMARY KEY,
    tenant_id     TEXT        NOT NULL,
    user_id       TEXT        NOT NULL,
    task_id       UUID,
    name          TEXT        NOT NULL,
    content_type  TEXT        NOT NULL,
    size_bytes    BIGINT      NOT NULL CHECK (size_bytes >= 0),
    sha256        TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
-- list(owner) and list(owner, task), newest first.
CREATE INDEX artifacts_owner_idx ON artifacts (tenant_id, user_id, created_at DESC, id DESC);
CREATE INDEX artifacts_task_idx ON artifacts (tenant_id, user_id, task_id, created_at DESC, id DESC)
    WHERE task_id IS NOT NULL;

CREATE TABLE notes (
    id          UUID        PRIMARY KEY,
    tenant_id   TEXT        NOT NULL,
    user_id     TEXT        NOT NULL,
    title       TEXT        NOT NULL,
    body        TEXT        NOT NULL,
    task_id     UUID,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX notes_owner_idx ON notes (tenant_id, user_id, created_at DESC, id DESC);

CREATE TABLE todos (
    id          UUID        PRIMARY KEY,
    tenant_id   TEXT        NOT NULL,
    user_id     TEXT        NOT NULL,
    title       TEXT        NOT NULL,
    due         DATE,
    done        BOOLEAN     NOT NULL DEFAULT FALSE,
    task_id     UUID,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX todos_owner_idx ON todos (tenant_id, user_id, created_at DESC, id DESC);
