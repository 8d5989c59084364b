//! `OpenAiEmbedder` against the fake server: request shape, batching, order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use logline_core::llm::Embedder;
use logline_openai::testing::{embeddings, FakeOpenAi, FakeReply};
use logline_openai::OpenAiEmbedder;
use serde_json::{json, Value};

/// Answers each embeddings call with vectors `[global index, 0.5]` where the global index is
/// read from the input text `t<N>`, listing the data in reverse order (clients must sort by
/// `index`).
fn echo_handler(fake: &FakeOpenAi) {
    fake.set_handler(|r| {
        let body = r.json();
        let inputs = body["input"].as_array()?.clone();
        let mut data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let n: f32 = t.as_str().unwrap_or("t0")[1..].parse().unwrap_or(-1.0);
                json!({"object":"embedding","index":i,"embedding":[n, 0.5]})
            })
            .collect();
        data.reverse();
        Some(FakeReply::json(json!({"object":"list","data":data,"model":"text-embedding-3-small",
                                    "usage":{"prompt_tokens":inputs.len(),"total_tokens":inputs.len()}})))
    });
}

#[tokio::test]
async fn more_than_2048_inputs_are_batched_in_order() {
    let fake = FakeOpenAi::start().await;
    echo_handler(&fake);
    let embedder = OpenAiEmbedder::new(fake.config().build().unwrap()).unwrap();
    let texts: Vec<String> = (0..4100).map(|i| format!("t{i}")).collect();
    let vectors = embedder.embed(&texts).await.unwrap();
    assert_eq!(vectors.len(), 4100);
    for (i, v) in vectors.iter().enumerate() {
        assert_eq!(v, &vec![i as f32, 0.5]);
    }
    let reqs = fake.requests();
    let sizes: Vec<usize> = reqs
        .iter()
        .map(|r| r.json()["input"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![2048, 2048, 4]);
    for r in &reqs {
        assert_eq!(r.path, "/v1/embeddings");
        let b = r.json();
        assert_eq!(b["model"], json!("text-embedding-3-small"));
        assert_eq!(b["encoding_format"], json!("float"));
        assert!(b.get("dimensions").is_none());
    }
    assert_eq!(embedder.model(), "text-embedding-3-small");
}

#[tokio::test]
async fn configured_model_dimensions_and_batch_size() {
    let fake = FakeOpenAi::start().await;
    echo_handler(&fake);
    let embedder = OpenAiEmbedder::new(
        fake.config()
            .embedding_model("text-embedding-3-large")
            .embedding_dimensions(256)
            .embedding_batch_size(3)
            .build()
            .unwrap(),
    )
    .unwrap();
    let texts: Vec<String> = (0..7).map(|i| format!("t{i}")).collect();
    let vectors = embedder.embed(&texts).await.unwrap();
    assert_eq!(
        vectors.iter().map(|v| v[0] as usize).collect::<Vec<_>>(),
        (0..7).collect::<Vec<_>>()
    );
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(
        reqs[0].json(),
        json!({"model":"text-embedding-3-large","input":["t0","t1","t2"],"encoding_format":"float","dimensions":256})
    );
}

#[tokio::test]
async fn empty_input_makes_no_call_and_mismatches_are_errors() {
    let fake = FakeOpenAi::start().await;
    let embedder = OpenAiEmbedder::new(fake.config().build().unwrap()).unwrap();
    assert!(embedder.embed(&[]).await.unwrap().is_empty());
    assert_eq!(fake.request_count(), 0);

    fake.push(FakeReply::json(embeddings("m", &[vec![1.0]])));
    let e = embedder
        .embed(&["a".to_string(), "b".to_string()])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("got 1 vectors"), "{e}");

    // Errors and retries go through the same HTTP layer.
    fake.push(FakeReply::error(
        400,
        "invalid_request_error",
        None,
        "input too long",
    ));
    let e = embedder.embed(&["a".to_string()]).await.unwrap_err();
    assert_eq!(e.kind(), logline_core::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("input too long"), "{e}");
}
