//! Dense first stage: exact inner-product search over tool embeddings, fused with BM25F.
//!
//! A request worded unlike any tool ("is it going to rain on my run?") shares no term with
//! the tool that serves it, so the lexical stage never puts that tool in the rerank pool.
//! [`DenseRetriever`] keeps one unit vector per tool (embedded when the catalog changes,
//! re-embedded only when a tool's content changes) and finds the tools nearest to the
//! request by exact dot product: at catalog sizes up to ~10⁵ tools a flat scan of
//! contiguous vectors is faster and simpler than an approximate index and never misses.
//! [`ToolSearch`](super::ToolSearch) fuses the dense list with the lexical one by
//! Reciprocal Rank Fusion before cutting the rerank pool; only tools the gate passes are
//! ever taken from either list.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::index::{ScoredTool, ToolIndex};
use super::rerank::EmbeddingReranker;
use crate::error::{Error, Result};
use crate::llm::Embedder;
use crate::tool::catalog::fingerprint;
use crate::tool::ToolSpec;

/// Settings of the dense stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseConfig {
    /// Dense candidates fused with the lexical list per request.
    pub depth: usize,
    /// Rank offset of the Reciprocal Rank Fusion with the lexical list (60 in the paper).
    pub rrf_k: f32,
    /// Prefix of query texts (E5 models expect `query: `).
    pub query_prefix: String,
    /// Prefix of tool texts (E5 models expect `passage: `).
    pub document_prefix: String,
    /// Texts per embedding call when tools are embedded.
    pub batch_size: usize,
    /// Query vectors kept (least recently used dropped first); 0 keeps none.
    pub query_cache: usize,
}

impl Default for DenseConfig {
    fn default() -> Self {
        DenseConfig {
            depth: 30,
            rrf_k: 60.0,
            query_prefix: String::new(),
            document_prefix: String::new(),
            batch_size: 64,
            query_cache: 1024,
        }
    }
}

/// Unit vectors of the tools, stored contiguously, searched exactly.
#[derive(Debug, Default)]
pub struct VectorIndex {
    dim: usize,
    data: Vec<f32>,
    ids: Vec<String>,
    fingerprints: Vec<u64>,
    by_id: HashMap<String, usize>,
}

impl VectorIndex {
    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// No vector yet.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Vector length (0 before the first vector).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Whether `id` has a vector of content `fingerprint`.
    pub fn is_current(&self, id: &str, fingerprint: u64) -> bool {
        self.by_id
            .get(id)
            .is_some_and(|&i| self.fingerprints[i] == fingerprint)
    }

    /// Inserts or replaces the vector of `id` (normalised here). The first vector fixes the
    /// dimension; a vector of another length or with no magnitude is refused.
    pub fn upsert(&mut self, id: &str, fingerprint: u64, vector: &[f32]) -> Result<()> {
        if self.ids.is_empty() && self.dim == 0 {
            self.dim = vector.len();
        }
        if vector.len() != self.dim || self.dim == 0 {
            return Err(Error::Internal(format!(
                "tool vector of length {} for {id}; the index holds length {}",
                vector.len(),
                self.dim
            )));
        }
        let unit = normalized(vector).ok_or_else(|| {
            Error::Internal(format!("tool vector for {id} is zero or not finite"))
        })?;
        match self.by_id.get(id) {
            Some(&i) => {
                self.data[i * self.dim..(i + 1) * self.dim].copy_from_slice(&unit);
                self.fingerprints[i] = fingerprint;
            }
            None => {
                self.by_id.insert(id.to_string(), self.ids.len());
                self.ids.push(id.to_string());
                self.fingerprints.push(fingerprint);
                self.data.extend_from_slice(&unit);
            }
        }
        Ok(())
    }

