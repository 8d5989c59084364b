//! Tests of the index and the search service.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};

use super::rank::intent_tags;
use super::rerank::keep_candidates;
use super::*;
use crate::agent::Agent;
use crate::error::{Error, Result};
use crate::llm::Embedder;
use crate::policy::{
    Condition, Effect, Operator, Policy, PolicyAction, PolicyScope, RuleExpr, RuleNode,
    RulePolicyEngine,
};
use crate::run::Subject;
use crate::store::{DefinitionStore, Page, ToolQuery};
use crate::tool::{Connection, PageRequest, RiskLevel, ToolContext, ToolHub, ToolPage, ToolSpec};
use crate::workflow::Workflow;

fn tool(id: &str, kit: &str, desc: &str) -> ToolSpec {
    let mut t =
        ToolSpec::new(id, desc, json!({"type": "object", "properties": {}})).in_toolkit(kit);
    t.requires_connection = true;
    t.hub = "remote".into();
    t
}

fn conn(kit: &str) -> Connection {
    Connection {
        toolkit: kit.into(),
        account_id: format!("ca_{kit}"),
        active: true,
    }
}

fn subject() -> Subject {
    Subject::tenant("t1").with_user("u1")
}

fn catalog() -> Vec<ToolSpec> {
    vec![
        tool("GMAIL_SEND_EMAIL", "gmail", "Send an email to recipients").with_tags(["send"]),
        tool("GMAIL_LIST_EMAILS", "gmail", "List emails in the inbox").with_tags(["read"]),
        tool("GMAIL_DELETE_EMAIL", "gmail", "Delete an email permanently")
            .with_tags(["delete"])
            .with_risk(RiskLevel::High),
        tool("SLACK_POST_MESSAGE", "slack", "Post a message to a channel").with_tags(["send"]),
        tool(
            "GITHUB_CREATE_ISSUE",
            "github",
            "Create an issue in a repository",
        )
        .with_tags(["write"])
        .with_risk(RiskLevel::Medium),
        tool("STRIPE_CREATE_REFUND", "stripe", "Refund a charge")
            .with_tags(["money"])
            .with_risk(RiskLevel::High),
        ToolSpec::new("notes.create", "Create a note", json!({"type": "object"})),
    ]
}

fn all_connected() -> Vec<Connection> {
    ["gmail", "slack", "github", "stripe"].map(conn).to_vec()
}

#[test]
fn slug_words_match_queries() {
    let idx = ToolIndex::from_tools(catalog());
    let gate = ToolGate::new(GateRules::permissive(), Connected::Unrestricted);
    let hits = idx.search(
        "please send an e-mail via gmail",
        &gate,
        &RankHints::default(),
        3,
    );
    assert_eq!(hits[0].tool.id, "GMAIL_SEND_EMAIL");
    let hits = idx.search("createIssue on GitHub", &gate, &RankHints::default(), 1);
    assert_eq!(hits[0].tool.id, "GITHUB_CREATE_ISSUE");
    assert!(hits[0].lexical > 0.0);
}

