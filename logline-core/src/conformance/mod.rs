//! The conformance suites every backend runs (feature `testing`).
//!
//! Each check is a plain `async fn` taking a fresh backend (or, for LLM providers and tool
//! hubs, a *fixture*: the backend plus the means to script what sits behind it) and
//! panicking on a violation. Core runs them on its memory backends and test doubles; adapter
//! crates run the same lists on theirs with one macro per trait, which generates one
//! `#[tokio::test]` per check from a factory expression and, optionally, the backend's
//! capabilities:
//!
//! | trait | macro | factory yields | capabilities |
//! |---|---|---|---|
//! | [`Store`] | [`store_conformance_tests!`](crate::store_conformance_tests) | `Arc<dyn Store>` | [`store::StoreCapabilities`] |
//! | [`Queue`] | [`queue_conformance_tests!`](crate::queue_conformance_tests) | `Arc<dyn Queue>` | [`queue::QueueCapabilities`] |
//! | `LlmProvider` | [`llm_conformance_tests!`](crate::llm_conformance_tests) | `Arc<dyn` [`llm::LlmFixture`]`>` | [`llm::LlmCapabilities`] |
//! | `ToolHub` | [`hub_conformance_tests!`](crate::hub_conformance_tests) | `Arc<dyn` [`hub::HubFixture`]`>` | [`hub::HubCapabilities`] |
//! | `Embedder` | [`embedder_conformance_tests!`](crate::embedder_conformance_tests) | `Arc<dyn Embedder>` | [`embedder::EmbedderCapabilities`] |
//! | `ArtifactIndex` (behind an `ObjectArtifactStore`) | [`artifact_conformance_tests!`](crate::artifact_conformance_tests) | `Arc<dyn ArtifactIndex>` | — |
//! | `NoteStore` | [`notes_conformance_tests!`](crate::notes_conformance_tests) | `Arc<dyn NoteStore>` | — |
//! | `RecallStore` (agent memory) | [`recall_conformance_tests!`](crate::recall_conformance_tests) | `Arc<dyn RecallStore>` | — |
//! | `VectorStore` (tool-search vectors) | [`vector_conformance_tests!`](crate::vector_conformance_tests) | `Arc<dyn VectorStore>` | — |
//! | `AppStore` | [`app_conformance_tests!`](crate::app_conformance_tests) | `Arc<dyn AppStore>` | — |
//! | `Engine` on a store and queue (tenant boundary) | [`tenancy_conformance_tests!`](crate::tenancy_conformance_tests) | [`EngineBuilder`](crate::engine::EngineBuilder) | — |
//! | `Engine` on a store and queue (tool gate at call time) | [`call_gate_conformance_tests!`](crate::call_gate_conformance_tests) | [`EngineBuilder`](crate::engine::EngineBuilder) | — |
//!
//! Without capabilities every check runs. A check that needs a capability the backend lacks
//! still gets its test, which passes after reporting `skipped <check>: backend lacks
//! <capability>` on stderr (printed past the test harness's capture, so it shows in the
//! `cargo test` output).
//!
//! ```ignore
//! use logline_core::conformance::llm::LlmCapabilities;
//!
//! logline_core::llm_conformance_tests!(
//!     my_fixture(),
//!     LlmCapabilities { cached_tokens: false, ..LlmCapabilities::all() }
//! );
//! ```

pub mod apps;
pub mod artifact;
pub mod call_gate;
pub mod chat;
pub mod chat_flow;
pub mod embedder;
pub mod hub;
pub mod llm;
pub mod notes;
pub mod queue;
pub mod recall;
pub mod store;
pub mod tenancy;
pub mod vectors;

use std::future::Future;
use std::io::Write;
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

/// Whether `check` may run given its `needs` (`(backend has it, capability name)`); when
/// one is missing, reports `skipped <check>: backend lacks <capability>` on stderr and
/// returns `false`.
pub fn supported(check: &str, needs: &[(bool, &str)]) -> bool {
    match needs.iter().find(|(has, _)| !has) {
        None => true,
        Some((_, capability)) => {
            // Straight to the process's stderr: the test harness captures `eprintln!` of
            // passing tests, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "skipped {check}: backend lacks {capability}"
            );
            false
        }
    }
}

/// Generates the tests of one suite: `$module` is the suite's module under
/// [`crate::conformance`], each check may list the capability fields (of `$caps`) it needs.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($module:ident, $factory:expr, $caps:expr; $($name:ident $([$($cap:ident),+])?),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                #[allow(unused_variables)]
                let caps = $caps;
                let needs: &[(bool, &str)] = &[$($((caps.$cap, stringify!($cap))),+)?];
                if !$crate::conformance::supported(stringify!($name), needs) {
                    return;
                }
                let backend = $factory.await;
                $crate::conformance::$module::$name(backend).await;
            }
        )*
    };
}

