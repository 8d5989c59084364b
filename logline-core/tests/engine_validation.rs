//! Workflow validation reports every problem at once with the offending ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::Engine;
use logline_core::tool::ToolSpec;
use logline_core::workflow::{AnyRegistry, ValidationIssue};
use logline_core::Error;
use serde_json::json;

fn issues(v: serde_json::Value) -> Vec<ValidationIssue> {
    def(v).validate(&AnyRegistry)
}

#[test]
fn missing_entry_and_empty_graphs() {
    assert_eq!(
        issues(json!({"entry": "x", "nodes": []})),
        vec![ValidationIssue::NoNodes]
    );
    assert_eq!(
        issues(json!({"entry": "x", "nodes": [{"id": "a", "type": "static"}]})),
        vec![ValidationIssue::MissingEntry { entry: "x".into() }]
    );
}

#[test]
fn duplicate_ids_unknown_edges_and_routes() {
    let found = issues(json!({
        "entry": "a",
        "nodes": [
            {"id": "a", "type": "static"}, {"id": "a", "type": "static"},
            {"id": "r", "type": "router", "config": {"router_agent_id": "ag", "routes": [
                {"id": "x", "target_node": "ghost"}, {"id": "x", "target_node": "a"}]}}
        ],
        "edges": [
            {"from": "a", "to": "nowhere"}, {"from": "void", "to": "a"}, {"from": "a", "to": "r", "condition": "if ok"},
            {"from": "r", "to": "a", "condition": "not_a_route"}
        ]
    }));
    for want in [
        ValidationIssue::DuplicateNodeId {
            node_id: "a".into(),
        },
        ValidationIssue::UnknownEdgeTarget {
            edge: 0,
            node_id: "nowhere".into(),
        },
        ValidationIssue::UnknownEdgeSource {
            edge: 1,
            node_id: "void".into(),
        },
        ValidationIssue::UnknownRouteTarget {
            node_id: "r".into(),
            route_id: "x".into(),
            target: "ghost".into(),
        },
        ValidationIssue::DuplicateRouteId {
            node_id: "r".into(),
            route_id: "x".into(),
        },
        ValidationIssue::UnknownRoute {
            node_id: "r".into(),
            edge: 3,
            route_id: "not_a_route".into(),
        },
    ] {
        assert!(found.contains(&want), "missing {want:?} in {found:?}");
    }
}

#[test]
fn missing_config_ambiguous_edges_unreachable_and_unguarded_cycles() {
    let found = issues(json!({
        "entry": "a",
        "nodes": [
            {"id": "a", "type": "tool_node"}, {"id": "b", "type": "agent_node"}, {"id": "c", "type": "router"},
            {"id": "island", "type": "static"}, {"id": "d", "type": "static"}
        ],
        "edges": [
            {"from": "a", "to": "b"}, {"from": "a", "to": "c"},
            {"from": "b", "to": "d"}, {"from": "d", "to": "b"}
        ]
    }));
    for want in [
        ValidationIssue::MissingConfig {
            node_id: "a".into(),
            field: "tool_id".into(),
        },
        ValidationIssue::MissingConfig {
            node_id: "b".into(),
            field: "agent_id".into(),
        },
        ValidationIssue::MissingConfig {
            node_id: "c".into(),
            field: "router_agent_id".into(),
        },
        ValidationIssue::MissingConfig {
            node_id: "c".into(),
            field: "routes".into(),
        },
        ValidationIssue::AmbiguousEdges {
            node_id: "a".into(),
        },
        ValidationIssue::Unreachable {
            node_id: "island".into(),
        },
        ValidationIssue::UnguardedCycle {
            node_ids: vec!["b".into(), "d".into()],
        },
    ] {
        assert!(found.contains(&want), "missing {want:?} in {found:?}");
    }
}

#[test]
fn guarded_cycles_and_self_loops() {
    let guarded = issues(json!({
        "entry": "a",
        "nodes": [{"id": "a", "type": "static", "config": {"max_visits": 3}}, {"id": "b", "type": "static"}],
        "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "a", "condition": "if not done"}]
    }));
    assert!(guarded.is_empty(), "{guarded:?}");
    let self_loop = issues(json!({
        "entry": "a", "nodes": [{"id": "a", "type": "static"}], "edges": [{"from": "a", "to": "a", "condition": "again"}]
    }));
    assert_eq!(
        self_loop,
        vec![ValidationIssue::UnguardedCycle {
            node_ids: vec!["a".into()]
        }]
    );
}

#[tokio::test]
async fn registration_checks_tool_and_agent_ids() {
    let engine = Engine::builder().build().await.unwrap();
    engine
        .register_tools(&[ToolSpec::new("known.tool", "k", json!({"type": "object"}))])
        .await
        .unwrap();
    engine
        .register_agent(&Agent::new("agent.known", "x", ModelProfile::new("m")))
        .await
        .unwrap();
    let wf = workflow(
        "refs",
        json!({
            "entry": "a",
            "nodes": [
                {"id": "a", "type": "tool_node", "config": {"tool_id": "known.tool"}},
                {"id": "b", "type": "tool_node", "config": {"tool_id": "ghost.tool"}},
                {"id": "c", "type": "agent_node", "config": {"agent_id": "agent.ghost"}},
                {"id": "d", "type": "agent_node", "config": {"agent_id": "agent.known"}}
            ],
            "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "d"}]
        }),
    );
    let Err(Error::InvalidWorkflow(found)) = engine.register_workflow(&wf).await else {
        panic!("must fail")
    };
    assert_eq!(
        found,
        vec![
            ValidationIssue::UnknownTool {
                node_id: "b".into(),
                tool_id: "ghost.tool".into()
            },
            ValidationIssue::UnknownAgent {
                node_id: "c".into(),
                agent_id: "agent.ghost".into()
            },
        ]
    );
    let msg = engine.register_workflow(&wf).await.unwrap_err().to_string();
    assert!(
        msg.contains("ghost.tool") && msg.contains("agent.ghost"),
        "{msg}"
    );
    // Agents may only allow known tools.
    let bad = Agent::new("agent.bad", "x", ModelProfile::new("m")).with_tools(["nope"]);
    assert!(engine
        .register_agent(&bad)
        .await
        .unwrap_err()
        .to_string()
        .contains("nope"));
}

#[test]
fn definitions_round_trip_as_json() {
    let v = json!({
        "entry": "start",
        "nodes": [
            {"id": "start", "type": "static"},
            {"id": "r", "type": "router", "config": {"router_agent_id": "agent.router", "routes": [
                {"id": "hi", "condition": "if urgent", "target_node": "start"}]}}
        ],
        "edges": [{"from": "start", "to": "r"}]
    });
    let d = def(v.clone());
    assert_eq!(serde_json::to_value(&d).unwrap(), v);
    let bad =
        serde_json::from_value::<logline_core::workflow::WorkflowDefinition>(json!({"entry": 1}));
    assert!(bad.is_err());
}
