//! Tests of the dense first stage: the exact vector index, the query cache, the fusion
//! with the lexical list, incremental vector upkeep and the gate.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;

use super::*;
use crate::error::{Error, Result};
use crate::llm::Embedder;
use crate::run::Subject;
use crate::tool::{Connection, ToolSpec};

fn tool(id: &str, kit: &str, desc: &str) -> ToolSpec {
    let mut t =
        ToolSpec::new(id, desc, json!({"type": "object", "properties": {}})).in_toolkit(kit);
    t.requires_connection = true;
    t
}

/// Concepts a word may stand for: an embedding that knows "rain" is about the weather.
const CONCEPTS: [(&str, &[&str]); 3] = [
    (
        "weather",
        &["rain", "umbrella", "sunny", "forecast", "weather"],
    ),
    ("money", &["yen", "euros", "exchange", "currency"]),
    ("mail", &["inbox", "mailbox", "email"]),
];

/// Embeds a text as counts of concept words; records every text it embeds.
#[derive(Default)]
struct Concepts {
    texts: Mutex<Vec<String>>,
    fail: bool,
}

#[async_trait]
impl Embedder for Concepts {
    fn model(&self) -> &str {
        "concepts"
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        if self.fail {
            return Err(Error::Internal("embedder down".into()));
        }
        self.texts.lock().unwrap().extend(texts.iter().cloned());
        Ok(texts
            .iter()
            .map(|t| {
                let t = t.to_lowercase();
                CONCEPTS
                    .iter()
                    .map(|(_, words)| {
                        words
                            .iter()
                            .map(|w| t.matches(w).count() as f32)
                            .sum::<f32>()
                            + 0.01
                    })
                    .collect()
            })
            .collect())
    }
}

fn catalog() -> Vec<ToolSpec> {
    vec![
        tool(
            "wx.now",
            "meteo",
            "Current conditions from weather stations",
        ),
        tool(
            "fx.convert",
            "bank",
            "Convert an amount between currency pairs",
        ),
        tool(
            "mail.verify",
            "mailcheck",
            "Check that an email address accepts mail",
        ),
        tool(
            "notes.rain",
            "notes",
            "Store a note called rain in your inbox",
        ),
    ]
}

fn request(q: &str) -> SearchRequest {
    SearchRequest::new(q, Subject::tenant("t"))
        .gate(GateRules::permissive())
        .unrestricted_connections()
        .top_n(4)
}

async fn search_with(emb: Arc<Concepts>) -> ToolSearch {
    let dense = Arc::new(DenseRetriever::new(emb, DenseConfig::default()));
    let search = ToolSearch::new(ToolIndex::from_tools(catalog())).with_dense(dense);
    assert_eq!(search.sync_vectors().await.unwrap(), 4);
    search
}

#[test]
fn nearest_is_exact_and_respects_the_filter() {
    let mut idx = VectorIndex::default();
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / u32::MAX as f32) - 0.25
    };
    let vectors: Vec<Vec<f32>> = (0..300)
        .map(|_| (0..19).map(|_| next()).collect())
        .collect();
    for (i, v) in vectors.iter().enumerate() {
        idx.upsert(&format!("t{i}"), 1, v).unwrap();
    }
    let q: Vec<f32> = (0..19).map(|_| next()).collect();
    let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
    let unit: Vec<f32> = q.iter().map(|x| x / norm).collect();
    let mut brute: Vec<(usize, f32)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            (i, v.iter().zip(&unit).map(|(a, b)| a / n * b).sum())
        })
        .filter(|(i, _)| i % 3 != 0)
        .collect();
    brute.sort_by(|a, b| b.1.total_cmp(&a.1));
    let got = idx.nearest(&[Arc::new(unit)], 10, |id| {
        id[1..].parse::<usize>().unwrap() % 3 != 0
    });
    let want: Vec<String> = brute
        .iter()
        .take(10)
        .map(|(i, _)| format!("t{i}"))
        .collect();
    assert_eq!(
        got.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        want
    );
    for ((_, s), (_, b)) in got.iter().zip(&brute) {
        assert!((s - b).abs() < 1e-4);
    }
    // A filter rejecting nearly everything still finds the rest (beyond the sorted head).
    let few = idx.nearest(&[Arc::new(q)], 5, |id| id == "t299" || id == "t3");
    assert_eq!(few.len(), 2);
}

