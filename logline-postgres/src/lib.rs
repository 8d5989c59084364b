#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod apps;
mod backend;
mod codec;
mod config;
mod db;
mod error;
mod notify;
mod queue;
mod recall;
mod store;

pub use apps::PgAppStore;
pub use backend::PgBackend;
pub use config::{PgConfig, ENV_DATABASE_URL, ENV_MAX_CONNECTIONS, ENV_SCHEMA, MAX_SCHEMA_LEN};
pub use queue::PgQueue;
pub use recall::{IndexReport, IvfOptions, PgRecallStore};
pub use store::runs::ArchiveRuns;
pub use store::PgStore;

/// The embedded migrations, for tools that manage schema changes themselves
/// ([`PgBackend::migrate`] runs them).
pub fn migrator() -> &'static sqlx::migrate::Migrator {
    &db::MIGRATOR
}
