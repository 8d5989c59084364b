//! Optional second stage: re-order the lexical candidates by embedding similarity.
//!
//! The query and each candidate tool are embedded with an [`Embedder`]; tool vectors are
//! cached by tool id and content fingerprint, so each tool is embedded once per change. The
//! lexical and semantic orders are fused with Reciprocal Rank Fusion (Cormack, Clarke &
//! Büttcher 2009, `k = 60`) by default, or a convex combination of min-max normalised scores.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::index::ScoredTool;
use crate::error::{Error, Result};
use crate::llm::{Embedder, TokenUsage};
use crate::tool::catalog::fingerprint;
use crate::tool::ToolSpec;

/// How lexical and semantic evidence combine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Fusion {
    /// Reciprocal Rank Fusion: `1/(k + lexical rank) + 1/(k + semantic rank)`.
    Rrf {
        /// Rank offset (60 in the original paper).
        k: f32,
    },
    /// `(1 − w) · lexical + w · semantic`, each min-max normalised over the candidates.
    Convex {
        /// Weight of the semantic score.
        semantic_weight: f32,
    },
    /// Semantic similarity alone (lexical stage only picks the candidates).
    Semantic,
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion::Rrf { k: 60.0 }
    }
}

/// Settings of the rerank stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RerankConfig {
    /// Lexical candidates re-ordered (the rest keep their lexical order after them).
    pub pool: usize,
    /// Prefix of query texts (E5 models expect `query: `).
    pub query_prefix: String,
    /// Prefix of tool texts (E5 models expect `passage: `).
    pub document_prefix: String,
    /// Fusion method.
    pub fusion: Fusion,
    /// Texts per embedding call.
    pub batch_size: usize,
}

impl Default for RerankConfig {
    fn default() -> Self {
        RerankConfig {
            pool: 30,
            query_prefix: String::new(),
            document_prefix: String::new(),
            fusion: Fusion::default(),
            batch_size: 64,
        }
    }
}

impl RerankConfig {
    /// Settings for E5-family models (`query: ` / `passage: ` prefixes).
    pub fn e5() -> Self {
        RerankConfig {
            query_prefix: "query: ".into(),
            document_prefix: "passage: ".into(),
            ..Default::default()
        }
    }
}

/// A candidate after the rerank stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// The tool.
    pub tool: Arc<ToolSpec>,
    /// Final score (higher is better; comparable within one result only).
    pub score: f32,
    /// Lexical (BM25F) score.
    pub lexical: f32,
    /// Cosine similarity to the query, when reranked.
    pub semantic: Option<f32>,
}

impl From<ScoredTool> for Ranked {
    fn from(s: ScoredTool) -> Self {
        Ranked {
            tool: s.tool,
            score: s.score,
            lexical: s.lexical,
            semantic: None,
        }
    }
}

/// A second ranking stage over the gated lexical candidates: an embedding model
/// ([`EmbeddingReranker`]), an LLM ([`super::LlmReranker`]), a cross-encoder service, ...
///
/// A reranker only re-orders: [`ToolSearch`](super::ToolSearch) keeps the candidates it was
/// given and nothing else (unknown and repeated tools in a reranker's answer are dropped),
/// so a reranker (or the model behind it) can never expose a tool the gate or the policy
/// engine did not pass.
#[async_trait]
pub trait Reranker: Send + Sync + std::fmt::Debug {
    /// How many of the best lexical candidates it re-orders (the search fetches at least
    /// this many).
    fn pool(&self) -> usize;

    /// Re-orders `candidates` (lexical order, best first) for `query`; `parts` are its
    /// sub-requests when decomposition is on. An error keeps the lexical order.
    async fn rerank(
        &self,
        query: &str,
        parts: &[String],
        candidates: Vec<Ranked>,
    ) -> Result<Reranked>;

    /// A tool left the catalog: drop what is cached for it.
    fn forget(&self, _tool_id: &str) {}
}

/// What a reranker returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reranked {
    /// The candidates, best first.
    pub ranked: Vec<Ranked>,
    /// Model tokens the rerank spent, when a priced model did it (an LLM reranker), for the
    /// caller's cost accounting.
    pub usage: Option<RerankUsage>,
}

