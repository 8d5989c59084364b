//! SSE driver: bytes → `eventsource-stream` events → an [`Assembler`] → [`LlmStreamEvent`]s.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::stream::{BoxStream, StreamExt};
use logline_core::llm::{LlmResponse, LlmStreamEvent};
use logline_core::Result;

use crate::error::OpenAiError;

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

struct State<A> {
    events: BoxStream<'static, Result<eventsource_stream::Event, String>>,
    assembler: A,
    pending: VecDeque<Result<LlmStreamEvent>>,
    done: bool,
}

/// Drives `bytes` through `assembler`. The result ends with `Completed` or one error; it stops
/// reading (and drops the connection) after either. `idle` bounds the wait for each event.
pub(crate) fn drive<E, A>(
    bytes: BoxStream<'static, std::result::Result<Bytes, E>>,
    assembler: A,
    idle: Duration,
) -> BoxStream<'static, Result<LlmStreamEvent>>
where
    E: std::fmt::Display + Send + 'static,
    A: Assembler,
{
    let events = bytes
        .map(|r| r.map_err(|e| e.to_string()))
        .eventsource()
        .map(|r| r.map_err(|e| e.to_string()))
        .boxed();
    let state = State {
        events,
        assembler,
        pending: VecDeque::new(),
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
            let next = match tokio::time::timeout(idle, st.events.next()).await {
                Ok(next) => next,
                Err(_) => {
                    st.done = true;
                    st.pending
                        .push_back(Err(OpenAiError::StreamIdle(idle).into()));
                    continue;
                }
            };
            let outcome = match next {
                None => Some(st.assembler.finish()),
                Some(Err(e)) => Some(Err(OpenAiError::Stream(e).into())),
                Some(Ok(event)) => {
                    if event.data.is_empty() {
                        continue;
                    }
                    st.assembler
                        .on_event(&event.data, &mut st.pending)
                        .transpose()
                }
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
