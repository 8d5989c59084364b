#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod backend;
mod chat;
mod codec;
mod config;
mod db;
mod error;
mod notify;
mod queue;
mod store;

pub use backend::PgBackend;
pub use chat::PgChatStore;
pub use config::{PgConfig, ENV_DATABASE_URL, ENV_MAX_CONNECTIONS, ENV_SCHEMA, MAX_SCHEMA_LEN};
pub use queue::PgQueue;
pub use store::runs::ArchiveRuns;
pub use store::PgStore;

/// The embedded migrations, for tools that manage schema changes themselves
/// ([`PgBackend::migrate`] runs them).
pub fn migrator() -> &'static sqlx::migrate::Migrator {
    &db::MIGRATOR
}