impl From<Vec<Ranked>> for Reranked {
    fn from(ranked: Vec<Ranked>) -> Self {
        Reranked {
            ranked,
            usage: None,
        }
    }
}

/// Tokens a rerank spent on a model (price them with [`crate::llm::PriceTable`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RerankUsage {
    /// Model that answered.
    pub model: String,
    /// Its usage.
    pub usage: TokenUsage,
}

/// What a reranker returned, restricted to `input`: unknown and repeated tools are dropped,
/// candidates it left out follow in their original order.
pub(crate) fn keep_candidates(input: Vec<Ranked>, output: Vec<Ranked>) -> Vec<Ranked> {
    let allowed: HashSet<&str> = input.iter().map(|c| c.tool.id.as_str()).collect();
    let mut seen: HashSet<String> = HashSet::with_capacity(input.len());
    let mut kept: Vec<Ranked> = output
        .into_iter()
        .filter(|c| allowed.contains(c.tool.id.as_str()) && seen.insert(c.tool.id.clone()))
        .collect();
    kept.extend(input.iter().filter(|c| !seen.contains(&c.tool.id)).cloned());
    kept
}

/// Tool id → (content fingerprint, unit vector).
type VectorCache = HashMap<String, (u64, Arc<Vec<f32>>)>;

/// The embedding reranker.
pub struct EmbeddingReranker {
    embedder: Arc<dyn Embedder>,
    documents: Option<Arc<dyn Embedder>>,
    config: RerankConfig,
    cache: Mutex<VectorCache>,
}

impl std::fmt::Debug for EmbeddingReranker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingReranker")
            .field("model", &self.embedder.model())
            .field("config", &self.config)
            .finish()
    }
}

