//! The provider and hub wrappers: retry, timeout and tracing, against scripted fakes. Waits
//! are recorded or run on paused time; nothing depends on the wall clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use logline_core::layer::LayerExt;
use logline_core::llm::{LlmProvider, LlmRequest, LlmResponse, LlmStreamEvent, Message};
use logline_core::retry::{Jitter, RetryHint, RetryPolicy};
use logline_core::run::Subject;
use logline_core::testing::{FakeToolHub, RecordingSleep, ScriptedLlm};
use logline_core::tool::{PageRequest, ToolContext, ToolHub, ToolPage, ToolSpec};
use logline_core::{Error, ErrorKind, Result};
use serde_json::{json, Value};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn policy(retries: u32) -> RetryPolicy {
    RetryPolicy::default()
        .with_max_retries(retries)
        .with_jitter(Jitter::None)
}

fn unavailable() -> Error {
    Error::backend("remote", ErrorKind::Unavailable, "HTTP 503", None)
}

fn rate_limited(after: u64) -> Error {
    Error::backend("remote", ErrorKind::RateLimited, "HTTP 429", None)
        .with_retry_hint(RetryHint::after(Some(secs(after))).not_executed(true))
}

fn connect_refused() -> Error {
    unavailable().with_retry_hint(RetryHint::default().not_executed(true))
}

fn request() -> LlmRequest {
    LlmRequest {
        model: "gpt-test".into(),
        messages: vec![Message::user("my password is hunter2")],
        max_output_tokens: Some(64),
        ..Default::default()
    }
}

// ------------------------------------------------------------------ retry: providers

#[tokio::test]
async fn retry_honours_the_server_wait_then_backs_off() {
    let llm = Arc::new(
        ScriptedLlm::new()
            .fail(rate_limited(3))
            .fail(unavailable())
            .reply_text("ok"),
    );
    let sleep = RecordingSleep::new();
    let provider = llm.clone().with_retry(policy(3)).with_sleep(sleep.clone());
    let answer = provider.complete(&request()).await.unwrap();
    assert_eq!(answer.text.as_deref(), Some("ok"));
    assert_eq!(llm.calls(), 3);
    // The server's 3 s, then the backoff after the second failure (0.5 s doubled).
    assert_eq!(sleep.waits(), vec![secs(3), Duration::from_millis(1000)]);
}

#[tokio::test]
async fn retry_gives_up_with_the_original_error() {
    let llm = Arc::new(
        ScriptedLlm::new()
            .fail(rate_limited(1))
            .fail(rate_limited(1))
            .fail(rate_limited(1)),
    );
    let sleep = RecordingSleep::new();
    let provider = llm.clone().with_retry(policy(2)).with_sleep(sleep.clone());
    let e = provider.complete(&request()).await.unwrap_err();
    assert_eq!(llm.calls(), 3);
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(secs(1)));
    assert_eq!(sleep.waits().len(), 2);
    assert_eq!(
        e.attempts(),
        3,
        "the attempts made are noted for the engine"
    );
}

