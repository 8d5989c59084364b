//! Workflow definitions (blueprint §5) and their validation.

use std::collections::{BTreeMap, HashMap, HashSet};

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

/// Node configuration; which fields apply depends on the node type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// `tool_node`: tool to call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_id: Option<String>,
    /// `agent_node`: agent to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// `router`: agent that picks the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_agent_id: Option<String>,
    /// `router`: the routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Input template: `$input.path` (run input), `$prev.path` (previous output) and
    /// `$nodes.<id>.path` are replaced; other values are literals. Default: previous output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// `static`: output template (same syntax as `input`). Default: the input unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// `static`: name of a host-registered static handler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Cycle guard: the run fails if this node would run more often.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_visits: Option<u32>,
    /// `router`: attempts to get a valid choice from the agent (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// `human_gate`: what the approver is asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `tool_node`: timeout override in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl NodeConfig {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == NodeConfig::default()
    }
}

/// A node of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowNode {
    /// Unique id within the workflow.
    pub id: String,
    /// Type.
    #[serde(rename = "type")]
    pub node_type: NodeType,
    /// Configuration.
    #[serde(default, skip_serializing_if = "NodeConfig::is_empty")]
    pub config: NodeConfig,
}

/// A directed edge, optionally conditional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowEdge {
    /// Source node.
    pub from: String,
    /// Target node.
    pub to: String,
    /// From a router: a route id. Elsewhere: a natural-language condition an agent evaluates
    /// on the source node's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// The graph (blueprint §5.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Parses a JSON definition.
    pub fn from_json(v: Value) -> crate::Result<Self> {
        serde_json::from_value(v)
            .map_err(|e| crate::Error::InvalidInput(format!("workflow definition: {e}")))
    }

    /// The node with `id`.
    pub fn node(&self, id: &str) -> Option<&WorkflowNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Outgoing edges of `id`, in definition order.
    pub fn outgoing<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a WorkflowEdge> + 'a {
        self.edges.iter().filter(move |e| e.from == id)
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
            self.validate_node(n, &ids, registry, &mut issues);
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
                .any(|id| self.node(id).and_then(|n| n.config.max_visits).is_some());
            if !guarded {
                issues.push(ValidationIssue::UnguardedCycle {
                    node_ids: cycle.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
        issues
    }

    fn validate_node(
        &self,
        n: &WorkflowNode,
        ids: &HashSet<&str>,
        registry: &dyn Registry,
        issues: &mut Vec<ValidationIssue>,
    ) {
        let missing = |field: &str| ValidationIssue::MissingConfig {
            node_id: n.id.clone(),
            field: field.into(),
        };
        match n.node_type {
            NodeType::ToolNode => match &n.config.tool_id {
                None => issues.push(missing("tool_id")),
                Some(t) if !registry.has_tool(t) => issues.push(ValidationIssue::UnknownTool {
                    node_id: n.id.clone(),
                    tool_id: t.clone(),
                }),
                _ => {}
            },
            NodeType::AgentNode => match &n.config.agent_id {
                None => issues.push(missing("agent_id")),
                Some(a) if !registry.has_agent(a) => issues.push(ValidationIssue::UnknownAgent {
                    node_id: n.id.clone(),
                    agent_id: a.clone(),
                }),
                _ => {}
            },
            NodeType::Router => {
                match &n.config.router_agent_id {
                    None => issues.push(missing("router_agent_id")),
                    Some(a) if !registry.has_agent(a) => {
                        issues.push(ValidationIssue::UnknownAgent {
                            node_id: n.id.clone(),
                            agent_id: a.clone(),
                        })
                    }
                    _ => {}
                }
                if n.config.routes.is_empty() {
                    issues.push(missing("routes"));
                }
                let mut seen = HashSet::new();
                for r in &n.config.routes {
                    if !seen.insert(r.id.as_str()) {
                        issues.push(ValidationIssue::DuplicateRouteId {
                            node_id: n.id.clone(),
                            route_id: r.id.clone(),
                        });
                    }
                    if !ids.contains(r.target_node.as_str()) {
                        issues.push(ValidationIssue::UnknownRouteTarget {
                            node_id: n.id.clone(),
                            route_id: r.id.clone(),
                            target: r.target_node.clone(),
                        });
                    }
                }
            }
            NodeType::Static | NodeType::HumanGate => {}
        }
    }

    fn validate_edges_per_node(&self, issues: &mut Vec<ValidationIssue>) {
        for n in &self.nodes {
            if n.node_type == NodeType::Router {
                for (i, e) in self.edges.iter().enumerate() {
                    if e.from != n.id {
                        continue;
                    }
                    if let Some(c) = &e.condition {
                        if !n.config.routes.iter().any(|r| &r.id == c) {
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
            let unconditional = self
                .outgoing(&n.id)
                .filter(|e| e.condition.is_none())
                .count();
            if unconditional > 1 {
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
            for r in &n.config.routes {
                if ids.contains(r.target_node.as_str()) {
                    succ.push(r.target_node.as_str());
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
