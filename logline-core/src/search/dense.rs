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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::gate::toolkit_key;
use super::index::{ScoredTool, ToolIndex};
use super::rerank::{EmbeddingReranker, Fusion};
use super::vector_store::{text_digest, StoredVector, VectorStore};
use super::vectors::{normalized, VectorIndex, NO_GROUP};
use crate::error::{Error, Result};
use crate::llm::Embedder;
use crate::tool::catalog::fingerprint;
use crate::tool::ToolSpec;

/// Settings of the dense stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseConfig {
    /// Dense candidates fused with the lexical list per request.
    pub depth: usize,
    /// How the dense list and the lexical list combine: Reciprocal Rank Fusion (default,
    /// k = 60), a convex combination of scores min-max normalised within each list, or the
    /// dense order alone.
    pub fusion: Fusion,
    /// Prefix of query texts (E5 models expect `query: `).
    pub query_prefix: String,
    /// Prefix of tool texts (E5 models expect `passage: `).
    pub document_prefix: String,
    /// Texts per embedding call when tools are embedded.
    pub batch_size: usize,
    /// Query vectors kept (least recently used dropped first); 0 keeps none.
    pub query_cache: usize,
    /// Weight of the toolkit's similarity to the request, added to each of its tools' own
    /// (a toolkit is embedded as its name and its tools' names); 0 turns it off.
    pub toolkit_weight: f32,
}

impl Default for DenseConfig {
    fn default() -> Self {
        DenseConfig {
            depth: 30,
            fusion: Fusion::default(),
            query_prefix: String::new(),
            document_prefix: String::new(),
            batch_size: 64,
            query_cache: 1024,
            toolkit_weight: 1.0,
        }
    }
}

/// Query vectors by text, least recently used dropped first (`None`: caching off).
type QueryCache = Option<lru::LruCache<String, Arc<Vec<f32>>>>;

/// The dense retrieval stage: an embedder, the tools' vectors and a query-vector cache.
pub struct DenseRetriever {
    queries: Arc<dyn Embedder>,
    documents: Option<Arc<dyn Embedder>>,
    store: Option<Arc<dyn VectorStore>>,
    /// Tools forgotten since the last sync, still to delete from the store.
    forgotten: Mutex<Vec<String>>,
    config: DenseConfig,
    index: RwLock<VectorIndex>,
    kits: RwLock<Toolkits>,
    cache: Mutex<QueryCache>,
}

/// Toolkit vectors and the stable slot of every toolkit seen (a tool's group).
#[derive(Debug, Default)]
struct Toolkits {
    vectors: VectorIndex,
    slots: HashMap<String, u32>,
}

impl Toolkits {
    /// The slot of toolkit `name` (by [`toolkit_key`]), assigned on first sight.
    fn slot(&mut self, name: &str) -> u32 {
        let next = self.slots.len() as u32;
        *self.slots.entry(toolkit_key(name)).or_insert(next)
    }
}

/// The text embedded for each toolkit of `tools`, by toolkit key: its name and its tools'
/// names (sorted, so the text changes only when the toolkit's tools do).
fn toolkit_texts(tools: &[Arc<ToolSpec>]) -> HashMap<String, String> {
    let mut kits: HashMap<String, (&str, Vec<&str>)> = HashMap::new();
    for t in tools {
        if let Some(kit) = t.toolkit.as_deref() {
            kits.entry(toolkit_key(kit))
                .or_insert_with(|| (kit, Vec::new()))
                .1
                .push(t.name.as_str());
        }
    }
    kits.into_iter()
        .map(|(key, (name, mut tools))| {
            tools.sort_unstable();
            tools.dedup();
            (key, format!("{name}: {}", tools.join(", ")))
        })
        .collect()
}

