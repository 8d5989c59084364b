//! Policy gate of tool search at catalog scale: a tool of an unconnected toolkit, with a
//! blocked tag, too risky, out of the app's scope or denied by a policy is never returned,
//! whatever the query, the router hints or the rerank.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use logline_core::llm::Embedder;
use logline_core::policy::{
    Condition, Effect, Operator, Policy, PolicyAction, PolicyScope, RuleExpr, RuleNode,
    RulePolicyEngine,
};
use logline_core::run::Subject;
use logline_core::search::{
    toolkit_key, DecomposeConfig, DenseConfig, DenseRetriever, EmbeddingReranker, GateRules,
    Ranked, RerankConfig, Reranked, Reranker, SearchRequest, ToolIndex, ToolSearch,
};
use logline_core::tool::{Connection, RiskLevel, ToolSpec};
use serde_json::json;

/// Splitmix64, for a reproducible catalog and queries.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const VERBS: [&str; 8] = [
    "list", "get", "create", "update", "delete", "send", "refund", "grant",
];
const OBJECTS: [&str; 10] = [
    "issue", "message", "invoice", "file", "event", "contact", "payment", "role", "report", "task",
];
const TOOLKITS: usize = 300;

fn kit(i: usize) -> String {
    format!("app{i}")
}

/// 3,000 remote tools over 300 toolkits plus 50 local tools, with every risk and tag mix.
fn catalog(rng: &mut Rng) -> Vec<ToolSpec> {
    let mut out = Vec::new();
    for i in 0..3000 {
        let k = kit(i % TOOLKITS);
        let verb = VERBS[rng.below(VERBS.len())];
        let object = OBJECTS[rng.below(OBJECTS.len())];
        let (risk, tag) = match verb {
            "list" | "get" => (RiskLevel::Low, "read"),
            "create" | "update" => (RiskLevel::Medium, "write"),
            "send" => (RiskLevel::High, "send"),
            "delete" => (RiskLevel::High, "delete"),
            "refund" => (RiskLevel::High, "money"),
            _ => (RiskLevel::High, "admin"),
        };
        let mut t = ToolSpec::new(
            format!(
                "{}_{}_{}_{i}",
                k.to_uppercase(),
                verb.to_uppercase(),
                object.to_uppercase()
            ),
            format!("{verb} a {object} in {k}"),
            json!({"type": "object", "properties": {format!("{object}_id"): {"type": "string"}}}),
        )
        .in_toolkit(k)
        .on_hub("remote")
        .with_risk(risk)
        .with_tags([tag]);
        t.requires_connection = true;
        out.push(t);
    }
    for i in 0..50 {
        let verb = VERBS[i % VERBS.len()];
        out.push(
            ToolSpec::new(
                format!("local.{verb}_{i}"),
                format!("{verb} a local note"),
                json!({}),
            )
            .with_risk(if i % 2 == 0 {
                RiskLevel::Low
            } else {
                RiskLevel::High
            }),
        );
    }
    out
}

fn connections(rng: &mut Rng, n: usize) -> Vec<Connection> {
    (0..n)
        .map(|_| Connection {
            toolkit: kit(rng.below(TOOLKITS)),
            account_id: "ca".into(),
            active: rng.below(5) != 0,
        })
        .collect()
}

