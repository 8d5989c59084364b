//! Fuzz targets for app manifests (JSON, YAML and JSON values, mutated from the blueprint's
//! manifest) and action input mappings: no panic; a manifest that parses passes validation
//! and round-trips; a bad one names where it is wrong.
#![allow(clippy::expect_used)]

use logline_core::app::{build_input, Manifest};
use logline_core::testing::fuzz::{self, json, mangled_text, mutated};
use proptest::test_runner::TestCaseError;
use serde_json::Value;

const CASES: u32 = 256;

const WORDS: &[&str] = &[
    "version",
    "app",
    "id",
    "name",
    "scopes",
    "tools",
    "memory",
    "external",
    "workflows",
    "workflow_ref",
    "label",
    "default_mode",
    "draft",
    "auto",
    "actions",
    "workflow_id",
    "input_mapping",
    "$context.hotel_id",
    "$event.a.b",
    "$event.x?",
    "$input.x",
    "$$lit",
    "user",
    "tenant:read",
    "app:write",
    "1.0.0",
    "2.0.0",
    "visibility",
    "org",
];

const BLUEPRINT: &str = include_str!("../../examples/manifests/guest_support_console.json");
const YAML: &str = include_str!("../../examples/manifests/guest_support_console.yaml");

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if ok {
        Ok(())
    } else {
        Err(TestCaseError::fail(what()))
    }
}

fn judged(parsed: Result<Manifest, logline_core::app::ManifestError>) -> Result<(), TestCaseError> {
    match parsed {
        Ok(m) => {
            check(m.validate().is_ok(), || {
                "a parsed manifest fails validation".into()
            })?;
            let back = serde_json::to_value(&m).map_err(|e| TestCaseError::fail(e.to_string()))?;
            check(Manifest::from_value(back).as_ref() == Ok(&m), || {
                "round trip".into()
            })
        }
        Err(e) => check(
            !e.issues.is_empty() && e.issues.iter().all(|i| !i.path.is_empty()),
            || format!("unlocated error {e:?}"),
        ),
    }
}

#[test]
fn manifest_values() {
    let seed: Value = serde_json::from_str(BLUEPRINT).expect("blueprint");
    fuzz::run(
        "manifest_values",
        CASES,
        mutated(vec![seed], WORDS),
        |doc| judged(Manifest::from_value(doc)),
    );
}

#[test]
fn manifest_text() {
    let seeds = vec![BLUEPRINT.to_string(), YAML.to_string()];
    fuzz::run("manifest_text", CASES, mangled_text(seeds), |text| {
        judged(Manifest::parse(&text))?;
        judged(Manifest::from_yaml(&text))
    });
}

#[test]
fn input_mappings() {
    fuzz::run(
        "input_mappings",
        CASES,
        (json(WORDS), json(WORDS), json(WORDS)),
        |(mapping, event, context)| {
            let Value::Object(m) = mapping else {
                return Ok(());
            };
            match build_input(&m, &event, &context) {
                Ok(input) => check(
                    input.as_object().is_some_and(|o| o.len() == m.len()),
                    || format!("{m:?} built {input}"),
                ),
                Err(e) => check(e.kind() == logline_core::ErrorKind::InvalidInput, || {
                    e.to_string()
                }),
            }
        },
    );
}
