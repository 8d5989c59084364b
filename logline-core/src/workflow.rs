//! Workflow definitions: typed nodes and guarded edges, parsed from JSON, and their validation.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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

/// One problem found by [`WorkflowDefinition::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ValidationIssue {
    /// The definition has no nodes.
    NoNodes,
    /// `entry` names no node.
    MissingEntry {
        /// The entry id given.
        entry: String,
    },
    /// Two nodes share an id.
    DuplicateNodeId {
        /// The id.
        node_id: String,
    },
    /// A required config field is missing for the node type.
    MissingConfig {
        /// Node.
        node_id: String,
        /// Missing field.
        field: String,
    },
    /// An edge starts at an unknown node.
    UnknownEdgeSource {
        /// Edge index.
        edge: usize,
        /// Unknown id.
        node_id: String,
    },
    /// An edge ends at an unknown node.
    UnknownEdgeTarget {
        /// Edge index.
        edge: usize,
        /// Unknown id.
        node_id: String,
    },
    /// A router route points to an unknown node.
    UnknownRouteTarget {
        /// Router node.
        node_id: String,
        /// Route.
        route_id: String,
        /// Unknown target.
        target: String,
    },
    /// A router edge's condition names no route of that router.
    UnknownRoute {
        /// Router node.
        node_id: String,
        /// Edge index.
        edge: usize,
        /// The condition given.
        route_id: String,
    },
    /// Two routes of a router share an id.
    DuplicateRouteId {
        /// Router node.
        node_id: String,
        /// Route id.
        route_id: String,
    },
    /// More than one unconditional edge leaves a node (the next node would be ambiguous).
    AmbiguousEdges {
        /// Node.
        node_id: String,
    },
    /// A node references a tool that is not registered.
    UnknownTool {
        /// Node.
        node_id: String,
        /// Tool id.
        tool_id: String,
    },
    /// A node references an agent that is not registered.
    UnknownAgent {
        /// Node.
        node_id: String,
        /// Agent id.
        agent_id: String,
    },
    /// No path leads from `entry` to the node.
    Unreachable {
        /// Node.
        node_id: String,
    },
    /// A template reads `$nodes.<id>` of a node that does not exist.
    UnknownNodeReference {
        /// Node whose template holds the reference.
        node_id: String,
        /// The unknown node id.
        target: String,
    },
    /// A cycle has no node with `max_visits`.
    UnguardedCycle {
        /// Nodes of the cycle.
        node_ids: Vec<String>,
    },
}

