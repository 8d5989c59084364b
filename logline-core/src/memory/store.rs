use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::compact::{KeptEvent, KeptStep, KeptSteps};
use crate::agent::Agent;
use crate::error::{Error, Result};
use crate::event::{Event, NewEvent};
use crate::nul::{replace_nul, replace_nul_in};
use crate::policy::{Policy, PolicySource};
use crate::run::{Run, RunId, RunStatus, Step};
use crate::search::{StoredVector, VectorStore};
use crate::store::{
    Checkpoint, Committed, DefinitionStore, EffectRecord, EffectState, Page, RunFilter, RunStore,
    ToolQuery,
};
use crate::tool::ToolSpec;
use crate::workflow::Workflow;

/// A [`crate::store::Store`] in process memory. Cheap to clone (shared state).
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    defs: RwLock<Definitions>,
    runs: Mutex<Runs>,
    /// Search vectors by space, then id ([`VectorStore`]).
    vectors: Mutex<HashMap<String, HashMap<String, StoredVector>>>,
}

/// The runs, with the orders that listing reads, so a page costs its own length and not the
/// store's size.
#[derive(Default)]
struct Runs {
    /// Boxed: a resize of the table moves pointers, not whole entries.
    by_id: HashMap<RunId, Box<RunEntry>>,
    /// Every run by `(created_at, id)`: newest last.
    order: BTreeSet<(DateTime<Utc>, RunId)>,
    /// The runs not yet in a terminal status, in the same order.
    active: BTreeSet<(DateTime<Utc>, RunId)>,
}

impl Runs {
    fn get(&self, id: &RunId) -> Result<&RunEntry> {
        self.by_id
            .get(id)
            .map(Box::as_ref)
            .ok_or_else(|| Error::not_found("run", id))
    }

    fn get_mut(&mut self, id: &RunId) -> Result<&mut RunEntry> {
        self.by_id
            .get_mut(id)
            .map(Box::as_mut)
            .ok_or_else(|| Error::not_found("run", id))
    }

    fn insert(&mut self, entry: Box<RunEntry>) {
        let key = (entry.run.created_at, entry.run.id);
        self.order.insert(key);
        if !entry.run.status.is_terminal() {
            self.active.insert(key);
        }
        self.by_id.insert(entry.run.id, entry);
    }

    fn remove(&mut self, id: &RunId) {
        if let Some(entry) = self.by_id.remove(id) {
            let key = (entry.run.created_at, entry.run.id);
            self.order.remove(&key);
            self.active.remove(&key);
        }
    }
}

#[derive(Default)]
struct Definitions {
    workflows: BTreeMap<String, Vec<Workflow>>,
    /// Shared: a [`crate::search::ToolSearch`] filled from this store holds the same specs.
    tools: BTreeMap<String, Arc<ToolSpec>>,
    agents: BTreeMap<String, Agent>,
    policies: BTreeMap<String, Policy>,
    policy_snapshot: Option<Arc<Vec<Policy>>>,
}

struct RunEntry {
    run: Run,
    steps: KeptSteps,
    events: Vec<KeptEvent>,
    effects: BTreeMap<(u32, u32), EffectRecord>,
    /// Created by the first waiter; commits only notify when someone waits.
    watch: Option<watch::Sender<u64>>,
    /// Whether the run is terminal or paused, for waiters of its end; created by the first.
    settled: Option<watch::Sender<bool>>,
}

impl RunEntry {
    fn last_seq(&self) -> u64 {
        self.events.last().map_or(0, |e| e.seq)
    }

    fn notify(&self) {
        if let Some(w) = &self.watch {
            w.send_replace(self.last_seq());
        }
        if let Some(s) = &self.settled {
            let settled = self.is_settled();
            // Waiters wake only when the run settles, not at each of its steps.
            s.send_if_modified(|was| std::mem::replace(was, settled) != settled);
        }
    }

    fn is_settled(&self) -> bool {
        self.run.status.is_terminal() || self.run.status == RunStatus::Paused
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn runs(&self) -> Result<MutexGuard<'_, Runs>> {
        self.inner
            .runs
            .lock()
            .map_err(|_| Error::Internal("memory store lock poisoned".into()))
    }

