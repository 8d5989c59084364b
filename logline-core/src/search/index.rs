//! An in-memory inverted index over a tool catalog, updated tool by tool.
//!
//! Documents live in slots; an update or removal tombstones the old slot and the postings
//! that point at it are dropped by a compaction once they make up a quarter of all postings,
//! so an upsert costs the size of the tool, not the size of the catalog. A search reads each
//! query term's scoring list: per tool its saturated BM25F weight, toolkit and gate class
//! side by side, built from the postings on first use and dropped by the next change. A warm
//! search reads memory in order, and decides what the gate rules of a tool's own metadata
//! (risk, tags, connection) say once per gate class instead of once per tool. One query is
//! ranked with MaxScore pruning (see `maxscore`): the lists of common terms are only probed
//! for the tools that can still rank; several queries at once share one full scan.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::gate::{toolkit_key, Connected, ToolGate};
use super::impacts::{ImpactCache, KitGroups, KitImpact, TermImpacts, ToolImpact};
use super::rank::{Bm25Params, BoostParams, Field, FIELD_COUNT};
use super::tokenize::Analyzer;
use crate::tool::catalog::fingerprint;
use crate::tool::{RiskLevel, ToolSpec};

mod maxscore;

const F: usize = FIELD_COUNT;
const NO_KIT: u32 = u32::MAX;

/// Settings of a [`ToolIndex`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexConfig {
    /// Text analysis.
    pub(crate) analyzer: Analyzer,
    /// BM25F parameters.
    pub(crate) bm25: Bm25Params,
    /// Router boosts.
    pub(crate) boosts: BoostParams,
    /// Fuse toolkit-level evidence into tool scores: a tool also scores as a member of its
    /// toolkit (the toolkit read as one document made of all its tools), because a request
    /// usually names or describes an app and the tools it needs come from that app. On by
    /// default.
    pub toolkit_evidence: bool,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            analyzer: Analyzer::default(),
            bm25: Bm25Params::default(),
            boosts: BoostParams::default(),
            toolkit_evidence: true,
        }
    }
}

/// A tool with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredTool {
    /// The tool.
    pub tool: Arc<ToolSpec>,
    /// Final score (lexical with boosts).
    pub score: f32,
    /// Lexical score (tool and toolkit evidence, before boosts).
    pub lexical: f32,
}

/// What the ranking knows besides the query text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RankHints {
    /// Toolkits the router proposed.
    pub candidate_apps: Vec<String>,
    /// Tags of the request's intent (`read`, `write`, `send`, ...; see
    /// [`SearchRequest::intent`](super::SearchRequest::intent)).
    pub intent_tags: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: u32,
    tf: [u16; F],
}

/// Cold per-tool data.
#[derive(Debug)]
struct Doc {
    tool: Arc<ToolSpec>,
    fingerprint: u64,
    terms: Vec<u32>,
    tags: Vec<u32>,
}

/// Hot per-tool data read by every search.
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    alive: bool,
    toolkit: u32,
    /// Index into `ToolIndex::classes`.
    class: u32,
    /// Hash of the tool id: breaks score ties independently of insertion order.
    id_hash: u64,
}

/// What the gate reads of a tool itself, apart from its toolkit and id. Tools sharing it
/// share a class, and a search decides each class once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct GateClass {
    risk: u8,
    needs_connection: bool,
    /// Some tag has an id ≥ 64: the tag check falls back to `Doc::tags`.
    tag_overflow: bool,
    tag_bits: u64,
}

/// The index. Not synchronised: share it behind a lock (as [`super::ToolSearch`] does).
#[derive(Debug, Default)]
pub struct ToolIndex {
    config: IndexConfig,
    docs: Vec<Option<Doc>>,
    meta: Vec<Meta>,
    lens: Vec<[f32; F]>,
    by_id: HashMap<String, u32>,
    free: Vec<u32>,
    tombstoned: Vec<u32>,
    terms: HashMap<String, u32>,
    postings: Vec<Vec<Posting>>,
    df: Vec<u32>,
    live_postings: usize,
    dead_postings: usize,
    len_sum: [f64; F],
    toolkits: HashMap<String, u32>,
    kit_docs: Vec<Vec<u32>>,
    /// Per toolkit, the field-weighted length of all its members.
    kit_len: Vec<f32>,
    kit_len_sum: f64,
    live_kits: usize,
    tags: HashMap<String, u32>,
    classes: Vec<GateClass>,
    class_ids: HashMap<GateClass, u32>,
    /// Bumped by every change; the cached length norms are valid for one generation.
    generation: u64,
    norm_cache: RwLock<NormCache>,
    impacts: ImpactCache,
}

/// Per tool and field, `weight / ((1 − b) + b · len / avglen)` for one index generation.
#[derive(Debug, Default)]
struct NormCache {
    generation: u64,
    inv: Arc<Vec<[f32; F]>>,
}

fn risk_rank(r: RiskLevel) -> u8 {
    match r {
        RiskLevel::Low => 0,
        RiskLevel::Medium => 1,
        RiskLevel::High => 2,
    }
}

impl ToolIndex {
    /// An empty index with default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty index with `config`.
    pub fn with_config(config: IndexConfig) -> Self {
        ToolIndex {
            config,
            ..Default::default()
        }
    }

    /// An index of `tools`.
    pub fn from_tools<I: IntoIterator<Item = ToolSpec>>(tools: I) -> Self {
        let mut idx = Self::new();
        for t in tools {
            idx.upsert(t);
        }
        idx
    }

