//! One behaviour for answers cut off at the output token limit, in both API modes, streamed
//! or not: the partial answer with `finish_reason: length` and its usage; a cut-off
//! structured answer or tool call is a model-output error that says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use logline_core::llm::{
    FinishReason, LlmProvider, LlmRequest, LlmResponse, LlmStreamEvent, OutputSchema, TokenUsage,
};
use logline_core::ErrorKind;
use logline_openai::testing::{chat_sse_text, FakeOpenAi, FakeReply, Tokens};
use serde_json::{json, Value};

const CUT: &str = "{\"intent\": \"sea";

fn responses_incomplete(text: &str) -> Value {
    json!({"id":"resp_inc","object":"response","status":"incomplete","model":MODEL,"error":null,
           "incomplete_details":{"reason":"max_output_tokens"},
           "output":[{"type":"message","id":"msg_i","status":"incomplete","role":"assistant",
                      "content":[{"type":"output_text","text":text,"annotations":[]}]}],
           "usage":{"input_tokens":40,"input_tokens_details":{"cached_tokens":0},
                    "output_tokens":16,"total_tokens":56}})
}

fn chat_length(text: &str) -> Value {
    json!({"id":"chatcmpl-1","object":"chat.completion","model":MODEL,
           "choices":[{"index":0,"message":{"role":"assistant","content":text},"finish_reason":"length"}],
           "usage":{"prompt_tokens":40,"completion_tokens":16,"total_tokens":56}})
}

fn chat_length_sse(text: &str) -> String {
    chat_sse_text(MODEL, &[text], Tokens::new(40, 0, 16))
        .replace("\"finish_reason\":\"stop\"", "\"finish_reason\":\"length\"")
}

fn structured(mut request: LlmRequest) -> LlmRequest {
    request.output_schema = Some(OutputSchema {
        name: "intent".into(),
        schema: json!({"type":"object","properties":{"intent":{"type":"string"}},
                       "required":["intent"],"additionalProperties":false}),
        strict: true,
    });
    request
}

fn assert_cut_off(answer: &LlmResponse) {
    assert_eq!(answer.finish_reason, FinishReason::Length);
    assert_eq!(answer.text.as_deref(), Some(CUT));
    assert_eq!(
        answer.usage,
        TokenUsage {
            input_tokens: 40,
            cached_input_tokens: 0,
            output_tokens: 16
        },
        "the tokens of a cut-off answer are billed and reported"
    );
}

/// The streamed deltas, and the final answer they add up to.
async fn streamed(fake: &FakeOpenAi, chat: bool, reply: FakeReply) -> (String, LlmResponse) {
    fake.push(reply);
    let (provider, _) = provider(fake, chat);
    let (events, err) = collect(provider.stream(&simple_request("x")).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    let Some(LlmStreamEvent::Completed { response }) = events.last() else {
        panic!("no completed event: {events:?}")
    };
    (text_of(&events), response.clone())
}

#[tokio::test]
async fn both_modes_return_the_partial_answer_with_finish_reason_length() {
    let fake = FakeOpenAi::start().await;
    let (responses, _) = provider(&fake, false);
    let (chat, _) = provider(&fake, true);

    fake.push(FakeReply::json(responses_incomplete(CUT)));
    assert_cut_off(&responses.complete(&simple_request("x")).await.unwrap());
    fake.push(FakeReply::json(chat_length(CUT)));
    assert_cut_off(&chat.complete(&simple_request("x")).await.unwrap());
}

#[tokio::test]
async fn streams_end_with_the_same_answer_their_deltas_showed() {
    let fake = FakeOpenAi::start().await;
    let (deltas, answer) = streamed(
        &fake,
        false,
        FakeReply::sse(fixture("responses_incomplete.sse")),
    )
    .await;
    assert_cut_off(&answer);
    assert_eq!(
        deltas, CUT,
        "nothing shown that the answer does not contain"
    );

    let (deltas, answer) = streamed(&fake, true, FakeReply::sse(chat_length_sse(CUT))).await;
    assert_cut_off(&answer);
    assert_eq!(deltas, CUT);
}

#[tokio::test]
async fn responses_stream_without_output_in_the_terminal_event_uses_the_deltas() {
    let fake = FakeOpenAi::start().await;
    let sse = fixture("responses_incomplete.sse");
    let last = sse.find("event: response.incomplete").unwrap();
    let terminal = json!({"type":"response.incomplete","response":{
        "id":"resp_inc","status":"incomplete","model":MODEL,
        "incomplete_details":{"reason":"max_output_tokens"},"output":[],
        "usage":{"input_tokens":40,"input_tokens_details":{"cached_tokens":0},"output_tokens":16}}});
    let body = format!(
        "{}event: response.incomplete\ndata: {terminal}\n\n",
        &sse[..last]
    );
    let (_, answer) = streamed(&fake, false, FakeReply::sse(body)).await;
    assert_cut_off(&answer);
}

#[tokio::test]
async fn cut_off_structured_output_is_a_model_output_error_in_every_mode() {
    let fake = FakeOpenAi::start().await;
    let request = structured(simple_request("classify"));
    let check = |e: logline_core::Error| {
        assert_eq!(e.kind(), ErrorKind::ModelOutput);
        assert!(e.to_string().contains("cut off"), "{e}");
        assert!(e.to_string().contains("length"), "{e}");
    };
    for chat in [false, true] {
        let (provider, _) = provider(&fake, chat);
        fake.push(FakeReply::json(if chat {
            chat_length(CUT)
        } else {
            responses_incomplete(CUT)
        }));
        check(provider.complete(&request).await.unwrap_err());

        fake.push(FakeReply::sse(if chat {
            chat_length_sse(CUT)
        } else {
            fixture("responses_incomplete.sse")
        }));
        let (_, err) = collect(provider.stream(&request).await.unwrap()).await;
        check(err.expect("a cut-off structured stream fails"));
    }
}

#[tokio::test]
async fn cut_off_tool_call_arguments_say_why_they_are_invalid() {
    let fake = FakeOpenAi::start().await;
    let (chat, _) = provider(&fake, true);
    fake.push(FakeReply::json(
        json!({"model":MODEL,"choices":[{"index":0,"finish_reason":"length",
        "message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
            "function":{"name":"get_weather","arguments":"{\"city\": \"Bos"}}]}}]}),
    ));
    let e = chat.complete(&simple_request("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ModelOutput);
    assert!(e.to_string().contains("not valid JSON"), "{e}");
    assert!(e.to_string().contains("cut off"), "{e}");
}
