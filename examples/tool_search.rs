//! Tool search over a hub-style catalog: the policy gate first, then the Top-N.
//!
//! ```text
//! cargo run --example tool_search                               # the demo requests
//! cargo run --example tool_search -- "refund the last payment"  # your own
//! ```
//!
//! The catalog is a few SaaS toolkits tagged by Composio's risk rules (slug and HTTP verb →
//! risk, side effects, confirmation, tags). The user has connected Gmail, Slack, GitHub and
//! Google Calendar, not Stripe; the gate blocks the `delete`, `money` and `admin` tags (the
//! default) and allows up to high risk (the default is medium: sending is high risk and asks
//! for confirmation), and a policy hides calendar tools from members. For each request the
//! example prints the Top-5 function definitions the model would see, then explains why some
//! tools are never shown. With `OPENAI_API_KEY` set, an LLM reranker re-orders the Top-20.

use std::sync::Arc;

use logline_composio::{RiskInput, RiskRules};
use logline_core::policy::{
    Condition, Effect, Operator, Policy, PolicyAction, PolicyScope, RuleExpr, RuleNode,
    RulePolicyEngine,
};
use logline_core::run::Subject;
use logline_core::search::{
    GateRules, LlmRerankConfig, LlmReranker, SearchRequest, SearchResult, ToolIndex, ToolSearch,
};
use logline_core::tool::{Connection, ToolSpec};
use serde_json::json;

/// (toolkit, slug, HTTP verb, description)
const CATALOG: &[(&str, &str, &str, &str)] = &[
    (
        "gmail",
        "GMAIL_SEND_EMAIL",
        "POST",
        "Send an email to one or more recipients",
    ),
    (
        "gmail",
        "GMAIL_CREATE_DRAFT",
        "POST",
        "Create an email draft without sending it",
    ),
    (
        "gmail",
        "GMAIL_LIST_THREADS",
        "GET",
        "List email threads in the mailbox, newest first",
    ),
    (
        "gmail",
        "GMAIL_FETCH_MESSAGE",
        "GET",
        "Fetch one email message by its id",
    ),
    (
        "gmail",
        "GMAIL_DELETE_MESSAGE",
        "DELETE",
        "Permanently delete an email message",
    ),
    (
        "slack",
        "SLACK_POST_MESSAGE",
        "POST",
        "Post a message to a channel or a direct message",
    ),
    (
        "slack",
        "SLACK_LIST_CHANNELS",
        "GET",
        "List public and private channels",
    ),
    (
        "slack",
        "SLACK_SEARCH_MESSAGES",
        "GET",
        "Search messages across channels",
    ),
    (
        "slack",
        "SLACK_ADMIN_INVITE_USER",
        "POST",
        "Invite a user to the workspace (admin)",
    ),
    (
        "github",
        "GITHUB_CREATE_ISSUE",
        "POST",
        "Open a new issue in a repository",
    ),
    (
        "github",
        "GITHUB_LIST_ISSUES",
        "GET",
        "List issues of a repository, filtered by state or label",
    ),
    (
        "github",
        "GITHUB_COMMENT_ON_ISSUE",
        "POST",
        "Add a comment to an issue or pull request",
    ),
    (
        "github",
        "GITHUB_DELETE_REPOSITORY",
        "DELETE",
        "Delete a repository and everything in it",
    ),
    (
        "stripe",
        "STRIPE_CREATE_REFUND",
        "POST",
        "Refund a charge or payment intent",
    ),
    (
        "stripe",
        "STRIPE_LIST_CHARGES",
        "GET",
        "List recent charges",
    ),
    (
        "googlecalendar",
        "GOOGLECALENDAR_CREATE_EVENT",
        "POST",
        "Create a calendar event and invite attendees",
    ),
];

const DEMO: &[&str] = &[
    "email my boss the quarterly report",
    "open an issue about the login bug and post a message in the #eng channel",
    "refund the last payment of ACME",
    "delete the old mails",
    "put a team meeting in my calendar for Friday",
];

fn catalog() -> Vec<ToolSpec> {
    let rules = RiskRules::default();
    CATALOG
        .iter()
        .map(|&(kit, slug, verb, description)| {
            let mut spec = ToolSpec::new(
                slug,
                description,
                json!({"type": "object", "properties": {}}),
            )
            .in_toolkit(kit);
            spec.requires_connection = true;
            rules
                .assess(&RiskInput {
                    slug,
                    name: slug,
                    toolkit: Some(kit),
                    tags: &[],
                    http_method: Some(verb),
                })
                .apply(&mut spec);
            spec
        })
        .collect()
}