    /// The settings.
    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Number of tools.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are no tools.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// A tool by id.
    pub fn get(&self, id: &str) -> Option<Arc<ToolSpec>> {
        let slot = *self.by_id.get(id)?;
        self.doc(slot).map(|d| d.tool.clone())
    }

    /// Whether `id` is indexed.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Every tool, in no particular order.
    pub fn tools(&self) -> impl Iterator<Item = &Arc<ToolSpec>> + '_ {
        self.docs.iter().flatten().map(|d| &d.tool)
    }

    /// Ids of every tool.
    pub fn ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.by_id.keys().map(String::as_str)
    }

    fn doc(&self, slot: u32) -> Option<&Doc> {
        self.docs.get(slot as usize).and_then(Option::as_ref)
    }

    /// Inserts or replaces a tool. Returns `false` when an identical tool (ignoring
    /// `updated_at`) is already indexed.
    pub fn upsert(&mut self, tool: ToolSpec) -> bool {
        self.upsert_arc(Arc::new(tool))
    }

    /// [`ToolIndex::upsert`] for a shared tool.
    pub fn upsert_arc(&mut self, tool: Arc<ToolSpec>) -> bool {
        let fingerprint = fingerprint(&tool);
        if let Some(&slot) = self.by_id.get(&tool.id) {
            if self.doc(slot).is_some_and(|d| d.fingerprint == fingerprint) {
                return false;
            }
            self.remove(&tool.id);
        }
        self.insert(tool, fingerprint);
        true
    }

    /// Removes a tool; returns whether it was indexed.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(slot) = self.by_id.remove(id) else {
            return false;
        };
        let Some(doc) = self.docs.get_mut(slot as usize).and_then(Option::take) else {
            return false;
        };
        self.generation += 1;
        self.impacts.clear();
        let s = slot as usize;
        for &t in &doc.terms {
            self.df[t as usize] = self.df[t as usize].saturating_sub(1);
        }
        self.live_postings -= doc.terms.len();
        self.dead_postings += doc.terms.len();
        let lens = std::mem::replace(&mut self.lens[s], [0.0; F]);
        for (sum, len) in self.len_sum.iter_mut().zip(lens) {
            *sum -= f64::from(len);
        }
        let kit = self.meta[s].toolkit;
        self.meta[s] = Meta::default();
        if kit != NO_KIT {
            let k = kit as usize;
            let wlen = self.weighted_len(&lens);
            let members = &mut self.kit_docs[k];
            if let Some(pos) = members.iter().position(|&m| m == slot) {
                members.swap_remove(pos);
            }
            self.kit_len[k] -= wlen;
            self.kit_len_sum -= f64::from(wlen);
            if members.is_empty() {
                self.live_kits -= 1;
                self.kit_len[k] = 0.0;
            }
        }
        self.tombstoned.push(slot);
        if self.dead_postings > 1024 && self.dead_postings * 4 > self.live_postings {
            self.compact();
        }
        true
    }

    /// Drops postings of removed tools and makes their slots reusable.
    pub fn compact(&mut self) {
        let meta = &self.meta;
        for list in &mut self.postings {
            list.retain(|p| meta[p.doc as usize].alive);
        }
        self.dead_postings = 0;
        self.free.append(&mut self.tombstoned);
    }

    fn insert(&mut self, tool: Arc<ToolSpec>, fingerprint: u64) {
        self.generation += 1;
        self.impacts.clear();
        let fields = field_texts(&tool);
        let mut counts: HashMap<u32, [u16; F]> = HashMap::new();
        let mut lens = [0f32; F];
        let mut buf = Vec::new();
        for (f, text) in fields.iter().enumerate() {
            buf.clear();
            self.config.analyzer.terms_into(text, &mut buf);
            lens[f] = buf.len() as f32;
            for term in buf.drain(..) {
                let id = self.term_id(term);
                let tf = &mut counts.entry(id).or_insert([0; F])[f];
                *tf = tf.saturating_add(1);
            }
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.docs.push(None);
                self.meta.push(Meta::default());
                self.lens.push([0.0; F]);
                (self.docs.len() - 1) as u32
            }
        };
        let s = slot as usize;
        let mut terms: Vec<u32> = counts.keys().copied().collect();
        terms.sort_unstable();
        for &t in &terms {
            self.postings[t as usize].push(Posting {
                doc: slot,
                tf: counts[&t],
            });
            self.df[t as usize] += 1;
        }
        self.live_postings += terms.len();
        for (sum, len) in self.len_sum.iter_mut().zip(lens) {
            *sum += f64::from(len);
        }
        let wlen = self.weighted_len(&lens);
        let kit = match tool.toolkit.as_deref() {
            Some(t) => {
                let k = self.toolkit_id(t);
                let ku = k as usize;
                if self.kit_docs[ku].is_empty() {
                    self.live_kits += 1;
                }
                self.kit_docs[ku].push(slot);
                self.kit_len[ku] += wlen;
                self.kit_len_sum += f64::from(wlen);
                k
            }
            None => NO_KIT,
        };
        let tags: Vec<u32> = tool.tags.iter().map(|t| self.tag_id(t)).collect();
        let mut h = DefaultHasher::new();
        tool.id.hash(&mut h);
        let mut class = GateClass {
            risk: risk_rank(tool.risk_level),
            needs_connection: tool.requires_connection,
            tag_overflow: false,
            tag_bits: 0,
        };
        for &t in &tags {
            if t < 64 {
                class.tag_bits |= 1 << t;
            } else {
                class.tag_overflow = true;
            }
        }
        self.meta[s] = Meta {
            id_hash: h.finish(),
            alive: true,
            toolkit: kit,
            class: self.class_id(class),
        };
        self.lens[s] = lens;
        self.by_id.insert(tool.id.clone(), slot);
        self.docs[s] = Some(Doc {
            tool,
            fingerprint,
            terms,
            tags,
        });
    }

    fn weighted_len(&self, lens: &[f32; F]) -> f32 {
        lens.iter()
            .zip(&self.config.bm25.field_weight)
            .map(|(l, w)| l * w)
            .sum()
    }

    fn term_id(&mut self, term: String) -> u32 {
        if let Some(&id) = self.terms.get(&term) {
            return id;
        }
        let id = self.postings.len() as u32;
        self.terms.insert(term, id);
        self.postings.push(Vec::new());
        self.df.push(0);
        id
    }

    fn toolkit_id(&mut self, name: &str) -> u32 {
        let key = toolkit_key(name);
        if let Some(&id) = self.toolkits.get(&key) {
            return id;
        }
        let id = self.kit_docs.len() as u32;
        self.toolkits.insert(key, id);
        self.kit_docs.push(Vec::new());
        self.kit_len.push(0.0);
        id
    }

    fn class_id(&mut self, class: GateClass) -> u32 {
        let next = self.classes.len() as u32;
        *self.class_ids.entry(class).or_insert_with(|| {
            self.classes.push(class);
            next
        })
    }

    fn tag_id(&mut self, tag: &str) -> u32 {
        let key = tag.to_lowercase();
        let next = self.tags.len() as u32;
        *self.tags.entry(key).or_insert(next)
    }

    /// The `k` best tools for `query` that pass `gate`, best first.
    pub fn search(
        &self,
        query: &str,
        gate: &ToolGate,
        hints: &RankHints,
        k: usize,
    ) -> Vec<ScoredTool> {
        self.search_many(&[query], gate, hints, k)
            .pop()
            .unwrap_or_default()
    }

    /// [`Self::search`] for several queries at once (a request and its sub-requests, see
    /// [`DecomposeConfig`](super::DecomposeConfig)): element `i` of the result is exactly
    /// `search(queries[i], ..)`, but each posting list is scanned once for all the queries
    /// that contain its term.
    pub fn search_many(
        &self,
        queries: &[&str],
        gate: &ToolGate,
        hints: &RankHints,
        k: usize,
    ) -> Vec<Vec<ScoredTool>> {
        if k == 0 || self.is_empty() || queries.is_empty() {
            return vec![Vec::new(); queries.len()];
        }
        // Per-thread scratch buffers: a search allocates (and page-faults) almost nothing.
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => self.search_in(queries, gate, hints, k, &mut scratch),
            Err(_) => self.search_in(queries, gate, hints, k, &mut Scratch::default()),
        })
    }

    /// One query is ranked by [`Self::top_pruned`] (MaxScore: most postings are never read)
    /// where that is cheaper; several share one scan of each posting list
    /// ([`Self::top_exhaustive`]).
    fn search_in(
        &self,
        queries: &[&str],
        gate: &ToolGate,
        hints: &RankHints,
        k: usize,
        scratch: &mut Scratch,
    ) -> Vec<Vec<ScoredTool>> {
        let nq = queries.len();
        let gate_ids = self.compile_gate(gate);
        let boosts = Boosts::compile(self, hints);
        let terms = self.query_terms(queries);
        let use_kits = self.config.toolkit_evidence && self.live_kits > 0;
        let nk = if use_kits { self.kit_docs.len() } else { 0 };
        zeroed(&mut scratch.kit_acc, nk * nq);
        if use_kits {
            self.accumulate_kits(&terms, &gate_ids, scratch);
        }
        let pruned = if nq == 1 {
            self.top_pruned(
                &terms,
                &gate_ids,
                &boosts,
                &scratch.kit_acc,
                k,
                &mut scratch.pruned,
            )
        } else {
            None
        };
        let tops = match pruned {
            Some(top) => vec![top],
            None => self.top_exhaustive(&terms, &gate_ids, &boosts, scratch, k),
        };
        tops.into_iter()
            .map(|top| {
                top.into_sorted(self)
                    .into_iter()
                    .filter_map(|(score, lexical, slot)| {
                        let doc = self.doc(slot)?;
                        // Defence in depth: the full rule check on what leaves the index.
                        gate.check(&doc.tool).ok()?;
                        Some(ScoredTool {
                            tool: doc.tool.clone(),
                            score,
                            lexical,
                        })
                    })
                    .collect()
            })
            .collect()
    }

    /// The indexed terms of `queries`, by term id, with their weights in each query.
    fn query_terms(&self, queries: &[&str]) -> Vec<QueryTerm> {
        let nq = queries.len();
        let mut qtf: HashMap<u32, Vec<u32>> = HashMap::new();
        for (i, query) in queries.iter().enumerate() {
            for term in self.config.analyzer.terms(query) {
                if let Some(&t) = self.terms.get(&term) {
                    qtf.entry(t).or_insert_with(|| vec![0; nq])[i] += 1;
                }
            }
        }
        let mut counts: Vec<(u32, Vec<u32>)> = qtf.into_iter().collect();
        counts.sort_unstable();
        let p = &self.config.bm25;
        let n = self.len() as f32;
        counts
            .into_iter()
            .filter(|(t, _)| self.df[*t as usize] > 0)
            .map(|(term, qf)| {
                let df = self.df[term as usize] as f32;
                let qw = qf
                    .iter()
                    .map(|&f| {
                        let f = f as f32;
                        f * (p.k3 + 1.0) / (p.k3 + f) * (p.k1 + 1.0)
                    })
                    .collect();
                QueryTerm {
                    term,
                    idf: (1.0 + (n - df + 0.5) / (df + 0.5)).ln(),
                    qw,
                    list: self.term_impacts(term),
                }
            })
            .collect()
    }

    /// Every query's `k` best tools, each posting list scanned once for all the queries.
    fn top_exhaustive(
        &self,
        terms: &[QueryTerm],
        gate: &CompiledGate<'_>,
        boosts: &Boosts,
        scratch: &mut Scratch,
        k: usize,
    ) -> Vec<TopK> {
        let nq = terms.first().map_or(1, |t| t.qw.len());
        let Scratch {
            acc,
            kit_acc,
            touched,
            touched_kits,
            seen,
            ..
        } = scratch;
        zeroed(acc, self.docs.len() * nq);
        touched.clear();
        touched_kits.clear();
        seen.clear();
        seen.resize(self.docs.len(), UNSEEN);
        self.accumulate_tools(terms, gate, acc, seen, touched, touched_kits);
        let nk = kit_acc.len() / nq;
        let kit_score = |kit: u32, q: usize| {
            if nk > 0 && kit != NO_KIT {
                kit_acc[kit as usize * nq + q]
            } else {
                0.0
            }
        };
        // Per query, the maxima of the two scores over the tools it matched; one pass over the
        // touched tools for all queries (a tool's accumulators share a cache line).
        let mut tool_max = vec![0f32; nq];
        let mut kit_max = vec![0f32; nq];
        for (&slot, &kit) in touched.iter().zip(touched_kits.iter()) {
            let row = &acc[slot as usize * nq..(slot as usize + 1) * nq];
            for (q, &a) in row.iter().enumerate() {
                if a > 0.0 {
                    tool_max[q] = tool_max[q].max(a);
                    kit_max[q] = kit_max[q].max(kit_score(kit, q));
                }
            }
        }
        // Candidate apps and the members of each query's best toolkits enter with their tool
        // score; those that matched no term of the query carry MIN_POSITIVE: no own score.
        let mut kits: Vec<(f32, u32)> = Vec::new();
        let mut extras: Vec<Vec<(u32, u32)>> = vec![Vec::new(); nq];
        for (q, list) in extras.iter_mut().enumerate() {
            let mut extra: Vec<u32> = boosts.apps.clone();
            if nk > 0 {
                kits.clear();
                kits.extend(
                    (0..nk)
                        .map(|i| (kit_acc[i * nq + q], i as u32))
                        .filter(|(s, _)| *s > 0.0),
                );
                let top = k.min(kits.len());
                if top > 0 {
                    kits.select_nth_unstable_by(top - 1, |a, b| {
                        b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
                    });
                    extra.extend(kits[..top].iter().map(|(_, i)| *i));
                }
            }
            for kit in extra {
                for &slot in &self.kit_docs[kit as usize] {
                    let a = &mut acc[slot as usize * nq + q];
                    if *a == 0.0 {
                        *a = f32::MIN_POSITIVE;
                        if gate.allows(self, slot) {
                            list.push((slot, kit));
                            kit_max[q] = kit_max[q].max(kit_score(kit, q));
                        }
                    }
                }
            }
        }
        let fusions: Vec<Fusion> = (0..nq)
            .map(|q| Fusion::new(tool_max[q], kit_max[q]))
            .collect();
        let mut tops: Vec<TopK> = (0..nq).map(|_| TopK::new(k)).collect();
        for (&slot, &kit) in touched.iter().zip(touched_kits.iter()) {
            let row = &acc[slot as usize * nq..(slot as usize + 1) * nq];
            for (q, &a) in row.iter().enumerate() {
                // MIN_POSITIVE: entered through its toolkit, offered below.
                if a > f32::MIN_POSITIVE {
                    let lexical = fusions[q].lexical(a, kit_score(kit, q));
                    let score = boosts.apply(self, slot, kit, lexical);
                    tops[q].offer(score, lexical, slot, self);
                }
            }
        }
        for (q, top) in tops.iter_mut().enumerate() {
            for &(slot, kit) in &extras[q] {
                let lexical = fusions[q].lexical(0.0, kit_score(kit, q));
                top.offer(boosts.apply(self, slot, kit, lexical), lexical, slot, self);
            }
        }
        tops
    }

    fn id_of(&self, slot: u32) -> &str {
        self.doc(slot).map(|d| d.tool.id.as_str()).unwrap_or("")
    }

    /// Adds, for every query `i`, the BM25F score of every tool `gate` shows matching
    /// `queries[i]` into `acc[slot * nq + i]`. `touched` gets every shown tool some query
    /// matched, `touched_kits` its toolkit.
    fn accumulate_tools(
        &self,
        terms: &[QueryTerm],
        gate: &CompiledGate<'_>,
        acc: &mut [f32],
        seen: &mut [u8],
        touched: &mut Vec<u32>,
        touched_kits: &mut Vec<u32>,
    ) {
        // (query, weight) of the queries containing the current term.
        let mut active: Vec<(usize, f32)> = Vec::new();
        for term in terms {
            let nq = term.qw.len();
            active.clear();
            active.extend(
                term.qw
                    .iter()
                    .enumerate()
                    .filter(|(_, &q)| q > 0.0)
                    .map(|(i, &q)| (i, q * term.idf)),
            );
            for tool in term.list.tools.iter() {
                let s = tool.slot as usize;
                if seen[s] == UNSEEN {
                    // The gate, once per tool, from what the list holds.
                    let shown = gate.allows_tool(self, tool.slot, tool.class, tool.kit);
                    seen[s] = if shown { SHOWN } else { HIDDEN };
                    if shown {
                        touched.push(tool.slot);
                        touched_kits.push(tool.kit);
                    }
                }
                if seen[s] == SHOWN {
                    let row = s * nq;
                    for &(i, weight) in &active {
                        acc[row + i] += weight * tool.impact;
                    }
                }
            }
        }
    }

    /// Adds, for every query `i`, the toolkit-level BM25F score of every toolkit into
    /// `scratch.kit_acc[kit * nq + i]`, from the members `gate` may show.
    fn accumulate_kits(&self, terms: &[QueryTerm], gate: &CompiledGate<'_>, scratch: &mut Scratch) {
        let Scratch {
            kit_acc,
            kit_wtf,
            kit_touched,
            ..
        } = scratch;
        zeroed(kit_wtf, self.kit_docs.len());
        let nk = self.live_kits as f32;
        let kit_avg = self.kit_avg_len();
        // Per shown toolkit, its saturated weight for the current term.
        let mut weights: Vec<(u32, f32)> = Vec::new();
        for term in terms {
            let list = &term.list;
            let shown: &[(u32, f32)] = if gate.may_show(list.kits_risk, list.kits_tag_bits) {
                &list.kit_weights
            } else {
                // Some groups are hidden: sum the shown ones (`kit_wtf`) per toolkit.
                kit_touched.clear();
                for m in list.kits.iter() {
                    if gate.may_show(m.risk, m.tag_bits) {
                        let k = m.kit as usize;
                        if kit_wtf[k] == 0.0 {
                            kit_touched.push(m.kit);
                        }
                        kit_wtf[k] += m.wtf;
                    }
                }
                weights.clear();
                weights.extend(kit_touched.iter().map(|&k| {
                    let wtf = std::mem::take(&mut kit_wtf[k as usize]);
                    (k, self.kit_saturation(k, wtf, kit_avg))
                }));
                &weights
            };
            if shown.is_empty() {
                continue;
            }
            let dfk = shown.len() as f32;
            let kidf = (1.0 + (nk - dfk + 0.5) / (dfk + 0.5)).ln();
            let nq = term.qw.len();
            for (i, &q) in term.qw.iter().enumerate() {
                if q > 0.0 {
                    let kweight = q * kidf;
                    for &(k, weight) in shown {
                        kit_acc[k as usize * nq + i] += kweight * weight;
                    }
                }
            }
        }
    }

    /// The mean field-weighted length of a toolkit.
    fn kit_avg_len(&self) -> f32 {
        let nk = self.live_kits as f32;
        if nk > 0.0 {
            (self.kit_len_sum as f32 / nk).max(1.0)
        } else {
            1.0
        }
    }

    /// A toolkit's saturated BM25 weight `tfn / (k1 + tfn)` for the summed field-weighted
    /// term frequency `wtf` of its members.
    fn kit_saturation(&self, kit: u32, wtf: f32, kit_avg: f32) -> f32 {
        let p = &self.config.bm25;
        let kb = p.field_b[Field::Description as usize];
        let tfn = wtf / ((1.0 - kb) + kb * self.kit_len[kit as usize] / kit_avg);
        tfn / (p.k1 + tfn)
    }

    /// The scoring list of term `t` for the current index state.
    fn term_impacts(&self, t: u32) -> Arc<TermImpacts> {
        self.impacts.get_or_build(t, || {
            let inv = self.inverse_norms();
            let p = &self.config.bm25;
            let postings = &self.postings[t as usize];
            let mut tools = Vec::with_capacity(postings.len());
            let mut kits = KitGroups::new(self.kit_docs.len());
            for post in postings {
                let m = &self.meta[post.doc as usize];
                if !m.alive {
                    continue;
                }
                let norm = &inv[post.doc as usize];
                let tf = post.tf.map(f32::from);
                let tfw: f32 = (0..F).map(|f| norm[f] * tf[f]).sum();
                tools.push(ToolImpact {
                    slot: post.doc,
                    impact: tfw / (p.k1 + tfw),
                    kit: m.toolkit,
                    class: m.class,
                });
                if m.toolkit != NO_KIT {
                    let class = &self.classes[m.class as usize];
                    kits.add(KitImpact {
                        kit: m.toolkit,
                        risk: class.risk,
                        tag_bits: class.tag_bits,
                        wtf: (0..F).map(|f| p.field_weight[f] * tf[f]).sum(),
                    });
                }
            }
            tools.sort_unstable_by_key(|t| t.slot);
            let kits = kits.finish();
            // Each toolkit's groups summed in list order, as a search sums the shown ones.
            let mut at = vec![u32::MAX; self.kit_docs.len()];
            let mut sums: Vec<(u32, f32)> = Vec::new();
            for m in kits.iter() {
                let i = &mut at[m.kit as usize];
                if *i == u32::MAX {
                    *i = sums.len() as u32;
                    sums.push((m.kit, 0.0));
                }
                sums[*i as usize].1 += m.wtf;
            }
            let kit_avg = self.kit_avg_len();
            TermImpacts {
                max_impact: tools.iter().map(|t| t.impact).fold(0.0, f32::max),
                tools: tools.into_boxed_slice(),
                kit_weights: sums
                    .into_iter()
                    .map(|(kit, wtf)| (kit, self.kit_saturation(kit, wtf, kit_avg)))
                    .collect(),
                kits_risk: kits.iter().map(|m| m.risk).max().unwrap_or(0),
                kits_tag_bits: kits.iter().fold(0, |bits, m| bits | m.tag_bits),
                kits,
            }
        })
    }

    /// Heap bytes of the scoring lists built since the last change (at most one per
    /// indexed term; built as queries use the terms).
    pub fn scoring_list_bytes(&self) -> usize {
        self.impacts.bytes()
    }

    /// How many postings the lists of `query`'s terms hold (what a full scan reads; a
    /// single-query search skips most of the common terms' postings), and the number of
    /// distinct indexed query terms.
    pub fn query_cost(&self, query: &str) -> (usize, usize) {
        let terms: HashSet<u32> = self
            .config
            .analyzer
            .terms(query)
            .iter()
            .filter_map(|t| self.terms.get(t).copied())
            .collect();
        let postings = terms.iter().map(|&t| self.postings[t as usize].len()).sum();
        (postings, terms.len())
    }

    /// The length norms of the current generation (computed once per change, O(tools)).
    fn inverse_norms(&self) -> Arc<Vec<[f32; F]>> {
        {
            let c = self.norm_cache.read().unwrap_or_else(|e| e.into_inner());
            if c.generation == self.generation && c.inv.len() == self.lens.len() {
                return c.inv.clone();
            }
        }
        let p = &self.config.bm25;
        let (base, scale) = norms(p, &self.len_sum, self.len() as f32);
        let inv: Vec<[f32; F]> = self
            .lens
            .iter()
            .map(|l| {
                let mut o = [0f32; F];
                for (f, v) in o.iter_mut().enumerate() {
                    *v = p.field_weight[f] / (base[f] + scale[f] * l[f]);
                }
                o
            })
            .collect();
        let inv = Arc::new(inv);
        *self.norm_cache.write().unwrap_or_else(|e| e.into_inner()) = NormCache {
            generation: self.generation,
            inv: inv.clone(),
        };
        inv
    }

    fn compile_gate<'g>(&self, gate: &'g ToolGate) -> CompiledGate<'g> {
        let mut blocked_bits = 0u64;
        let mut blocked_high = HashSet::new();
        for (tag, &id) in &self.tags {
            if gate.is_blocked_tag(tag) {
                if id < 64 {
                    blocked_bits |= 1 << id;
                } else {
                    blocked_high.insert(id);
                }
            }
        }
        let kit_mask = |keys: &HashSet<String>| {
            let mut mask = vec![false; self.kit_docs.len()];
            for k in keys {
                if let Some(&id) = self.toolkits.get(k) {
                    mask[id as usize] = true;
                }
            }
            mask
        };
        let connected = match gate.connected() {
            Connected::Unrestricted => None,
            Connected::Toolkits(keys) => Some(kit_mask(keys)),
        };
        let rules = gate.rules();
        let mut compiled = CompiledGate {
            gate,
            max_risk: risk_rank(rules.max_risk),
            blocked_bits,
            blocked_high,
            connected,
            allow_no_auth: rules.allow_no_auth_tools,
            scoped: gate.scope_toolkits().is_some() || rules.allowed_tools.is_some(),
            scope_kits: gate.scope_toolkits().map(kit_mask),
            slow: !rules.denied_tools.is_empty()
                || rules.allowed_tools.is_some()
                || rules.hubs.is_some(),
            classes: Vec::new(),
        };
        compiled.classes = self
            .classes
            .iter()
            .map(|c| ClassRule::of(c, &compiled))
            .collect();
        compiled
    }
}