#[test]
fn upsert_replace_remove_and_bad_vectors() {
    let mut idx = VectorIndex::default();
    idx.upsert("a", 1, &[1.0, 0.0]).unwrap();
    idx.upsert("b", 1, &[0.0, 1.0]).unwrap();
    idx.upsert("c", 1, &[1.0, 1.0]).unwrap();
    assert!(idx.is_current("a", 1) && !idx.is_current("a", 2));
    idx.upsert("a", 2, &[0.0, 3.0]).unwrap();
    assert!(idx.is_current("a", 2));
    assert_eq!(idx.len(), 3);
    assert!(idx.remove("a"));
    assert!(!idx.remove("a"));
    let q = Arc::new(vec![0.0, 1.0]);
    let ids: Vec<String> = idx
        .nearest(&[q], 3, |_| true)
        .into_iter()
        .map(|h| h.0)
        .collect();
    assert_eq!(ids, ["b", "c"], "the moved row keeps its own vector");
    assert!(
        idx.upsert("d", 1, &[1.0, 2.0, 3.0]).is_err(),
        "wrong length"
    );
    assert!(idx.upsert("d", 1, &[0.0, 0.0]).is_err(), "no magnitude");
    assert!(idx.upsert("d", 1, &[f32::NAN, 1.0]).is_err(), "not finite");
    assert_eq!(idx.len(), 2);
}

#[tokio::test]
async fn a_request_worded_unlike_its_tool_enters_the_pool() {
    let q = "will I need an umbrella on Saturday?";
    let lexical = ToolSearch::new(ToolIndex::from_tools(catalog()));
    let res = lexical.search(&request(q)).await.unwrap();
    assert!(!res.tool_ids().contains(&"wx.now"), "{:?}", res.tool_ids());

    let emb = Arc::new(Concepts::default());
    let search = search_with(emb).await;
    let res = search.search(&request(q)).await.unwrap();
    let hit = res
        .hits
        .iter()
        .find(|h| h.tool.id == "wx.now")
        .unwrap_or_else(|| panic!("{:?}", res.tool_ids()));
    assert_eq!(hit.lexical, 0.0);
    assert!(hit.semantic.unwrap() > 0.9);
}

#[tokio::test]
async fn query_vectors_are_cached_and_router_hints_are_embedded() {
    let emb = Arc::new(Concepts::default());
    let search = search_with(emb.clone()).await;
    emb.texts.lock().unwrap().clear();
    let req = request("how many yen for 250 euros").candidate_apps(["bank"]);
    search.search(&req).await.unwrap();
    search.search(&req).await.unwrap();
    let texts = emb.texts.lock().unwrap().clone();
    assert_eq!(
        texts,
        ["how many yen for 250 euros (apps: bank)"],
        "embedded once"
    );
    assert_eq!(search.dense().unwrap().cached_queries(), 1);
}

#[tokio::test]
async fn the_query_cache_is_bounded() {
    let emb = Arc::new(Concepts::default());
    let dense = DenseRetriever::new(
        emb,
        DenseConfig {
            query_cache: 2,
            ..Default::default()
        },
    );
    for q in ["a rain", "b yen", "c inbox", "d rain"] {
        dense.embed_queries(&[q.to_string()]).await.unwrap();
    }
    assert_eq!(dense.cached_queries(), 2);
}

