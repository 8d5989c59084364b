-- The HTTP server's records: users, sessions (refresh-token families), API keys, and which
-- tenant owns each definition created over HTTP. Audit rows use `audit_logs` (0001).

CREATE TABLE auth_users (
    id            UUID        PRIMARY KEY,
    email         TEXT        NOT NULL,
    email_lower   TEXT        NOT NULL UNIQUE,
    password_hash TEXT        NOT NULL,
    name          TEXT,
    role          TEXT        NOT NULL CHECK (role IN ('admin', 'developer', 'user')),
    tenant_id     TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX auth_users_tenant_idx ON auth_users (tenant_id);

CREATE TABLE auth_sessions (
    id         UUID        PRIMARY KEY,
    user_id    UUID        NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    revoked_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX auth_sessions_user_idx ON auth_sessions (user_id);

CREATE TABLE auth_refresh_tokens (
    token_hash TEXT        PRIMARY KEY,
    session_id UUID        NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    user_id    UUID        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX auth_refresh_tokens_session_idx ON auth_refresh_tokens (session_id);

CREATE TABLE auth_api_keys (
    id           UUID        PRIMARY KEY,
    user_id      UUID        NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    tenant_id    TEXT        NOT NULL,
    name         TEXT        NOT NULL,
    prefix       TEXT        NOT NULL,
    key_hash     TEXT        NOT NULL UNIQUE,
    permissions  TEXT[]      NOT NULL,
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX auth_api_keys_user_idx ON auth_api_keys (user_id, created_at DESC);

-- tenant_id NULL: shared by the host with every tenant.
CREATE TABLE definition_owners (
    kind       TEXT      NOT NULL,
    id         TEXT      NOT NULL,
    tenant_id  TEXT,
    seq        BIGSERIAL NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX definition_owners_visible_idx ON definition_owners (kind, tenant_id, seq);

CREATE INDEX audit_logs_tenant_created_idx ON audit_logs (tenant_id, created_at DESC);

CREATE TABLE alert_configs (
    id                  UUID             PRIMARY KEY,
    tenant_id           TEXT             NOT NULL,
    name                TEXT             NOT NULL,
    description         TEXT,
    rule_type           TEXT             NOT NULL
        CHECK (rule_type IN ('error_rate', 'budget_exceeded', 'policy_denials')),
    threshold           DOUBLE PRECISION NOT NULL,
    comparison_operator TEXT             NOT NULL CHECK (comparison_operator IN ('>', '<', '>=', '<=', '==')),
    window_secs         BIGINT           NOT NULL,
    cooldown_secs       BIGINT           NOT NULL,
    webhook_url         TEXT,
    enabled             BOOLEAN          NOT NULL,
    created_at          TIMESTAMPTZ      NOT NULL
);
CREATE INDEX alert_configs_tenant_idx ON alert_configs (tenant_id, created_at);

CREATE TABLE alert_history (
    id              UUID        PRIMARY KEY,
    alert_config_id UUID        NOT NULL REFERENCES alert_configs (id) ON DELETE CASCADE,
    tenant_id       TEXT        NOT NULL,
    triggered_at    TIMESTAMPTZ NOT NULL,
    resolved_at     TIMESTAMPTZ,
    message         TEXT        NOT NULL,
    metadata        JSONB       NOT NULL
);
CREATE INDEX alert_history_config_idx ON alert_history (alert_config_id, triggered_at DESC);
CREATE INDEX alert_history_tenant_idx ON alert_history (tenant_id, triggered_at DESC);
