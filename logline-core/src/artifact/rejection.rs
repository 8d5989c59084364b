//! Why an upload was refused.

use serde::{Deserialize, Serialize};

/// What is wrong with an upload's file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NameProblem {
    /// Nothing left after trimming.
    Empty,
    /// It holds a `/` or `\`: a path, not a name.
    PathSeparator,
    /// It is `.` or `..`.
    DotSegment,
    /// It holds a control or bidirectional-override character.
    ControlCharacter,
    /// It is longer than [`super::MAX_NAME_BYTES`] bytes.
    TooLong,
}

impl NameProblem {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            NameProblem::Empty => "empty",
            NameProblem::PathSeparator => "path_separator",
            NameProblem::DotSegment => "dot_segment",
            NameProblem::ControlCharacter => "control_character",
            NameProblem::TooLong => "too_long",
        }
    }
}

/// Why an upload was refused; carried by
/// [`Error::UploadRejected`](crate::Error::UploadRejected).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum UploadRejection {
    /// More bytes than the limit arrived.
    #[error("upload is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The upload has no bytes.
    #[error("upload is empty")]
    Empty,
    /// The declared content type is not what the bytes are.
    #[error("upload declared as `{declared}` but its content is `{sniffed}`")]
    TypeMismatch {
        /// What the caller said.
        declared: String,
        /// What the bytes are.
        sniffed: String,
    },
    /// The content type is not on the allowed list.
    #[error("content type `{content_type}` is not allowed")]
    TypeNotAllowed {
        /// The refused type.
        content_type: String,
    },
    /// The file name is unusable.
    #[error("file name refused: {}", .problem.as_str())]
    BadName {
        /// What is wrong with it.
        problem: NameProblem,
    },
}
