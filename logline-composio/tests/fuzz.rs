//! Fuzz targets for the Composio risk rules: rules read from JSON, and the assessment of
//! tools with remote hint tags. The catalog pages are fuzzed by the unit module
//! `catalog::fuzz` (their wire types are private). Cases per target: `LOGLINE_FUZZ_CASES`
//! (see `logline_core::testing::fuzz`).

use std::collections::BTreeSet;

use logline_composio::{RiskCategory, RiskInput, RiskRules};
use logline_core::testing::fuzz::{self, mutated, text};
use logline_core::tool::RiskLevel;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Default cases per target under `cargo test`.
const CASES: u32 = 256;

const RULE_WORDS: &[&str] = &[
    "words",
    "hint_tags",
    "http_methods",
    "effects",
    "unknown",
    "overrides",
    "risk",
    "requires_confirmation",
    "side_effect",
    "categories",
    "read",
    "write",
    "send",
    "delete",
    "money",
    "admin",
    "low",
    "medium",
    "high",
    "GET",
    "DELETE",
    "destructivehint",
    "readonlyhint",
    "GMAIL_SEND_EMAIL",
    "send",
    "email",
];

const HINTS: &[&str] = &[
    "readOnlyHint",
    "destructiveHint",
    "idempotentHint",
    "openWorldHint",
    "read",
    "send",
    "money",
    "admin",
    "READONLYHINT",
    "",
];

const SLUG_WORDS: &[&str] = &[
    "GMAIL",
    "SEND",
    "EMAIL",
    "LIST",
    "GET",
    "DELETE",
    "CREATE",
    "REFUND",
    "STRIPE",
    "MEMBERS",
    "FROBNICATE",
    "emails",
    "deleted",
    "sending",
    "Get",
    "user",
    "",
];

fn slug() -> BoxedStrategy<String> {
    proptest::collection::vec(text(SLUG_WORDS), 0..5)
        .prop_map(|w| w.join("_"))
        .boxed()
}

/// A tool as a catalog describes it.
#[derive(Debug, Clone)]
struct Tool {
    slug: String,
    name: String,
    toolkit: Option<String>,
    tags: Vec<String>,
    method: Option<String>,
}

impl Tool {
    fn input(&self) -> RiskInput<'_> {
        RiskInput {
            slug: &self.slug,
            name: &self.name,
            toolkit: self.toolkit.as_deref(),
            tags: &self.tags,
            http_method: self.method.as_deref(),
        }
    }
}

fn tool() -> BoxedStrategy<Tool> {
    (
        slug(),
        slug(),
        proptest::option::of(text(SLUG_WORDS)),
        proptest::collection::vec(text(HINTS), 0..4),
        proptest::option::of(text(&[
            "GET", "get", "POST", "DELETE", "PATCH", "HEAD", "BREW",
        ])),
    )
        .prop_map(|(slug, name, toolkit, tags, method)| Tool {
            slug,
            name: name.replace('_', " "),
            toolkit,
            tags,
            method,
        })
        .boxed()
}

/// The rules as JSON, mutated, plus their text mangled.
fn rules_json() -> BoxedStrategy<String> {
    let seed =
        serde_json::to_value(RiskRules::default()).unwrap_or_else(|e| panic!("default rules: {e}"));
    prop_oneof![
        4 => mutated(vec![seed.clone()], RULE_WORDS).prop_map(|v| v.to_string()),
        1 => fuzz::mangled_text(vec![seed.to_string()]),
    ]
    .boxed()
}

/// Hints never lower the risk or drop the confirmation the slug and verb give; only where
/// they say nothing (the result without hints is the `unknown` category) may a read hint
/// decide.
fn check_hints_only_raise(rules: &RiskRules, tool: &Tool) -> Result<(), TestCaseError> {
    let hinted = rules.assess(&tool.input());
    let bare_tool = Tool {
        tags: Vec::new(),
        ..tool.clone()
    };
    let bare = rules.assess(&bare_tool.input());
    for t in &tool.tags {
        if !hinted.tags.iter().any(|x| x.eq_ignore_ascii_case(t)) {
            return Err(TestCaseError::fail(format!("tag {t:?} lost: {hinted:?}")));
        }
    }
    if hinted.categories.is_empty() {
        return Err(TestCaseError::fail(format!("no category: {hinted:?}")));
    }
    let silent_slug = bare.categories == BTreeSet::from([rules.unknown]);
    let lowered = hinted.risk_level < bare.risk_level
        || (bare.requires_confirmation && !hinted.requires_confirmation);
    if lowered && !silent_slug {
        return Err(TestCaseError::fail(format!(
            "hints lowered {bare:?} to {hinted:?}"
        )));
    }
    Ok(())
}

#[test]
fn risk_rules_from_json() {
    fuzz::run(
        "risk_rules_from_json",
        CASES,
        (rules_json(), tool()),
        |(json, tool)| match RiskRules::from_json(&json) {
            Ok(rules) => check_hints_only_raise(&rules, &tool),
            Err(e) if e.kind() == logline_core::ErrorKind::InvalidInput => Ok(()),
            Err(e) => Err(TestCaseError::fail(format!("{e:?}"))),
        },
    );
}

/// With the default rules, a slug with a verb keeps at least that verb's risk whatever the
/// hints say (`GMAIL_SEND_EMAIL` tagged `readOnlyHint` stays a confirmed send).
#[test]
fn hints_never_lower_a_verb() {
    const VERBS: &[(&str, RiskLevel)] = &[
        ("SEND", RiskLevel::High),
        ("DELETE", RiskLevel::High),
        ("CREATE", RiskLevel::Medium),
        ("UPDATE", RiskLevel::Medium),
        ("POST", RiskLevel::High),
    ];
    let rules = RiskRules::default();
    let input = (
        proptest::sample::select(VERBS),
        slug(),
        proptest::collection::vec(text(HINTS), 0..4),
    );
    fuzz::run(
        "hints_never_lower_a_verb",
        CASES,
        input,
        |((verb, floor), noun, tags)| {
            let slug = format!("GMAIL_{verb}_{noun}");
            let a = rules.assess(&RiskInput {
                slug: &slug,
                toolkit: Some("gmail"),
                tags: &tags,
                ..Default::default()
            });
            if a.risk_level < floor || !a.requires_confirmation {
                return Err(TestCaseError::fail(format!("{slug} {tags:?}: {a:?}")));
            }
            if a.categories.contains(&RiskCategory::Read) {
                return Err(TestCaseError::fail(format!(
                    "read kept beside {verb}: {a:?}"
                )));
            }
            check_hints_only_raise(
                &rules,
                &Tool {
                    slug,
                    name: String::new(),
                    toolkit: Some("gmail".into()),
                    tags,
                    method: None,
                },
            )
        },
    );
}
