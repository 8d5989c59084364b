-- Chat: conversations, messages and tasks. A task is a run of the chat workflow (same id);
-- every row is reached through its conversation's (tenant_id, user_id).

CREATE TABLE chat_conversations (
    id            UUID        PRIMARY KEY,
    tenant_id     TEXT        NOT NULL,
    user_id       TEXT        NOT NULL,
    title         TEXT        NOT NULL,
    summary       TEXT,
    summary_upto  BIGINT      NOT NULL DEFAULT 0,
    next_seq      BIGINT      NOT NULL DEFAULT 1,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX chat_conversations_owner
    ON chat_conversations (tenant_id, user_id, created_at DESC, id DESC);

CREATE TABLE chat_messages (
    id               UUID        PRIMARY KEY,
    conversation_id  UUID        NOT NULL REFERENCES chat_conversations (id) ON DELETE CASCADE,
    seq              BIGINT      NOT NULL,
    role             TEXT        NOT NULL CHECK (role IN ('user', 'assistant')),
    content          TEXT        NOT NULL,
    attachments      JSONB       NOT NULL DEFAULT '[]',
    task_id          UUID,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, seq)
);

CREATE TABLE chat_tasks (
    id                 UUID        PRIMARY KEY,
    conversation_id    UUID        NOT NULL REFERENCES chat_conversations (id) ON DELETE CASCADE,
    message_id         UUID        NOT NULL REFERENCES chat_messages (id) ON DELETE CASCADE,
    router             JSONB,
    answer_message_id  UUID        REFERENCES chat_messages (id) ON DELETE SET NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX chat_tasks_conversation ON chat_tasks (conversation_id, created_at, id);
