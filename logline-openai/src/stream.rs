//! SSE driver: bytes → [`SseDecoder`] → an [`Assembler`] → [`LlmStreamEvent`]s, under the
//! call's deadline, an idle timeout and the size caps.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use logline_core::llm::{LlmResponse, LlmStreamEvent};
use logline_core::Result;
use tokio::time::Instant;

use crate::error::OpenAiError;
use crate::sse::{SseDecoder, SseLimits, SseOverflow};

/// Turns the `data` of SSE events into stream events for one API flavour.
pub(crate) trait Assembler: Send + 'static {
    /// Handles one event's data. Pushes deltas to `out`; returns the final response once the
    /// terminal event arrived.
    fn on_event(
        &mut self,
        data: &str,
        out: &mut VecDeque<Result<LlmStreamEvent>>,
    ) -> Result<Option<LlmResponse>>;

    /// The byte stream ended without a terminal event.
    fn finish(&mut self) -> Result<LlmResponse>;
}

/// Time and size bounds of one stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamLimits {
    /// Longest wait for the next event (comments and partial events do not count).
    pub(crate) idle: Duration,
    /// When the whole call must be over.
    pub(crate) deadline: Instant,
    /// The call's deadline as configured, for the error message.
    pub(crate) deadline_after: Duration,
    /// Line and event caps.
    pub(crate) sse: SseLimits,
}

struct State<A> {
    bytes: BoxStream<'static, std::result::Result<Bytes, String>>,
    decoder: SseDecoder,
    assembler: A,
    pending: VecDeque<Result<LlmStreamEvent>>,
    limits: StreamLimits,
    last_event: Instant,
    body_ended: bool,
    done: bool,
}

/// What the next step of the driver produced.
enum Step {
    /// An event's data.
    Data(String),
    /// The body ended after the last event.
    End,
    /// Reading failed or a bound was hit.
    Fail(OpenAiError),
}

impl<A: Assembler> State<A> {
    /// Decodes buffered bytes, reading more until an event is complete, the body ends, or a
    /// bound is hit.
    async fn next_step(&mut self) -> Step {
        loop {
            match self.decoder.next_data() {
                Ok(Some(data)) => {
                    self.last_event = Instant::now();
                    return Step::Data(data);
                }
                Ok(None) => {}
                Err(overflow) => return Step::Fail(overflow_error(overflow)),
            }
            if self.body_ended {
                return match self.decoder.finish() {
                    Some(data) => Step::Data(data),
                    None => Step::End,
                };
            }
            let idle_at = self.last_event + self.limits.idle;
            let wake = idle_at.min(self.limits.deadline);
            match tokio::time::timeout_at(wake, self.bytes.next()).await {
                Err(_) if self.limits.deadline <= idle_at => {
                    return Step::Fail(OpenAiError::Deadline(self.limits.deadline_after))
                }
                Err(_) => return Step::Fail(OpenAiError::StreamIdle(self.limits.idle)),
                Ok(None) => self.body_ended = true,
                Ok(Some(Err(e))) => return Step::Fail(OpenAiError::Stream(e)),
                Ok(Some(Ok(chunk))) => self.decoder.push(&chunk),
            }
        }
    }
}

fn overflow_error(overflow: SseOverflow) -> OpenAiError {
    match overflow {
        SseOverflow::Line(limit) => OpenAiError::TooLarge {
            what: "an SSE line",
            limit,
        },
        SseOverflow::Event(limit) => OpenAiError::TooLarge {
            what: "an SSE event",
            limit,
        },
    }
}

/// Drives `bytes` through `assembler`. The result ends with `Completed` or one error; it stops
/// reading (and drops the connection) after either.
pub(crate) fn drive<E, A>(
    bytes: BoxStream<'static, std::result::Result<Bytes, E>>,
    assembler: A,
    limits: StreamLimits,
) -> BoxStream<'static, Result<LlmStreamEvent>>
where
    E: std::fmt::Display + Send + 'static,
    A: Assembler,
{
    let state = State {
        bytes: bytes.map(|r| r.map_err(|e| e.to_string())).boxed(),
        decoder: SseDecoder::new(limits.sse),
        assembler,
        pending: VecDeque::new(),
        limits,
        last_event: Instant::now(),
        body_ended: false,
        done: false,
    };
    futures::stream::unfold(state, move |mut st| async move {
        loop {
            if let Some(item) = st.pending.pop_front() {
                return Some((item, st));
            }
            if st.done {
                return None;
            }
            let outcome = match st.next_step().await {
                Step::End => Some(st.assembler.finish()),
                Step::Fail(e) => Some(Err(e.into())),
                Step::Data(data) if data.is_empty() => None,
                Step::Data(data) => st.assembler.on_event(&data, &mut st.pending).transpose(),
            };
            match outcome {
                None => {}
                Some(Ok(response)) => {
                    st.done = true;
                    st.pending
                        .push_back(Ok(LlmStreamEvent::Completed { response }));
                }
                Some(Err(e)) => {
                    st.done = true;
                    st.pending.push_back(Err(e));
                }
            }
        }
    })
    .boxed()
}