#[test]
fn schema_values_are_searchable_but_long_values_are_not() {
    let mut trending = tool("YT_TRENDING", "youtube", "Trending videos");
    trending.input_schema = json!({"type": "object", "properties": {
        "type": {"type": "string", "enum": ["music", "gaming", "news"]},
        "region": {"type": "string", "default": "usa", "examples": ["gbr", 42]}
    }});
    let mut upload = tool("VIMEO_UPLOAD", "vimeo", "Upload a video");
    let body = format!("gaming {}", "x".repeat(80));
    upload.input_schema = json!({"type": "object", "properties": {
        "body": {"type": "string", "default": body}
    }});
    let mut zones = tool("TZ_CONVERT", "clock", "Convert a time");
    // Distinct letter-only words: `qaa`, `qab`, … (digits would split off as a token).
    let word = |i: u8| format!("q{}{}", (b'a' + i / 26) as char, (b'a' + i % 26) as char);
    let many: Vec<String> = (0..100).map(word).collect();
    zones.input_schema = json!({"type": "object", "properties": {
        "zone": {"type": "string", "enum": many}
    }});
    let idx = ToolIndex::from_tools([trending, upload, zones]);
    let gate = ToolGate::new(GateRules::permissive(), Connected::Unrestricted);
    let ids = |q: &str| -> Vec<String> {
        idx.search(q, &gate, &RankHints::default(), 5)
            .into_iter()
            .filter(|h| h.lexical > 0.0)
            .map(|h| h.tool.id.clone())
            .collect()
    };
    // An enum value, a default and an example name what the tool accepts.
    assert_eq!(ids("gaming"), ["YT_TRENDING"]);
    assert_eq!(ids("usa"), ["YT_TRENDING"]);
    assert_eq!(ids("gbr"), ["YT_TRENDING"]);
    // A huge enum is indexed up to a bound.
    assert_eq!(ids(&word(0)), ["TZ_CONVERT"]);
    assert_eq!(ids(&word(63)), ["TZ_CONVERT"]);
    assert!(ids(&word(64)).is_empty());
    assert!(ids(&word(99)).is_empty());
    // A long default (a request body) is not indexed.
    assert!(
        ids("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
            .is_empty()
    );
}

#[test]
fn upserts_and_removals_are_incremental() {
    let mut idx = ToolIndex::from_tools(catalog());
    let gate = ToolGate::new(GateRules::permissive(), Connected::Unrestricted);
    assert!(
        !idx.upsert(catalog()[0].clone()),
        "identical tool is a no-op"
    );
    let mut changed = catalog()[0].clone();
    changed.description = "Dispatch a telegram".into();
    assert!(idx.upsert(changed));
    let hits = idx.search("telegram", &gate, &RankHints::default(), 5);
    assert_eq!(hits[0].tool.id, "GMAIL_SEND_EMAIL");
    // Its toolkit siblings follow on toolkit evidence alone.
    assert!(hits[1..]
        .iter()
        .all(|h| h.tool.toolkit.as_deref() == Some("gmail")));
    assert!(hits[1..].iter().all(|h| h.lexical < hits[0].lexical));
    assert!(idx.remove("GMAIL_SEND_EMAIL"));
    assert!(!idx.remove("GMAIL_SEND_EMAIL"));
    assert!(idx
        .search("telegram", &gate, &RankHints::default(), 5)
        .is_empty());
    assert_eq!(idx.len(), catalog().len() - 1);
}

#[test]
fn a_change_reaches_searches_that_ran_before_it() {
    let mut idx = ToolIndex::from_tools(catalog());
    let low = ToolGate::new(
        GateRules::permissive().max_risk(RiskLevel::Low),
        Connected::Unrestricted,
    );
    let open = ToolGate::new(GateRules::permissive(), Connected::Unrestricted);
    let ids = |hits: Vec<ScoredTool>| -> Vec<String> {
        hits.into_iter().map(|h| h.tool.id.clone()).collect()
    };
    // The first searches build the scoring lists of "refund" and "charge".
    assert!(idx
        .search("refund a charge", &low, &RankHints::default(), 5)
        .is_empty());
    assert_eq!(
        ids(idx.search("refund a charge", &open, &RankHints::default(), 5))[0],
        "STRIPE_CREATE_REFUND"
    );
    // Same words, lower risk: the gate sees the change.
    let mut refund = catalog()[5].clone();
    refund.risk_level = RiskLevel::Low;
    refund.tags.clear();
    assert!(idx.upsert(refund.clone()));
    assert_eq!(
        ids(idx.search("refund a charge", &low, &RankHints::default(), 5)),
        ["STRIPE_CREATE_REFUND"]
    );
    // After changes, every score equals that of an index built from the final catalog.
    let mut email = catalog()[1].clone();
    email.description = "List emails and refund drafts in the inbox".into();
    idx.upsert(email.clone());
    idx.remove("SLACK_POST_MESSAGE");
    let mut final_catalog: Vec<ToolSpec> = catalog()
        .into_iter()
        .filter(|t| t.id != "SLACK_POST_MESSAGE")
        .collect();
    final_catalog[1] = email;
    final_catalog[4] = refund;
    let fresh = ToolIndex::from_tools(final_catalog);
    for query in [
        "refund a charge",
        "emails inbox",
        "post a message",
        "create",
    ] {
        let scores = |idx: &ToolIndex| -> Vec<(String, f32)> {
            idx.search(query, &open, &RankHints::default(), 10)
                .into_iter()
                .map(|h| (h.tool.id.clone(), h.lexical))
                .collect()
        };
        assert_eq!(scores(&idx), scores(&fresh), "{query}");
    }
}

#[test]
fn compaction_keeps_results_exact() {
    let mut idx = ToolIndex::new();
    for i in 0..3000 {
        idx.upsert(tool(
            &format!("KIT{}_FETCH_WIDGET_{i}", i % 30),
            &format!("kit{}", i % 30),
            "fetch widget",
        ));
    }
    for i in 0..3000 {
        if i % 3 != 0 {
            assert!(idx.remove(&format!("KIT{}_FETCH_WIDGET_{i}", i % 30)));
        }
    }
    // Slots freed by compaction are reused without resurrecting old postings.
    for i in 0..500 {
        idx.upsert(tool(&format!("NEW_GADGET_{i}"), "gadgets", "gadget maker"));
    }
    let gate = ToolGate::new(GateRules::permissive(), Connected::Unrestricted);
    let widgets = idx.search("fetch widget", &gate, &RankHints::default(), 5000);
    assert_eq!(widgets.len(), 1000);
    assert!(widgets.iter().all(|h| h.tool.id.contains("WIDGET")));
    let gadgets = idx.search("gadget", &gate, &RankHints::default(), 5000);
    assert_eq!(gadgets.len(), 500);
    assert_eq!(idx.len(), 1500);
}

#[test]
fn boosts_follow_the_router() {
    let idx = ToolIndex::from_tools(catalog());
    let rules = GateRules::default().max_risk(RiskLevel::High);
    let gate = ToolGate::new(rules, Connected::Unrestricted);
    // "emails" matches both gmail tools; the send intent lifts the send tool.
    let plain = idx.search("gmail emails", &gate, &RankHints::default(), 2);
    assert_eq!(plain[0].tool.id, "GMAIL_LIST_EMAILS");
    let hints = RankHints {
        intent_tags: intent_tags("send_email"),
        ..Default::default()
    };
    let boosted = idx.search("gmail emails", &gate, &hints, 2);
    assert_eq!(boosted[0].tool.id, "GMAIL_SEND_EMAIL");
    // A candidate app shows its tools even when no word matches.
    let hints = RankHints {
        candidate_apps: vec!["Slack".into()],
        ..Default::default()
    };
    let hits = idx.search("tell the team", &gate, &hints, 3);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].tool.id, "SLACK_POST_MESSAGE");
    assert_eq!(hits[0].lexical, 0.0);
}

