//! [`RecordedError`]: an [`Error`] as it is stored at rest (events, run and step rows, the
//! effect ledger), and the way back to an [`Error`].

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{BudgetKind, Error, ErrorKind, SchemaViolation};
use crate::workflow::ValidationIssue;

/// Backend name of a rebuilt backend error whose record names none.
const UNNAMED_BACKEND: &str = "recorded";

/// An [`Error`] at rest: its portable kind, its message (the error's `Display`), whether a
/// retry may succeed, and the fields of the variant that carry data.
///
/// The JSON form is what [`Error::to_json`] returns: `kind`, `message` and `retryable`
/// always; `policy_id` for `policy_denied` (null when no policy matched); and, when the
/// variant has them, `tool_id`, `violations`, `issues`, `budget`, `backend`, `entity` and
/// `id`, and `rejection` for a refused upload. Records written before `budget`, `backend`,
/// `entity` and `id` existed still rebuild: the data is read back from the message.
///
/// ```
/// use logline_core::{Error, ErrorKind};
///
/// let e = Error::not_found("run", "r-1");
/// let back = e.to_recorded().into_error();
/// assert_eq!(back.kind(), ErrorKind::NotFound);
/// assert_eq!(back.to_string(), "run not found: r-1");
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct RecordedError {
    /// Portable classification ([`Error::kind`]).
    pub kind: ErrorKind,
    /// The error's `Display` text.
    pub message: String,
    /// [`Error::is_retryable`].
    pub retryable: bool,
    /// The tool of a schema violation or tool failure.
    #[serde(default)]
    pub tool_id: Option<String>,
    /// The policy that denied, for `policy_denied`.
    #[serde(default)]
    pub policy_id: Option<String>,
    /// The budget that ran out, for `budget_exceeded`.
    #[serde(default)]
    pub budget: Option<BudgetKind>,
    /// Every failing path of a schema validation.
    #[serde(default)]
    pub violations: Option<Vec<SchemaViolation>>,
    /// Every problem of an invalid workflow.
    #[serde(default)]
    pub issues: Option<Vec<ValidationIssue>>,
    /// The backend that failed ([`Error::Backend`]).
    #[serde(default)]
    pub backend: Option<String>,
    /// The kind of record that was not found.
    #[serde(default)]
    pub entity: Option<String>,
    /// The id of the record that was not found.
    #[serde(default)]
    pub id: Option<String>,
    /// Why an upload was refused ([`Error::UploadRejected`]).
    #[serde(default)]
    pub rejection: Option<crate::artifact::UploadRejection>,
}

impl RecordedError {
    /// A record with only kind, message and retryability.
    pub fn new(kind: ErrorKind, message: impl Into<String>, retryable: bool) -> Self {
        RecordedError {
            kind,
            message: message.into(),
            retryable,
            tool_id: None,
            policy_id: None,
            budget: None,
            violations: None,
            issues: None,
            backend: None,
            entity: None,
            id: None,
            rejection: None,
        }
    }

    /// Reads a stored record (output of [`Error::to_json`] of this or an earlier release).
    /// Fails with [`Error::Internal`] when `value` is no recorded error.
    pub fn from_json(value: &Value) -> Result<Self, Error> {
        RecordedError::deserialize(value)
            .map_err(|e| Error::Internal(format!("stored error record is unreadable: {e}")))
    }

