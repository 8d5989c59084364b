//! What the engine tells a tracing subscriber and a metrics recorder about a run: the span
//! tree run > step > gen_ai.chat / gen_ai.execute_tool with their attributes and no argument
//! values, and the counters of a golden run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::*;
use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::{Engine, StartRun};
use logline_core::llm::TokenUsage;
use logline_core::run::{Budget, RunStatus};
use logline_core::telemetry;
use logline_core::testing::{golden, ScriptedLlm};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// A span as the capture layer saw it.
#[derive(Debug, Clone)]
struct Captured {
    name: &'static str,
    /// Index of the parent in the captured list.
    parent: Option<usize>,
    fields: BTreeMap<String, String>,
    open: bool,
    id: u64,
}

/// A layer that keeps every span with its parent and recorded fields.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl Capture {
    /// The open span with `id` (ids are reused after a span closes).
    fn open_index(spans: &[Captured], id: u64) -> Option<usize> {
        spans.iter().rposition(|s| s.open && s.id == id)
    }

    fn spans(&self) -> Vec<Captured> {
        self.0.lock().unwrap().clone()
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent_id = ctx
            .span(id)
            .and_then(|s| s.parent().map(|p| p.id().into_u64()));
        let mut spans = self.0.lock().unwrap();
        let parent = parent_id.and_then(|p| Self::open_index(&spans, p));
        spans.push(Captured {
            name: attrs.metadata().name(),
            parent,
            fields,
            open: true,
            id: id.into_u64(),
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some(i) = Self::open_index(&spans, id.into_u64()) {
            values.record(&mut Fields(&mut spans[i].fields));
        }
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some(i) = Self::open_index(&spans, id.into_u64()) {
            spans[i].open = false;
        }
    }
}

fn field<'a>(span: &'a Captured, name: &str) -> &'a str {
    span.fields
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("span `{}` has no `{name}`: {:?}", span.name, span.fields))
}

/// The tests of this file run one at a time: a span callsite first hit on one thread while
/// another thread sets or drops its subscriber can keep a stale "never" interest (tracing
/// caches interest per callsite, process-wide), and the span test would see no step spans.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SECRET_INPUT: &str = "s3cr3t-run-input";
const SECRET_ARGUMENT: &str = "s3cr3t-tool-argument";

// A current-thread runtime: the workers' tasks run on this thread, under the subscriber and
// the recorder set for it.
#[tokio::test]
async fn spans_nest_run_step_and_calls_with_genai_attributes_and_no_values() {
    let _serial = SERIAL.lock().await;
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    tracing::callsite::rebuild_interest_cache();

    let llm = Arc::new(
        ScriptedLlm::new()
            .with_usage(TokenUsage {
                input_tokens: 11,
                cached_input_tokens: 0,
                output_tokens: 7,
            })
            .reply_tool_calls(&[("echo", json!({ "note": SECRET_ARGUMENT }))])
            .reply_text("done"),
    );
    let h = harness(Some(llm), Some(Arc::new(hub()))).await;
    h.engine
        .register_agent(
            &Agent::new(
                "agent.obs",
                "Use echo, then answer.",
                ModelProfile::new("m1"),
            )
            .with_tools(["echo"]),
        )
        .await
        .unwrap();
    let wf = workflow(
        "obs",
        json!({ "entry": "start", "nodes": [
            { "id": "start", "type": "static" },
            { "id": "ask", "type": "agent_node", "config": { "agent_id": "agent.obs" } } ],
          "edges": [ { "from": "start", "to": "ask" } ] }),
    );
    h.engine.register_workflow(&wf).await.unwrap();
    let run = h.run("obs", json!({ "question": SECRET_INPUT })).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);

    let spans = capture.spans();
    let runs: Vec<usize> = (0..spans.len())
        .filter(|&i| spans[i].name == "run")
        .collect();
    assert_eq!(runs.len(), 1, "one execution of the run: {spans:?}");
    let run_span = &spans[runs[0]];
    assert_eq!(field(run_span, "logline.run.id"), run.id.to_string());
    assert_eq!(field(run_span, "logline.workflow.id"), "obs");
    assert_eq!(field(run_span, "logline.tenant.id"), "acme");
    assert_eq!(field(run_span, "logline.run.status"), "completed");

    let steps: Vec<usize> = (0..spans.len())
        .filter(|&i| spans[i].name == "step")
        .collect();
    let described: Vec<(&str, &str, &str, &str)> = steps
        .iter()
        .map(|&i| {
            let s = &spans[i];
            assert_eq!(s.parent, Some(runs[0]), "a step is a child of its run");
            (
                field(s, "logline.node.id"),
                field(s, "logline.node.kind"),
                field(s, "logline.step.attempt"),
                field(s, "logline.step.status"),
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            ("start", "static", "1", "completed"),
            ("ask", "agent_node", "1", "completed")
        ]
    );
    let ask = steps[1];

    let chats: Vec<&Captured> = spans.iter().filter(|s| s.name == "gen_ai.chat").collect();
    assert_eq!(chats.len(), 2, "two model turns");
    for chat in &chats {
        assert_eq!(
            chat.parent,
            Some(ask),
            "a model call is a child of its step"
        );
        assert_eq!(field(chat, "gen_ai.operation.name"), "chat");
        assert_eq!(field(chat, "gen_ai.provider.name"), "scripted");
        assert_eq!(field(chat, "gen_ai.request.model"), "m1");
        assert_eq!(field(chat, "gen_ai.response.model"), "m1");
        assert_eq!(field(chat, "gen_ai.usage.input_tokens"), "11");
        assert_eq!(field(chat, "gen_ai.usage.output_tokens"), "7");
    }
    let reasons: Vec<&str> = chats
        .iter()
        .map(|c| field(c, "gen_ai.response.finish_reasons"))
        .collect();
    assert_eq!(reasons, ["tool_calls", "stop"]);

    let tools: Vec<&Captured> = spans
        .iter()
        .filter(|s| s.name == "gen_ai.execute_tool")
        .collect();
    assert_eq!(tools.len(), 1);
    assert_eq!(
        tools[0].parent,
        Some(ask),
        "a tool call is a child of its step"
    );
    assert_eq!(field(tools[0], "gen_ai.operation.name"), "execute_tool");
    assert_eq!(field(tools[0], "gen_ai.tool.name"), "echo");
    assert_eq!(field(tools[0], "gen_ai.tool.call.id"), "call_0_echo");
    assert_eq!(field(tools[0], "logline.run_id"), run.id.to_string());

    for s in &spans {
        for (k, v) in &s.fields {
            assert!(
                !v.contains(SECRET_INPUT) && !v.contains(SECRET_ARGUMENT) && !v.contains("done"),
                "span `{}` field `{k}` carries a value of the run: {v}",
                s.name
            );
        }
    }
}

