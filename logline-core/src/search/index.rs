//! An in-memory inverted index over a tool catalog, updated tool by tool.
//!
//! Documents live in slots; an update or removal tombstones the old slot and the postings
//! that point at it are dropped by a compaction once they make up a quarter of all postings,
//! so an upsert costs the size of the tool, not the size of the catalog.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::Value;

use super::gate::{toolkit_key, Connected, ToolGate};
use super::rank::{Bm25Params, BoostParams, Field, FIELDS};
use super::tokenize::Analyzer;
use crate::tool::{RiskLevel, ToolSpec};

/// Settings of a [`ToolIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IndexConfig {
    /// Text analysis.
    pub analyzer: Analyzer,
    /// BM25F parameters.
    pub bm25: Bm25Params,
    /// Router boosts.
    pub boosts: BoostParams,
}

/// A tool with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredTool {
    /// The tool.
    pub tool: Arc<ToolSpec>,
    /// Final score (lexical with boosts).
    pub score: f32,
    /// BM25F score alone.
    pub lexical: f32,
}

/// What the ranking knows besides the query text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RankHints {
    /// Toolkits the router proposed.
    pub candidate_apps: Vec<String>,
    /// Tags of the request's intent (see [`super::rank::intent_tags`]).
    pub intent_tags: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: u32,
    tf: [u16; FIELDS],
}

#[derive(Debug)]
struct Doc {
    tool: Arc<ToolSpec>,
    fingerprint: u64,
    terms: Vec<u32>,
    toolkit: Option<u32>,
    tags: Vec<u32>,
}

const NO_LEN: [u32; FIELDS] = [0; FIELDS];

/// The index. Not synchronised: share it behind a lock (as [`super::ToolSearch`] does).
#[derive(Debug, Default)]
pub struct ToolIndex {
    config: IndexConfig,
    docs: Vec<Option<Doc>>,
    lens: Vec<[u32; FIELDS]>,
    by_id: HashMap<String, u32>,
    free: Vec<u32>,
    tombstoned: Vec<u32>,
    terms: HashMap<String, u32>,
    postings: Vec<Vec<Posting>>,
    df: Vec<u32>,
    live_postings: usize,
    dead_postings: usize,
    len_sum: [u64; FIELDS],
    toolkits: HashMap<String, u32>,
    toolkit_docs: Vec<Vec<u32>>,
    tags: HashMap<String, u32>,
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
        for &t in &doc.terms {
            self.df[t as usize] = self.df[t as usize].saturating_sub(1);
        }
        self.live_postings -= doc.terms.len();
        self.dead_postings += doc.terms.len();
        let lens = std::mem::replace(&mut self.lens[slot as usize], NO_LEN);
        for f in 0..FIELDS {
            self.len_sum[f] -= u64::from(lens[f]);
        }
        if let Some(k) = doc.toolkit {
            let members = &mut self.toolkit_docs[k as usize];
            if let Some(pos) = members.iter().position(|&s| s == slot) {
                members.swap_remove(pos);
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
        let docs = &self.docs;
        for list in &mut self.postings {
            list.retain(|p| docs[p.doc as usize].is_some());
        }
        self.dead_postings = 0;
        self.free.append(&mut self.tombstoned);
    }

    fn insert(&mut self, tool: Arc<ToolSpec>, fingerprint: u64) {
        let fields = field_texts(&tool);
        let mut counts: HashMap<u32, [u16; FIELDS]> = HashMap::new();
        let mut lens = NO_LEN;
        let mut buf = Vec::new();
        for (f, text) in fields.iter().enumerate() {
            buf.clear();
            self.config.analyzer.terms_into(text, &mut buf);
            lens[f] = buf.len() as u32;
            for term in buf.drain(..) {
                let id = self.term_id(term);
                let tf = &mut counts.entry(id).or_insert([0; FIELDS])[f];
                *tf = tf.saturating_add(1);
            }
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.docs.push(None);
                self.lens.push(NO_LEN);
                (self.docs.len() - 1) as u32
            }
        };
        let mut terms: Vec<u32> = counts.keys().copied().collect();
        terms.sort_unstable();
        for &t in &terms {
            let tf = counts[&t];
            self.postings[t as usize].push(Posting { doc: slot, tf });
            self.df[t as usize] += 1;
        }
        self.live_postings += terms.len();
        for f in 0..FIELDS {
            self.len_sum[f] += u64::from(lens[f]);
        }
        let toolkit = tool.toolkit.as_deref().map(|t| {
            let k = self.toolkit_id(t);
            self.toolkit_docs[k as usize].push(slot);
            k
        });
        let tags = tool.tags.iter().map(|t| self.tag_id(t)).collect();
        self.lens[slot as usize] = lens;
        self.by_id.insert(tool.id.clone(), slot);
        self.docs[slot as usize] = Some(Doc {
            tool,
            fingerprint,
            terms,
            toolkit,
            tags,
        });
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
        let id = self.toolkit_docs.len() as u32;
        self.toolkits.insert(key, id);
        self.toolkit_docs.push(Vec::new());
        id
    }

