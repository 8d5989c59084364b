//! Workflow validation reports every problem at once with the offending ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::Engine;
use logline_core::tool::ToolSpec;
use logline_core::workflow::{
    AnyRegistry, EdgeGuard, NodeKind, ValidationIssue, WorkflowDefinition,
};
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
            {"id": "a", "type": "tool_node", "config": {"tool_id": "t"}},
            {"id": "b", "type": "agent_node", "config": {"agent_id": "ag"}},
            {"id": "c", "type": "router", "config": {"router_agent_id": "ag", "routes": []}},
            {"id": "island", "type": "static"}, {"id": "d", "type": "static"}
        ],
        "edges": [
            {"from": "a", "to": "b"}, {"from": "a", "to": "c"},
            {"from": "b", "to": "d"}, {"from": "d", "to": "b"}
        ]
    }));
    for want in [
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
fn a_node_without_its_required_config_is_a_parse_error_naming_its_path() {
    for (node, field) in [
        (json!({"id": "a", "type": "tool_node"}), "tool_id"),
        (
            json!({"id": "a", "type": "agent_node", "config": {}}),
            "agent_id",
        ),
        (
            json!({"id": "a", "type": "router", "config": {"routes": []}}),
            "router_agent_id",
        ),
    ] {
        let err = WorkflowDefinition::from_json(json!({
            "entry": "s", "nodes": [{"id": "s", "type": "static"}, node]
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("nodes[1]"), "{err}");
        assert!(err.contains(&format!("`{field}`")), "{err}");
    }
    let err = WorkflowDefinition::from_json(json!({
        "entry": "s", "nodes": [{"id": "s", "type": "no_such_type"}]
    }))
    .unwrap_err()
    .to_string();
    assert!(err.contains("nodes[0]"), "{err}");
}

#[test]
fn legacy_json_keeps_its_meaning_and_round_trips() {
    let v = json!({
        "entry": "r",
        "nodes": [
            {"id": "r", "type": "router", "config": {"router_agent_id": "ag", "max_visits": 2,
              "routes": [{"id": "go", "target_node": "a"}]}},
            {"id": "a", "type": "tool_node", "config": {"tool_id": "t", "input": {"x": "$nodes.r.route"}}},
            {"id": "b", "type": "static"}
        ],
        "edges": [{"from": "r", "to": "a", "condition": "go"}, {"from": "a", "to": "b", "condition": "if ok"}]
    });
    let d = WorkflowDefinition::from_json(v).unwrap();
    assert_eq!(d.edges[0].guard, Some(EdgeGuard::Route("go".into())));
    assert_eq!(d.edges[1].guard, Some(EdgeGuard::Condition("if ok".into())));
    assert_eq!(d.nodes[0].max_visits, Some(2));
    assert!(matches!(&d.nodes[1].kind, NodeKind::Tool(t) if t.tool_id == "t"));
    assert_eq!(
        d.referenced_outputs().into_iter().collect::<Vec<_>>(),
        vec!["r"]
    );
    let again = WorkflowDefinition::from_json(serde_json::to_value(&d).unwrap()).unwrap();
    assert_eq!(again, d);
}

#[test]
fn templates_may_only_read_nodes_that_exist() {
    let found = issues(json!({
        "entry": "a",
        "nodes": [{"id": "a", "type": "static", "config": {"output": {"x": "$nodes.ghost.y"}}}]
    }));
    assert_eq!(
        found,
        vec![ValidationIssue::UnknownNodeReference {
            node_id: "a".into(),
            target: "ghost".into()
        }]
    );
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
