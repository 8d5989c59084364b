//! Retries and error mapping: attempt counts and the waits honoured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use logline_core::llm::LlmProvider;
use logline_core::ErrorKind;
use logline_openai::testing::{responses_text, FakeOpenAi, FakeReply, RecordingSleep, Tokens};
use logline_openai::{Jitter, OpenAiProvider, RetryPolicy};

fn ok() -> FakeReply {
    FakeReply::json(responses_text(MODEL, "ok", Tokens::new(1, 0, 1)))
}

fn rate_limited() -> FakeReply {
    FakeReply::error(
        429,
        "tokens",
        Some("rate_limit_exceeded"),
        "Rate limit reached for gpt-5.4-mini on tokens per min (TPM): Limit 30000.",
    )
}

#[tokio::test]
async fn retry_after_ms_is_honoured() {
    let fake = FakeOpenAi::start().await;
    fake.push(
        rate_limited()
            .header("retry-after-ms", "1500")
            .header("retry-after", "9"),
    );
    fake.push(ok());
    let (provider, sleep) = provider(&fake, false);
    let answer = provider.complete(&simple_request("x")).await.unwrap();
    assert_eq!(answer.text.as_deref(), Some("ok"));
    assert_eq!(fake.request_count(), 2);
    assert_eq!(sleep.waits(), vec![Duration::from_millis(1500)]);
}

#[tokio::test]
async fn retry_after_seconds_fractional_and_http_date() {
    let fake = FakeOpenAi::start().await;
    fake.push(rate_limited().header("retry-after", "2.5"));
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(5));
    fake.push(FakeReply::error(503, "server_error", None, "busy").header("retry-after", &date));
    fake.push(ok());
    let (provider, sleep) = provider(&fake, false);
    provider.complete(&simple_request("x")).await.unwrap();
    assert_eq!(fake.request_count(), 3);
    let waits = sleep.waits();
    assert_eq!(waits.len(), 2);
    assert_eq!(waits[0], Duration::from_millis(2500));
    // HTTP dates have whole-second precision: the wait is the rest of those 5 seconds.
    assert!(
        waits[1] > Duration::from_secs(3) && waits[1] <= Duration::from_secs(5),
        "{waits:?}"
    );
}

#[tokio::test]
async fn server_errors_back_off_exponentially_then_give_up() {
    let fake = FakeOpenAi::start().await;
    // 5xx bodies may not be JSON.
    for _ in 0..4 {
        fake.push(FakeReply::text(
            502,
            "<html><body>Bad Gateway</body></html>",
        ));
    }
    let sleep = RecordingSleep::new();
    let provider = OpenAiProvider::new(
        fake.config()
            .sleeper(sleep.clone())
            .retry(
                RetryPolicy::default()
                    .with_max_retries(3)
                    .with_jitter(Jitter::None),
            )
            .build()
            .unwrap(),
    )
    .unwrap();
    let e = provider.complete(&simple_request("x")).await.unwrap_err();
    assert_eq!(fake.request_count(), 4);
    assert_eq!(
        sleep.waits(),
        vec![
            Duration::from_millis(500),
            Duration::from_millis(1000),
            Duration::from_millis(2000)
        ]
    );
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_retryable());
    let msg = e.to_string();
    assert!(msg.contains("502") && msg.contains("Bad Gateway"), "{msg}");
    assert!(msg.contains("after 4 attempts"), "{msg}");
}

#[tokio::test]
async fn default_policy_two_retries_with_jitter() {
    let fake = FakeOpenAi::start().await;
    for _ in 0..3 {
        fake.push(FakeReply::error(500, "server_error", None, "oops"));
    }
    let sleep = RecordingSleep::new();
    let provider =
        OpenAiProvider::new(fake.config().sleeper(sleep.clone()).build().unwrap()).unwrap();
    let e = provider.complete(&simple_request("x")).await.unwrap_err();
    assert_eq!(fake.request_count(), 3);
    let waits = sleep.waits();
    assert_eq!(waits.len(), 2);
    assert!(
        waits[0] >= Duration::from_millis(375) && waits[0] <= Duration::from_millis(500),
        "{waits:?}"
    );
    assert!(
        waits[1] >= Duration::from_millis(750) && waits[1] <= Duration::from_millis(1000),
        "{waits:?}"
    );
    assert!(e.to_string().contains("after 3 attempts"), "{e}");
    // The engine reads the attempts to not retry the call again through its job.
    assert_eq!(e.attempts(), 3);
    assert!(e.retries_spent());
}

#[tokio::test]
async fn retryable_statuses_408_409_429_5xx() {
    for status in [408u16, 409, 429, 500, 503, 504] {
        let fake = FakeOpenAi::start().await;
        fake.push(FakeReply::error(status, "x", None, "transient"));
        fake.push(ok());
        let (provider, sleep) = provider(&fake, false);
        provider.complete(&simple_request("x")).await.unwrap();
        assert_eq!(fake.request_count(), 2, "status {status}");
        assert_eq!(
            sleep.waits(),
            vec![Duration::from_millis(500)],
            "status {status}"
        );
    }
}

#[tokio::test]
async fn client_errors_are_not_retried_and_map_to_kinds() {
    for (status, kind) in [
        (400u16, ErrorKind::InvalidInput),
        (401, ErrorKind::Unauthorized),
        (403, ErrorKind::Unauthorized),
        (404, ErrorKind::NotFound),
        (422, ErrorKind::InvalidInput),
    ] {
        let fake = FakeOpenAi::start().await;
        fake.push(
            FakeReply::error(status, "invalid_request_error", None, "nope")
                .header("x-request-id", "req_123"),
        );
        let (provider, sleep) = provider(&fake, false);
        let e = provider.complete(&simple_request("x")).await.unwrap_err();
        assert_eq!(fake.request_count(), 1, "status {status}");
        assert!(sleep.waits().is_empty());
        assert_eq!(e.kind(), kind, "status {status}");
        assert!(!e.is_retryable());
        assert_eq!(e.attempts(), 1, "status {status}");
        assert!(e.to_string().contains("req_123"), "{e}");
    }
}

