//! Validation of workflow definitions: every problem at once, with the offending ids.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{EdgeGuard, NodeKind, WorkflowDefinition, WorkflowNode};

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
        NodeKind::Chat(c) => {
            for agent_id in c.agent_ids() {
                if !registry.has_agent(agent_id) {
                    issues.push(unknown_agent(agent_id));
                }
            }
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