/// Members (not staff) never see calendar tools: an exposure policy on top of the gate.
fn calendar_for_staff() -> Policy {
    let condition = |field: &str, value: &str| {
        RuleNode::Condition(Condition {
            field: field.into(),
            operator: Operator::Equals,
            value: json!(value),
        })
    };
    Policy {
        id: "calendar-staff-only".into(),
        name: "Calendar tools for staff only".into(),
        description: "members book through their manager".into(),
        scope: PolicyScope::Global,
        scope_id: None,
        actions: vec![PolicyAction::ToolExposure],
        rule_expr: RuleExpr {
            conditions: vec![
                condition("tool.toolkit", "googlecalendar"),
                condition("subject.role", "member"),
            ],
            logic: Default::default(),
        },
        effect: Effect::Deny,
        modify: None,
        priority: 10,
        enabled: true,
    }
}

fn print_hits(label: &str, result: &SearchResult) {
    println!("{label}");
    if result.hits.is_empty() {
        println!("  (no tool the user may use fits)");
    }
    if let Some(spent) = &result.rerank_usage {
        println!(
            "  (rerank: {} input + {} output tokens on {})",
            spent.usage.input_tokens, spent.usage.output_tokens, spent.model
        );
    }
    for hit in &result.hits {
        let t = &hit.tool;
        let confirm = if t.requires_confirmation {
            "  (asks before running)"
        } else {
            ""
        };
        println!(
            "  {:<28} {:<7} risk {:<6} tags {:<12} score {:.3}{confirm}",
            hit.definition.name,
            t.toolkit.as_deref().unwrap_or("-"),
            t.risk_level.as_str(),
            t.tags.join(","),
            hit.score,
        );
    }
    println!();
}

fn connected(kits: &[&str]) -> Vec<Connection> {
    kits.iter()
        .map(|k| Connection {
            toolkit: (*k).into(),
            account_id: format!("ca_{k}"),
            active: true,
        })
        .collect()
}

#[tokio::main]
async fn main() -> logline_core::Result<()> {
    let policies = RulePolicyEngine::with_policies(vec![calendar_for_staff()]);
    let mut search =
        ToolSearch::new(ToolIndex::from_tools(catalog())).with_policy(Arc::new(policies));
    if std::env::var("OPENAI_API_KEY").is_ok_and(|k| !k.trim().is_empty()) {
        let llm = logline_openai::OpenAiProvider::from_env()?;
        let model = llm
            .config()
            .default_model()
            .unwrap_or("gpt-4.1-mini")
            .to_string();
        println!("rerank: LLM ({model}) over the Top-20\n");
        search = search.with_reranker(Arc::new(LlmReranker::new(
            Arc::new(llm),
            LlmRerankConfig {
                model,
                ..Default::default()
            },
        )));
    }
    let subject = Subject::tenant("acme")
        .with_user("dana")
        .with_role("member");
    let connections = connected(&["gmail", "slack", "github", "googlecalendar"]);
    // Sending is high risk: this deployment offers it (with confirmation) to its users.
    let rules = GateRules::default().max_risk(logline_core::tool::RiskLevel::High);

    let args: Vec<String> = std::env::args().skip(1).collect();
    let requests: Vec<String> = if args.is_empty() {
        DEMO.iter().map(|s| s.to_string()).collect()
    } else {
        vec![args.join(" ")]
    };
    for text in &requests {
        let request = SearchRequest::new(text.clone(), subject.clone())
            .gate(rules.clone())
            .connections(connections.clone())
            .top_n(5);
        print_hits(&format!("request: {text}"), &search.search(&request).await?);
    }

    // A router in front of the search: its intent and candidate apps steer the ranking
    // (intent → tags boost, candidate apps boost). Same words, two intents.
    for intent in ["list_issues", "create_issue"] {
        let request = SearchRequest::new("the GitHub issues about the login bug", subject.clone())
            .gate(rules.clone())
            .connections(connections.clone())
            .intent(intent)
            .candidate_apps(["github"])
            .top_n(3);
        let label =
            format!("request: the GitHub issues about the login bug   (router: intent `{intent}`, app github)");
        print_hits(&label, &search.search(&request).await?);
    }

    println!("never shown to this user:");
    for id in [
        "STRIPE_CREATE_REFUND",
        "GMAIL_DELETE_MESSAGE",
        "GITHUB_DELETE_REPOSITORY",
        "SLACK_ADMIN_INVITE_USER",
        "GOOGLECALENDAR_CREATE_EVENT",
    ] {
        match search
            .explain(id, &subject, rules.clone(), &connections)
            .await?
        {
            Ok(()) => println!("  {id:<28} allowed"),
            Err(reason) => println!("  {id:<28} {reason}"),
        }
    }
    Ok(())
}
