//! The two passes of a search without pgvector: quantized candidates from the list index,
//! then the best of them ranked exactly on their `f32` vectors.

use logline_core::recall::vector::{by_score_desc, Quantized};
use logline_core::recall::{MemoryFilter, MemoryItem, ReadScope, ScoredItem};
use logline_core::Result;
use sqlx::Row;
use uuid::Uuid;

use super::{bind_visible, dims_of, rank, sql, PgRecallStore};
use crate::error::db;

/// Most dimensions a quantized vector is kept for (its index row must stay under
/// PostgreSQL's limit of about 2.7 kB, with the owner id).
pub(crate) const MAX_DIMS: usize = 2048;

/// Longest owner id (bytes) whose items keep a quantized vector.
pub(crate) const MAX_OWNER_ID: usize = 256;

/// Candidates ranked exactly per result asked for, at least.
const RERANK_PER_RESULT: usize = 4;

/// The quantized vector stored with `item` (`None` past [`MAX_DIMS`] or
/// [`MAX_OWNER_ID`], or without embedding): such items are always ranked exactly.
pub(crate) fn for_item(item: &MemoryItem) -> Option<Quantized> {
    (!item.embedding.is_empty()
        && item.embedding.len() <= MAX_DIMS
        && item.owner.id.len() <= MAX_OWNER_ID)
        .then(|| Quantized::new(&item.embedding))
}

/// A candidate of the first pass.
struct Candidate {
    id: Uuid,
    /// Approximate similarity; `None` when the item has no quantized vector.
    score: Option<f32>,
}

/// The ids to rank exactly: the `keep` best scored candidates and every unscored one.
fn chosen(mut candidates: Vec<Candidate>, keep: usize) -> Vec<Uuid> {
    let (mut scored, unscored): (Vec<_>, Vec<_>) =
        candidates.drain(..).partition(|c| c.score.is_some());
    if scored.len() > keep {
        scored.select_nth_unstable_by(keep, |a, b| {
            by_score_desc(a.score.unwrap_or(f32::MIN), b.score.unwrap_or(f32::MIN))
        });
        scored.truncate(keep);
    }
    scored.into_iter().chain(unscored).map(|c| c.id).collect()
}

impl PgRecallStore {
    /// Quantized candidates of `lists` (every visible item when `None`), the best ranked
    /// exactly.
    pub(super) async fn search_quantized(
        &self,
        scope: &ReadScope,
        query: &[f32],
        filter: &MemoryFilter,
        limit: usize,
        lists: Option<Vec<i32>>,
    ) -> Result<Vec<ScoredItem>> {
        let q = Quantized::new(query);
        let text = sql::quantized_candidates(lists.is_some(), !filter.metadata.is_empty());
        let mut statement = bind_visible(sqlx::query(&text), scope, filter).bind(dims_of(query)?);
        if let Some(lists) = lists {
            statement = statement.bind(lists);
        }
        let rows = statement.fetch_all(&self.db.pool).await.map_err(db)?;
        let candidates = rows
            .iter()
            .map(|r| {
                let codes: Option<Vec<u8>> = r.try_get("embedding_q").map_err(db)?;
                let scale: Option<f32> = r.try_get("embedding_scale").map_err(db)?;
                let score = codes
                    .zip(scale)
                    .map(|(codes, scale)| q.similarity(&Quantized::from_parts(&codes, scale)));
                Ok(Candidate {
                    id: r.try_get("id").map_err(db)?,
                    score,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let keep = limit
            .saturating_mul(RERANK_PER_RESULT)
            .max(self.options.rerank);
        let ids = chosen(candidates, keep);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let text = sql::chosen();
        let rows = bind_visible(sqlx::query(&text), scope, filter)
            .bind(ids)
            .fetch_all(&self.db.pool)
            .await
            .map_err(db)?;
        rank(rows, query, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logline_core::recall::{Owner, OwnerKind};

    #[test]
    fn the_best_scored_and_every_unscored_candidate_are_ranked_exactly() {
        let ids: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
        let scores = [Some(0.1), None, Some(0.9), Some(0.5), None, Some(0.7)];
        let candidates = ids
            .iter()
            .zip(scores)
            .map(|(id, score)| Candidate { id: *id, score })
            .collect();
        let mut got = chosen(candidates, 2);
        got.sort();
        let mut want = vec![ids[1], ids[2], ids[4], ids[5]];
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn large_vectors_and_long_owner_ids_are_not_quantized() {
        let owner = Owner::new(OwnerKind::User, "u");
        let mut item = MemoryItem::new("t", owner, "x");
        assert!(for_item(&item).is_none(), "no embedding");
        item.embedding = vec![0.5; MAX_DIMS];
        assert_eq!(for_item(&item).map(|q| q.codes.len()), Some(MAX_DIMS));
        item.embedding.push(0.5);
        assert!(for_item(&item).is_none());
        item.embedding = vec![0.5; 4];
        item.owner.id = "u".repeat(MAX_OWNER_ID + 1);
        assert!(for_item(&item).is_none());
    }
}
