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

/// The search request of one agent step.
fn request(query: &ToolQuery<'_>, top_n: usize) -> SearchRequest {
    let mut req = SearchRequest::new(query.request, query.subject.clone())
        .top_n(query.top_n.unwrap_or(top_n))
        .candidate_apps(query.candidate_apps.iter().cloned());
    if let Some(intent) = query.intent {
        req = req.intent(intent);
    }
    req
}

#[async_trait]
impl ToolSource for SearchToolSource {
    async fn tools(&self, query: &ToolQuery<'_>) -> Result<Vec<Arc<ToolSpec>>> {
        let mut req = request(query, self.top_n).gate(self.gate.clone());
        req.connections = self.connections.clone();
        let result = self.search.search(&req).await?;
        Ok(result.hits.into_iter().map(|h| h.tool).collect())
    }
}

#[async_trait]
impl ToolSource for ToolSearch {
    async fn tools(&self, query: &ToolQuery<'_>) -> Result<Vec<Arc<ToolSpec>>> {
        let result = self.search(&request(query, DEFAULT_TOP_N)).await?;
        Ok(result.hits.into_iter().map(|h| h.tool).collect())
    }
}