#[tokio::test]
async fn vectors_follow_catalog_changes() {
    let emb = Arc::new(Concepts::default());
    let search = search_with(emb.clone()).await;
    assert_eq!(search.sync_vectors().await.unwrap(), 0, "nothing changed");
    let mut changed = catalog()[1].clone();
    changed.description = "Convert money: yen, euros, any currency".into();
    search.upsert(&[changed]);
    assert_eq!(
        search.sync_vectors().await.unwrap(),
        1,
        "only the changed tool"
    );
    search.remove(&["wx.now".to_string()]);
    assert_eq!(search.dense().unwrap().len(), 3);
    let res = search.search(&request("umbrella")).await.unwrap();
    assert!(!res.tool_ids().contains(&"wx.now"));
}

#[tokio::test]
async fn catalog_changes_are_embedded_in_the_background() {
    let emb = Arc::new(Concepts::default());
    let search = search_with(emb).await;
    let new = tool("wx.later", "meteo2", "Sunny or not: the outlook");
    search.catalog_changed(&[new], &[]);
    for _ in 0..100 {
        if search.dense().unwrap().len() == 5 {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the new tool was not embedded");
}

#[tokio::test]
async fn a_failing_embedder_leaves_the_lexical_list() {
    let search = ToolSearch::new(ToolIndex::from_tools(catalog())).with_dense(Arc::new(
        DenseRetriever::new(
            Arc::new(Concepts {
                fail: true,
                ..Default::default()
            }),
            DenseConfig::default(),
        ),
    ));
    assert!(search.sync_vectors().await.is_err());
    let res = search.search(&request("convert currency")).await.unwrap();
    assert_eq!(res.tool_ids().first(), Some(&"fx.convert"));
}

#[tokio::test]
async fn the_dense_list_never_brings_a_gated_tool() {
    let emb = Arc::new(Concepts::default());
    let search = search_with(emb).await;
    // Only `notes` is connected: the weather tool the embedding loves stays hidden.
    let req = SearchRequest::new("umbrella rain forecast", Subject::tenant("t"))
        .gate(GateRules::permissive())
        .connections(vec![Connection {
            toolkit: "notes".into(),
            account_id: "ca".into(),
            active: true,
        }])
        .top_n(10);
    let res = search.search(&req).await.unwrap();
    assert_eq!(res.tool_ids(), ["notes.rain"]);
}

/// Keeps the order it is given and records it.
#[derive(Debug, Default)]
struct Recorder {
    seen: Mutex<Vec<(String, f32)>>,
}

#[async_trait]
impl Reranker for Recorder {
    fn pool(&self) -> usize {
        30
    }
    async fn rerank(
        &self,
        _query: &str,
        _parts: &[String],
        candidates: Vec<Ranked>,
    ) -> Result<Reranked> {
        *self.seen.lock().unwrap() = candidates
            .iter()
            .map(|c| (c.tool.id.clone(), c.score))
            .collect();
        Ok(candidates.into())
    }
}

#[tokio::test]
async fn the_reranker_gets_the_lexical_order_not_the_fused_one() {
    let q = "a note about rain and the forecast";
    let lexical = ToolSearch::new(ToolIndex::from_tools(catalog()));
    let alone = lexical
        .search(&request(q).top_n(30).without_rerank())
        .await
        .unwrap();
    let lexical_ids: Vec<&str> = alone.tool_ids();
    assert!(!lexical_ids.is_empty() && !lexical_ids.contains(&"wx.now"));

    let recorder = Arc::new(Recorder::default());
    let dense = Arc::new(DenseRetriever::new(
        Arc::new(Concepts::default()),
        DenseConfig::default(),
    ));
    let search = ToolSearch::new(ToolIndex::from_tools(catalog()))
        .with_dense(dense)
        .with_reranker(recorder.clone());
    search.sync_vectors().await.unwrap();
    let fused = search
        .search(&request(q).top_n(30).without_rerank())
        .await
        .unwrap();
    assert!(
        fused.tool_ids().contains(&"wx.now"),
        "the dense list brings the weather tool"
    );
    search.search(&request(q).top_n(30)).await.unwrap();
    let seen = recorder.seen.lock().unwrap().clone();
    let seen_ids: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        &seen_ids[..lexical_ids.len()],
        &lexical_ids[..],
        "lexical candidates first, in lexical order"
    );
    assert!(seen_ids[lexical_ids.len()..].contains(&"wx.now"));
    for (hit, (_, score)) in alone.hits.iter().zip(&seen) {
        assert_eq!(hit.score, *score, "lexical scores, not fused ones");
    }
    let dense_only = &seen[lexical_ids.len()..];
    assert!(dense_only
        .iter()
        .all(|(_, s)| *s <= seen[lexical_ids.len() - 1].1));
}

#[tokio::test]
async fn a_toolkit_that_fits_lifts_its_tools() {
    // The toolkit's text holds its tools' names: "meteo: rain_now, zz.ids".
    let mut now = tool(
        "wx.now",
        "meteo",
        "Current conditions from weather stations",
    );
    now.name = "rain_now".into();
    let tools = [
        now,
        tool("zz.ids", "meteo", "List station ids"),
        tool("aa.ids", "registry", "List station ids"),
    ];
    let arcs: Vec<Arc<ToolSpec>> = tools.iter().cloned().map(Arc::new).collect();
    let rank = |weight: f32| {
        let arcs = arcs.clone();
        async move {
            let dense = DenseRetriever::new(
                Arc::new(Concepts::default()),
                DenseConfig {
                    toolkit_weight: weight,
                    ..Default::default()
                },
            );
            dense.sync(&arcs).await.unwrap();
            let q = dense.embed_queries(&["umbrella".into()]).await.unwrap();
            let ids: Vec<String> = dense
                .nearest(&q, 3, |_| true)
                .into_iter()
                .map(|h| h.0)
                .collect();
            (ids, dense.toolkits())
        }
    };
    let (alone, kits) = rank(0.0).await;
    assert_eq!(kits, 0, "no toolkit vectors when toolkit evidence is off");
    assert_eq!(
        alone,
        ["wx.now", "aa.ids", "zz.ids"],
        "equal texts tie by id"
    );
    let (with_kits, kits) = rank(1.0).await;
    assert_eq!(kits, 2);
    assert_eq!(with_kits, ["wx.now", "zz.ids", "aa.ids"]);
}

#[tokio::test]
async fn toolkit_vectors_follow_the_catalog() {
    let emb = Arc::new(Concepts::default());
    let search = search_with(emb.clone()).await;
    let dense = search.dense().unwrap().clone();
    assert_eq!(dense.toolkits(), 4);
    emb.texts.lock().unwrap().clear();
    // A new tool in an existing toolkit: the tool and its toolkit are embedded, nothing else.
    let new = tool("wx.later", "meteo", "Sunny or not: the outlook");
    search.upsert(std::slice::from_ref(&new));
    assert_eq!(search.sync_vectors().await.unwrap(), 1);
    let texts = emb.texts.lock().unwrap().clone();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts.contains(&"meteo: wx.later, wx.now".to_string()),
        "{texts:?}"
    );
    // A toolkit that leaves the catalog loses its vector.
    search.remove(&["fx.convert".to_string()]);
    search.sync_vectors().await.unwrap();
    assert_eq!(dense.toolkits(), 3);
}

