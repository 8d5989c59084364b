//! The one error type of `logline-core`, with a portable [`ErrorKind`].

use std::borrow::Cow;
use std::fmt;

mod recorded;

pub use recorded::RecordedError;

/// Boxed source error carried by backend failures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Portable classification of an [`Error`], read by retry logic and HTTP mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The thing asked for does not exist.
    NotFound,
    /// A concurrent change won (optimistic concurrency, duplicate id, lost lease).
    Conflict,
    /// The caller's input is wrong (schema, workflow definition, arguments).
    InvalidInput,
    /// A policy denied the operation.
    PolicyDenied,
    /// A per-run budget (cost, LLM calls, latency) ran out.
    BudgetExceeded,
    /// A remote service asked us to slow down.
    RateLimited,
    /// A backend is unreachable or failed in a way that may pass.
    Unavailable,
    /// An operation took longer than its deadline.
    Timeout,
    /// The operation was cancelled.
    Cancelled,
    /// An LLM produced output that does not parse or fit the requested schema.
    ModelOutput,
    /// A tool ran and reported failure.
    ToolFailed,
    /// A side effect may or may not have happened, and repeating it is not safe.
    EffectOutcomeUnknown,
    /// Credentials are missing or rejected.
    Unauthorized,
    /// A bug or broken invariant.
    Internal,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::InvalidInput,
        ErrorKind::PolicyDenied,
        ErrorKind::BudgetExceeded,
        ErrorKind::RateLimited,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::Cancelled,
        ErrorKind::ModelOutput,
        ErrorKind::ToolFailed,
        ErrorKind::EffectOutcomeUnknown,
        ErrorKind::Unauthorized,
        ErrorKind::Internal,
    ];

    /// Parses [`ErrorKind::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Stable snake_case name, used in events and HTTP bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::PolicyDenied => "policy_denied",
            ErrorKind::BudgetExceeded => "budget_exceeded",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::ModelOutput => "model_output",
            ErrorKind::ToolFailed => "tool_failed",
            ErrorKind::EffectOutcomeUnknown => "effect_outcome_unknown",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        ErrorKind::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format_args!("unknown error kind `{s}`")))
    }
}

/// Which per-run budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    /// `cost_limit_cents` was exceeded.
    Cost,
    /// `llm_calls_limit` was reached.
    LlmCalls,
    /// `latency_slo_ms` elapsed.
    Latency,
}

impl BudgetKind {
    /// Every budget kind.
    pub const ALL: [BudgetKind; 3] = [BudgetKind::Cost, BudgetKind::LlmCalls, BudgetKind::Latency];

    /// The reason string recorded on the run, e.g. `budget_exceeded: cost`.
    pub fn reason(self) -> &'static str {
        match self {
            BudgetKind::Cost => "budget_exceeded: cost",
            BudgetKind::LlmCalls => "budget_exceeded: llm_calls",
            BudgetKind::Latency => "budget_exceeded: latency",
        }
    }
}

/// One failing location in a JSON document checked against a JSON Schema.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SchemaViolation {
    /// JSON pointer to the failing value in the instance (`""` is the root).
    pub instance_path: String,
    /// JSON pointer to the failing keyword in the schema.
    pub schema_path: String,
    /// Human-readable message.
    pub message: String,
}

/// Errors of `logline-core` and of every backend behind its traits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A record does not exist.
    #[error("{entity} not found: {id}")]
    NotFound {
        /// What kind of record (`run`, `workflow`, `tool`, ...).
        entity: Cow<'static, str>,
        /// Its id.
        id: String,
    },
    /// A concurrent writer won, or a unique key already exists.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The caller's input is invalid.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A workflow definition failed validation; every problem is listed.
    #[error("invalid workflow: {}", crate::workflow::format_issues(.0))]
    InvalidWorkflow(Vec<crate::workflow::ValidationIssue>),
    /// Tool arguments do not match the tool's input schema.
    #[error("arguments of tool `{tool_id}` do not match its schema: {}", format_violations(.violations))]
    SchemaValidation {
        /// The tool whose schema rejected the input.
        tool_id: String,
        /// Every failing path.
        violations: Vec<SchemaViolation>,
    },
    /// An upload was refused before it was stored (size, content type, file name).
    #[error("upload rejected: {0}")]
    UploadRejected(crate::artifact::UploadRejection),
    /// A policy denied the operation.
    #[error("policy denied: {reason}")]
    PolicyDenied {
        /// The deciding policy, when one matched.
        policy_id: Option<String>,
        /// Why.
        reason: String,
    },
    /// A per-run budget ran out.
    #[error("{}", .0.reason())]
    BudgetExceeded(BudgetKind),
    /// The LLM produced unusable output (invalid JSON, unknown route, schema mismatch).
    #[error("invalid model output: {0}")]
    ModelOutput(String),
    /// A tool reported failure.
    #[error("tool `{tool_id}` failed: {message}")]
    ToolFailed {
        /// The tool.
        tool_id: String,
        /// The remote or local message.
        message: String,
        /// Whether running it again may succeed.
        retryable: bool,
    },
    /// A tool call was sent but its outcome was not recorded (the worker died, the call timed
    /// out, or its result could not be stored), and the tool is neither idempotent nor on a
    /// hub that honours idempotency keys: sending it again could repeat the effect.
    #[error("outcome of tool `{tool_id}` unknown: {message}")]
    EffectOutcomeUnknown {
        /// The tool.
        tool_id: String,
        /// What is known.
        message: String,
    },
    /// The operation exceeded its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The operation was cancelled.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// A backend (database, HTTP service) failed.
    #[error("{kind} error from {backend}: {message}")]
    Backend {
        /// Portable kind assigned by the adapter.
        kind: ErrorKind,
        /// Backend name (`postgres`, `openai`, or the name a deployment gave its adapter,
        /// e.g. `vllm` for an OpenAI-compatible server).
        backend: Cow<'static, str>,
        /// What happened, without secrets.
        message: String,
        /// Whether a retry may succeed (overrides the kind's default).
        retryable: bool,
        /// The server's requested wait; whether the call provably did not run.
        hint: crate::retry::RetryHint,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// A bug or broken invariant.
    #[error("internal error: {0}")]
    Internal(String),
}

