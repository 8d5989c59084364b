//! SQL text of the memory store: the visibility predicate every read shares, and the
//! pgvector statements (built as text so they are tested without the extension).

/// Columns every read returns.
pub(crate) const COLUMNS: &str = "id, tenant_id, owner_kind, owner_id, kind, content, metadata, \
     visibility, expires_at, embedding, created_at, updated_at";

/// What a caller may read, without the metadata filter: `$1` tenant, `$2`/`$3` owner kinds
/// and ids, `$4` whether tenant-visible items are included, `$5` kinds (empty = all). Every
/// column it reads is in the list index, so a candidate pass never visits table rows.
pub(crate) const SCOPED: &str = "tenant_id = $1
    AND (expires_at IS NULL OR expires_at > now())
    AND ((owner_kind, owner_id) IN (SELECT k, i FROM unnest($2::text[], $3::text[]) AS o(k, i))
         OR ($4 AND visibility = 'tenant'))
    AND (cardinality($5::text[]) = 0 OR kind = ANY($5))";

/// [`SCOPED`] and `$6`, the metadata the item's must contain. The tenant is always the
/// first condition.
pub(crate) const VISIBLE: &str = "tenant_id = $1
    AND (expires_at IS NULL OR expires_at > now())
    AND ((owner_kind, owner_id) IN (SELECT k, i FROM unnest($2::text[], $3::text[]) AS o(k, i))
         OR ($4 AND visibility = 'tenant'))
    AND (cardinality($5::text[]) = 0 OR kind = ANY($5))
    AND metadata @> $6";

/// What a delete may remove: `$1` tenant, `$2`/`$3` owners (owned items only, whatever
/// their visibility), `$4` ids (empty = any), `$5` kinds, `$6` metadata.
pub(crate) const OWNED: &str = "tenant_id = $1
    AND (owner_kind, owner_id) IN (SELECT k, i FROM unnest($2::text[], $3::text[]) AS o(k, i))
    AND (cardinality($4::uuid[]) = 0 OR id = ANY($4))
    AND (cardinality($5::text[]) = 0 OR kind = ANY($5))
    AND metadata @> $6";

/// The quantized candidates of a search: `id, embedding_q, embedding_scale` of the visible
/// items of the query's dimensions `$7`, in the probed lists `$8` and in no list yet when
/// `lists`, else all. Without a metadata filter (`$6` unused) the predicate reads only
/// columns of the list index.
pub(crate) fn quantized_candidates(lists: bool, metadata: bool) -> String {
    let visible = if metadata { VISIBLE } else { SCOPED };
    let select = "SELECT id, embedding_q, embedding_scale FROM memory_items";
    if lists {
        format!(
            "{select} WHERE {visible} AND dims = $7 AND list_no = ANY($8)
             UNION ALL
             {select} WHERE {visible} AND dims = $7 AND list_no IS NULL"
        )
    } else {
        format!("{select} WHERE {visible} AND dims = $7")
    }
}

/// The visible items among the ids `$7` (the candidates ranked exactly).
pub(crate) fn chosen() -> String {
    format!("SELECT {COLUMNS} FROM memory_items WHERE {VISIBLE} AND id = ANY($7)")
}

/// Every visible item of the query's dimensions (exact search, before the index is trained).
pub(crate) fn exact_candidates() -> String {
    format!("SELECT {COLUMNS} FROM memory_items WHERE {VISIBLE} AND dims = $7")
}

/// The pgvector column.
pub(crate) const VECTOR_COLUMN: &str = "embedding_v";

/// Statements that enable pgvector search for `dims`-dimensional embeddings: the extension,
/// the column and an HNSW index on cosine distance.
pub(crate) fn pgvector_setup(dims: usize) -> Vec<String> {
    vec![
        "CREATE EXTENSION IF NOT EXISTS vector".to_string(),
        format!("ALTER TABLE memory_items ADD COLUMN IF NOT EXISTS {VECTOR_COLUMN} vector({dims})"),
        format!(
            "CREATE INDEX IF NOT EXISTS memory_items_embedding_hnsw ON memory_items \
             USING hnsw ({VECTOR_COLUMN} vector_cosine_ops)"
        ),
    ]
}

/// The pgvector search: `$7` the query as a vector literal, `$8` the limit; scored by cosine
/// similarity (1 − cosine distance), nearest first.
pub(crate) fn pgvector_search() -> String {
    format!(
        "SELECT {COLUMNS}, (1 - ({VECTOR_COLUMN} <=> $7::vector))::real AS score FROM memory_items
         WHERE {VISIBLE} AND {VECTOR_COLUMN} IS NOT NULL
         ORDER BY {VECTOR_COLUMN} <=> $7::vector LIMIT $8"
    )
}

/// Sets the vector column of one item: `$1` id, `$2` vector literal.
pub(crate) fn pgvector_set() -> String {
    format!("UPDATE memory_items SET {VECTOR_COLUMN} = $2::vector WHERE id = $1")
}

/// A vector in pgvector's text form: `[0.5,-1,2.25]`.
pub(crate) fn vector_literal(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
    format!("[{}]", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgvector_statements_name_the_column_dims_and_cosine_ops() {
        let setup = pgvector_setup(384);
        assert_eq!(setup[0], "CREATE EXTENSION IF NOT EXISTS vector");
        assert!(setup[1].ends_with("ADD COLUMN IF NOT EXISTS embedding_v vector(384)"));
        assert!(setup[2].contains("USING hnsw (embedding_v vector_cosine_ops)"));
        let search = pgvector_search();
        assert!(
            search.contains("ORDER BY embedding_v <=> $7::vector LIMIT $8"),
            "{search}"
        );
        assert!(search.contains("(1 - (embedding_v <=> $7::vector))::real AS score"));
        assert!(
            search.contains("tenant_id = $1"),
            "the tenant is in the query"
        );
        assert!(search.contains("embedding_v IS NOT NULL"));
        assert_eq!(
            pgvector_set(),
            "UPDATE memory_items SET embedding_v = $2::vector WHERE id = $1"
        );
    }

    #[test]
    fn the_scope_is_the_visibility_predicate_without_metadata() {
        assert_eq!(VISIBLE, format!("{SCOPED}\n    AND metadata @> $6"));
        assert!(quantized_candidates(true, true).contains("metadata @> $6"));
        assert!(!quantized_candidates(true, false).contains("metadata"));
        let probed = quantized_candidates(true, false);
        assert!(probed.contains("list_no = ANY($8)") && probed.contains("list_no IS NULL"));
        assert!(!quantized_candidates(false, true).contains("list_no"));
    }

    #[test]
    fn vector_literals_are_pgvector_text() {
        assert_eq!(vector_literal(&[0.5, -1.0, 2.25]), "[0.5,-1,2.25]");
        assert_eq!(vector_literal(&[]), "[]");
    }

    #[test]
    fn every_read_starts_with_the_tenant() {
        let reads = [
            quantized_candidates(true, true),
            quantized_candidates(true, false),
            quantized_candidates(false, false),
            chosen(),
            exact_candidates(),
            pgvector_search(),
        ];
        for q in reads {
            for (at, _) in q.match_indices("WHERE") {
                assert!(
                    q[at..]
                        .trim_start_matches("WHERE")
                        .trim_start()
                        .starts_with("tenant_id = $1"),
                    "{q}"
                );
            }
        }
        assert!(OWNED.starts_with("tenant_id = $1"));
    }
}
