//! Apps end to end on the in-memory backends: the blueprint's manifest imports and its
//! action runs the golden workflow; invalid manifests are refused with located errors;
//! scopes hold at call time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use logline_core::app::{ImportOutcome, Manifest, ManifestError};
use logline_core::engine::{Engine, Principal};
use logline_core::memory::MemoryRecallStore;
use logline_core::recall::Recall;
use logline_core::run::RunStatus;
use logline_core::testing::{golden, FakeEmbedder};
use logline_core::ErrorKind;
use serde_json::{json, Value};

const BLUEPRINT: &str = include_str!("../../examples/manifests/guest_support_console.json");

async fn engine() -> Engine {
    let recall = Recall::new(
        Arc::new(MemoryRecallStore::new()),
        Arc::new(FakeEmbedder::new(64)),
    );
    let engine = golden::with_tool(Engine::builder())
        .default_llm(Arc::new(golden::scripted_llm()))
        .recall(recall)
        .build()
        .await
        .unwrap();
    golden::install(&engine, "m").await.unwrap();
    engine
}

fn context() -> Value {
    json!({"user_id": "user:dan", "tenant_id": "tenant:voulezvous", "hotel_id": "VV-LISBON"})
}

#[tokio::test]
async fn the_blueprint_manifest_imports_and_its_action_runs_the_golden_workflow() {
    let engine = engine().await;
    let report = engine.import_app_text(BLUEPRINT).await.unwrap();
    assert_eq!(report.outcome, ImportOutcome::Created);
    assert_eq!(
        (report.app_id.as_str(), report.version.as_str()),
        ("guest_support_console", "1.0.0")
    );
    let again = engine.import_app_text(BLUEPRINT).await.unwrap();
    assert_eq!(again.outcome, ImportOutcome::Unchanged);

    let out = engine
        .run_action(
            "guest_support_console",
            "triage_ticket",
            json!({"hotel_id": "VV-LISBON"}),
            context(),
        )
        .await
        .unwrap();
    assert_eq!(out.status, RunStatus::Completed);
    let result = out.result.unwrap();
    assert_eq!(result["summary"], "4 tickets triaged");
    assert_eq!(result["tickets"][0]["id"], "T-1");
    assert_eq!(result["tickets"][0]["priority"], "urgent");
    assert_eq!(result["tickets"][0]["action"], "escalate_to_human");

    let run = engine.get_run(out.run_id).await.unwrap();
    assert_eq!(run.input, json!({"hotel_id": "VV-LISBON"}));
    assert_eq!(run.subject.tenant_id, "tenant:voulezvous");
    assert_eq!(run.subject.user_id.as_deref(), Some("user:dan"));
    assert_eq!(run.subject.app_id.as_deref(), Some("guest_support_console"));
    assert_eq!(run.app_action_id.as_deref(), Some("triage_ticket"));
    let events = engine.events(out.run_id).await.unwrap();
    assert!(golden::has_minimum_events(&events));
}

#[tokio::test]
async fn the_yaml_manifest_is_a_newer_version_of_the_same_app() {
    let engine = engine().await;
    engine.import_app_text(BLUEPRINT).await.unwrap();
    let yaml = include_str!("../../examples/manifests/guest_support_console.yaml");
    // Its second workflow is not registered yet: located error, nothing stored.
    let err = engine.import_app_text(yaml).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("app.workflows[1].workflow_ref"),
        "{err}"
    );
    assert_eq!(
        engine
            .apps()
            .get_app("guest_support_console")
            .await
            .unwrap()
            .version(),
        "1.0.0"
    );
    let mut wf = golden::workflow().unwrap();
    wf.id = "guest_memory_v1".into();
    engine.register_workflow(&wf).await.unwrap();
    let report = engine.import_app_text(yaml).await.unwrap();
    assert_eq!(report.outcome, ImportOutcome::Updated);
    assert_eq!(report.version, "1.1.0");
    // The older manifest can no longer replace it.
    let err = engine.import_app_text(BLUEPRINT).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

/// A manifest with one thing changed by `edit`.
fn edited(edit: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(BLUEPRINT).unwrap();
    edit(&mut v);
    v.to_string()
}

fn issue_paths(e: &ManifestError) -> Vec<&str> {
    e.issues.iter().map(|i| i.path.as_str()).collect()
}