#[tokio::test]
async fn insufficient_quota_is_never_retried() {
    let fake = FakeOpenAi::start().await;
    fake.push(
        FakeReply::error(
            429,
            "insufficient_quota",
            Some("insufficient_quota"),
            "You exceeded your current quota, please check your plan and billing details.",
        )
        // Even when the server says it may be retried.
        .header("x-should-retry", "true")
        .header("retry-after-ms", "10"),
    );
    let (provider, sleep) = provider(&fake, false);
    let e = provider.complete(&simple_request("x")).await.unwrap_err();
    assert_eq!(fake.request_count(), 1);
    assert!(sleep.waits().is_empty());
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("insufficient_quota"), "{e}");
}

#[tokio::test]
async fn x_should_retry_overrides_the_status() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::error(503, "server_error", None, "no").header("x-should-retry", "false"));
    let (provider, sleep) = provider(&fake, false);
    let e = provider.complete(&simple_request("x")).await.unwrap_err();
    assert_eq!(fake.request_count(), 1);
    assert!(sleep.waits().is_empty());
    assert!(!e.is_retryable());

    let fake = FakeOpenAi::start().await;
    fake.push(
        FakeReply::error(400, "invalid_request_error", None, "try again")
            .header("x-should-retry", "true"),
    );
    fake.push(ok());
    let (provider, sleep) = common::provider(&fake, false);
    provider.complete(&simple_request("x")).await.unwrap();
    assert_eq!(fake.request_count(), 2);
    assert_eq!(sleep.waits(), vec![Duration::from_millis(500)]);
}

#[tokio::test]
async fn too_long_retry_after_is_cut_to_the_maximum() {
    let fake = FakeOpenAi::start().await;
    fake.push(rate_limited().header("retry-after", "3600"));
    fake.push(ok());
    let (provider, sleep) = provider(&fake, false);
    provider.complete(&simple_request("x")).await.unwrap();
    assert_eq!(sleep.waits(), vec![Duration::from_secs(60)]);
}

#[tokio::test]
async fn hostile_retry_after_values_are_clamped_not_panicking() {
    let fake = FakeOpenAi::start().await;
    fake.push(rate_limited().header("retry-after", "1e20"));
    fake.push(rate_limited().header("retry-after-ms", "1e300"));
    fake.push(ok());
    let sleep = RecordingSleep::new();
    let provider = OpenAiProvider::new(
        fake.config()
            .sleeper(sleep.clone())
            .retry(RetryPolicy::default().with_max_retry_after(Duration::from_secs(30)))
            .build()
            .unwrap(),
    )
    .unwrap();
    provider.complete(&simple_request("x")).await.unwrap();
    assert_eq!(fake.request_count(), 3);
    assert_eq!(sleep.waits(), vec![Duration::from_secs(30); 2]);
}

#[tokio::test]
async fn rate_limit_errors_carry_the_wait_and_say_nothing_ran() {
    let fake = FakeOpenAi::start().await;
    fake.push(rate_limited().header("retry-after", "7"));
    let provider = OpenAiProvider::new(fake.config().max_retries(0).build().unwrap()).unwrap();
    let e = provider.complete(&simple_request("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    assert!(e.did_not_execute());
}

#[tokio::test]
async fn timeouts_are_retried_then_reported() {
    let fake = FakeOpenAi::start().await;
    fake.push(ok().delay(Duration::from_secs(30)));
    fake.push(ok().delay(Duration::from_secs(30)));
    let sleep = RecordingSleep::new();
    let provider = OpenAiProvider::new(
        fake.config()
            .sleeper(sleep.clone())
            .max_retries(1)
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .unwrap();
    let e = provider.complete(&simple_request("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.is_retryable());
    assert_eq!(fake.request_count(), 2);
    assert_eq!(sleep.waits().len(), 1);
    assert!(e.to_string().contains("after 2 attempts"), "{e}");
}

#[tokio::test]
async fn connection_failures_are_retried() {
    // Bind then drop a listener to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sleep = RecordingSleep::new();
    let provider = OpenAiProvider::new(
        logline_openai::OpenAiConfig::builder()
            .base_url(format!("http://127.0.0.1:{port}/v1"))
            .sleeper(sleep.clone())
            .build()
            .unwrap(),
    )
    .unwrap();
    let e = provider.complete(&simple_request("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_retryable());
    assert_eq!(sleep.waits().len(), 2);
    assert!(e.to_string().contains("after 3 attempts"), "{e}");
}

#[tokio::test]
async fn errors_carry_the_configured_provider_name() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::error(400, "invalid_request_error", None, "nope"));
    fake.push(FakeReply::error(400, "invalid_request_error", None, "nope"));
    let config = fake
        .config()
        .name("vllm")
        .chat_completions()
        .build()
        .unwrap();
    let provider = OpenAiProvider::new(config).unwrap();
    for e in [
        provider.complete(&simple_request("x")).await.unwrap_err(),
        provider.stream(&simple_request("x")).await.err().unwrap(),
    ] {
        match &e {
            logline_core::Error::Backend { backend, .. } => assert_eq!(backend, "vllm"),
            other => panic!("not a backend error: {other}"),
        }
        assert!(e.to_string().contains("from vllm"), "{e}");
    }
}