    fn defs_read(&self) -> Result<std::sync::RwLockReadGuard<'_, Definitions>> {
        self.inner
            .defs
            .read()
            .map_err(|_| Error::Internal("memory store lock poisoned".into()))
    }

    fn defs_write(&self) -> Result<std::sync::RwLockWriteGuard<'_, Definitions>> {
        self.inner
            .defs
            .write()
            .map_err(|_| Error::Internal("memory store lock poisoned".into()))
    }
}

/// The page of `items` (references, so skipped items are never cloned), cloned.
fn paginate<'a, T: Clone + 'a>(items: impl Iterator<Item = &'a T>, page: Page) -> Vec<T> {
    items
        .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
        .cloned()
        .collect()
}

/// The tools `query` selects (its toolkit and hub), ordered by id.
fn tools_matching<'a>(
    d: &'a Definitions,
    query: &'a ToolQuery,
) -> impl Iterator<Item = &'a Arc<ToolSpec>> + 'a {
    d.tools
        .values()
        .filter(|t| query.toolkit.is_none() || t.toolkit == query.toolkit)
        .filter(|t| query.hub.as_ref().is_none_or(|h| &t.hub == h))
}

#[async_trait]
impl DefinitionStore for MemoryStore {
    async fn put_workflow(&self, workflow: &Workflow) -> Result<()> {
        let mut d = self.defs_write()?;
        let versions = d.workflows.entry(workflow.id.clone()).or_default();
        if let Some(existing) = versions.iter().find(|w| w.version == workflow.version) {
            if existing.definition == workflow.definition {
                return Ok(());
            }
            return Err(Error::Conflict(format!(
                "workflow {} version {} already exists with another definition",
                workflow.id, workflow.version
            )));
        }
        versions.push(workflow.clone());
        Ok(())
    }

    async fn get_workflow(&self, id: &str, version: Option<&str>) -> Result<Workflow> {
        let d = self.defs_read()?;
        let versions = d
            .workflows
            .get(id)
            .ok_or_else(|| Error::not_found("workflow", id))?;
        let found = match version {
            Some(v) => versions.iter().find(|w| w.version == v),
            None => versions.last(),
        };
        found.cloned().ok_or_else(|| {
            Error::not_found("workflow", format!("{id}@{}", version.unwrap_or("latest")))
        })
    }

    async fn latest_workflow_version(&self, id: &str) -> Result<String> {
        self.defs_read()?
            .workflows
            .get(id)
            .and_then(|v| v.last())
            .map(|w| w.version.clone())
            .ok_or_else(|| Error::not_found("workflow", id))
    }

    async fn list_workflows(&self, page: Page) -> Result<Vec<Workflow>> {
        let d = self.defs_read()?;
        Ok(paginate(
            d.workflows.values().filter_map(|v| v.last()),
            page,
        ))
    }

    async fn delete_workflow(&self, id: &str) -> Result<()> {
        self.defs_write()?
            .workflows
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| Error::not_found("workflow", id))
    }

    async fn put_tools(&self, tools: &[ToolSpec]) -> Result<()> {
        let mut d = self.defs_write()?;
        for t in tools {
            d.tools.insert(t.id.clone(), Arc::new(t.clone()));
        }
        Ok(())
    }

    async fn get_tool(&self, id: &str) -> Result<ToolSpec> {
        self.defs_read()?
            .tools
            .get(id)
            .map(|t| ToolSpec::clone(t))
            .ok_or_else(|| Error::not_found("tool", id))
    }

    async fn get_tool_spec(&self, id: &str) -> Result<Arc<ToolSpec>> {
        self.defs_read()?
            .tools
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found("tool", id))
    }

    async fn list_tools(&self, query: &ToolQuery) -> Result<Vec<ToolSpec>> {
        let d = self.defs_read()?;
        Ok(paginate(
            tools_matching(&d, query).map(|t| &**t),
            query.page,
        ))
    }

    async fn list_tool_specs(&self, query: &ToolQuery) -> Result<Vec<Arc<ToolSpec>>> {
        let d = self.defs_read()?;
        Ok(paginate(tools_matching(&d, query), query.page))
    }

    async fn delete_tool(&self, id: &str) -> Result<()> {
        self.defs_write()?
            .tools
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| Error::not_found("tool", id))
    }

    async fn put_agent(&self, agent: &Agent) -> Result<()> {
        self.defs_write()?
            .agents
            .insert(agent.id.clone(), agent.clone());
        Ok(())
    }

    async fn get_agent(&self, id: &str) -> Result<Agent> {
        self.defs_read()?
            .agents
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found("agent", id))
    }

    async fn list_agents(&self, page: Page) -> Result<Vec<Agent>> {
        Ok(paginate(self.defs_read()?.agents.values(), page))
    }

    async fn put_policy(&self, policy: &Policy) -> Result<()> {
        let mut d = self.defs_write()?;
        d.policies.insert(policy.id.clone(), policy.clone());
        d.policy_snapshot = None;
        Ok(())
    }

    async fn list_policies(&self) -> Result<Vec<Policy>> {
        Ok(self.defs_read()?.policies.values().cloned().collect())
    }

    async fn delete_policy(&self, id: &str) -> Result<()> {
        let mut d = self.defs_write()?;
        d.policy_snapshot = None;
        d.policies
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| Error::not_found("policy", id))
    }
}

