-- Apps: the manifest's version and digest (re-imports of the same manifest change nothing),
-- and a workflow version an app may pin.
ALTER TABLE apps ADD COLUMN version TEXT NOT NULL DEFAULT '0.0.0';
ALTER TABLE apps ADD COLUMN digest  TEXT NOT NULL DEFAULT '';
ALTER TABLE app_workflows ADD COLUMN workflow_version TEXT;

-- Agent memory. Every item belongs to one tenant and one owner within it; reads filter on
-- the tenant in every statement. The embedding is stored as little-endian f32 bytes; `list_no`
-- is its inverted-file list (NULL until the index is trained), the search path used where
-- the pgvector extension is missing. With pgvector, `PgRecallStore::enable_pgvector` adds a
-- `vector` column and an HNSW index at run time.
CREATE TABLE memory_items (
    id          UUID        PRIMARY KEY,
    tenant_id   TEXT        NOT NULL,
    owner_kind  TEXT        NOT NULL CHECK (owner_kind IN ('user', 'tenant', 'app', 'agent', 'run')),
    owner_id    TEXT        NOT NULL,
    kind        TEXT        NOT NULL CHECK (kind IN ('short_term', 'long_term', 'profile')),
    content     TEXT        NOT NULL,
    metadata    JSONB       NOT NULL DEFAULT '{}',
    visibility  TEXT        NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'tenant')),
    expires_at  TIMESTAMPTZ,
    embedding   BYTEA       NOT NULL,
    dims        INTEGER     NOT NULL,
    list_no     INTEGER,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
-- An owner's items, newest first.
CREATE INDEX memory_items_owner_idx ON memory_items (tenant_id, owner_kind, owner_id, created_at DESC);
-- Tenant-visible items.
CREATE INDEX memory_items_shared_idx ON memory_items (tenant_id, created_at DESC) WHERE visibility = 'tenant';
-- The inverted-file lists a search probes.
CREATE INDEX memory_items_list_idx ON memory_items (tenant_id, dims, list_no);
-- Metadata filters.
CREATE INDEX memory_items_metadata_idx ON memory_items USING gin (metadata jsonb_path_ops);
-- Expiry purge.
CREATE INDEX memory_items_expiry_idx ON memory_items (expires_at) WHERE expires_at IS NOT NULL;

-- Centroids of the inverted-file index, per embedding dimension count.
CREATE TABLE memory_centroids (
    dims       INTEGER     NOT NULL,
    list_no    INTEGER     NOT NULL,
    centroid   BYTEA       NOT NULL,
    trained_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (dims, list_no)
);
