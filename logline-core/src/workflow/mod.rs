//! Workflow definitions: typed nodes and guarded edges, parsed from JSON, and their validation.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Node types of the workflow spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeType {
    /// Deterministic transform, no tools or agents.
    Static,
    /// Calls one tool.
    ToolNode,
    /// Calls one agent (LLM tool loop).
    AgentNode,
    /// An agent picks one of the routes.
    Router,
    /// Pauses for human approval.
    HumanGate,
    /// A chat turn: context, router, tool search, executor, confirmation.
    Chat,
}

impl NodeType {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Static => "static",
            NodeType::ToolNode => "tool_node",
            NodeType::AgentNode => "agent_node",
            NodeType::Router => "router",
            NodeType::HumanGate => "human_gate",
            NodeType::Chat => "chat",
        }
    }

    /// Parses [`NodeType::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "static" => NodeType::Static,
            "tool_node" => NodeType::ToolNode,
            "agent_node" => NodeType::AgentNode,
            "router" => NodeType::Router,
            "human_gate" => NodeType::HumanGate,
            "chat" => NodeType::Chat,
            _ => return None,
        })
    }
}

/// One route of a router node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Route id the router agent answers with.
    pub id: String,
    /// Natural-language condition shown to the router agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Node to go to.
    pub target_node: String,
}

/// A `static` node: a deterministic transform.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StaticNode {
    /// Output template (same syntax as the input template). Default: the input unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Name of a host-registered static handler (takes precedence over `output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
}

/// A `tool_node`: calls one tool with the node input as arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolNode {
    /// Tool to call.
    pub tool_id: String,
    /// Timeout override in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// An `agent_node`: runs one agent's tool loop on the node input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentNode {
    /// Agent to run.
    pub agent_id: String,
}

/// A `router`: an agent picks one of the routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterNode {
    /// Agent that picks the route.
    pub router_agent_id: String,
    /// The routes (at least one).
    pub routes: Vec<Route>,
    /// Attempts to get a valid choice from the agent (default: the engine's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

/// A `human_gate`: the run pauses until a person approves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HumanGateNode {
    /// What the approver is asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The role an approver needs; default: any of the engine's approver roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_role: Option<String>,
    /// Whether the run's own subject user may not approve the gate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forbid_self_approval: bool,
}

/// What a node does; each kind carries exactly its own configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// Deterministic transform.
    Static(StaticNode),
    /// One tool call.
    Tool(ToolNode),
    /// One agent.
    Agent(AgentNode),
    /// An agent picks a route.
    Router(RouterNode),
    /// Pause for approval.
    HumanGate(HumanGateNode),
    /// One chat turn.
    Chat(ChatNode),
}

impl NodeKind {
    /// The node type tag.
    pub fn node_type(&self) -> NodeType {
        match self {
            NodeKind::Static(_) => NodeType::Static,
            NodeKind::Tool(_) => NodeType::ToolNode,
            NodeKind::Agent(_) => NodeType::AgentNode,
            NodeKind::Router(_) => NodeType::Router,
            NodeKind::HumanGate(_) => NodeType::HumanGate,
            NodeKind::Chat(_) => NodeType::Chat,
        }
    }
}

/// A node of the graph.
///
/// On the wire: `{"id", "type", "config"}`, where `config` holds the kind's fields plus the
/// common `input` template and `max_visits` guard. A missing required field of the kind is a
/// parse error that names the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "wire::Node", into = "wire::Node")]
pub struct WorkflowNode {
    /// Unique id within the workflow.
    pub id: String,
    /// What the node does.
    pub kind: NodeKind,
    /// Input template: `$input.path` (run input), `$prev.path` (previous output) and
    /// `$nodes.<id>.path` (the latest output of node `<id>`) are replaced; other values are
    /// literals. Default: the previous node's output.
    pub input: Option<Value>,
    /// Cycle guard: the run fails if this node would run more often.
    pub max_visits: Option<u32>,
}

impl WorkflowNode {
    /// A node of `kind` with no input template and no visit guard.
    pub fn new(id: impl Into<String>, kind: NodeKind) -> Self {
        WorkflowNode {
            id: id.into(),
            kind,
            input: None,
            max_visits: None,
        }
    }

    /// The node type tag.
    pub fn node_type(&self) -> NodeType {
        self.kind.node_type()
    }

    /// The templates of this node (input, and a static node's output).
    fn templates(&self) -> impl Iterator<Item = &Value> {
        let output = match &self.kind {
            NodeKind::Static(s) => s.output.as_ref(),
            _ => None,
        };
        self.input.iter().chain(output)
    }
}

/// What must hold for an edge to be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeGuard {
    /// From a router: taken when the router picks this route id.
    Route(String),
    /// Elsewhere: a natural-language condition an agent evaluates on the source's output.
    Condition(String),
}

/// A directed edge, optionally guarded.
///
/// On the wire: `{"from", "to"}` plus `"route"` or `"condition"`. A `condition` on an edge
/// that leaves a router is read as a route id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "wire::Edge", into = "wire::Edge")]
pub struct WorkflowEdge {
    /// Source node.
    pub from: String,
    /// Target node.
    pub to: String,
    /// Guard; `None` is the default edge.
    pub guard: Option<EdgeGuard>,
}

/// The graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "wire::Definition")]
pub struct WorkflowDefinition {
    /// Entry node id.
    pub entry: String,
    /// Nodes.
    pub nodes: Vec<WorkflowNode>,
    /// Edges.
    #[serde(default)]
    pub edges: Vec<WorkflowEdge>,
    /// Agent that evaluates natural-language edge conditions (default: the engine's
    /// built-in condition evaluator on the default LLM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_agent_id: Option<String>,
}

/// A stored, versioned workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// Stable id, e.g. `demo_ticket_triage_v1`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Version string; runs pin the version they started with.
    pub version: String,
    /// The graph.
    pub definition: WorkflowDefinition,
    /// When this version was registered.
    pub created_at: DateTime<Utc>,
}

impl Workflow {
    /// A workflow at version `1.0.0`.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        definition: WorkflowDefinition,
    ) -> Self {
        Workflow {
            id: id.into(),
            name: name.into(),
            version: "1.0.0".into(),
            definition,
            created_at: Utc::now(),
        }
    }

    /// Sets the version.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }
}

mod chat_node;
mod validate;
mod wire;

pub use chat_node::{ChatLimits, ChatNode, ConfirmRules};

pub use validate::{format_issues, AnyRegistry, Registry, ValidationIssue};

impl WorkflowDefinition {
    /// Parses a JSON definition; an error names the path of the offending value.
    pub fn from_json(v: Value) -> crate::Result<Self> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            crate::Error::InvalidInput(format!("workflow definition at `{path}`: {}", e.inner()))
        })
    }

    /// The node with `id`.
    pub fn node(&self, id: &str) -> Option<&WorkflowNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Outgoing edges of `id`, in definition order.
    pub fn outgoing<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a WorkflowEdge> + 'a {
        self.edges.iter().filter(move |e| e.from == id)
    }

    /// Ids of the nodes whose outputs a `$nodes.<id>` template reads.
    pub fn referenced_outputs(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for n in &self.nodes {
            for t in n.templates() {
                crate::mapping::scope_keys(t, "nodes", &mut out);
            }
        }
        out
    }
}