#[async_trait]
impl PolicySource for MemoryStore {
    async fn policies(&self) -> Result<Arc<Vec<Policy>>> {
        if let Some(s) = &self.defs_read()?.policy_snapshot {
            return Ok(s.clone());
        }
        let mut d = self.defs_write()?;
        let snap = Arc::new(d.policies.values().filter(|p| p.enabled).cloned().collect());
        d.policy_snapshot = Some(Arc::clone(&snap));
        Ok(snap)
    }
}

/// Events as kept, NULs replaced: prepared before the store's lock is taken.
fn kept_events(events: impl IntoIterator<Item = NewEvent>) -> Vec<KeptEvent> {
    events.into_iter().map(KeptEvent::new).collect()
}

/// Appends `events` after the run's last; returns the new last seq.
fn append_events(entry: &mut RunEntry, events: Vec<KeptEvent>) -> u64 {
    let mut seq = entry.last_seq();
    for mut e in events {
        seq += 1;
        e.seq = seq;
        entry.events.push(e);
    }
    seq
}

/// Copies the fields a checkpoint may change (identity fields are fixed at creation),
/// reusing the stored run's allocations where possible.
fn update_mutable(stored: &mut Run, new: &Run, version: i64) -> Result<()> {
    stored.status = new.status;
    stored.mode = new.mode;
    stored.result.clone_from(&new.result);
    stored.error.clone_from(&new.error);
    stored.budget = new.budget;
    stored.usage = new.usage;
    stored.cursor.next_node.clone_from(&new.cursor.next_node);
    stored.cursor.step_index = new.cursor.step_index;
    stored
        .cursor
        .last_output
        .clone_from(&new.cursor.last_output);
    if stored.cursor.visits != new.cursor.visits {
        stored.cursor.visits.clone_from(&new.cursor.visits);
    }
    stored.cursor.committed_step_events = new.cursor.committed_step_events;
    stored.pending_gate.clone_from(&new.pending_gate);
    if stored.approvals != new.approvals {
        stored.approvals.clone_from(&new.approvals);
        replace_nul_in(&mut stored.approvals)?;
    }
    stored.started_at = new.started_at;
    stored.version = version;
    stored.updated_at = Utc::now();
    replace_nul_in_run(stored)
}

/// Stores NULs as U+FFFD, as every backend does ([`crate::nul`]): the run's mutable JSON
/// values and its pending gate (the input is cleaned once, at creation; approvals when they
/// change).
fn replace_nul_in_run(run: &mut Run) -> Result<()> {
    for v in run.result.iter_mut().chain(run.error.iter_mut()) {
        replace_nul(v);
    }
    replace_nul(&mut run.cursor.last_output);
    for v in run.cursor.outputs.values_mut() {
        replace_nul(v);
    }
    if run.pending_gate.is_some() {
        replace_nul_in(&mut run.pending_gate)?;
    }
    Ok(())
}

/// [`replace_nul_in_run`] for a step.
fn replace_nul_in_step(step: &mut Step) {
    replace_nul(&mut step.input);
    for v in step.output.iter_mut().chain(step.error.iter_mut()) {
        replace_nul(v);
    }
}