/// An indexed query term: its idf, its BM25 query-term weight in each query (0 where the
/// query lacks it) and its scoring list.
struct QueryTerm {
    term: u32,
    idf: f32,
    qw: Vec<f32>,
    list: Arc<TermImpacts>,
}

/// The router's hints resolved to index ids.
struct Boosts {
    params: BoostParams,
    /// Candidate apps, each once.
    apps: Vec<u32>,
    app_mask: Option<Vec<bool>>,
    /// Intent tags with ids below 64, as bits; the others listed.
    intent: u64,
    intent_high: Vec<u32>,
}

impl Boosts {
    fn compile(idx: &ToolIndex, hints: &RankHints) -> Self {
        let mut apps: Vec<u32> = hints
            .candidate_apps
            .iter()
            .filter_map(|a| idx.toolkits.get(&toolkit_key(a)).copied())
            .collect();
        apps.sort_unstable();
        apps.dedup();
        let app_mask = (!apps.is_empty()).then(|| {
            let mut m = vec![false; idx.kit_docs.len()];
            for &a in &apps {
                m[a as usize] = true;
            }
            m
        });
        let intent_ids: Vec<u32> = hints
            .intent_tags
            .iter()
            .filter_map(|t| idx.tags.get(&t.to_lowercase()).copied())
            .collect();
        Boosts {
            params: idx.config.boosts,
            apps,
            app_mask,
            intent: intent_ids
                .iter()
                .filter(|&&id| id < 64)
                .fold(0, |bits, &id| bits | 1 << id),
            intent_high: intent_ids.into_iter().filter(|&id| id >= 64).collect(),
        }
    }

