//! Fuzzing with `proptest` (feature `testing`): the case count from the environment, a runner
//! that turns a panic into a reported failure, JSON generators and structure-aware mutations
//! of valid documents (near-valid inputs reach far deeper into a parser than random bytes).
//!
//! The number of cases per target is `LOGLINE_FUZZ_CASES`, else `PROPTEST_CASES`, else the
//! target's small default (so that `cargo test` stays fast):
//!
//! ```
//! use logline_core::testing::fuzz;
//! use logline_core::testing::fuzz::proptest::prelude::*;
//!
//! fuzz::run("parse_u8", 64, any::<String>(), |s| {
//!     let _ = s.parse::<u8>();
//!     Ok(())
//! });
//! ```

use std::time::Instant;

pub use proptest;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{Map, Number, Value};

/// Cases per target: `LOGLINE_FUZZ_CASES`, else `PROPTEST_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    ["LOGLINE_FUZZ_CASES", "PROPTEST_CASES"]
        .iter()
        .find_map(|var| std::env::var(var).ok()?.trim().parse().ok())
        .unwrap_or(default)
}

/// Runs `test` on [`cases`]`(default_cases)` values of `strategy`. A panic or an `Err` fails
/// the calling test with the smallest input proptest found. Prints the target's name, case
/// count and time to stderr (`--nocapture` shows it).
pub fn run<S: Strategy>(
    name: &str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let cases = cases(default_cases);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let started = Instant::now();
    let outcome = runner.run(&strategy, test);
    eprintln!(
        "fuzz {name}: {cases} cases in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    match outcome {
        Ok(()) => {}
        Err(TestError::Abort(reason)) => panic!("fuzz {name} aborted: {reason}"),
        Err(TestError::Fail(reason, input)) => {
            panic!("fuzz {name} failed: {reason}\nminimal input: {input:#?}")
        }
    }
}

/// Strings: one of `words` (the tokens the parser looks for), an arbitrary string, or a word
/// with arbitrary text around it.
pub fn text(words: &'static [&'static str]) -> BoxedStrategy<String> {
    let word = proptest::sample::select(words).prop_map(str::to_string);
    prop_oneof![
        4 => word.clone(),
        2 => any::<String>(),
        1 => (word, any::<String>(), any::<bool>())
            .prop_map(|(w, s, before)| if before { format!("{s}{w}") } else { format!("{w}{s}") }),
    ]
    .boxed()
}

/// JSON numbers, the awkward ones included (extremes, fractions, huge exponents).
pub fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        (-3i64..1000).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(serde_json::json!(1e300)),
        Just(serde_json::json!(-0.0)),
        Just(serde_json::json!(0.5)),
    ]
    .boxed()
}

/// Any JSON value, its strings drawn from `words` and arbitrary text, at most 4 levels deep.
pub fn json(words: &'static [&'static str]) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text(words).prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((text(words), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// One structural edit of a JSON document; the numbers pick the node it applies to (modulo
/// the number of nodes, in document order, the root first).
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Replace a node by a value.
    Replace(u32, Value),
    /// Remove a node from its object or array.
    Remove(u32),
    /// Add a member (objects) or element (arrays) to a container.
    Insert(u32, String, Value),
    /// Copy one node over another.
    Copy(u32, u32),
    /// Give a node another JSON type, keeping what can be kept.
    Retype(u32),
}

/// A mutation whose new values come from `json(words)`.
pub fn mutation(words: &'static [&'static str]) -> BoxedStrategy<Mutation> {
    prop_oneof![
        3 => (any::<u32>(), json(words)).prop_map(|(i, v)| Mutation::Replace(i, v)),
        3 => any::<u32>().prop_map(Mutation::Remove),
        2 => (any::<u32>(), text(words), json(words))
            .prop_map(|(i, k, v)| Mutation::Insert(i, k, v)),
        1 => (any::<u32>(), any::<u32>()).prop_map(|(a, b)| Mutation::Copy(a, b)),
        2 => any::<u32>().prop_map(Mutation::Retype),
    ]
    .boxed()
}

/// One of `seeds` with 0 to 4 [`Mutation`]s applied.
pub fn mutated(seeds: Vec<Value>, words: &'static [&'static str]) -> BoxedStrategy<Value> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec(mutation(words), 0..5),
    )
        .prop_map(|(seed, edits)| apply(seed, &edits))
        .boxed()
}

