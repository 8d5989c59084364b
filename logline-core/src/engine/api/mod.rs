//! The engine's public operations, one file per concern.

mod registry;
mod runs;
mod watch;

pub use runs::StartRun;