#[test]
fn convex_fusion_normalises_each_list() {
    let index = ToolIndex::from_tools(["a", "b", "c", "d"].map(|id| tool(id, "kit", "a tool")));
    let lexical: Vec<ScoredTool> = [("a", 10.0), ("b", 5.0), ("c", 1.0)]
        .into_iter()
        .map(|(id, score)| ScoredTool {
            tool: index.get(id).unwrap(),
            score,
            lexical: score,
        })
        .collect();
    let dense: Vec<(String, f32)> = [("c", 0.9), ("d", 0.5), ("a", 0.1)]
        .into_iter()
        .map(|(id, s)| (id.to_string(), s))
        .collect();
    let fused = super::dense::fuse_with_lexical(
        lexical,
        &dense,
        &index,
        Fusion::Convex {
            semantic_weight: 0.5,
        },
        10,
    );
    let got: Vec<(&str, f32)> = fused
        .iter()
        .map(|c| (c.tool.id.as_str(), c.score))
        .collect();
    // a: ½·1 + ½·0; c: ½·0 + ½·1; d: ½·0.5; b: ½·4/9.
    let want = [("a", 0.5), ("c", 0.5), ("d", 0.25), ("b", 2.0 / 9.0)];
    assert_eq!(got.len(), want.len());
    for ((id, s), (wid, ws)) in got.iter().zip(want) {
        assert_eq!(*id, wid);
        assert!((s - ws).abs() < 1e-6, "{id}: {s} vs {ws}");
    }
    assert_eq!(fused[3].lexical, 5.0, "lexical scores are kept");
}

