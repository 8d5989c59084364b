use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::locked;
use crate::error::{Error, Result};
use crate::run::Subject;
use crate::tool::{Connection, PageRequest, ToolContext, ToolHub, ToolPage, ToolSpec};

type Behaviour = Arc<dyn Fn(&Value) -> Result<Value> + Send + Sync>;

/// A [`ToolHub`] with scripted tools: each returns what its behaviour computes, counts its
/// executions and records the contexts it saw. Catalog pages are served in `page_size` chunks.
pub struct FakeToolHub {
    name: String,
    tools: Vec<ToolSpec>,
    behaviours: HashMap<String, Behaviour>,
    executions: Mutex<Vec<(String, Value, ToolContext)>>,
    count: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    connections: HashMap<String, Vec<Connection>>,
    delay: Duration,
    page_size: usize,
}

impl FakeToolHub {
    /// An empty hub named `name`.
    pub fn new(name: &str) -> Self {
        FakeToolHub {
            name: name.to_string(),
            tools: Vec::new(),
            behaviours: HashMap::new(),
            executions: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            connections: HashMap::new(),
            delay: Duration::ZERO,
            page_size: 100,
        }
    }

    /// Adds a tool (its hub is set to this hub) computing its output with `f`.
    pub fn tool<F>(mut self, spec: ToolSpec, f: F) -> Self
    where
        F: Fn(&Value) -> Result<Value> + Send + Sync + 'static,
    {
        let spec = spec.on_hub(self.name.clone());
        self.behaviours.insert(spec.id.clone(), Arc::new(f));
        self.tools.push(spec);
        self
    }

    /// Adds a connection of `user_id`.
    pub fn connect(mut self, user_id: &str, toolkit: &str) -> Self {
        self.connections
            .entry(user_id.to_string())
            .or_default()
            .push(Connection {
                toolkit: toolkit.to_string(),
                account_id: format!("acc_{user_id}_{toolkit}"),
                active: true,
            });
        self
    }

    /// Delays every execution (timeouts, cancellation, concurrency tests).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets the catalog page size.
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// The tools' specs.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.clone()
    }

    /// Executions so far (all tools).
    pub fn executions(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// The most executions that were in progress at the same time.
    pub fn max_concurrency(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Executions of one tool.
    pub fn executions_of(&self, tool_id: &str) -> usize {
        locked(&self.executions)
            .iter()
            .filter(|(t, _, _)| t == tool_id)
            .count()
    }

    /// Recorded `(tool, arguments, context)` of every execution.
    pub fn calls(&self) -> Vec<(String, Value, ToolContext)> {
        locked(&self.executions).clone()
    }
}

#[async_trait]
impl ToolHub for FakeToolHub {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list_tools(&self, page: PageRequest) -> Result<ToolPage> {
        let start: usize = page
            .cursor
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let size = page.limit.map_or(self.page_size, |l| l as usize).max(1);
        let tools: Vec<ToolSpec> = self.tools.iter().skip(start).take(size).cloned().collect();
        let end = start + tools.len();
        Ok(ToolPage {
            tools,
            next_cursor: (end < self.tools.len()).then(|| end.to_string()),
        })
    }

    async fn execute(&self, tool_id: &str, arguments: Value, ctx: &ToolContext) -> Result<Value> {
        let f = self
            .behaviours
            .get(tool_id)
            .ok_or_else(|| Error::not_found("tool", tool_id))?
            .clone();
        let _in_flight = InFlight::enter(&self.in_flight, &self.max_in_flight);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.count.fetch_add(1, Ordering::SeqCst);
        locked(&self.executions).push((tool_id.to_string(), arguments.clone(), ctx.clone()));
        f(&arguments)
    }

    async fn connections(&self, subject: &Subject) -> Result<Vec<Connection>> {
        Ok(subject
            .user_id
            .as_ref()
            .and_then(|u| self.connections.get(u))
            .cloned()
            .unwrap_or_default())
    }
}

/// Counts an execution as in flight until dropped (also when a timeout drops the future).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize, max: &AtomicUsize) -> Self {
        let now = counter.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
