//! What a backend knows about retrying one failed call, carried by [`Error::Backend`].

use std::time::Duration;

use crate::error::Error;

/// What a backend knows about retrying a failed call, beyond whether it may succeed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryHint {
    /// The wait the remote service asked for (`Retry-After`), already bounded by the
    /// adapter's maximum.
    pub after: Option<Duration>,
    /// The remote operation provably did not take place: the request was never sent
    /// (connection refused) or was refused before processing (rate limited). Sending it
    /// again cannot repeat a side effect.
    pub not_executed: bool,
    /// Attempts the backend (or a retry layer) already made for this call, its own retries
    /// included; 0 when it does not say. More than one means the call's retry budget was
    /// spent there: layers above should not retry it again (the engine fails the step with
    /// this error instead of re-running the run's job, so retries do not multiply).
    pub attempts: u32,
}

impl RetryHint {
    /// A hint carrying the server's requested wait.
    pub fn after(wait: Option<Duration>) -> Self {
        RetryHint {
            after: wait,
            not_executed: false,
            attempts: 0,
        }
    }

    /// Notes how many attempts the backend made for the call.
    pub fn attempts(mut self, n: u32) -> Self {
        self.attempts = n;
        self
    }

    /// Marks the operation as provably not executed.
    pub fn not_executed(mut self, yes: bool) -> Self {
        self.not_executed = yes;
        self
    }
}

impl Error {
    /// The wait the remote service asked for before a retry, when it named one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Backend { hint, .. } => hint.after,
            _ => None,
        }
    }

    /// Whether the failed operation provably did not run (see [`RetryHint::not_executed`]).
    /// Only then may a side-effecting call be sent again without risking a duplicate.
    pub fn did_not_execute(&self) -> bool {
        matches!(self, Error::Backend { hint, .. } if hint.not_executed)
    }

    /// Attempts the backend reported making for the failed call ([`RetryHint::attempts`];
    /// 0 when it did not say).
    pub fn attempts(&self) -> u32 {
        match self {
            Error::Backend { hint, .. } => hint.attempts,
            _ => 0,
        }
    }

    /// Whether the backend already retried the failed call (more than one attempt): its
    /// retry budget is spent, so retrying it again above would multiply the requests.
    pub fn retries_spent(&self) -> bool {
        self.attempts() > 1
    }

    /// The same error noting `n` attempts ([`RetryHint::attempts`]). Only
    /// [`Error::Backend`] carries a hint; other variants are returned unchanged.
    pub fn with_attempts(self, n: u32) -> Self {
        match self {
            Error::Backend {
                kind,
                backend,
                message,
                retryable,
                hint,
                source,
            } => Error::Backend {
                kind,
                backend,
                message,
                retryable,
                hint: hint.attempts(n),
                source,
            },
            other => other,
        }
    }

    /// The same error with `hint` attached. Only [`Error::Backend`] carries a hint; other
    /// variants are returned unchanged.
    pub fn with_retry_hint(self, hint: RetryHint) -> Self {
        match self {
            Error::Backend {
                kind,
                backend,
                message,
                retryable,
                source,
                ..
            } => Error::Backend {
                kind,
                backend,
                message,
                retryable,
                hint,
                source,
            },
            other => other,
        }
    }
}
