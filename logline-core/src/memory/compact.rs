//! Events and steps as the memory store keeps them: small JSON objects and arrays as text.
//!
//! A JSON object held as a [`Value`] costs a B-tree node of about 600 bytes however few its
//! keys; the same object as compact text costs its length. The memory store keeps what it
//! writes often and reads back rarely (event payloads, step inputs and outputs) this way
//! when the text is short. Longer values, scalars and values holding floats (which the
//! parser reads back to the nearest value, not always the same bits) stay as they are.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::event::{Event, EventKind, NewEvent, EVENT_SCHEMA_VERSION};
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
    /// Keeps `event` (its seq is set when it is appended).
    pub fn new(event: NewEvent) -> Self {
        KeptEvent {
            seq: 0,
            step_id: event.step_id,
            kind: event.kind,
            payload: CompactJson::new(event.payload),
            ts: event.ts,
        }
    }

    /// Keeps a copy of `event`.
    pub fn copied(event: &NewEvent) -> Self {
        KeptEvent {
            seq: 0,
            step_id: event.step_id,
            kind: event.kind,
            payload: CompactJson::of(&event.payload),
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

/// Longest text kept as text: short enough that its nesting stays far below the parser's
/// depth limit (128), so it always reads back.
const MAX_TEXT: usize = 192;

/// A JSON value as the memory store keeps it.
#[derive(Debug)]
pub(super) enum CompactJson {
    /// A short object or array, serialized.
    Text(Box<str>),
    /// Anything else, as it is.
    Value(Value),
}

impl CompactJson {
    /// Keeps `value` as text when that is smaller and reads back the same.
    pub fn new(value: Value) -> Self {
        match text_of(&value) {
            Some(text) => CompactJson::Text(text),
            None => CompactJson::Value(value),
        }
    }

    /// [`CompactJson::new`] of a copy of `value` (cloned only when not kept as text).
    pub fn of(value: &Value) -> Self {
        match text_of(value) {
            Some(text) => CompactJson::Text(text),
            None => CompactJson::Value(value.clone()),
        }
    }

    /// The value.
    pub fn value(&self) -> Value {
        match self {
            CompactJson::Text(text) => serde_json::from_str(text).unwrap_or_else(|e| {
                // Unreachable: the text was written by the serializer and is shallow.
                tracing::error!(error = %e, "kept JSON text does not parse");
                Value::Null
            }),
            CompactJson::Value(v) => v.clone(),
        }
    }
}

/// The text `value` is kept as: `None` for a scalar, a long value or one with a float.
fn text_of(value: &Value) -> Option<Box<str>> {
    let mut budget = MAX_TEXT;
    if !matches!(value, Value::Object(_) | Value::Array(_)) || !fits(value, &mut budget) {
        return None;
    }
    let mut text = Vec::with_capacity(MAX_TEXT - budget);
    serde_json::to_writer(&mut text, value).ok()?;
    String::from_utf8(text).ok().map(String::into_boxed_str)
}

/// Whether `v` holds no float and its unescaped text is at most `budget` bytes, taking its
/// size from `budget`. Stops as soon as the budget is spent, so a large value costs little;
/// every level of nesting takes at least two bytes, so what fits is shallow.
fn fits(v: &Value, budget: &mut usize) -> bool {
    let mut take = |n: usize| match budget.checked_sub(n) {
        Some(left) => {
            *budget = left;
            true
        }
        None => false,
    };
    match v {
        Value::Null | Value::Bool(_) => take(5),
        Value::Number(n) => !n.is_f64() && take(20),
        Value::String(s) => take(2 + s.len()),
        Value::Array(a) => take(2 + a.len()) && a.iter().all(|x| fits(x, budget)),
        Value::Object(m) => {
            take(2 + 4 * m.len() + m.keys().map(String::len).sum::<usize>())
                && m.values().all(|x| fits(x, budget))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn small_objects_are_kept_as_text_and_read_back_equal() {
        for v in [
            json!({"node_id": "n3", "node_type": "static", "index": 3}),
            json!([1, "two", {"three": [null, true]}]),
            json!({}),
            json!({"emoji": "\u{1F600}", "quote": "a\"b\\c\n", "big": u64::MAX, "neg": -7}),
        ] {
            let kept = CompactJson::new(v.clone());
            assert!(matches!(kept, CompactJson::Text(_)), "{v}");
            assert_eq!(kept.value(), v);
        }
    }

    fn json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever is kept reads back equal, as text or as it is.
        #[test]
        fn any_value_reads_back_equal(v in json()) {
            proptest::prop_assert_eq!(CompactJson::new(v.clone()).value(), v);
        }
    }

    #[test]
    fn large_values_floats_and_scalars_stay_values() {
        let long = json!({"text": "x".repeat(MAX_TEXT)});
        let float = json!({"cost": 0.1 + 0.2});
        let deep = (0..200).fold(json!(1), |v, _| json!([v]));
        for v in [long, float, deep, json!("a string"), json!(12), Value::Null] {
            let kept = CompactJson::new(v.clone());
            assert!(matches!(kept, CompactJson::Value(_)), "{v}");
            assert_eq!(kept.value(), v);
        }
    }
}
