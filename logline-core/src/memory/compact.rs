//! Events and steps as the memory store keeps them: their JSON as [`CompactJson`], small
//! objects and arrays as text.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::{Event, EventKind, NewEvent, EVENT_SCHEMA_VERSION};
use crate::json::CompactJson;
use crate::run::{RunId, Step};

/// An event as kept (its run is the entry that holds it).
#[derive(Debug)]
pub(super) struct KeptEvent {
    /// Set when it is appended.
    pub seq: u64,
    step_id: Option<Uuid>,
    kind: EventKind,
    payload: CompactJson,
    ts: DateTime<Utc>,
}

impl KeptEvent {
    /// Keeps `event`, NULs replaced (its seq is set when it is appended).
    pub fn new(event: NewEvent) -> Self {
        KeptEvent {
            seq: 0,
            step_id: event.step_id,
            kind: event.kind,
            payload: event.payload.without_nul().into_compact(),
            ts: event.ts,
        }
    }

    /// The event of run `run_id`.
    pub fn event(&self, run_id: RunId) -> Event {
        Event {
            run_id,
            seq: self.seq,
            step_id: self.step_id,
            kind: self.kind,
            payload: self.payload.value(),
            ts: self.ts,
            schema_version: EVENT_SCHEMA_VERSION,
        }
    }
}

/// A step as kept: its JSON values compact, the rest as it is.
#[derive(Debug)]
pub(super) struct KeptStep {
    /// The step without input, output and error.
    bare: Step,
    input: CompactJson,
    output: Option<CompactJson>,
    error: Option<CompactJson>,
}

impl KeptStep {
    /// Keeps `step`.
    pub fn new(mut step: Step) -> Self {
        let input = CompactJson::new(std::mem::take(&mut step.input));
        let output = step.output.take().map(CompactJson::new);
        let error = step.error.take().map(CompactJson::new);
        KeptStep {
            bare: step,
            input,
            output,
            error,
        }
    }

    /// Its index in the run.
    pub fn index(&self) -> u32 {
        self.bare.index
    }

    /// The step.
    pub fn step(&self) -> Step {
        Step {
            input: self.input.value(),
            output: self.output.as_ref().map(CompactJson::value),
            error: self.error.as_ref().map(CompactJson::value),
            ..self.bare.clone()
        }
    }
}

/// A run's steps as kept, in index order. Steps are committed in index order (a step is
/// committed again at the same index when it resumes), so a put is almost always a push.
#[derive(Debug, Default)]
pub(super) struct KeptSteps(Vec<KeptStep>);

impl KeptSteps {
    /// Keeps `step`, replacing the step kept at its index.
    pub fn put(&mut self, step: KeptStep) {
        let index = step.index();
        if self.0.last().is_none_or(|last| last.index() < index) {
            self.0.push(step);
            return;
        }
        match self.0.binary_search_by_key(&index, KeptStep::index) {
            Ok(at) => self.0[at] = step,
            Err(at) => self.0.insert(at, step),
        }
    }

    /// Frees the room kept for more steps.
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }

    /// The steps in index order.
    pub fn iter(&self) -> impl Iterator<Item = &KeptStep> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::run::StepStatus;
    use crate::workflow::NodeType;

    fn step(index: u32, node: &str) -> KeptStep {
        KeptStep::new(Step {
            id: Uuid::nil(),
            run_id: Uuid::nil(),
            index,
            node_id: node.into(),
            node_type: NodeType::Static,
            status: StepStatus::Completed,
            input: json!({ "at": index }),
            output: None,
            error: None,
            started_at: Utc::now(),
            finished_at: None,
        })
    }

    #[test]
    fn steps_stay_in_index_order_and_a_step_put_again_replaces_its_index() {
        let mut steps = KeptSteps::default();
        for (index, node) in [(0, "a"), (1, "b"), (3, "d"), (2, "c"), (1, "b2")] {
            steps.put(step(index, node));
        }
        steps.shrink_to_fit();
        let kept: Vec<(u32, String)> = steps
            .iter()
            .map(KeptStep::step)
            .map(|s| (s.index, s.node_id))
            .collect();
        let expected = [(0, "a"), (1, "b2"), (2, "c"), (3, "d")].map(|(i, n)| (i, n.to_string()));
        assert_eq!(kept, expected);
        assert_eq!(
            steps.iter().nth(2).map(|s| s.step().input),
            Some(json!({ "at": 2 }))
        );
    }
}