fn random_query(rng: &mut Rng) -> String {
    let words = 1 + rng.below(8);
    (0..words)
        .map(|_| match rng.below(3) {
            0 => VERBS[rng.below(VERBS.len())].to_string(),
            1 => OBJECTS[rng.below(OBJECTS.len())].to_string(),
            _ => kit(rng.below(TOOLKITS)),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks every hit against the rules independently of the gate's own code.
fn assert_allowed(hits: &[Arc<ToolSpec>], rules: &GateRules, conns: &[Connection], ctx: &str) {
    let connected: HashSet<String> = conns
        .iter()
        .filter(|c| c.active)
        .map(|c| toolkit_key(&c.toolkit))
        .collect();
    for t in hits {
        if t.requires_connection {
            let kit = t.toolkit.as_deref().map(toolkit_key).unwrap_or_default();
            assert!(
                connected.contains(&kit),
                "{ctx}: unconnected {} returned",
                t.id
            );
        } else {
            assert!(
                rules.allow_no_auth_tools,
                "{ctx}: no-auth tool {} returned",
                t.id
            );
        }
        for tag in &t.tags {
            assert!(
                !rules
                    .blocked_tags
                    .iter()
                    .any(|b| b.eq_ignore_ascii_case(tag)),
                "{ctx}: blocked tag {tag} on {}",
                t.id
            );
        }
        assert!(t.risk_level <= rules.max_risk, "{ctx}: {} too risky", t.id);
        if let Some(kits) = &rules.allowed_toolkits {
            let in_scope = t.toolkit.as_ref().is_some_and(|k| kits.contains(k))
                || rules
                    .allowed_tools
                    .as_ref()
                    .is_some_and(|ids| ids.contains(&t.id));
            assert!(in_scope, "{ctx}: {} outside the app scope", t.id);
        }
    }
}

fn rule_sets(rng: &mut Rng) -> Vec<GateRules> {
    vec![
        GateRules::default(),
        GateRules::default().max_risk(RiskLevel::Low),
        GateRules::default().max_risk(RiskLevel::High),
        GateRules::default()
            .max_risk(RiskLevel::High)
            .blocked_tags(["send", "WRITE"]),
        GateRules {
            allow_no_auth_tools: false,
            ..GateRules::permissive()
        },
        GateRules::permissive().only_toolkits((0..20).map(|_| kit(rng.below(TOOLKITS)))),
    ]
}

#[tokio::test]
async fn denied_tools_never_surface_whatever_the_query() {
    let mut rng = Rng(7);
    let tools = catalog(&mut rng);
    let search = ToolSearch::new(ToolIndex::from_tools(tools.clone()));
    let mut checked = 0;
    for round in 0..40 {
        let n = 1 + rng.below(30);
        let conns = connections(&mut rng, n);
        for rules in rule_sets(&mut rng) {
            let query = random_query(&mut rng);
            // Router hints name unconnected apps and risky intents: boosts never bypass the gate.
            let req = SearchRequest::new(query.clone(), Subject::tenant("t").with_user("u"))
                .gate(rules.clone())
                .connections(conns.clone())
                .candidate_apps([kit(rng.below(TOOLKITS)), kit(rng.below(TOOLKITS))])
                .intent("delete and refund and send")
                .top_n(1 + rng.below(20));
            let res = search.search(&req).await.unwrap();
            let hits: Vec<Arc<ToolSpec>> = res.hits.iter().map(|h| h.tool.clone()).collect();
            assert_allowed(&hits, &rules, &conns, &format!("round {round} `{query}`"));
            checked += hits.len();
        }
    }
    assert!(checked > 1000, "the property saw too few hits ({checked})");
}

/// Multi-intent requests are split into sub-requests ranked separately and merged
/// (`search::DecomposeConfig`): the merge only ever sees gated tools.
#[tokio::test]
async fn decomposed_requests_never_surface_denied_tools() {
    let mut rng = Rng(11);
    let tools = catalog(&mut rng);
    let search = ToolSearch::new(ToolIndex::from_tools(tools))
        .with_decomposition(DecomposeConfig::default());
    assert!(search.decomposition().enabled);
    let mut checked = 0;
    for round in 0..30 {
        let n = 1 + rng.below(30);
        let conns = connections(&mut rng, n);
        for rules in rule_sets(&mut rng) {
            let query = format!(
                "{}. Also {}, and get {}",
                random_query(&mut rng),
                random_query(&mut rng),
                random_query(&mut rng)
            );
            let req = SearchRequest::new(query.clone(), Subject::tenant("t").with_user("u"))
                .gate(rules.clone())
                .connections(conns.clone())
                .top_n(1 + rng.below(20));
            let res = search.search(&req).await.unwrap();
            let hits: Vec<Arc<ToolSpec>> = res.hits.iter().map(|h| h.tool.clone()).collect();
            assert_allowed(&hits, &rules, &conns, &format!("round {round} `{query}`"));
            checked += hits.len();
        }
    }
    assert!(checked > 500, "the property saw too few hits ({checked})");
}

/// Hashed bag of words: a request naming an app is near every tool of that app, connected
/// or not, so the dense list proposes hidden tools all the time.
struct HashedWords;

#[async_trait]
impl Embedder for HashedWords {
    fn model(&self) -> &str {
        "hashed-words"
    }
    async fn embed(&self, texts: &[String]) -> logline_core::Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.01f32; 32];
                for w in t
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .filter(|w| !w.is_empty())
                {
                    let h = w.bytes().fold(1469598103934665603u64, |h, b| {
                        (h ^ u64::from(b)).wrapping_mul(1099511628211)
                    });
                    v[(h % 32) as usize] += 1.0;
                }
                v
            })
            .collect())
    }
}