#[test]
fn many_distinct_tags_still_gate_and_boost() {
    // 100 tools with their own tags first, so the category tags get ids past 64.
    let mut tools: Vec<ToolSpec> = (0..100)
        .map(|i| tool(&format!("K_NOISE_{i}"), "noise", "noise").with_tags([format!("t{i}")]))
        .collect();
    tools.push(tool("K_SEND_REPORT", "k", "report").with_tags(["send"]));
    tools.push(tool("K_LIST_REPORT", "k", "report").with_tags(["read"]));
    tools.push(
        tool("K_PURGE_REPORT", "k", "report report report")
            .with_tags(["delete"])
            .with_risk(RiskLevel::Low),
    );
    let idx = ToolIndex::from_tools(tools);
    let gate = ToolGate::new(
        GateRules::default().max_risk(RiskLevel::High),
        Connected::Unrestricted,
    );
    let hints = RankHints {
        intent_tags: vec!["send".into()],
        ..Default::default()
    };
    let hits = idx.search("report", &gate, &hints, 5);
    assert_eq!(hits[0].tool.id, "K_SEND_REPORT");
    assert!(hits.iter().all(|h| h.tool.id != "K_PURGE_REPORT"));
}

#[tokio::test]
async fn gate_and_definitions() {
    let search = ToolSearch::new(ToolIndex::from_tools(catalog()));
    let req = SearchRequest::new("email message issue refund note delete", subject())
        .connections(vec![conn("gmail"), conn("github")]);
    let res = search.search(&req).await.unwrap();
    let ids = res.tool_ids();
    // Default gate: connected toolkits + no-auth tools, no delete/money/admin, risk ≤ medium.
    assert!(ids.contains(&"GMAIL_LIST_EMAILS"));
    assert!(ids.contains(&"GITHUB_CREATE_ISSUE"));
    assert!(ids.contains(&"notes.create"));
    for banned in [
        "SLACK_POST_MESSAGE",
        "GMAIL_DELETE_EMAIL",
        "STRIPE_CREATE_REFUND",
    ] {
        assert!(!ids.contains(&banned), "{banned} leaked: {ids:?}");
    }
    for h in &res.hits {
        assert_eq!(res.tool_id(&h.definition.name), Some(h.tool.id.as_str()));
        assert_eq!(h.definition.parameters["type"], "object");
    }
    let note = res.hits.iter().find(|h| h.tool.id == "notes.create");
    assert!(note.is_some_and(|h| h.definition.name != "notes.create"));
}

fn deny_policy(field: &str, value: Value, effect: Effect) -> Policy {
    Policy {
        id: format!("p-{field}"),
        name: "p".into(),
        description: String::new(),
        scope: PolicyScope::Global,
        scope_id: None,
        actions: vec![PolicyAction::ToolExposure],
        rule_expr: RuleExpr {
            conditions: vec![RuleNode::Condition(Condition {
                field: field.into(),
                operator: Operator::Equals,
                value,
            })],
            logic: Default::default(),
        },
        effect,
        modify: None,
        priority: 10,
        enabled: true,
    }
}