fn text_fingerprint(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Store space kinds ([`DenseRetriever::with_store`]).
const TOOLS: &str = "tools";
const KITS: &str = "toolkits";

/// A tool or toolkit whose vector is missing or stale.
struct Pending {
    id: String,
    fingerprint: u64,
    text: String,
    toolkit: Option<String>,
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
        let cache = std::num::NonZeroUsize::new(config.query_cache).map(lru::LruCache::new);
        DenseRetriever {
            queries: embedder,
            documents: None,
            store: None,
            forgotten: Mutex::new(Vec::new()),
            config,
            index: RwLock::new(VectorIndex::default()),
            kits: RwLock::new(Toolkits::default()),
            cache: Mutex::new(cache),
        }
    }

    /// Embeds tools with `documents` (asymmetric models served as two model names).
    pub fn with_document_embedder(mut self, documents: Arc<dyn Embedder>) -> Self {
        self.documents = Some(documents);
        self
    }

    /// Keeps the vectors in `store` as well: a sync loads the vectors stored for the same
    /// text and embeds only the rest, so a restart does not embed the catalog again.
    pub fn with_store(mut self, store: Arc<dyn VectorStore>) -> Self {
        self.store = Some(store);
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
        if self.store.is_some() {
            self.forgotten
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(tool_id.to_string());
        }
        self.write().remove(tool_id)
    }

    /// Embeds every tool of the catalog whose vector is missing or stale (content changed)
    /// and every toolkit whose list of tools changed; drops the vectors of tools and toolkits
    /// no longer in `tools`. Returns how many tools were embedded. Vectors embedded before a failing
    /// batch are kept.
    pub async fn sync(&self, tools: &[Arc<ToolSpec>]) -> Result<usize> {
        let embedded = self.sync_tools(tools).await?;
        let kits = toolkit_texts(tools);
        self.sync_toolkits(&kits).await?;
        let gone_kits: Vec<String> = {
            let mut state = self.write_kits();
            let gone: Vec<String> = state
                .vectors
                .ids()
                .filter(|k| !kits.contains_key(*k))
                .map(str::to_string)
                .collect();
            for k in &gone {
                state.vectors.remove(k);
            }
            gone
        };
        let present: HashSet<&str> = tools.iter().map(|t| t.id.as_str()).collect();
        let gone: Vec<String> = self
            .read()
            .ids()
            .filter(|id| !present.contains(*id))
            .map(str::to_string)
            .collect();
        for id in &gone {
            self.forget(id);
        }
        self.flush_forgotten().await?;
        if let Some(store) = &self.store {
            store.delete_vectors(&self.space(KITS), &gone_kits).await?;
        }
        Ok(embedded)
    }

    /// Deletes the vectors of forgotten tools from the store (kept for the next sync when
    /// the store fails).
    async fn flush_forgotten(&self) -> Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let ids = std::mem::take(&mut *self.forgotten.lock().unwrap_or_else(|e| e.into_inner()));
        if let Err(e) = store.delete_vectors(&self.space(TOOLS), &ids).await {
            self.forgotten
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(ids);
            return Err(e);
        }
        Ok(())
    }

    /// [`DenseRetriever::sync`] after a partial catalog change: `tools` are every tool of the
    /// toolkits that changed (the unchanged ones cost a hash); nothing is dropped.
    pub async fn sync_changed(&self, tools: &[Arc<ToolSpec>]) -> Result<usize> {
        let embedded = self.sync_tools(tools).await?;
        self.sync_toolkits(&toolkit_texts(tools)).await?;
        self.flush_forgotten().await?;
        Ok(embedded)
    }

    async fn sync_tools(&self, tools: &[Arc<ToolSpec>]) -> Result<usize> {
        let missing: Vec<Pending> = {
            let index = self.read();
            tools
                .iter()
                .map(|t| (t, fingerprint(t)))
                .filter(|(t, fp)| !index.is_current(&t.id, *fp))
                .map(|(t, fp)| Pending {
                    id: t.id.clone(),
                    fingerprint: fp,
                    text: EmbeddingReranker::document_text(t),
                    toolkit: t.toolkit.clone(),
                })
                .collect()
        };
        let upsert = |rows: &[(&Pending, Vec<f32>)]| -> Result<()> {
            let groups: Vec<u32> = {
                let mut kits = self.write_kits();
                rows.iter()
                    .map(|(p, _)| p.toolkit.as_deref().map_or(NO_GROUP, |k| kits.slot(k)))
                    .collect()
            };
            let mut index = self.write();
            for ((p, v), group) in rows.iter().zip(groups) {
                index.upsert_in(&p.id, p.fingerprint, v, group)?;
            }
            Ok(())
        };
        self.restore_or_embed(TOOLS, &missing, upsert).await
    }

    /// Embeds the toolkits (key → text) whose text changed.
    async fn sync_toolkits(&self, kits: &HashMap<String, String>) -> Result<()> {
        if self.config.toolkit_weight == 0.0 {
            return Ok(());
        }
        let missing: Vec<Pending> = {
            let state = self.read_kits();
            kits.iter()
                .map(|(k, text)| (k, text, text_fingerprint(text)))
                .filter(|(k, _, fp)| !state.vectors.is_current(k, *fp))
                .map(|(k, text, fp)| Pending {
                    id: k.clone(),
                    fingerprint: fp,
                    text: text.clone(),
                    toolkit: None,
                })
                .collect()
        };
        let upsert = |rows: &[(&Pending, Vec<f32>)]| -> Result<()> {
            let mut state = self.write_kits();
            for (p, v) in rows {
                let slot = state.slot(&p.id);
                state.vectors.upsert_in(&p.id, p.fingerprint, v, slot)?;
            }
            Ok(())
        };
        self.restore_or_embed(KITS, &missing, upsert).await?;
        Ok(())
    }

    /// Gives `upsert` a vector for every row of `missing`: the stored one where the store
    /// holds one for the same text, else a new embedding (saved to the store). Returns how
    /// many were embedded.
    async fn restore_or_embed(
        &self,
        kind: &str,
        missing: &[Pending],
        upsert: impl Fn(&[(&Pending, Vec<f32>)]) -> Result<()>,
    ) -> Result<usize> {
        let space = self.space(kind);
        // With a store, each row carries the digest of its text (what a stored vector is for).
        let mut to_embed: Vec<(&Pending, Option<[u8; 32]>)> = Vec::new();
        match &self.store {
            Some(store) if !missing.is_empty() => {
                let ids: Vec<String> = missing.iter().map(|p| p.id.clone()).collect();
                let stored: HashMap<String, StoredVector> = store
                    .load_vectors(&space, &ids)
                    .await?
                    .into_iter()
                    .map(|v| (v.id.clone(), v))
                    .collect();
                let mut restored = Vec::new();
                for p in missing {
                    let digest = text_digest(&self.document_input(&p.text));
                    match stored.get(&p.id) {
                        Some(v) if v.digest == digest => restored.push((p, v.vector.clone())),
                        _ => to_embed.push((p, Some(digest))),
                    }
                }
                upsert(&restored)?;
            }
            _ => to_embed.extend(missing.iter().map(|p| (p, None))),
        }
        for chunk in to_embed.chunks(self.config.batch_size.max(1)) {
            let texts: Vec<String> = chunk.iter().map(|(p, _)| p.text.clone()).collect();
            let vectors = self.embed_documents(&texts).await?;
            if let Some(store) = &self.store {
                let rows: Vec<StoredVector> = chunk
                    .iter()
                    .zip(&vectors)
                    .filter_map(|((p, digest), v)| {
                        Some(StoredVector {
                            id: p.id.clone(),
                            digest: (*digest)?,
                            vector: v.clone(),
                        })
                    })
                    .collect();
                store.save_vectors(&space, &rows).await?;
            }
            let rows: Vec<(&Pending, Vec<f32>)> =
                chunk.iter().map(|(p, _)| *p).zip(vectors).collect();
            upsert(&rows)?;
        }
        Ok(to_embed.len())
    }

    /// The store space of `kind` rows: the document model and its text prefix.
    fn space(&self, kind: &str) -> String {
        let model = self.documents.as_ref().unwrap_or(&self.queries).model();
        format!("{model}|{}|{kind}", self.config.document_prefix)
    }

    /// What the document embedder is given for a tool or toolkit text: the text after the
    /// document prefix.
    fn document_input(&self, text: &str) -> String {
        format!("{}{text}", self.config.document_prefix)
    }

    /// Embeds tool or toolkit texts (document prefix added) with the document embedder.
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let embedder = self.documents.as_ref().unwrap_or(&self.queries);
        let prefixed: Vec<String> = texts.iter().map(|t| self.document_input(t)).collect();
        let vectors = embedder.embed(&prefixed).await?;
        if vectors.len() != texts.len() {
            return Err(Error::Internal(format!(
                "embedder returned {} vectors for {} texts",
                vectors.len(),
                texts.len()
            )));
        }
        Ok(vectors)
    }

    /// The `k` tools nearest to any of `queries` (unit vectors), best first, among those
    /// `allow` accepts: a tool scores its similarity to a query plus
    /// [`DenseConfig::toolkit_weight`] times its toolkit's, and keeps its best query.
    pub fn nearest(
        &self,
        queries: &[Arc<Vec<f32>>],
        k: usize,
        allow: impl FnMut(&str) -> bool,
    ) -> Vec<(String, f32)> {
        let toolkit_scores = self.toolkit_scores(queries);
        self.read().nearest_with(queries, &toolkit_scores, k, allow)
    }

    /// Per query, the weighted similarity of every toolkit, by toolkit slot.
    fn toolkit_scores(&self, queries: &[Arc<Vec<f32>>]) -> Vec<Vec<f32>> {
        let w = self.config.toolkit_weight;
        let state = self.read_kits();
        if w == 0.0 || state.vectors.is_empty() {
            return Vec::new();
        }
        queries
            .iter()
            .map(|q| {
                let mut s = vec![0.0; state.slots.len()];
                state.vectors.group_similarities(q, &mut s);
                s.iter_mut().for_each(|x| *x *= w);
                s
            })
            .collect()
    }

    /// Toolkit vectors held.
    pub fn toolkits(&self) -> usize {
        self.read_kits().vectors.len()
    }

    fn read_kits(&self) -> std::sync::RwLockReadGuard<'_, Toolkits> {
        self.kits.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_kits(&self) -> std::sync::RwLockWriteGuard<'_, Toolkits> {
        self.kits.write().unwrap_or_else(|e| e.into_inner())
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
                .filter(|t| {
                    cache.as_ref().is_none_or(|c| !c.contains(*t)) && seen.insert(t.as_str())
                })
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
        let mut out = Vec::with_capacity(keyed.len());
        for t in &keyed {
            let v = match fresh.get(t) {
                Some(v) => Some(v.clone()),
                None => cache.as_mut().and_then(|c| c.get(t).cloned()),
            };
            out.extend(v);
        }
        if let Some(c) = cache.as_mut() {
            for (t, v) in fresh {
                c.put(t, v);
            }
        }
        Ok(out)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, QueryCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Query vectors cached.
    pub fn cached_queries(&self) -> usize {
        self.lock_cache().as_ref().map_or(0, lru::LruCache::len)
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

/// A list's share of a fused score, from a candidate's rank and score in that list.
type ListScore = Box<dyn Fn(usize, f32) -> f32>;

/// The lexical candidates (best first) fused with the dense ones (tool id and score, best
/// first, already gated) by `fusion`; a list missing a tool adds nothing for it. The best
/// `limit` come back; dense-only tools carry a lexical score of 0.
///
/// - RRF: `1/(k + lexical rank) + 1/(k + dense rank)`;
/// - convex: `(1 − w) · lexical + w · dense`, each score min-max normalised within its own
///   list, so neither list's scale decides;
/// - semantic: the dense score alone (lexical candidates the dense list lacks come after).
pub(crate) fn fuse_with_lexical(
    lexical: Vec<ScoredTool>,
    dense: &[(String, f32)],
    index: &ToolIndex,
    fusion: Fusion,
    limit: usize,
) -> Vec<ScoredTool> {
    let (lex_part, dense_part): (ListScore, ListScore) = match fusion {
        Fusion::Rrf { k } => (
            Box::new(move |rank, _| 1.0 / (k + (rank + 1) as f32)),
            Box::new(move |rank, _| 1.0 / (k + (rank + 1) as f32)),
        ),
        Fusion::Convex { semantic_weight: w } => {
            let (llo, lhi) = min_max(lexical.iter().map(|c| c.score));
            let (dlo, dhi) = min_max(dense.iter().map(|d| d.1));
            (
                Box::new(move |_, s| (1.0 - w) * unit_scale(s, llo, lhi)),
                Box::new(move |_, s| w * unit_scale(s, dlo, dhi)),
            )
        }
        Fusion::Semantic => (
            Box::new(|rank, _| -1.0 - rank as f32 * 1e-6),
            Box::new(|_, s| 2.0 + s),
        ),
    };
    let mut fused: Vec<ScoredTool> = Vec::with_capacity(lexical.len() + dense.len());
    let mut at: HashMap<String, usize> = HashMap::with_capacity(lexical.len() + dense.len());
    for (rank, mut c) in lexical.into_iter().enumerate() {
        c.score = lex_part(rank, c.score);
        at.insert(c.tool.id.clone(), fused.len());
        fused.push(c);
    }
    for (rank, (id, s)) in dense.iter().enumerate() {
        let add = dense_part(rank, *s);
        match at.get(id) {
            Some(&i) if matches!(fusion, Fusion::Semantic) => fused[i].score = add,
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

fn min_max(it: impl Iterator<Item = f32>) -> (f32, f32) {
    it.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    })
}

/// `x` scaled to [0, 1] over `[lo, hi]`; 1 when the list has a single value.
fn unit_scale(x: f32, lo: f32, hi: f32) -> f32 {
    if hi > lo {
        (x - lo) / (hi - lo)
    } else {
        1.0
    }
}
