//! Watching runs: reading them, their steps and events, waiting, and live streams.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use tokio::sync::broadcast;

use crate::engine::{Engine, Progress};
use crate::error::Result;
use crate::event::Event;
use crate::run::{Run, RunId, RunStatus, Step};
use crate::store::{RunFilter, Store};

impl Engine {
    /// Waits until the run is terminal or paused, and returns it.
    pub async fn wait(&self, run_id: RunId) -> Result<Run> {
        loop {
            // Read the event cursor before the status: a run that settles after this read
            // appends events after `seq`, which wakes the wait below.
            let seq = self.inner.exec.store.last_seq(run_id).await?;
            let run = self.inner.exec.store.get_run(run_id).await?;
            if run.status.is_terminal() || run.status == RunStatus::Paused {
                return Ok(run);
            }
            self.inner
                .exec
                .store
                .wait_for_settled(run_id, seq, Duration::from_secs(5))
                .await?;
        }
    }

    /// A run.
    pub async fn get_run(&self, run_id: RunId) -> Result<Run> {
        self.inner.exec.store.get_run(run_id).await
    }

    /// Every event of a run, in order.
    pub async fn events(&self, run_id: RunId) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        loop {
            let after = out.last().map_or(0, |e: &Event| e.seq);
            let page = self.inner.exec.store.events(run_id, after, 1000).await?;
            if page.is_empty() {
                return Ok(out);
            }
            out.extend(page);
        }
    }

    /// Steps of a run.
    pub async fn steps(&self, run_id: RunId) -> Result<Vec<Step>> {
        self.inner.exec.store.steps(run_id).await
    }

    /// Live events of a run after `after_seq`: catch-up from the store, then new events as
    /// they are committed; ends after the terminal event. No gaps, no duplicates.
    pub fn subscribe(&self, run_id: RunId, after_seq: u64) -> BoxStream<'static, Result<Event>> {
        struct State {
            store: Arc<dyn Store>,
            seq: u64,
            buf: VecDeque<Event>,
            done: bool,
            /// The run was seen not terminal, or a read found events but not the terminal one:
            /// its terminal event, committed with the status, is still ahead of the cursor,
            /// so empty reads need not look at the run.
            live: bool,
            /// A live run's last read ended short of its page: every event committed then
            /// was read, so the next read waits for a new one first.
            caught_up: bool,
        }
        const PAGE: usize = 256;
        let state = State {
            store: self.inner.exec.store.clone(),
            seq: after_seq,
            buf: VecDeque::new(),
            done: false,
            live: false,
            caught_up: false,
        };
        Box::pin(futures::stream::unfold(state, move |mut s| async move {
            loop {
                if let Some(e) = s.buf.pop_front() {
                    s.seq = e.seq;
                    if e.kind.is_terminal() {
                        s.done = true;
                    }
                    return Some((Ok(e), s));
                }
                if s.done {
                    return None;
                }
                if std::mem::take(&mut s.caught_up) {
                    if let Err(e) = s
                        .store
                        .wait_for_events(run_id, s.seq, Duration::from_secs(5))
                        .await
                    {
                        s.done = true;
                        return Some((Err(e), s));
                    }
                }
                match s.store.events(run_id, s.seq, PAGE).await {
                    Ok(page) if !page.is_empty() => {
                        // No terminal event among what was committed up to this read: the run
                        // is live, no need to look at it.
                        if !page.iter().any(|e| e.kind.is_terminal()) {
                            s.live = true;
                        }
                        s.caught_up = s.live && page.len() < PAGE;
                        s.buf.extend(page);
                        continue;
                    }
                    Ok(_) if s.live => {}
                    Ok(_) => match s.store.get_run(run_id).await {
                        Ok(run) if run.status.is_terminal() => {
                            // Terminal without a terminal event after our cursor: done.
                            let more = s.store.events(run_id, s.seq, 1).await;
                            if matches!(more, Ok(ref m) if m.is_empty()) {
                                return None;
                            }
                            continue;
                        }
                        Ok(_) => s.live = true,
                        Err(e) => {
                            s.done = true;
                            return Some((Err(e), s));
                        }
                    },
                    Err(e) => {
                        s.done = true;
                        return Some((Err(e), s));
                    }
                }
                s.caught_up = true;
            }
        }))
    }

    /// Live progress (agents' text deltas, tool calls' progress) of the runs this process's
    /// workers execute, every run's (trusted host code only; see [`Engine::progress_of`]
    /// for one run).
    pub fn progress(&self) -> broadcast::Receiver<Progress> {
        self.inner.exec.progress.subscribe()
    }

    /// Live progress of one run executed by this process's workers: its agents' text deltas
    /// and the progress its tool calls report ([`Progress::tool`]). Updates are ephemeral: a
    /// reader that falls behind the broadcast buffer skips what it missed.
    /// The stream ends with the engine; drop it when the run's event stream ends.
    pub fn progress_of(&self, run_id: RunId) -> BoxStream<'static, Progress> {
        let rx = self.inner.exec.progress.subscribe();
        Box::pin(futures::stream::unfold(rx, move |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(p) if p.run_id == run_id => return Some((p, rx)),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }))
    }

    /// Runs matching `filter`, newest first (every tenant unless the filter names one;
    /// trusted host code only — [`crate::engine::ScopedEngine::list_runs`] pins the tenant).
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        self.inner.exec.store.list_runs(filter).await
    }
}