#[tokio::test]
async fn policy_engine_denials_are_never_exposed() {
    let policies = vec![
        deny_policy("tool.toolkit", json!("gmail"), Effect::Deny),
        deny_policy(
            "tool.id",
            json!("GITHUB_CREATE_ISSUE"),
            Effect::RequireApproval,
        ),
    ];
    let search = ToolSearch::new(ToolIndex::from_tools(catalog()))
        .with_policy(Arc::new(RulePolicyEngine::with_policies(policies)));
    let req = SearchRequest::new("gmail email issue", subject())
        .gate(GateRules::permissive())
        .connections(all_connected())
        .top_n(3);
    let res = search.search(&req).await.unwrap();
    assert!(res
        .hits
        .iter()
        .all(|h| h.tool.toolkit.as_deref() != Some("gmail")));
    assert!(res.policy_denied.iter().any(|id| id.starts_with("GMAIL")));
    let issue = res.hits.iter().find(|h| h.tool.id == "GITHUB_CREATE_ISSUE");
    assert!(issue.is_some_and(|h| h.requires_approval));
    let why = search
        .explain(
            "GMAIL_SEND_EMAIL",
            &subject(),
            GateRules::permissive(),
            &all_connected(),
        )
        .await;
    assert!(matches!(why, Ok(Err(DenyReason::Policy { .. }))));
}

struct Hub {
    conns: Option<Vec<Connection>>,
}

#[async_trait]
impl ToolHub for Hub {
    fn name(&self) -> &str {
        "remote"
    }
    async fn list_tools(&self, _page: PageRequest) -> Result<ToolPage> {
        Ok(ToolPage::default())
    }
    async fn execute(&self, id: &str, _a: Value, _c: &ToolContext) -> Result<Value> {
        Err(Error::not_found("tool", id))
    }
    async fn connections(&self, _s: &Subject) -> Result<Vec<Connection>> {
        self.conns
            .clone()
            .ok_or_else(|| Error::backend("remote", crate::ErrorKind::Unavailable, "down", None))
    }
}

#[tokio::test]
async fn connections_come_from_hubs() {
    let mut inactive = conn("github");
    inactive.active = false;
    let search = ToolSearch::new(ToolIndex::from_tools(catalog())).with_hub(Arc::new(Hub {
        conns: Some(vec![conn("slack"), inactive]),
    }));
    let req = SearchRequest::new("message issue", subject()).gate(GateRules::permissive());
    let res = search.search(&req).await.unwrap();
    assert_eq!(res.tool_ids(), ["SLACK_POST_MESSAGE"]);

    let down =
        ToolSearch::new(ToolIndex::from_tools(catalog())).with_hub(Arc::new(Hub { conns: None }));
    let res = down
        .search(&SearchRequest::new("message issue note", subject()))
        .await
        .unwrap();
    assert_eq!(
        res.tool_ids(),
        ["notes.create"],
        "a failing hub connects nothing"
    );
}

/// Embeds a text as counts of a few marker words.
struct Markers {
    fail: bool,
    calls: Mutex<usize>,
}

#[async_trait]
impl Embedder for Markers {
    fn model(&self) -> &str {
        "markers"
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        *self.calls.lock().unwrap_or_else(|e| e.into_inner()) += texts.len();
        if self.fail {
            return Err(Error::backend(
                "emb",
                crate::ErrorKind::Unavailable,
                "down",
                None,
            ));
        }
        let words = ["inbox", "repository", "channel"];
        Ok(texts
            .iter()
            .map(|t| {
                let t = t.to_lowercase();
                words
                    .iter()
                    .map(|w| t.matches(w).count() as f32 + 0.01)
                    .collect()
            })
            .collect())
    }
}