    fn tag_id(&mut self, tag: &str) -> u32 {
        let key = tag.to_lowercase();
        let next = self.tags.len() as u32;
        *self.tags.entry(key).or_insert(next)
    }

    /// The `k` best tools for `query` that pass `gate`, best first.
    pub fn search(&self, query: &str, gate: &ToolGate, hints: &RankHints, k: usize) -> Vec<ScoredTool> {
        if k == 0 || self.is_empty() {
            return Vec::new();
        }
        let compiled = self.compile_gate(gate);
        let mut acc = vec![0f32; self.docs.len()];
        let mut touched: Vec<u32> = Vec::new();
        self.accumulate(query, &mut acc, &mut touched);

        let apps: HashSet<u32> = hints
            .candidate_apps
            .iter()
            .filter_map(|a| self.toolkits.get(&toolkit_key(a)).copied())
            .collect();
        for &app in &apps {
            for &slot in &self.toolkit_docs[app as usize] {
                if acc[slot as usize] == 0.0 {
                    touched.push(slot);
                    acc[slot as usize] = f32::MIN_POSITIVE;
                }
            }
        }
        let intent: Vec<u32> = hints
            .intent_tags
            .iter()
            .filter_map(|t| self.tags.get(&t.to_lowercase()).copied())
            .collect();
        let boosts = self.config.boosts;

        let mut scored: Vec<(f32, f32, u32)> = Vec::with_capacity(touched.len());
        for slot in touched {
            let Some(doc) = self.doc(slot) else { continue };
            if !compiled.allows(doc) {
                continue;
            }
            let lexical = acc[slot as usize];
            let mut score = lexical;
            if doc.toolkit.is_some_and(|t| apps.contains(&t)) {
                score = score * (1.0 + boosts.candidate_app) + boosts.candidate_app_floor;
            }
            if !intent.is_empty() && doc.tags.iter().any(|t| intent.contains(t)) {
                score *= 1.0 + boosts.intent_tag;
            }
            scored.push((score, lexical, slot));
        }
        let by_rank = |a: &(f32, f32, u32), b: &(f32, f32, u32)| {
            b.0.total_cmp(&a.0).then_with(|| self.id_of(a.2).cmp(self.id_of(b.2)))
        };
        if scored.len() > k {
            scored.select_nth_unstable_by(k - 1, by_rank);
            scored.truncate(k);
        }
        scored.sort_by(by_rank);
        scored
            .into_iter()
            .filter_map(|(score, lexical, slot)| {
                let doc = self.doc(slot)?;
                // Defence in depth: the full rule check on what leaves the index.
                gate.check(&doc.tool).ok()?;
                Some(ScoredTool {
                    tool: doc.tool.clone(),
                    score,
                    lexical: if lexical == f32::MIN_POSITIVE { 0.0 } else { lexical },
                })
            })
            .collect()
    }

    fn id_of(&self, slot: u32) -> &str {
        self.doc(slot).map(|d| d.tool.id.as_str()).unwrap_or("")
    }

    /// Adds the BM25F score of every tool matching `query` into `acc`.
    fn accumulate(&self, query: &str, acc: &mut [f32], touched: &mut Vec<u32>) {
        let mut qtf: HashMap<u32, u32> = HashMap::new();
        for term in self.config.analyzer.terms(query) {
            if let Some(&t) = self.terms.get(&term) {
                *qtf.entry(t).or_insert(0) += 1;
            }
        }
        let n = self.len() as f32;
        let p = &self.config.bm25;
        let mut base = [0f32; FIELDS];
        let mut scale = [0f32; FIELDS];
        for f in 0..FIELDS {
            let avg = (self.len_sum[f] as f32 / n).max(1.0);
            base[f] = 1.0 - p.field_b[f];
            scale[f] = p.field_b[f] / avg;
        }
        for (t, q) in qtf {
            let df = self.df[t as usize] as f32;
            if df == 0.0 {
                continue;
            }
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            let qf = q as f32;
            let qw = qf * (p.k3 + 1.0) / (p.k3 + qf);
            let weight = qw * idf * (p.k1 + 1.0);
            for post in &self.postings[t as usize] {
                let slot = post.doc as usize;
                let lens = &self.lens[slot];
                if self.docs[slot].is_none() {
                    continue;
                }
                let mut tfw = 0f32;
                for f in 0..FIELDS {
                    if post.tf[f] != 0 {
                        let norm = base[f] + scale[f] * lens[f] as f32;
                        tfw += p.field_weight[f] * f32::from(post.tf[f]) / norm;
                    }
                }
                if acc[slot] == 0.0 {
                    touched.push(post.doc);
                }
                acc[slot] += weight * tfw / (p.k1 + tfw);
            }
        }
    }

