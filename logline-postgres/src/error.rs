//! The adapter's private error and its conversion to [`logline_core::Error`].

use logline_core::{Error, ErrorKind};

/// Backend name carried by every converted error.
pub(crate) const BACKEND: &str = "postgres";

/// What can go wrong inside the adapter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PgError {
    /// A query or connection failed.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// Running the embedded migrations failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// A stored row does not decode into the core type.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// SQLSTATE classes and codes we map.
mod sqlstate {
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const FOREIGN_KEY_VIOLATION: &str = "23503";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const DEADLOCK_DETECTED: &str = "40P01";
    pub const QUERY_CANCELED: &str = "57014";
    pub const LOCK_NOT_AVAILABLE: &str = "55P03";
}

/// Whether `e` is a violation of a unique constraint.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    db_code(e).as_deref() == Some(sqlstate::UNIQUE_VIOLATION)
}

/// Whether `e` is a violation of a foreign key.
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    db_code(e).as_deref() == Some(sqlstate::FOREIGN_KEY_VIOLATION)
}

fn db_code(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

fn backend(kind: ErrorKind, retryable: bool, message: String, source: PgError) -> Error {
    Error::Backend {
        kind,
        backend: BACKEND.into(),
        message,
        retryable,
        hint: Default::default(),
        source: Some(Box::new(source)),
    }
}

impl From<PgError> for Error {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Sqlx(s) => from_sqlx(s),
            PgError::Migrate(m) => {
                let message = format!("migration failed: {m}");
                let retryable = matches!(&m, sqlx::migrate::MigrateError::Execute(inner) if is_transient(inner));
                let kind = if retryable {
                    ErrorKind::Unavailable
                } else {
                    ErrorKind::Internal
                };
                backend(kind, retryable, message, PgError::Migrate(m))
            }
            PgError::Config(msg) => Error::InvalidInput(msg),
            PgError::Corrupt(msg) => {
                let message = format!("corrupt row: {msg}");
                backend(ErrorKind::Internal, false, message, PgError::Corrupt(msg))
            }
        }
    }
}

/// Whether the error may pass on retry (lost connection, restart, pool exhaustion,
/// serialization failure, deadlock).
pub(crate) fn is_transient(e: &sqlx::Error) -> bool {
    classify(e).1
}

fn classify(e: &sqlx::Error) -> (ErrorKind, bool) {
    use sqlx::Error as E;
    match e {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
            (ErrorKind::Unavailable, true)
        }
        E::Protocol(_) => (ErrorKind::Unavailable, true),
        E::RowNotFound => (ErrorKind::NotFound, false),
        E::Configuration(_) => (ErrorKind::InvalidInput, false),
        E::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                sqlstate::UNIQUE_VIOLATION => (ErrorKind::Conflict, false),
                sqlstate::SERIALIZATION_FAILURE | sqlstate::DEADLOCK_DETECTED => {
                    (ErrorKind::Conflict, true)
                }
                sqlstate::LOCK_NOT_AVAILABLE => (ErrorKind::Conflict, true),
                sqlstate::QUERY_CANCELED => (ErrorKind::Timeout, true),
                sqlstate::FOREIGN_KEY_VIOLATION => (ErrorKind::NotFound, false),
                // 08: connection exception; 53: insufficient resources; 57P0x: admin
                // shutdown, crash shutdown, cannot connect now; 58: system error.
                c if c.starts_with("08")
                    || c.starts_with("53")
                    || c.starts_with("57P")
                    || c.starts_with("58") =>
                {
                    (ErrorKind::Unavailable, true)
                }
                // 22: data exception; 23: other integrity violations; 42: syntax/access.
                c if c.starts_with("22") || c.starts_with("23") => (ErrorKind::InvalidInput, false),
                c if c.starts_with("28") => (ErrorKind::Unauthorized, false),
                "42501" => (ErrorKind::Unauthorized, false),
                _ => (ErrorKind::Internal, false),
            }
        }
        _ => (ErrorKind::Internal, false),
    }
}

/// Converts a driver error to the core error with the right kind and retryability.
pub(crate) fn from_sqlx(e: sqlx::Error) -> Error {
    let (kind, retryable) = classify(&e);
    let message = match &e {
        sqlx::Error::Database(d) => match d.code() {
            Some(code) => format!("{} (SQLSTATE {code})", d.message()),
            None => d.message().to_string(),
        },
        other => other.to_string(),
    };
    backend(kind, retryable, message, PgError::Sqlx(e))
}

/// Shorthand for mapping driver errors inside `?`.
pub(crate) fn db(e: sqlx::Error) -> Error {
    from_sqlx(e)
}

/// A corrupt-row error.
pub(crate) fn corrupt(msg: impl Into<String>) -> Error {
    PgError::Corrupt(msg.into()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_retryable_unavailable() {
        let e = from_sqlx(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        )));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_retryable());
        let e = from_sqlx(sqlx::Error::PoolTimedOut);
        assert!(e.is_retryable());
    }

    #[test]
    fn corrupt_rows_are_internal() {
        let e = corrupt("bad status");
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(!e.is_retryable());
    }

    #[test]
    fn config_errors_are_invalid_input() {
        let e: Error = PgError::Config("bad".into()).into();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