fn format_violations(v: &[SchemaViolation]) -> String {
    v.iter()
        .map(|v| format!("{}: {}", display_path(&v.instance_path), v.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn display_path(p: &str) -> &str {
    if p.is_empty() {
        "/"
    } else {
        p
    }
}

impl Error {
    /// Portable classification.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::InvalidInput(_)
            | Error::InvalidWorkflow(_)
            | Error::SchemaValidation { .. }
            | Error::UploadRejected(_) => ErrorKind::InvalidInput,
            Error::PolicyDenied { .. } => ErrorKind::PolicyDenied,
            Error::BudgetExceeded(_) => ErrorKind::BudgetExceeded,
            Error::ModelOutput(_) => ErrorKind::ModelOutput,
            Error::ToolFailed { .. } => ErrorKind::ToolFailed,
            Error::EffectOutcomeUnknown { .. } => ErrorKind::EffectOutcomeUnknown,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::Cancelled(_) => ErrorKind::Cancelled,
            Error::Backend { kind, .. } => *kind,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Backend { retryable, .. } => *retryable,
            Error::ToolFailed { retryable, .. } => *retryable,
            Error::ModelOutput(_) | Error::Timeout(_) => true,
            _ => false,
        }
    }

    /// A not-found error for `entity` with `id`.
    pub fn not_found(entity: impl Into<Cow<'static, str>>, id: impl fmt::Display) -> Self {
        Error::NotFound {
            entity: entity.into(),
            id: id.to_string(),
        }
    }

    /// A backend error with the kind's default retryability.
    pub fn backend(
        backend: impl Into<Cow<'static, str>>,
        kind: ErrorKind,
        message: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        let retryable = matches!(
            kind,
            ErrorKind::Unavailable | ErrorKind::RateLimited | ErrorKind::Timeout
        );
        Error::Backend {
            kind,
            backend: backend.into(),
            message: message.into(),
            retryable,
            hint: Default::default(),
            source,
        }
    }

    /// The same error reported under another backend name (adapters named by the
    /// deployment: an OpenAI-compatible server configured as `vllm` reports `vllm`). Only
    /// [`Error::Backend`] carries a name; other variants are returned unchanged.
    pub fn with_backend_name(self, name: impl Into<Cow<'static, str>>) -> Self {
        match self {
            Error::Backend {
                kind,
                message,
                retryable,
                hint,
                source,
                ..
            } => Error::Backend {
                kind,
                backend: name.into(),
                message,
                retryable,
                hint,
                source,
            },
            other => other,
        }
    }

    /// A JSON value describing the error for events and API bodies: the serialized
    /// [`RecordedError`] (`kind`, `message`, `retryable` and the variant's fields).
    pub fn to_json(&self) -> serde_json::Value {
        self.to_recorded().to_json()
    }

    /// The error as it is recorded in events, run and step rows and the effect ledger;
    /// [`RecordedError::into_error`] rebuilds it.
    pub fn to_recorded(&self) -> RecordedError {
        RecordedError::from(self)
    }

    /// Rebuilds an error from [`Error::to_json`] output, of this or an earlier release.
    /// A value that is no recorded error at all gives an [`Error::Internal`] saying so.
    pub fn from_recorded_json(value: &serde_json::Value) -> Error {
        match RecordedError::from_json(value) {
            Ok(r) => r.into_error(),
            Err(e) => e,
        }
    }
}