    fn has_intent(&self) -> bool {
        self.intent != 0 || !self.intent_high.is_empty()
    }

    /// The final score of the tool in `slot` (toolkit `kit`) from its lexical score.
    fn apply(&self, idx: &ToolIndex, slot: u32, kit: u32, lexical: f32) -> f32 {
        let mut score = lexical;
        if let Some(mask) = &self.app_mask {
            if kit != NO_KIT && mask[kit as usize] {
                score = score * (1.0 + self.params.candidate_app) + self.params.candidate_app_floor;
            }
        }
        if self.has_intent() {
            let class = &idx.classes[idx.meta[slot as usize].class as usize];
            let high = || {
                idx.doc(slot)
                    .is_some_and(|d| d.tags.iter().any(|t| self.intent_high.contains(t)))
            };
            if class.tag_bits & self.intent != 0
                || (!self.intent_high.is_empty() && class.tag_overflow && high())
            {
                score *= 1.0 + self.params.intent_tag;
            }
        }
        score
    }

    /// The largest factor [`Self::apply`] gives a tool outside the candidate apps.
    fn outside_apps_factor(&self) -> f32 {
        if self.has_intent() {
            1.0 + self.params.intent_tag
        } else {
            1.0
        }
    }
}

/// CombSUM of max-normalised scores: `tool / max(tool) + toolkit / max(toolkit)`.
#[derive(Debug, Clone, Copy)]
struct Fusion {
    tool_scale: f32,
    kit_scale: f32,
}

