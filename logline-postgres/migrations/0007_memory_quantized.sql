-- Quantized embeddings for the inverted-file search of agent memory: one signed byte per
-- dimension (`embedding_q`, the unit vector's components over `embedding_scale`). A search
-- scores the candidates of its probed lists on these, read from one covering index (no table
-- rows visited), then ranks the best few again on the `f32` embedding. Vectors of more than
-- 2048 dimensions, or owners with ids longer than 256 bytes, keep NULL here (the index row
-- must stay under PostgreSQL's size limit); such items are always ranked on `embedding`.

ALTER TABLE memory_items
    ADD COLUMN embedding_q     BYTEA,
    ADD COLUMN embedding_scale REAL;

-- The float32 embedding is only read for the final ranking: keep it out of line and
-- uncompressed, so the table rows the filters read stay narrow.
ALTER TABLE memory_items ALTER COLUMN embedding SET STORAGE EXTERNAL;

-- The components of a little-endian float32 embedding (infinities and NaN read as 0).
CREATE FUNCTION memory_embedding_floats(b BYTEA) RETURNS FLOAT8[]
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    d BYTEA := b || ''::bytea; -- read (detoast) the value once
    out FLOAT8[] := '{}';
    s INT;
    e INT;
    m INT;
BEGIN
    FOR i IN 0 .. octet_length(d) / 4 - 1 LOOP
        s := CASE WHEN get_byte(d, 4 * i + 3) >= 128 THEN -1 ELSE 1 END;
        e := ((get_byte(d, 4 * i + 3) & 127) << 1) | (get_byte(d, 4 * i + 2) >> 7);
        m := ((get_byte(d, 4 * i + 2) & 127) << 16) | (get_byte(d, 4 * i + 1) << 8)
             | get_byte(d, 4 * i);
        out := out || CASE WHEN e = 255 THEN 0::float8
                           WHEN e = 0 THEN s * m * power(2::float8, -149)
                           ELSE s * (8388608 + m) * power(2::float8, e - 150) END;
    END LOOP;
    RETURN out;
END
$$;

-- The quantized codes of an embedding's components, as the store computes them.
CREATE FUNCTION memory_embedding_codes(f FLOAT8[]) RETURNS BYTEA
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT decode(coalesce(string_agg(lpad(to_hex(
               (CASE WHEN m.mx > 0
                     THEN greatest(-127, least(127, round(u.x * 127 / m.mx)))::int
                     ELSE 0 END) & 255), 2, '0'), '' ORDER BY u.n), ''), 'hex')
    FROM unnest(f) WITH ORDINALITY AS u(x, n),
         (SELECT max(abs(y)) AS mx FROM unnest(f) AS y) AS m
$$;

-- The scale of those codes (0 for a zero vector).
CREATE FUNCTION memory_embedding_scale(f FLOAT8[]) RETURNS REAL
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE WHEN mx > 0 AND nrm > 0 THEN (mx / nrm / 127)::real ELSE 0 END
    FROM (SELECT max(abs(y)) AS mx, sqrt(sum(y * y)) AS nrm FROM unnest(f) AS y) AS s
$$;

-- Existing items (rewriting each row also moves its embedding out of line).
UPDATE memory_items
SET (embedding_q, embedding_scale) = (
        SELECT memory_embedding_codes(f), memory_embedding_scale(f)
        FROM (SELECT memory_embedding_floats(embedding) AS f) AS x)
WHERE dims <= 2048 AND octet_length(owner_id) <= 256;

-- The candidates of a probed list and everything the read scope checks, in one index.
DROP INDEX memory_items_list_idx;
CREATE INDEX memory_items_list_idx ON memory_items (tenant_id, dims, list_no)
    INCLUDE (owner_kind, owner_id, visibility, kind, expires_at, id, embedding_scale, embedding_q);