#[tokio::test]
async fn the_query_cache_drops_the_least_recently_used() {
    let emb = Arc::new(Concepts::default());
    let dense = DenseRetriever::new(
        emb.clone(),
        DenseConfig {
            query_cache: 2,
            ..Default::default()
        },
    );
    for q in ["a rain", "b yen", "a rain", "c inbox", "a rain", "b yen"] {
        dense.embed_queries(&[q.to_string()]).await.unwrap();
    }
    // "a rain" was used again before "c inbox" came, so "b yen" went instead.
    assert_eq!(
        emb.texts.lock().unwrap().clone(),
        ["a rain", "b yen", "c inbox", "b yen"]
    );
}

/// Vectors kept in a store: a second process (a new retriever on the same store) loads them
/// and embeds nothing; a changed tool is embedded again; a tool that left the catalog
/// leaves the store at the next full sync.
#[tokio::test]
async fn a_restart_loads_stored_vectors_instead_of_embedding() {
    let store = Arc::new(crate::memory::MemoryStore::new());
    let with_store = |emb: Arc<Concepts>| {
        let dense = DenseRetriever::new(emb, DenseConfig::default()).with_store(store.clone());
        ToolSearch::new(ToolIndex::from_tools(catalog())).with_dense(Arc::new(dense))
    };
    let first = Arc::new(Concepts::default());
    assert_eq!(with_store(first.clone()).sync_vectors().await.unwrap(), 4);
    assert_eq!(
        first.texts.lock().unwrap().len(),
        8,
        "4 tools and 4 toolkits"
    );

    let second = Arc::new(Concepts::default());
    let restarted = with_store(second.clone());
    assert_eq!(restarted.sync_vectors().await.unwrap(), 0);
    assert!(second.texts.lock().unwrap().is_empty(), "nothing embedded");
    let res = restarted
        .search(&request("will I need an umbrella on Saturday?"))
        .await
        .unwrap();
    let hit = res.hits.iter().find(|h| h.tool.id == "wx.now");
    assert!(
        hit.is_some_and(|h| h.semantic.unwrap() > 0.9),
        "loaded vectors serve searches: {:?}",
        res.tool_ids()
    );

    let mut changed = catalog()[1].clone();
    changed.description = "Convert money: yen, euros, any currency".into();
    restarted.upsert(std::slice::from_ref(&changed));
    restarted.remove(&["mail.verify".to_string()]);
    assert_eq!(
        restarted.sync_vectors().await.unwrap(),
        1,
        "the changed tool"
    );
    let space = "concepts||tools";
    let ids: Vec<String> = ["fx.convert", "mail.verify"].map(String::from).to_vec();
    let stored = store.load_vectors(space, &ids).await.unwrap();
    assert_eq!(stored.len(), 1, "the removed tool left the store");
    assert_eq!(
        stored[0].digest,
        text_digest(&EmbeddingReranker::document_text(&changed)),
        "the new text's vector replaced the old"
    );
}