impl Fusion {
    fn new(tool_max: f32, kit_max: f32) -> Self {
        let inverse = |m: f32| if m > f32::MIN_POSITIVE { 1.0 / m } else { 0.0 };
        Fusion {
            tool_scale: inverse(tool_max),
            kit_scale: inverse(kit_max),
        }
    }

    fn lexical(&self, own: f32, kit: f32) -> f32 {
        own * self.tool_scale + kit * self.kit_scale
    }
}

/// Reusable buffers of one search.
#[derive(Default)]
struct Scratch {
    acc: Vec<f32>,
    kit_acc: Vec<f32>,
    kit_wtf: Vec<f32>,
    touched: Vec<u32>,
    kit_touched: Vec<u32>,
    /// Each touched tool's toolkit, next to it: the passes after accumulation read these
    /// two arrays in order instead of the tools' metadata.
    touched_kits: Vec<u32>,
    /// Per slot: [`UNSEEN`], [`SHOWN`] or [`HIDDEN`] by the gate.
    seen: Vec<u8>,
    pruned: maxscore::PrunedScratch,
}

const UNSEEN: u8 = 0;
const SHOWN: u8 = 1;
const HIDDEN: u8 = 2;

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

fn zeroed(v: &mut Vec<f32>, len: usize) {
    v.clear();
    v.resize(len, 0.0);
}

