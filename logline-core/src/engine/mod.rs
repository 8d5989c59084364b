//! The orchestrator: starts runs, executes them on workers, checkpoints every step.

/// Name of the provider agents use when their model profile names none.
pub const DEFAULT_PROVIDER: &str = "default";

/// Queue that carries run jobs.
pub const RUN_QUEUE: &str = "logline.runs";