#[tokio::test]
async fn rerank_reorders_and_degrades_gracefully() {
    let emb = Arc::new(Markers {
        fail: false,
        calls: Mutex::new(0),
    });
    let reranker = Arc::new(EmbeddingReranker::new(
        emb.clone(),
        RerankConfig {
            fusion: Fusion::Semantic,
            ..RerankConfig::e5()
        },
    ));
    let search = ToolSearch::new(ToolIndex::from_tools(catalog())).with_reranker(reranker.clone());
    let req = SearchRequest::new("gmail email inbox", subject())
        .gate(GateRules::permissive())
        .unrestricted_connections()
        .top_n(2);
    let res = search.search(&req).await.unwrap();
    assert!(res.reranked);
    assert_eq!(res.hits[0].tool.id, "GMAIL_LIST_EMAILS");
    assert!(res.hits[0].semantic.is_some());
    let calls = *emb.calls.lock().unwrap_or_else(|e| e.into_inner());
    // Tool vectors are cached: a second search embeds only the query.
    search.search(&req).await.unwrap();
    assert_eq!(
        *emb.calls.lock().unwrap_or_else(|e| e.into_inner()),
        calls + 1
    );
    assert!(reranker.cached() >= 2);

    let failing = ToolSearch::new(ToolIndex::from_tools(catalog())).with_reranker(Arc::new(
        EmbeddingReranker::new(
            Arc::new(Markers {
                fail: true,
                calls: Mutex::new(0),
            }),
            RerankConfig::default(),
        ),
    ));
    let res = failing.search(&req).await.unwrap();
    assert!(!res.reranked);
    assert_eq!(res.hits.len(), 2);
}

#[test]
fn fusion_methods() {
    let mk = |id: &str, lex: f32, sem: f32| Ranked {
        tool: Arc::new(tool(id, "k", "")),
        score: lex,
        lexical: lex,
        semantic: Some(sem),
    };
    let base = vec![mk("a", 3.0, 0.1), mk("b", 2.0, 0.9), mk("c", 1.0, 0.5)];
    let mut rrf = base.clone();
    rerank::fuse(&mut rrf, Fusion::default());
    // a: 1/61 + 1/63, b: 1/62 + 1/61 → b first.
    assert_eq!(rrf[0].tool.id, "b");
    let mut convex = base.clone();
    rerank::fuse(
        &mut convex,
        Fusion::Convex {
            semantic_weight: 0.2,
        },
    );
    assert_eq!(convex[0].tool.id, "a");
}

/// The tool catalog part of a store (the other methods are not used by tool search).
#[derive(Default)]
struct ToolStore {
    tools: Mutex<BTreeMap<String, ToolSpec>>,
}

