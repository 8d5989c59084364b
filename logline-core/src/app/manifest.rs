//! The app manifest (format v1): its types and parsing from JSON or YAML with every error
//! located by its path in the document.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::run::RunMode;

/// An app manifest: the format's version and the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The manifest's version, `1.MINOR.PATCH` (the major number is the format, v1). A
    /// changed manifest is imported under a higher version.
    pub version: String,
    /// The app.
    pub app: AppSpec,
}

/// Who sees an app.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppVisibility {
    /// Its owner only.
    #[default]
    Private,
    /// The owner's organisation.
    Org,
    /// Everyone.
    Public,
}

impl AppVisibility {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AppVisibility::Private => "private",
            AppVisibility::Org => "org",
            AppVisibility::Public => "public",
        }
    }
}

/// The app a manifest declares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// Stable id (`[a-z0-9][a-z0-9_.-]*`, at most 64 characters).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Icon (an emoji or URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owner (`org:<name>`, `user:<id>`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Who sees it.
    #[serde(default)]
    pub visibility: AppVisibility,
    /// The view opened first, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_view_id: Option<String>,
    /// What its runs may reach.
    #[serde(default)]
    pub scopes: Scopes,
    /// Workflows it uses, under app-local aliases.
    #[serde(default)]
    pub workflows: Vec<AppWorkflow>,
    /// Actions a user can take.
    #[serde(default)]
    pub actions: Vec<AppAction>,
}

/// What an app's runs may reach. Nothing outside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scopes {
    /// Tool ids its runs may call.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Memory owner kinds its runs may use: `user`, `tenant`, `app`, `agent`, `run`, each
    /// read and write, or read-only with `:read` (`tenant:read`).
    #[serde(default)]
    pub memory: Vec<String>,
    /// External systems it talks to (recorded, for review).
    #[serde(default)]
    pub external: Vec<String>,
}

/// A workflow an app uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppWorkflow {
    /// App-local alias that actions name.
    pub id: String,
    /// Id of a registered workflow.
    pub workflow_ref: String,
    /// A pinned workflow version; `None` = the latest at each run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Display label.
    pub label: String,
    /// Mode of the runs its actions start.
    #[serde(default)]
    pub default_mode: RunMode,
}

/// An action: starts a run of one of the app's workflows with an input built from the event
/// and context it is called with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppAction {
    /// Stable id.
    pub id: String,
    /// Display label.
    pub label: String,
    /// Alias of the app workflow it runs.
    pub workflow_id: String,
    /// Workflow input template: `"$context.<path>"` and `"$event.<path>"` (a trailing `?`
    /// makes the value optional), nested objects and arrays, literals; `"$$..."` is a literal
    /// string starting with `$`.
    #[serde(default)]
    pub input_mapping: Map<String, Value>,
}

/// One problem in a manifest, at a path (`app.actions[0].workflow_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestIssue {
    /// Where (`.` for the document itself).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The problems, in document order.
    pub issues: Vec<ManifestIssue>,
}

impl ManifestError {
    /// One issue at `path`.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        ManifestError {
            issues: vec![ManifestIssue {
                path: path.into(),
                message: message.into(),
            }],
        }
    }

    /// Whether an issue is at `path`.
    pub fn has_path(&self, path: &str) -> bool {
        self.issues.iter().any(|i| i.path == path)
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid app manifest:")?;
        for i in &self.issues {
            write!(f, " {}: {};", i.path, i.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

impl From<ManifestError> for Error {
    fn from(e: ManifestError) -> Self {
        Error::InvalidInput(e.to_string())
    }
}

/// A serde error with its path; serde's own messages name no location, the path does.
/// A path that names nothing (an empty key at the top) reads `.`, the document itself.
fn located<E: fmt::Display>(e: serde_path_to_error::Error<E>) -> ManifestError {
    let path = match e.path().to_string() {
        p if p.is_empty() => ".".to_string(),
        p => p,
    };
    ManifestError::at(path, e.into_inner().to_string())
}

impl Manifest {
    /// Parses and validates a JSON manifest.
    pub fn from_json(text: &str) -> Result<Self, ManifestError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let m: Manifest = serde_path_to_error::deserialize(de).map_err(located)?;
        m.validate()?;
        Ok(m)
    }

    /// Parses and validates a YAML manifest (one document).
    pub fn from_yaml(text: &str) -> Result<Self, ManifestError> {
        let de = serde_norway::Deserializer::from_str(text);
        let m: Manifest = serde_path_to_error::deserialize(de).map_err(located)?;
        m.validate()?;
        Ok(m)
    }

    /// Parses and validates a manifest given as a JSON value.
    pub fn from_value(value: Value) -> Result<Self, ManifestError> {
        let m: Manifest = serde_path_to_error::deserialize(value).map_err(located)?;
        m.validate()?;
        Ok(m)
    }

    /// Parses YAML when the text does not start like JSON (`{`).
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        if text.trim_start().starts_with('{') {
            Self::from_json(text)
        } else {
            Self::from_yaml(text)
        }
    }

    /// Checks what the types cannot (see [`super::validate`]).
    pub fn validate(&self) -> Result<(), ManifestError> {
        let issues = super::validate::issues(self);
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ManifestError { issues })
        }
    }

    /// The manifest's version as numbers.
    pub fn version_numbers(&self) -> Option<(u64, u64, u64)> {
        super::validate::semver(&self.version)
    }
}