fn norms(p: &Bm25Params, len_sum: &[f64; F], n: f32) -> ([f32; F], [f32; F]) {
    let mut base = [0f32; F];
    let mut scale = [0f32; F];
    for f in 0..F {
        let avg = if n > 0.0 {
            (len_sum[f] as f32 / n).max(1.0)
        } else {
            1.0
        };
        base[f] = 1.0 - p.field_b[f];
        scale[f] = p.field_b[f] / avg;
    }
    (base, scale)
}

/// The `k` best of a stream, ties broken by tool id: a binary heap whose root is the worst
/// kept item, so most offers cost one comparison and a replacement costs `O(log k)`.
struct TopK {
    k: usize,
    items: Vec<(f32, f32, u32)>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            items: Vec::with_capacity(k),
        }
    }

    fn better(idx: &ToolIndex, a: &(f32, f32, u32), b: &(f32, f32, u32)) -> bool {
        match a.0.total_cmp(&b.0) {
            std::cmp::Ordering::Equal => {
                let (ha, hb) = (
                    idx.meta[a.2 as usize].id_hash,
                    idx.meta[b.2 as usize].id_hash,
                );
                ha < hb || (ha == hb && idx.id_of(a.2) < idx.id_of(b.2))
            }
            o => o.is_gt(),
        }
    }

    fn offer(&mut self, score: f32, lexical: f32, slot: u32, idx: &ToolIndex) {
        let item = (score, lexical, slot);
        if self.items.len() < self.k {
            self.items.push(item);
            // Sift up: a parent is never better than its children.
            let mut i = self.items.len() - 1;
            while i > 0 {
                let parent = (i - 1) / 2;
                if !Self::better(idx, &self.items[parent], &self.items[i]) {
                    break;
                }
                self.items.swap(parent, i);
                i = parent;
            }
            return;
        }
        let Some(worst) = self.items.first() else {
            return;
        };
        if score < worst.0 || !Self::better(idx, &item, worst) {
            return;
        }
        self.items[0] = item;
        // Sift down: move the new root below its worse children.
        let n = self.items.len();
        let mut i = 0;
        loop {
            let mut w = i;
            for c in [2 * i + 1, 2 * i + 2] {
                if c < n && Self::better(idx, &self.items[w], &self.items[c]) {
                    w = c;
                }
            }
            if w == i {
                break;
            }
            self.items.swap(i, w);
            i = w;
        }
    }

    fn into_sorted(mut self, idx: &ToolIndex) -> Vec<(f32, f32, u32)> {
        self.items.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then_with(|| idx.id_of(a.2).cmp(idx.id_of(b.2)))
        });
        self.items
    }
}