#[async_trait]
impl RunStore for MemoryStore {
    async fn create_run(&self, run: &Run, events: &[NewEvent]) -> Result<Committed> {
        let mut stored = run.clone();
        stored.version = 1;
        replace_nul(&mut stored.input);
        replace_nul_in_run(&mut stored)?;
        replace_nul_in(&mut stored.approvals)?;
        let mut entry = Box::new(RunEntry {
            run: stored,
            steps: KeptSteps::default(),
            events: Vec::with_capacity(events.len() + 8),
            effects: BTreeMap::new(),
            watch: None,
            settled: None,
        });
        let last_seq = append_events(&mut entry, kept_events(events.iter().cloned()));
        let mut runs = self.runs()?;
        if runs.by_id.contains_key(&run.id) {
            return Err(Error::Conflict(format!("run {} already exists", run.id)));
        }
        runs.insert(entry);
        Ok(Committed {
            version: 1,
            last_seq,
        })
    }

    async fn get_run(&self, id: RunId) -> Result<Run> {
        Ok(self.runs()?.get(&id)?.run.clone())
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        let runs = self.runs()?;
        let only_active = filter.status.is_some_and(|s| !s.is_terminal());
        let order = if only_active {
            &runs.active
        } else {
            &runs.order
        };
        let matching = order
            .iter()
            .rev()
            .filter_map(|(_, id)| runs.by_id.get(id).map(|e| &e.run))
            .filter(|r| {
                filter
                    .tenant_id
                    .as_ref()
                    .is_none_or(|t| &r.subject.tenant_id == t)
            })
            .filter(|r| {
                filter
                    .workflow_id
                    .as_ref()
                    .is_none_or(|w| &r.workflow_id == w)
            })
            .filter(|r| filter.status.is_none_or(|s| r.status == s));
        Ok(paginate(matching, filter.page))
    }

    async fn commit(&self, checkpoint: Checkpoint<'_>) -> Result<Committed> {
        let Checkpoint { run, step, events } = checkpoint;
        let step = step.map(|mut step| {
            replace_nul_in_step(&mut step);
            KeptStep::new(step)
        });
        let events = kept_events(events);
        let mut runs = self.runs()?;
        let entry = runs.get_mut(&run.id)?;
        if entry.run.version != run.version {
            return Err(Error::Conflict(format!(
                "run {} is at version {}, checkpoint was built on {}",
                run.id, entry.run.version, run.version
            )));
        }
        let key = (entry.run.created_at, entry.run.id);
        let was_active = !entry.run.status.is_terminal();
        let version = run.version + 1;
        update_mutable(&mut entry.run, run, version)?;
        if let Some(step) = step {
            entry.steps.put(step);
        }
        let last_seq = append_events(entry, events);
        entry.notify();
        match (was_active, !run.status.is_terminal()) {
            (true, false) => {
                // A finished run rarely grows again: keep only what it holds.
                entry.steps.shrink_to_fit();
                entry.events.shrink_to_fit();
                runs.active.remove(&key);
            }
            (false, true) => {
                runs.active.insert(key);
            }
            _ => {}
        }
        Ok(Committed { version, last_seq })
    }

    async fn events(&self, run_id: RunId, after_seq: u64, limit: usize) -> Result<Vec<Event>> {
        let runs = self.runs()?;
        let entry = runs.get(&run_id)?;
        // seq n lives at index n - 1.
        let start = (after_seq as usize).min(entry.events.len());
        Ok(entry.events[start..]
            .iter()
            .take(limit)
            .map(|e| e.event(run_id))
            .collect())
    }

    async fn last_seq(&self, run_id: RunId) -> Result<u64> {
        Ok(self.runs()?.get(&run_id)?.last_seq())
    }

    async fn steps(&self, run_id: RunId) -> Result<Vec<Step>> {
        let runs = self.runs()?;
        let entry = runs.get(&run_id)?;
        Ok(entry.steps.iter().map(KeptStep::step).collect())
    }

    async fn record_effect(&self, effect: &EffectRecord) -> Result<EffectRecord> {
        let mut runs = self.runs()?;
        let entry = runs.get_mut(&effect.run_id)?;
        let slot = entry
            .effects
            .entry((effect.step_index, effect.seq))
            .or_insert_with(|| cleaned(effect));
        if slot.state == EffectState::Intended {
            *slot = cleaned(effect);
        }
        Ok(slot.clone())
    }