/// Generates one `#[tokio::test]` per store check; `$factory` is an async expression
/// yielding a fresh `Arc<dyn Store>`, `$caps` an optional
/// [`StoreCapabilities`](crate::conformance::store::StoreCapabilities).
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::store_conformance_tests!(
            $factory,
            $crate::conformance::store::StoreCapabilities::all()
        );
    };
    ($factory:expr, $caps:expr) => {
        $crate::__conformance_tests!(store, $factory, $caps;
            workflows_are_versioned, tool_catalog_round_trips, agents_and_policies_round_trip,
            runs_are_created_once, commit_is_atomic_and_versioned, events_page_by_sequence,
            effect_ledger_keeps_first_record, effect_intents_are_fenced_and_resolved,
            runs_list_by_filter, runs_list_pages_within_the_tenant, wait_for_events_wakes_on_commit,
            wait_for_settled_wakes_when_the_run_ends,
            purge_removes_old_terminal_runs [purge_runs], one_of_racing_commits_wins,
            nul_characters_are_stored_replaced);
    };
}

/// Generates one `#[tokio::test]` per chat check (the store checks of
/// [`chat`](crate::conformance::chat) and the whole tasks of
/// [`chat_flow`](crate::conformance::chat_flow)); `$factory` is an async expression yielding
/// a fresh [`ChatFixture`](crate::conformance::chat::ChatFixture).
#[macro_export]
macro_rules! chat_conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_tests!(chat, $factory, ();
            chat_data_is_scoped_to_tenant_and_user,
            messages_are_numbered_and_answers_written_once, summaries_never_go_back,
            nul_characters_are_stored_replaced);
        $crate::__conformance_tests!(chat_flow, $factory, ();
            chat_only_question_takes_one_model_call,
            note_creation_goes_through_search_and_executor, email_send_runs_only_after_confirm,
            denied_email_is_never_sent, tool_call_cap_ends_the_task,
            crashed_chat_task_repeats_no_call, prompts_stay_bounded_on_long_conversations,
            other_tenants_chats_are_not_found);
    };
}

/// Generates one `#[tokio::test]` per agent memory store check; `$factory` is an async
/// expression yielding a fresh `Arc<dyn RecallStore>`.
#[macro_export]
macro_rules! recall_conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_tests!(recall, $factory, ();
            items_round_trip_and_ids_are_owned, reads_stay_within_tenant_and_owner,
            search_ranks_by_similarity_with_filters, lists_are_newest_first,
            deletes_touch_only_owned_items, expired_items_vanish_and_are_purged);
    };
}

/// Generates one `#[tokio::test]` per tool-search vector store check; `$factory` is an async
/// expression yielding a fresh `Arc<dyn VectorStore>`.
#[macro_export]
macro_rules! vector_conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_tests!(vectors, $factory, ();
            vectors_round_trip, saving_again_replaces, deletes_and_spaces_are_separate);
    };
}

/// Generates one `#[tokio::test]` per app store check; `$factory` is an async expression
/// yielding a fresh `Arc<dyn AppStore>`.
#[macro_export]
macro_rules! app_conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_tests!(apps, $factory, ();
            imports_are_versioned_and_idempotent, apps_list_and_delete);
    };
}

/// Generates one `#[tokio::test]` per tenancy check; `$factory` is an async expression
/// yielding an [`EngineBuilder`](crate::engine::EngineBuilder) on fresh backends.
#[macro_export]
macro_rules! tenancy_conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_tests!(tenancy, $factory, ();
            other_tenants_runs_are_not_found, start_acts_for_the_principal,
            lists_are_tenant_filtered, gate_decisions_need_the_role,
            self_approval_is_refused_where_forbidden, engine_rule_forbids_self_approval,
            progress_is_per_run);
    };
}

/// Generates one `#[tokio::test]` per call-gate check; `$factory` is an async expression
/// yielding an [`EngineBuilder`](crate::engine::EngineBuilder) on fresh backends.
#[macro_export]
macro_rules! call_gate_conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_tests!(call_gate, $factory, ();
            blocked_tag_is_refused_at_call_time, unconnected_toolkit_is_refused,
            connected_toolkit_runs, risk_over_the_ceiling_waits_for_a_person);
    };
}