#[test]
fn each_invalid_manifest_names_where_it_is_wrong() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "format 2",
            edited(|v| v["version"] = json!("2.0.0")),
            "version",
        ),
        (
            "not semver",
            edited(|v| v["version"] = json!("1.0")),
            "version",
        ),
        (
            "bad app id",
            edited(|v| v["app"]["id"] = json!("Guest Console")),
            "app.id",
        ),
        (
            "no name",
            edited(|v| {
                v["app"].as_object_mut().unwrap().remove("name");
            }),
            "app",
        ),
        (
            "empty name",
            edited(|v| v["app"]["name"] = json!(" ")),
            "app.name",
        ),
        (
            "unknown field",
            edited(|v| v["app"]["scopes"]["tool"] = json!([])),
            "app.scopes.tool",
        ),
        (
            "tools not a list",
            edited(|v| v["app"]["scopes"]["tools"] = json!("x")),
            "app.scopes.tools",
        ),
        (
            "blank tool",
            edited(|v| v["app"]["scopes"]["tools"][1] = json!("")),
            "app.scopes.tools[1]",
        ),
        (
            "memory kind",
            edited(|v| v["app"]["scopes"]["memory"] = json!(["everyone"])),
            "app.scopes.memory[0]",
        ),
        (
            "memory access",
            edited(|v| v["app"]["scopes"]["memory"] = json!(["user:admin"])),
            "app.scopes.memory[0]",
        ),
        (
            "mode",
            edited(|v| v["app"]["workflows"][0]["default_mode"] = json!("sometimes")),
            "app.workflows[0].default_mode",
        ),
        (
            "no workflow_ref",
            edited(|v| {
                v["app"]["workflows"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("workflow_ref");
            }),
            "app.workflows[0]",
        ),
        (
            "unknown alias",
            edited(|v| v["app"]["actions"][0]["workflow_id"] = json!("nope")),
            "app.actions[0].workflow_id",
        ),
        (
            "duplicate action",
            edited(|v| {
                let a = v["app"]["actions"][0].clone();
                v["app"]["actions"].as_array_mut().unwrap().push(a);
            }),
            "app.actions[1].id",
        ),
        (
            "bad reference",
            edited(|v| {
                v["app"]["actions"][0]["input_mapping"]["hotel_id"] = json!("$input.hotel_id")
            }),
            "app.actions[0].input_mapping.hotel_id",
        ),
        (
            "nested reference",
            edited(|v| {
                v["app"]["actions"][0]["input_mapping"]["guest"] =
                    json!({"rooms": ["$event.room", "$evnt.x"]})
            }),
            "app.actions[0].input_mapping.guest.rooms[1]",
        ),
        (
            "mapping not an object",
            edited(|v| v["app"]["actions"][0]["input_mapping"] = json!(["x"])),
            "app.actions[0].input_mapping",
        ),
        ("cut short", "{\"version\": ".to_string(), "version"),
        ("not a mapping", "[1, 2]".to_string(), "."),
        (
            "unknown field with an empty name",
            edited(|v| v[""] = json!(null)),
            ".",
        ),
    ];
    for (name, text, path) in cases {
        let err = Manifest::parse(&text).expect_err(name);
        assert!(
            err.has_path(path),
            "{name}: expected an issue at `{path}`, got {:?}",
            err.issues
        );
        let core: logline_core::Error = err.into();
        assert_eq!(core.kind(), ErrorKind::InvalidInput, "{name}");
    }
    // Several problems are reported together.
    let text = edited(|v| {
        v["app"]["id"] = json!("X");
        v["app"]["actions"][0]["workflow_id"] = json!("nope");
    });
    let err = Manifest::parse(&text).unwrap_err();
    assert_eq!(
        issue_paths(&err),
        vec!["app.id", "app.actions[0].workflow_id"]
    );
    // YAML errors are located the same way.
    let yaml = "version: \"1.0.0\"\napp:\n  id: a\n  name: A\n  scopes:\n    tools: 3\n";
    let err = Manifest::from_yaml(yaml).unwrap_err();
    assert!(err.has_path("app.scopes.tools"), "{:?}", err.issues);
}

#[tokio::test]
async fn import_refuses_unknown_workflows_and_actions_need_their_inputs() {
    let engine = engine().await;
    let text = edited(|v| v["app"]["workflows"][0]["workflow_ref"] = json!("no_such_flow"));
    let err = engine.import_app_text(&text).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("app.workflows[0].workflow_ref"),
        "{err}"
    );
    assert_eq!(
        engine
            .apps()
            .get_app("guest_support_console")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );

    engine.import_app_text(BLUEPRINT).await.unwrap();
    let err = engine
        .run_action(
            "guest_support_console",
            "triage_ticket",
            json!({}),
            json!({"tenant_id": "t1"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("hotel_id") && err.to_string().contains("$context.hotel_id"),
        "{err}"
    );
    let err = engine
        .run_action("guest_support_console", "nope", json!({}), context())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = engine
        .run_action(
            "guest_support_console",
            "triage_ticket",
            json!({}),
            json!({"hotel_id": "x"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "a tenant is required");
}

#[tokio::test]
async fn a_tool_outside_the_app_scopes_is_denied_at_call_time() {
    let engine = engine().await;
    let text = edited(|v| v["app"]["scopes"]["tools"] = json!(["natural_language_db_read"]));
    engine.import_app_text(&text).await.unwrap();
    let out = engine
        .run_action(
            "guest_support_console",
            "triage_ticket",
            json!({}),
            context(),
        )
        .await
        .unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    let run = engine.get_run(out.run_id).await.unwrap();
    let error = run.error.unwrap();
    assert_eq!(error["kind"], "policy_denied");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("outside the scopes"),
        "{error}"
    );
    let events = engine.events(out.run_id).await.unwrap();
    assert!(!events.iter().any(|e| e.kind.as_str() == "tool_call"));
}

#[tokio::test]
async fn the_scoped_engine_runs_actions_as_its_principal() {
    let engine = engine().await;
    engine.import_app_text(BLUEPRINT).await.unwrap();
    let scoped = engine.scoped(Principal::user("tenant:a", "alice"));
    let out = scoped
        .run_action(
            "guest_support_console",
            "triage_ticket",
            json!({}),
            json!({"tenant_id": "tenant:b", "user_id": "mallory", "hotel_id": "VV-PORTO"}),
        )
        .await
        .unwrap();
    assert_eq!(out.status, RunStatus::Completed);
    let run = scoped.get_run(out.run_id).await.unwrap();
    assert_eq!(run.subject.tenant_id, "tenant:a");
    assert_eq!(run.subject.user_id.as_deref(), Some("alice"));
    let other = engine.scoped(Principal::user("tenant:b", "bob"));
    assert_eq!(
        other.get_run(out.run_id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}