impl EmbeddingReranker {
    /// A reranker over `embedder`.
    pub fn new(embedder: Arc<dyn Embedder>, config: RerankConfig) -> Self {
        EmbeddingReranker {
            embedder,
            documents: None,
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Embeds tools with `documents` and queries with the main embedder: for asymmetric
    /// models served as two model names (e.g. an E5 server choosing `query: ` or `passage: `
    /// by model name, or providers with an input-type switch).
    pub fn with_document_embedder(mut self, documents: Arc<dyn Embedder>) -> Self {
        self.documents = Some(documents);
        self
    }

    fn document_embedder(&self) -> &Arc<dyn Embedder> {
        self.documents.as_ref().unwrap_or(&self.embedder)
    }

    /// The settings.
    pub fn config(&self) -> &RerankConfig {
        &self.config
    }

    /// The text embedded for a tool.
    pub fn document_text(tool: &ToolSpec) -> String {
        let mut s = String::new();
        if let Some(k) = &tool.toolkit {
            s.push_str(k);
            s.push_str(": ");
        }
        s.push_str(&tool.name);
        if !tool.description.trim().is_empty() {
            s.push_str(". ");
            s.push_str(tool.description.trim());
        }
        s
    }

    /// Number of cached tool vectors.
    pub fn cached(&self) -> usize {
        self.lock().len()
    }

    /// Drops a tool's cached vector.
    pub fn forget(&self, tool_id: &str) {
        self.lock().remove(tool_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VectorCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Embeds every tool whose vector is missing or stale; returns how many were embedded.
    pub async fn warm(&self, tools: &[Arc<ToolSpec>]) -> Result<usize> {
        let missing: Vec<(Arc<ToolSpec>, u64)> = {
            let cache = self.lock();
            tools
                .iter()
                .map(|t| (t.clone(), fingerprint(t)))
                .filter(|(t, fp)| cache.get(&t.id).is_none_or(|(have, _)| have != fp))
                .collect()
        };
        for chunk in missing.chunks(self.config.batch_size.max(1)) {
            let texts: Vec<String> = chunk
                .iter()
                .map(|(t, _)| format!("{}{}", self.config.document_prefix, Self::document_text(t)))
                .collect();
            let vectors = self.document_embedder().embed(&texts).await?;
            if vectors.len() != texts.len() {
                return Err(Error::Internal(format!(
                    "embedder returned {} vectors for {} texts",
                    vectors.len(),
                    texts.len()
                )));
            }
            let mut cache = self.lock();
            for ((tool, fp), v) in chunk.iter().zip(vectors) {
                cache.insert(tool.id.clone(), (*fp, Arc::new(normalized(v))));
            }
        }
        Ok(missing.len())
    }

    /// Re-orders the first [`RerankConfig::pool`] candidates (already in lexical order) for
    /// `query` and its `parts` (sub-requests, see [`DecomposeConfig`](super::DecomposeConfig);
    /// empty when the request was not split): the request and each part are embedded in one
    /// batch, and a tool's semantic score is its best similarity to any of them (a tool
    /// serves one intent).
    pub async fn rerank_parts(
        &self,
        query: &str,
        parts: &[String],
        candidates: Vec<Ranked>,
    ) -> Result<Vec<Ranked>> {
        let pool = self.config.pool.min(candidates.len());
        if pool < 2 {
            return Ok(candidates);
        }
        let mut head = candidates;
        let tail = head.split_off(pool);
        let tools: Vec<Arc<ToolSpec>> = head.iter().map(|c| c.tool.clone()).collect();
        self.warm(&tools).await?;
        let texts: Vec<String> = std::iter::once(query)
            .chain(parts.iter().map(String::as_str))
            .map(|t| format!("{}{}", self.config.query_prefix, t))
            .collect();
        let queries: Vec<Vec<f32>> = self
            .embedder
            .embed(&texts)
            .await?
            .into_iter()
            .map(normalized)
            .collect();
        if queries.len() != texts.len() {
            return Err(Error::Internal(format!(
                "embedder returned {} vectors for {} query texts",
                queries.len(),
                texts.len()
            )));
        }
        {
            let cache = self.lock();
            for c in &mut head {
                c.semantic = cache.get(&c.tool.id).map(|(_, v)| {
                    queries
                        .iter()
                        .map(|q| dot(q, v))
                        .fold(f32::NEG_INFINITY, f32::max)
                });
            }
        }
        fuse(&mut head, self.config.fusion);
        head.extend(tail);
        Ok(head)
    }
}

#[async_trait]
impl Reranker for EmbeddingReranker {
    fn pool(&self) -> usize {
        self.config.pool
    }

    async fn rerank(
        &self,
        query: &str,
        parts: &[String],
        candidates: Vec<Ranked>,
    ) -> Result<Reranked> {
        Ok(self.rerank_parts(query, parts, candidates).await?.into())
    }

    fn forget(&self, tool_id: &str) {
        EmbeddingReranker::forget(self, tool_id);
    }
}

/// Re-scores `head` (in lexical order) with `fusion` and sorts it, best first.
pub(crate) fn fuse(head: &mut [Ranked], fusion: Fusion) {
    let n = head.len();
    let mut sem_order: Vec<usize> = (0..n).collect();
    let sem = |c: &Ranked| c.semantic.unwrap_or(f32::NEG_INFINITY);
    sem_order.sort_by(|&a, &b| sem(&head[b]).total_cmp(&sem(&head[a])));
    let mut sem_rank = vec![0usize; n];
    for (rank, &i) in sem_order.iter().enumerate() {
        sem_rank[i] = rank + 1;
    }
    match fusion {
        Fusion::Rrf { k } => {
            for (i, c) in head.iter_mut().enumerate() {
                c.score = 1.0 / (k + (i + 1) as f32) + 1.0 / (k + sem_rank[i] as f32);
            }
        }
        Fusion::Convex { semantic_weight: w } => {
            let (lmin, lmax) = min_max(head.iter().map(|c| c.score));
            let (smin, smax) = min_max(head.iter().filter_map(|c| c.semantic));
            for c in head.iter_mut() {
                let l = scale(c.score, lmin, lmax);
                let s = c.semantic.map_or(0.0, |s| scale(s, smin, smax));
                c.score = (1.0 - w) * l + w * s;
            }
        }
        Fusion::Semantic => {
            for c in head.iter_mut() {
                c.score = sem(c);
            }
        }
    }
    head.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.tool.id.cmp(&b.tool.id))
    });
}

fn min_max(it: impl Iterator<Item = f32>) -> (f32, f32) {
    it.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    })
}

fn scale(x: f32, lo: f32, hi: f32) -> f32 {
    if hi > lo {
        (x - lo) / (hi - lo)
    } else {
        1.0
    }
}

fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
