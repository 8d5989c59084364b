//! LogLine facade.
pub use logline_core as core;
