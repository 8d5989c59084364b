#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod apps;
mod artifacts;
mod backend;
mod chat;
mod codec;
mod config;
mod db;
mod error;
mod notes;
mod notify;
mod queue;
mod recall;
pub mod sql_tools;
mod store;

pub use apps::PgAppStore;
pub use artifacts::PgArtifactIndex;
pub use backend::PgBackend;
pub use chat::PgChatStore;
pub use config::{
    group_commit_from_env, PgConfig, ENV_DATABASE_URL, ENV_GROUP_COMMIT, ENV_MAX_CONNECTIONS,
    ENV_SCHEMA, MAX_SCHEMA_LEN,
};
pub use notes::PgNoteStore;
pub use queue::PgQueue;
pub use recall::{IndexReport, IvfOptions, PgRecallStore};
pub use sql_tools::{SqlTable, SqlToolHub};
pub use store::group::{GroupCommit, GroupCommitStats};
pub use store::runs::ArchiveRuns;
pub use store::PgStore;

/// The embedded migrations, for tools that manage schema changes themselves
/// ([`PgBackend::migrate`] runs them).
pub fn migrator() -> &'static sqlx::migrate::Migrator {
    &db::MIGRATOR
}