/// Human-readable list of issues.
pub fn format_issues(issues: &[ValidationIssue]) -> String {
    issues
        .iter()
        .map(|i| serde_json::to_string(i).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Registered ids that [`WorkflowDefinition::validate`] checks references against.
pub trait Registry {
    /// Whether a tool with this id exists.
    fn has_tool(&self, id: &str) -> bool;
    /// Whether an agent with this id exists.
    fn has_agent(&self, id: &str) -> bool;
}

/// A registry that knows every id (structural validation only).
pub struct AnyRegistry;

impl Registry for AnyRegistry {
    fn has_tool(&self, _: &str) -> bool {
        true
    }
    fn has_agent(&self, _: &str) -> bool {
        true
    }
}

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

    /// Every problem with the definition at once; empty when valid.
    pub fn validate(&self, registry: &dyn Registry) -> Vec<ValidationIssue> {
        let mut issues = Vec::new();
        if self.nodes.is_empty() {
            issues.push(ValidationIssue::NoNodes);
        }
        let mut ids: HashSet<&str> = HashSet::new();
        for n in &self.nodes {
            if !ids.insert(&n.id) {
                issues.push(ValidationIssue::DuplicateNodeId {
                    node_id: n.id.clone(),
                });
            }
        }
        if !self.nodes.is_empty() && !ids.contains(self.entry.as_str()) {
            issues.push(ValidationIssue::MissingEntry {
                entry: self.entry.clone(),
            });
        }
        for n in &self.nodes {
            validate_node(n, &ids, registry, &mut issues);
        }
        if let Some(agent_id) = &self.condition_agent_id {
            if !registry.has_agent(agent_id) {
                issues.push(ValidationIssue::UnknownAgent {
                    node_id: self.entry.clone(),
                    agent_id: agent_id.clone(),
                });
            }
        }
        for (i, e) in self.edges.iter().enumerate() {
            if !ids.contains(e.from.as_str()) {
                issues.push(ValidationIssue::UnknownEdgeSource {
                    edge: i,
                    node_id: e.from.clone(),
                });
            }
            if !ids.contains(e.to.as_str()) {
                issues.push(ValidationIssue::UnknownEdgeTarget {
                    edge: i,
                    node_id: e.to.clone(),
                });
            }
        }
        self.validate_edges_per_node(&mut issues);
        let graph = self.adjacency(&ids);
        if ids.contains(self.entry.as_str()) {
            let reachable = reachable_from(&graph, &self.entry);
            for n in &self.nodes {
                if !reachable.contains(n.id.as_str()) {
                    issues.push(ValidationIssue::Unreachable {
                        node_id: n.id.clone(),
                    });
                }
            }
        }
        for cycle in cycles(&graph) {
            let guarded = cycle
                .iter()
                .any(|id| self.node(id).and_then(|n| n.max_visits).is_some());
            if !guarded {
                issues.push(ValidationIssue::UnguardedCycle {
                    node_ids: cycle.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
        issues
    }

    fn validate_edges_per_node(&self, issues: &mut Vec<ValidationIssue>) {
        for n in &self.nodes {
            if let NodeKind::Router(r) = &n.kind {
                for (i, e) in self.edges.iter().enumerate() {
                    if e.from != n.id {
                        continue;
                    }
                    if let Some(EdgeGuard::Route(c)) = &e.guard {
                        if !r.routes.iter().any(|route| &route.id == c) {
                            issues.push(ValidationIssue::UnknownRoute {
                                node_id: n.id.clone(),
                                edge: i,
                                route_id: c.clone(),
                            });
                        }
                    }
                }
                continue;
            }
            let unguarded = self.outgoing(&n.id).filter(|e| e.guard.is_none()).count();
            if unguarded > 1 {
                issues.push(ValidationIssue::AmbiguousEdges {
                    node_id: n.id.clone(),
                });
            }
        }
    }

    /// Successors of each node: edges plus router route targets.
    fn adjacency<'a>(&'a self, ids: &HashSet<&'a str>) -> BTreeMap<&'a str, Vec<&'a str>> {
        let mut g: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for n in &self.nodes {
            let succ = g.entry(n.id.as_str()).or_default();
            if let NodeKind::Router(r) = &n.kind {
                for route in &r.routes {
                    if ids.contains(route.target_node.as_str()) {
                        succ.push(route.target_node.as_str());
                    }
                }
            }
        }
        for e in &self.edges {
            if ids.contains(e.from.as_str()) && ids.contains(e.to.as_str()) {
                g.entry(e.from.as_str()).or_default().push(e.to.as_str());
            }
        }
        g
    }
}

fn validate_node(
    n: &WorkflowNode,
    ids: &HashSet<&str>,
    registry: &dyn Registry,
    issues: &mut Vec<ValidationIssue>,
) {
    let unknown_agent = |agent_id: &str| ValidationIssue::UnknownAgent {
        node_id: n.id.clone(),
        agent_id: agent_id.to_string(),
    };
    match &n.kind {
        NodeKind::Tool(t) if !registry.has_tool(&t.tool_id) => {
            issues.push(ValidationIssue::UnknownTool {
                node_id: n.id.clone(),
                tool_id: t.tool_id.clone(),
            })
        }
        NodeKind::Agent(a) if !registry.has_agent(&a.agent_id) => {
            issues.push(unknown_agent(&a.agent_id))
        }
        NodeKind::Router(r) => {
            if !registry.has_agent(&r.router_agent_id) {
                issues.push(unknown_agent(&r.router_agent_id));
            }
            if r.routes.is_empty() {
                issues.push(ValidationIssue::MissingConfig {
                    node_id: n.id.clone(),
                    field: "routes".into(),
                });
            }
            let mut seen = HashSet::new();
            for route in &r.routes {
                if !seen.insert(route.id.as_str()) {
                    issues.push(ValidationIssue::DuplicateRouteId {
                        node_id: n.id.clone(),
                        route_id: route.id.clone(),
                    });
                }
                if !ids.contains(route.target_node.as_str()) {
                    issues.push(ValidationIssue::UnknownRouteTarget {
                        node_id: n.id.clone(),
                        route_id: route.id.clone(),
                        target: route.target_node.clone(),
                    });
                }
            }
        }
        _ => {}
    }
    let mut referenced = BTreeSet::new();
    for t in n.templates() {
        crate::mapping::scope_keys(t, "nodes", &mut referenced);
    }
    for target in referenced {
        if !ids.contains(target.as_str()) {
            issues.push(ValidationIssue::UnknownNodeReference {
                node_id: n.id.clone(),
                target,
            });
        }
    }
}

/// The wire forms of nodes, edges and definitions (the JSON accepted since the first version).
mod wire {
    use serde::{Deserialize, Serialize};
    use serde_json::{Map, Value};

    use super::{
        AgentNode, EdgeGuard, HumanGateNode, NodeKind, NodeType, RouterNode, StaticNode, ToolNode,
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
}

fn reachable_from<'a>(g: &BTreeMap<&'a str, Vec<&'a str>>, start: &'a str) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    let mut stack = vec![start];
    while let Some(n) = stack.pop() {
        if seen.insert(n) {
            if let Some(s) = g.get(n) {
                stack.extend(s.iter().copied());
            }
        }
    }
    seen
}

/// Strongly connected components that form cycles (size > 1, or a self-loop), via Tarjan.
fn cycles<'a>(g: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<Vec<&'a str>> {
    struct Tarjan<'a, 'g> {
        g: &'g BTreeMap<&'a str, Vec<&'a str>>,
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        on_stack: HashSet<&'a str>,
        stack: Vec<&'a str>,
        next: usize,
        out: Vec<Vec<&'a str>>,
    }
    impl<'a> Tarjan<'a, '_> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            let succ = self.g.get(v).cloned().unwrap_or_default();
            for w in succ.iter().copied() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(lw));
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(iw));
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                let self_loop = succ.contains(&v);
                if comp.len() > 1 || self_loop {
                    comp.sort_unstable();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = Tarjan {
        g,
        index: HashMap::new(),
        low: HashMap::new(),
        on_stack: HashSet::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys().copied() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
}
