//! Key redaction, cancellation by drop, configuration from the environment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use logline_core::llm::LlmProvider;
use logline_openai::testing::{responses_text, FakeOpenAi, FakeReply, Tokens};
use logline_openai::{OpenAiConfig, OpenAiConfigBuilder, OpenAiEmbedder, OpenAiProvider};

const SECRET: &str = "sk-proj-THIS-IS-A-SECRET-abcdef0123456789";

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_key_never_shows_in_debug_errors_or_logs() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::error(500, "server_error", None, "boom"));
    fake.push(FakeReply::error(
        401,
        "invalid_request_error",
        Some("invalid_api_key"),
        "Incorrect API key provided: sk-proj-****6789.",
    ));
    let sleep = logline_openai::testing::RecordingSleep::new();
    let config = fake
        .config()
        .api_key(SECRET)
        .sleeper(sleep)
        .build()
        .unwrap();
    let provider = OpenAiProvider::new(config.clone()).unwrap();
    let embedder = OpenAiEmbedder::new(config.clone()).unwrap();
    let err = provider.complete(&simple_request("x")).await.unwrap_err();
    assert_eq!(err.kind(), logline_core::ErrorKind::Unauthorized);

    // The key went to the server, and only there.
    assert_eq!(
        fake.requests()[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
    let shown = format!(
        "{config:?}\n{provider:?}\n{embedder:?}\n{err}\n{err:?}\n{}",
        err.to_json()
    );
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("redacted"));
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying"), "the retry was logged: {logs}");
    assert!(!logs.contains(SECRET), "{logs}");
}

#[tokio::test]
async fn dropping_the_call_cancels_it() {
    let fake = FakeOpenAi::start().await;
    fake.push(
        FakeReply::json(responses_text(MODEL, "late", Tokens::default()))
            .delay(Duration::from_secs(30)),
    );
    fake.push(FakeReply::json(responses_text(
        MODEL,
        "next",
        Tokens::default(),
    )));
    let (provider, sleep) = provider(&fake, false);
    let req = simple_request("x");
    {
        let call = provider.complete(&req);
        tokio::pin!(call);
        // Run the call until the server has the request, then drop it (what the engine does
        // when a run is cancelled).
        loop {
            tokio::select! {
                r = &mut call => panic!("completed unexpectedly: {r:?}"),
                _ = tokio::time::sleep(Duration::from_millis(5)) => {
                    if fake.request_count() == 1 { break; }
                }
            }
        }
    }
    // No retry was scheduled for the dropped call, and the provider keeps working.
    assert!(sleep.waits().is_empty());
    let answer = provider.complete(&req).await.unwrap();
    assert_eq!(answer.text.as_deref(), Some("next"));
    assert_eq!(fake.request_count(), 2);
}

#[test]
fn configuration_from_environment_variables() {
    let vars = |k: &str| match k {
        "OPENAI_API_KEY" => Some(SECRET.to_string()),
        "OPENAI_BASE_URL" => Some("http://127.0.0.1:8000/v1".to_string()),
        "OPENAI_ORGANIZATION" => Some("org-x".to_string()),
        "OPENAI_PROJECT" => Some("proj-y".to_string()),
        "LOGLINE_OPENAI_API" => Some("chat_completions".to_string()),
        _ => None,
    };
    let c = OpenAiConfigBuilder::from_vars(vars).build().unwrap();
    assert_eq!(c.base_url(), "http://127.0.0.1:8000/v1");
    assert_eq!(c.organization(), Some("org-x"));
    assert_eq!(c.project(), Some("proj-y"));
    assert_eq!(c.mode(), logline_openai::ApiMode::ChatCompletions);
    assert!(c.has_api_key());
    assert!(!format!("{c:?}").contains(SECRET));
    // Builder defaults.
    let d = OpenAiConfig::builder().api_key("k").build().unwrap();
    assert_eq!(d.base_url(), "https://api.openai.com/v1");
    assert_eq!(d.timeout(), Duration::from_secs(600));
    assert_eq!(d.retry().max_retries, 2);
    assert_eq!(d.name(), "openai");
}

#[tokio::test]
async fn a_key_echoed_by_the_server_is_scrubbed_and_the_redactor_learns_it() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::error(
        401,
        "invalid_request_error",
        Some("invalid_api_key"),
        &format!("Incorrect API key provided: {SECRET}. Header was `Bearer {SECRET}`."),
    ));
    let config = fake.config().api_key(SECRET).build().unwrap();
    let provider = OpenAiProvider::new(config.clone()).unwrap();
    let err = provider.complete(&simple_request("x")).await.unwrap_err();
    let shown = format!("{err}\n{err:?}\n{}", err.to_json());
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(
        shown.contains("Incorrect API key provided: [REDACTED]"),
        "{shown}"
    );

    // Literal registration: the key is removed even where no pattern would match it.
    let redactor = config.redact_secrets(logline_core::redact::Redactor::none());
    assert_eq!(
        redactor.redact_str(&format!("job failed: key={SECRET}")),
        Some("job failed: key=[REDACTED]".to_string())
    );
    let keyless = fake.config().build().unwrap();
    assert_eq!(
        keyless
            .redact_secrets(logline_core::redact::Redactor::none())
            .redact_str(SECRET),
        None
    );
}