#[tokio::test]
async fn retry_leaves_permanent_errors_alone() {
    let llm = Arc::new(ScriptedLlm::new().fail(Error::InvalidInput("bad schema".into())));
    let sleep = RecordingSleep::new();
    let provider = llm.clone().with_retry(policy(5)).with_sleep(sleep.clone());
    let e = provider.complete(&request()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(llm.calls(), 1);
    assert!(sleep.waits().is_empty());
}

#[tokio::test]
async fn retry_cuts_long_server_waits_to_the_maximum() {
    let llm = Arc::new(ScriptedLlm::new().fail(rate_limited(3600)).reply_text("ok"));
    let sleep = RecordingSleep::new();
    let provider = llm
        .clone()
        .with_retry(policy(1).with_max_retry_after(secs(20)))
        .with_sleep(sleep.clone());
    provider.complete(&request()).await.unwrap();
    assert_eq!(sleep.waits(), vec![secs(20)]);
}

#[tokio::test]
async fn retry_reopens_a_stream_that_failed_to_open() {
    let llm = Arc::new(
        ScriptedLlm::new()
            .fail(unavailable())
            .reply_text("streamed"),
    );
    let sleep = RecordingSleep::new();
    let provider = llm.clone().with_retry(policy(1)).with_sleep(sleep.clone());
    let events: Vec<_> = provider.stream(&request()).await.unwrap().collect().await;
    assert!(matches!(
        events.last(),
        Some(Ok(LlmStreamEvent::Completed { .. }))
    ));
    assert_eq!(llm.calls(), 2);
    assert_eq!(sleep.waits().len(), 1);
}

// ------------------------------------------------------------------ retry: hubs

/// A hub answering from scripts and counting calls.
#[derive(Default)]
struct ScriptedHub {
    pages: Mutex<VecDeque<Result<ToolPage>>>,
    executions: Mutex<VecDeque<Result<Value>>>,
    list_calls: AtomicUsize,
    execute_calls: AtomicUsize,
    /// How long an execution takes (counted when it starts).
    delay: Duration,
}

impl ScriptedHub {
    fn executing(results: Vec<Result<Value>>) -> Arc<Self> {
        Arc::new(ScriptedHub {
            executions: Mutex::new(results.into()),
            ..Default::default()
        })
    }

    fn listing(results: Vec<Result<ToolPage>>) -> Arc<Self> {
        Arc::new(ScriptedHub {
            pages: Mutex::new(results.into()),
            ..Default::default()
        })
    }

    fn executed(&self) -> usize {
        self.execute_calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ToolHub for ScriptedHub {
    fn name(&self) -> &str {
        "scripted"
    }
    async fn list_tools(&self, _: PageRequest) -> Result<ToolPage> {
        self.list_calls.fetch_add(1, Ordering::SeqCst);
        self.pages.lock().unwrap().pop_front().unwrap()
    }
    async fn execute(&self, _: &str, _: Value, _: &ToolContext) -> Result<Value> {
        self.execute_calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.executions.lock().unwrap().pop_front().unwrap()
    }
}

fn ctx() -> ToolContext {
    ToolContext::for_subject(Subject::tenant("t").with_user("u1"))
}

#[tokio::test]
async fn executions_are_resent_only_when_they_provably_did_not_run() {
    let sleep = RecordingSleep::new();
    // Connection refused, then rate limited before processing: both resent.
    let hub = ScriptedHub::executing(vec![
        Err(connect_refused()),
        Err(rate_limited(2)),
        Ok(json!({"sent": true})),
    ]);
    let retrying = hub.clone().with_retry(policy(3)).with_sleep(sleep.clone());
    let out = retrying.execute("mail.send", json!({}), &ctx()).await;
    assert_eq!(out.unwrap(), json!({"sent": true}));
    assert_eq!(hub.executed(), 3);
    assert_eq!(sleep.waits(), vec![Duration::from_millis(500), secs(2)]);

    // Outcome unknown: a server error, a timeout, a retryable tool failure. Never resent.
    for unknown in [
        unavailable(),
        Error::Timeout("no answer".into()),
        Error::ToolFailed {
            tool_id: "mail.send".into(),
            message: "flaky".into(),
            retryable: true,
        },
    ] {
        let kind = unknown.kind();
        let hub = ScriptedHub::executing(vec![Err(unknown), Ok(json!({}))]);
        let retrying = hub.clone().with_retry(policy(3)).with_sleep(sleep.clone());
        let e = retrying
            .execute("mail.send", json!({}), &ctx())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind);
        assert_eq!(hub.executed(), 1, "{kind}");
    }
}

#[tokio::test]
async fn catalog_reads_are_retried_like_model_calls() {
    let hub = ScriptedHub::listing(vec![Err(unavailable()), Ok(ToolPage::default())]);
    let sleep = RecordingSleep::new();
    let retrying = hub.clone().with_retry(policy(2)).with_sleep(sleep.clone());
    retrying.list_tools(PageRequest::default()).await.unwrap();
    assert_eq!(hub.list_calls.load(Ordering::SeqCst), 2);
    assert_eq!(retrying.name(), "scripted");
}

// ------------------------------------------------------------------ timeout

/// Answers after `delay` (paused time advances on its own).
struct Slow {
    delay: Duration,
    calls: AtomicUsize,
    /// Calls after the first answer at once.
    only_first: bool,
}

impl Slow {
    fn new(delay: Duration, only_first: bool) -> Arc<Self> {
        Arc::new(Slow {
            delay,
            calls: AtomicUsize::new(0),
            only_first,
        })
    }
}

#[async_trait]
impl LlmProvider for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    async fn complete(&self, _: &LlmRequest) -> Result<LlmResponse> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n == 0 || !self.only_first {
            tokio::time::sleep(self.delay).await;
        }
        Ok(LlmResponse::text("late"))
    }
    async fn stream(&self, _: &LlmRequest) -> Result<BoxStream<'static, Result<LlmStreamEvent>>> {
        let delay = self.delay;
        let first = futures::stream::iter([Ok(LlmStreamEvent::TextDelta {
            delta: "partial".into(),
        })]);
        let stalled = futures::stream::once(async move {
            tokio::time::sleep(delay).await;
            Ok(LlmStreamEvent::Completed {
                response: LlmResponse::text("partial"),
            })
        });
        Ok(first.chain(stalled).boxed())
    }
}

