//! Fuzz targets for the catalog pages Composio sends (`GET /tools`, `/toolkits`,
//! `/connected_accounts`): mutated documented pages must parse to a typed error or to tools
//! whose conversion keeps its promises. Cases: `LOGLINE_FUZZ_CASES` (see
//! `logline_core::testing::fuzz`); run with `cargo test -p logline-composio --lib fuzz`.

use logline_core::testing::fuzz::{self, mangled_text, mutated};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};

use super::{convert_tool, Toolkit};
use crate::client::{ListEnvelope, WireAccount, WireTool, WireToolkit};
use crate::risk::RiskRules;

/// Default cases under `cargo test`.
const CASES: u32 = 256;

const WORDS: &[&str] = &[
    "items",
    "next_cursor",
    "slug",
    "name",
    "description",
    "human_description",
    "toolkit",
    "input_parameters",
    "output_parameters",
    "tags",
    "no_auth",
    "version",
    "is_deprecated",
    "meta",
    "categories",
    "tools_count",
    "updated_at",
    "auth_schemes",
    "status",
    "is_disabled",
    "ACTIVE",
    "readOnlyHint",
    "destructiveHint",
    "GMAIL_SEND_EMAIL",
    "gmail",
    "2025-01-01T00:00:00Z",
    "not a date",
    "type",
    "object",
    "",
];

fn page_seeds() -> Vec<Value> {
    vec![
        json!({"items": [
            {"slug": "GMAIL_SEND_EMAIL", "name": "Send email", "description": "Sends.",
             "toolkit": {"slug": "gmail", "name": "Gmail"},
             "input_parameters": {"type": "object", "properties": {"to": {"type": "string"}},
                                  "required": ["to"]},
             "output_parameters": {"type": "object", "properties": {"data": {}}},
             "tags": ["openWorldHint"], "no_auth": false, "version": "20250101_00",
             "is_deprecated": false},
            {"slug": "HACKERNEWS_GET_USER", "name": "Get user", "human_description": "A user.",
             "toolkit": {"slug": "hackernews"}, "tags": ["readOnlyHint", "idempotentHint"],
             "no_auth": true}
        ], "next_cursor": "abc"}),
        json!({"items": [
            {"slug": "gmail", "name": "Gmail", "auth_schemes": ["OAUTH2"], "no_auth": false,
             "meta": {"description": "Mail", "categories": [{"name": "email"}],
                      "tools_count": 23.0, "updated_at": "2025-01-01T00:00:00Z"}}
        ], "next_cursor": null}),
        json!({"items": [
            {"id": "ca_1", "status": "ACTIVE", "is_disabled": false, "toolkit": {"slug": "gmail"}}
        ]}),
    ]
}

fn page() -> BoxedStrategy<String> {
    let seeds = page_seeds();
    let texts: Vec<String> = seeds.iter().map(Value::to_string).collect();
    prop_oneof![
        4 => mutated(seeds, WORDS).prop_map(|v| v.to_string()),
        1 => mangled_text(texts),
    ]
    .boxed()
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if ok {
        Ok(())
    } else {
        Err(TestCaseError::fail(what()))
    }
}

#[test]
fn catalog_pages() {
    let rules = RiskRules::default();
    fuzz::run("catalog_pages", CASES, page(), |body| {
        let toolkits: Vec<Toolkit> = serde_json::from_str::<ListEnvelope<WireToolkit>>(&body)
            .map(|page| page.items.into_iter().map(Toolkit::from_wire).collect())
            .unwrap_or_default();
        for kit in &toolkits {
            let _ = kit.fingerprint();
            check(!kit.name.is_empty() || kit.slug.is_empty(), || {
                format!("toolkit without a name: {kit:?}")
            })?;
        }
        let _ = serde_json::from_str::<ListEnvelope<WireAccount>>(&body);
        let Ok(tools) = serde_json::from_str::<ListEnvelope<WireTool>>(&body) else {
            return Ok(());
        };
        for wire in tools.items {
            let (slug, tags) = (wire.slug.clone(), wire.tags.clone());
            let kit = toolkits.iter().find(|k| k.slug == wire.toolkit.slug);
            let converted = convert_tool(wire, "composio", &rules, kit);
            let spec = &converted.spec;
            check(
                spec.id == slug && !spec.name.is_empty() || slug.is_empty(),
                || format!("{slug}: {spec:?}"),
            )?;
            check(spec.input_schema.is_object(), || {
                format!("input schema is no object: {spec:?}")
            })?;
            check(
                tags.iter()
                    .all(|t| spec.tags.iter().any(|x| x.eq_ignore_ascii_case(t))),
                || format!("tags {tags:?} lost: {spec:?}"),
            )?;
        }
        Ok(())
    });
}