    /// Removes the vector of `id`; returns whether it had one.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(i) = self.by_id.remove(id) else {
            return false;
        };
        let last = self.ids.len() - 1;
        if i != last {
            let (d, n) = (self.dim, last);
            self.data.copy_within(n * d..(n + 1) * d, i * d);
            self.ids.swap(i, last);
            self.fingerprints.swap(i, last);
            self.by_id.insert(self.ids[i].clone(), i);
        }
        self.ids.pop();
        self.fingerprints.pop();
        self.data.truncate(last * self.dim);
        true
    }

    /// The `k` tools most similar to any of `queries` (unit vectors; a tool scores its best
    /// similarity), best first, among those `allow` accepts. Exact.
    pub fn nearest(
        &self,
        queries: &[Arc<Vec<f32>>],
        k: usize,
        mut allow: impl FnMut(&str) -> bool,
    ) -> Vec<(String, f32)> {
        let queries: Vec<&[f32]> = queries
            .iter()
            .map(|q| q.as_slice())
            .filter(|q| q.len() == self.dim)
            .collect();
        if k == 0 || queries.is_empty() || self.is_empty() {
            return Vec::new();
        }
        let mut scored: Vec<(f32, u32)> = self
            .data
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(i, v)| {
                let s = queries
                    .iter()
                    .map(|q| dot(q, v))
                    .fold(f32::NEG_INFINITY, f32::max);
                (s, i as u32)
            })
            .collect();
        let order = |a: &(f32, u32), b: &(f32, u32)| {
            b.0.total_cmp(&a.0)
                .then_with(|| self.ids[a.1 as usize].cmp(&self.ids[b.1 as usize]))
        };
        // Most candidates pass the gate: sort a head a few times `k` long first, the whole
        // list only when the gate rejects too many of it.
        let head = (k * 4).min(scored.len());
        if head < scored.len() {
            scored.select_nth_unstable_by(head, order);
        }
        scored[..head].sort_unstable_by(order);
        let mut out = Vec::with_capacity(k);
        let mut take = |(s, i): (f32, u32), out: &mut Vec<(String, f32)>| {
            let id = &self.ids[i as usize];
            if allow(id) {
                out.push((id.clone(), s));
            }
            out.len() == k
        };
        for &c in &scored[..head] {
            if take(c, &mut out) {
                return out;
            }
        }
        let mut rest = scored.split_off(head);
        rest.sort_unstable_by(order);
        for c in rest {
            if take(c, &mut out) {
                break;
            }
        }
        out
    }
}

/// Query vectors by text, least recently used dropped first.
#[derive(Debug, Default)]
struct QueryCache {
    vectors: HashMap<String, Arc<Vec<f32>>>,
    order: VecDeque<String>,
}

/// The dense retrieval stage: an embedder, the tools' vectors and a query-vector cache.
pub struct DenseRetriever {
    queries: Arc<dyn Embedder>,
    documents: Option<Arc<dyn Embedder>>,
    config: DenseConfig,
    index: RwLock<VectorIndex>,
    cache: Mutex<QueryCache>,
}

impl std::fmt::Debug for DenseRetriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenseRetriever")
            .field("model", &self.queries.model())
            .field("config", &self.config)
            .field("vectors", &self.len())
            .finish()
    }
}

impl DenseRetriever {
    /// A dense stage embedding queries and tools with `embedder`.
    pub fn new(embedder: Arc<dyn Embedder>, config: DenseConfig) -> Self {
        DenseRetriever {
            queries: embedder,
            documents: None,
            config,
            index: RwLock::new(VectorIndex::default()),
            cache: Mutex::new(QueryCache::default()),
        }
    }

    /// Embeds tools with `documents` (asymmetric models served as two model names).
    pub fn with_document_embedder(mut self, documents: Arc<dyn Embedder>) -> Self {
        self.documents = Some(documents);
        self
    }

    /// The settings.
    pub fn config(&self) -> &DenseConfig {
        &self.config
    }

    /// Number of tool vectors.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// No tool vector yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Read access to the vectors.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, VectorIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, VectorIndex> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the vector of a tool that left the catalog.
    pub fn forget(&self, tool_id: &str) -> bool {
        self.write().remove(tool_id)
    }

    /// Embeds every tool whose vector is missing or stale (content changed); returns how many
    /// were embedded. Tools embedded before a failing batch keep their vectors.
    pub async fn sync(&self, tools: &[Arc<ToolSpec>]) -> Result<usize> {
        let missing: Vec<(&Arc<ToolSpec>, u64)> = {
            let index = self.read();
            tools
                .iter()
                .map(|t| (t, fingerprint(t)))
                .filter(|(t, fp)| !index.is_current(&t.id, *fp))
                .collect()
        };
        let embedder = self.documents.as_ref().unwrap_or(&self.queries);
        for chunk in missing.chunks(self.config.batch_size.max(1)) {
            let texts: Vec<String> = chunk
                .iter()
                .map(|(t, _)| {
                    format!(
                        "{}{}",
                        self.config.document_prefix,
                        EmbeddingReranker::document_text(t)
                    )
                })
                .collect();
            let vectors = embedder.embed(&texts).await?;
            if vectors.len() != texts.len() {
                return Err(Error::Internal(format!(
                    "embedder returned {} vectors for {} texts",
                    vectors.len(),
                    texts.len()
                )));
            }
            let mut index = self.write();
            for ((tool, fp), v) in chunk.iter().zip(vectors) {
                index.upsert(&tool.id, *fp, &v)?;
            }
        }
        Ok(missing.len())
    }