/// Keeps the pool it was handed (and keeps its order).
#[derive(Debug, Default)]
struct PoolRecorder {
    pools: std::sync::Mutex<Vec<Vec<Arc<ToolSpec>>>>,
}

#[async_trait]
impl Reranker for PoolRecorder {
    fn pool(&self) -> usize {
        30
    }
    async fn rerank(
        &self,
        _query: &str,
        _parts: &[String],
        candidates: Vec<Ranked>,
    ) -> logline_core::Result<Reranked> {
        self.pools
            .lock()
            .unwrap()
            .push(candidates.iter().map(|c| c.tool.clone()).collect());
        Ok(candidates.into())
    }
}

/// The dense stage proposes tools by embedding alone: none it proposes enters the rerank
/// pool (let alone the result) unless the gate passes it.
#[tokio::test]
async fn dense_candidates_never_enter_the_pool_past_the_gate() {
    let mut rng = Rng(17);
    let tools = catalog(&mut rng);
    let dense = Arc::new(DenseRetriever::new(
        Arc::new(HashedWords),
        DenseConfig {
            depth: 60,
            ..Default::default()
        },
    ));
    let recorder = Arc::new(PoolRecorder::default());
    let search = ToolSearch::new(ToolIndex::from_tools(tools))
        .with_dense(dense.clone())
        .with_reranker(recorder.clone());
    assert_eq!(search.sync_vectors().await.unwrap(), 3050);
    let mut checked = 0;
    for round in 0..25 {
        let n = 1 + rng.below(30);
        let conns = connections(&mut rng, n);
        for rules in rule_sets(&mut rng) {
            let query = random_query(&mut rng);
            let req = SearchRequest::new(query.clone(), Subject::tenant("t").with_user("u"))
                .gate(rules.clone())
                .connections(conns.clone())
                .candidate_apps([kit(rng.below(TOOLKITS))])
                .top_n(1 + rng.below(20));
            let res = search.search(&req).await.unwrap();
            let ctx = format!("round {round} `{query}`");
            let pool = recorder.pools.lock().unwrap().pop().unwrap_or_default();
            assert_allowed(&pool, &rules, &conns, &format!("{ctx} (pool)"));
            let hits: Vec<Arc<ToolSpec>> = res.hits.iter().map(|h| h.tool.clone()).collect();
            assert_allowed(&hits, &rules, &conns, &ctx);
            checked += pool.len();
        }
    }
    assert!(
        checked > 1000,
        "the property saw too few candidates ({checked})"
    );
    assert!(dense.cached_queries() > 0);
}

