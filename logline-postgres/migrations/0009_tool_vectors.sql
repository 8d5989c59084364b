-- Tool-search vectors kept beside the catalog (`VectorStore`): one row per space (embedding
-- model, text prefix, tools or toolkits) and id, with the SHA-256 of the text embedded so a
-- changed tool is embedded again. The vector is its little-endian f32 values.
CREATE TABLE tool_vectors (
    space      TEXT        NOT NULL,
    id         TEXT        NOT NULL,
    digest     BYTEA       NOT NULL CHECK (length(digest) = 32),
    vector     BYTEA       NOT NULL CHECK (length(vector) % 4 = 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (space, id)
);
