//! Tool search as an agent's [`ToolSource`]: each agent step is offered the Top-N tools for
//! its request, after the gate and the exposure policy.

use std::sync::Arc;

use async_trait::async_trait;

use super::gate::GateRules;
use super::service::{ConnectionScope, SearchRequest, ToolSearch, DEFAULT_TOP_N};
use crate::agent::{ToolQuery, ToolSource};
use crate::error::Result;
use crate::tool::ToolSpec;

/// A [`ToolSearch`] with the exposure rules agents are searched under.
///
/// `ToolSearch` itself is a source with the default rules (blocked tags, risk ceiling,
/// connections from its hubs); this one sets them explicitly.
#[derive(Debug, Clone)]
pub struct SearchToolSource {
    search: Arc<ToolSearch>,
    gate: GateRules,
    connections: ConnectionScope,
    top_n: usize,
}

impl SearchToolSource {
    /// A source over `search` with the default rules and Top-N.
    pub fn new(search: Arc<ToolSearch>) -> Self {
        SearchToolSource {
            search,
            gate: GateRules::default(),
            connections: ConnectionScope::FromHubs,
            top_n: DEFAULT_TOP_N,
        }
    }

    /// Sets the exposure rules.
    pub fn gate(mut self, rules: GateRules) -> Self {
        self.gate = rules;
        self
    }

    /// Sets where connections come from.
    pub fn connections(mut self, scope: ConnectionScope) -> Self {
        self.connections = scope;
        self
    }

    /// Sets how many tools a step is offered when the agent does not say.
    pub fn top_n(mut self, n: usize) -> Self {
        self.top_n = n;
        self
    }
}

/// The search request of one agent step under `gate`.
fn request(query: &ToolQuery<'_>, top_n: usize, gate: GateRules) -> SearchRequest {
    let mut req = SearchRequest::new(query.request, query.subject.clone())
        .top_n(query.top_n.unwrap_or(top_n))
        .candidate_apps(query.candidate_apps.iter().cloned())
        .gate(within_app(gate, query.app_tools));
    if let Some(intent) = query.intent {
        req = req.intent(intent);
    }
    req
}

/// `gate` narrowed to an app's tools, so the Top-N is filled from them. A gate already
/// scoped to toolkits is left as is (its toolkits and tools admit a tool together); the
/// engine drops what the app may not use either way.
fn within_app(mut gate: GateRules, app_tools: Option<&[String]>) -> GateRules {
    let Some(app_tools) = app_tools else {
        return gate;
    };
    if gate.allowed_toolkits.is_some() {
        return gate;
    }
    let narrowed = match &gate.allowed_tools {
        Some(host) => app_tools
            .iter()
            .filter(|t| host.contains(t))
            .cloned()
            .collect(),
        None => app_tools.to_vec(),
    };
    gate.allowed_tools = Some(narrowed);
    gate
}

#[async_trait]
impl ToolSource for SearchToolSource {
    async fn tools(&self, query: &ToolQuery<'_>) -> Result<Vec<Arc<ToolSpec>>> {
        let mut req = request(query, self.top_n, self.gate.clone());
        req.connections = self.connections.clone();
        let result = self.search.search(&req).await?;
        Ok(result.hits.into_iter().map(|h| h.tool).collect())
    }
}

#[async_trait]
impl ToolSource for ToolSearch {
    async fn tools(&self, query: &ToolQuery<'_>) -> Result<Vec<Arc<ToolSpec>>> {
        let result = self
            .search(&request(query, DEFAULT_TOP_N, GateRules::default()))
            .await?;
        Ok(result.hits.into_iter().map(|h| h.tool).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_app_narrows_the_gate_to_its_tools() {
        let app = ids(&["crm.read", "memory.search"]);
        assert_eq!(within_app(GateRules::default(), None), GateRules::default());
        let gate = within_app(GateRules::default(), Some(&app));
        assert_eq!(gate.allowed_tools, Some(app.clone()));
        let host = GateRules::default().only_tools(["crm.read", "mail.send"]);
        let gate = within_app(host, Some(&app));
        assert_eq!(gate.allowed_tools, Some(ids(&["crm.read"])));
        let none = within_app(GateRules::default(), Some(&[]));
        assert_eq!(none.allowed_tools, Some(Vec::new()));
        let kits = GateRules::default().only_toolkits(["crm"]);
        assert_eq!(within_app(kits.clone(), Some(&app)), kits);
    }
}