#[tokio::test(start_paused = true)]
async fn a_late_model_call_times_out() {
    let provider = Slow::new(secs(10), false).with_timeout(secs(1));
    let e = provider.complete(&request()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.to_string().contains("slow"), "{e}");

    let patient = Slow::new(secs(10), false).with_timeout(secs(30));
    let answer = patient.complete(&request()).await.unwrap();
    assert_eq!(answer.text.as_deref(), Some("late"));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_ends_with_a_timeout() {
    let provider = Slow::new(secs(10), false).with_timeout(secs(1));
    let items: Vec<_> = provider.stream(&request()).await.unwrap().collect().await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(matches!(&items[0], Ok(LlmStreamEvent::TextDelta { .. })));
    assert_eq!(items[1].as_ref().unwrap_err().kind(), ErrorKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_retried_for_models() {
    let slow = Slow::new(secs(10), true);
    let sleep = RecordingSleep::new();
    let provider = slow
        .clone()
        .with_timeout(secs(1))
        .with_retry(policy(2))
        .with_sleep(sleep.clone());
    provider.complete(&request()).await.unwrap();
    assert_eq!(slow.calls.load(Ordering::SeqCst), 2);
    assert_eq!(sleep.waits().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_execution_is_not_resent() {
    let hub = Arc::new(ScriptedHub {
        executions: Mutex::new(vec![Ok(json!({"sent": true})), Ok(json!({}))].into()),
        delay: secs(10),
        ..Default::default()
    });
    let sleep = RecordingSleep::new();
    let wrapped = hub
        .clone()
        .with_timeout(secs(1))
        .with_retry(policy(3))
        .with_sleep(sleep.clone());
    let e = wrapped
        .execute("mail.send", json!({}), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.to_string().contains("mail.send"), "{e}");
    assert_eq!(hub.executed(), 1);
    assert!(sleep.waits().is_empty());
}

// ------------------------------------------------------------------ traced

/// Collects formatted log output.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn capture() -> (Buffer, tracing::subscriber::DefaultGuard) {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn model_calls_are_traced_with_genai_attributes_and_no_content() {
    let (logs, _guard) = capture();
    let provider = ScriptedLlm::new()
        .reply_text("the answer mentions hunter2")
        .fail(rate_limited(1))
        .traced();
    provider.complete(&request()).await.unwrap();
    provider.complete(&request()).await.unwrap_err();
    let text = logs.text();
    for expected in [
        "gen_ai.chat",
        "gen_ai.operation.name=\"chat\"",
        "gen_ai.provider.name=scripted",
        "gen_ai.request.model=gpt-test",
        "gen_ai.request.max_tokens=64",
        "gen_ai.usage.input_tokens=100",
        "gen_ai.usage.output_tokens=20",
        "gen_ai.response.finish_reasons=\"stop\"",
        "error.type=\"rate_limited\"",
    ] {
        assert!(text.contains(expected), "missing {expected}: {text}");
    }
    assert!(!text.contains("hunter2"), "content leaked: {text}");
}

#[tokio::test]
async fn streamed_model_calls_record_usage_when_completed() {
    let (logs, _guard) = capture();
    let provider = ScriptedLlm::new().reply_text("hi").traced();
    let events: Vec<_> = provider.stream(&request()).await.unwrap().collect().await;
    assert_eq!(events.len(), 2);
    drop(events);
    let text = logs.text();
    assert!(text.contains("gen_ai.usage.output_tokens=20"), "{text}");
}

#[tokio::test]
async fn tool_calls_are_traced_by_tool_id_without_arguments() {
    let (logs, _guard) = capture();
    let hub = FakeToolHub::new("fake")
        .tool(
            ToolSpec::new("crm.lookup", "Find.", json!({"type": "object"})),
            |_| Ok(json!({"token": "sk-live-output-secret"})),
        )
        .traced();
    let out = hub
        .execute("crm.lookup", json!({"api_key": "sk-live-argument"}), &ctx())
        .await
        .unwrap();
    assert_eq!(out["token"], "sk-live-output-secret");
    let e = hub
        .execute("missing.tool", json!({}), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    hub.list_tools(PageRequest::default()).await.unwrap();
    let text = logs.text();
    for expected in [
        "gen_ai.execute_tool",
        "gen_ai.tool.name=crm.lookup",
        "gen_ai.operation.name=\"execute_tool\"",
        "logline.hub=fake",
        "error.type=\"not_found\"",
        "logline.operation=\"list_tools\"",
        "logline.count=1",
    ] {
        assert!(text.contains(expected), "missing {expected}: {text}");
    }
    assert!(!text.contains("sk-live"), "secret leaked: {text}");
}

#[test]
fn wrappers_stack_and_stay_backends() {
    fn provider<P: LlmProvider>(_: &P) {}
    fn hub<H: ToolHub>(_: &H) {}
    let stacked = ScriptedLlm::new()
        .with_timeout(secs(30))
        .with_retry(RetryPolicy::default())
        .traced();
    provider(&stacked);
    assert_eq!(stacked.get_ref().get_ref().deadline(), secs(30));
    let shared: Arc<dyn LlmProvider> = Arc::new(ScriptedLlm::new());
    provider(&shared.with_retry(RetryPolicy::none()));
    let boxed: Box<dyn ToolHub> = Box::new(FakeToolHub::new("fake"));
    hub(&boxed.with_timeout(secs(5)).traced());
}