#[tokio::test]
async fn exact_names_of_denied_tools_find_nothing_denied() {
    let mut rng = Rng(11);
    let tools = catalog(&mut rng);
    let search = ToolSearch::new(ToolIndex::from_tools(tools.clone()));
    let conns = vec![Connection {
        toolkit: kit(0),
        account_id: "ca".into(),
        active: true,
    }];
    let rules = GateRules::default();
    let mut denied_seen = 0;
    for t in tools.iter().filter(|t| {
        t.toolkit.as_deref() != Some("app0")
            || t.risk_level > RiskLevel::Medium
            || t.tags
                .iter()
                .any(|g| ["delete", "money", "admin"].contains(&g.as_str()))
    }) {
        if !t.requires_connection && t.risk_level <= RiskLevel::Medium {
            continue;
        }
        denied_seen += 1;
        // The query is the denied tool's own id and description.
        let req = SearchRequest::new(format!("{} {}", t.id, t.description), Subject::tenant("t"))
            .gate(rules.clone())
            .connections(conns.clone())
            .candidate_apps([t.toolkit.clone().unwrap_or_default()]);
        let res = search.search(&req).await.unwrap();
        assert!(
            !res.tool_ids().contains(&t.id.as_str()),
            "{} surfaced",
            t.id
        );
        let hits: Vec<Arc<ToolSpec>> = res.hits.iter().map(|h| h.tool.clone()).collect();
        assert_allowed(&hits, &rules, &conns, &t.id);
        if denied_seen >= 400 {
            break;
        }
    }
    assert!(denied_seen >= 400);
}

fn deny_toolkit(kit: &str) -> Policy {
    Policy {
        id: format!("deny-{kit}"),
        name: "deny".into(),
        description: format!("{kit} is not exposed"),
        scope: PolicyScope::Global,
        scope_id: None,
        actions: vec![PolicyAction::ToolExposure],
        rule_expr: RuleExpr {
            conditions: vec![RuleNode::Condition(Condition {
                field: "tool.toolkit".into(),
                operator: Operator::Equals,
                value: json!(kit),
            })],
            logic: Default::default(),
        },
        effect: Effect::Deny,
        modify: None,
        priority: 100,
        enabled: true,
    }
}

/// Any text → a vector that loves tools of `app1`, so the rerank would promote them.
struct LovesApp1;

#[async_trait]
impl Embedder for LovesApp1 {
    fn model(&self) -> &str {
        "loves-app1"
    }
    async fn embed(&self, texts: &[String]) -> logline_core::Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| vec![if t.contains("app1:") { 1.0 } else { 0.1 }, 0.5])
            .collect())
    }
}

#[tokio::test]
async fn policy_denials_hold_through_the_rerank() {
    let mut rng = Rng(13);
    let tools = catalog(&mut rng);
    let policy = RulePolicyEngine::with_policies(vec![deny_toolkit("app1")]);
    let reranker = EmbeddingReranker::new(Arc::new(LovesApp1), RerankConfig::default());
    let search = ToolSearch::new(ToolIndex::from_tools(tools))
        .with_policy(Arc::new(policy))
        .with_reranker(Arc::new(reranker));
    let conns: Vec<Connection> = (0..5)
        .map(|i| Connection {
            toolkit: kit(i),
            account_id: "ca".into(),
            active: true,
        })
        .collect();
    for query in [
        "app1 list issue",
        "app1",
        "list get create update app1 app2 message",
    ] {
        let req = SearchRequest::new(query, Subject::tenant("t"))
            .gate(GateRules::permissive())
            .connections(conns.clone())
            .candidate_apps(["app1"]);
        let res = search.search(&req).await.unwrap();
        assert!(res.reranked);
        assert!(!res.hits.is_empty(), "{query}: other toolkits still match");
        assert!(
            res.hits
                .iter()
                .all(|h| h.tool.toolkit.as_deref() != Some("app1")),
            "{query}: {:?}",
            res.tool_ids()
        );
        assert!(!res.policy_denied.is_empty());
    }
}