/// Generates one `#[tokio::test]` per queue check; `$factory` is an async expression
/// yielding a fresh `Arc<dyn Queue>`, `$caps` an optional
/// [`QueueCapabilities`](crate::conformance::queue::QueueCapabilities).
#[macro_export]
macro_rules! queue_conformance_tests {
    ($factory:expr) => {
        $crate::queue_conformance_tests!(
            $factory,
            $crate::conformance::queue::QueueCapabilities::all()
        );
    };
    ($factory:expr, $caps:expr) => {
        $crate::__conformance_tests!(queue, $factory, $caps;
            enqueue_claim_complete, idempotency_key_dedupes_live_jobs, priority_then_run_at,
            scheduled_jobs_wait, expired_lease_is_reclaimed, heartbeat_keeps_the_lease,
            failures_back_off_then_dead_letter, non_retryable_failure_dead_letters,
            batch_enqueue_and_claim, wait_for_work_wakes_on_enqueue, concurrent_claims_are_exclusive,
            purge_drops_only_old_completed_jobs [purge_completed],
            exhausted_leases_are_dead_lettered, panicking_handler_fails_the_job,
            live_key_prefixes_find_live_jobs, stats_count_queued_jobs,
            withdraw_removes_only_unclaimed_jobs [withdraw]);
    };
}

/// Generates one `#[tokio::test]` per LLM provider check; `$factory` is an async expression
/// yielding a fresh `Arc<dyn LlmFixture>`, `$caps` optional
/// [`LlmCapabilities`](crate::conformance::llm::LlmCapabilities).
#[macro_export]
macro_rules! llm_conformance_tests {
    ($factory:expr) => {
        $crate::llm_conformance_tests!($factory, $crate::conformance::llm::LlmCapabilities::all());
    };
    ($factory:expr, $caps:expr) => {
        $crate::__conformance_tests!(llm, $factory, $caps;
            plain_completion_returns_text,
            usage_is_reported [usage],
            cached_tokens_are_reported [usage, cached_tokens],
            tool_definitions_produce_tool_calls [tool_calls],
            parallel_tool_calls_keep_their_order [tool_calls, parallel_tool_calls],
            tool_results_round_trip [tool_calls],
            structured_output_matches_the_schema [structured_output],
            stream_ends_with_one_completed,
            stream_reports_usage [usage],
            stream_yields_incremental_deltas [streaming],
            stream_assembles_tool_calls [tool_calls],
            stream_assembles_parallel_tool_calls [tool_calls, parallel_tool_calls],
            unknown_model_is_a_typed_error,
            rate_limits_are_retryable_errors,
            rejected_credentials_are_typed_errors);
    };
}

/// Generates one `#[tokio::test]` per tool hub check; `$factory` is an async expression
/// yielding a fresh `Arc<dyn HubFixture>`, `$caps` optional
/// [`HubCapabilities`](crate::conformance::hub::HubCapabilities).
#[macro_export]
macro_rules! hub_conformance_tests {
    ($factory:expr) => {
        $crate::hub_conformance_tests!($factory, $crate::conformance::hub::HubCapabilities::all());
    };
    ($factory:expr, $caps:expr) => {
        $crate::__conformance_tests!(hub, $factory, $caps;
            execute_returns_the_tool_output,
            unknown_tool_is_not_found,
            invalid_arguments_are_rejected [validates_arguments],
            tool_failure_is_typed,
            idempotency_key_is_passed_on [idempotency_keys],
            connections_are_listed [connections],
            catalog_pages_cover_every_tool);
    };
}

/// Generates one `#[tokio::test]` per embedder check; `$factory` is an async expression
/// yielding a fresh `Arc<dyn Embedder>`, `$caps` optional
/// [`EmbedderCapabilities`](crate::conformance::embedder::EmbedderCapabilities).
#[macro_export]
macro_rules! embedder_conformance_tests {
    ($factory:expr) => {
        $crate::embedder_conformance_tests!(
            $factory,
            $crate::conformance::embedder::EmbedderCapabilities::all()
        );
    };
    ($factory:expr, $caps:expr) => {
        $crate::__conformance_tests!(embedder, $factory, $caps;
            model_is_named,
            empty_input_gives_no_vectors,
            vectors_share_one_dimension,
            batch_order_is_preserved,
            identical_texts_embed_identically,
            distinct_texts_embed_differently,
            large_batches_keep_their_order,
            vectors_are_normalized [normalized]);
    };
}

/// Generates one `#[tokio::test]` per artifact check; `$factory` is an async expression
/// yielding a fresh `Arc<dyn ArtifactIndex>`.
#[macro_export]
macro_rules! artifact_conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_tests!(artifact, $factory, ();
            put_get_round_trips, streamed_uploads_are_assembled, other_owners_get_not_found,
            lists_filter_by_task_newest_first, delete_removes_record_and_bytes,
            oversized_uploads_are_refused, wrong_types_are_refused, hostile_names_are_refused,
            failed_streams_store_nothing, duplicate_ids_conflict);
    };
}

/// Generates one `#[tokio::test]` per note store check; `$factory` is an async expression
/// yielding a fresh `Arc<dyn NoteStore>`.
#[macro_export]
macro_rules! notes_conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_tests!(notes, $factory, ();
            notes_round_trip_newest_first, todos_round_trip_newest_first,
            other_owners_see_nothing);
    };
}