    async fn record_intent(
        &self,
        intent: &EffectRecord,
        fence: i64,
    ) -> Result<Option<EffectRecord>> {
        let mut runs = self.runs()?;
        let entry = runs.get_mut(&intent.run_id)?;
        if entry.run.version != fence {
            return Err(Error::Conflict(format!(
                "run {} moved to version {} (this execution holds {fence})",
                intent.run_id, entry.run.version
            )));
        }
        match entry.effects.entry((intent.step_index, intent.seq)) {
            std::collections::btree_map::Entry::Occupied(e) => Ok(Some(e.get().clone())),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(intent.clone());
                Ok(None)
            }
        }
    }

    async fn release_intent(&self, run_id: RunId, step_index: u32, seq: u32) -> Result<()> {
        let mut runs = self.runs()?;
        let entry = runs.get_mut(&run_id)?;
        if entry
            .effects
            .get(&(step_index, seq))
            .is_some_and(|e| e.state == EffectState::Intended)
        {
            entry.effects.remove(&(step_index, seq));
        }
        Ok(())
    }

    async fn effects(&self, run_id: RunId, step_index: u32) -> Result<Vec<EffectRecord>> {
        let runs = self.runs()?;
        let entry = runs.get(&run_id)?;
        Ok(entry
            .effects
            .range((step_index, 0)..=(step_index, u32::MAX))
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn wait_for_events(
        &self,
        run_id: RunId,
        after_seq: u64,
        timeout: Duration,
    ) -> Result<()> {
        let mut rx = {
            let mut runs = self.runs()?;
            let entry = runs.get_mut(&run_id)?;
            let last = entry.last_seq();
            entry
                .watch
                .get_or_insert_with(|| watch::channel(last).0)
                .subscribe()
        };
        let wait = rx.wait_for(|seq| *seq > after_seq);
        // A timeout is a normal outcome: the caller reads again and decides.
        let _ = tokio::time::timeout(timeout, wait).await;
        Ok(())
    }

    async fn wait_for_settled(
        &self,
        run_id: RunId,
        _after_seq: u64,
        timeout: Duration,
    ) -> Result<()> {
        let mut rx = {
            let mut runs = self.runs()?;
            let entry = runs.get_mut(&run_id)?;
            let settled = entry.is_settled();
            entry
                .settled
                .get_or_insert_with(|| watch::channel(settled).0)
                .subscribe()
        };
        let _ = tokio::time::timeout(timeout, rx.wait_for(|settled| *settled)).await;
        Ok(())
    }

    async fn purge_runs(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
        let mut runs = self.runs()?;
        let victims: Vec<RunId> = runs
            .by_id
            .values()
            .filter(|e| e.run.status.is_terminal() && e.run.updated_at < cutoff)
            .map(|e| e.run.id)
            .take(limit as usize)
            .collect();
        for id in &victims {
            runs.remove(id);
        }
        Ok(victims.len() as u64)
    }
}

/// The record as stored: NUL characters replaced like every other stored value.
fn cleaned(effect: &EffectRecord) -> EffectRecord {
    let mut stored = effect.clone();
    replace_nul(&mut stored.output);
    if let Some(e) = stored.error.as_mut() {
        replace_nul(e);
    }
    stored
}

#[async_trait]
impl VectorStore for MemoryStore {
    async fn load_vectors(&self, space: &str, ids: &[String]) -> Result<Vec<StoredVector>> {
        let vectors = self.vectors()?;
        let Some(rows) = vectors.get(space) else {
            return Ok(Vec::new());
        };
        Ok(ids.iter().filter_map(|id| rows.get(id).cloned()).collect())
    }

    async fn save_vectors(&self, space: &str, vectors: &[StoredVector]) -> Result<()> {
        let mut all = self.vectors()?;
        let rows = all.entry(space.to_string()).or_default();
        for v in vectors {
            rows.insert(v.id.clone(), v.clone());
        }
        Ok(())
    }

    async fn delete_vectors(&self, space: &str, ids: &[String]) -> Result<()> {
        if let Some(rows) = self.vectors()?.get_mut(space) {
            for id in ids {
                rows.remove(id);
            }
        }
        Ok(())
    }
}

impl MemoryStore {
    fn vectors(&self) -> Result<MutexGuard<'_, HashMap<String, HashMap<String, StoredVector>>>> {
        self.inner
            .vectors
            .lock()
            .map_err(|_| Error::Internal("memory store lock poisoned".into()))
    }
}