/// A [`ToolGate`] resolved to index ids, so the common rules cost no string work.
struct CompiledGate<'g> {
    gate: &'g ToolGate,
    max_risk: u8,
    blocked_bits: u64,
    blocked_high: HashSet<u32>,
    connected: Option<Vec<bool>>,
    allow_no_auth: bool,
    scoped: bool,
    scope_kits: Option<Vec<bool>>,
    slow: bool,
    /// Per [`GateClass`] of the index, what the gate decides for it.
    classes: Vec<ClassRule>,
}

impl CompiledGate<'_> {
    /// What a tool's own metadata decides (risk, blocked tags of the first 64 tag ids): a
    /// tool that fails it adds nothing to its toolkit's evidence, so no toolkit is found
    /// through tools the user will never see.
    fn may_show(&self, risk: u8, tag_bits: u64) -> bool {
        risk <= self.max_risk && tag_bits & self.blocked_bits == 0
    }

    /// Whether the gate shows the tool in `slot`.
    fn allows(&self, idx: &ToolIndex, slot: u32) -> bool {
        let m = &idx.meta[slot as usize];
        m.alive && self.allows_tool(idx, slot, m.class, m.toolkit)
    }

    /// [`Self::allows`] for a live tool whose class and toolkit the caller holds.
    fn allows_tool(&self, idx: &ToolIndex, slot: u32, class: u32, kit: u32) -> bool {
        let rule = self.classes[class as usize];
        if rule.deny {
            return false;
        }
        if rule.check_tags {
            let doc_tags = idx.doc(slot).map(|d| d.tags.as_slice()).unwrap_or(&[]);
            if doc_tags.iter().any(|t| self.blocked_high.contains(t)) {
                return false;
            }
        }
        let in_kit = |mask: &Vec<bool>| kit != NO_KIT && mask[kit as usize];
        if rule.needs_connected_kit
            && (kit == NO_KIT || !self.connected.as_ref().is_none_or(in_kit))
        {
            return false;
        }
        if self.slow {
            // Id, hub and scope-by-id rules: the full check (rare).
            return idx
                .doc(slot)
                .is_some_and(|d| self.gate.check(&d.tool).is_ok());
        }
        !self.scoped || self.scope_kits.as_ref().is_some_and(in_kit)
    }
}