    /// The JSON form stored in events and rows.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| {
            // Unreachable for these field types; keep the three fields every reader needs.
            serde_json::json!({
                "kind": self.kind,
                "message": self.message,
                "retryable": self.retryable,
            })
        })
    }

    /// Rebuilds the error: the same variant where the record identifies it, with the same
    /// kind, `Display` text and retryability. A record whose kind and retryability no variant
    /// has (written by hand, or by another program) becomes an [`Error::Backend`] of that
    /// kind and retryability.
    pub fn into_error(self) -> Error {
        let rebuilt = self.rebuild();
        if rebuilt.kind() == self.kind && rebuilt.is_retryable() == self.retryable {
            rebuilt
        } else {
            self.as_backend_error()
        }
    }

    /// The variant the record describes (its retryability is checked by the caller).
    fn rebuild(&self) -> Error {
        let msg = self.message.as_str();
        if let Some(e) = self.recorded_backend() {
            return e;
        }
        match self.kind {
            ErrorKind::NotFound => {
                let (entity, id) = match (&self.entity, &self.id) {
                    (Some(entity), Some(id)) => (entity.clone(), id.clone()),
                    _ => match msg.split_once(" not found: ") {
                        Some((entity, id)) => (entity.to_string(), id.to_string()),
                        None => ("record".to_string(), msg.to_string()),
                    },
                };
                Error::NotFound {
                    entity: entity.into(),
                    id,
                }
            }
            ErrorKind::Conflict => Error::Conflict(detail(msg, "conflict: ")),
            ErrorKind::InvalidInput => match (&self.violations, &self.issues) {
                (Some(violations), _) => Error::SchemaValidation {
                    tool_id: self.tool_id.clone().unwrap_or_default(),
                    violations: violations.clone(),
                },
                (None, Some(issues)) => Error::InvalidWorkflow(issues.clone()),
                (None, None) => match &self.rejection {
                    Some(r) => Error::UploadRejected(r.clone()),
                    None => Error::InvalidInput(detail(msg, "invalid input: ")),
                },
            },
            ErrorKind::PolicyDenied => Error::PolicyDenied {
                policy_id: self.policy_id.clone(),
                reason: detail(msg, "policy denied: "),
            },
            ErrorKind::BudgetExceeded => {
                let budget = self
                    .budget
                    .or_else(|| BudgetKind::ALL.into_iter().find(|b| b.reason() == msg));
                match budget {
                    Some(b) => Error::BudgetExceeded(b),
                    None => self.as_backend_error(),
                }
            }
            ErrorKind::ModelOutput => Error::ModelOutput(detail(msg, "invalid model output: ")),
            ErrorKind::ToolFailed => {
                let (tool_id, message) = match &self.tool_id {
                    Some(t) => (t.clone(), detail(msg, &format!("tool `{t}` failed: "))),
                    None => msg
                        .strip_prefix("tool `")
                        .and_then(|rest| rest.split_once("` failed: "))
                        .map(|(t, m)| (t.to_string(), m.to_string()))
                        .unwrap_or_else(|| (String::new(), msg.to_string())),
                };
                Error::ToolFailed {
                    tool_id,
                    message,
                    retryable: self.retryable,
                }
            }
            ErrorKind::EffectOutcomeUnknown => {
                let (tool_id, message) = match &self.tool_id {
                    Some(t) => (
                        t.clone(),
                        detail(msg, &format!("outcome of tool `{t}` unknown: ")),
                    ),
                    None => msg
                        .strip_prefix("outcome of tool `")
                        .and_then(|rest| rest.split_once("` unknown: "))
                        .map(|(t, m)| (t.to_string(), m.to_string()))
                        .unwrap_or_else(|| (String::new(), msg.to_string())),
                };
                Error::EffectOutcomeUnknown { tool_id, message }
            }
            ErrorKind::Timeout => Error::Timeout(detail(msg, "timed out: ")),
            ErrorKind::Cancelled => Error::Cancelled(detail(msg, "cancelled: ")),
            ErrorKind::Internal => Error::Internal(detail(msg, "internal error: ")),
            ErrorKind::RateLimited | ErrorKind::Unavailable | ErrorKind::Unauthorized => {
                self.as_backend_error()
            }
        }
    }

    /// The backend error the record names (`backend` field, or the message format of
    /// [`Error::Backend`] in records that predate the field).
    fn recorded_backend(&self) -> Option<Error> {
        let (backend, message) = match &self.backend {
            Some(b) => (
                b.clone(),
                detail(&self.message, &backend_prefix(self.kind, b)),
            ),
            None => {
                let rest = self
                    .message
                    .strip_prefix(self.kind.as_str())?
                    .strip_prefix(" error from ")?;
                let (b, m) = rest.split_once(": ")?;
                (b.to_string(), m.to_string())
            }
        };
        Some(Error::Backend {
            kind: self.kind,
            backend: backend.into(),
            message,
            retryable: self.retryable,
            hint: Default::default(),
            source: None,
        })
    }

    /// An [`Error::Backend`] with exactly this record's kind and retryability.
    fn as_backend_error(&self) -> Error {
        let backend = self.backend.as_deref().unwrap_or(UNNAMED_BACKEND);
        Error::Backend {
            kind: self.kind,
            backend: backend.to_string().into(),
            message: detail(&self.message, &backend_prefix(self.kind, backend)),
            retryable: self.retryable,
            hint: Default::default(),
            source: None,
        }
    }
}