    fn compile_gate<'g>(&self, gate: &'g ToolGate) -> CompiledGate<'g> {
        let mut blocked = vec![false; self.tags.len()];
        for (tag, &id) in &self.tags {
            blocked[id as usize] = gate.is_blocked_tag(tag);
        }
        let kit_mask = |keys: &HashSet<String>| {
            let mut mask = vec![false; self.toolkit_docs.len()];
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
        CompiledGate {
            gate,
            max_risk: rules.max_risk,
            blocked,
            connected,
            allow_no_auth: rules.allow_no_auth_tools,
            scoped: gate.scope_toolkits().is_some() || rules.allowed_tools.is_some(),
            scope_kits: gate.scope_toolkits().map(kit_mask),
            by_id: !rules.denied_tools.is_empty() || rules.allowed_tools.is_some(),
            by_hub: rules.hubs.is_some(),
        }
    }
}

/// A [`ToolGate`] resolved to index ids, so the common rules cost no string work.
struct CompiledGate<'g> {
    gate: &'g ToolGate,
    max_risk: RiskLevel,
    blocked: Vec<bool>,
    connected: Option<Vec<bool>>,
    allow_no_auth: bool,
    scoped: bool,
    scope_kits: Option<Vec<bool>>,
    by_id: bool,
    by_hub: bool,
}

impl CompiledGate<'_> {
    fn allows(&self, doc: &Doc) -> bool {
        let kit = |mask: &Vec<bool>| doc.toolkit.is_some_and(|t| mask[t as usize]);
        if doc.tool.risk_level > self.max_risk || doc.tags.iter().any(|&t| self.blocked[t as usize]) {
            return false;
        }
        let connected = if doc.tool.requires_connection {
            self.connected.as_ref().map_or(true, kit) && doc.tool.toolkit.is_some()
        } else {
            self.allow_no_auth
        };
        if !connected {
            return false;
        }
        if self.scoped && !self.scope_kits.as_ref().is_some_and(kit) && !self.by_id {
            return false;
        }
        if self.by_id || self.by_hub {
            // Id and hub rules: the full check (rare).
            return self.gate.check(&doc.tool).is_ok();
        }
        true
    }
}

/// The text of each [`Field`] of a tool.
pub fn field_texts(tool: &ToolSpec) -> [String; FIELDS] {
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
    schema_text(&tool.input_schema, 0, &mut params);
    let mut out: [String; FIELDS] = Default::default();
    out[Field::Name as usize] = name;
    out[Field::Toolkit as usize] = kit;
    out[Field::Description as usize] = tool.description.clone();
    out[Field::Parameters as usize] = params;
    out
}

fn schema_text(schema: &Value, depth: usize, out: &mut String) {
    if depth > 2 {
        return;
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            out.push_str(name);
            out.push(' ');
            if let Some(d) = prop.get("description").and_then(Value::as_str) {
                out.push_str(d);
                out.push(' ');
            }
            schema_text(prop, depth + 1, out);
        }
    }
    if let Some(items) = schema.get("items") {
        schema_text(items, depth + 1, out);
    }
}

/// A hash of everything that affects search and exposure (all but `updated_at`).
pub fn fingerprint(tool: &ToolSpec) -> u64 {
    let mut h = DefaultHasher::new();
    tool.id.hash(&mut h);
    tool.name.hash(&mut h);
    tool.description.hash(&mut h);
    tool.toolkit.hash(&mut h);
    tool.input_schema.to_string().hash(&mut h);
    tool.output_schema.as_ref().map(Value::to_string).hash(&mut h);
    tool.risk_level.hash(&mut h);
    tool.side_effects.hash(&mut h);
    tool.tags.hash(&mut h);
    tool.requires_confirmation.hash(&mut h);
    tool.requires_connection.hash(&mut h);
    tool.hub.hash(&mut h);
    tool.timeout_ms.hash(&mut h);
    h.finish()
}
