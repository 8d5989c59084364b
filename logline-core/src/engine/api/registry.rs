//! Registering definitions: workflows (validated against what exists), agents, tools and
//! policies.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use crate::agent::Agent;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::policy::Policy;
use crate::queue::Queue;
use crate::store::Store;
use crate::tool::ToolSpec;
use crate::workflow::{NodeKind, NodeType, Registry, Workflow};

/// Ids found in the store while validating a workflow.
struct KnownIds {
    tools: HashSet<String>,
    agents: HashSet<String>,
}

impl Registry for KnownIds {
    fn has_tool(&self, id: &str) -> bool {
        self.tools.contains(id)
    }
    fn has_agent(&self, id: &str) -> bool {
        self.agents.contains(id)
    }
}

impl Engine {
    /// A builder with in-memory defaults.
    pub fn builder() -> crate::engine::EngineBuilder {
        crate::engine::EngineBuilder::default()
    }

    /// Whether the engine was built with a chat store.
    pub(crate) fn has_chat_store(&self) -> bool {
        self.inner.exec.chat_store.is_some()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.exec.store
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.inner.queue
    }

    /// Registers a workflow version after validating it against the registered tools and
    /// agents. Every problem is reported at once in [`Error::InvalidWorkflow`].
    pub async fn register_workflow(&self, workflow: &Workflow) -> Result<()> {
        let def = &workflow.definition;
        let mut known = KnownIds {
            tools: HashSet::new(),
            agents: HashSet::new(),
        };
        let mut refs: Vec<(&String, bool)> = Vec::new();
        for n in &def.nodes {
            match &n.kind {
                NodeKind::Tool(t) => refs.push((&t.tool_id, true)),
                NodeKind::Agent(a) => refs.push((&a.agent_id, false)),
                NodeKind::Router(r) => refs.push((&r.router_agent_id, false)),
                NodeKind::Chat(c) => refs.extend(c.agent_ids().map(|id| (id, false))),
                NodeKind::Static(_) | NodeKind::HumanGate(_) => {}
            }
        }
        for (id, is_tool) in refs {
            if is_tool {
                if self.exists(self.inner.exec.store.get_tool(id).await)? {
                    known.tools.insert(id.to_string());
                }
            } else if self.exists(self.inner.exec.store.get_agent(id).await)? {
                known.agents.insert(id.to_string());
            }
        }
        if let Some(id) = &def.condition_agent_id {
            if self.exists(self.inner.exec.store.get_agent(id).await)? {
                known.agents.insert(id.clone());
            }
        }
        let issues = def.validate(&known);
        if !issues.is_empty() {
            return Err(Error::InvalidWorkflow(issues));
        }
        self.inner.exec.store.put_workflow(workflow).await?;
        crate::engine::lock(&self.inner.latest).remove(&workflow.id);
        Ok(())
    }

    fn exists<T>(&self, r: Result<T>) -> Result<bool> {
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Registers an agent; every allowed tool must exist.
    pub async fn register_agent(&self, agent: &Agent) -> Result<()> {
        let mut missing = Vec::new();
        for t in &agent.allowed_tools {
            if !self.exists(self.inner.exec.store.get_tool(t).await)? {
                missing.push(t.clone());
            }
        }
        if !missing.is_empty() {
            return Err(Error::InvalidInput(format!(
                "agent `{}` allows unknown tools: {}",
                agent.id,
                missing.join(", ")
            )));
        }
        if let Some(schema) = &agent.output_schema {
            self.inner.exec.schemas.violations(schema, &Value::Null)?;
        }
        self.inner.exec.store.put_agent(agent).await
    }

    /// Adds or replaces catalog entries (tools executed by a registered hub).
    pub async fn register_tools(&self, tools: &[ToolSpec]) -> Result<()> {
        for t in tools {
            self.inner
                .exec
                .schemas
                .violations(&t.input_schema, &Value::Null)?;
        }
        self.inner.exec.store.put_tools(tools).await
    }

    /// Adds or replaces a policy; it applies to the next evaluation.
    pub async fn put_policy(&self, policy: &Policy) -> Result<()> {
        self.inner.exec.store.put_policy(policy).await?;
        if let Some(s) = &self.inner.policy_source {
            s.invalidate();
        }
        Ok(())
    }

    /// Removes a policy.
    pub async fn delete_policy(&self, id: &str) -> Result<()> {
        self.inner.exec.store.delete_policy(id).await?;
        if let Some(s) = &self.inner.policy_source {
            s.invalidate();
        }
        Ok(())
    }

    /// Node types of a workflow version (helper for hosts and tests).
    pub async fn node_types(&self, workflow_id: &str) -> Result<Vec<(String, NodeType)>> {
        let wf = self
            .inner
            .exec
            .store
            .get_workflow(workflow_id, None)
            .await?;
        Ok(wf
            .definition
            .nodes
            .iter()
            .map(|n| (n.id.clone(), n.node_type()))
            .collect())
    }
}
