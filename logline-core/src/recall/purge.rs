//! [`MemoryPurge`]: deletes expired memory items on a timer.
//!
//! Expired items are never returned, but they stay in the store until purged. A host with
//! an engine and a queue adds the purge to its retention passes
//! ([`RetentionJob::purging_memory`](crate::retention::RetentionJob::purging_memory)); a host
//! with only a memory store starts this task instead.
//!
//! ```
//! # use std::sync::Arc;
//! # use logline_core::memory::MemoryRecallStore;
//! # use logline_core::recall::{MemoryPurge, PurgeOptions};
//! # use tokio_util::sync::CancellationToken;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = Arc::new(MemoryRecallStore::new());
//! let stop = CancellationToken::new();
//! let purge = MemoryPurge::new(store, PurgeOptions::default()).spawn(stop.clone());
//! // ... serve ...
//! stop.cancel();
//! purge.await.unwrap();
//! # });
//! ```

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::RecallStore;
use crate::error::Result;
use crate::retention::drain_batches;

/// How often, and in which batches, expired items are purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeOptions {
    /// Time between passes (the first pass runs at once).
    pub every: Duration,
    /// Items per delete.
    pub batch: u64,
    /// Deletes per pass at most; the rest waits for the next pass.
    pub max_batches: u32,
}

impl Default for PurgeOptions {
    /// A pass every 10 minutes, batches of 1,000, at most 100 per pass.
    fn default() -> Self {
        PurgeOptions {
            every: Duration::from_secs(600),
            batch: 1000,
            max_batches: 100,
        }
    }
}

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Expired items deleted.
    pub purged: u64,
    /// Whether the pass stopped at [`PurgeOptions::max_batches`] (or was cancelled) with
    /// items possibly left.
    pub truncated: bool,
}

/// Purges the expired items of a [`RecallStore`], once or on a timer.
pub struct MemoryPurge {
    store: Arc<dyn RecallStore>,
    options: PurgeOptions,
}

impl std::fmt::Debug for MemoryPurge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryPurge")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl MemoryPurge {
    /// Purges `store` under `options`.
    pub fn new(store: Arc<dyn RecallStore>, options: PurgeOptions) -> Self {
        MemoryPurge { store, options }
    }

    /// One pass: deletes items expired now, in batches; stops early on `cancel`.
    pub async fn run_once(&self, cancel: &CancellationToken) -> Result<PurgeReport> {
        let now = Utc::now();
        let (purged, truncated) = drain_batches(
            self.options.batch,
            self.options.max_batches,
            cancel,
            |limit| self.store.purge_expired(now, limit),
        )
        .await?;
        Ok(PurgeReport { purged, truncated })
    }

    /// Runs a pass now and then every [`PurgeOptions::every`] until `cancel` fires. A failed
    /// pass is logged and retried at the next tick.
    pub fn spawn(self, cancel: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.options.every.max(Duration::from_millis(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                match self.run_once(&cancel).await {
                    Ok(r) if r.purged > 0 => {
                        tracing::info!(
                            purged = r.purged,
                            truncated = r.truncated,
                            "memory purge done"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "memory purge failed"),
                }
            }
        })
    }
}