    /// Unit vectors of `texts` (query prefix added), from the cache where possible; the
    /// missing ones are embedded in one call.
    pub async fn embed_queries(&self, texts: &[String]) -> Result<Vec<Arc<Vec<f32>>>> {
        let keyed: Vec<String> = texts
            .iter()
            .map(|t| format!("{}{}", self.config.query_prefix, t))
            .collect();
        let missing: Vec<String> = {
            let cache = self.lock_cache();
            let mut seen = HashSet::new();
            keyed
                .iter()
                .filter(|t| !cache.vectors.contains_key(*t) && seen.insert(t.as_str()))
                .cloned()
                .collect()
        };
        let mut fresh: HashMap<String, Arc<Vec<f32>>> = HashMap::new();
        if !missing.is_empty() {
            let vectors = self.queries.embed(&missing).await?;
            if vectors.len() != missing.len() {
                return Err(Error::Internal(format!(
                    "embedder returned {} vectors for {} query texts",
                    vectors.len(),
                    missing.len()
                )));
            }
            for (t, v) in missing.into_iter().zip(vectors) {
                let unit = normalized(&v)
                    .ok_or_else(|| Error::Internal("query vector is zero or not finite".into()))?;
                fresh.insert(t, Arc::new(unit));
            }
        }
        let mut cache = self.lock_cache();
        let out = keyed
            .iter()
            .filter_map(|t| fresh.get(t).or_else(|| cache.vectors.get(t)).cloned())
            .collect();
        for (t, v) in fresh {
            cache.insert(t, v, self.config.query_cache);
        }
        Ok(out)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, QueryCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Query vectors cached.
    pub fn cached_queries(&self) -> usize {
        self.lock_cache().vectors.len()
    }
}

impl QueryCache {
    fn insert(&mut self, text: String, vector: Arc<Vec<f32>>, capacity: usize) {
        if capacity == 0 {
            return;
        }
        if self.vectors.insert(text.clone(), vector).is_none() {
            self.order.push_back(text);
        }
        while self.vectors.len() > capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.vectors.remove(&old);
                }
                None => break,
            }
        }
    }
}

/// The text embedded for a request: the user's words plus, when the router gave them, its
/// candidate apps and intent, which name what the words may only imply.
pub(crate) fn query_text(query: &str, apps: &[String], intent_tags: &[String]) -> String {
    let mut s = query.trim().to_string();
    if !apps.is_empty() {
        s.push_str(" (apps: ");
        s.push_str(&apps.join(", "));
        s.push(')');
    }
    if !intent_tags.is_empty() {
        s.push_str(" (intent: ");
        s.push_str(&intent_tags.join(" "));
        s.push(')');
    }
    s
}

/// Reciprocal Rank Fusion of the lexical candidates (best first) with the dense ones (tool
/// id and similarity, best first, already gated): `1/(k + lexical rank) + 1/(k + dense
/// rank)`, a list missing a tool adding nothing; the best `limit` come back. Dense-only
/// tools carry a lexical score of 0.
pub(crate) fn fuse_with_lexical(
    lexical: Vec<ScoredTool>,
    dense: &[(String, f32)],
    index: &ToolIndex,
    k: f32,
    limit: usize,
) -> Vec<ScoredTool> {
    let mut fused: Vec<ScoredTool> = Vec::with_capacity(lexical.len() + dense.len());
    let mut at: HashMap<String, usize> = HashMap::with_capacity(lexical.len() + dense.len());
    for (rank, mut c) in lexical.into_iter().enumerate() {
        c.score = 1.0 / (k + (rank + 1) as f32);
        at.insert(c.tool.id.clone(), fused.len());
        fused.push(c);
    }
    for (rank, (id, _)) in dense.iter().enumerate() {
        let add = 1.0 / (k + (rank + 1) as f32);
        match at.get(id) {
            Some(&i) => fused[i].score += add,
            None => {
                if let Some(tool) = index.get(id) {
                    at.insert(id.clone(), fused.len());
                    fused.push(ScoredTool {
                        tool,
                        score: add,
                        lexical: 0.0,
                    });
                }
            }
        }
    }
    // Stable: equal scores keep the lexical list's order first.
    fused.sort_by(|a, b| b.score.total_cmp(&a.score));
    fused.truncate(limit);
    fused
}

fn normalized(v: &[f32]) -> Option<Vec<f32>> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm.is_finite() && norm > 0.0).then(|| v.iter().map(|x| x / norm).collect())
}

/// Dot product in eight independent lanes, which the compiler turns into SIMD.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}
