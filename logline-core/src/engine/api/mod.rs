//! The engine's public operations, one file per concern.

mod apps;
mod registry;
mod runs;
mod scoped;
mod watch;

pub use apps::ImportReport;
pub(crate) use runs::keyed_run_id;
pub use runs::StartRun;
pub use scoped::{ApprovalRules, Principal, ScopedEngine};