/// What a gate decides for one [`GateClass`].
#[derive(Debug, Clone, Copy)]
struct ClassRule {
    /// Hidden whatever its toolkit (risk, a blocked tag, a tool without a connection).
    deny: bool,
    /// Tags beyond the first 64 must be checked against the blocked ones.
    check_tags: bool,
    /// Shown only if its toolkit is connected.
    needs_connected_kit: bool,
}

impl ClassRule {
    fn of(class: &GateClass, gate: &CompiledGate<'_>) -> Self {
        ClassRule {
            deny: !gate.may_show(class.risk, class.tag_bits)
                || (!class.needs_connection && !gate.allow_no_auth),
            check_tags: class.tag_overflow && !gate.blocked_high.is_empty(),
            needs_connected_kit: class.needs_connection,
        }
    }
}

/// The text of each [`Field`] of a tool.
pub(crate) fn field_texts(tool: &ToolSpec) -> [String; FIELD_COUNT] {
    let kit = tool.toolkit.clone().unwrap_or_default();
    let analyzer = Analyzer {
        stem: false,
        stop_words: false,
    };
    let have: HashSet<String> = analyzer
        .terms(&tool.name)
        .into_iter()
        .chain(analyzer.terms(&kit))
        .collect();
    let mut name = tool.name.clone();
    if tool.id != tool.name {
        for w in analyzer.terms(&tool.id) {
            if !have.contains(&w) {
                name.push(' ');
                name.push_str(&w);
            }
        }
    }
    let mut params = String::new();
    schema_text(&tool.input_schema, 0, true, &mut params);
    let mut returns = String::new();
    if let Some(out) = &tool.output_schema {
        schema_text(out, 0, false, &mut returns);
    }
    let mut out: [String; FIELD_COUNT] = Default::default();
    out[Field::Name as usize] = name;
    out[Field::Toolkit as usize] = kit;
    out[Field::Description as usize] = tool.description.clone();
    out[Field::Parameters as usize] = params;
    out[Field::Returns as usize] = returns;
    out
}

fn schema_text(schema: &Value, depth: usize, descriptions: bool, out: &mut String) {
    if depth > 2 {
        return;
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            out.push_str(name);
            out.push(' ');
            if descriptions {
                if let Some(d) = prop.get("description").and_then(Value::as_str) {
                    out.push_str(d);
                    out.push(' ');
                }
                value_text(prop, out);
            }
            schema_text(prop, depth + 1, descriptions, out);
        }
    }
    if let Some(items) = schema.get("items") {
        schema_text(items, depth + 1, descriptions, out);
    }
}

/// The values a parameter's schema names (`enum`, `default`, `examples`): they say what the
/// tool accepts ("music", "gaming", an id's format) in the words a request uses.
fn value_text(prop: &Value, out: &mut String) {
    let listed = ["enum", "examples"]
        .iter()
        .filter_map(|k| prop.get(*k).and_then(Value::as_array))
        .flatten();
    let names = prop
        .get("default")
        .into_iter()
        .chain(listed)
        .filter_map(Value::as_str)
        .filter(|text| text.len() <= MAX_VALUE_LEN)
        .take(MAX_VALUES);
    for text in names {
        out.push_str(text);
        out.push(' ');
    }
}

/// Longer schema values (request bodies, documents) are not names of anything.
const MAX_VALUE_LEN: usize = 64;

/// Values indexed per parameter: a huge `enum` (every timezone, every product code) would
/// swamp the parameter field and the index.
const MAX_VALUES: usize = 64;