/// The metrics recorded on this thread so far: (kind, name, sorted labels) → value.
fn recorded(snapshotter: &Snapshotter) -> BTreeMap<(MetricKind, String, Vec<String>), DebugValue> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            ((kind, key.name().to_string(), labels), value)
        })
        .collect()
}

fn counter(
    seen: &BTreeMap<(MetricKind, String, Vec<String>), DebugValue>,
    name: &str,
    labels: &[&str],
) -> u64 {
    let key = (
        MetricKind::Counter,
        name.to_string(),
        labels.iter().map(|l| l.to_string()).collect(),
    );
    match seen.get(&key) {
        Some(DebugValue::Counter(n)) => *n,
        _ => 0,
    }
}

fn histogram_samples(
    seen: &BTreeMap<(MetricKind, String, Vec<String>), DebugValue>,
    name: &str,
    labels: &[&str],
) -> usize {
    let key = (
        MetricKind::Histogram,
        name.to_string(),
        labels.iter().map(|l| l.to_string()).collect(),
    );
    match seen.get(&key) {
        Some(DebugValue::Histogram(v)) => v.len(),
        _ => 0,
    }
}

/// An engine with the golden workflow, its tool and its scripted model installed.
async fn golden_engine() -> Engine {
    let engine = golden::with_tool(Engine::builder().default_llm(Arc::new(golden::scripted_llm())))
        .build()
        .await
        .unwrap();
    golden::install(&engine, "gpt-4o-mini").await.unwrap();
    engine
}

#[tokio::test]
async fn a_golden_run_counts_runs_steps_tokens_and_tool_calls() {
    let _serial = SERIAL.lock().await;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let engine = golden_engine().await;
    let pool = engine.spawn_workers(worker_options());
    let run = engine
        .run_to_completion(StartRun::new(
            golden::WORKFLOW_ID,
            json!({ "hotel_id": "VV-LISBON" }),
            subject(),
        ))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    pool.shutdown().await;

    let seen = recorded(&snapshotter);
    assert_eq!(counter(&seen, telemetry::RUNS_STARTED, &[]), 1);
    assert_eq!(counter(&seen, telemetry::RUNS, &["status=completed"]), 1);
    assert_eq!(counter(&seen, telemetry::RUNS, &["status=failed"]), 0);
    assert_eq!(
        counter(&seen, telemetry::TOOL_CALLS, &["tool=ticketing.list_open"]),
        1
    );
    assert_eq!(
        counter(
            &seen,
            telemetry::LLM_CALLS,
            &["model=gpt-4o-mini", "outcome=ok", "provider=default"]
        ),
        1,
        "{seen:?}"
    );
    // The scripted model reports 100 input and 20 output tokens per call.
    let tokens = |t: &str| {
        counter(
            &seen,
            telemetry::LLM_TOKENS,
            &["model=gpt-4o-mini", &format!("type={t}")],
        )
    };
    assert_eq!((tokens("input"), tokens("output")), (100, 20));
    for kind in ["static", "tool_node", "agent_node"] {
        assert_eq!(
            histogram_samples(&seen, telemetry::STEP_DURATION, &[&format!("kind={kind}")]),
            1,
            "one {kind} step"
        );
    }
    assert_eq!(
        counter(
            &seen,
            telemetry::TOOL_ERRORS,
            &["error=not_found", "tool=ticketing.list_open"]
        ),
        0
    );
}

#[tokio::test]
async fn a_spent_budget_counts_a_failed_run_and_its_kind() {
    let _serial = SERIAL.lock().await;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let engine = golden_engine().await;
    let pool = engine.spawn_workers(worker_options());
    let req = StartRun::new(
        golden::WORKFLOW_ID,
        json!({ "hotel_id": "VV-LISBON" }),
        subject(),
    )
    .budget(Budget {
        llm_calls_limit: Some(0),
        ..Budget::default()
    });
    let run = engine.run_to_completion(req).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    pool.shutdown().await;

    let seen = recorded(&snapshotter);
    assert_eq!(counter(&seen, telemetry::RUNS, &["status=failed"]), 1);
    assert_eq!(counter(&seen, telemetry::RUNS, &["status=completed"]), 0);
    assert_eq!(
        counter(&seen, telemetry::BUDGET_EXCEEDED, &["kind=llm_calls"]),
        1
    );
    assert_eq!(
        counter(
            &seen,
            telemetry::LLM_CALLS,
            &["model=gpt-4o-mini", "outcome=ok", "provider=default"]
        ),
        0,
        "no model call was sent"
    );
}
