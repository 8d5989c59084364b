//! The conformance suite every backend runs (feature `testing`).
//!
//! Each check is a plain `async fn` taking a fresh backend and panicking on a violation.
//! Core runs them on the memory backends; adapter crates run the same lists on theirs,
//! e.g. with the [`store_conformance_tests!`](crate::store_conformance_tests) and
//! [`queue_conformance_tests!`](crate::queue_conformance_tests) macros, which generate one
//! `#[tokio::test]` per check from a factory expression.

pub mod queue;
pub mod store;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::queue::Queue;
use crate::store::Store;

/// A boxed check future.
pub type CheckFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A store check.
pub type StoreCheck = fn(Arc<dyn Store>) -> CheckFuture;

/// A queue check.
pub type QueueCheck = fn(Arc<dyn Queue>) -> CheckFuture;

/// Generates one `#[tokio::test]` per store check; `$factory` is an async expression
/// yielding a fresh `Arc<dyn Store>`.
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::store_conformance_tests!(@each $factory;
            workflows_are_versioned, tool_catalog_round_trips, agents_and_policies_round_trip,
            runs_are_created_once, commit_is_atomic_and_versioned, events_page_by_sequence,
            effect_ledger_keeps_first_record, runs_list_by_filter, wait_for_events_wakes_on_commit,
            purge_removes_old_terminal_runs, one_of_racing_commits_wins);
    };
    (@each $factory:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = $factory.await;
                $crate::conformance::store::$name(store).await;
            }
        )*
    };
}

/// Generates one `#[tokio::test]` per queue check; `$factory` is an async expression
/// yielding a fresh `Arc<dyn Queue>`.
#[macro_export]
macro_rules! queue_conformance_tests {
    ($factory:expr) => {
        $crate::queue_conformance_tests!(@each $factory;
            enqueue_claim_complete, idempotency_key_dedupes_live_jobs, priority_then_run_at,
            scheduled_jobs_wait, expired_lease_is_reclaimed, heartbeat_keeps_the_lease,
            failures_back_off_then_dead_letter, non_retryable_failure_dead_letters,
            batch_enqueue_and_claim, wait_for_work_wakes_on_enqueue, concurrent_claims_are_exclusive,
            purge_drops_only_old_completed_jobs);
    };
    (@each $factory:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let queue = $factory.await;
                $crate::conformance::queue::$name(queue).await;
            }
        )*
    };
}