/// The start of [`Error::Backend`]'s `Display` text.
fn backend_prefix(kind: ErrorKind, backend: &str) -> String {
    format!("{kind} error from {backend}: ")
}

/// `message` without the variant's `Display` prefix.
fn detail(message: &str, prefix: &str) -> String {
    message.strip_prefix(prefix).unwrap_or(message).to_string()
}

impl From<&Error> for RecordedError {
    fn from(e: &Error) -> Self {
        let mut r = RecordedError::new(e.kind(), e.to_string(), e.is_retryable());
        match e {
            Error::NotFound { entity, id } => {
                r.entity = Some(entity.to_string());
                r.id = Some(id.clone());
            }
            Error::InvalidWorkflow(issues) => r.issues = Some(issues.clone()),
            Error::SchemaValidation {
                tool_id,
                violations,
            } => {
                r.tool_id = Some(tool_id.clone());
                r.violations = Some(violations.clone());
            }
            Error::PolicyDenied { policy_id, .. } => r.policy_id.clone_from(policy_id),
            Error::BudgetExceeded(b) => r.budget = Some(*b),
            Error::ToolFailed { tool_id, .. } | Error::EffectOutcomeUnknown { tool_id, .. } => {
                r.tool_id = Some(tool_id.clone())
            }
            Error::Backend { backend, .. } => r.backend = Some(backend.to_string()),
            Error::UploadRejected(rejection) => r.rejection = Some(rejection.clone()),
            Error::Conflict(_)
            | Error::InvalidInput(_)
            | Error::ModelOutput(_)
            | Error::Timeout(_)
            | Error::Cancelled(_)
            | Error::Internal(_) => {}
        }
        r
    }
}

impl From<Error> for RecordedError {
    fn from(e: Error) -> Self {
        RecordedError::from(&e)
    }
}

impl From<RecordedError> for Error {
    fn from(r: RecordedError) -> Self {
        r.into_error()
    }
}

impl Serialize for RecordedError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", &self.kind)?;
        m.serialize_entry("message", &self.message)?;
        m.serialize_entry("retryable", &self.retryable)?;
        if self.tool_id.is_some() {
            m.serialize_entry("tool_id", &self.tool_id)?;
        }
        // A denial always names its policy, null when none matched.
        if self.policy_id.is_some() || self.kind == ErrorKind::PolicyDenied {
            m.serialize_entry("policy_id", &self.policy_id)?;
        }
        if let Some(b) = &self.budget {
            m.serialize_entry("budget", b)?;
        }
        if let Some(v) = &self.violations {
            m.serialize_entry("violations", v)?;
        }
        if let Some(i) = &self.issues {
            m.serialize_entry("issues", i)?;
        }
        if let Some(b) = &self.backend {
            m.serialize_entry("backend", b)?;
        }
        if let Some(e) = &self.entity {
            m.serialize_entry("entity", e)?;
        }
        if let Some(id) = &self.id {
            m.serialize_entry("id", id)?;
        }
        if let Some(r) = &self.rejection {
            m.serialize_entry("rejection", r)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests;
