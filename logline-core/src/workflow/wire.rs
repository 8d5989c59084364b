//! The wire forms of nodes, edges and definitions (the JSON accepted since the first version).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    AgentNode, ChatNode, EdgeGuard, HumanGateNode, NodeKind, NodeType, RouterNode, StaticNode,
    ToolNode,
};

#[derive(Serialize, Deserialize)]
pub(super) struct Node {
    id: String,
    #[serde(rename = "type")]
    node_type: NodeType,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    config: Map<String, Value>,
}

/// Fields every node kind accepts in its `config`.
#[derive(Serialize, Deserialize)]
struct Common {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_visits: Option<u32>,
}

fn kind_of<T: serde::de::DeserializeOwned>(
    config: &Value,
    build: fn(T) -> NodeKind,
) -> serde_json::Result<NodeKind> {
    T::deserialize(config).map(build)
}

impl TryFrom<Node> for super::WorkflowNode {
    type Error = String;

    fn try_from(n: Node) -> Result<Self, String> {
        let c = &Value::Object(n.config);
        let kind = match n.node_type {
            NodeType::Static => kind_of(c, NodeKind::Static),
            NodeType::ToolNode => kind_of(c, NodeKind::Tool),
            NodeType::AgentNode => kind_of(c, NodeKind::Agent),
            NodeType::Router => kind_of(c, NodeKind::Router),
            NodeType::HumanGate => kind_of(c, NodeKind::HumanGate),
            NodeType::Chat => kind_of(c, NodeKind::Chat),
        };
        let describe =
            |e: serde_json::Error| format!("{} `{}`: config: {e}", n.node_type.as_str(), n.id);
        let kind = kind.map_err(describe)?;
        let common = Common::deserialize(c).map_err(describe)?;
        Ok(super::WorkflowNode {
            id: n.id,
            kind,
            input: common.input,
            max_visits: common.max_visits,
        })
    }
}

fn fields<T: Serialize>(value: &T) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

impl From<super::WorkflowNode> for Node {
    fn from(n: super::WorkflowNode) -> Self {
        let node_type = n.node_type();
        let mut config = match &n.kind {
            NodeKind::Static(k) => fields::<StaticNode>(k),
            NodeKind::Tool(k) => fields::<ToolNode>(k),
            NodeKind::Agent(k) => fields::<AgentNode>(k),
            NodeKind::Router(k) => fields::<RouterNode>(k),
            NodeKind::HumanGate(k) => fields::<HumanGateNode>(k),
            NodeKind::Chat(k) => fields::<ChatNode>(k),
        };
        config.extend(fields(&Common {
            input: n.input,
            max_visits: n.max_visits,
        }));
        Node {
            id: n.id,
            node_type,
            config,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct Edge {
    from: String,
    to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    condition: Option<String>,
}

impl From<Edge> for super::WorkflowEdge {
    fn from(e: Edge) -> Self {
        let guard = match (e.route, e.condition) {
            (Some(r), _) => Some(EdgeGuard::Route(r)),
            (None, Some(c)) => Some(EdgeGuard::Condition(c)),
            (None, None) => None,
        };
        super::WorkflowEdge {
            from: e.from,
            to: e.to,
            guard,
        }
    }
}

impl From<super::WorkflowEdge> for Edge {
    fn from(e: super::WorkflowEdge) -> Self {
        let (route, condition) = match e.guard {
            Some(EdgeGuard::Route(r)) => (Some(r), None),
            Some(EdgeGuard::Condition(c)) => (None, Some(c)),
            None => (None, None),
        };
        Edge {
            from: e.from,
            to: e.to,
            route,
            condition,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct Definition {
    entry: String,
    nodes: Vec<super::WorkflowNode>,
    #[serde(default)]
    edges: Vec<super::WorkflowEdge>,
    #[serde(default)]
    condition_agent_id: Option<String>,
}

impl From<Definition> for super::WorkflowDefinition {
    /// A `condition` on an edge leaving a router names one of its routes.
    fn from(d: Definition) -> Self {
        let routers: std::collections::HashSet<&str> = d
            .nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Router(_)))
            .map(|n| n.id.as_str())
            .collect();
        let edges = d
            .edges
            .into_iter()
            .map(|mut e| {
                if routers.contains(e.from.as_str()) {
                    e.guard = match e.guard.take() {
                        Some(EdgeGuard::Condition(c)) => Some(EdgeGuard::Route(c)),
                        other => other,
                    };
                }
                e
            })
            .collect();
        super::WorkflowDefinition {
            entry: d.entry,
            nodes: d.nodes,
            edges,
            condition_agent_id: d.condition_agent_id,
        }
    }
}