/// One of the serialised `seeds` cut, with bytes flipped, removed or inserted, as text
/// (invalid UTF-8 replaced): what a broken or hostile body looks like.
pub fn mangled_text(seeds: Vec<String>) -> BoxedStrategy<String> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec((any::<u32>(), any::<u8>(), 0u8..4), 0..6),
    )
        .prop_map(|(seed, edits)| {
            let mut bytes = seed.into_bytes();
            for (at, byte, op) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let i = at as usize % bytes.len();
                match op {
                    0 => bytes[i] = byte,
                    1 => {
                        bytes.remove(i);
                    }
                    2 => bytes.insert(i, byte),
                    _ => bytes.truncate(i),
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .boxed()
}

/// `doc` with `edits` applied in order.
pub fn apply(mut doc: Value, edits: &[Mutation]) -> Value {
    for edit in edits {
        let paths = paths(&doc);
        let pick = |i: &u32| paths[*i as usize % paths.len()].clone();
        match edit {
            Mutation::Replace(i, v) => set(&mut doc, &pick(i), v.clone()),
            Mutation::Remove(i) => remove(&mut doc, &pick(i)),
            Mutation::Insert(i, key, v) => {
                if let Some(node) = pointer_mut(&mut doc, &pick(i)) {
                    match node {
                        Value::Object(m) => {
                            m.insert(key.clone(), v.clone());
                        }
                        Value::Array(a) => a.push(v.clone()),
                        other => *other = Value::Array(vec![other.clone(), v.clone()]),
                    }
                }
            }
            Mutation::Copy(from, to) => {
                let value = pointer(&doc, &pick(from)).cloned().unwrap_or(Value::Null);
                set(&mut doc, &pick(to), value);
            }
            Mutation::Retype(i) => {
                if let Some(node) = pointer_mut(&mut doc, &pick(i)) {
                    *node = retyped(node);
                }
            }
        }
    }
    doc
}

/// A path segment: an object key or an array index.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    At(usize),
}

/// Every node's path, the root's (empty) first.
fn paths(doc: &Value) -> Vec<Vec<Seg>> {
    fn walk(v: &Value, here: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
        out.push(here.clone());
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    here.push(Seg::Key(k.clone()));
                    walk(child, here, out);
                    here.pop();
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    here.push(Seg::At(i));
                    walk(child, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, &mut Vec::new(), &mut out);
    out
}

fn pointer<'a>(doc: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, seg| match (v, seg) {
        (Value::Object(m), Seg::Key(k)) => m.get(k),
        (Value::Array(a), Seg::At(i)) => a.get(*i),
        _ => None,
    })
}

fn pointer_mut<'a>(doc: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(doc, |v, seg| match (v, seg) {
        (Value::Object(m), Seg::Key(k)) => m.get_mut(k),
        (Value::Array(a), Seg::At(i)) => a.get_mut(*i),
        _ => None,
    })
}

fn set(doc: &mut Value, path: &[Seg], value: Value) {
    if let Some(node) = pointer_mut(doc, path) {
        *node = value;
    }
}

fn remove(doc: &mut Value, path: &[Seg]) {
    let Some((last, parent)) = path.split_last() else {
        *doc = Value::Null;
        return;
    };
    match (pointer_mut(doc, parent), last) {
        (Some(Value::Object(m)), Seg::Key(k)) => {
            m.remove(k);
        }
        (Some(Value::Array(a)), Seg::At(i)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

fn retyped(v: &Value) -> Value {
    match v {
        Value::Null => Value::Object(Map::new()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::String(s) => s
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or_else(|| Value::from(s.len()), Value::Number),
        Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
        Value::Object(m) => Value::Array(m.values().cloned().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mutations_edit_the_picked_node() {
        let doc = json!({"a": [1, 2], "b": "3"});
        // Paths in order: root, a, a/0, a/1, b.
        assert_eq!(
            apply(doc.clone(), &[Mutation::Remove(2)]),
            json!({"a": [2], "b": "3"})
        );
        assert_eq!(
            apply(doc.clone(), &[Mutation::Retype(4)]),
            json!({"a": [1, 2], "b": 3.0})
        );
        assert_eq!(
            apply(doc, &[Mutation::Replace(0, json!(null))]),
            json!(null)
        );
    }
}