#[async_trait]
impl DefinitionStore for ToolStore {
    async fn put_workflow(&self, _w: &Workflow) -> Result<()> {
        Err(Error::Internal("unused".into()))
    }
    async fn get_workflow(&self, id: &str, _v: Option<&str>) -> Result<Workflow> {
        Err(Error::not_found("workflow", id))
    }
    async fn list_workflows(&self, _p: Page) -> Result<Vec<Workflow>> {
        Ok(Vec::new())
    }
    async fn delete_workflow(&self, _id: &str) -> Result<()> {
        Ok(())
    }
    async fn put_tools(&self, tools: &[ToolSpec]) -> Result<()> {
        let mut m = self.tools.lock().unwrap_or_else(|e| e.into_inner());
        for t in tools {
            m.insert(t.id.clone(), t.clone());
        }
        Ok(())
    }
    async fn get_tool(&self, id: &str) -> Result<ToolSpec> {
        let m = self.tools.lock().unwrap_or_else(|e| e.into_inner());
        m.get(id)
            .cloned()
            .ok_or_else(|| Error::not_found("tool", id))
    }
    async fn list_tools(&self, q: &ToolQuery) -> Result<Vec<ToolSpec>> {
        let m = self.tools.lock().unwrap_or_else(|e| e.into_inner());
        Ok(m.values()
            .skip(q.page.offset as usize)
            .take(q.page.limit as usize)
            .cloned()
            .collect())
    }
    async fn delete_tool(&self, id: &str) -> Result<()> {
        self.tools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        Ok(())
    }
    async fn put_agent(&self, _a: &Agent) -> Result<()> {
        Ok(())
    }
    async fn get_agent(&self, id: &str) -> Result<Agent> {
        Err(Error::not_found("agent", id))
    }
    async fn list_agents(&self, _p: Page) -> Result<Vec<Agent>> {
        Ok(Vec::new())
    }
    async fn put_policy(&self, _p: &Policy) -> Result<()> {
        Ok(())
    }
    async fn list_policies(&self) -> Result<Vec<Policy>> {
        Ok(Vec::new())
    }
    async fn delete_policy(&self, _id: &str) -> Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn refresh_from_store_is_incremental() {
    let store = ToolStore::default();
    let many: Vec<ToolSpec> = (0..2500)
        .map(|i| {
            tool(
                &format!("K{}_T{i}", i % 50),
                &format!("k{}", i % 50),
                "thing",
            )
        })
        .collect();
    store.put_tools(&many).await.unwrap();
    let search = ToolSearch::new(ToolIndex::new());
    let first = search.refresh_from_store(&store).await.unwrap();
    assert_eq!(
        (first.total, first.upserted, first.removed),
        (2500, 2500, 0)
    );
    let again = search.refresh_from_store(&store).await.unwrap();
    assert_eq!((again.total, again.upserted, again.removed), (2500, 0, 0));

    let mut changed = many[7].clone();
    changed.description = "renamed".into();
    store.put_tools(&[changed]).await.unwrap();
    store.delete_tool(&many[8].id).await.unwrap();
    let delta = search.refresh_from_store(&store).await.unwrap();
    assert_eq!((delta.total, delta.upserted, delta.removed), (2499, 1, 1));
    assert!(!search.read().contains(&many[8].id));

    // The observer path: a sync reports its changes directly.
    search.catalog_changed(&[tool("NEW_ONE", "k1", "fresh")], &[many[9].id.clone()]);
    assert!(search.read().contains("NEW_ONE"));
    assert!(!search.read().contains(&many[9].id));
}

/// Filled from a memory store, the index holds the store's specs, not copies of them.
#[tokio::test]
async fn an_index_filled_from_the_memory_store_shares_its_specs() {
    let store = crate::memory::MemoryStore::new();
    let tools: Vec<ToolSpec> = (0..20)
        .map(|i| tool(&format!("K_T{i}"), "k", "thing"))
        .collect();
    store.put_tools(&tools).await.unwrap();
    let search = ToolSearch::new(ToolIndex::new());
    search.refresh_from_store(&store).await.unwrap();
    let stored = store.list_tool_specs(&ToolQuery::default()).await.unwrap();
    assert_eq!(stored.len(), 20);
    let index = search.read();
    for spec in &stored {
        let indexed = index.tools().find(|t| t.id == spec.id).unwrap();
        assert!(Arc::ptr_eq(spec, indexed), "{} is a second copy", spec.id);
    }
}

#[tokio::test]
async fn default_top_n_and_zero() {
    let many: Vec<ToolSpec> = (0..40)
        .map(|i| tool(&format!("K_REPORT_{i}"), "k", "monthly report"))
        .collect();
    let search = ToolSearch::new(ToolIndex::from_tools(many));
    let req = SearchRequest::new("report", subject()).connections(vec![conn("k")]);
    let res = search.search(&req).await.unwrap();
    assert_eq!(res.hits.len(), DEFAULT_TOP_N);
    let res = search.search(&req.clone().top_n(0)).await.unwrap();
    assert!(res.hits.is_empty());
}

#[test]
fn search_many_equals_separate_searches() {
    let mut tools = catalog();
    for i in 0..40 {
        tools.push(tool(
            &format!("WEATHER_{i}"),
            &format!("weather{}", i % 7),
            &format!("Weather forecast {i} for a city, hourly temperature and alerts"),
        ));
    }
    let index = ToolIndex::from_tools(tools);
    let gate = ToolGate::new(GateRules::permissive(), Connected::Unrestricted);
    let hints = RankHints::default();
    let queries = [
        "send an email and post a slack message. Also the weather forecast for Paris",
        "send an email",
        "post a slack message",
        "weather forecast hourly",
        "nothing matches zzz",
    ];
    for k in [1, 3, 8, 30] {
        let many = index.search_many(&queries, &gate, &hints, k);
        assert_eq!(many.len(), queries.len());
        for (q, got) in queries.iter().zip(&many) {
            assert_eq!(got, &index.search(q, &gate, &hints, k), "`{q}` k={k}");
        }
    }
}

/// One app with many tools matching the first intent of [`TWO_INTENTS`], one tool for the
/// second, and unrelated tools around them.
fn two_intent_catalog() -> Vec<ToolSpec> {
    let mut tools: Vec<ToolSpec> = (0..10)
        .map(|i| {
            tool(
                &format!("WEATHER_{i}"),
                "weather",
                &format!("Weather forecast, hourly weather, weather alerts and radar ({i})"),
            )
        })
        .collect();
    tools.extend((0..300).map(|i| {
        tool(
            &format!("FILLER_{i}"),
            &format!("misc{}", i % 50),
            &format!("Miscellaneous task number {i}"),
        )
    }));
    tools.push(tool(
        "ZIP_INCOME",
        "census",
        "Median household income of a ZIP code",
    ));
    tools
}

const TWO_INTENTS: &str = "Get the weather forecast, the hourly weather, weather alerts and \
                           the weather radar for Paris. Also fetch the income for 98765.";

#[tokio::test]
async fn decomposition_gives_every_intent_of_a_request_a_slot() {
    let tools = two_intent_catalog();
    let req = SearchRequest::new(TWO_INTENTS, subject())
        .gate(GateRules::permissive())
        .unrestricted_connections();
    assert_eq!(req.top_n, DEFAULT_TOP_N);
    let whole = ToolSearch::new(ToolIndex::from_tools(tools.clone()))
        .with_decomposition(DecomposeConfig::off());
    assert!(!whole.decomposition().enabled);
    assert!(
        !ToolSearch::new(ToolIndex::default())
            .decomposition()
            .enabled,
        "off by default"
    );
    let split = ToolSearch::new(ToolIndex::from_tools(tools))
        .with_decomposition(DecomposeConfig::default());
    let ids = |r: SearchResult| r.tool_ids().join(",");
    assert!(!ids(whole.search(&req).await.unwrap()).contains("ZIP_INCOME"));
    let ids = ids(split.search(&req).await.unwrap());
    assert!(ids.contains("ZIP_INCOME"), "{ids}");
    assert!(ids.starts_with("WEATHER_0"), "{ids}");
}

#[tokio::test]
async fn search_decomposed_is_the_ranking_tool_search_runs() {
    let index = ToolIndex::from_tools(two_intent_catalog());
    let gate = ToolGate::new(GateRules::permissive(), Connected::Unrestricted);
    let hints = RankHints::default();
    let ids = |hits: Vec<ScoredTool>| hits.into_iter().map(|h| h.tool.id.clone()).collect();

    // Off: exactly the plain search of the whole request.
    let off: Vec<String> = ids(index.search_decomposed(
        TWO_INTENTS,
        &DecomposeConfig::off(),
        &gate,
        &hints,
        DEFAULT_TOP_N,
    ));
    let plain: Vec<String> = ids(index.search(TWO_INTENTS, &gate, &hints, DEFAULT_TOP_N));
    assert_eq!(off, plain);
    assert!(!off.contains(&"ZIP_INCOME".to_string()), "{off:?}");

    // On: the same order `ToolSearch` returns (no policy engine, no reranker), with a slot
    // for the second intent.
    let on: Vec<String> = ids(index.search_decomposed(
        TWO_INTENTS,
        &DecomposeConfig::default(),
        &gate,
        &hints,
        DEFAULT_TOP_N,
    ));
    let search = ToolSearch::new(ToolIndex::from_tools(two_intent_catalog()))
        .with_decomposition(DecomposeConfig::default());
    let req = SearchRequest::new(TWO_INTENTS, subject())
        .gate(GateRules::permissive())
        .unrestricted_connections();
    let served = search.search(&req).await.unwrap();
    assert_eq!(on, served.tool_ids());
    assert!(on.contains(&"ZIP_INCOME".to_string()), "{on:?}");
}

#[tokio::test]
async fn llm_rerank_orders_by_the_answer_and_never_adds_tools() {
    use crate::testing::ScriptedLlm;
    // The model puts the third candidate first and names numbers outside the list.
    let llm = Arc::new(ScriptedLlm::new().reply_json(json!({"ranking": [3, 42, 1, 3]})));
    let reranker = Arc::new(LlmReranker::new(
        llm.clone(),
        LlmRerankConfig {
            pool: 3,
            ..Default::default()
        },
    ));
    let search = ToolSearch::new(ToolIndex::from_tools(catalog())).with_reranker(reranker);
    let req = SearchRequest::new("email in my gmail inbox", subject())
        .gate(GateRules::permissive())
        .unrestricted_connections()
        .top_n(5);
    let lexical = search.search(&req.clone().without_rerank()).await.unwrap();
    let reranked = search.search(&req).await.unwrap();
    assert!(reranked.reranked);
    let lex = lexical.tool_ids();
    let got = reranked.tool_ids();
    // Numbered answer 3, 1 first, then the unranked pool member, then the rest as before.
    assert_eq!(&got[..3], [lex[2], lex[0], lex[1]]);
    assert_eq!(&got[3..], &lex[3..]);
    assert!(
        reranked.hits.windows(2).all(|w| w[0].score >= w[1].score),
        "scores rise down the list"
    );
    // The prompt numbered the pool (three candidates) and asked for strict output.
    // The rerank's tokens come back for the caller's budget (the scripted model's usage).
    let spent = reranked.rerank_usage.clone().expect("rerank usage");
    assert_eq!(spent.model, LlmRerankConfig::default().model);
    assert_eq!(
        (spent.usage.input_tokens, spent.usage.output_tokens),
        (100, 20)
    );
    assert!(lexical.rerank_usage.is_none());
    let sent = &llm.requests()[0];
    let prompt = format!("{:?}", sent.messages);
    assert!(
        prompt.contains("3. ") && !prompt.contains("4. "),
        "{prompt}"
    );
    assert!(sent.output_schema.as_ref().is_some_and(|s| s.strict));

    // A failing or unusable answer keeps the lexical order.
    for llm in [
        ScriptedLlm::new().fail(Error::ModelOutput("refused".into())),
        ScriptedLlm::new().reply_json(json!({"ranking": [99]})),
        ScriptedLlm::new().reply_text("tool 3 is best"),
    ] {
        let search = ToolSearch::new(ToolIndex::from_tools(catalog())).with_reranker(Arc::new(
            LlmReranker::new(Arc::new(llm), LlmRerankConfig::default()),
        ));
        let res = search.search(&req).await.unwrap();
        assert!(!res.reranked);
        assert_eq!(res.tool_ids(), lex);
    }
}

#[test]
fn keep_candidates_drops_unknown_and_repeated_tools() {
    let ranked = |id: &str| Ranked {
        tool: Arc::new(tool(id, "kit", "")),
        score: 0.0,
        lexical: 0.0,
        semantic: None,
    };
    let input = vec![ranked("a"), ranked("b"), ranked("c")];
    let output = vec![ranked("c"), ranked("x"), ranked("c"), ranked("a")];
    let kept: Vec<String> = keep_candidates(input, output)
        .into_iter()
        .map(|r| r.tool.id.clone())
        .collect();
    assert_eq!(kept, ["c", "a", "b"]);
}

#[tokio::test]
async fn background_refresh_follows_the_store() {
    let store = Arc::new(ToolStore::default());
    store
        .put_tools(&[tool("A_ONE", "a", "first"), tool("A_TWO", "a", "second")])
        .await
        .unwrap();
    let search = Arc::new(ToolSearch::new(ToolIndex::new()));
    let task = search.spawn_refresh(store.clone(), std::time::Duration::from_millis(10));
    let settled = |want: &'static [&'static str]| {
        let search = search.clone();
        async move {
            for _ in 0..500 {
                let mut ids: Vec<String> = search.read().ids().map(str::to_string).collect();
                ids.sort();
                if ids == want {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("index never matched {want:?}");
        }
    };
    settled(&["A_ONE", "A_TWO"]).await;
    // Another process's sync writes the store: this index follows.
    store.delete_tool("A_ONE").await.unwrap();
    store
        .put_tools(&[tool("B_NEW", "b", "third")])
        .await
        .unwrap();
    settled(&["A_TWO", "B_NEW"]).await;
    task.shutdown().await;
    // Stopped: later writes are not picked up.
    store
        .put_tools(&[tool("C_LATE", "c", "late")])
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!search.read().contains("C_LATE"));
}

#[tokio::test]
async fn scores_never_rise_past_the_rerank_pool() {
    let emb = Arc::new(Markers {
        fail: false,
        calls: Mutex::new(0),
    });
    // RRF scores of a two-tool pool are ≈ 0.03; the lexical scores after it are larger.
    let reranker = Arc::new(EmbeddingReranker::new(
        emb,
        RerankConfig {
            pool: 2,
            ..RerankConfig::e5()
        },
    ));
    let search = ToolSearch::new(ToolIndex::from_tools(catalog())).with_reranker(reranker);
    let req = SearchRequest::new("email inbox repository channel message", subject())
        .gate(GateRules::permissive())
        .unrestricted_connections()
        .top_n(5);
    let res = search.search(&req).await.unwrap();
    assert!(res.reranked);
    assert!(res.hits.len() > 2);
    let scores: Vec<f32> = res.hits.iter().map(|h| h.score).collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "scores rise: {scores:?}"
    );
}

#[test]
fn hidden_tools_lend_no_toolkit_evidence() {
    let mut wipe = tool("REPO_DELETE", "repo", "Delete a repository");
    wipe.tags = vec!["delete".into()];
    let list = tool("REPO_LIST", "repo", "List repositories");
    let idx = ToolIndex::from_tools([wipe, list]);
    let ids = |rules: GateRules| -> Vec<String> {
        let gate = ToolGate::new(rules, Connected::Unrestricted);
        idx.search("delete everything", &gate, &RankHints::default(), 5)
            .into_iter()
            .map(|h| h.tool.id.clone())
            .collect()
    };
    // With deletion allowed, the toolkit's evidence brings its other tool along.
    assert_eq!(ids(GateRules::permissive()), ["REPO_DELETE", "REPO_LIST"]);
    // With `delete` blocked, nothing the user may see matched: nothing is offered.
    assert!(ids(GateRules::default().max_risk(RiskLevel::High)).is_empty());
}
